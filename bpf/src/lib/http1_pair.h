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
#include "lib/http1_window.h"
#include "lib/http_serving.h"
#include "lib/http1_tx.h"
#include "lib/http1_heads.h"

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
	s->kept = 1; /* data records from here on (c is a copy: the pairing state remembers) */
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

/* The connection closes (at now): finish what is open as the payload path's parser would.
 * Returns whether user space keeps an entry for the connection (1 when unknown): if not, its
 * close record is not needed. */
__noinline int erx_http_on_close(struct erx_conn_state *c, __u64 now)
{
	struct erx_http_conn *s;
	struct erx_http_tx_event *tx;
	__u64 key;
	int kept;

	if (!c)
		return 1;
	key = c->id;
	s = bpf_map_lookup_elem(&erx_http_conns, &key);
	if (!s) {
		bpf_map_delete_elem(&erx_http_partial, &key);
		return 1;
	}
	if (s->req.state == ERX_HS_PARTIAL) {
		/* a request head cut by the close: user space gets its bytes, as without pairing */
		erx_count(ERX_CNT_HTTP_FALLBACK_TRUNCATED);
		erx_http_replay(c);
		s->kept = 1;
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
	kept = s->kept;
	bpf_map_delete_elem(&erx_http_conns, &key);
	bpf_map_delete_elem(&erx_http_partial, &key);
	return kept;
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
