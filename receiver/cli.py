"""``ebpf-receiver``: run | validate | check.

Exit codes: 0 ok; 1 the kernel/privileges do not allow running (check) or a runtime failure;
2 a configuration error (one message naming the key and file:line).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading

from receiver import __version__

log = logging.getLogger("ebpf-receiver")

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
    sub.add_parser("check", help="can the agent run here? (kernel, BTF, tracefs, capabilities...)")
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
    return 0 if all(r.ok for r in results if r.required) else 1


def cmd_run(args) -> int:
    from receiver.config import redacted_dict

    config = _load(args.config)
    logging.basicConfig(
        level=_LEVELS.get(config.service.telemetry.logs.level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.dry_run:
        print(json.dumps(redacted_dict(config), indent=2, default=str))
        return 0

    from receiver.bpf.loader import BpfLoadError
    from receiver.pipeline import Agent

    stop = threading.Event()
    signals_seen = []

    def _on_signal(signum, _frame):
        signals_seen.append(signum)
        if len(signals_seen) > 1:
            os._exit(128 + signum)  # second signal: leave at once (kernel objects die with us)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    agent = Agent(config)
    try:
        agent.start()
    except BpfLoadError as err:
        log.error("%s", err)
        agent.shutdown(timeout=2.0)
        return 1
    except OSError as err:
        log.error("start failed: %s", err)
        agent.shutdown(timeout=2.0)
        return 1
    log.info(
        "ebpf-receiver %s running (pid %d); pipelines: %s",
        __version__,
        os.getpid(),
        ", ".join(config.service.pipelines),
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        log.info("shutting down")
        agent.shutdown()
    log.info("stopped")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    handler = {"run": cmd_run, "validate": cmd_validate, "check": cmd_check}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
