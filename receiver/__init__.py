"""ebpf-receiver: eBPF auto-instrumentation agent exporting OTLP traces, logs and RED metrics."""

__version__ = "0.1.0"
