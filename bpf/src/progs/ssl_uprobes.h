/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* OpenSSL (1.1.x, 3.x) and BoringSSL plaintext: uprobes on SSL_write/SSL_read (and their _ex
 * forms) record the buffer at entry; the return probes submit what the call moved as a data
 * record flagged ERX_FLAG_TLS, on the connection of the socket the SSL object uses (bound by
 * SSL_set_fd or the syscalls inside the call; on memory BIOs, by the thread's socket I/O
 * around the calls: lib/tls.h).
 * These programs are attached by user space per library file (not automatically). */
#ifndef ERX_PROGS_SSL_UPROBES_H
#define ERX_PROGS_SSL_UPROBES_H

/* Memory BIOs: an SSL_read or handshake decrypts what the thread last read from a socket
 * outside any TLS call (lib/tls.h). A handshake may move an SSL object tied that way to another
 * socket (a freed SSL object's address reused for a new connection); SSL_read only ties an
 * object tied to nothing yet (it may run on bytes read earlier: flow control resumed). */
static __always_inline void erx_ssl_bind_read(struct erx_ssl_call *call, __u64 ssl, __u32 tgid, bool handshake)
{
	struct erx_ssl_key k = { .ssl = ssl, .tgid = tgid };
	struct erx_ssl_sock *cur;
	__u64 sk = call->pending_in_sk;

	call->pending_in_sk = 0;
	if (!sk)
		return;
	cur = bpf_map_lookup_elem(&erx_ssl_socks, &k);
	if (cur && (cur->how == ERX_SSL_BOUND_FD || !handshake || cur->sk == sk))
		return;
	erx_ssl_bind(ssl, tgid, sk, ERX_SSL_BOUND_BIO);
	erx_count(ERX_CNT_TLS_BIO_BOUND); /* its first plaintext marks the connection TLS */
}

static __always_inline int erx_ssl_enter(__u64 ssl, __u64 buf, __u64 len_ptr, __u8 dir, __u8 sys)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct erx_ssl_call *call;

	if (erx_pid_excluded(id >> 32))
		return 0;
	call = bpf_task_storage_get(&erx_ssl_calls, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!call) {
		erx_count(ERX_CNT_INFLIGHT_FULL);
		return 0;
	}
	if (call->pending_out_ssl != ssl)
		call->pending_out_ssl = 0; /* an earlier call's output was not sent before this call */
	if (sys != ERX_SYS_SSL_WRITE)
		erx_ssl_bind_read(call, ssl, id >> 32, sys == 0);
	call->ssl = ssl;
	call->buf = buf;
	call->len_ptr = len_ptr;
	call->ts_enter_ns = bpf_ktime_get_ns();
	call->direction = dir;
	call->syscall = sys;
	call->valid = 1;
	return 0;
}

/* Plaintext a TLS library moved (n bytes at buf) on the socket sk: a data record flagged
 * ERX_FLAG_TLS (or an HTTP/1 transaction paired in the kernel). Shared by the OpenSSL probes
 * and Go crypto/tls (progs/go_tls.h). */
static __always_inline int erx_tls_plaintext(void *ctx, __u64 sk, __u8 dir, __u8 sys, __u64 buf, __u64 n,
					     __u64 ts_enter_ns)
{
	struct erx_inflight inf = {};
	struct erx_conn_state *c;
	__u8 *ign;

	c = erx_conn_lookup_or_create((struct sock *)sk);
	if (!c) {
		erx_count(ERX_CNT_TLS_NO_CONN);
		return 0;
	}
	c->tls = 1;
	ign = bpf_map_lookup_elem(&erx_ignored_conns, &c->id);
	if (c->ignored || (ign && *ign == ERX_IGNORE_ALL)) {
		/* An excluded port, or switched off by user space: its plaintext is not wanted either
		 * (ERX_IGNORE_SOCKET, ciphertext seen before the library was attached, lets it through). */
		erx_count(ERX_CNT_FILTERED);
		return 0;
	}
	if (dir == ERX_DIR_EGRESS)
		__sync_fetch_and_add(&c->bytes_sent, n);
	else
		__sync_fetch_and_add(&c->bytes_received, n);
	inf.ts_enter_ns = ts_enter_ns;
	inf.fd = -1;
	inf.syscall = sys;
	inf.direction = dir;
	inf.flags = ERX_INF_TLS;
	if (c->role == ERX_ROLE_CLIENT)
		erx_serving_acting(); /* a call made for the request this thread serves (http_serving.h) */
	if (erx_cfg.http_pairing && c->http <= ERX_HTTP_PAIRING)
		erx_http_tail(ctx, &erx_http_uprobe_progs, &inf, c, sk, n, buf, 0, 0, ERX_EV_DATA);
	erx_emit_payload(&inf, c, ERX_EV_DATA, n, buf, 0, 0, 0);
	return 0;
}

static __always_inline int erx_ssl_exit(void *ctx, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct erx_ssl_call *p = erx_ssl_call_current();
	struct erx_ssl_call call;
	struct erx_ssl_key k = {};
	struct erx_ssl_sock *bound;
	__u64 n;

	if (!p)
		return 0;
	call = *p;
	p->valid = 0;
	k.ssl = call.ssl;
	k.tgid = id >> 32;
	bound = bpf_map_lookup_elem(&erx_ssl_socks, &k);
	if (!bound)
		p->pending_out_ssl = call.ssl; /* memory BIO: its next socket write carries the output */
	if (call.syscall == 0)
		return 0; /* a handshake: it only tied the SSL object to its socket */
	if (call.len_ptr) {
		size_t moved = 0;
		if (ret != 1 || bpf_probe_read_user(&moved, sizeof(moved), (void *)call.len_ptr))
			return 0;
		n = moved;
	} else {
		if (ret <= 0)
			return 0;
		n = ret;
	}
	if (n == 0)
		return 0;
	if (!bound) {
		erx_count(ERX_CNT_TLS_UNMAPPED);
		return 0;
	}
	return erx_tls_plaintext(ctx, bound->sk, call.direction, call.syscall, call.buf, n, call.ts_enter_ns);
}

SEC("uprobe")
int BPF_KPROBE(erx_ssl_write, void *ssl, const void *buf, int num)
{
	return erx_ssl_enter((__u64)ssl, (__u64)buf, 0, ERX_DIR_EGRESS, ERX_SYS_SSL_WRITE);
}

SEC("uretprobe")
int BPF_KRETPROBE(erx_ssl_write_ret, int ret)
{
	return erx_ssl_exit(ctx, ret);
}

SEC("uprobe")
int BPF_KPROBE(erx_ssl_read, void *ssl, void *buf, int num)
{
	return erx_ssl_enter((__u64)ssl, (__u64)buf, 0, ERX_DIR_INGRESS, ERX_SYS_SSL_READ);
}

SEC("uretprobe")
int BPF_KRETPROBE(erx_ssl_read_ret, int ret)
{
	return erx_ssl_exit(ctx, ret);
}

SEC("uprobe")
int BPF_KPROBE(erx_ssl_write_ex, void *ssl, const void *buf, size_t num, size_t *written)
{
	return erx_ssl_enter((__u64)ssl, (__u64)buf, (__u64)written, ERX_DIR_EGRESS, ERX_SYS_SSL_WRITE);
}

SEC("uretprobe")
int BPF_KRETPROBE(erx_ssl_write_ex_ret, int ret)
{
	return erx_ssl_exit(ctx, ret);
}

SEC("uprobe")
int BPF_KPROBE(erx_ssl_read_ex, void *ssl, void *buf, size_t num, size_t *readbytes)
{
	return erx_ssl_enter((__u64)ssl, (__u64)buf, (__u64)readbytes, ERX_DIR_INGRESS, ERX_SYS_SSL_READ);
}

SEC("uretprobe")
int BPF_KRETPROBE(erx_ssl_read_ex_ret, int ret)
{
	return erx_ssl_exit(ctx, ret);
}

/* SSL_do_handshake/SSL_connect/SSL_accept: the handshake's socket syscalls tie the SSL object
 * to its socket and are not captured (ciphertext). */
SEC("uprobe")
int BPF_KPROBE(erx_ssl_handshake, void *ssl)
{
	return erx_ssl_enter((__u64)ssl, 0, 0, ERX_DIR_EGRESS, 0);
}

SEC("uretprobe")
int BPF_KRETPROBE(erx_ssl_handshake_ret, int ret)
{
	return erx_ssl_exit(ctx, ret);
}

/* SSL_set_fd(ssl, fd): ties the SSL object to its socket before any data moves (useful when a
 * read is served from the library's buffer without a syscall). */
SEC("uprobe")
int BPF_KPROBE(erx_ssl_set_fd, void *ssl, int fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sock *sk;

	if (erx_pid_excluded(id >> 32))
		return 0;
	sk = erx_file_sock(erx_fd_file(fd));
	if (!sk)
		return 0;
	erx_ssl_bind((__u64)ssl, id >> 32, (__u64)sk, ERX_SSL_BOUND_FD);
	return 0;
}

#endif
