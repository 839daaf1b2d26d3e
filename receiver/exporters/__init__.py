"""Exporters: where telemetry leaves the agent.

* :mod:`.base` — the exporter shape (``push`` + classified errors) and the queue/retry sender;
* :mod:`.otlp_encoding` — pure OTLP protobuf encoding, shared by the two transports;
* :mod:`.otlp_grpc`, :mod:`.otlp_http` — OTLP transports;
* :mod:`.prometheus` — a pull endpoint translating metrics the OpenTelemetry way;
* :mod:`.debug` — prints what it receives.
"""
