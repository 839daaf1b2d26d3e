// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ebpf-receiver's kernel side: tracepoints only (syscalls, sock, sched), one ring buffer.
 * Programs are grouped by attach family in progs/; maps in maps/; the ABI in abi/events.h. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "abi/events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Knobs: written by user space into .rodata before load. */
const volatile struct erx_config erx_cfg = {
	.agent_tgid = 0,
	.capture_size = 4096,
	.wakeup_bytes = 1 << 20,
};

#include "maps/events.h"
#include "maps/inflight.h"
#include "maps/conns.h"
#include "maps/filters.h"

#include "lib/sock.h"
#include "lib/emit.h"

#ifdef ERX_FLOOR
/* The benchmark floor: the same tracepoints with empty programs (cost of the hook design). */
#include "progs/floor.h"
#else
#include "progs/syscalls_data.h"
#include "progs/syscalls_conn.h"
#include "progs/sched.h"
#endif
