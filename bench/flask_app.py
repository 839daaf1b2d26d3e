"""The Flask app of the comparison with the OpenTelemetry Python SDK, and its gunicorn config.

``gunicorn --config python:bench.flask_app bench.flask_app:app`` — one JSON endpoint with a path
parameter (``GET /users/<id>``).  With ``BENCH_OTEL=1`` each worker, after the fork, sets up the
OTel SDK the way its documentation says to under gunicorn (``post_fork``): a TracerProvider with
a BatchSpanProcessor and a MeterProvider with a periodic reader, both exporting OTLP/gRPC to
``BENCH_OTLP_ENDPOINT``, and the app instrumented with ``opentelemetry-instrumentation-flask``
when it is installed, else with the WSGI middleware it is built on
(``opentelemetry-instrumentation-wsgi``).  SDK settings are left at their defaults.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify

app = Flask(__name__)

USERS = {i: {"id": i, "name": f"user-{i}", "email": f"user{i}@example.com"} for i in range(1000)}


@app.get("/users/<int:uid>")
def get_user(uid: int):
    user = USERS.get(uid)
    if user is None:
        return jsonify(error="not found"), 404
    return jsonify(user)


INSTRUMENTATION = "none"


def setup_otel(endpoint: str) -> str:
    """Install the OTel SDK in this (worker) process; returns which instrumentation was used."""
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "bench-flask"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint, insecure=True))
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    try:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
    except ImportError:
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

        app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app)
        return "opentelemetry-instrumentation-wsgi"
    FlaskInstrumentor().instrument_app(app)
    return "opentelemetry-instrumentation-flask"


# -- gunicorn configuration (this module doubles as `--config python:bench.flask_app`) --------

accesslog = None
loglevel = "warning"


def post_fork(server, worker):  # noqa: ARG001 (gunicorn's signature)
    global INSTRUMENTATION
    if os.environ.get("BENCH_OTEL") == "1":
        INSTRUMENTATION = setup_otel(os.environ["BENCH_OTLP_ENDPOINT"])
        server.log.warning("worker %s: OTel SDK set up (%s)", worker.pid, INSTRUMENTATION)
