"""What user space sets in the kernel side before load (:class:`LoaderKnobs`, built from
``receivers.ebpf``), and the agent's pid namespace the kernel compares pids in.  Imported by
:mod:`receiver.bpf.loader`, which re-exports them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from receiver.bpf.network_knobs import NetworkKnobs


@dataclass(frozen=True)
class LoaderKnobs:
    """What user space sets before load (from ``receivers.ebpf``)."""

    agent_tgid: int = 0
    capture_size: int = 4096
    wakeup_bytes: int = 1 << 20
    capture_logs: bool = False
    ring_buffer_size: int = 16 << 20
    max_connections: int = 65536
    excluded_pids: tuple[int, ...] = ()
    excluded_ports: tuple[int, ...] = ()
    filter_pids: bool = False  # consult erx_excluded_pids even when excluded_pids is empty (discovery rules)
    # The agent's pid namespace (see agent_pid_namespace()); (0, 0) in the initial one.
    agent_pidns: tuple[int, int] = (0, 0)
    pidns_only: bool = False  # with agent_pidns: trace only that namespace's processes
    network: NetworkKnobs | None = None  # network health metrics (None: all off, programs not loaded)
    observe_self: bool = False  # trace connections whose other end is the agent (debugging)
    log_pipes: str = "classified"  # stdout/stderr pipes as log destinations: classified | all | none
    # HTTP/1 pairing in the kernel (ERX_EV_HTTP_TX records); off: every byte as data records.
    http_pairing: bool = False
    http_pairing_connections: int = 8192  # erx_http_conns entries (~1.5 KiB each)
    http_aggregate_keys: int = 2048  # erx_http_aggregates entries (152 bytes per CPU each)
    # Fill of the ring buffer above which transactions are aggregated instead of submitted
    # (fractions of ring_buffer_size; 0 never): successes, then errors too.
    shed_ring_fraction: float = 0.5
    shed_error_ring_fraction: float = 0.9
    shed_keep_slower_than_ns: int = 0  # shed as late as errors: at least this long (0: off)


# The inode of the initial pid namespace (PROC_PID_INIT_INO).
INIT_PIDNS_INO = 0xEFFFFFFC


def agent_pid_namespace(proc_root: str = "/proc") -> tuple[int, int]:
    """(st_dev, st_ino) of this process's pid namespace, or (0, 0) when it is the initial one
    (or cannot be read): the kernel side then compares pids as it reports them."""
    try:
        st = Path(proc_root, "self", "ns", "pid").stat()
    except OSError:
        return (0, 0)
    if st.st_ino == INIT_PIDNS_INO:
        return (0, 0)
    return (st.st_dev, st.st_ino)
