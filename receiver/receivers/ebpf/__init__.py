"""The ``ebpf`` receiver: config (:mod:`.config`), the composition root of the eBPF event path
(:mod:`.receiver`) and its self-metrics (:mod:`.self_metrics`)."""
