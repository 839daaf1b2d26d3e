/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Connection table keyed by struct sock *: the id, role and tuple of every socket seen. */
#ifndef ERX_MAPS_CONNS_H
#define ERX_MAPS_CONNS_H

struct erx_conn_state {
	__u64 id;
	__u64 bytes_sent;
	__u64 bytes_received;
	struct erx_tuple tuple;
	__u8 role;     /* enum erx_role */
	__u8 ignored;  /* excluded by port filter or marked by user space */
	__u8 tls;      /* a TLS library call used this socket: its syscall bytes are ciphertext */
	__u8 http;     /* enum erx_http_mode (http_pairing) */
	__u8 announced; /* a record other than paired transactions went to user space (open, data) */
	__u8 _pad0[3];
	__u64 net_next_ns; /* network health: next data syscall that samples the socket (tcp_health.h) */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* resized from receivers.ebpf.max_connections */
	__type(key, __u64);
	__type(value, struct erx_conn_state);
} erx_conns SEC(".maps");

/* Connections user space classified as not worth capturing, keyed by conn id. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);  /* enum erx_ignore */
} erx_ignored_conns SEC(".maps");

/* Source of connection ids (never 0). */
__u64 erx_next_conn_id = 1;

#endif
