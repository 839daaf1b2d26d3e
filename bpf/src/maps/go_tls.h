/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Go crypto/tls: per attached Go executable, how to find a *tls.Conn's fd; the
 * (*Conn).Read/Write calls in flight, per goroutine. */
#ifndef ERX_MAPS_GO_TLS_H
#define ERX_MAPS_GO_TLS_H

/* Index: the uprobe's cookie (receiver/discovery/tls_libraries.py assigns them). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ERX_GO_TLS_BINARIES);
	__type(key, __u32);
	__type(value, struct erx_go_tls_binary);
} erx_go_tls_binaries SEC(".maps");

/* A goroutine moves between threads while it blocks in Read: calls are keyed by the
 * goroutine (its g, R14 in the register ABI), not the thread. */
struct erx_go_tls_key {
	__u64 g;
	__u32 tgid;
	__u32 _pad0;
};

struct erx_go_tls_call {
	__u64 sk;        /* struct sock * of the connection's socket */
	__u64 buf;       /* the plaintext slice's data */
	__u64 ts_enter_ns;
	__u8 direction;  /* enum erx_direction */
	__u8 _pad0[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct erx_go_tls_key);
	__type(value, struct erx_go_tls_call);
} erx_go_tls_calls SEC(".maps");

#endif
