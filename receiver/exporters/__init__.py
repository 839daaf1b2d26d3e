"""Exporters: where telemetry leaves the agent.

* :mod:`.base` — the exporter shape (``push`` + classified errors) and the queue/retry sender;
* :mod:`.otlp_encoding` — OTLP protobuf messages (the reference encoding; metrics, OTLP/JSON);
* :mod:`.otlp_wire` — traces and logs written straight to wire format, what the transports send;
* :mod:`.otlp_grpc`, :mod:`.otlp_http` — OTLP transports;
* :mod:`.prometheus` — a pull endpoint translating metrics the OpenTelemetry way;
* :mod:`.debug` — prints what it receives.
"""
