/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Data syscalls: enter records the arguments per thread, exit reads the payload when the
 * syscall moved bytes (ret > 0) and submits an erx_data_event. */
#ifndef ERX_PROGS_SYSCALLS_DATA_H
#define ERX_PROGS_SYSCALLS_DATA_H

static __always_inline int erx_data_enter(__u8 sys, __u8 dir, __u8 flags, int fd, __u64 buf, __u64 addr,
					  __u32 count)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct erx_inflight *inf;
	struct file *f;
	struct sock *sk;

	if (erx_pid_excluded(id >> 32))
		return 0;
	f = erx_fd_file(fd);
	sk = erx_file_sock(f);
	if (!sk) {
		/* Not a socket: only stdout/stderr writes matter, and only when logs are on. */
		if (!f || !erx_cfg.capture_logs || dir != ERX_DIR_EGRESS || (fd != 1 && fd != 2) ||
		    sys == ERX_SYS_SENDFILE)
			return 0;
		if (!erx_log_wanted(f, fd, id >> 32, bpf_ktime_get_ns()))
			return 0;
		flags |= ERX_INF_LOG;
	} else if (erx_tls_socket_syscall(id, sk, dir)) {
		return 0; /* ciphertext: the TLS uprobes deliver the plaintext */
	}
	inf = erx_inflight_slot(true);
	if (!inf) {
		erx_count(ERX_CNT_INFLIGHT_FULL);
		return 0;
	}
	inf->ts_enter_ns = bpf_ktime_get_ns();
	inf->sk = (__u64)sk;
	inf->buf = buf;
	inf->addr = addr;
	inf->count = count;
	inf->fd = fd;
	inf->syscall = sys;
	inf->direction = dir;
	inf->flags = flags;
	inf->valid = 1;
	return 0;
}

/* Copy up to `want` bytes spread over a user iovec array into the scratch payload: one
 * bpf_loop step per iovec, so up to ERX_MAX_IOVECS iovecs cost the verifier one step. */
struct erx_gather_ctx {
	struct erx_scratch *s;
	__u64 iov_ptr;
	__u32 want;
	__u32 off;
	__u64 skip;     /* bytes of the iovecs before the ones copied */
};

static long erx_gather_step(__u64 i, struct erx_gather_ctx *g)
{
	struct iovec iov;
	__u64 n, o;

	if (g->off >= g->want)
		return 1;
	if (bpf_probe_read_user(&iov, sizeof(iov), (void *)(g->iov_ptr + i * sizeof(struct iovec))))
		return 1;
	n = iov.iov_len;
	if (g->skip) {
		if (g->skip >= n) {
			g->skip -= n;
			return 0;
		}
		n -= g->skip;
		iov.iov_base += g->skip;
		g->skip = 0;
	}
	if (n > g->want - g->off)
		n = g->want - g->off;
	if (n > ERX_MAX_CAPTURE)
		n = ERX_MAX_CAPTURE;
	o = g->off;
	ERX_BOUND(o, 0x3fff);
	ERX_BOUND(n, 0x7fff);
	if (bpf_probe_read_user(&g->s->ev.payload[o], n, iov.iov_base))
		return 1;
	g->off += n;
	return 0;
}

static __always_inline __u32 erx_gather_iov(struct erx_scratch *s, __u64 iov_ptr, __u32 iovcnt, __u32 want,
					    __u64 skip)
{
	struct erx_gather_ctx g = { .s = s, .iov_ptr = iov_ptr, .want = want, .off = 0, .skip = skip };

	if (iovcnt > ERX_MAX_IOVECS)
		iovcnt = ERX_MAX_IOVECS;
	bpf_loop(iovcnt, erx_gather_step, &g, 0);
	return g.off;
}

/* Assemble one data record in per-CPU scratch and submit it. src is a plain buffer when
 * iovcnt == 0, else an iovec array; the payload starts skip bytes into it (total_len counts
 * from there). c is NULL for log writes. */
static __always_inline void erx_emit_payload(const struct erx_inflight *inf, struct erx_conn_state *c, __u8 kind,
					     __u32 total_len, __u64 src, __u32 iovcnt, __u64 uaddr, __u32 skip)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct erx_scratch *s;
	struct erx_data_event *e;
	__u32 want, captured = 0;
	__u64 size;

	if (c)
		c->announced = 1; /* user space keeps an entry for it: its close record is due */
	erx_count(ERX_CNT_PRODUCED);
	s = bpf_map_lookup_elem(&erx_scratch_buf, &cpu);
	if (!s) {
		erx_count(ERX_CNT_LOST_NO_SCRATCH);
		return;
	}
	e = &s->ev;
	erx_fill_header(&e->hdr, kind, inf->direction, c ? c->role : ERX_ROLE_UNKNOWN, inf->syscall,
			c ? c->id : 0, inf->ts_enter_ns);
	if (inf->flags & ERX_INF_TLS)
		e->hdr.flags = ERX_FLAG_TLS;
	if (c) {
		e->tuple = c->tuple;
		erx_tuple_remote_from_user(&e->tuple, uaddr);
	} else {
		__builtin_memset(&e->tuple, 0, sizeof(e->tuple));
	}
	e->total_len = total_len;
	e->fd = inf->fd;
	e->_pad0 = 0;

	want = erx_cfg.capture_size;
	if (want > total_len)
		want = total_len;
	if (want > ERX_MAX_CAPTURE)
		want = ERX_MAX_CAPTURE;
	if (kind != ERX_EV_SENDFILE && want > 0) {
		if (iovcnt) {
			captured = erx_gather_iov(s, src, iovcnt, want, skip);
		} else {
			__u64 n = want;
			ERX_BOUND(n, 0x7fff);
			if (bpf_probe_read_user(e->payload, n, (void *)(src + skip)) == 0)
				captured = n;
		}
		if (captured == 0)
			erx_count(ERX_CNT_PAYLOAD_READ_FAILED);
	}
	if (captured > ERX_MAX_CAPTURE)
		captured = ERX_MAX_CAPTURE;
	e->captured_len = captured;
	size = captured;
	ERX_BOUND(size, 0x7fff);
	size += offsetof(struct erx_data_event, payload);
	if (bpf_ringbuf_output(&erx_events, e, size, erx_rb_flags(size, false)))
		erx_count(ERX_CNT_LOST_RINGBUF_FULL);
}

#include "lib/http1_pair.h"
#include "progs/http.h"

/* The kernel's bound on the vlen of sendmmsg/recvmmsg (UIO_MAXIOV). */
#define ERX_MMSG_VLEN_MAX 1024

/* prog_flags are the ERX_INF_* flags of the program, a constant per program: the mmsg path
 * (the bulk of the verifier's work) is compiled into the two mmsg programs only. */
static __always_inline int erx_data_exit(void *ctx, long ret, __u8 prog_flags)
{
	struct erx_inflight inf;
	struct erx_conn_state *c;
	__u64 src, uaddr = 0;
	__u32 iovcnt = 0;
	__u8 kind = ERX_EV_DATA;

	if (!erx_inflight_take(&inf))
		return 0;
	if (ret <= 0)
		return 0;

	if (inf.flags & ERX_INF_LOG) {
		erx_serving_acting();
		erx_emit_payload(&inf, NULL, ERX_EV_LOG, ret, inf.buf, (inf.flags & ERX_INF_IOV) ? inf.count : 0, 0, 0);
		return 0;
	}
	if (inf.direction == ERX_DIR_INGRESS)
		erx_tls_socket_read(inf.sk); /* memory-BIO TLS: the next SSL_read's socket (lib/tls.h) */
	c = bpf_map_lookup_elem(&erx_conns, &inf.sk);
	if (!c && erx_tcp_sock_closed((struct sock *)inf.sk)) {
		/* The connection ended while the syscall ran (on loopback the peer's RST is handled
		 * inside our write): its close record is out, these bytes are no new connection. */
		erx_count(ERX_CNT_DATA_AFTER_CLOSE);
		return 0;
	}
	if (!c)
		c = erx_conn_lookup_or_create((struct sock *)inf.sk);
	if (!c)
		return 0;
	/* Network health samples every connection, captured or not (dead code when off). */
	erx_tcp_on_data_syscall((struct sock *)inf.sk, c, inf.ts_enter_ns);
	/* erx_ignored_conns is user space's verdict on connections whose data records it read: a
	 * paired connection sent it none (and is looked up there again once handed over). */
	if (c->ignored || (!(erx_cfg.http_pairing && c->http == ERX_HTTP_PAIRING) &&
			   bpf_map_lookup_elem(&erx_ignored_conns, &c->id))) {
		erx_count(ERX_CNT_FILTERED);
		return 0;
	}
	if (c->tls) { /* ciphertext: the TLS uprobes deliver the plaintext */
		erx_count(ERX_CNT_TLS_CIPHERTEXT);
		return 0;
	}
	if (c->role == ERX_ROLE_CLIENT)
		erx_serving_acting(); /* a call made for the request this thread serves (http_serving.h) */

	if (prog_flags & ERX_INF_MMSG) {
		if (erx_cfg.http_pairing)
			erx_http_unsupported(c);
		/* ret is the number of messages; each carries its own length. */
		__sync_fetch_and_add(inf.direction == ERX_DIR_EGRESS ? &c->bytes_sent : &c->bytes_received, 0);
		for (int i = 0; i < ERX_MAX_MMSG; i++) {
			struct mmsghdr m;

			if (i >= ret)
				break;
			if (bpf_probe_read_user(&m, sizeof(m), (void *)(inf.buf + i * sizeof(struct mmsghdr))))
				break;
			if (inf.direction == ERX_DIR_EGRESS)
				__sync_fetch_and_add(&c->bytes_sent, m.msg_len);
			else
				__sync_fetch_and_add(&c->bytes_received, m.msg_len);
			erx_emit_payload(&inf, c, ERX_EV_DATA, m.msg_len, (__u64)m.msg_hdr.msg_iov,
					 m.msg_hdr.msg_iovlen ? m.msg_hdr.msg_iovlen : 1, (__u64)m.msg_hdr.msg_name, 0);
		}
		/* Messages past ERX_MAX_MMSG become no record, but their bytes still count. */
		for (int i = ERX_MAX_MMSG; i < ERX_MMSG_VLEN_MAX; i++) {
			__u32 len;

			if (i >= ret)
				break;
			if (bpf_probe_read_user(&len, sizeof(len),
						(void *)(inf.buf + i * sizeof(struct mmsghdr) + offsetof(struct mmsghdr, msg_len))))
				break;
			__sync_fetch_and_add(inf.direction == ERX_DIR_EGRESS ? &c->bytes_sent : &c->bytes_received, len);
		}
		return 0;
	}

	if (inf.direction == ERX_DIR_EGRESS)
		__sync_fetch_and_add(&c->bytes_sent, ret);
	else
		__sync_fetch_and_add(&c->bytes_received, ret);

	if (inf.syscall == ERX_SYS_SENDFILE) {
		kind = ERX_EV_SENDFILE;
		src = 0; /* bytes counted, not readable */
	} else if (inf.flags & ERX_INF_MSG) {
		struct user_msghdr msg;

		if (bpf_probe_read_user(&msg, sizeof(msg), (void *)inf.buf))
			return 0;
		src = (__u64)msg.msg_iov;
		iovcnt = msg.msg_iovlen ? msg.msg_iovlen : 1;
		uaddr = (__u64)msg.msg_name;
	} else {
		src = inf.buf;
		iovcnt = (inf.flags & ERX_INF_IOV) ? inf.count : 0;
		uaddr = inf.addr;
	}
	if (erx_cfg.http_pairing && c->http <= ERX_HTTP_PAIRING)
		erx_http_tail(ctx, &erx_http_tp_progs, &inf, c, inf.sk, ret, src, iovcnt, uaddr, kind);
	erx_emit_payload(&inf, c, kind, ret, src, iovcnt, uaddr, 0);
	return 0;
}

#define ERX_ARG(ctx, n) ((struct trace_event_raw_sys_enter *)(ctx))->args[n]
#define ERX_RET(ctx) ((struct trace_event_raw_sys_exit *)(ctx))->ret

#define ERX_DATA_SYSCALL(name, sys, dir, flags, buf_arg, addr_expr, count_expr)                   \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                                \
	int erx_enter_##name(void *ctx)                                                            \
	{                                                                                          \
		return erx_data_enter(sys, dir, flags, (int)ERX_ARG(ctx, 0), ERX_ARG(ctx, buf_arg),  \
				      addr_expr, count_expr);                                      \
	}                                                                                          \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                                 \
	int erx_exit_##name(void *ctx)                                                             \
	{                                                                                          \
		return erx_data_exit(ctx, ERX_RET(ctx), flags);                                         \
	}

#define ERX_MSG_PEEK 2

/* recvfrom/recvmsg/recvmmsg with MSG_PEEK leave the bytes queued: the read that takes them is
 * captured, the peek is not (nginx peeks at a TLS ClientHello before its TLS library reads it;
 * a peek would hand a parser the same bytes twice). */
#define ERX_RECV_SYSCALL(name, sys, flags, addr_expr, count_expr, flags_arg)                       \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                                \
	int erx_enter_##name(void *ctx)                                                            \
	{                                                                                          \
		if (ERX_ARG(ctx, flags_arg) & ERX_MSG_PEEK)                                        \
			return 0;                                                                  \
		return erx_data_enter(sys, ERX_DIR_INGRESS, flags, (int)ERX_ARG(ctx, 0), ERX_ARG(ctx, 1), \
				      addr_expr, count_expr);                                      \
	}                                                                                          \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                                 \
	int erx_exit_##name(void *ctx)                                                             \
	{                                                                                          \
		return erx_data_exit(ctx, ERX_RET(ctx), flags);                                         \
	}

ERX_DATA_SYSCALL(read, ERX_SYS_READ, ERX_DIR_INGRESS, 0, 1, 0, 0)
ERX_DATA_SYSCALL(write, ERX_SYS_WRITE, ERX_DIR_EGRESS, 0, 1, 0, 0)
ERX_DATA_SYSCALL(readv, ERX_SYS_READV, ERX_DIR_INGRESS, ERX_INF_IOV, 1, 0, (__u32)ERX_ARG(ctx, 2))
ERX_DATA_SYSCALL(writev, ERX_SYS_WRITEV, ERX_DIR_EGRESS, ERX_INF_IOV, 1, 0, (__u32)ERX_ARG(ctx, 2))
ERX_RECV_SYSCALL(recvfrom, ERX_SYS_RECVFROM, 0, ERX_ARG(ctx, 4), 0, 3)
ERX_DATA_SYSCALL(sendto, ERX_SYS_SENDTO, ERX_DIR_EGRESS, 0, 1, ERX_ARG(ctx, 4), 0)
ERX_RECV_SYSCALL(recvmsg, ERX_SYS_RECVMSG, ERX_INF_MSG, 0, 0, 2)
ERX_DATA_SYSCALL(sendmsg, ERX_SYS_SENDMSG, ERX_DIR_EGRESS, ERX_INF_MSG, 1, 0, 0)
ERX_RECV_SYSCALL(recvmmsg, ERX_SYS_RECVMMSG, ERX_INF_MMSG, 0, (__u32)ERX_ARG(ctx, 2), 3)
ERX_DATA_SYSCALL(sendmmsg, ERX_SYS_SENDMMSG, ERX_DIR_EGRESS, ERX_INF_MMSG, 1, 0, (__u32)ERX_ARG(ctx, 2))
/* sendfile64(out_fd, in_fd, offset, count): bytes counted on out_fd, no payload. */
ERX_DATA_SYSCALL(sendfile64, ERX_SYS_SENDFILE, ERX_DIR_EGRESS, 0, 1, 0, 0)

#endif
