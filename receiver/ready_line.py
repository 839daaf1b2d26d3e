"""The line ``run`` logs once the agent is up: what it serves and where its telemetry goes.

::

    ebpf-receiver 0.1.0 running (pid 4242); pipelines: traces, metrics, logs;
    serving http://127.0.0.1:9464/metrics (prometheus), http://127.0.0.1:13133/ (health_check);
    exporting otlp → localhost:4317 (grpc, insecure), debug → stderr (verbosity: normal)

(one line in the log).  Every endpoint the agent listens on is a URL with the port actually
bound; every exporter of a pipeline is named with its target as the exporter will use it (the
gRPC exporter's scheme rules come from the exporter itself).
"""

from __future__ import annotations

from receiver.exporters.config import (
    DebugExporterConfig,
    OtlpExporterConfig,
    OtlpHttpExporterConfig,
    PrometheusExporterConfig,
)
from receiver.exporters.otlp_grpc import parse_grpc_endpoint
from receiver.extensions.health_check import HealthCheckExtensionConfig
from receiver.extensions.zpages.config import ZPagesExtensionConfig

READY_MARK = "running (pid"  # what scripts and tests wait for


def ready_line(agent, version: str, pid: int) -> str:
    parts = [f"ebpf-receiver {version} {READY_MARK} {pid})", "pipelines: " + ", ".join(agent.config.service.pipelines)]
    served = served_urls(agent)
    if served:
        parts.append("serving " + ", ".join(served))
    targets = exporter_targets(agent)
    if targets:
        parts.append("exporting " + ", ".join(targets))
    return "; ".join(parts)


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _split(endpoint: str) -> tuple[str, str]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]") or "0.0.0.0", port


def served_urls(agent) -> list[str]:
    """``URL (component id)`` of every endpoint the agent listens on, with the bound port."""
    out = []
    for component_id, exporter in agent.exporters.items():
        cfg = agent.config.exporters[component_id]
        if isinstance(cfg, PrometheusExporterConfig):
            host, port = _split(cfg.endpoint)
            scheme = "https" if cfg.tls is not None else "http"
            out.append(f"{scheme}://{url_host(host)}:{getattr(exporter, 'port', port)}/metrics ({component_id})")
    for component_id, extension in agent.extensions.items():
        cfg = agent.config.extensions[component_id]
        if isinstance(cfg, HealthCheckExtensionConfig):
            host, port = _split(cfg.endpoint)
            host = host if cfg.endpoint.rpartition(":")[0] else "127.0.0.1"
            out.append(f"http://{url_host(host)}:{getattr(extension, 'port', port)}{cfg.path} ({component_id})")
        elif isinstance(cfg, ZPagesExtensionConfig):
            host, port = _split(cfg.endpoint)
            host = "127.0.0.1" if host == "localhost" else host
            out.append(f"http://{url_host(host)}:{getattr(extension, 'port', port)}/debug/servicez ({component_id})")
    return out


def exporter_targets(agent) -> list[str]:
    """``id → target (details)`` of every exporter that sends (pull exporters are served)."""
    out = []
    for component_id in agent.exporters:
        cfg = agent.config.exporters[component_id]
        if isinstance(cfg, PrometheusExporterConfig):
            continue
        target = describe_target(cfg)
        out.append(f"{component_id} → {target}" if target else component_id)
    return out


def describe_target(cfg) -> str | None:
    if isinstance(cfg, OtlpExporterConfig):
        target, tls = parse_grpc_endpoint(cfg.endpoint, cfg.tls.insecure)
        return f"{target} (grpc, {'tls' if tls else 'insecure'})"
    if isinstance(cfg, OtlpHttpExporterConfig):
        details = ["http", cfg.encoding]
        for signal in ("traces", "metrics", "logs"):
            url = getattr(cfg, f"{signal}_endpoint")
            if url:
                details.append(f"{signal} → {url}")
        return f"{cfg.endpoint} ({', '.join(details)})"
    if isinstance(cfg, DebugExporterConfig):
        return f"stderr (verbosity: {cfg.verbosity})"
    endpoint = getattr(cfg, "endpoint", None)  # a plug-in's exporter
    return str(endpoint) if endpoint else None
