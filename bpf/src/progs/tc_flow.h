/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* tc classifiers (direct-action, attached by user space to the interfaces named in
 * network_metrics.tc_interfaces): packets that no local socket sent or will receive, i.e. traffic
 * forwarded or proxied below the socket layer, which the syscall and TCP tracepoints never see.
 * Egress: skb->sk is empty. Ingress: no local TCP socket (established or listening) or UDP
 * socket matches the packet's tuple. Counted per (interface, addresses, lower port, protocol,
 * direction) in erx_tc_flows; every packet is let through (TC_ACT_UNSPEC: the next filter or
 * the default decides). */
#ifndef ERX_PROGS_TC_FLOW_H
#define ERX_PROGS_TC_FLOW_H

#define ERX_TC_ACT_UNSPEC (-1)
#define ERX_ETH_P_IP 0x0800
#define ERX_ETH_P_IPV6 0x86DD

struct erx_tc_ports {
	__be16 source;
	__be16 dest;
};

static __always_inline void erx_tc_count(struct __sk_buff *skb, __u8 direction)
{
	struct erx_tc_flow_key k = {};
	struct erx_tc_flow_stats *v, zero = {};
	struct bpf_sock_tuple tuple = {};
	struct erx_tc_ports ports = {};
	__u32 l4_off, tuple_len;
	__u16 proto = bpf_ntohs(skb->protocol);

	if (direction == ERX_DIR_EGRESS && skb->sk)
		return; /* a local socket sent it: the socket tracepoints count it */
	if (proto == ERX_ETH_P_IP) {
		struct iphdr ip;

		if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
			return;
		k.family = ERX_AF_INET;
		k.protocol = ip.protocol;
		__builtin_memcpy(k.saddr, &ip.saddr, 4);
		__builtin_memcpy(k.daddr, &ip.daddr, 4);
		l4_off = ip.ihl * 4;
		tuple.ipv4.saddr = ip.saddr;
		tuple.ipv4.daddr = ip.daddr;
		tuple_len = sizeof(tuple.ipv4);
	} else if (proto == ERX_ETH_P_IPV6) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET))
			return;
		k.family = ERX_AF_INET6;
		k.protocol = ip6.nexthdr; /* extension headers: counted under their own number */
		__builtin_memcpy(k.saddr, &ip6.saddr, 16);
		__builtin_memcpy(k.daddr, &ip6.daddr, 16);
		l4_off = sizeof(ip6);
		__builtin_memcpy(tuple.ipv6.saddr, &ip6.saddr, 16);
		__builtin_memcpy(tuple.ipv6.daddr, &ip6.daddr, 16);
		tuple_len = sizeof(tuple.ipv6);
	} else {
		return;
	}
	if (k.protocol == ERX_IPPROTO_TCP || k.protocol == ERX_IPPROTO_UDP) {
		if (bpf_skb_load_bytes_relative(skb, l4_off & 0xff, &ports, sizeof(ports), BPF_HDR_START_NET) == 0) {
			__u16 sp = bpf_ntohs(ports.source), dp = bpf_ntohs(ports.dest);
			k.port = sp < dp ? sp : dp;
		}
		if (direction == ERX_DIR_INGRESS) {
			struct bpf_sock *sk;

			if (k.family == ERX_AF_INET) {
				tuple.ipv4.sport = ports.source;
				tuple.ipv4.dport = ports.dest;
			} else {
				tuple.ipv6.sport = ports.source;
				tuple.ipv6.dport = ports.dest;
			}
			if (k.protocol == ERX_IPPROTO_TCP)
				sk = bpf_skc_lookup_tcp(skb, &tuple, tuple_len, BPF_F_CURRENT_NETNS, 0);
			else
				sk = bpf_sk_lookup_udp(skb, &tuple, tuple_len, BPF_F_CURRENT_NETNS, 0);
			if (sk) {
				bpf_sk_release(sk);
				return; /* a local socket takes it */
			}
		}
	}
	k.ifindex = skb->ifindex;
	k.direction = direction;
	v = bpf_map_lookup_elem(&erx_tc_flows, &k);
	if (!v) {
		bpf_map_update_elem(&erx_tc_flows, &k, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&erx_tc_flows, &k);
		if (!v) {
			struct erx_tc_flow_key overflow = { .overflow = 1 };
			v = bpf_map_lookup_elem(&erx_tc_flows, &overflow);
			if (!v)
				return;
		}
	}
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, skb->len);
}

SEC("tc")
int erx_tc_ingress(struct __sk_buff *skb)
{
	erx_tc_count(skb, ERX_DIR_INGRESS);
	return ERX_TC_ACT_UNSPEC;
}

SEC("tc")
int erx_tc_egress(struct __sk_buff *skb)
{
	erx_tc_count(skb, ERX_DIR_EGRESS);
	return ERX_TC_ACT_UNSPEC;
}

#endif
