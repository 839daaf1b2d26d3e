"""One fuzz target under atheris: ``python -m tests.fuzz.worker <target> <libFuzzer args...>``.

The agent's modules (``receiver``, the NATS plug-in) are instrumented for coverage as they are
imported; the target itself runs uninstrumented glue.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["receiver", "ebpf_receiver_nats"]):
    from tests.fuzz.targets import TARGETS


def main() -> None:
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
