/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* HTTP/1 pairing (lib/http1_pair.h): the transaction in flight, from its request head to its
 * submission, and hand-overs to the payload path. */
#ifndef ERX_LIB_HTTP1_TX_H
#define ERX_LIB_HTTP1_TX_H

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
	if (!(s->tx.http_flags & ERX_HTTP_F_LAST))
		s->kept = 1;
	erx_http_submit(&s->tx);
	if (s->req_dir == ERX_DIR_INGRESS)
		erx_serving_close(x->conn_id);
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
	if (s->req_dir == ERX_DIR_INGRESS)
		erx_serving_open(x->conn_id, start_ns);
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
		s->resp.state = ERX_HS_HEAD; /* the final response's head comes next */
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

#endif
