"""One fuzz target under atheris: ``python -m tests.fuzz.worker <target> <libFuzzer args...>``.

Only the modules under test of that target (:data:`UNDER_TEST`: its protocol package, the record
decoder, the configuration loader, an encoder) are instrumented for coverage as they are
imported; the rest of the agent, the harness and the libraries it checks against run
uninstrumented — instrumented code runs several times slower, and coverage of code that merely
builds the input or checks the result does not guide the fuzzer towards bugs of the target.
Logging is off: a message per input (the Prometheus translation warns about every clashing
name) costs more than the input, and libFuzzer's ``-close_fd_mask`` closes its stream anyway.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

_PROTOCOL_PACKAGES = {"dns_udp": "dns"}  # targets sharing a protocol package
_SESSION = "receiver.protocols.stream"  # the skeleton whose safety net counts a parser's exceptions

# Target -> the module prefixes whose coverage guides it (a protocol target: its package).
UNDER_TEST: dict[str, tuple[str, ...]] = {
    "nats": ("ebpf_receiver_nats",),
    "records": ("receiver.capture.events",),
    # The loader and every component's config class (tests/unit/test_fuzz_scope.py keeps this true).
    "config": ("receiver.config", "receiver.configuration", "receiver.exporters.config", "receiver.extensions.health_check",
               "receiver.extensions.zpages.config", "receiver.processors.batch", "receiver.processors.tail_sampling_config",
               "receiver.receivers.ebpf.config", "receiver.receivers.profiling.config"),
    "otlp": ("receiver.exporters.otlp_wire", "receiver.exporters.otlp_wire_fields", "receiver.exporters.otlp_encoding"),
    "prometheus": ("receiver.exporters.prometheus",),
}
_INSTRUMENTABLE = ("receiver", "ebpf_receiver_nats")


def under_test(target: str) -> tuple[str, ...]:
    if target in UNDER_TEST:
        return UNDER_TEST[target]
    return (f"receiver.protocols.{_PROTOCOL_PACKAGES.get(target, target)}", _SESSION)


def package_modules(package: str) -> list[str]:
    """Every module of ``package`` found on disk (nothing is imported)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, package
    modules = []
    for root in map(Path, spec.submodule_search_locations):
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            modules.append(".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts))))
    return modules


def not_under_test(target: str) -> list[str]:
    """The instrumentable modules outside ``target``'s scope (atheris excludes them by exact name)."""
    scope = under_test(target)
    return [m for package in _INSTRUMENTABLE for m in package_modules(package)
            if not any(m == s or m.startswith(s + ".") for s in scope)]


def main() -> None:
    import atheris  # the fuzz extra (make venv-fuzz); the scopes above are tested without it

    name = sys.argv[1]
    logging.disable(logging.CRITICAL)
    with atheris.instrument_imports(include=list(_INSTRUMENTABLE), exclude=not_under_test(name)):
        from tests.fuzz.targets import TARGETS
    # libFuzzer re-runs argv[0] through the shell to minimise a crash (-minimize_crash): it must
    # be the whole command of this target, not the path of this file.
    atheris.Setup([f"{sys.executable} -m tests.fuzz.worker {name}", *sys.argv[2:]], TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
