/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The ring buffer that carries every record to user space, the per-CPU accounting of what was
 * produced and lost, and the per-CPU scratch where large data events are assembled. */
#ifndef ERX_MAPS_EVENTS_H
#define ERX_MAPS_EVENTS_H

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024); /* resized from receivers.ebpf.ring_buffer_size */
} erx_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ERX_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} erx_counters SEC(".maps");

/* A data event plus room the verifier can see: copies are bounded with a mask
 * (2 * ERX_MAX_CAPTURE - 1) and iovec gathering may start below ERX_MAX_CAPTURE, so the
 * payload area must hold 3 * ERX_MAX_CAPTURE bytes for every access to be provably inside. */
struct erx_scratch {
	struct erx_data_event ev;
	__u8 spill[2 * ERX_MAX_CAPTURE];
};

/* Force the compiler to apply the mask to the very register passed on (verifier bounds). */
#define ERX_BOUND(v, mask) asm volatile("%[x] &= " #mask : [x] "+r"(v))
#define ERX_COPY_MASK 0x7fff /* 2 * ERX_MAX_CAPTURE - 1 */
#define ERX_OFF_MASK 0x3fff  /* ERX_MAX_CAPTURE - 1 */

/* One slot per CPU, indexed by bpf_get_smp_processor_id() (a per-CPU array value may not
 * exceed 32 KiB). max_entries is set to the number of possible CPUs by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct erx_scratch);
} erx_scratch_buf SEC(".maps");

#endif
