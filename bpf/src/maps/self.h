/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The agent never observes itself: its own sockets, the processes that receive its exports, and
 * which stdout/stderr pipes are log destinations. */
#ifndef ERX_MAPS_SELF_H
#define ERX_MAPS_SELF_H

/* The agent's sockets (by endpoint): set at ESTABLISHED/LISTEN (see erx_agent_connecting), seeded by
 * user space for sockets opened before attach, dropped at CLOSE. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct erx_endpoint_key);
	__type(value, __u8); /* enum erx_agent_endpoint */
} erx_agent_endpoints SEC(".maps");

/* Both ends of each connection the agent dialled (set at ESTABLISHED, dropped at CLOSE): a local
 * port is not unique to one connection (connect() gives one ephemeral port to sockets whose
 * destinations differ), so another process's connection from the agent's local port is the
 * agent's only when its other end is the agent's peer too. */
struct erx_agent_conn_key {
	struct erx_endpoint_key agent; /* the agent's local end */
	struct erx_endpoint_key peer;  /* the end it dialled */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct erx_agent_conn_key);
	__type(value, __u8);
} erx_agent_conns SEC(".maps");

/* The agent's sockets between connect() (SYN_SENT, in its thread: the local port is not chosen
 * yet) and ESTABLISHED (softirq: the port is known), by struct sock pointer. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} erx_agent_connecting SEC(".maps");

/* Processes that accepted a connection from the agent (a collector receiving its exports): their
 * stdout/stderr is never log capture (it prints what the agent sent: a loop). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);  /* tgid */
	__type(value, __u8);
} erx_log_muted_pids SEC(".maps");

/* stdout/stderr pipes by inode: enum erx_log_pipe_verdict. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, __u8);
} erx_log_pipes SEC(".maps");

#endif
