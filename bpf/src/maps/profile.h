/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The profiler's maps (profile.bpf.c). Sizes are set by user space before load
 * (receivers.profiling). */
#ifndef ERX_MAPS_PROFILE_H
#define ERX_MAPS_PROFILE_H

/* Stack ids -> instruction pointers (user and kernel stacks share it). */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 127 * sizeof(__u64)); /* PERF_MAX_STACK_DEPTH */
} erx_prof_stacks SEC(".maps");

/* Samples per (process, thread, stacks, request served): drained by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct erx_prof_key);
	__type(value, __u64);
} erx_prof_counts SEC(".maps");

/* CPython processes whose frames are walked (filled by user space). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct erx_prof_py_proc);
} erx_prof_py_procs SEC(".maps");

/* Python stacks by hash (struct erx_prof_key.py_stack). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct erx_prof_py_stack);
} erx_prof_py_stacks SEC(".maps");

/* Where a Python stack is assembled (too large for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct erx_prof_py_stack);
} erx_prof_py_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ERX_PROF_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} erx_prof_counters SEC(".maps");

#endif
