/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Process lifecycle: exec (new program image) and exit (free per-thread state). */
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
	bpf_ringbuf_submit(e, erx_rb_flags());
}

SEC("tracepoint/sched/sched_process_exec")
int erx_sched_process_exec(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (erx_pid_excluded(id >> 32))
		return 0;
	erx_emit_proc(ERX_EV_PROC_EXEC, 0);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int erx_sched_process_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task;

	bpf_map_delete_elem(&erx_inflight, &id);
	if ((__u32)id != (id >> 32) || erx_pid_excluded(id >> 32))
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	erx_emit_proc(ERX_EV_PROC_EXIT, BPF_CORE_READ(task, exit_code));
	return 0;
}

#endif
