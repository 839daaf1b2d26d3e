"""The ``otlpprofiles`` exporter: each :class:`ProfileBatch` as one OTLP
``ProfilesService/Export`` call (development signal, behind ``enable_development_signal``).
Synchronous, called by the profiler's thread once per reporting interval; a failed export is
counted (``exporter_failed_items{signal="profiles"}``, items = samples) and not retried."""

from __future__ import annotations

import logging

import grpc
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import ExportProfilesServiceResponse

from receiver.exporters.config import OtlpProfilesExporterConfig
from receiver.exporters.otlp_grpc import channel_credentials, parse_grpc_endpoint
from receiver.exporters.otlp_profiles_encoding import encode_profiles_request
from receiver.model.profiles import ProfileBatch

log = logging.getLogger(__name__)
METHOD = "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"
SIGNAL = "profiles"


class OtlpProfilesExporter:
    def __init__(self, component_id: str, config: OtlpProfilesExporterConfig, self_metrics=None) -> None:
        self._id = component_id
        self._cfg = config
        self._metrics = self_metrics
        self._target, self._tls = parse_grpc_endpoint(config.endpoint, config.tls.insecure)
        self._channel: grpc.Channel | None = None
        self._call = None
        self.exports = 0
        self.failures = 0

    def start(self) -> None:
        if self._channel is not None:
            return
        if self._tls:
            self._channel = grpc.secure_channel(self._target, channel_credentials(self._cfg.tls))
        else:
            self._channel = grpc.insecure_channel(self._target)
        self._call = self._channel.unary_unary(METHOD, request_serializer=None,
                                               response_deserializer=ExportProfilesServiceResponse.FromString)

    def shutdown(self, timeout: float | None = None) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            self._call = None

    def consume_profiles(self, batch: ProfileBatch) -> None:
        if not batch.samples or self._call is None:
            return
        items = sum(s.count for s in batch.samples)
        data = encode_profiles_request(batch).SerializeToString()
        metadata = tuple((k.lower(), v) for k, v in self._cfg.headers.items())
        try:
            self._call(data, timeout=self._cfg.timeout, metadata=metadata)
        except grpc.RpcError as err:
            self.failures += 1
            log.warning("exporters.%s: export to %s failed: %s", self._id, self._target, err.code().name)
            if self._metrics is not None:
                self._metrics.exporter_failed_items.labels(self._id, SIGNAL, "permanent").inc(items)
            return
        self.exports += 1
        if self._metrics is not None:
            self._metrics.exporter_sent_items.labels(self._id, SIGNAL).inc(items)
