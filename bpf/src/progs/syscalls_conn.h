/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Connection lifecycle: connect/accept exits give the role and tuple, close and the TCP
 * state machine end it. */
#ifndef ERX_PROGS_SYSCALLS_CONN_H
#define ERX_PROGS_SYSCALLS_CONN_H

#define ERX_EINPROGRESS 115
#define ERX_TCP_CLOSE 7

/* Kernels before 6.13 count file references in f_count (== 1: last reference). */
struct file___f_count {
	atomic_long_t f_count;
} __attribute__((preserve_access_index));

static __always_inline bool erx_file_last_ref(struct file *f)
{
	if (bpf_core_field_exists(f->f_ref)) {
		/* file_ref_t: 0 means exactly one reference. */
		return BPF_CORE_READ(f, f_ref.refcnt.counter) == 0;
	}
	return BPF_CORE_READ((struct file___f_count *)f, f_count.counter) == 1;
}

/* A new connection on sk with a known role: replaces any older state of that sock. */
static __always_inline struct erx_conn_state *erx_conn_start(struct sock *sk, __u8 role)
{
	__u64 key = (__u64)sk;
	struct erx_conn_state fresh = {};

	if (!erx_sock_tuple(sk, &fresh.tuple))
		return NULL;
	fresh.id = __sync_fetch_and_add(&erx_next_conn_id, 1);
	fresh.role = role;
	fresh.ignored = erx_port_excluded(&fresh.tuple) || erx_connection_to_agent(sk, &fresh.tuple);
	if (bpf_map_update_elem(&erx_conns, &key, &fresh, BPF_ANY)) {
		erx_count(ERX_CNT_CONN_TABLE_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&erx_conns, &key);
}

static __always_inline int erx_conn_enter(__u8 sys, int fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct erx_inflight *inf;

	if (erx_pid_excluded(id >> 32))
		return 0;
	if (sys == ERX_SYS_CONNECT)
		erx_serving_acting(); /* a call made for the request this thread serves (http_serving.h) */
	inf = erx_inflight_slot(true);
	if (!inf) {
		erx_count(ERX_CNT_INFLIGHT_FULL);
		return 0;
	}
	__builtin_memset(inf, 0, sizeof(*inf));
	inf->ts_enter_ns = bpf_ktime_get_ns();
	inf->fd = fd;
	inf->syscall = sys;
	inf->valid = 1;
	return 0;
}

static __always_inline int erx_conn_exit(long ret)
{
	struct erx_inflight inf;
	struct erx_conn_state *c;
	struct sock *sk;
	int fd;
	__u8 role;

	if (!erx_inflight_take(&inf))
		return 0;
	if (inf.syscall == ERX_SYS_CONNECT) {
		if (ret != 0 && ret != -ERX_EINPROGRESS)
			return 0;
		fd = inf.fd;
		role = ERX_ROLE_CLIENT;
	} else {
		if (ret < 0)
			return 0;
		fd = ret;
		role = ERX_ROLE_SERVER;
	}
	sk = erx_file_sock(erx_fd_file(fd));
	if (!sk)
		return 0;
	c = erx_conn_start(sk, role);
	/* A client announces its connection at once: user space must know this end before the
	 * server's first record arrives, to find that the server's peer is a local, traced socket.
	 * An accepted connection has no record of its own: every record carries the tuple and role,
	 * so its first one announces it (for a new connection per request, one record less). */
	if (!c || c->ignored || role == ERX_ROLE_SERVER)
		return 0;
	erx_emit_conn(ERX_EV_CONN_OPEN, inf.syscall, c, fd, inf.ts_enter_ns);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int erx_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	return erx_conn_enter(ERX_SYS_CONNECT, (int)ctx->args[0]);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int erx_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	return erx_conn_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_accept")
int erx_enter_accept(struct trace_event_raw_sys_enter *ctx)
{
	return erx_conn_enter(ERX_SYS_ACCEPT, (int)ctx->args[0]);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int erx_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return erx_conn_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_accept4")
int erx_enter_accept4(struct trace_event_raw_sys_enter *ctx)
{
	return erx_conn_enter(ERX_SYS_ACCEPT4, (int)ctx->args[0]);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int erx_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return erx_conn_exit(ctx->ret);
}

/* The connection of c ends: the close record, after the transaction its close completes (the
 * same timestamp ends both). */
static __always_inline void erx_conn_closed(struct erx_conn_state *c, int fd)
{
	__u64 now;

	if (erx_cfg.http_pairing && c->http == ERX_HTTP_PAIRING) {
		now = bpf_ktime_get_ns();
		if (!c->ignored) {
			/* (erx_http_on_close first: a transaction its close completes goes before) */
			if (erx_http_on_close(c, now) || c->announced)
				erx_emit_conn_at(ERX_EV_CONN_CLOSE, ERX_SYS_CLOSE, c, fd, now, now);
			else
				erx_count(ERX_CNT_CLOSE_UNANNOUNCED);
		}
		return;
	}
	if (!c->ignored)
		erx_emit_conn(ERX_EV_CONN_CLOSE, ERX_SYS_CLOSE, c, fd, bpf_ktime_get_ns());
}

/* close() of the last reference to a tracked socket ends the connection. */
SEC("tracepoint/syscalls/sys_enter_close")
int erx_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	int fd = (int)ctx->args[0];
	struct erx_conn_state *c;
	struct file *f;
	struct sock *sk;
	__u64 key;

	if (erx_pid_excluded(id >> 32))
		return 0;
	f = erx_fd_file(fd);
	sk = erx_file_sock(f);
	if (!sk || !erx_file_last_ref(f))
		return 0;
	key = (__u64)sk;
	c = bpf_map_lookup_elem(&erx_conns, &key);
	if (!c)
		return 0;
	erx_conn_closed(c, fd);
	bpf_map_delete_elem(&erx_conns, &key);
	return 0;
}

/* A TCP socket reaching CLOSE without our close() (process killed, fds closed at exit). */
SEC("tracepoint/sock/inet_sock_set_state")
int erx_inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	__u64 key = (__u64)ctx->skaddr;
	struct erx_conn_state *c;

	erx_self_sock_state(ctx);
	if (ctx->newstate != ERX_TCP_CLOSE)
		return 0;
	c = bpf_map_lookup_elem(&erx_conns, &key);
	if (!c)
		return 0;
	erx_conn_closed(c, -1);
	bpf_map_delete_elem(&erx_conns, &key);
	return 0;
}

#endif
