/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The agent never observes itself (second half, after emit.h): the agent's sockets registered as
 * they come and go, and which stdout/stderr writes are log lines. */
#ifndef ERX_LIB_SELF_TRACKING_H
#define ERX_LIB_SELF_TRACKING_H

/* inet_sock_set_state: the agent's TCP sockets come and go in erx_agent_endpoints. SYN_SENT and
 * LISTEN run in the thread that called connect()/listen(); at SYN_SENT the local port may not be
 * chosen yet, so the socket waits in erx_agent_connecting until ESTABLISHED (softirq) names it —
 * before the peer can accept it. CLOSE may run anywhere. */
static __always_inline void erx_self_sock_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct sock *sk = (struct sock *)ctx->skaddr;
	int newstate = ctx->newstate;
	struct erx_endpoint_key k;
	struct erx_agent_conn_key ck;
	struct erx_tuple t;
	__u64 skey = (__u64)sk;
	__u32 tgid;
	__u8 kind = ERX_AGENT_CLIENT, one = 1;

	if (ctx->protocol != ERX_IPPROTO_TCP)
		return;
	if (newstate == ERX_TCP_SYN_SENT_STATE || newstate == ERX_TCP_LISTEN_STATE) {
		tgid = bpf_get_current_pid_tgid() >> 32;
		if (!erx_agent_view(&tgid) || tgid != erx_cfg.agent_tgid)
			return;
		if (newstate == ERX_TCP_SYN_SENT_STATE) {
			bpf_map_update_elem(&erx_agent_connecting, &skey, &one, BPF_ANY);
			return;
		}
		kind = ERX_AGENT_LISTENER;
	} else if (newstate == ERX_TCP_ESTABLISHED_STATE) {
		if (!bpf_map_lookup_elem(&erx_agent_connecting, &skey))
			return;
		bpf_map_delete_elem(&erx_agent_connecting, &skey);
	} else if (newstate == ERX_TCP_CLOSE_STATE) {
		bpf_map_delete_elem(&erx_agent_connecting, &skey);
		if (!erx_sock_tuple(sk, &t))
			return;
		erx_endpoint(&ck.agent, t.saddr, t.sport, t.family, erx_sock_netns(sk));
		erx_endpoint(&ck.peer, t.daddr, t.dport, t.family, erx_sock_netns(sk));
		bpf_map_delete_elem(&erx_agent_conns, &ck);
		bpf_map_delete_elem(&erx_agent_endpoints, &ck.agent);
		return;
	} else {
		return;
	}
	if (!erx_sock_tuple(sk, &t))
		return;
	erx_endpoint(&k, t.saddr, t.sport, t.family, erx_sock_netns(sk));
	bpf_map_update_elem(&erx_agent_endpoints, &k, &kind, BPF_ANY);
	if (kind == ERX_AGENT_CLIENT) {
		ck.agent = k;
		erx_endpoint(&ck.peer, t.daddr, t.dport, t.family, erx_sock_netns(sk));
		bpf_map_update_elem(&erx_agent_conns, &ck, &one, BPF_ANY);
	}
}

/* A write to fd 1/2 that is a pipe: is it a log line? Pipes are classified by user space on
 * their first write (ERX_EV_LOG_PIPE): a container runtime's log pipe is, a pipe into another
 * local process (shell pipelines) is not. */
static __always_inline bool erx_log_pipe_wanted(struct file *f, int fd, __u64 ts)
{
	__u64 ino;
	__u8 *verdict, pending = ERX_PIPE_PENDING;
	struct erx_log_pipe_event *e;

	if (erx_cfg.log_pipes == ERX_LOG_PIPES_ALL)
		return true;
	if (erx_cfg.log_pipes == ERX_LOG_PIPES_NONE)
		return false;
	ino = BPF_CORE_READ(f, f_inode, i_ino);
	verdict = bpf_map_lookup_elem(&erx_log_pipes, &ino);
	if (verdict)
		return *verdict == ERX_PIPE_LOG;
	/* First write: ask user space, drop until it answers (a few lines of a new pipe). */
	if (bpf_map_update_elem(&erx_log_pipes, &ino, &pending, BPF_NOEXIST))
		return false;
	erx_count(ERX_CNT_PRODUCED);
	e = bpf_ringbuf_reserve(&erx_events, sizeof(*e), 0);
	if (!e) {
		erx_count(ERX_CNT_LOST_RINGBUF_FULL);
		bpf_map_delete_elem(&erx_log_pipes, &ino); /* ask again on the next write */
		return false;
	}
	erx_fill_header(&e->hdr, ERX_EV_LOG_PIPE, ERX_DIR_EGRESS, ERX_ROLE_UNKNOWN, ERX_SYS_WRITE, 0, ts);
	e->pipe_ino = ino;
	e->fd = fd;
	e->_pad0 = 0;
	bpf_ringbuf_submit(e, erx_rb_flags(sizeof(*e), true));
	return false;
}

/* stdout/stderr of the current process: captured as log lines? */
static __always_inline bool erx_log_wanted(struct file *f, int fd, __u32 tgid, __u64 ts)
{
	umode_t mode;

	if (!erx_cfg.observe_self && bpf_map_lookup_elem(&erx_log_muted_pids, &tgid))
		return false;
	mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & ERX_S_IFMT) == ERX_S_IFIFO)
		return erx_log_pipe_wanted(f, fd, ts);
	return true;
}

#endif
