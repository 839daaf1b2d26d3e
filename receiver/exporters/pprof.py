"""The ``pprof`` exporter: each :class:`ProfileBatch` as a gzipped pprof file in a directory
(bounded in files, oldest removed) and/or pushed to a Pyroscope-compatible ingest endpoint
(``POST <endpoint>/ingest?name=...&from=...&until=...&format=pprof&sampleRate=...``, the body the
pprof file).  Synchronous: called by the profiler's thread once per reporting interval; a push
that fails is counted (``exporter_failed_items{signal="profiles"}``, items = samples) and not
retried (the next interval brings the next profile)."""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from receiver.exporters.config import PprofExporterConfig
from receiver.exporters.pprof_encoding import encode_pprof
from receiver.model.profiles import ProfileBatch

log = logging.getLogger(__name__)
SIGNAL = "profiles"


class PprofExporter:
    def __init__(self, component_id: str, config: PprofExporterConfig, self_metrics=None) -> None:
        self._id = component_id
        self._cfg = config
        self._metrics = self_metrics
        self._lock = threading.Lock()
        self.files_written: list[str] = []
        self.pushes = 0
        self.push_failures = 0

    def start(self) -> None:
        if self._cfg.directory is not None:
            Path(self._cfg.directory).mkdir(parents=True, exist_ok=True)

    def shutdown(self, timeout: float | None = None) -> None:
        return None

    def consume_profiles(self, batch: ProfileBatch) -> None:
        if not batch.samples:
            return
        data = encode_pprof(batch)
        items = sum(s.count for s in batch.samples)
        ok = True
        with self._lock:
            if self._cfg.directory is not None:
                ok &= self._write(batch, data)
            if self._cfg.endpoint is not None:
                ok &= self._push(batch, data)
        if self._metrics is not None:
            if ok:
                self._metrics.exporter_sent_items.labels(self._id, SIGNAL).inc(items)
            else:
                self._metrics.exporter_failed_items.labels(self._id, SIGNAL, "permanent").inc(items)

    def _write(self, batch: ProfileBatch, data: bytes) -> bool:
        directory = Path(self._cfg.directory)
        path = directory / f"cpu-{batch.start_ns // 1_000_000}.pb.gz"
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as err:
            log.warning("exporters.%s: cannot write %s: %s", self._id, path, err)
            return False
        self.files_written.append(str(path))
        while len(self.files_written) > self._cfg.max_files:
            old = self.files_written.pop(0)
            try:
                os.unlink(old)
            except OSError:
                log.debug("exporters.%s: %s already gone", self._id, old)
        return True

    def ingest_url(self, batch: ProfileBatch) -> str:
        query = urllib.parse.urlencode({
            "name": f"{self._cfg.application_name}.cpu{{}}",
            "from": batch.start_ns // 1_000_000_000,
            "until": (batch.start_ns + batch.duration_ns) // 1_000_000_000,
            "format": "pprof",
            "sampleRate": batch.frequency_hz,
            "spyName": "ebpf-receiver",
        })
        return f"{self._cfg.endpoint.rstrip('/')}/ingest?{query}"

    def _push(self, batch: ProfileBatch, data: bytes) -> bool:
        req = urllib.request.Request(self.ingest_url(batch), data=data, method="POST")
        req.add_header("Content-Type", "application/octet-stream")
        for k, v in self._cfg.headers.items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=self._cfg.timeout) as resp:
                resp.read()
        except (urllib.error.URLError, OSError) as err:
            self.push_failures += 1
            log.warning("exporters.%s: push to %s failed: %s", self._id, self._cfg.endpoint, err)
            return False
        self.pushes += 1
        return True
