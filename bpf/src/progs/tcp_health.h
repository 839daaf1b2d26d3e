/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Network health from TCP tracepoints, aggregated in erx_net_stats (no record per packet):
 *
 *  - inet_sock_set_state: CLOSE -> SYN_SENT (inside connect(): the owner and the start time),
 *    SYN_SENT -> ESTABLISHED (connect duration, first RTT sample), SYN_SENT -> CLOSE (a failed
 *    connect: counted by reason from sk_err, and a ring-buffer record), * -> CLOSE (last
 *    sample of RTT and counters, then the socket is forgotten);
 *  - tcp_retransmit_skb: one retransmitted segment;
 *  - tcp_send_reset / tcp_receive_reset: a RST sent (also for no socket: a closed port) or
 *    received.
 *
 * The loader skips (does not load) every program of a metric that is off; these programs run
 * in softirq context except the SYN_SENT transition. */
#ifndef ERX_PROGS_TCP_HEALTH_H
#define ERX_PROGS_TCP_HEALTH_H

static __always_inline void erx_tcp_connect_failed(struct sock *sk, struct erx_tcp_sock *ts, __u64 now)
{
	struct erx_conn_failure_event *ev;
	struct erx_conn_state *c;
	struct erx_net_stats *s;
	__u64 key = (__u64)sk;
	int err = BPF_CORE_READ(sk, sk_err);
	__u8 reason = erx_net_failure_reason(err);

	s = erx_net_stats_of(&ts->key);
	if (s && reason < ERX_NET_FAIL_MAX)
		__sync_fetch_and_add(&s->connect_failures[reason], 1);
	erx_count(ERX_CNT_PRODUCED);
	ev = bpf_ringbuf_reserve(&erx_events, sizeof(*ev), 0);
	if (!ev) {
		erx_count(ERX_CNT_LOST_RINGBUF_FULL);
		return;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	erx_sock_tuple(sk, &ev->tuple);
	c = bpf_map_lookup_elem(&erx_conns, &key);
	/* Softirq context (the RST or the last SYN timeout): the connecting thread is the socket's
	 * owner recorded at SYN_SENT, not the current task. */
	ev->hdr.kind = ERX_EV_CONN_FAILURE;
	ev->hdr.role = ERX_ROLE_CLIENT;
	ev->hdr.pid = ts->key.tgid;
	ev->hdr.tid = ts->tid;
	ev->hdr.conn_id = c ? c->id : 0;
	ev->hdr.cgroup_id = ts->cgroup_id;
	ev->hdr.ts_enter_ns = ts->connect_start_ns;
	ev->hdr.ts_exit_ns = now;
	ev->error = err;
	ev->reason = reason;
	bpf_ringbuf_submit(ev, erx_rb_flags(sizeof(*ev), true));
}

SEC("tracepoint/sock/inet_sock_set_state")
int erx_tcp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct sock *sk = (struct sock *)ctx->skaddr;
	__u64 key = (__u64)sk;
	int oldstate = ctx->oldstate, newstate = ctx->newstate;
	struct erx_tcp_sock *ts;
	struct erx_net_stats *s;
	__u64 now;

	if (ctx->protocol != ERX_IPPROTO_TCP)
		return 0;
	if (newstate == ERX_TCP_SYN_SENT) {
		/* tcp_v4_connect / tcp_v6_connect, in the connecting thread. */
		if (erx_pid_excluded(bpf_get_current_pid_tgid() >> 32))
			return 0;
		erx_tcp_sock_start(sk, ERX_NET_SIDE_CLIENT, bpf_ktime_get_ns());
		return 0;
	}
	if (newstate != ERX_TCP_ESTABLISHED && newstate != ERX_TCP_STATE_CLOSE)
		return 0;
	ts = bpf_map_lookup_elem(&erx_tcp_socks, &key);
	if (!ts)
		return 0;
	now = bpf_ktime_get_ns();
	if (oldstate == ERX_TCP_SYN_SENT && newstate == ERX_TCP_ESTABLISHED) {
		if (erx_net_on(ERX_NET_CONNECT_DURATION) && ts->connect_start_ns && now > ts->connect_start_ns) {
			s = erx_net_stats_of(&ts->key);
			if (s)
				erx_net_observe_connect(s, (now - ts->connect_start_ns) / 1000);
		}
		ts->connect_start_ns = 0;
		erx_tcp_sample(sk, ts, true); /* the handshake's RTT */
		return 0;
	}
	if (newstate == ERX_TCP_STATE_CLOSE) {
		if (oldstate == ERX_TCP_SYN_SENT) {
			if (erx_net_on(ERX_NET_CONNECT_FAILURES))
				erx_tcp_connect_failed(sk, ts, now);
		} else {
			erx_tcp_sample(sk, ts, true);
		}
		bpf_map_delete_elem(&erx_tcp_socks, &key);
	}
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int erx_tcp_retransmit(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	struct erx_net_key k;
	struct erx_net_stats *s;

	if (!erx_net_key_of((struct sock *)ctx->skaddr, &k))
		return 0;
	s = erx_net_stats_of(&k);
	if (s)
		__sync_fetch_and_add(&s->retransmits, 1);
	return 0;
}

SEC("tracepoint/tcp/tcp_receive_reset")
int erx_tcp_receive_reset(struct trace_event_raw_tcp_event_sk *ctx)
{
	struct erx_net_key k;
	struct erx_net_stats *s;

	if (!erx_net_key_of((struct sock *)ctx->skaddr, &k))
		return 0;
	s = erx_net_stats_of(&k);
	if (s)
		__sync_fetch_and_add(&s->resets_received, 1);
	return 0;
}

/* A RST the host sends. Without a socket (a SYN to a closed port, a segment for a connection
 * long gone) it counts for tgid 0, server side, on the local port the segment was sent to; the
 * tracepoint has already swapped the segment's addresses into (local, remote). */
SEC("tracepoint/tcp/tcp_send_reset")
int erx_tcp_send_reset(struct trace_event_raw_tcp_send_reset *ctx)
{
	struct sock *sk = (struct sock *)ctx->skaddr;
	struct erx_net_key k = {};
	struct erx_net_stats *s;

	if (sk) {
		if (!erx_net_key_of(sk, &k))
			return 0;
	} else {
		struct sockaddr_in6 local = {}, remote = {};

		bpf_core_read(&local, sizeof(local), &ctx->saddr);
		bpf_core_read(&remote, sizeof(remote), &ctx->daddr);
		k.family = local.sin6_family;
		k.side = ERX_NET_SIDE_SERVER;
		k.port = bpf_ntohs(local.sin6_port);
		if (k.family == ERX_AF_INET)
			__builtin_memcpy(k.peer_addr, &((struct sockaddr_in *)&remote)->sin_addr, 4);
		else if (k.family == ERX_AF_INET6)
			__builtin_memcpy(k.peer_addr, &remote.sin6_addr, 16);
		else
			return 0;
	}
	s = erx_net_stats_of(&k);
	if (s)
		__sync_fetch_and_add(&s->resets_sent, 1);
	return 0;
}

#endif
