"""Discovery rules: what each fact matches, AND within a rule, exclude over include."""

from __future__ import annotations

import pytest

from receiver.config import DiscoveryRule
from receiver.discovery.rules import Decision, DiscoveryRules, ProcessFacts, rule_matches

CID = "0123456789ab" + "c" * 52
NGINX = ProcessFacts(
    pid=100,
    exe="/usr/sbin/nginx",
    cmdline="nginx: worker process",
    cgroups=(f"/system.slice/docker-{CID}.scope", "/"),
    container_id=CID,
)


def no_ports():
    raise AssertionError("ports were read although no rule needs them")


def ports(*p):
    return lambda: frozenset(p)


@pytest.mark.parametrize(
    "rule,matches",
    [
        (dict(exe="nginx"), True),  # no '/': the file name
        (dict(exe="ngin?"), True),
        (dict(exe="/usr/sbin/*"), True),  # with '/': the whole path
        (dict(exe="*/nginx"), True),
        (dict(exe="/usr/bin/*"), False),
        (dict(exe="sbin"), False),
        (dict(cmdline="nginx: worker*"), True),
        (dict(cmdline="*master*"), False),
        (dict(pid=100), True),
        (dict(pid=101), False),
        (dict(container_id="0123456789ab"), True),  # a prefix, as docker ps shows it
        (dict(container_id=CID), True),
        (dict(container_id="ffff"), False),
        (dict(cgroup="/system.slice/docker-*"), True),
        (dict(cgroup="/kubepods/*"), False),
        (dict(exe="nginx", pid=100), True),  # every fact named must match
        (dict(exe="nginx", pid=101), False),
    ],
)
def test_one_rule(rule, matches):
    assert rule_matches(DiscoveryRule(**rule), NGINX, no_ports) is matches


def test_port_rules_read_ports_only_when_the_other_facts_match():
    assert rule_matches(DiscoveryRule(port=443), NGINX, ports(80, 443))
    assert not rule_matches(DiscoveryRule(port=8443), NGINX, ports(80, 443))
    assert not rule_matches(DiscoveryRule(exe="redis-server", port=443), NGINX, no_ports)


def test_a_process_without_exe_matches_no_exe_rule():
    gone = ProcessFacts(5, "", "", (), None)
    assert not rule_matches(DiscoveryRule(exe="*"), gone, no_ports)


def test_decisions():
    rules = DiscoveryRules(
        include=[DiscoveryRule(exe="nginx"), DiscoveryRule(exe="python3*")],
        exclude=[DiscoveryRule(cmdline="*master*")],
        exclude_pids=[7],
    )
    assert rules.active and not rules.need_ports
    assert rules.decide(NGINX, no_ports) is Decision.TRACED
    master = ProcessFacts(101, "/usr/sbin/nginx", "nginx: master process", (), None)
    assert rules.decide(master, no_ports) is Decision.EXCLUDED  # exclude wins over include
    curl = ProcessFacts(102, "/usr/bin/curl", "curl https://x", (), None)
    assert rules.decide(curl, no_ports) is Decision.NOT_INCLUDED
    pinned = ProcessFacts(7, "/usr/sbin/nginx", "nginx", (), None)
    assert rules.decide(pinned, no_ports) is Decision.EXCLUDED


def test_no_rules_trace_everything_and_need_no_kernel_filter():
    rules = DiscoveryRules()
    assert not rules.active
    assert rules.decide(NGINX, no_ports) is Decision.TRACED
    assert DiscoveryRules(exclude=[DiscoveryRule(port=5432)]).need_ports
