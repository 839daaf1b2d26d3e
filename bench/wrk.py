"""wrk (closed loop, keep-alive) for the saturated runs.

wrk is started behind ``sh -c 'read _; exec wrk ...'``: the pid is known (and handed to the
agent's ``exclude_pids``) before a single request is sent, and stays wrk's pid after ``exec``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from bench.procstat import die_with_parent

_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_TOTAL = re.compile(r"(\d+) requests in ([0-9.]+)(m?s|m)\b")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKERR = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class WrkResult:
    requests: int
    rps: float
    non_2xx: int
    socket_errors: int
    raw: str


def wrk_version() -> str:
    exe = shutil.which("wrk")
    if not exe:
        return "not installed"
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=10)
    return (out.stdout + out.stderr).splitlines()[0].strip() if (out.stdout + out.stderr) else "wrk"


class Wrk:
    def __init__(self, url: str, seconds: float, threads: int = 1, connections: int = 32) -> None:
        self.seconds = seconds
        cmd = f"read _ && exec wrk -t{threads} -c{connections} -d{max(1, round(seconds))}s --timeout 5s {url}"
        self.proc = subprocess.Popen(["sh", "-c", cmd], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, preexec_fn=die_with_parent)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def run(self) -> WrkResult:
        try:
            out, _ = self.proc.communicate("go\n", timeout=self.seconds + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise RuntimeError(f"wrk did not finish: {out[-1000:]}") from None
        rps = _RPS.search(out)
        total = _TOTAL.search(out)
        if not rps or not total:
            raise RuntimeError(f"cannot read wrk's output:\n{out}")
        non2xx = _NON2XX.search(out)
        sockerr = _SOCKERR.search(out)
        return WrkResult(
            requests=int(total.group(1)),
            rps=float(rps.group(1)),
            non_2xx=int(non2xx.group(1)) if non2xx else 0,
            socket_errors=sum(int(x) for x in sockerr.groups()) if sockerr else 0,
            raw=out,
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
