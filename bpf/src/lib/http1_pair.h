/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* HTTP/1 transactions paired in the kernel (erx_config.http_pairing).
 *
 * A connection is paired when its first bytes are a request with a known method in the
 * direction its role sends requests (a server's first ingress, a client's first egress; TCP or
 * unix stream). Each data syscall of it is then followed here, message by message, without a
 * data record: a request head is parsed (method, target, Host, User-Agent, traceparent and
 * tracestate are kept in the state's transaction), bodies are counted by their framing
 * (Content-Length, chunked, to close), 1xx interim responses noted, and the transaction is
 * submitted once its request and final response are both complete (http_overload.h).
 *
 * What the kernel does not pair is handed over to user space at a message boundary, counted by
 * why (ERX_CNT_HTTP_FALLBACK_*): the syscall's bytes from the start of the request that cannot
 * be paired (the earlier bytes of a head that began in earlier syscalls are submitted first, as
 * one data record with the facts of the syscall that carried its first byte), and every byte of
 * the connection after them, as data records. A request that arrives before the previous
 * response ended (pipelining) hands the requests over from that request on, and the responses
 * once the pending one ended (the kernel still submits that transaction). The payload path's
 * parser thus always starts at a request.
 *
 * The entry points (erx_http_on_data, erx_http_on_close) and the heavy parts (parse, framing,
 * submit) are global functions: the verifier checks each once, not at every call site. */
#ifndef ERX_LIB_HTTP1_PAIR_H
#define ERX_LIB_HTTP1_PAIR_H

#include "lib/http1_parse.h"
#include "lib/http1_chunked.h"
#include "lib/http_overload.h"

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

/* -- reading the syscall's bytes into the window ----------------------------------------------- */

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

/* -- the transaction -------------------------------------------------------------------------- */

static __always_inline void erx_http_handover(struct erx_http_ctx *x, __u8 action, __u32 reason)
{
	x->action = action;
	x->reason = reason;
	x->handover_at = x->pos;
}

/* The transaction is complete (x: the syscall that completed it). */
static __always_inline void erx_http_finish(struct erx_http_ctx *x, struct erx_http_conn *s)
{
	s->tx.hdr.syscall = x->syscall;
	s->tx.hdr.tid = x->tid;
	s->tx.hdr.ts_enter_ns = x->ts_enter;
	s->tx.hdr.ts_exit_ns = x->now;
	erx_http_submit(&s->tx);
	s->open = 0;
	s->req_done = 0;
	s->resp_done = 0;
	s->req.state = ERX_HS_IDLE;
	s->resp.state = ERX_HS_IDLE;
}

static __always_inline void erx_http_req_complete(struct erx_http_ctx *x, struct erx_http_conn *s)
{
	s->req_done = 1;
	s->req.state = ERX_HS_IDLE;
	if (s->resp_done)
		erx_http_finish(x, s);
}

static __always_inline void erx_http_resp_complete(struct erx_http_ctx *x, struct erx_http_conn *s)
{
	s->resp_done = 1;
	s->resp.state = ERX_HS_IDLE;
	s->tx.end_ns = x->now;
	if (s->req_done)
		erx_http_finish(x, s);
}

static __always_inline void erx_http_body(struct erx_http_dir *d, __u8 state, __u64 len)
{
	d->state = state;
	d->remaining = len;
	d->chunk = ERX_CH_SIZE;
	d->chunk_size = 0;
	d->size_digits = 0;
	d->line_len = 0;
}

/* Copy len (<= 256) bytes of the window 8 at a time: both sides have room past len (the window,
 * and the slack after tx.strings), and what lands past len is overwritten or cut off. */
static __noinline void erx_copy_words(__u8 *dst, const __u8 *w, __u32 src, __u32 len)
{
	for (__u32 i = 0; i < ERX_HTTP_TARGET_MAX / 8; i++) {
		if (i * 8 >= len)
			break;
		*(__u64 *)(dst + i * 8) = erx_load8(w, src + i * 8);
	}
}

/* Append a string of the window to tx.strings (at most max bytes of it): its length there. */
static __always_inline __u16 erx_http_put(struct erx_http_tx_event *tx, const __u8 *w, __u32 src, __u32 len,
					  __u32 max, __u32 cut_flag)
{
	__u32 at = tx->strings_len;

	if (len > max) {
		len = max;
		tx->http_flags |= cut_flag;
	}
	if (at > ERX_HTTP_STRINGS_MAX - max)
		return 0; /* not reached: each string is put once and the maxima add up */
	erx_copy_words(&tx->strings[at], w, src, len);
	tx->strings_len = at + len;
	return len;
}

/* A request head (r->sc->h, in the window) ended; start_ns/tid: of the syscall that carried its
 * first byte. Returns false when it is handed over instead. */
static __noinline bool erx_http_open(struct erx_http_refs *r, __u64 start_ns, __u32 tid, bool cached)
{
	struct erx_http_ctx *x = r->x;
	struct erx_http_conn *s = r->s;
	struct erx_http_head *h = &r->sc->h;
	struct erx_http_tx_event *tx = &s->tx;
	__u8 *w = r->sc->w;
	__u32 head = h->head_end - h->head_start;

	if (h->fields & ERX_HF_EXPECT) {
		erx_http_handover(x, ERX_ACT_HANDOVER, ERX_CNT_HTTP_FALLBACK_EXPECT);
		return false;
	}
	if ((h->fields & ERX_HF_UPGRADE) || h->method == ERX_HTTP_CONNECT) {
		erx_http_handover(x, ERX_ACT_HANDOVER, ERX_CNT_HTTP_FALLBACK_UPGRADE);
		return false;
	}
	if (h->fields & ERX_HF_OTHER_CODING) { /* a request body must be chunked or have a length */
		erx_http_handover(x, ERX_ACT_HANDOVER, ERX_CNT_HTTP_FALLBACK_UNPARSED);
		return false;
	}
	s->open = 1;
	s->req_done = 0;
	s->resp_done = 0;
	tx->start_ns = start_ns;
	tx->end_ns = 0;
	tx->req_tid = tid;
	tx->http_flags = 0;
	tx->req_version = h->version;
	tx->req_head_size = head;
	tx->req_wire_size = head;
	tx->req_body_size = 0;
	tx->resp_head_size = 0;
	tx->resp_wire_size = 0;
	tx->resp_body_size = 0;
	tx->status = 0;
	tx->resp_version = 0;
	tx->n_interim = 0;
	*(__u64 *)tx->interim = 0;
	tx->method = h->method;
	if (cached) { /* the same head as the last request: its strings are still in tx */
		tx->http_flags = s->req.seen.cut_flags;
		goto framing;
	}
	s->req.seen.hash = 0; /* the strings change */
	tx->strings_len = 0;
	tx->method_len = erx_http_put(tx, w, h->head_start, h->method_len, ERX_HTTP_METHOD_MAX, 0);
	tx->target_wire_len = h->target_len;
	tx->target_len = erx_http_put(tx, w, h->target_off, h->target_len, ERX_HTTP_TARGET_MAX, ERX_HTTP_F_TARGET_CUT);
	tx->host_off = tx->strings_len;
	tx->host_len = erx_http_put(tx, w, h->host_off, h->host_len, ERX_HTTP_HOST_MAX, ERX_HTTP_F_HOST_CUT);
	tx->user_agent_off = tx->strings_len;
	tx->user_agent_len = erx_http_put(tx, w, h->user_agent_off, h->user_agent_len, ERX_HTTP_USER_AGENT_MAX,
					  ERX_HTTP_F_USER_AGENT_CUT);
	tx->traceparent_off = tx->strings_len;
	tx->traceparent_len = erx_http_put(tx, w, h->traceparent_off, h->traceparent_len, ERX_HTTP_TRACEPARENT_MAX,
					   ERX_HTTP_F_TRACEPARENT_CUT);
	tx->tracestate_off = tx->strings_len;
	tx->tracestate_len = erx_http_put(tx, w, h->tracestate_off, h->tracestate_len, ERX_HTTP_TRACESTATE_MAX,
					  ERX_HTTP_F_TRACESTATE_CUT);
	s->req.seen.cut_flags = tx->http_flags;
framing:
	if (h->fields & ERX_HF_CONN_CLOSE)
		tx->http_flags |= ERX_HTTP_F_REQ_CONN_CLOSE;
	erx_http_body(&s->resp, ERX_HS_HEAD, 0);
	if (h->fields & ERX_HF_CHUNKED) {
		tx->http_flags |= ERX_HTTP_F_REQ_CHUNKED;
		erx_http_body(&s->req, ERX_HS_CHUNKED, 0);
	} else if (h->content_length > 0) {
		erx_http_body(&s->req, ERX_HS_LENGTH, h->content_length);
	} else {
		s->req_done = 1;
		s->req.state = ERX_HS_IDLE;
	}
	return true;
}

/* A response head (r->sc->h) of the open transaction ended. A 101 sets x->action: the bytes
 * after its head are handed over. */
static __noinline void erx_http_response(struct erx_http_refs *r)
{
	struct erx_http_ctx *x = r->x;
	struct erx_http_conn *s = r->s;
	struct erx_http_head *h = &r->sc->h;
	struct erx_http_tx_event *tx = &s->tx;
	__u32 head = h->head_end - h->head_start;
	__u16 status = h->status;

	if (status < 200 && status != 101) { /* interim: noted, its bytes in no size */
		if (tx->n_interim < ERX_HTTP_MAX_INTERIM)
			tx->interim[tx->n_interim & (ERX_HTTP_MAX_INTERIM - 1)] = status;
		if (tx->n_interim < 255)
			tx->n_interim++;
		return;
	}
	tx->status = status;
	tx->resp_version = h->version;
	tx->resp_head_size = head;
	tx->resp_wire_size = head;
	if (h->fields & ERX_HF_CONN_CLOSE)
		tx->http_flags |= ERX_HTTP_F_RESP_CONN_CLOSE;
	if (status == 101) { /* the connection stops being HTTP: the transaction ends here */
		if (!s->req_done)
			tx->http_flags |= ERX_HTTP_F_REQ_TRUNCATED;
		s->req_done = 1;
		erx_http_resp_complete(x, s);
		x->action = ERX_ACT_HANDOVER;
		x->reason = ERX_CNT_HTTP_FALLBACK_UPGRADE;
		return;
	}
	if (tx->method == ERX_HTTP_HEAD || status == 204 || status == 304) {
		erx_http_resp_complete(x, s);
	} else if (h->fields & ERX_HF_CHUNKED) {
		tx->http_flags |= ERX_HTTP_F_RESP_CHUNKED;
		erx_http_body(&s->resp, ERX_HS_CHUNKED, 0);
	} else if ((h->fields & ERX_HF_OTHER_CODING) || h->content_length < 0) {
		tx->http_flags |= ERX_HTTP_F_CLOSE_DELIMITED;
		erx_http_body(&s->resp, ERX_HS_UNTIL_CLOSE, 0);
	} else if (h->content_length > 0) {
		erx_http_body(&s->resp, ERX_HS_LENGTH, h->content_length);
	} else {
		erx_http_resp_complete(x, s);
	}
}

/* A response the kernel cannot follow: the transaction is submitted with what is known (the
 * status if the status line was read), and the connection handed over from here. */
static __noinline void erx_http_resp_fail(struct erx_http_ctx *x, struct erx_http_conn *s, __u16 status,
					  __u32 reason)
{
	s->tx.status = status;
	s->tx.http_flags |= ERX_HTTP_F_RESP_UNPARSED | (status ? 0 : ERX_HTTP_F_NO_RESPONSE);
	s->tx.end_ns = x->now;
	if (!s->req_done)
		s->tx.http_flags |= ERX_HTTP_F_REQ_TRUNCATED;
	erx_http_finish(x, s);
	erx_http_handover(x, ERX_ACT_HANDOVER, reason);
}

static __always_inline void erx_http_fail(struct erx_http_refs *r, __u16 status, __u32 reason)
{
	if (r->x->is_req)
		erx_http_handover(r->x, ERX_ACT_HANDOVER, reason);
	else
		erx_http_resp_fail(r->x, r->s, status, reason);
}

/* -- heads -------------------------------------------------------------------------------------- */

/* The head parsed in the window (r->sc->h): plen of its bytes came from earlier syscalls (p),
 * the rest from this one at x->pos. Returns 1 to stop following this syscall. */
static __always_inline int erx_http_head_done(struct erx_http_refs *r, __u32 plen, struct erx_http_partial *p,
					      bool cached)
{
	struct erx_http_ctx *x = r->x;
	struct erx_http_head *h = &r->sc->h;

	if (x->is_req) {
		if (h->bad) {
			erx_http_handover(x, ERX_ACT_HANDOVER, h->bad);
			x->replay = plen > 0;
			return 1;
		}
		if (!erx_http_open(r, p ? p->ts_exit_ns : x->now, p ? p->tid : x->tid, cached)) {
			x->replay = plen > 0;
			return 1;
		}
	} else {
		if (h->bad) {
			erx_http_resp_fail(x, r->s, h->status, h->bad);
			return 1;
		}
		erx_http_response(r);
	}
	x->pos += h->head_end - plen;
	if (x->action) { /* a 101: what follows its head */
		x->handover_at = x->pos;
		return 1;
	}
	return 0;
}

/* The head in the window is the one d saw last (by its hash): its parse, again. */
static __always_inline void erx_http_seen_again(struct erx_http_head *h, struct erx_http_seen *seen)
{
	h->head_start = 0;
	h->head_end = seen->len;
	h->content_length = seen->content_length;
	h->status = seen->status;
	h->version = seen->version;
	h->fields = seen->fields;
	h->method = seen->method;
	h->bad = 0;
}

/* Remember the head just parsed (its bytes at the window's start) for the next one. */
static __always_inline void erx_http_seen(struct erx_http_head *h, struct erx_http_seen *seen)
{
	seen->content_length = h->content_length;
	seen->status = h->status;
	seen->version = h->version;
	seen->fields = h->fields;
	seen->method = h->method;
	seen->len = h->head_end;
	h->len = h->head_end;
	erx_http_hash(h);
	seen->hash = h->hash;
}

/* A head starts at x->pos. */
static __noinline int erx_http_head_start(struct erx_http_refs *r)
{
	struct erx_http_ctx *x = r->x;
	struct erx_http_conn *s = r->s;
	struct erx_http_head *h = &r->sc->h;
	struct erx_http_seen *seen = x->is_req ? &s->req.seen : &s->resp.seen;
	struct erx_http_partial *p;
	__u32 avail = x->n - x->pos, len;
	__u64 size;
	int ret;

	if (!x->src) { /* sendfile: a head that cannot be read */
		erx_http_fail(r, 0, ERX_CNT_HTTP_FALLBACK_UNSUPPORTED);
		return 1;
	}
	len = seen->len;
	if (seen->hash && len <= avail && len <= ERX_HTTP_MAX_HEAD && !erx_http_load(r, x->pos, len, 0)) {
		h->len = len;
		erx_http_hash(h);
		if (h->hash == seen->hash) {
			erx_http_seen_again(h, seen);
			return erx_http_head_done(r, 0, NULL, true);
		}
	}
	len = avail < 512 ? avail : 512;
	if (erx_http_load(r, x->pos, len, 0))
		goto unreadable;
	h->len = len;
	h->is_request = x->is_req;
	erx_http_parse(h);
	if (!h->head_end && !h->bad && avail > len) {
		len = avail < ERX_HTTP_MAX_HEAD ? avail : ERX_HTTP_MAX_HEAD;
		if (erx_http_load(r, x->pos, len, 0))
			goto unreadable;
		h->len = len;
		h->is_request = x->is_req;
		erx_http_parse(h);
	}
	if (h->head_end || h->bad) {
		ret = erx_http_head_done(r, 0, NULL, false);
		if (!ret && !h->head_start)
			erx_http_seen(h, seen);
		return ret;
	}
	if (len >= ERX_HTTP_MAX_HEAD) {
		erx_http_fail(r, h->status, ERX_CNT_HTTP_FALLBACK_HEAD_TOO_LARGE);
		return 1;
	}
	/* The head goes on in later syscalls: keep its bytes (staged past the window's use). */
	p = (struct erx_http_partial *)(r->sc->w + 2 * ERX_HTTP_MAX_HEAD);
	p->ts_enter_ns = x->ts_enter;
	p->ts_exit_ns = x->now;
	p->pid = s->tx.hdr.pid;
	p->tid = x->tid;
	p->len = len;
	p->fd = x->fd;
	p->syscall = x->syscall;
	p->direction = x->is_req ? s->req_dir : !s->req_dir;
	p->tls = (s->tx.hdr.flags & ERX_FLAG_TLS) ? 1 : 0;
	size = len;
	ERX_BOUND(size, 0x7ff); /* < ERX_HTTP_MAX_HEAD here */
	bpf_probe_read_kernel(p->buf, size, r->sc->w);
	if (bpf_map_update_elem(&erx_http_partial, &x->conn_id, p, BPF_ANY)) {
		erx_http_fail(r, 0, ERX_CNT_HTTP_FALLBACK_NO_STATE);
		return 1;
	}
	if (x->is_req)
		s->req.state = ERX_HS_PARTIAL;
	else
		s->resp.state = ERX_HS_PARTIAL;
	x->pos = x->n;
	return 1;
unreadable:
	erx_http_fail(r, 0, ERX_CNT_HTTP_FALLBACK_UNPARSED);
	return 1;
}

/* More bytes of a head that started in an earlier syscall. */
static __noinline int erx_http_head_more(struct erx_http_refs *r)
{
	struct erx_http_ctx *x = r->x;
	struct erx_http_head *h = &r->sc->h;
	struct erx_http_partial *p;
	__u32 plen, take, total;
	__u64 size;
	int ret;

	p = bpf_map_lookup_elem(&erx_http_partial, &x->conn_id);
	if (!p) {
		erx_http_fail(r, 0, ERX_CNT_HTTP_FALLBACK_NO_STATE);
		return 1;
	}
	plen = p->len;
	if (plen >= ERX_HTTP_MAX_HEAD)
		plen = ERX_HTTP_MAX_HEAD - 1;
	take = x->n - x->pos;
	if (take > ERX_HTTP_MAX_HEAD - plen)
		take = ERX_HTTP_MAX_HEAD - plen;
	size = plen;
	ERX_BOUND(size, 0x7ff);
	bpf_probe_read_kernel(r->sc->w, size, p->buf);
	if (erx_http_load(r, x->pos, take, plen)) {
		x->replay = x->is_req;
		erx_http_fail(r, 0, x->src ? ERX_CNT_HTTP_FALLBACK_UNPARSED : ERX_CNT_HTTP_FALLBACK_UNSUPPORTED);
		return 1;
	}
	total = plen + take;
	h->len = total;
	h->is_request = x->is_req;
	erx_http_parse(h);
	if (h->head_end || h->bad) {
		ret = erx_http_head_done(r, plen, p, false);
		if (!x->replay)
			bpf_map_delete_elem(&erx_http_partial, &x->conn_id);
		return ret;
	}
	if (total >= ERX_HTTP_MAX_HEAD) {
		x->replay = x->is_req;
		erx_http_fail(r, h->status, ERX_CNT_HTTP_FALLBACK_HEAD_TOO_LARGE);
		return 1;
	}
	size = total;
	ERX_BOUND(size, 0x7ff); /* < ERX_HTTP_MAX_HEAD here */
	bpf_probe_read_kernel(p->buf, size, r->sc->w);
	p->len = total;
	x->pos = x->n;
	return 1;
}

/* -- bodies ------------------------------------------------------------------------------------- */

/* A step in a chunked body. */
static __noinline int erx_http_chunked(struct erx_http_refs *r)
{
	struct erx_http_ctx *x = r->x;
	struct erx_http_conn *s = r->s;
	struct erx_http_framing *f = &r->sc->f;
	struct erx_http_dir *d = x->is_req ? &s->req : &s->resp;
	__u32 avail = x->n - x->pos;

	if (d->chunk == ERX_CH_DATA) {
		__u64 take = avail < d->remaining ? avail : d->remaining;

		d->remaining -= take;
		x->pos += take;
		if (!d->remaining)
			d->chunk = ERX_CH_DATA_END;
		return 0;
	}
	f->d = *d;
	f->wire = 0;
	f->body = 0;
	f->used = 0;
	f->complete = 0;
	f->bad = 0;
	f->len = avail < ERX_HTTP_FRAMING_READ ? avail : ERX_HTTP_FRAMING_READ;
	if (erx_http_load(r, x->pos, f->len, 0))
		f->bad = 1;
	else
		erx_http_framing(f);
	*d = f->d;
	if (x->is_req) {
		s->tx.req_wire_size += f->wire;
		s->tx.req_body_size += f->body;
	} else {
		s->tx.resp_wire_size += f->wire;
		s->tx.resp_body_size += f->body;
	}
	if (f->bad) {
		__u32 reason = x->src ? ERX_CNT_HTTP_FALLBACK_UNPARSED : ERX_CNT_HTTP_FALLBACK_UNSUPPORTED;

		if (x->is_req) {
			/* the requests go to user space; this response is still followed */
			s->tx.http_flags |= ERX_HTTP_F_REQ_TRUNCATED;
			erx_http_handover(x, ERX_ACT_HANDOVER_REQ, reason);
			erx_http_req_complete(x, s);
		} else {
			s->tx.http_flags |= ERX_HTTP_F_RESP_TRUNCATED;
			erx_http_resp_fail(x, s, s->tx.status, reason);
		}
		return 1;
	}
	x->pos += f->used;
	if (f->complete) {
		if (x->is_req)
			erx_http_req_complete(x, s);
		else
			erx_http_resp_complete(x, s);
	}
	return 0;
}

/* bpf_loop step: the next part of a message in the syscall's bytes. */
static long erx_http_step(__u64 i, struct erx_http_refs *r)
{
	struct erx_http_ctx *x = r->x;
	struct erx_http_conn *s = r->s;
	struct erx_http_dir *d;
	__u32 avail;
	__u64 take;

	if (x->pos >= x->n || x->action)
		return 1;
	avail = x->n - x->pos;
	d = x->is_req ? &s->req : &s->resp;
	switch (d->state) {
	case ERX_HS_LENGTH:
		take = avail < d->remaining ? avail : d->remaining;
		d->remaining -= take;
		x->pos += take;
		if (x->is_req) {
			s->tx.req_body_size += take;
			s->tx.req_wire_size += take;
			if (!d->remaining)
				erx_http_req_complete(x, s);
		} else {
			s->tx.resp_body_size += take;
			s->tx.resp_wire_size += take;
			if (!d->remaining)
				erx_http_resp_complete(x, s);
		}
		return 0;
	case ERX_HS_UNTIL_CLOSE:
		s->tx.resp_body_size += avail;
		s->tx.resp_wire_size += avail;
		x->pos = x->n;
		return 1;
	case ERX_HS_CHUNKED:
		return erx_http_chunked(r);
	case ERX_HS_PARTIAL:
		return erx_http_head_more(r);
	case ERX_HS_HEAD:
		return erx_http_head_start(r);
	}
	/* ERX_HS_IDLE */
	if (x->is_req) {
		if (s->open) { /* the previous response did not end: pipelining */
			erx_http_handover(x, ERX_ACT_HANDOVER_REQ, ERX_CNT_HTTP_FALLBACK_PIPELINED);
			return 1;
		}
		return erx_http_head_start(r);
	}
	/* Response bytes while none is due: after pipelining, the hand-over they waited for
	 * (counted then); else unexpected. */
	erx_http_handover(x, ERX_ACT_HANDOVER, s->handover ? 0 : ERX_CNT_HTTP_FALLBACK_UNEXPECTED);
	return 1;
}

/* -- connections ------------------------------------------------------------------------------- */

/* The first bytes of a connection decide whether it is paired. Returns its state, or NULL. */
static __noinline struct erx_http_conn *erx_http_decide(struct erx_http_refs *r, const struct erx_inflight *inf)
{
	struct erx_http_ctx *x = r->x;
	struct erx_conn_state *c = r->c;
	struct erx_http_conn *s;
	__u32 zero = 0;
	__u8 req_dir, method;
	void *fresh;

	c->http = ERX_HTTP_NOT_HTTP;
	if (c->tuple.transport != ERX_TRANSPORT_TCP && c->tuple.transport != ERX_TRANSPORT_UNIX_STREAM)
		return NULL;
	if (c->role == ERX_ROLE_SERVER)
		req_dir = ERX_DIR_INGRESS;
	else if (c->role == ERX_ROLE_CLIENT)
		req_dir = ERX_DIR_EGRESS;
	else
		return NULL;
	if (inf->direction != req_dir)
		return NULL;
	if (x->n >= 8) {
		if (erx_http_load(r, 0, 8, 0) || !erx_http_known_method(erx_load8(r->sc->w, 0), &method))
			return NULL;
	} else { /* a request written a few bytes at a time: its start is enough */
		*(__u64 *)r->sc->w = 0;
		if (erx_http_load(r, 0, x->n, 0) || !erx_http_method_prefix(erx_load8(r->sc->w, 0), x->n))
			return NULL;
	}
	fresh = bpf_map_lookup_elem(&erx_http_zero, &zero);
	if (!fresh || bpf_map_update_elem(&erx_http_conns, &x->conn_id, fresh, BPF_NOEXIST) ||
	    !(s = bpf_map_lookup_elem(&erx_http_conns, &x->conn_id))) {
		erx_count(ERX_CNT_HTTP_FALLBACK_NO_STATE);
		c->http = ERX_HTTP_PAYLOAD;
		return NULL;
	}
	s->req_dir = req_dir;
	s->tx.hdr.kind = ERX_EV_HTTP_TX;
	s->tx.hdr.direction = req_dir;
	s->tx.hdr.role = c->role;
	s->tx.hdr.pid = bpf_get_current_pid_tgid() >> 32;
	s->tx.hdr.flags = (inf->flags & ERX_INF_TLS) ? ERX_FLAG_TLS : 0;
	s->tx.hdr.conn_id = x->conn_id;
	s->tx.hdr.cgroup_id = bpf_get_current_cgroup_id();
	s->tx.tuple = c->tuple;
	c->http = ERX_HTTP_PAIRING;
	return s;
}

/* Submit the bytes of erx_http_partial as one data record (the head's earlier syscalls), with
 * the facts of the syscall that started it; then forget them. */
__noinline int erx_http_replay(struct erx_conn_state *c)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct erx_http_partial *p;
	struct erx_scratch *sc;
	struct erx_data_event *e;
	__u64 size, captured, key;

	if (!c)
		return 0;
	key = c->id;
	p = bpf_map_lookup_elem(&erx_http_partial, &key);
	if (!p)
		return 0;
	erx_count(ERX_CNT_PRODUCED);
	sc = bpf_map_lookup_elem(&erx_scratch_buf, &cpu);
	if (!sc) {
		erx_count(ERX_CNT_LOST_NO_SCRATCH);
		bpf_map_delete_elem(&erx_http_partial, &key);
		return 0;
	}
	e = &sc->ev;
	e->hdr.kind = ERX_EV_DATA;
	e->hdr.direction = p->direction;
	e->hdr.role = c->role;
	e->hdr.syscall = p->syscall;
	e->hdr.pid = p->pid;
	e->hdr.tid = p->tid;
	e->hdr.flags = p->tls ? ERX_FLAG_TLS : 0;
	e->hdr.conn_id = key;
	e->hdr.cgroup_id = bpf_get_current_cgroup_id();
	e->hdr.ts_enter_ns = p->ts_enter_ns;
	e->hdr.ts_exit_ns = p->ts_exit_ns;
	e->tuple = c->tuple;
	e->total_len = p->len;
	e->fd = p->fd;
	e->_pad0 = 0;
	captured = p->len;
	if (captured > erx_cfg.capture_size)
		captured = erx_cfg.capture_size;
	ERX_BOUND(captured, 0x7ff); /* a partial head is shorter than ERX_HTTP_MAX_HEAD */
	bpf_probe_read_kernel(e->payload, captured, p->buf);
	e->captured_len = captured;
	size = offsetof(struct erx_data_event, payload) + captured;
	if (bpf_ringbuf_output(&erx_events, e, size, erx_rb_flags(size, false)))
		erx_count(ERX_CNT_LOST_RINGBUF_FULL);
	bpf_map_delete_elem(&erx_http_partial, &key);
	return 0;
}

/* A connection leaves the pairing for good (its state is dropped). */
static __always_inline void erx_http_drop(struct erx_conn_state *c, __u64 key)
{
	c->http = ERX_HTTP_PAYLOAD;
	bpf_map_delete_elem(&erx_http_conns, &key);
	bpf_map_delete_elem(&erx_http_partial, &key);
}

/* A data syscall of a connection that is, or may become, paired (call: as erx_http_tail put
 * it). Without pairing (not HTTP/1, handed over) its data record goes as before; paired, its
 * bytes are followed here and only data records from a message boundary leave. */
__noinline int erx_http_on_data(struct erx_http_call *call)
{
	struct erx_http_refs r = {};
	struct erx_conn_state *c, *real;
	struct erx_http_ctx *x;
	struct erx_http_conn *s;
	__u32 zero = 0, n;
	__u8 mode;

	if (!call)
		return 0;
	c = &call->conn;
	mode = c->http;
	n = call->n;
	if (mode != ERX_HTTP_UNDECIDED && mode != ERX_HTTP_PAIRING)
		goto payload;
	r.sc = bpf_map_lookup_elem(&erx_http_scratch, &zero);
	if (!r.sc)
		goto payload;
	x = r.x = &r.sc->x;
	r.c = c;
	x->conn_id = c->id;
	x->src = call->src;
	x->iovcnt = call->iovcnt;
	x->n = n;
	x->pos = 0;
	x->action = 0;
	x->reason = 0;
	x->replay = 0;
	x->handover_at = 0;
	if (mode == ERX_HTTP_UNDECIDED) {
		s = erx_http_decide(&r, &call->inf);
	} else {
		s = bpf_map_lookup_elem(&erx_http_conns, &x->conn_id);
		if (!s) { /* evicted from the table */
			erx_count(ERX_CNT_HTTP_FALLBACK_NO_STATE);
			erx_http_drop(c, x->conn_id);
		}
	}
	if (!s)
		goto mode; /* not paired: the data record, once the connection knows */
	r.s = s;
	x->is_req = call->inf.direction == s->req_dir;
	x->tid = (__u32)bpf_get_current_pid_tgid();
	s->last_tid = x->tid;
	if (x->is_req && s->handover)
		goto payload; /* requests already go to user space */
	x->now = bpf_ktime_get_ns();
	x->ts_enter = call->inf.ts_enter_ns;
	x->fd = call->inf.fd;
	x->syscall = call->inf.syscall;
	bpf_loop(1024, erx_http_step, &r, 0);
	if (!x->action && x->pos < x->n) {
		/* more message parts in one syscall than steps: not followed further */
		if (s->open && !x->is_req)
			erx_http_resp_fail(x, s, s->tx.status, ERX_CNT_HTTP_FALLBACK_UNSUPPORTED);
		else
			erx_http_handover(x, ERX_ACT_HANDOVER, ERX_CNT_HTTP_FALLBACK_UNSUPPORTED);
	}
	if (!x->action) {
		n = 0;
		goto mode;
	}
	if (x->reason)
		erx_count(x->reason);
	if (x->replay)
		erx_http_replay(c);
	if (x->action == ERX_ACT_HANDOVER_REQ)
		s->handover = 1;
	else
		erx_http_drop(c, x->conn_id);
	if (x->handover_at < n)
		erx_emit_payload(&call->inf, c, call->kind, n - x->handover_at, call->src, call->iovcnt, 0,
				 x->handover_at);
	n = 0;
mode:
	if (c->http != mode) { /* the connection's own entry learns where its bytes go now */
		real = bpf_map_lookup_elem(&erx_conns, &call->sk);
		if (real && real->id == c->id)
			real->http = c->http;
	}
	if (!n)
		return 0;
payload:
	erx_emit_payload(&call->inf, c, call->kind, n, call->src, call->iovcnt, call->uaddr, 0);
	return 0;
}

/* The connection closes (at now): finish what is open as the payload path's parser would. */
__noinline int erx_http_on_close(struct erx_conn_state *c, __u64 now)
{
	struct erx_http_conn *s;
	struct erx_http_tx_event *tx;
	__u64 key;

	if (!c)
		return 0;
	key = c->id;
	s = bpf_map_lookup_elem(&erx_http_conns, &key);
	if (!s) {
		bpf_map_delete_elem(&erx_http_partial, &key);
		return 0;
	}
	if (s->req.state == ERX_HS_PARTIAL) {
		/* a request head cut by the close: user space gets its bytes, as without pairing */
		erx_count(ERX_CNT_HTTP_FALLBACK_TRUNCATED);
		erx_http_replay(c);
	}
	tx = &s->tx;
	if (s->open) {
		if (!s->req_done && (s->req.state == ERX_HS_LENGTH || s->req.state == ERX_HS_CHUNKED))
			tx->http_flags |= ERX_HTTP_F_REQ_TRUNCATED;
		if (!s->resp_done) {
			if (s->resp.state == ERX_HS_LENGTH || s->resp.state == ERX_HS_CHUNKED) {
				tx->http_flags |= ERX_HTTP_F_RESP_TRUNCATED;
			} else if (s->resp.state != ERX_HS_UNTIL_CLOSE) { /* no final response */
				if (s->resp.state == ERX_HS_PARTIAL)
					erx_count(ERX_CNT_HTTP_FALLBACK_TRUNCATED);
				tx->http_flags |= ERX_HTTP_F_NO_RESPONSE;
				tx->status = 0;
				tx->resp_head_size = 0;
				tx->resp_wire_size = 0;
				tx->resp_body_size = 0;
			}
			tx->end_ns = now;
		}
		tx->hdr.syscall = ERX_SYS_CLOSE;
		tx->hdr.tid = s->last_tid;
		tx->hdr.ts_enter_ns = now;
		tx->hdr.ts_exit_ns = now;
		erx_http_submit(tx);
	}
	bpf_map_delete_elem(&erx_http_conns, &key);
	bpf_map_delete_elem(&erx_http_partial, &key);
	return 0;
}

/* A syscall of a connection the pairing does not follow (sendmmsg/recvmmsg). */
static __always_inline void erx_http_unsupported(struct erx_conn_state *c)
{
	if (c->http == ERX_HTTP_PAIRING) {
		erx_count(ERX_CNT_HTTP_FALLBACK_UNSUPPORTED);
		erx_http_drop(c, c->id);
	} else if (c->http == ERX_HTTP_UNDECIDED) {
		c->http = ERX_HTTP_NOT_HTTP;
	}
}

#endif
