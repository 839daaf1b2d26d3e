"""TLS settings blocks shared by components: clients (exporters) and servers (Prometheus)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from receiver.configuration.checks import readable_file
from receiver.configuration.section import ConfigSection, setting


@dataclass(frozen=True, slots=True)
class TLSClientConfig(ConfigSection):
    insecure: bool = setting(False, "Send in plaintext, without TLS.")
    ca_file: str | None = setting(
        None, "CA certificate (PEM) that verifies the server; the system roots when unset.", check=readable_file
    )
    cert_file: str | None = setting(
        None, "Client certificate (PEM) for mutual TLS; set together with key_file.", check=readable_file
    )
    key_file: str | None = setting(
        None, "Client private key (PEM) for mutual TLS; set together with cert_file.", check=readable_file
    )
    insecure_skip_verify: bool = setting(
        False, "Use TLS but do not verify the server's certificate (testing only)."
    )

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.cert_file and not self.key_file:
            yield "cert_file", "cert_file needs key_file (mutual TLS uses both)"
        if self.key_file and not self.cert_file:
            yield "key_file", "key_file needs cert_file (mutual TLS uses both)"


@dataclass(frozen=True, slots=True)
class TLSServerConfig(ConfigSection):
    cert_file: str | None = setting(None, "Server certificate (PEM); required.", check=readable_file)
    key_file: str | None = setting(None, "Server private key (PEM); required.", check=readable_file)
    client_ca_file: str | None = setting(
        None, "CA certificate (PEM) that clients must present a certificate from (mutual TLS).",
        check=readable_file,
    )

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        for name in ("cert_file", "key_file"):
            if not getattr(self, name):
                yield name, f"{name} is required when tls is configured"
