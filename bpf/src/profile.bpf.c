// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ebpf-receiver's CPU profiler: a perf_event program (software cpu-clock, one event per CPU,
 * sampled at a frequency) that collects the user and kernel stacks of the task on the CPU
 * (frame pointers, stack ids in a stack-trace map), walks CPython's frame chain for processes
 * user space registered, reads the request the thread serves (the receiver's thread storage,
 * maps/serving.h) and counts samples per key in a hash map drained by user space on an interval.
 * Its own object: loaded only when a profiles pipeline is configured. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "abi/events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Knobs: written by user space into .rodata before load. */
const volatile struct erx_prof_config erx_prof_cfg = {
	.python = 1,
	.serving = 1,
};

#include "maps/profile.h"
#include "maps/serving.h"

static __always_inline void erx_prof_count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&erx_prof_counters, &idx);

	if (c)
		*c += 1;
}

/* FNV-1a over the code object addresses: the key of a Python stack. */
static __always_inline __u64 erx_prof_py_hash(const struct erx_prof_py_stack *st)
{
	__u64 h = 14695981039346656037ULL;

	for (__u32 i = 0; i < ERX_PROF_PY_FRAMES; i++) {
		if (i >= st->depth)
			break;
		h ^= st->code[i];
		h *= 1099511628211ULL;
	}
	return h ? h : 1;
}

/* The Python frames of the sampled thread, when its process is a registered CPython and the
 * thread holds the GIL; 0 when there are none. */
static __always_inline __u64 erx_prof_python(__u32 tgid, __u32 tid)
{
	struct erx_prof_py_proc *py = bpf_map_lookup_elem(&erx_prof_py_procs, &tgid);
	struct erx_prof_py_stack *st;
	__u64 tstate = 0, cframe, frame = 0, native_tid = 0, h;
	__u32 zero = 0;

	if (!py)
		return 0;
	if (bpf_probe_read_user(&tstate, sizeof(tstate), (void *)py->tstate_ptr) || !tstate)
		return 0;
	if (bpf_probe_read_user(&native_tid, sizeof(native_tid), (void *)(tstate + py->ts_native_tid)))
		goto fail;
	if (native_tid != tid)
		return 0; /* another thread holds the GIL: this one runs native code */
	cframe = tstate;
	if (py->ts_cframe != ERX_PROF_NO_OFFSET &&
	    (bpf_probe_read_user(&cframe, sizeof(cframe), (void *)(tstate + py->ts_cframe)) || !cframe))
		goto fail;
	if (bpf_probe_read_user(&frame, sizeof(frame), (void *)(cframe + py->ts_frame)))
		goto fail;
	st = bpf_map_lookup_elem(&erx_prof_py_scratch, &zero);
	if (!st)
		return 0;
	st->depth = 0;
	st->truncated = 0;
	for (__u32 i = 0; i < ERX_PROF_PY_FRAMES + 8 && frame; i++) {
		__u64 code = 0, prev = 0;
		__u8 owner = 0;

		if (bpf_probe_read_user(&code, sizeof(code), (void *)(frame + py->frame_code)) ||
		    bpf_probe_read_user(&prev, sizeof(prev), (void *)(frame + py->frame_previous)))
			goto fail;
		if (py->frame_owner != ERX_PROF_NO_OFFSET &&
		    bpf_probe_read_user(&owner, sizeof(owner), (void *)(frame + py->frame_owner)))
			goto fail;
		frame = prev;
		if (py->frame_owner != ERX_PROF_NO_OFFSET && owner == py->owner_cstack)
			continue; /* the C stack's shim frame (3.12+): no code of its own */
		if (st->depth >= ERX_PROF_PY_FRAMES) {
			st->truncated = 1;
			break;
		}
		st->code[st->depth & (ERX_PROF_PY_FRAMES - 1)] = code;
		st->depth++;
	}
	if (frame && st->depth >= ERX_PROF_PY_FRAMES)
		st->truncated = 1;
	if (!st->depth)
		return 0;
	h = erx_prof_py_hash(st);
	if (bpf_map_update_elem(&erx_prof_py_stacks, &h, st, BPF_NOEXIST) == -17 /* EEXIST */ ||
	    bpf_map_lookup_elem(&erx_prof_py_stacks, &h)) {
		erx_prof_count(ERX_PROF_CNT_PY_STACKS);
		return h;
	}
	erx_prof_count(ERX_PROF_CNT_PY_STACKS_FULL);
	return 0;
fail:
	erx_prof_count(ERX_PROF_CNT_PY_READ_ERR);
	return 0;
}

SEC("perf_event")
int erx_profile_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct erx_prof_key key = {};
	__u64 one = 1, *count;

	key.pid = id >> 32;
	key.tid = (__u32)id;
	if (!key.tid) {
		erx_prof_count(ERX_PROF_CNT_IDLE);
		return 0;
	}
	if (erx_prof_cfg.skip_agent && key.pid == erx_prof_cfg.agent_tgid)
		return 0;
	erx_prof_count(ERX_PROF_CNT_SAMPLES);
	key.user_stack = bpf_get_stackid(ctx, &erx_prof_stacks, BPF_F_USER_STACK);
	key.kernel_stack = bpf_get_stackid(ctx, &erx_prof_stacks, 0);
	if (key.user_stack < 0 && bpf_get_current_task_btf()->mm) /* kernel threads have none */
		erx_prof_count(ERX_PROF_CNT_USER_STACK_ERR);
	/* Sampled in the kernel (its addresses are the upper half), yet no stack. */
	if (key.kernel_stack < 0 && (__s64)ctx->regs.ip < 0)
		erx_prof_count(ERX_PROF_CNT_KERNEL_STACK_ERR);
	if (erx_prof_cfg.python)
		key.py_stack = erx_prof_python(key.pid, key.tid);
	if (erx_prof_cfg.serving) {
		struct erx_serving *st = bpf_task_storage_get(&erx_serving_state, bpf_get_current_task_btf(), 0, 0);

		if (st && st->active && !st->multiplexed) {
			key.serving_conn_id = st->conn_id;
			key.serving_start_ns = st->start_ns;
			erx_prof_count(ERX_PROF_CNT_SERVING);
		}
	}
	count = bpf_map_lookup_elem(&erx_prof_counts, &key);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return 0;
	}
	if (bpf_map_update_elem(&erx_prof_counts, &key, &one, BPF_NOEXIST)) {
		count = bpf_map_lookup_elem(&erx_prof_counts, &key); /* added by another CPU meanwhile */
		if (count)
			__sync_fetch_and_add(count, 1);
		else
			erx_prof_count(ERX_PROF_CNT_KEYS_FULL);
	}
	return 0;
}

/* Never called, never loaded: names the ABI types so they reach the object's BTF (checked by
 * tests/kernel/test_abi.py). */
struct erx_prof_abi_types {
	struct erx_prof_config config;
	struct erx_prof_key key;
	struct erx_prof_py_proc py_proc;
	struct erx_prof_py_stack py_stack;
	enum erx_prof_counter counter;
};

static __attribute__((used, noinline)) int erx_prof_abi_types(struct erx_prof_abi_types *types)
{
	return types != 0;
}
