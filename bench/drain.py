"""The agent's kernel side without its user space: ``receiver.bpf.o`` loaded with the agent's
knobs and the ring buffer drained (records copied out, then dropped) every poll interval.

Between the floor (empty programs) and the agent, this mode shows what the real programs and the
ring-buffer transport cost the traced processes, apart from the agent's user-space work competing
for the CPU.  Prints ``ready``; stops on stdin EOF or SIGTERM/SIGINT.

    python -m bench.drain --exclude-pid 1234
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    from receiver.bpf.loader import BpfLoader, LoaderKnobs, default_object_path
    from receiver.capture.ringbuf import RingBufferReader
    from receiver.receivers.ebpf.config import EbpfReceiverConfig

    ap = argparse.ArgumentParser(prog="python -m bench.drain", description=__doc__.split("\n\n")[0])
    ap.add_argument("--exclude-pid", type=int, action="append", default=[], help="pids not traced")
    ap.add_argument("--poll-interval-ms", type=int, default=round(EbpfReceiverConfig().poll_interval * 1000),
                    help="sleep between drains (default: the agent's receivers.ebpf.poll_interval)")
    args = ap.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # The agent's kernel side as it runs by default: HTTP/1 paired in the kernel.
    knobs = LoaderKnobs(agent_tgid=os.getpid(), excluded_pids=tuple(args.exclude_pid), http_pairing=True)
    loader = BpfLoader(default_object_path(), knobs)
    loader.start()
    reader = RingBufferReader(loader)
    records = 0
    try:
        print("ready", flush=True)
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        while not stop.wait(args.poll_interval_ms / 1000):
            records += len(reader.drain())
    finally:
        reader.close()
        loader.close()
    print(f"records {records}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
