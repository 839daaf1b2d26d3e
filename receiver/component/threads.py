"""The agent's threads, named for the kernel too.

CPython (before 3.14) leaves every thread's kernel name (``comm``: ``top -H``, ``ps -L``,
``perf``, ``/proc/<pid>/task/<tid>/comm``) as the process's, so an operator — or
``bench/sched_delay.py`` — cannot tell the capture thread from an exporter's.  An
:class:`AgentThread` sets its kernel name to its Python name, cut to the kernel's 15 bytes.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from typing import Any, Callable

_PR_SET_NAME = 15
_TASK_COMM_BYTES = 15


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # not a C library we can reach: names stay the process's
        return None


def set_native_thread_name(name: str) -> bool:
    """Name the calling thread for the kernel (``prctl(PR_SET_NAME)``); False if it could not."""
    libc = _libc()
    if libc is None:
        return False
    return libc.prctl(_PR_SET_NAME, name.encode("utf-8", "replace")[:_TASK_COMM_BYTES], 0, 0, 0) == 0


class AgentThread(threading.Thread):
    """A daemon thread that carries its name into the kernel when it starts running."""

    def __init__(self, target: Callable[..., Any], name: str, args: tuple = (), kwargs: dict | None = None) -> None:
        super().__init__(target=target, name=name, args=args, kwargs=kwargs or {}, daemon=True)

    def run(self) -> None:
        set_native_thread_name(self.name)
        super().run()
