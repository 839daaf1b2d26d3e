"""ProcessDiscovery over fake /proc trees: rules reach the kernel map, TLS libraries are attached
once per file, processes are followed through exec, exit, pid reuse and dlopen."""

from __future__ import annotations

import logging

import pytest

from discovery_support import (
    LIBC,
    LIBSSL,
    WRITE_ONLY_SSL,
    FakeClock,
    FakeLoader,
    FakeProc,
    FakeProcess,
    config,
)
from receiver.discovery import Decision, ProcessDiscovery
from receiver.discovery.procfs import ProcFs
from receiver.discovery.process_discovery import EXEC_SCAN_DELAY, EXEC_SECOND_LOOK
from receiver.discovery.resources import ProcessResources

AGENT = 4242
SSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"
LIBC_PATH = "/usr/lib/x86_64-linux-gnu/libc.so.6"


@pytest.fixture
def fake(tmp_path) -> FakeProc:
    f = FakeProc(tmp_path)
    f.file("host", SSL, LIBSSL)
    f.file("host", LIBC_PATH, LIBC)
    f.file("host", "/usr/sbin/nginx", LIBC)
    return f


def discovery(fake: FakeProc, cfg=None, clock=None, **kw) -> ProcessDiscovery:
    proc = ProcFs(str(fake.root))
    return ProcessDiscovery(
        cfg or config(), agent_pid=AGENT, procfs=proc, resources=ProcessResources(str(fake.root), host_name="h"),
        clock=clock or FakeClock(), **kw,
    )


def started(fake: FakeProc, cfg=None, loader=None, clock=None, **kw):
    d = discovery(fake, cfg, clock, **kw)
    loader = loader or FakeLoader()
    d.prepare(loader)
    d.start(loader, follow=False)
    return d, loader


def test_tls_library_attached_once_per_file_not_per_process(fake):
    fake.add(FakeProcess(10, exe="/usr/sbin/nginx", argv=("nginx",), maps=("/usr/sbin/nginx", LIBC_PATH, SSL)))
    fake.add(FakeProcess(11, exe="/usr/bin/curl", argv=("curl",), maps=(LIBC_PATH, SSL)))
    fake.add(FakeProcess(12, exe="/usr/bin/sleep", argv=("sleep", "9"), maps=(LIBC_PATH,)))
    d, loader = started(fake)
    ssl_real = f"{fake.root}/10/root{SSL}"  # through the process's root: another mount namespace
    assert loader.attached == [ssl_real]
    (lib,) = d.libraries.attached
    assert lib.pids == {10, 11} and lib.probes == 15
    assert d.summary.traced == 3 and d.summary.tls_processes == 2
    assert d.summary.libraries == (ssl_real,)
    assert dict(d.summary.services) == {"nginx": 1, "curl": 1, "sleep": 1}
    assert loader.map_calls == 0  # no rules: the kernel map is never touched


def test_a_container_with_its_own_copy_is_a_second_library(fake):
    fake.file("container", SSL, LIBSSL)
    fake.add(FakeProcess(10, maps=(SSL,)))
    fake.add(FakeProcess(20, maps=(SSL,), root="container"))
    fake.add(FakeProcess(21, maps=(SSL,), root="container"))
    d, loader = started(fake)
    assert sorted(loader.attached) == sorted([f"{fake.root}/10/root{SSL}", f"{fake.root}/20/root{SSL}"])
    assert sorted(sorted(lib.pids) for lib in d.libraries.attached) == [[10], [20, 21]]


def test_rules_reach_the_kernel_map_before_attach(fake):
    fake.add(FakeProcess(10, exe="/usr/sbin/nginx", argv=("nginx", "master")))
    fake.add(FakeProcess(11, exe="/usr/sbin/nginx", argv=("nginx", "worker")))
    fake.add(FakeProcess(12, exe="/usr/bin/bash", argv=("bash",)))
    fake.add(FakeProcess(2, exe="", argv=(), kernel_thread=True))
    fake.add(FakeProcess(AGENT, exe="/usr/bin/python3", argv=("python3", "-m", "receiver")))
    cfg = config(include=[dict(exe="nginx")], exclude=[dict(cmdline="* master")])
    d = discovery(fake, cfg)
    loader = FakeLoader()
    assert d.filters_pids
    d.prepare(loader)  # what BpfLoader.start(before_attach=...) calls
    assert loader.excluded == {10: "excluded", 12: "not_included"}
    assert d.processes[11].decision is Decision.TRACED
    assert d.processes[2].kernel_thread and d.processes[2].decision is None  # kernel threads are not judged
    assert AGENT not in d.processes  # the kernel excludes the agent by itself


def test_workers_forked_without_exec_share_their_parents_decision(fake):
    """nginx workers rewrite their command line ("nginx: worker process"): a rule naming the
    master's command line still covers them, at start and when they appear later."""
    clock = FakeClock()
    nginx = ("nginx: master process /usr/sbin/nginx -p /srv/shop",)
    fake.add(FakeProcess(100, exe="/usr/sbin/nginx", argv=nginx))
    fake.add(FakeProcess(101, exe="/usr/sbin/nginx", argv=("nginx: worker process",), ppid=100, image=100))
    fake.add(FakeProcess(102, exe="/usr/bin/logger", argv=("logger",), ppid=100))  # exec'd: its own facts
    d, loader = started(fake, config(include=[dict(cmdline="*-p /srv/shop*")]), clock=clock)
    assert {pid: d.processes[pid].decision for pid in (100, 101, 102)} == {
        100: Decision.TRACED, 101: Decision.TRACED, 102: Decision.NOT_INCLUDED}
    fake.add(FakeProcess(103, exe="/usr/sbin/nginx", argv=("nginx: worker process",), ppid=100, image=100))  # a respawn
    clock.now += 2.0
    d.step()
    assert d.processes[103].decision is Decision.TRACED and 103 not in loader.excluded
    assert loader.excluded == {102: "not_included"}


def test_a_child_that_exec_d_its_parent_s_executable_is_judged_by_its_own_facts(fake):
    """A Python process (a test runner, a supervisor) started ``python3 slow_server.py``
    before the agent: same executable as its parent, but exec gave it a new image.  It once
    inherited the parent's NOT_INCLUDED and the rule naming its command line never applied."""
    clock = FakeClock()
    py = "/usr/bin/python3.11"
    fake.add(FakeProcess(200, exe=py, argv=("python3", "-m", "pytest")))
    fake.add(FakeProcess(201, exe=py, argv=("python3", "/srv/slow_server.py", "8080"), ppid=200))
    fake.add(FakeProcess(202, exe=py, argv=("python3", "-m", "pytest"), ppid=200, image=200))  # forked: a worker
    fake.add(FakeProcess(203, exe=py, argv=("python3", "/srv/slow_server.py", "8081"), ppid=200, image=0))  # unknown
    d, loader = started(fake, config(include=[dict(cmdline="*slow_server.py*")]), clock=clock)
    assert {pid: d.processes[pid].decision for pid in (200, 201, 202, 203)} == {
        200: Decision.NOT_INCLUDED, 201: Decision.TRACED, 202: Decision.NOT_INCLUDED, 203: Decision.TRACED}
    assert loader.excluded == {200: "not_included", 202: "not_included"}
    # Found later by a rescan (its exec event missed): the same.
    fake.add(FakeProcess(204, exe=py, argv=("python3", "/srv/slow_server.py", "8082"), ppid=200))
    clock.now += 2.0
    d.step()
    assert d.processes[204].decision is Decision.TRACED and 204 not in loader.excluded


def test_exec_judges_the_new_program_and_looks_at_its_libraries_after_a_delay(fake):
    clock = FakeClock()
    fake.add(FakeProcess(30, exe="/usr/bin/bash", argv=("bash",), maps=(LIBC_PATH,)))
    d, loader = started(fake, config(include=[dict(exe="curl")]), clock=clock)
    assert loader.excluded == {30: "not_included"}
    # bash execs curl (same pid, same start time): traced now, libraries looked at shortly.
    fake.add(FakeProcess(30, exe="/usr/bin/curl", argv=("curl", "https://x"), maps=(LIBC_PATH, SSL)))
    d.on_proc_event(30, is_exec=True)
    d.step()
    assert 30 not in loader.excluded and d.processes[30].decision is Decision.TRACED
    assert loader.attached == []
    clock.now += EXEC_SCAN_DELAY
    d.step()
    assert loader.attached == [f"{fake.root}/30/root{SSL}"]
    # And back: curl execs something not included.
    fake.add(FakeProcess(30, exe="/usr/bin/true", argv=("true",)))
    d.on_proc_event(30, is_exec=True)
    d.step()
    assert loader.excluded == {30: "not_included"}
    assert d.libraries.attached[0].pids == set()


def test_an_interpreter_importing_ssl_after_exec_is_seen_at_the_second_look(fake):
    clock = FakeClock()
    d, loader = started(fake, clock=clock)
    fake.add(FakeProcess(31, exe="/usr/bin/python3", argv=("python3", "app.py"), maps=(LIBC_PATH,)))
    d.on_proc_event(31, is_exec=True)
    d.step()
    clock.now += EXEC_SCAN_DELAY
    d.step()  # the first look: no libssl yet
    assert loader.attached == []
    fake.add(FakeProcess(31, exe="/usr/bin/python3", argv=("python3", "app.py"), maps=(LIBC_PATH, SSL)))
    clock.now = 100.0 + EXEC_SECOND_LOOK
    d.step()  # well before the periodic rescan (2 s)
    assert loader.attached == [f"{fake.root}/31/root{SSL}"]


def test_exit_forgets_and_pid_reuse_is_a_new_process(fake):
    clock = FakeClock()
    fake.add(FakeProcess(40, exe="/usr/bin/sensitive", maps=(SSL,), start_time=500))
    d, loader = started(fake, config(exclude=[dict(exe="sensitive")]), clock=clock)
    assert loader.excluded == {40: "excluded"} and loader.attached == []  # excluded: not even its libraries
    d.on_proc_event(40, is_exec=False)
    fake.remove(40)
    d.step()
    assert 40 not in d.processes
    # The kernel dropped the entry at exit; discovery does not touch the map for an exit (the
    # pid may already belong to a forked child the kernel excluded).
    assert loader.excluded == {40: "excluded"}
    # The pid comes back as another program (fork, no exec event): found by the rescan.
    fake.add(FakeProcess(40, exe="/usr/bin/curl", maps=(SSL,), start_time=900))
    clock.now += 2.0
    d.step()
    assert d.processes[40].start_time == 900 and d.processes[40].decision is Decision.TRACED
    assert 40 not in loader.excluded
    assert loader.attached == [f"{fake.root}/40/root{SSL}"]


def test_an_exited_process_still_listed_is_not_excluded_again(fake):
    """Its exit was handled (the kernel dropped its entry); a rescan that still finds it in /proc
    (a zombie, not reaped yet) must not put it back: nothing would ever drop it again."""
    clock = FakeClock()
    fake.add(FakeProcess(42, exe="/usr/bin/sensitive", start_time=500))
    d, loader = started(fake, config(exclude=[dict(exe="sensitive")]), clock=clock)
    assert loader.excluded == {42: "excluded"}
    d.on_proc_event(42, is_exec=False)
    d.step()
    del loader.excluded[42]  # what sched_process_exit did
    fake.remove(42)
    fake.add(FakeProcess(42, exe="/usr/bin/sensitive", start_time=500, state="Z"))
    clock.now += 2.0
    d.step()
    assert 42 not in loader.excluded and 42 not in d.processes


def test_pid_reuse_seen_at_a_rescan_replaces_the_old_process(fake):
    clock = FakeClock()
    fake.add(FakeProcess(41, exe="/usr/bin/curl", maps=(SSL,), start_time=500))
    d, loader = started(fake, config(exclude=[dict(exe="sensitive")]), clock=clock)
    assert d.libraries.attached[0].pids == {41}
    fake.add(FakeProcess(41, exe="/usr/bin/sensitive", maps=(SSL,), start_time=501))  # exit + reuse, both missed
    clock.now += 2.0
    d.step()
    assert loader.excluded == {41: "excluded"}
    assert d.libraries.attached[0].pids == set()


def test_dlopen_is_found_when_the_mappings_grow(fake):
    clock = FakeClock()
    fake.add(FakeProcess(50, exe="/usr/bin/python3", argv=("python3", "app.py"), maps=(LIBC_PATH,), vsize=100))
    d, loader = started(fake, clock=clock)
    assert loader.attached == []
    clock.now += 2.0
    d.step()  # nothing changed: maps not read again
    fake.add(FakeProcess(50, exe="/usr/bin/python3", argv=("python3", "app.py"), maps=(LIBC_PATH, SSL), vsize=200))
    clock.now += 1.0
    d.step()  # not due yet
    assert loader.attached == []
    clock.now += 1.0
    d.step()
    assert loader.attached == [f"{fake.root}/50/root{SSL}"]
    assert d.summary.tls_processes == 1 and dict(d.summary.services) == {"app": 1}


def test_a_library_that_cannot_be_attached_is_reported_once(fake, caplog):
    fake.add(FakeProcess(60, maps=(SSL,)))
    fake.add(FakeProcess(61, maps=(SSL,)))
    caplog.set_level(logging.INFO, logger="receiver.discovery")
    d, loader = started(fake, loader=FakeLoader(fail=("libssl",)))
    clock = d._clock
    fake.add(FakeProcess(62, maps=(SSL,)))
    clock.now += 2.0
    d.step()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cannot be attached" in warnings[0].getMessage() and "Operation not permitted" in warnings[0].getMessage()
    assert d.attach_failures() == {"missing_symbol": 0, "attach_error": 1, "go_unsupported": 0}
    assert loader.attached == [] and d.summary.libraries == ()


def test_a_file_exporting_ssl_write_without_ssl_read_is_a_missing_symbol(fake):
    fake.file("host", "/opt/odd/bin/odd", WRITE_ONLY_SSL)
    fake.add(FakeProcess(70, exe="/opt/odd/bin/odd", maps=("/opt/odd/bin/odd",)))
    d, loader = started(fake)
    assert d.attach_failures() == {"missing_symbol": 1, "attach_error": 0, "go_unsupported": 0} and loader.attached == []


def test_port_rules_follow_sockets_at_every_rescan(fake):
    clock = FakeClock()
    fake.add(FakeProcess(80, exe="/usr/bin/python3", argv=("python3", "db.py"), sockets=(9001,)))
    d, loader = started(fake, config(exclude=[dict(port=5432)]), clock=clock)
    assert loader.excluded == {}
    fake.listen(9001, 5432)  # it starts listening on the excluded port
    clock.now += 2.0
    d.step()
    assert loader.excluded == {80: "excluded"}


def test_summary_is_logged_at_start_then_only_for_settled_changes_at_most_once_a_minute(fake, caplog):
    caplog.set_level(logging.INFO, logger="receiver.discovery")
    clock = FakeClock()
    fake.add(FakeProcess(90, exe="/usr/sbin/nginx", argv=("nginx",), maps=(SSL,)))
    d, _ = started(fake, clock=clock)

    def summaries():
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("discovery:")]

    def scans(seconds: float) -> None:
        for _ in range(int(seconds / 2.0)):
            clock.now += 2.0
            d.step()

    assert len(summaries()) == 1
    assert "instrumented 1 processes" in summaries()[0] and "1 TLS libraries" in summaries()[0]
    assert "services: nginx" in summaries()[0]
    fake.add(FakeProcess(91, exe="/usr/sbin/nginx", argv=("nginx",), maps=(SSL,)))
    scans(2)
    assert len(summaries()) == 1  # one more nginx: same services, same libraries
    # Short-lived processes, each seen by one scan: never a line.
    for pid in range(100, 120):
        fake.add(FakeProcess(pid, exe="/usr/bin/curl", argv=("curl", "http://127.0.0.1/")))
        scans(2)
        fake.remove(pid)
        scans(2)
    scans(20)
    assert len(summaries()) == 1, summaries()
    assert "curl" not in d.summary.line()
    # A service that stays is logged once it settled, and then not again while nothing changes.
    fake.add(FakeProcess(92, exe="/usr/bin/redis-server", argv=("redis-server",)))
    scans(8)
    assert len(summaries()) == 1  # not settled yet
    scans(4)
    assert len(summaries()) == 2 and "nginx x2" in summaries()[1] and "redis-server" in summaries()[1]
    scans(120)
    assert len(summaries()) == 2
    # Two changes within a minute: the second waits for the minute to be over.
    fake.remove(92)
    scans(12)
    assert len(summaries()) == 3 and "redis-server" not in summaries()[2]
    fake.add(FakeProcess(93, exe="/usr/bin/redis-server", argv=("redis-server",)))
    scans(12)
    assert len(summaries()) == 3
    scans(50)
    assert len(summaries()) == 4 and "redis-server" in summaries()[3]


def test_in_a_pod_event_pids_are_not_ours_and_trigger_a_listing(fake):
    clock = FakeClock()
    fake.add(FakeProcess(1, exe="/usr/bin/app", maps=(LIBC_PATH,)))
    d, loader = started(fake, clock=clock, events_in_our_pid_namespace=False)
    # The kernel reports pid 31337 (the node's numbering); our /proc has pid 7.
    fake.add(FakeProcess(7, exe="/usr/bin/curl", maps=(SSL,)))
    d.on_proc_event(31337, is_exec=True)
    d.step()
    assert 7 not in d.processes
    clock.now += EXEC_SCAN_DELAY
    d.step()
    assert 7 in d.processes and loader.attached == [f"{fake.root}/7/root{SSL}"]
    d.on_proc_event(7, is_exec=False)  # an exit with a node pid that happens to be ours: ignored
    d.step()
    assert 7 in d.processes


def test_tls_off_attaches_nothing(fake):
    fake.add(FakeProcess(10, maps=(SSL,)))
    d, loader = started(fake, config(tls=False))
    assert loader.attached == [] and d.attach_failures() == {"missing_symbol": 0, "attach_error": 0, "go_unsupported": 0}
    assert d.summary.libraries == ()


def test_shutdown_is_safe_without_start_and_twice(fake):
    d = discovery(fake)
    d.shutdown()
    d.shutdown()
