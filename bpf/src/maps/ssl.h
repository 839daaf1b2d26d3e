/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* TLS library calls in flight, and which socket each SSL object writes to. */
#ifndef ERX_MAPS_SSL_H
#define ERX_MAPS_SSL_H

struct erx_ssl_call {
	__u64 ssl;       /* SSL * */
	__u64 buf;       /* plaintext buffer */
	__u64 len_ptr;   /* size_t * of SSL_read_ex/SSL_write_ex, else 0 */
	__u64 ts_enter_ns;
	__u8 direction;  /* enum erx_direction */
	__u8 syscall;    /* ERX_SYS_SSL_READ / ERX_SYS_SSL_WRITE */
	__u8 valid;      /* the thread is inside this call */
	__u8 _pad0[5];
};

/* Per thread (task local storage): the SSL_read/SSL_write it is inside. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct erx_ssl_call);
} erx_ssl_calls SEC(".maps");

/* The TLS library call the current thread is inside, or NULL. */
static __always_inline struct erx_ssl_call *erx_ssl_call_current(void)
{
	struct erx_ssl_call *call = bpf_task_storage_get(&erx_ssl_calls, bpf_get_current_task_btf(), 0, 0);

	return call && call->valid ? call : NULL;
}

struct erx_ssl_key {
	__u64 ssl;
	__u32 tgid;
	__u32 _pad0;
};

/* (tgid, SSL *) -> struct sock *: learned from the socket syscall the library makes inside
 * SSL_read/SSL_write, or from SSL_set_fd. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct erx_ssl_key);
	__type(value, __u64);
} erx_ssl_socks SEC(".maps");

#endif
