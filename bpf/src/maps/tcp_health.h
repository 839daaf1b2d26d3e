/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Network health: per-peer aggregates read by user space on an interval, what the kernel side
 * remembers per TCP socket between samples, and the queue of failed connects. */
#ifndef ERX_MAPS_TCP_HEALTH_H
#define ERX_MAPS_TCP_HEALTH_H

/* (process, peer, service port, side) -> cumulative counters and histograms. A hash, not an
 * LRU: an entry is never evicted behind user space's back. When it is full, updates go to the
 * overflow entry (erx_net_key.overflow = 1), which user space creates at load; user space
 * deletes the entries of processes that are gone. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* resized from receivers.ebpf.network_metrics.max_series */
	__type(key, struct erx_net_key);
	__type(value, struct erx_net_stats);
} erx_net_stats SEC(".maps");

/* What the kernel side keeps per TCP socket (struct sock *) between samples. */
struct erx_tcp_sock {
	struct erx_net_key key;
	__u64 connect_start_ns; /* SYN_SENT (inside connect()), 0 once connected or when not a client */
	__u64 cgroup_id;
	__u64 bytes_acked;      /* counters of the socket already added to erx_net_stats */
	__u64 bytes_received;
	__u32 segs_out;
	__u32 segs_in;
	__u32 tid;              /* the thread that called connect() */
	__u8 active_open;       /* this end sent the SYN (bytes_acked counts it) */
	__u8 _pad0[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* resized from receivers.ebpf.max_connections */
	__type(key, __u64);
	__type(value, struct erx_tcp_sock);
} erx_tcp_socks SEC(".maps");

/* Zeroes for new erx_net_stats entries (too large for the BPF stack). */
struct erx_net_stats erx_net_stats_zero = {};

/* Packets without a local socket seen at tc (forwarded or proxied below the socket layer). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* resized from receivers.ebpf.network_metrics.max_series */
	__type(key, struct erx_tc_flow_key);
	__type(value, struct erx_tc_flow_stats);
} erx_tc_flows SEC(".maps");

#endif
