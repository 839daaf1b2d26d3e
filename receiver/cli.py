"""``ebpf-receiver``: run | validate | check | status.

Exit codes: 0 ok; 1 the kernel/privileges do not allow running (check) or a runtime failure;
2 a configuration error (one message naming the key and file:line), an address a component
cannot listen on (one message naming the component and the address: a port already taken), or
a capability ``run`` lacks (one message naming it: CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH,
CAP_NET_ADMIN for tc; :mod:`receiver.bpf.privileges`).

Once up, ``run`` logs one line naming every URL it serves and every exporter's target
(:mod:`receiver.ready_line`).

``run`` stops on SIGTERM or SIGINT: capture stops, processors and sending queues flush for at
most ``service.shutdown_timeout`` (what cannot be sent is counted and logged, or kept on disk
by a persistent queue), then exit 0.  A second signal ends the process at once (the signal's
default action); a shutdown stuck past the timeout plus :data:`SHUTDOWN_GRACE` exits with 1.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
import threading

from receiver import __version__

log = logging.getLogger("ebpf-receiver")

# Seconds past service.shutdown_timeout before a stuck shutdown is cut short.  Generous: releasing
# the kernel objects comes on top of the timeout and takes seconds on a busy machine.
SHUTDOWN_GRACE = 15.0

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ebpf-receiver", description="eBPF auto-instrumentation agent (OTLP out).")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="capture and export (needs root or CAP_BPF+CAP_PERFMON)")
    run.add_argument("--config", action="append", metavar="FILE", help="config file; repeat to merge (later wins)")
    run.add_argument("--dry-run", action="store_true", help="validate, print the effective config (secrets redacted), exit")
    val = sub.add_parser("validate", help="validate the configuration without touching the kernel")
    val.add_argument("--config", action="append", metavar="FILE")
    chk = sub.add_parser("check", help="can the agent run here? (kernel, BTF, tracefs, capabilities...)")
    chk.add_argument("--config", action="append", metavar="FILE",
                     help="also list, per process this configuration traces, its TLS stack and whether its "
                          "plaintext is covered")
    st = sub.add_parser("status", help="the running agent's traced processes as a table (from its zpages extension)")
    st.add_argument("--endpoint", metavar="HOST:PORT",
                    help="the zpages endpoint (default: the one --config names, else localhost:55679)")
    st.add_argument("--config", action="append", metavar="FILE", help="the running agent's config, to find its zpages")
    st.add_argument("--json", action="store_true", help="print the JSON the agent answers instead of a table")
    st.add_argument("--all", action="store_true", help="every traced process, also those without traffic")
    return p


def _load(paths):
    from receiver.config import ConfigError, load_config

    try:
        return load_config(paths)
    except ConfigError as err:
        print(f"ebpf-receiver: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_validate(args) -> int:
    _load(args.config)
    print("configuration is valid", file=sys.stderr)
    return 0


def cmd_check(args) -> int:
    from receiver.bpf.check import format_table, run_checks

    results = run_checks()
    print(format_table(results))
    if getattr(args, "config", None):
        from receiver.discovery.tls_check import tls_check
        from receiver.discovery.tls_stacks import format_tls_table

        config = _load(args.config)
        uprobes = all(r.ok for r in results if r.name == "uprobes")
        for name, receiver in config.receivers.items():
            discovery = getattr(receiver, "discovery", None)
            if discovery is None:
                continue
            print(f"\nTLS stacks of the processes receivers.{name} traces:")
            print(format_tls_table(tls_check(discovery, uprobes=uprobes)))
    return 0 if all(r.ok for r in results if r.required) else 1


def cmd_status(args) -> int:
    """Fetch /debug/servicez?format=json from the agent's zpages extension and print a table."""
    import shutil
    import urllib.error
    import urllib.request

    from receiver.extensions.zpages.config import ZPagesExtensionConfig, bind_address
    from receiver.extensions.zpages.table import format_servicez

    endpoint = args.endpoint
    if endpoint is None and args.config:
        config = _load(args.config)
        found = [c for c in config.extensions.values() if isinstance(c, ZPagesExtensionConfig)]
        if not found:
            print("ebpf-receiver: status: the configuration has no zpages extension "
                  "(add `extensions: {zpages: {}}` and name it in service.extensions)", file=sys.stderr)
            return 2
        endpoint = found[0].endpoint
    host, port = bind_address(endpoint or ZPagesExtensionConfig().endpoint)
    host = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/debug/servicez?format=json{'&all=1' if args.all else ''}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError) as err:
        print(f"ebpf-receiver: status: cannot reach the agent's zpages at {url}: {getattr(err, 'reason', err)} "
              "(is the agent running with the zpages extension? --endpoint names another address)", file=sys.stderr)
        return 1
    if args.json:
        print(text)
        return 0
    data = json.loads(text)
    width = shutil.get_terminal_size((200, 24)).columns if sys.stdout.isatty() else None
    print(format_servicez(data["processes"], width))
    return 0


def _yield_to_workloads(config) -> None:
    """The agent's threads in the scheduling class its eBPF receiver asks for (SCHED_IDLE by
    default: it never preempts the requests it traces).  Set before any thread is started, so
    every thread inherits it; this process only (not the library use of the components)."""
    from receiver.receivers.ebpf.overload import apply_scheduling

    policies = {getattr(cfg, "scheduling", "normal") for cfg in config.receivers.values()}
    policy = "idle" if "idle" in policies else "batch" if "batch" in policies else "normal"
    n = apply_scheduling(policy)
    if n:
        log.debug("%d threads in %s scheduling", n, policy)


def cmd_run(args) -> int:
    from receiver.config import redacted_dict

    config = _load(args.config)
    logging.basicConfig(
        level=_LEVELS.get(config.service.telemetry.logs.level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    _keep_secrets_out_of_the_log(config)
    if args.dry_run:
        print(json.dumps(redacted_dict(config), indent=2, default=str))
        return 0

    from receiver.bpf.loader import BpfLoadError
    from receiver.bpf.privileges import MissingCapabilityError
    from receiver.pipeline import Agent, ComponentStartError
    from receiver.ready_line import ready_line

    stop = threading.Event()

    def _on_signal(signum, _frame):
        # A second signal takes the default action — the kernel ends the process at once, even
        # while the main thread is inside a long C call (kernel objects die with us).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    _yield_to_workloads(config)

    agent = Agent(config)
    try:
        agent.start()
        tune_garbage_collector()
    except ComponentStartError as err:
        # One line, like a configuration error: the component, the address (or the missing
        # capability), what to do.
        print(f"ebpf-receiver: {err}", file=sys.stderr)
        agent.shutdown(timeout=2.0)
        return 2 if err.listen or isinstance(err.cause, MissingCapabilityError) else 1
    except MissingCapabilityError as err:
        print(f"ebpf-receiver: {err}", file=sys.stderr)
        agent.shutdown(timeout=2.0)
        return 2
    except BpfLoadError as err:
        log.error("%s", err)
        agent.shutdown(timeout=2.0)
        return 1
    except OSError as err:
        log.error("start failed: %s", err)
        agent.shutdown(timeout=2.0)
        return 1
    log.info("%s", ready_line(agent, __version__, os.getpid()))
    try:
        while not stop.wait(1.0):
            pass
    finally:
        timeout = config.service.shutdown_timeout
        log.info("shutting down (up to %gs; a second SIGTERM or SIGINT exits at once)", timeout)
        _start_watchdog(timeout + SHUTDOWN_GRACE)
        agent.shutdown()
    log.info("stopped")
    return 0


# Young-generation collections every this many allocations (CPython's default is 700).
GC_YOUNG_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """The hot path allocates a few short-lived objects per event and keeps almost none: the
    cycle collector finds nothing in them.  What exists once the agent is up (modules, loader,
    tables) is moved out of the collector's view, and young collections run less often: about
    4 % less CPU per traced request (bench/replay.py), with memory still bounded because the
    objects are freed by reference counting, not by the collector."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


# Libraries that log the data they decode at debug level: the agent decodes other processes'
# traffic (HTTP/2 headers carry credentials), so these never log below WARNING.
_PAYLOAD_LOGGERS = ("hpack",)


class _RedactSecrets(logging.Filter):
    """Replaces secret header values (and their longer words) in every log record."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        from receiver.configuration.secrets import redact

        super().__init__()
        self._redact = lambda text: redact(text, secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self._redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        return True


def _keep_secrets_out_of_the_log(config) -> None:
    """Secret header values never reach stderr, whoever logs them (a library, a backend's
    error echoed back); libraries that log decoded traffic stay quiet."""
    from receiver.configuration.secrets import secret_fragments

    for name in _PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    values = [v for exporter in config.exporters.values() for v in getattr(exporter, "headers", {}).values()]
    secrets = secret_fragments(values)
    if secrets:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_RedactSecrets(secrets))


def _start_watchdog(seconds: float) -> None:
    """Exit with 1 if shutdown is still running after ``seconds`` (a stuck component)."""

    def expired() -> None:
        os.write(2, f"ebpf-receiver: shutdown still running after {seconds:g}s: exiting\n".encode())
        os._exit(1)

    timer = threading.Timer(seconds, expired)
    timer.daemon = True
    timer.start()


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    handler = {"run": cmd_run, "validate": cmd_validate, "check": cmd_check, "status": cmd_status}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
