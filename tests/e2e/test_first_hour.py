"""The first hour, as the README tells it: the agent with config/default.yaml (its Prometheus port
moved to a free one), real nginx, real curl.

* What the README shows — the ready line, the per-span lines of the debug exporter, the metrics
  endpoint — has the shape of what the agent prints (the ``sample=`` blocks of README.md).
* Ten short-lived curl runs are one client series and one ``target_info`` row (not ten), and
  the exposition passes promtool.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from receiver.discovery.resources import service_instance_id
from tests.support.agent import AgentProcess
from tests.support.ports import free_port, wait_until
from tests.support.prometheus import scrape
from tests.support.servers import NginxServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "docs"))
from doc_blocks import sample_block  # noqa: E402  (the README's blocks, parsed as the docs tests do)

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
CURL_RUNS = 10


@pytest.fixture(scope="module")
def default_agent(tmp_path_factory):
    """``ebpf-receiver run --config config/default.yaml --config <free Prometheus port>``."""
    workdir = tmp_path_factory.mktemp("first-hour")
    prom_port = free_port()
    override = workdir / "port.yaml"
    override.write_text(f"exporters:\n  prometheus:\n    endpoint: 127.0.0.1:{prom_port}\n")
    agent = AgentProcess(workdir, (REPO / "config" / "default.yaml").read_text(), ("--config", str(override)))
    agent.start()
    try:
        yield agent, prom_port
    finally:
        assert agent.stop() == 0


def curl(url: str) -> None:
    subprocess.run(["curl", "-s", "-o", "/dev/null", url], check=True, timeout=10)


def series(text: str, prefix: str, *needles: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix) and all(n in line for n in needles)]


def labels(line: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', line[line.index("{"):line.rindex("}")]))


# -- ten curls, one service instance ----------------------------------------------------------------


def test_ten_short_lived_curls_are_one_client_series_and_one_target_info_row(default_agent, tmp_path):
    agent, prom_port = default_agent
    with NginxServer(tmp_path) as nginx:
        for _ in range(CURL_RUNS):
            curl(f"{nginx.url}/")
        ours = f'server_port="{nginx.port}"'

        def all_counted():
            text = scrape(prom_port)
            found = series(text, "http_client_request_duration_seconds_count{", ours)
            return text if sum(float(line.rsplit(" ", 1)[1]) for line in found) >= CURL_RUNS else None

        text = wait_until(all_counted, timeout=20, what=f"the {CURL_RUNS} curl requests in the client histogram")
    (client,) = series(text, "http_client_request_duration_seconds_count{", ours)  # one series, not ten
    assert client.endswith(f" {CURL_RUNS:.1f}"), client
    identity = labels(client)
    assert identity["job"] == "curl"
    assert identity["instance"] == service_instance_id(socket.gethostname(), "", "", "curl", "curl")
    rows = series(text, "target_info{", 'job="curl"')
    assert len(rows) == 1, rows  # one row for the curl service instance, whatever its pids
    assert labels(rows[0])["instance"] == identity["instance"]
    assert "process_pid" not in rows[0] and "process_executable" not in rows[0]
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


# -- the README's first minute ----------------------------------------------------------------------


def normalized_span_line(line: str) -> str:
    line = re.sub(r"\b[0-9a-f]{32}\b", "<trace>", line)
    line = re.sub(r"\b[0-9a-f]{16}\b", "<span>", line)
    line = re.sub(r"\b\d+\.\d{3}ms\b", "<ms>", line)
    line = re.sub(r"(port|body\.size)=\d+", r"\1=<n>", line)
    line = re.sub(r"#spans: \d+", "#spans: <n>", line)
    return re.sub(r"curl/[\d.]+", "curl/<v>", line)


def sample_pattern(sample_line: str) -> re.Pattern[str]:
    """A sample line as a pattern: `...` stands for any attributes."""
    pieces = normalized_span_line(sample_line).split(" ... ")
    body = " .* ".join(re.escape(p) for p in pieces)
    return re.compile(body[:-len(re.escape(" ..."))] + " .*" if sample_line.endswith(" ...") else body)


def span_fields(line: str) -> tuple[str, str, str]:
    """(trace id, span id, parent) of a debug exporter span line."""
    m = re.search(r" ([0-9a-f]{32}) ([0-9a-f]{16}) parent=(\S+) ", line)
    return m.group(1), m.group(2), m.group(3)


def test_the_ready_line_is_the_readme_s(default_agent):
    agent, prom_port = default_agent
    (real,) = [line for line in agent.stderr().splitlines() if "running (pid" in line]
    sample = sample_block("ready").text.strip()

    def shape(line: str) -> str:
        line = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", "<time>", line)
        line = re.sub(r"\(pid \d+\)", "(pid <pid>)", line)
        return re.sub(r"127\.0\.0\.1:\d+/", "127.0.0.1:<port>/", line)

    assert shape(real) == shape(sample)
    assert f"http://127.0.0.1:{prom_port}/metrics (prometheus)" in real


def test_the_span_lines_are_the_readme_s(default_agent, tmp_path):
    agent, _ = default_agent
    summary, client_sample, server_sample = sample_block("spans").text.strip().splitlines()
    client_rx, server_rx = sample_pattern(client_sample), sample_pattern(server_sample)
    with NginxServer(tmp_path) as nginx:
        curl(f"{nginx.url}/")
        ours = f"server.port={nginx.port} "

        def linked_pair():
            lines = [line for line in agent.stderr().splitlines() if ours in line]
            clients = [line for line in lines if client_rx.fullmatch(normalized_span_line(line))]
            servers = [line for line in lines if server_rx.fullmatch(normalized_span_line(line))]
            for c in clients:
                for s in servers:
                    ct, cs, _ = span_fields(c)
                    st, _, parent = span_fields(s)
                    if st == ct and parent == cs:  # as in the sample: one trace, the server under the client
                        return c, s
            return None

        wait_until(linked_pair, timeout=20, what="the README's client and server span lines")
    assert span_fields(client_sample)[2] == "-" and span_fields(server_sample)[2] == span_fields(client_sample)[1]
    summaries = {normalized_span_line(line) for line in agent.stderr().splitlines() if line.startswith("TracesExporter")}
    assert normalized_span_line(summary) in summaries


def test_the_metrics_are_the_readme_s(default_agent, tmp_path):
    agent, prom_port = default_agent
    samples = sample_block("metrics").text.strip().splitlines()
    with NginxServer(tmp_path) as nginx:
        curl(f"{nginx.url}/")
        ours = f'server_port="{nginx.port}"'
        text = wait_until(
            lambda: (t := scrape(prom_port)) and series(t, "http_client_request_duration_seconds_count{", ours) and t,
            timeout=20, what="the client series of our curl",
        )
    any_value = {"instance", "host_name", "server_port"}  # this run's: a UUID, this host, nginx's port
    for sample in samples:
        name = sample.split("{", 1)[0]
        wanted = labels(sample)
        candidates = [line for line in text.splitlines() if line.startswith(name + "{")]
        if name.startswith("http_client"):
            candidates = [line for line in candidates if ours in line]

        def fits(line: str) -> bool:
            real = labels(line)
            exact = all(real.get(k) == v for k, v in wanted.items() if k not in any_value)
            present = all(k in real for k in wanted)
            complete = "...}" in sample or set(real) == set(wanted)
            return exact and present and complete and (not real.get("instance") or UUID.match(real["instance"]))

        assert any(fits(line) for line in candidates), f"README: {sample}\nnot like any of:\n" + "\n".join(candidates)
