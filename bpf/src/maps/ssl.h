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
	__u8 _pad0[6];
};

/* pid_tgid -> the SSL_read/SSL_write this thread is inside. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct erx_ssl_call);
} erx_ssl_calls SEC(".maps");

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
