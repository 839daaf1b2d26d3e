/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Thread-per-request linking with paired HTTP/1 (ERX_EV_SERVING). The payload path tells user
 * space which thread read which server request through the request's own data record; a paired
 * request sends its record only once the response is out, after the calls its thread made for
 * it. So the thread that reads a paired server request keeps it in its storage, and announces it
 * (one small record, once) right before it acts for it: a call on a client connection, a write
 * to stdout/stderr, a connect. Requests whose thread does nothing else cost nothing more.
 * Each marker is one request (its start_ns): a keep-alive connection's next request on the same
 * thread is a new marker, and only the kernel judges multiplexing (ERX_FLAG_SERVING_MULTIPLEXED),
 * since it knows whether the first request was answered. */
#ifndef ERX_LIB_HTTP_SERVING_H
#define ERX_LIB_HTTP_SERVING_H

static __always_inline void erx_serving_announce(struct erx_serving *st, __u32 flags)
{
	struct erx_serving_event *e;

	st->announced = 1;
	erx_count(ERX_CNT_PRODUCED);
	e = bpf_ringbuf_reserve(&erx_events, sizeof(*e), 0);
	if (!e) {
		erx_count(ERX_CNT_LOST_RINGBUF_FULL);
		return;
	}
	erx_fill_header(&e->hdr, ERX_EV_SERVING, ERX_DIR_INGRESS, ERX_ROLE_SERVER, 0, st->conn_id, st->start_ns);
	e->hdr.ts_exit_ns = st->start_ns;
	e->hdr.flags = flags;
	bpf_ringbuf_submit(e, erx_rb_flags(sizeof(*e), true));
}

/* Is the request st names still open (not answered, possibly by another thread)? */
static __always_inline bool erx_serving_open_still(const struct erx_serving *st)
{
	struct erx_http_conn *s = bpf_map_lookup_elem(&erx_http_conns, &st->conn_id);

	return s && s->open && s->tx.start_ns == st->start_ns;
}

/* A server request's head, read by the current thread: conn_id, its first byte at start_ns.
 * Global (verified once, not at every call site of the pairing). */
__noinline int erx_serving_open(__u64 conn_id, __u64 start_ns)
{
	struct erx_serving *st = bpf_task_storage_get(&erx_serving_state, bpf_get_current_task_btf(), 0,
						      BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!st || st->multiplexed)
		return 0;
	if (st->active && st->conn_id != conn_id && erx_serving_open_still(st)) {
		/* A second request before the first was answered: an event loop. Both are announced,
		 * which tells user space to stop linking this process by thread. */
		if (!st->announced)
			erx_serving_announce(st, 0);
		st->conn_id = conn_id;
		st->start_ns = start_ns;
		erx_serving_announce(st, ERX_FLAG_SERVING_MULTIPLEXED);
		st->multiplexed = 1;
		st->active = 0;
		return 0;
	}
	st->conn_id = conn_id;
	st->start_ns = start_ns;
	st->active = 1;
	st->announced = 0;
	return 0;
}

/* The server transaction on conn_id ended, its response sent by the current thread (global). */
__noinline int erx_serving_close(__u64 conn_id)
{
	struct erx_serving *st = bpf_task_storage_get(&erx_serving_state, bpf_get_current_task_btf(), 0, 0);

	if (st && st->conn_id == conn_id)
		st->active = 0;
	return 0;
}

/* The current thread is about to act: announce the request it serves, if any (once). */
static __always_inline void erx_serving_acting(void)
{
	struct erx_serving *st;

	if (!erx_cfg.http_pairing)
		return;
	st = bpf_task_storage_get(&erx_serving_state, bpf_get_current_task_btf(), 0, 0);
	if (!st || !st->active || st->announced || st->multiplexed)
		return;
	if (!erx_serving_open_still(st)) { /* answered by another thread meanwhile */
		st->active = 0;
		return;
	}
	erx_serving_announce(st, 0);
}

#endif
