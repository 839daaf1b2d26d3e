"""The ``tail_sampling`` processor's configuration: a Collector policy list (the Collector's keys,
flow style as its README writes them) validates here; what this agent does not implement is
named, with its line, never ignored."""

from __future__ import annotations

import pytest

from receiver.config import ConfigError, load_config_text

PIPELINES = """
exporters: {debug: }
service:
  pipelines:
    traces: {receivers: [ebpf], processors: [tail_sampling], exporters: [debug]}
    logs: {receivers: [ebpf], processors: [tail_sampling], exporters: [debug]}
"""

# Every policy type this agent shares with the Collector's tailsamplingprocessor, keys as there.
COLLECTOR_STYLE = """
receivers: {ebpf: {}}
processors:
  tail_sampling:
    decision_wait: 10s
    num_traces: 100
    expected_new_traces_per_sec: 10
    decision_cache: {sampled_cache_size: 500, non_sampled_cache_size: 1000}
    policies:
      [
        {name: everything, type: always_sample},
        {name: slow, type: latency, latency: {threshold_ms: 5000, upper_threshold_ms: 10000}},
        {name: big-numbers, type: numeric_attribute, numeric_attribute: {key: key1, min_value: 50, max_value: 100}},
        {name: some, type: probabilistic, probabilistic: {hash_salt: custom-salt, sampling_percentage: 20}},
        {name: errors, type: status_code, status_code: {status_codes: [ERROR, UNSET]}},
        {name: exact, type: string_attribute, string_attribute: {key: key2, values: [value1, value2]}},
        {name: regex, type: string_attribute,
         string_attribute: {key: key2, values: [value1, val*], enabled_regex_matching: true, cache_max_size: 10}},
        {name: not-health, type: string_attribute,
         string_attribute: {key: url.path, values: [\\/health, \\/metrics], enabled_regex_matching: true,
                            invert_match: true}},
        {name: limited, type: rate_limiting, rate_limiting: {spans_per_second: 35}},
        {name: span-count, type: span_count, span_count: {min_spans: 2, max_spans: 20}},
        {name: state, type: trace_state, trace_state: {key: key3, values: [value1, value2]}},
        {name: flag, type: boolean_attribute, boolean_attribute: {key: key4, value: true}},
        {
          name: and-policy-1,
          type: and,
          and: {
            and_sub_policy: [
              {name: and-numeric, type: numeric_attribute, numeric_attribute: {key: key1, min_value: 50, max_value: 100}},
              {name: and-string, type: string_attribute, string_attribute: {key: key2, values: [value1, value2]}},
            ]
          }
        },
        {
          name: composite-policy-1,
          type: composite,
          composite: {
            max_total_spans_per_second: 1000,
            policy_order: [composite-1, composite-2, composite-3],
            composite_sub_policy: [
              {name: composite-1, type: numeric_attribute, numeric_attribute: {key: key1, min_value: 50, max_value: 100}},
              {name: composite-2, type: string_attribute, string_attribute: {key: key2, values: [value1, value2]}},
              {name: composite-3, type: always_sample},
            ],
            rate_allocation: [{policy: composite-1, percent: 50}, {policy: composite-2, percent: 25}]
          }
        },
      ]
""" + PIPELINES


def test_a_collector_policy_list_validates():
    cfg = load_config_text(COLLECTOR_STYLE).processors["tail_sampling"]
    assert cfg.decision_wait == 10.0 and cfg.num_traces == 100 and cfg.expected_new_traces_per_sec == 10
    assert cfg.decision_cache.sampled_cache_size == 500
    by_name = {p.name: p for p in cfg.policies}
    assert len(by_name) == 14
    assert by_name["slow"].latency.upper_threshold_ms == 10000
    assert by_name["and-policy-1"].and_.and_sub_policy[1].string_attribute.values == ("value1", "value2")
    comp = by_name["composite-policy-1"].composite
    assert [a.percent for a in comp.rate_allocation] == [50, 25]
    assert by_name["not-health"].string_attribute.invert_match


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_config_text(text, name="ts.yaml")
    return str(e.value)


def _one(policy: str, extra: str = "") -> str:
    return ("receivers: {ebpf: {}}\nprocessors:\n  tail_sampling:\n" + extra +
            "    policies:\n      - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}\n" +
            policy + PIPELINES)


def test_collector_keys_this_agent_does_not_implement_are_named_with_their_line():
    msg = _error(_one("", extra="    block_on_overflow: true\n"))
    assert "processors.tail_sampling.block_on_overflow" in msg and "not supported" in msg and "ts.yaml:4" in msg
    msg = _error(_one("      - {name: o, type: ottl_condition, ottl_condition: {span: ['x']}}\n"))
    assert "policies[1].ottl_condition" in msg and "not supported" in msg and "ts.yaml:6" in msg
    msg = _error(_one("      - {name: d, type: drop}\n"))
    assert "policies[1].type" in msg and "'drop'" in msg and "not supported" in msg


def test_policy_mistakes_name_the_policy():
    assert "unknown key" in _error(_one("      - {name: l, type: latency, latency: {treshold_ms: 5}}\n"))
    assert "needs its 'latency' block" in _error(_one("      - {name: l, type: latency}\n"))
    assert "two policies are named 'errors'" in _error(_one("      - {name: errors, type: always_sample}\n"))
    msg = _error(_one("      - {name: s, type: status_code, status_code: {status_codes: [FAILED]}}\n"))
    assert "must be one of OK, ERROR, UNSET" in msg
    msg = _error(_one("      - {name: a, type: and, and: {and_sub_policy: [{name: b, type: and}]}}\n"))
    assert "cannot be nested" in msg
    assert "at least one policy" in _error(
        "receivers: {ebpf: {}}\nprocessors:\n  tail_sampling: {}\n" + PIPELINES)
