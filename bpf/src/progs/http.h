/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* HTTP/1 pairing (lib/http1_pair.h) as programs of their own, reached by a tail call from the
 * data syscalls' exit programs and the TLS uprobes' return programs (one program per program
 * type: a tail call stays within its type). The pairing is verified once per type this way,
 * not once in every program that moves data. Not attached anywhere: the loader puts them in
 * erx_http_tp_progs and erx_http_uprobe_progs. */
#ifndef ERX_PROGS_HTTP_H
#define ERX_PROGS_HTTP_H

/* Hand a data syscall of connection c to the HTTP program (progs: the prog array of the
 * caller's type). Returns only when the tail call failed (then the payload path goes on). */
static __always_inline void erx_http_tail(void *ctx, void *progs, const struct erx_inflight *inf,
					  struct erx_conn_state *c, __u64 sk, __u32 n, __u64 src, __u32 iovcnt,
					  __u64 uaddr, __u8 kind)
{
	__u32 zero = 0;
	struct erx_http_scratch *sc = bpf_map_lookup_elem(&erx_http_scratch, &zero);

	if (!sc)
		return;
	sc->call.inf = *inf;
	sc->call.conn = *c;
	sc->call.sk = sk;
	sc->call.n = n;
	sc->call.src = src;
	sc->call.iovcnt = iovcnt;
	sc->call.uaddr = uaddr;
	sc->call.kind = kind;
	bpf_tail_call(ctx, progs, 0);
}

static __always_inline int erx_http_program(void)
{
	__u32 zero = 0;
	struct erx_http_scratch *sc = bpf_map_lookup_elem(&erx_http_scratch, &zero);

	if (sc)
		erx_http_on_data(&sc->call);
	return 0;
}

SEC("tracepoint")
int erx_http_tp(void *ctx)
{
	return erx_http_program();
}

SEC("uprobe")
int erx_http_uprobe(void *ctx)
{
	return erx_http_program();
}

#endif
