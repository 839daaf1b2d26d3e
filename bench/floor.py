"""The *floor*: the agent's tracepoints attached with empty programs, and nothing else.

Loads ``receiver_floor.bpf.o`` (built by ``make -C bpf`` next to ``receiver.bpf.o``: the same
tracepoints and program names, every program ``return 0``) with the agent's own loader, prints
``ready`` and sleeps until stdin closes or SIGTERM/SIGINT arrives.  It reads no ring buffer:
whatever it costs the traced processes is the cost of the hook design itself.

    python -m bench.floor
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def main() -> int:
    from receiver.bpf.loader import BpfLoader, LoaderKnobs, default_object_path

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    loader = BpfLoader(default_object_path("receiver_floor.bpf.o"), LoaderKnobs(agent_tgid=os.getpid()))
    loader.start()
    try:
        print(f"ready {loader.link_count} links", flush=True)
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        stop.wait()
    finally:
        loader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
