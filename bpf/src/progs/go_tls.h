/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Go crypto/tls plaintext (receiver/discovery/go_tls.py): a uprobe at the entry of
 * crypto/tls.(*Conn).Read and Write records the buffer and the socket (from the *tls.Conn);
 * uprobes on each RET instruction of both functions (never uretprobes: Go moves goroutine
 * stacks, a rewritten return address crashes it) submit what the call moved. Register ABI
 * (Go >= 1.17, amd64): receiver RAX, slice data RBX, result n RAX, goroutine R14. */
#ifndef ERX_PROGS_GO_TLS_H
#define ERX_PROGS_GO_TLS_H

#if defined(__TARGET_ARCH_x86)

/* The socket of a *tls.Conn: conn (net.Conn: itab, data) -> *net.TCPConn -> fd *netFD ->
 * pfd.Sysfd -> the task's file. NULL when it is not a TCP connection of this process. */
static __always_inline struct sock *erx_go_tls_sock(const struct erx_go_tls_binary *b, __u64 tls_conn)
{
	__u64 iface[2], netfd = 0;
	__s64 fd = -1;

	if (bpf_probe_read_user(iface, sizeof(iface), (void *)(tls_conn + b->tls_conn_conn)))
		return NULL;
	if (b->itab_tcpconn && iface[0] != b->itab_tcpconn)
		return NULL; /* a net.Conn other than *net.TCPConn: not followed */
	if (bpf_probe_read_user(&netfd, sizeof(netfd), (void *)(iface[1] + b->net_conn_fd)) || !netfd)
		return NULL;
	if (bpf_probe_read_user(&fd, sizeof(fd), (void *)(netfd + b->netfd_pfd + b->pfd_sysfd)) || fd < 0 ||
	    fd > 0x7fffffff)
		return NULL;
	return erx_file_sock(erx_fd_file((int)fd));
}

static __always_inline int erx_go_tls_enter(struct pt_regs *ctx, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 idx = (__u32)bpf_get_attach_cookie(ctx);
	struct erx_go_tls_key k = { .g = ctx->r14, .tgid = id >> 32 };
	struct erx_go_tls_call call = {};
	struct erx_go_tls_binary *b;
	struct sock *sk;

	if (erx_pid_excluded(id >> 32))
		return 0;
	b = bpf_map_lookup_elem(&erx_go_tls_binaries, &idx);
	if (!b || !b->valid)
		return 0;
	sk = erx_go_tls_sock(b, ctx->ax);
	if (!sk) {
		erx_count(ERX_CNT_TLS_GO_NO_FD);
		return 0;
	}
	call.sk = (__u64)sk;
	call.buf = ctx->bx;
	call.ts_enter_ns = bpf_ktime_get_ns();
	call.direction = dir;
	bpf_map_update_elem(&erx_go_tls_calls, &k, &call, BPF_ANY);
	/* Its socket bytes are ciphertext from now on (those of the handshake came before). */
	erx_tls_mark_conn(sk);
	return 0;
}

SEC("uprobe")
int erx_go_tls_read(struct pt_regs *ctx)
{
	return erx_go_tls_enter(ctx, ERX_DIR_INGRESS);
}

SEC("uprobe")
int erx_go_tls_write(struct pt_regs *ctx)
{
	return erx_go_tls_enter(ctx, ERX_DIR_EGRESS);
}

/* At a RET of either function: n (RAX) bytes moved by the goroutine's call. */
SEC("uprobe")
int erx_go_tls_ret(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct erx_go_tls_key k = { .g = ctx->r14, .tgid = id >> 32 };
	struct erx_go_tls_call *p = bpf_map_lookup_elem(&erx_go_tls_calls, &k);
	struct erx_go_tls_call call;
	__s64 n = (__s64)ctx->ax;

	if (!p)
		return 0;
	call = *p;
	bpf_map_delete_elem(&erx_go_tls_calls, &k);
	if (n <= 0)
		return 0;
	return erx_tls_plaintext(ctx, call.sk, call.direction,
				 call.direction == ERX_DIR_EGRESS ? ERX_SYS_SSL_WRITE : ERX_SYS_SSL_READ, call.buf, n,
				 call.ts_enter_ns);
}

#endif /* __TARGET_ARCH_x86 */

#endif
