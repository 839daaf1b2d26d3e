"""AgentThread carries its name into the kernel (comm), cut to 15 bytes."""

from __future__ import annotations

import threading

from receiver.component.threads import AgentThread


def _comm_of_thread(out: dict) -> None:
    out["comm"] = open(f"/proc/self/task/{threading.get_native_id()}/comm").read().strip()


def test_the_kernel_knows_the_thread_by_its_name():
    out: dict = {}
    t = AgentThread(_comm_of_thread, "ebpf-capture", args=(out,))
    assert t.daemon
    t.start()
    t.join(5)
    assert out["comm"] == "ebpf-capture"
    long = AgentThread(_comm_of_thread, "exporter-otlp-traces-0", args=(out,))
    long.start()
    long.join(5)
    assert out["comm"] == "exporter-otlp-t" and long.name == "exporter-otlp-traces-0"
