/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The agent never observes itself (the peer half; the state and log half is self_tracking.h). Its own syscalls are never traced (erx_pid_excluded); these
 * helpers also leave out the other end of its connections — the collector receiving its exports,
 * the scraper of its /metrics, a health check — and the log output of processes that receive its
 * exports (a collector printing what it got would otherwise be exported again: a loop).
 * erx_cfg.observe_self turns that off for debugging. */
#ifndef ERX_LIB_SELF_H
#define ERX_LIB_SELF_H

#define ERX_S_IFIFO 0010000
#define ERX_TCP_SYN_SENT_STATE 2
#define ERX_TCP_LISTEN_STATE 10
#define ERX_TCP_CLOSE_STATE 7
#define ERX_TCP_ESTABLISHED_STATE 1

static __always_inline __u32 erx_sock_netns(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* The endpoint key of addr:port: IPv4-mapped IPv6 addresses are keyed as IPv4, so an IPv6
 * socket of the agent and an IPv4 socket of its peer agree. */
static __always_inline void erx_endpoint(struct erx_endpoint_key *k, const __u8 *addr, __u16 port, __u16 family,
					 __u32 netns)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->port = port;
	k->netns = netns;
	if (family == ERX_AF_INET6 && addr[0] == 0 && addr[1] == 0 && addr[2] == 0 && addr[3] == 0 && addr[4] == 0 &&
	    addr[5] == 0 && addr[6] == 0 && addr[7] == 0 && addr[8] == 0 && addr[9] == 0 && addr[10] == 0xff &&
	    addr[11] == 0xff) {
		k->family = ERX_AF_INET;
		__builtin_memcpy(k->addr, addr + 12, 4);
		return;
	}
	k->family = family;
	if (family == ERX_AF_INET)
		__builtin_memcpy(k->addr, addr, 4);
	else
		__builtin_memcpy(k->addr, addr, 16);
}

static __always_inline bool erx_key_loopback(const struct erx_endpoint_key *k)
{
	if (k->family == ERX_AF_INET)
		return k->addr[0] == 127;
	for (int i = 0; i < 15; i++)
		if (k->addr[i])
			return false;
	return k->addr[15] == 1;
}

/* Is the remote end of t (a socket of the current, non-agent, process) one of the agent's
 * sockets? Returns its enum erx_agent_endpoint, or 0. Listeners on the wildcard address match
 * loopback peers only (a wildcard listener's port on another host is another host's). */
static __always_inline __u8 erx_agent_peer(struct sock *sk, const struct erx_tuple *t)
{
	struct erx_endpoint_key k;
	__u8 *v;

	if (erx_cfg.observe_self || !t->dport || (t->family != ERX_AF_INET && t->family != ERX_AF_INET6))
		return 0;
	struct erx_agent_conn_key ck;
	__u32 netns = erx_sock_netns(sk);

	erx_endpoint(&k, t->daddr, t->dport, t->family, netns);
	v = bpf_map_lookup_elem(&erx_agent_endpoints, &k);
	if (v && *v == ERX_AGENT_CLIENT) {
		/* the agent's local port, but maybe another of its connections' (see erx_agent_conns) */
		ck.agent = k;
		erx_endpoint(&ck.peer, t->saddr, t->sport, t->family, netns);
		if (bpf_map_lookup_elem(&erx_agent_conns, &ck))
			return ERX_AGENT_CLIENT;
	} else if (v) {
		return *v == ERX_AGENT_CLIENT_SEEDED ? ERX_AGENT_CLIENT : *v;
	}
	if (!erx_key_loopback(&k))
		return 0;
	__builtin_memset(k.addr, 0, sizeof(k.addr));
	v = bpf_map_lookup_elem(&erx_agent_endpoints, &k);
	return v && *v == ERX_AGENT_LISTENER ? ERX_AGENT_LISTENER : 0;
}

/* A connection of the current process whose other end is the agent: not traced; and when the
 * agent dialled it (an export), the process's own output is no log capture. */
static __always_inline bool erx_connection_to_agent(struct sock *sk, const struct erx_tuple *t)
{
	__u8 kind = erx_agent_peer(sk, t);
	__u32 tgid;
	__u8 one = 1;

	if (!kind)
		return false;
	if (kind == ERX_AGENT_CLIENT) {
		tgid = bpf_get_current_pid_tgid() >> 32;
		bpf_map_update_elem(&erx_log_muted_pids, &tgid, &one, BPF_ANY);
	}
	return true;
}

#endif
