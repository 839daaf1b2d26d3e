"""The fault matrix (``make reliability``, ``python -m bench.reliability``): the real agent under
faults of its collector, its disk, its ring buffer and its own process, every span accounted for.

``fault_sink`` (the misbehaving OTLP server), ``agent_run`` (the agent, its config and
self-metrics), ``row`` (what rows share, the invariant), ``sink_rows`` / ``collector_rows`` (the
rows), ``report`` (console, JSON, the table in docs/reliability.md).
"""
