/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Process lifecycle: exec (new program image), exit (free per-thread state) and fork (an
 * excluded parent's exclusion passes to its children). */
#ifndef ERX_PROGS_SCHED_H
#define ERX_PROGS_SCHED_H

static __always_inline void erx_emit_proc(__u8 kind, __s32 exit_code)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct erx_proc_event *e;

	erx_count(ERX_CNT_PRODUCED);
	e = bpf_ringbuf_reserve(&erx_events, sizeof(*e), 0);
	if (!e) {
		erx_count(ERX_CNT_LOST_RINGBUF_FULL);
		return;
	}
	erx_fill_header(&e->hdr, kind, 0, 0, 0, 0, bpf_ktime_get_ns());
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->exit_code = exit_code;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, erx_rb_flags(sizeof(*e), true));
}

/* Exec is reported for excluded processes too: a new program is a new decision for the
 * discovery rules in user space. A process excluded only for matching no include rule is
 * traced from its new program's first instruction until then (a shell that is not included
 * starting a client that is). */
SEC("tracepoint/sched/sched_process_exec")
int erx_sched_process_exec(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 key = id >> 32;
	__u8 *why;

	if (erx_cfg.filter_pids && erx_agent_view(&key)) {
		why = bpf_map_lookup_elem(&erx_excluded_pids, &key);
		if (why && *why == ERX_PID_NOT_INCLUDED)
			bpf_map_delete_elem(&erx_excluded_pids, &key);
	}
	if (erx_pid_hidden(id >> 32))
		return 0;
	erx_emit_proc(ERX_EV_PROC_EXEC, 0);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int erx_sched_process_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct task_struct *task;

	if ((__u32)id != tgid)
		return 0;
	if (erx_cfg.filter_pids) {
		/* The pid may be reused: it must not inherit this process's exclusion. */
		__u32 key = tgid;
		if (erx_agent_view(&key))
			bpf_map_delete_elem(&erx_excluded_pids, &key);
	}
	if (erx_pid_hidden(tgid))
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	erx_emit_proc(ERX_EV_PROC_EXIT, BPF_CORE_READ(task, exit_code));
	return 0;
}

#define ERX_CLONE_THREAD 0x00010000

/* A process forked by an excluded one is excluded from its first instruction (it runs the
 * same program; user space decides again when it execs). Threads share their process's
 * entry. Initial pid namespace only: the map holds the agent's pids, and the tracepoint gives
 * the kernel's (in a pod, user space's periodic scan excludes the child). */
SEC("tracepoint/task/task_newtask")
int erx_task_newtask(struct trace_event_raw_task_newtask *ctx)
{
	__u32 parent = bpf_get_current_pid_tgid() >> 32;
	__u32 child;
	__u8 *why, v;

	if (!erx_cfg.filter_pids || erx_cfg.agent_pidns_ino || (ctx->clone_flags & ERX_CLONE_THREAD))
		return 0;
	why = bpf_map_lookup_elem(&erx_excluded_pids, &parent);
	if (!why)
		return 0;
	v = *why;
	child = ctx->pid;
	bpf_map_update_elem(&erx_excluded_pids, &child, &v, BPF_ANY);
	return 0;
}

#endif
