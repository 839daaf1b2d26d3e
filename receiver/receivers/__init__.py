"""Receivers: components that bring telemetry into the pipelines (today: ``ebpf``)."""
