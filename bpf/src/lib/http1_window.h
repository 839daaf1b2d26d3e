/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* HTTP/1 pairing (lib/http1_pair.h): what the steps of one syscall share, and reading the
 * syscall's bytes (a buffer, or iovecs) into the per-CPU window where heads and chunk framing
 * are parsed. */
#ifndef ERX_LIB_HTTP1_WINDOW_H
#define ERX_LIB_HTTP1_WINDOW_H

/* iovecs read at once by erx_http_load. */
#define ERX_HTTP_IOV_BATCH 4

/* What erx_http_on_data does once the syscall's bytes were followed. */
enum erx_http_action {
	ERX_ACT_NONE = 0,          /* every byte was consumed here */
	ERX_ACT_HANDOVER = 1,      /* the connection goes to the payload path from handover_at */
	ERX_ACT_HANDOVER_REQ = 2,  /* its requests do (this syscall is a request one): pipelining */
};

/* What the steps of one syscall reach (on erx_http_on_data's stack): pointers only; the
 * scalars they work on are in the per-CPU scratch (x). */
struct erx_http_refs {
	struct erx_http_ctx *x;
	struct erx_http_conn *s;
	struct erx_conn_state *c;
	struct erx_http_scratch *sc;
};

struct erx_http_gather {
	__u64 iov;
	__u8 *w;
	__u32 at;
	__u32 skip;
	__u32 want;
	__u32 off;
};

/* One iovec: skip what is before the wanted bytes, copy what is wanted of the rest. Returns 1
 * when done (or the bytes cannot be read). */
static __always_inline int erx_http_gather_one(struct erx_http_gather *g, __u64 base, __u64 len)
{
	__u64 o;

	if (g->off >= g->want)
		return 1;
	if (g->skip >= len) {
		g->skip -= len;
		return 0;
	}
	len -= g->skip;
	if (len > g->want - g->off)
		len = g->want - g->off;
	o = (g->at + g->off) & ERX_WIN_MASK;
	len &= ERX_WIN_MASK;
	if (bpf_probe_read_user(g->w + o, len, (void *)(base + g->skip)))
		return 1;
	g->skip = 0;
	g->off += len;
	return g->off >= g->want;
}

/* bpf_loop step over the iovecs past the first ERX_HTTP_IOV_BATCH. */
static long erx_http_gather_step(__u64 i, struct erx_http_gather *g)
{
	struct iovec iov;

	if (bpf_probe_read_user(&iov, sizeof(iov), (void *)(g->iov + (i + ERX_HTTP_IOV_BATCH) * sizeof(struct iovec))))
		return 1;
	return erx_http_gather_one(g, (__u64)iov.iov_base, iov.iov_len);
}

/* Bytes [pos, pos + len) of the syscall's buffer(s) into the window at `at` (at + len is at
 * most 2 * ERX_HTTP_MAX_HEAD). 0 when all of them were read. The first iovecs are read in one
 * go (a response's head and body are usually the first two). */
static __noinline int erx_http_load(struct erx_http_refs *r, __u32 pos, __u32 len, __u32 at)
{
	struct erx_http_ctx *x = r->x;
	struct erx_http_gather g = {};
	struct iovec v[ERX_HTTP_IOV_BATCH];
	__u64 size;
	__u32 n;

	if (!x->src)
		return -1;
	if (!x->iovcnt) {
		size = len & ERX_WIN_MASK;
		return bpf_probe_read_user(r->sc->w + (at & ERX_WIN_MASK), size, (void *)(x->src + pos)) ? -1 : 0;
	}
	g.iov = x->src;
	g.w = r->sc->w;
	g.at = at;
	g.skip = pos;
	g.want = len;
	n = x->iovcnt > ERX_HTTP_IOV_BATCH ? ERX_HTTP_IOV_BATCH : x->iovcnt;
	size = n * sizeof(struct iovec);
	if (size > sizeof(v) || bpf_probe_read_user(v, size, (void *)x->src))
		return -1;
	for (__u32 i = 0; i < ERX_HTTP_IOV_BATCH; i++) {
		if (i >= n || erx_http_gather_one(&g, (__u64)v[i].iov_base, v[i].iov_len))
			break;
	}
	if (g.off < len && x->iovcnt > ERX_HTTP_IOV_BATCH) {
		n = x->iovcnt > ERX_MAX_IOVECS ? ERX_MAX_IOVECS : x->iovcnt;
		bpf_loop(n - ERX_HTTP_IOV_BATCH, erx_http_gather_step, &g, 0);
	}
	return g.off == len ? 0 : -1;
}

#endif
