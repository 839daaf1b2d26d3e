"""How the agent wires a ``tail_sampling`` processor: one engine per id for its traces and logs
pipelines, RED exemplars deferred to its decisions, overload shedding told its latency threshold."""

from __future__ import annotations

from receiver.config import load_config_text
from receiver.pipeline import Agent

CONFIG = """
receivers: {ebpf: {}}
processors:
  batch: {}
  tail_sampling:
    policies:
      - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: slow, type: latency, latency: {threshold_ms: 500}}
      - {name: slower-start, type: latency, latency: {threshold_ms: 200}}
exporters: {debug: }
service:
  pipelines:
    traces: {receivers: [ebpf], processors: [tail_sampling, batch], exporters: [debug]}
    logs: {receivers: [ebpf], processors: [tail_sampling, batch], exporters: [debug]}
"""


def test_one_engine_per_id_exemplars_deferred_and_the_shed_threshold_set():
    agent = Agent(load_config_text(CONFIG))
    samplers = [p for p in agent.processors if type(p).__name__ == "TailSamplingProcessor"]
    assert len(samplers) == 2 and samplers[0].engine is samplers[1].engine
    assert agent.deferred_exemplars is not None
    assert agent.receiver.assembler._exemplars is agent.deferred_exemplars
    assert agent.slow_threshold_s == 0.2
    names = {m.name for m in agent.self_metrics.families()}
    assert "ebpf_receiver_tail_sampling_traces" in names


def test_without_tail_sampling_nothing_is_deferred():
    agent = Agent(load_config_text(CONFIG.replace("tail_sampling, batch", "batch")))
    assert agent.deferred_exemplars is None and agent.slow_threshold_s is None
    assert agent.receiver.assembler._exemplars is None
