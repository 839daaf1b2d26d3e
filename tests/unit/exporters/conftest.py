"""Fixtures shared by the exporter tests: a throwaway PKI made with the openssl binary."""

from __future__ import annotations

import pytest

from tests.unit.exporters.otlp_sinks import TlsFiles, make_pki


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> TlsFiles:
    return make_pki(tmp_path_factory.mktemp("pki"))
