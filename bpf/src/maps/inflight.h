/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Arguments of a syscall between its enter and exit tracepoints, in the thread's own storage
 * (task local storage: no hashing, freed with the thread). */
#ifndef ERX_MAPS_INFLIGHT_H
#define ERX_MAPS_INFLIGHT_H

enum erx_inflight_flags {
	ERX_INF_IOV = 1,  /* buf points to an iovec array of iovcnt entries */
	ERX_INF_MSG = 2,  /* buf points to a struct user_msghdr */
	ERX_INF_MMSG = 4, /* buf points to an array of struct mmsghdr */
	ERX_INF_LOG = 8,  /* a write to stdout/stderr, not a socket */
	ERX_INF_TLS = 16, /* plaintext at the TLS library: the record gets ERX_FLAG_TLS */
};

struct erx_inflight {
	__u64 ts_enter_ns;
	__u64 sk;      /* struct sock * (0 for log writes) */
	__u64 buf;     /* user pointer: buffer, iovec array, msghdr or mmsghdr array */
	__u64 addr;    /* user pointer to a sockaddr (sendto/recvfrom), or 0 */
	__u32 count;   /* iovcnt / vlen */
	__s32 fd;
	__u8 syscall;  /* enum erx_syscall */
	__u8 direction;
	__u8 flags;    /* enum erx_inflight_flags */
	__u8 valid;    /* set at enter, cleared at exit */
	__u8 _pad0[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct erx_inflight);
} erx_inflight SEC(".maps");

/* The current thread's in-flight syscall slot (created when asked to); NULL when the storage
 * cannot be had (counted as ERX_CNT_INFLIGHT_FULL by the enter side). */
static __always_inline struct erx_inflight *erx_inflight_slot(bool create)
{
	return bpf_task_storage_get(&erx_inflight, bpf_get_current_task_btf(), 0,
				    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}

/* Take the current thread's in-flight syscall (copied into *inf): false when there is none. */
static __always_inline bool erx_inflight_take(struct erx_inflight *inf)
{
	struct erx_inflight *p = erx_inflight_slot(false);

	if (!p || !p->valid)
		return false;
	*inf = *p;
	p->valid = 0;
	return true;
}

#endif
