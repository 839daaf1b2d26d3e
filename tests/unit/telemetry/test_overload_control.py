"""OverloadControl: the kernel's overload aggregates land in the RED histograms with the attributes
they keep, and the CPU budget (or the pipeline refusing items) moves the shed level up at once and
down after five calm seconds."""

from __future__ import annotations

from receiver.capture.overload import HttpAggregate, HttpAggregateKey
from receiver.model.telemetry import Resource
from receiver.receivers.ebpf.overload import OverloadControl
from receiver.telemetry.red_metrics import DURATION_BUCKETS, RedMetrics

RES = Resource.from_dict({"service.name": "nginx"})


class FakeAggregates:
    def __init__(self) -> None:
        self.batches: list[list[HttpAggregate]] = []
        self.levels: list[int] = []

    def drain(self):
        return self.batches.pop(0) if self.batches else []

    def set_shed_level(self, level: int) -> None:
        self.levels.append(level)


def agg(role: int, status: int, count: int, buckets=None, method="GET", addr="", port=8080) -> HttpAggregate:
    b = buckets or [count] + [0] * len(DURATION_BUCKETS)
    return HttpAggregate(HttpAggregateKey(7, role, method, status, "1.1", False, port, addr), count, count * 1000,
                         1000, 1000, tuple(b))


def control(aggs: FakeAggregates, red, budget=0.5, cpu=None, clock=None, backpressure=None, node=0.0,
            node_cpu=None, transactions=None) -> OverloadControl:
    return OverloadControl(aggs, red, lambda pid: RES, budget, lambda ns: ns, (0, 1, 2),
                           cpu_time=cpu or (lambda: 0.0), clock=clock or (lambda: 0.0), backpressure=backpressure,
                           node_busy_threshold=node, node_cpu=node_cpu, transactions=transactions)


def test_aggregates_become_red_series_without_route():
    red, aggs = RedMetrics(), FakeAggregates()
    aggs.batches.append([agg(2, 200, 5), agg(2, 503, 2), agg(1, 0, 1, addr="10.0.0.9", port=443)])
    c = control(aggs, red)
    c.drain(10**9)
    points = {(m.name, p.attributes): p for m in red.collect() for p in m.points}
    ok = points[("http.server.request.duration", (
        ("http.request.method", "GET"), ("http.response.status_code", 200), ("network.protocol.version", "1.1"),
        ("url.scheme", "http")))]
    assert (ok.count, ok.bucket_counts[0], ok.exemplars) == (5, 5, [])
    err = [p for (n, a), p in points.items() if dict(a).get("http.response.status_code") == 503]
    assert [dict(p.attributes)["error.type"] for p in err] == ["503"] and err[0].count == 2
    client = [p for (n, a), p in points.items() if n == "http.client.request.duration"]
    assert dict(client[0].attributes) == {"error.type": "no_response", "http.request.method": "GET",
                                          "network.protocol.version": "1.1", "server.address": "10.0.0.9",
                                          "server.port": 443, "url.scheme": "http"}
    assert c.aggregated == 8


def test_the_budget_sheds_at_once_and_recovers_slowly():
    aggs = FakeAggregates()
    t, cpu = [0.0], [0.0]
    c = control(aggs, RedMetrics(), budget=0.5, cpu=lambda: cpu[0], clock=lambda: t[0])

    def second(cores: float) -> None:
        t[0] += 1.0
        cpu[0] += cores
        c.tick(int(t[0] * 1e9))

    second(0.9)
    assert aggs.levels == [1]  # over budget: successes aggregated
    second(0.8)
    assert aggs.levels == [1, 2]  # still over: everything
    second(0.9)
    assert aggs.levels == [1, 2]  # the top level
    for _ in range(5):
        second(0.1)
    assert aggs.levels == [1, 2]  # calm, but not five seconds yet
    second(0.1)
    assert aggs.levels == [1, 2, 1]
    second(0.4)  # between 70 % and 100 % of the budget: no change, calm broken
    for _ in range(5):
        second(0.1)
    assert aggs.levels == [1, 2, 1]
    second(0.1)
    assert aggs.levels == [1, 2, 1, 0]


def test_no_budget_never_sheds():
    aggs = FakeAggregates()
    t, cpu = [0.0], [0.0]
    c = control(aggs, RedMetrics(), budget=0.0, cpu=lambda: cpu[0], clock=lambda: t[0])
    for _ in range(3):
        t[0] += 1
        cpu[0] += 2.0
        c.tick(0)
    assert aggs.levels == []


def test_items_refused_downstream_shed_like_an_exceeded_budget():
    from receiver.component.backpressure import Backpressure

    aggs, bp = FakeAggregates(), Backpressure()
    t, cpu = [0.0], [0.0]
    c = control(aggs, RedMetrics(), budget=0.0, cpu=lambda: cpu[0], clock=lambda: t[0], backpressure=bp)

    def second(refused: int) -> None:
        t[0] += 1.0
        cpu[0] += 0.1
        bp.refused(refused)
        c.tick(int(t[0] * 1e9))

    second(0)
    assert aggs.levels == []
    second(500)  # the batch processor refused spans: no budget set, still shed
    assert aggs.levels == [1] and c.refused_downstream == 500
    for _ in range(5):
        second(0)
    assert aggs.levels == [1]
    second(0)
    assert aggs.levels == [1, 0]  # five calm seconds after the first


class Node:
    """A 2-CPU node's cumulative (busy, total) CPU seconds, and the agent's own CPU time."""

    def __init__(self) -> None:
        self.t, self.busy, self.agent = 0.0, 0.0, 0.0

    def cpu(self):
        return self.busy, 2 * self.t

    def second(self, c: OverloadControl, others: float, agent: float = 0.1) -> None:
        """One second in which the other processes used ``others`` of both CPUs, the agent
        ``agent`` cores."""
        self.t += 1.0
        self.agent += agent
        self.busy += 2 * others + agent
        c.tick(int(self.t * 1e9))


def test_a_saturated_node_sheds_successes_only_and_holds_them_until_calm():
    aggs, n = FakeAggregates(), Node()
    c = control(aggs, RedMetrics(), budget=0.5, cpu=lambda: n.agent, clock=lambda: n.t, node=0.9, node_cpu=n.cpu)
    n.second(c, 0.5)
    assert aggs.levels == [] and abs(c.node_busy - 0.5) < 1e-9  # the agent's own time is not "others"
    n.second(c, 0.95)
    assert aggs.levels == [1]
    for _ in range(8):
        n.second(c, 0.95)
    assert aggs.levels == [1]  # a busy node never sheds the errors
    for _ in range(8):
        n.second(c, 0.8)  # under the threshold, not under 75 % of it: held
    assert aggs.levels == [1]
    for _ in range(5):
        n.second(c, 0.5)
    assert aggs.levels == [1]
    n.second(c, 0.5)
    assert aggs.levels == [1, 0]
    text = {m.name for m in c.collect()}
    assert "ebpf_receiver_node_cpu_busy" in text


def test_the_budget_can_go_higher_on_a_busy_node_and_comes_back_to_its_floor():
    aggs, n = FakeAggregates(), Node()
    c = control(aggs, RedMetrics(), budget=0.5, cpu=lambda: n.agent, clock=lambda: n.t, node=0.9, node_cpu=n.cpu)
    n.second(c, 0.95, agent=0.9)
    n.second(c, 0.95, agent=0.9)
    assert aggs.levels == [1, 2]
    for _ in range(6):
        n.second(c, 0.95, agent=0.1)  # budget calm, node still busy: back to successes only
    assert aggs.levels == [1, 2, 1]
    for _ in range(12):
        n.second(c, 0.95, agent=0.1)
    assert aggs.levels == [1, 2, 1]


def test_a_busy_node_with_an_idle_agent_keeps_every_span():
    aggs, n = FakeAggregates(), Node()
    c = control(aggs, RedMetrics(), budget=0.5, cpu=lambda: n.agent, clock=lambda: n.t, node=0.85, node_cpu=n.cpu)
    for _ in range(5):
        n.second(c, 0.99, agent=0.01)  # a build or a JVM starting: nothing to yield
    assert aggs.levels == []
    n.second(c, 0.99, agent=0.2)
    assert aggs.levels == [1]
    for _ in range(8):
        n.second(c, 0.99, agent=0.01)  # shedding made the agent idle: the node still holds it
    assert aggs.levels == [1]


def test_a_busy_node_sheds_only_for_an_agent_busy_with_traffic():
    aggs, n, seen = FakeAggregates(), Node(), [0]
    c = control(aggs, RedMetrics(), budget=0.5, cpu=lambda: n.agent, clock=lambda: n.t, node=0.85, node_cpu=n.cpu,
                transactions=lambda: seen[0])
    for _ in range(4):
        seen[0] += 50
        n.second(c, 0.99, agent=0.4)  # its start-up: busy, but with 50 transactions a second
    assert aggs.levels == []
    seen[0] += 20_000
    n.second(c, 0.99, agent=0.2)
    assert aggs.levels == [1]


def test_node_threshold_zero_ignores_the_node_and_an_unreadable_proc_stat_is_calm():
    aggs, n = FakeAggregates(), Node()
    c = control(aggs, RedMetrics(), budget=0.0, cpu=lambda: n.agent, clock=lambda: n.t, node=0.0, node_cpu=n.cpu)
    for _ in range(3):
        n.second(c, 1.0)
    assert aggs.levels == []
    c = control(aggs, RedMetrics(), budget=0.0, cpu=lambda: n.agent, clock=lambda: n.t, node=0.9,
                node_cpu=lambda: None)
    for _ in range(3):
        n.second(c, 1.0)
    assert aggs.levels == [] and c.node_busy == 0.0


def test_node_cpu_seconds_reads_proc_stat(tmp_path):
    import os

    from receiver.receivers.ebpf.overload import node_cpu_seconds

    hz = os.sysconf("SC_CLK_TCK")
    f = tmp_path / "stat"
    f.write_text("cpu  100 0 50 800 40 5 5 0 0 0\ncpu0 50 0 25 400 20 2 3 0 0 0\n")
    busy, total = node_cpu_seconds(str(f))
    assert (busy, total) == (160 / hz, 1000 / hz)
    real = node_cpu_seconds()
    assert real is not None and 0 < real[0] <= real[1]
    f.write_text("intr 1 2 3\n")
    assert node_cpu_seconds(str(f)) is None
    assert node_cpu_seconds(str(tmp_path / "missing")) is None
