"""The fuzz worker (tests/fuzz/worker.py) instruments only the modules under test of a target:
the scopes name modules that exist, cover what the target runs, and leave the rest out."""

from __future__ import annotations

import pytest

from receiver.distribution import default_registry
from tests.fuzz.targets import TARGETS
from tests.fuzz.worker import not_under_test, package_modules, under_test

MODULES = set(package_modules("receiver")) | set(package_modules("ebpf_receiver_nats"))


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_scope_names_modules_that_exist_and_only_those_are_instrumented(target):
    excluded = set(not_under_test(target))
    for prefix in under_test(target):
        inside = {m for m in MODULES if m == prefix or m.startswith(prefix + ".")}
        assert inside, f"{target}: {prefix} names no module"
        assert not inside & excluded
    assert "receiver.pipeline" in excluded and "receiver.bpf.abi" in excluded


def test_the_config_scope_holds_every_component_config_class():
    scope = under_test("config")
    for cls in default_registry().config_classes().values():
        assert any(cls.__module__ == s or cls.__module__.startswith(s + ".") for s in scope), cls.__module__


def test_every_protocol_target_instruments_its_own_package():
    assert under_test("redis") == ("receiver.protocols.redis", "receiver.protocols.stream")
    assert under_test("dns_udp")[0] == "receiver.protocols.dns"
    assert "receiver.protocols.http1.parse" in not_under_test("redis")
