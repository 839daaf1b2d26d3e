"""Fixtures of the real-kernel suite (see harness.py for how records are waited for).

Loading the object costs seconds (verifier) and detaching it seconds more (one RCU grace
period per tracepoint), so the default-knob capture is shared by the whole session; tests that
need other knobs start their own.
"""

from __future__ import annotations

import pytest

from receiver.bpf.loader import default_object_path

from .harness import Capture, kernel_refusal, started_capture


@pytest.fixture(scope="session", autouse=True)
def kernel() -> None:
    """Skip the suite only when the kernel or the privileges truly refuse BPF (with why)."""
    reason = kernel_refusal()
    if reason:
        pytest.skip(reason)
    path = default_object_path()
    if not path.is_file():
        pytest.fail(f"{path} is missing: build it with `make -C bpf`", pytrace=False)


@pytest.fixture(scope="session")
def capture(kernel) -> Capture:
    """The real object with default knobs (agent_tgid = this pytest process), attached."""
    with started_capture() as cap:
        yield cap
