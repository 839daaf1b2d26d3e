"""The agent as users run it: `ebpf-receiver run --config FILE` in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.ports import wait_until

READY_MARK = "running (pid"


def agent_command() -> list[str]:
    exe = Path(sys.executable).with_name("ebpf-receiver")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "receiver.cli"]


class AgentProcess:
    def __init__(
        self, workdir: Path, config_text: str, extra_args: tuple[str, ...] = (), prefix: tuple[str, ...] = ()
    ) -> None:
        """``prefix``: a command the agent runs under (``setpriv ...`` to drop privileges)."""
        self.workdir = Path(workdir)
        self._prefix = prefix
        self.config_path = self.workdir / "agent.yaml"
        self.config_path.write_text(config_text)
        self.stdout_path = self.workdir / "agent.stdout"
        self.stderr_path = self.workdir / "agent.stderr"
        self._extra = extra_args
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "AgentProcess":
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [*self._prefix, *agent_command(), "run", "--config", str(self.config_path), *self._extra],
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
        )

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited with {self.proc.returncode}:\n{self.stderr()}")
            return READY_MARK in self.stderr()

        wait_until(ready, timeout=timeout, what="agent start")
        return self

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL after timeout, then raises)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
                raise RuntimeError(f"agent ignored SIGTERM for {timeout}s:\n{self.stderr()}") from None
        rc = self.proc.returncode
        self._out.close()
        self._err.close()
        self.proc = None
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def wait_seconds(s: float) -> None:
    time.sleep(s)
