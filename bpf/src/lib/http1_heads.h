/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* HTTP/1 pairing (lib/http1_pair.h): heads as they arrive: parsed from the window, recognised
 * again by hash on a keep-alive connection, or held in erx_http_partial until they end (and
 * submitted as one data record when handed over). */
#ifndef ERX_LIB_HTTP1_HEADS_H
#define ERX_LIB_HTTP1_HEADS_H

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
		/* its first byte: in an earlier syscall, unless those only carried empty lines */
		bool earlier = p && h->head_start < plen;

		if (!erx_http_open(r, earlier ? p->ts_exit_ns : x->now, earlier ? p->tid : x->tid, cached)) {
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

#endif
