/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Network health, shared by the TCP tracepoint programs (progs/tcp_health.h) and the data
 * syscalls (progs/syscalls_data.h): which erx_net_stats entry a socket counts into, the kernel
 * histograms, and sampling a socket's smoothed RTT and byte counters.
 *
 * A socket's entry is decided once, in process context (connect() for clients, the first data
 * syscall otherwise), and kept in erx_tcp_socks: events in softirq context (retransmits, resets,
 * the handshake's end) then count for the process that owns the socket. A socket never seen in
 * process context counts for tgid 0, its side guessed from the ports (the lower port is taken
 * for the service's: ephemeral ports are high). */
#ifndef ERX_LIB_TCP_HEALTH_H
#define ERX_LIB_TCP_HEALTH_H

#define ERX_TCP_ESTABLISHED 1
#define ERX_TCP_SYN_SENT 2
/* ERX_TCP_CLOSE (7) is defined by progs/syscalls_conn.h's users too */
#define ERX_TCP_STATE_CLOSE 7

#define ERX_RCV_SHUTDOWN 1
#define ERX_SEND_SHUTDOWN 2

#define ERX_ECONNRESET 104
#define ERX_ENETUNREACH 101
#define ERX_ETIMEDOUT 110
#define ERX_ECONNREFUSED 111
#define ERX_EHOSTUNREACH 113

/* Metrics that follow sockets (all but tc_flow): the data syscalls then note each socket's owner. */
#define ERX_NET_SOCKET_METRICS (ERX_NET_RTT | ERX_NET_RETRANSMITS | ERX_NET_RESETS | ERX_NET_CONNECT_FAILURES | \
				ERX_NET_CONNECT_DURATION | ERX_NET_FLOW)

static __always_inline bool erx_net_on(__u32 metric)
{
	return (erx_cfg.net_metrics & metric) != 0;
}

/* The tgid of the current task as the agent numbers processes (see erx_agent_view). */
static __always_inline __u32 erx_net_current_tgid(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	erx_agent_view(&tgid);
	return tgid;
}

/* The entry of sk for its owner tgid. side UNKNOWN: guessed from the ports. 0 when sk is not
 * an IPv4/IPv6 socket. Reads only struct sock_common, so request and timewait socks work too. */
static __always_inline int erx_net_key_from_sock(struct sock *sk, struct erx_net_key *k, __u32 tgid, __u8 side)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 lport, rport;

	__builtin_memset(k, 0, sizeof(*k));
	if (family != ERX_AF_INET && family != ERX_AF_INET6)
		return 0;
	k->family = family;
	k->tgid = tgid;
	k->side = side;
	lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (side == ERX_NET_SIDE_CLIENT)
		k->port = rport;
	else if (side == ERX_NET_SIDE_SERVER)
		k->port = lport;
	else
		k->port = rport <= lport ? rport : lport;
	if (family == ERX_AF_INET)
		bpf_core_read(k->peer_addr, 4, &sk->__sk_common.skc_daddr);
	else
		bpf_core_read(k->peer_addr, 16, &sk->__sk_common.skc_v6_daddr);
	return 1;
}

/* The entry of a socket: from erx_tcp_socks when a process owns it, else built for tgid 0. */
static __always_inline int erx_net_key_of(struct sock *sk, struct erx_net_key *k)
{
	__u64 key = (__u64)sk;
	struct erx_tcp_sock *ts = bpf_map_lookup_elem(&erx_tcp_socks, &key);

	if (ts) {
		*k = ts->key;
		return 1;
	}
	return erx_net_key_from_sock(sk, k, 0, ERX_NET_SIDE_UNKNOWN);
}

/* The stats entry of k, created on first use; the overflow entry when the map is full. */
static __always_inline struct erx_net_stats *erx_net_stats_of(const struct erx_net_key *k)
{
	struct erx_net_stats *s = bpf_map_lookup_elem(&erx_net_stats, k);
	struct erx_net_key overflow = {};

	if (s)
		return s;
	bpf_map_update_elem(&erx_net_stats, k, &erx_net_stats_zero, BPF_NOEXIST);
	s = bpf_map_lookup_elem(&erx_net_stats, k);
	if (s)
		return s;
	overflow.overflow = 1;
	return bpf_map_lookup_elem(&erx_net_stats, &overflow);
}

/* Add one value (microseconds) to a kernel histogram with n bounds (upper-inclusive buckets). */
static __always_inline void erx_net_observe(__u64 *count, __u64 *sum, __u64 *buckets, const volatile __u32 *bounds,
					    __u32 n, __u64 v)
{
	__u32 i;

	for (i = 0; i < ERX_NET_BOUNDS; i++) {
		if (i >= n || v <= bounds[i])
			break;
	}
	if (i > ERX_NET_BOUNDS)
		i = ERX_NET_BOUNDS;
	__sync_fetch_and_add(count, 1);
	__sync_fetch_and_add(sum, v);
	__sync_fetch_and_add(&buckets[i], 1);
}

static __always_inline void erx_net_observe_rtt(struct erx_net_stats *s, __u64 us)
{
	erx_net_observe(&s->rtt_count, &s->rtt_sum_us, s->rtt_buckets, erx_cfg.net_rtt_bounds_us, erx_cfg.net_rtt_bounds,
			us);
}

static __always_inline void erx_net_observe_connect(struct erx_net_stats *s, __u64 us)
{
	erx_net_observe(&s->connect_count, &s->connect_sum_us, s->connect_buckets, erx_cfg.net_connect_bounds_us,
			erx_cfg.net_connect_bounds, us);
}

/* Sample sk now: its smoothed RTT (when with_rtt) and what its byte and segment counters moved
 * since the last sample. Two samples of one socket at the same instant on two CPUs may add a
 * delta twice (no compare-and-swap on this target); counters only grow, so nothing goes negative. */
static __always_inline void erx_tcp_sample(struct sock *sk, struct erx_tcp_sock *ts, bool with_rtt)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	struct erx_net_stats *s = erx_net_stats_of(&ts->key);

	if (!s)
		return;
	if (with_rtt && erx_net_on(ERX_NET_RTT)) {
		__u32 srtt = BPF_CORE_READ(tp, srtt_us) >> 3; /* srtt_us holds 8 x the RTT */
		if (srtt)
			erx_net_observe_rtt(s, srtt);
	}
	if (erx_net_on(ERX_NET_FLOW)) {
		__u64 acked = BPF_CORE_READ(tp, bytes_acked);
		__u64 received = BPF_CORE_READ(tp, bytes_received);
		__u32 out = BPF_CORE_READ(tp, segs_out);
		__u32 in = BPF_CORE_READ(tp, segs_in);
		__u8 shutdown = BPF_CORE_READ(sk, sk_shutdown);

		/* The counters follow sequence numbers: bytes_acked counts our SYN (active opens
		 * only: a passive socket starts past its SYN-ACK) and, once acked, our FIN;
		 * bytes_received the peer's FIN. Only payload is wanted. */
		if (ts->active_open && acked)
			acked -= 1;
		if ((shutdown & ERX_SEND_SHUTDOWN) && acked &&
		    BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq))
			acked -= 1; /* write_seq counts the FIN: everything up to it was acked */
		if ((shutdown & ERX_RCV_SHUTDOWN) && received)
			received -= 1;

		if (acked > ts->bytes_acked) {
			__sync_fetch_and_add(&s->bytes_sent, acked - ts->bytes_acked);
			ts->bytes_acked = acked;
		}
		if (received > ts->bytes_received) {
			__sync_fetch_and_add(&s->bytes_received, received - ts->bytes_received);
			ts->bytes_received = received;
		}
		if (out != ts->segs_out) {
			__sync_fetch_and_add(&s->segs_out, (__u32)(out - ts->segs_out));
			ts->segs_out = out;
		}
		if (in != ts->segs_in) {
			__sync_fetch_and_add(&s->segs_in, (__u32)(in - ts->segs_in));
			ts->segs_in = in;
		}
	}
}

/* Remember sk as owned by the current process (process context only). */
static __always_inline struct erx_tcp_sock *erx_tcp_sock_start(struct sock *sk, __u8 side, __u64 connect_start_ns)
{
	__u64 key = (__u64)sk;
	__u64 id = bpf_get_current_pid_tgid();
	struct erx_tcp_sock fresh = {};

	if (!erx_net_key_from_sock(sk, &fresh.key, erx_net_current_tgid(), side))
		return NULL;
	fresh.connect_start_ns = connect_start_ns;
	fresh.cgroup_id = bpf_get_current_cgroup_id();
	fresh.tid = (__u32)id;
	/* Unknown side: the guess took the remote port for the service's, so we are the client. */
	fresh.active_open = side == ERX_NET_SIDE_CLIENT ||
			    (side == ERX_NET_SIDE_UNKNOWN && fresh.key.port == bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)));
	if (bpf_map_update_elem(&erx_tcp_socks, &key, &fresh, BPF_ANY))
		return NULL;
	return bpf_map_lookup_elem(&erx_tcp_socks, &key);
}

/* From a data syscall on a tracked connection (ts_ns: its entry time): at most once per
 * net_sample_interval_ns per connection, note the socket's owner and sample it. The throttle lives in the
 * connection state the syscall already looked up, so the common case costs one comparison. */
static __always_inline void erx_tcp_on_data_syscall(struct sock *sk, struct erx_conn_state *c, __u64 ts_ns)
{
	__u64 key = (__u64)sk;
	struct erx_tcp_sock *ts;
	__u8 side;

	if (!erx_net_on(ERX_NET_SOCKET_METRICS) || ts_ns < c->net_next_ns)
		return;
	if (c->tuple.transport != ERX_TRANSPORT_TCP) {
		c->net_next_ns = ~0ULL;
		return;
	}
	c->net_next_ns = ts_ns + erx_cfg.net_sample_interval_ns;
	ts = bpf_map_lookup_elem(&erx_tcp_socks, &key);
	if (!ts) {
		side = c->role == ERX_ROLE_CLIENT ? ERX_NET_SIDE_CLIENT
		       : c->role == ERX_ROLE_SERVER ? ERX_NET_SIDE_SERVER
						     : ERX_NET_SIDE_UNKNOWN;
		ts = erx_tcp_sock_start(sk, side, 0);
		if (!ts)
			return;
	}
	erx_tcp_sample(sk, ts, true);
}

static __always_inline __u8 erx_net_failure_reason(int err)
{
	switch (err) {
	case ERX_ECONNREFUSED:
		return ERX_NET_FAIL_REFUSED;
	case ERX_ETIMEDOUT:
		return ERX_NET_FAIL_TIMEOUT;
	case ERX_EHOSTUNREACH:
		return ERX_NET_FAIL_HOST_UNREACHABLE;
	case ERX_ENETUNREACH:
		return ERX_NET_FAIL_NET_UNREACHABLE;
	case ERX_ECONNRESET:
		return ERX_NET_FAIL_RESET;
	case 0:
		return ERX_NET_FAIL_ABORTED;
	default:
		return ERX_NET_FAIL_OTHER;
	}
}

#endif
