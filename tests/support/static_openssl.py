"""An HTTPS server with OpenSSL linked in statically (``static_openssl_server/server.c``, built
with gcc against Debian's libssl.a/libcrypto.a from libssl-dev)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

STATIC_OPENSSL_SERVER = Path(__file__).parent / "static_openssl_server" / "server.c"


def build_static_openssl_server(out: Path) -> Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None or not Path("/usr/lib/x86_64-linux-gnu/libssl.a").exists() and not list(
            Path("/usr/lib").glob("*/libssl.a")):
        raise RuntimeError("gcc and libssl-dev are needed: scripts/install-deps.sh test")
    proc = subprocess.run([cc, "-O2", "-o", str(out), str(STATIC_OPENSSL_SERVER), "-Wl,-Bstatic", "-lssl", "-lcrypto",
                           "-Wl,-Bdynamic", "-lpthread", "-ldl"], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"building the static OpenSSL server failed: {proc.stderr}")
    return out
