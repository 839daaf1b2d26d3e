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
	/* Memory BIOs (the SSL object has no fd; the runtime moves the ciphertext itself): the
	 * socket this thread last read bytes from outside any TLS call (the ciphertext the next
	 * SSL_read/handshake decrypts), and the SSL object of a TLS call that ended with no socket
	 * known (the next socket write of this thread carries its ciphertext). 0: none. */
	__u64 pending_in_sk;
	__u64 pending_out_ssl;
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

/* How an SSL object was tied to its socket. */
enum erx_ssl_bound {
	ERX_SSL_BOUND_FD = 1,   /* SSL_set_fd, or a socket syscall inside a TLS call: certain */
	ERX_SSL_BOUND_BIO = 2,  /* memory BIO: the thread's socket I/O around the call (lib/tls.h) */
};

struct erx_ssl_sock {
	__u64 sk;        /* struct sock * */
	__u8 how;        /* enum erx_ssl_bound */
	__u8 _pad0[7];
};

/* (tgid, SSL *) -> its socket: learned from the socket syscall the library makes inside
 * SSL_read/SSL_write, from SSL_set_fd, or (memory BIOs) from the thread's socket I/O. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct erx_ssl_key);
	__type(value, struct erx_ssl_sock);
} erx_ssl_socks SEC(".maps");

static __always_inline void erx_ssl_bind(__u64 ssl, __u32 tgid, __u64 sk, __u8 how)
{
	struct erx_ssl_key k = { .ssl = ssl, .tgid = tgid };
	struct erx_ssl_sock v = { .sk = sk, .how = how };

	bpf_map_update_elem(&erx_ssl_socks, &k, &v, BPF_ANY);
}

#endif
