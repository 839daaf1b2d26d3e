"""Fixtures shared by the exporter tests: a throwaway PKI made with the openssl binary."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: str
    server_cert: str  # for localhost / 127.0.0.1, signed by ca_cert
    server_key: str
    client_cert: str  # signed by ca_cert
    client_key: str


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _signed(name: str, cn: str, d: Path, ext: str) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    (d / f"{name}.ext").write_text(ext)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", f"{name}.crt", "-days", "2", "-sha256", "-extfile", f"{name}.ext", cwd=d,
    )


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> TlsFiles:
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=test-ca", cwd=d,
    )
    _signed("server", "localhost", d, "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _signed("client", "test-client", d, "extendedKeyUsage=clientAuth\n")
    return TlsFiles(
        str(d / "ca.crt"), str(d / "server.crt"), str(d / "server.key"), str(d / "client.crt"), str(d / "client.key")
    )
