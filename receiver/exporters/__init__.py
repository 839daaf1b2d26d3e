"""Exporters: where telemetry leaves the agent.

Imports go one way, from the transports down to the shared pieces:

* :mod:`.signals` — the three signals, item counting, the consumer protocol the pipeline calls;
* :mod:`.errors` — how a push fails (permanent, too large, retryable);
* :mod:`.retry` — the backoff schedule of ``retry_on_failure``;
* :mod:`.otlp_encoding` — OTLP protobuf messages (the reference encoding; metrics, OTLP/JSON);
* :mod:`.otlp_wire` — traces and logs written straight to wire format, what the transports send;
* :mod:`.otlp_split` — a serialized request cut into smaller ones with the same items;
* :mod:`.persistent_queue` — the files of ``sending_queue.storage``;
* :mod:`.exporter_metrics` — the sending queue's self metrics;
* :mod:`.sending_queue` — the exporter shape (``serialize`` + ``push_serialized``) and the
  per-signal queues, consumers, splitting and retries around it (the Collector's exporterhelper);
* :mod:`.otlp_grpc`, :mod:`.otlp_http` — OTLP transports;
* :mod:`.prometheus` — a pull endpoint translating metrics the OpenTelemetry way;
* :mod:`.debug` — prints what it receives.
"""
