"""bench.sched_delay.analyse: a watched task's wait to run is charged to the tasks that held
the CPU it waited on, following its migration."""

from __future__ import annotations

from bench.sched_delay import analyse

SCRIPT = """
[000] 100.000000:       sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=agent next_pid=50 next_prio=120
[001] 100.000000:       sched:sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=other next_pid=60 next_prio=120
[001] 100.001000:       sched:sched_waking: comm=nginx pid=7 prio=120 target_cpu=001
[001] 100.001500: sched:sched_migrate_task: comm=nginx pid=7 prio=120 orig_cpu=1 dest_cpu=0
[000] 100.003000:       sched:sched_switch: prev_comm=agent prev_pid=50 prev_prio=120 prev_state=R ==> next_comm=nginx next_pid=7 next_prio=120
[000] 100.003100:       sched:sched_waking: comm=nginx pid=7 prio=120 target_cpu=000
[000] 100.003150:       sched:sched_switch: prev_comm=nginx prev_pid=7 prev_prio=120 prev_state=S ==> next_comm=nginx next_pid=7 next_prio=120
"""


def test_a_long_wait_is_charged_to_the_cpu_it_waited_on():
    d = analyse(SCRIPT, lambda comm, pid: comm == "nginx", {"50": "AGENT:"})
    assert d.wakeups == 2 and d.long_waits == 1
    assert round(d.delays_us[0]) == 2000 and round(d.delays_us[1]) == 50
    # woken on CPU 1 at 1.0 ms, moved to CPU 0 at 1.5 ms, ran at 3.0 ms: the agent held CPU 0
    # from 1.0 ms (charged from the wakeup on, as the task ended up there)
    assert round(d.held_ms["AGENT:agent"], 3) == 2.0
    assert "other" not in d.held_ms
