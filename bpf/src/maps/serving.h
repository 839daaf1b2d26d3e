/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The request each thread serves (thread storage): written by the HTTP/1 pairing (maps/http.h,
 * lib/http_serving.h), read by the profiler (profile.bpf.c), which loads with this very map (the
 * definitions must stay identical: the profiler reuses the receiver's map by fd). */
#ifndef ERX_MAPS_SERVING_H
#define ERX_MAPS_SERVING_H

/* The paired server request a thread is serving (ERX_EV_SERVING), in the thread's storage. */
struct erx_serving {
	__u64 conn_id;
	__u64 start_ns;
	__u8 active;      /* a request is open: set at its head, cleared when its response ends */
	__u8 announced;   /* ERX_EV_SERVING sent for it */
	__u8 multiplexed; /* this thread opened a request before answering another: no more markers */
	__u8 _pad0[5];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct erx_serving);
} erx_serving_state SEC(".maps");

#endif
