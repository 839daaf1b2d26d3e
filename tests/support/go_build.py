"""Go programs of the tests, built from source with the system's Go toolchain (Debian's
``golang-go``) in GOPATH mode, offline: the standard library, and Debian's Go library sources
(``/usr/share/gocode``: gRPC-Go from ``golang-google-grpc-dev``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

GO_SOURCES = Path(__file__).parent
GO_TLS_SERVER = GO_SOURCES / "go_tls_server"
GO_GRPC_TLS_SERVER = GO_SOURCES / "go_grpc_tls_server"
DEBIAN_GOPATH = Path("/usr/share/gocode")


def go_build(source_dir: Path, out: Path, workdir: Path, strip: bool = False) -> Path:
    """``go build`` of the package in source_dir into out (``strip``: without symbols and DWARF,
    as release builds often are)."""
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("the Go toolchain is not installed: apt-get install golang-go (scripts/install-deps.sh)")
    env = {**os.environ, "GOCACHE": str(workdir / "go-cache"), "GOPATH": os.pathsep.join([str(workdir / "gopath"), str(DEBIAN_GOPATH)]),
           "HOME": str(workdir), "GO111MODULE": "off", "GOFLAGS": "", "GOPROXY": "off", "CGO_ENABLED": "0"}
    cmd = [go, "build", "-o", str(out)]
    if strip:
        cmd += ["-ldflags=-s -w"]
    proc = subprocess.run([*cmd, "."], cwd=source_dir, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"go build failed: {proc.stderr}")
    return out
