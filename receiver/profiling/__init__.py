"""CPU profiling in user space: symbolisation of the kernel's aggregated stacks (ELF symbols,
kallsyms, perf maps, CPython frames) into :mod:`receiver.model.profiles` batches."""
