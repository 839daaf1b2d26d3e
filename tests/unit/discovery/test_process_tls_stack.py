"""The TLS stack of a process from the TLS files it maps, and how it is reported."""

from __future__ import annotations

from receiver.discovery.tls_libraries import TlsLibrary
from receiver.discovery.tls_stacks import format_tls_table, process_tls, summary_lines

LIBSSL = TlsLibrary((1, 2), "/usr/lib/x86_64-linux-gnu/libssl.so.3", True, 15)
STATIC = TlsLibrary((1, 3), "/srv/bin/tls-server", True, 15)
GO = TlsLibrary((1, 4), "/srv/bin/api", True, 17, kind="go", version="go1.22.1")
GO_OLD = TlsLibrary((1, 5), "/srv/bin/legacy", False, error="Go go1.16.3 crypto/tls cannot be followed: old_abi",
                    reason="go_unsupported", kind="go", version="go1.16.3")


def test_each_stack_is_named_from_what_the_process_maps():
    assert process_tls(1, "nginx", "/usr/sbin/nginx", [LIBSSL]).stack == "openssl (shared)"
    assert process_tls(2, "tls-server", "/srv/bin/tls-server", [STATIC]).stack == "openssl (static)"
    # In another mount namespace the file is reached through the process's root.
    moved = TlsLibrary((1, 3), "/proc/9/root/srv/bin/tls-server", True, 15)
    assert process_tls(9, "tls-server", "/srv/bin/tls-server", [moved]).stack == "openssl (static)"
    go = process_tls(3, "api", "/srv/bin/api", [GO])
    assert (go.stack, go.covered, go.detail) == ("go crypto/tls", True, "go1.22.1")
    assert process_tls(4, "sleep", "/usr/bin/sleep", []).stack == "none"
    assert process_tls(5, "x", "/x", [], maps_readable=False).stack == "unknown"


def test_a_stack_that_is_not_covered_says_why():
    legacy = process_tls(6, "legacy", "/srv/bin/legacy", [GO_OLD])
    assert not legacy.covered
    assert legacy.line() == ("pid 6 legacy: go crypto/tls /srv/bin/legacy: plaintext NOT covered "
                             "(Go go1.16.3 crypto/tls cannot be followed: old_abi)")


def test_the_log_lists_processes_with_tls_first_the_uncovered_and_counts_the_rest():
    items = [process_tls(3, "api", "/srv/bin/api", [GO]), process_tls(6, "legacy", "/srv/bin/legacy", [GO_OLD]),
             process_tls(4, "sleep", "/usr/bin/sleep", []), process_tls(7, "cat", "/usr/bin/cat", [])]
    lines = summary_lines(items)
    assert lines[0].startswith("pid 6 legacy") and "NOT covered" in lines[0]
    assert lines[1] == "pid 3 api: go crypto/tls go1.22.1 /srv/bin/api: plaintext covered"
    assert lines[2] == "2 traced processes with no TLS library found (their TLS, if any, is not covered)"
    assert len(summary_lines(items * 20, limit=5)) == 7
    table = format_tls_table(items).splitlines()
    assert table[0].split() == ["process", "tls", "stack", "plaintext"]
    assert table[-1].split() == ["7", "cat", "none", "-"]
