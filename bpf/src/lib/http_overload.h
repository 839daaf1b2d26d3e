/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* A completed HTTP/1 transaction leaves the kernel as one ERX_EV_HTTP_TX record, or, when the
 * reader is behind (ring buffer past a threshold, or user space's shed level), as a count in a
 * per-CPU duration histogram of erx_http_aggregates. Errors are kept as records longest (their
 * threshold is the higher one), and so are transactions slower than shed_keep_slower_than_ns. Every transaction is submitted, or aggregated, or counted lost
 * (ERX_CNT_HTTP_AGG_FULL); user space drains the aggregates by generation (see
 * receiver/capture/overload.py). */
#ifndef ERX_LIB_HTTP_OVERLOAD_H
#define ERX_LIB_HTTP_OVERLOAD_H

/* The semantic conventions' error statuses, and a request that got no response. */
static __always_inline bool erx_http_is_error(const struct erx_http_tx_event *tx)
{
	return tx->status == 0 || tx->status >= 500 || (tx->hdr.role == ERX_ROLE_CLIENT && tx->status >= 400);
}

static __always_inline __u32 erx_http_bucket(__u64 d)
{
	if (d <= ERX_HTTP_BOUND_0_NS) return 0;
	if (d <= ERX_HTTP_BOUND_1_NS) return 1;
	if (d <= ERX_HTTP_BOUND_2_NS) return 2;
	if (d <= ERX_HTTP_BOUND_3_NS) return 3;
	if (d <= ERX_HTTP_BOUND_4_NS) return 4;
	if (d <= ERX_HTTP_BOUND_5_NS) return 5;
	if (d <= ERX_HTTP_BOUND_6_NS) return 6;
	if (d <= ERX_HTTP_BOUND_7_NS) return 7;
	if (d <= ERX_HTTP_BOUND_8_NS) return 8;
	if (d <= ERX_HTTP_BOUND_9_NS) return 9;
	if (d <= ERX_HTTP_BOUND_10_NS) return 10;
	if (d <= ERX_HTTP_BOUND_11_NS) return 11;
	if (d <= ERX_HTTP_BOUND_12_NS) return 12;
	if (d <= ERX_HTTP_BOUND_13_NS) return 13;
	return 14;
}

/* Add a transaction to the current generation's aggregates. A generation is drained by user
 * space once it is not current and no program is adding to it: the busy count is raised before
 * the generation is read again, so a program that saw the old generation either finishes
 * before user space sees the count at 0, or sees the new one. */
static __always_inline int erx_http_aggregate(struct erx_http_tx_event *tx)
{
	struct erx_http_agg_key key = {};
	struct erx_http_agg_value *v;
	struct erx_http_control *ctl;
	__u32 zero = 0, g = 0;
	__s64 *busy;
	__u64 d;

	if (!tx)
		return 0;
	ctl = bpf_map_lookup_elem(&erx_http_control, &zero);
	d = tx->end_ns > tx->start_ns ? tx->end_ns - tx->start_ns : 0;

	key.pid = tx->hdr.pid;
	key.status = tx->status;
	key.family = tx->tuple.family;
	key.role = tx->hdr.role;
	key.method = tx->method;
	key.version = tx->req_version;
	key.tls = (tx->hdr.flags & ERX_FLAG_TLS) ? 1 : 0;
	if (tx->hdr.role == ERX_ROLE_CLIENT) {
		key.server_port = tx->tuple.dport;
		__builtin_memcpy(key.server_addr, tx->tuple.daddr, sizeof(key.server_addr));
	} else {
		key.server_port = tx->tuple.sport;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		g = ctl ? (*(volatile __u32 *)&ctl->generation) & 1 : 0;
		busy = bpf_map_lookup_elem(&erx_http_agg_busy, &g);
		if (!busy)
			break;
		__sync_fetch_and_add(busy, 1);
		if (ctl && ((*(volatile __u32 *)&ctl->generation) & 1) != g) {
			__sync_fetch_and_add(busy, -1);
			continue;
		}
		key.generation = g;
		v = bpf_map_lookup_elem(&erx_http_aggregates, &key);
		if (!v) {
			void *fresh = bpf_map_lookup_elem(&erx_http_zero, &zero);
			if (fresh)
				bpf_map_update_elem(&erx_http_aggregates, &key, fresh, BPF_NOEXIST);
			v = bpf_map_lookup_elem(&erx_http_aggregates, &key);
		}
		if (v) {
			if (v->count == 0 || d < v->min_ns)
				v->min_ns = d;
			if (d > v->max_ns)
				v->max_ns = d;
			__sync_fetch_and_add(&v->sum_ns, d);
			__sync_fetch_and_add(&v->buckets[erx_http_bucket(d)], 1);
			__sync_fetch_and_add(&v->count, 1);
		} else {
			erx_count(ERX_CNT_HTTP_AGG_FULL);
		}
		__sync_fetch_and_add(busy, -1);
		return 0;
	}
	erx_count(ERX_CNT_HTTP_AGG_FULL);
	return 0;
}

/* Submit the completed transaction tx, or aggregate it (see above). Global: verified once. */
__noinline int erx_http_submit(struct erx_http_tx_event *tx)
{
	__u32 zero = 0, reason = 0;
	struct erx_http_control *ctl;
	__u64 limit, size, avail = 0;
	bool error;

	if (!tx)
		return 0;
	ctl = bpf_map_lookup_elem(&erx_http_control, &zero);
	/* Kept longest: errors, and transactions slower than what a latency policy keeps. */
	error = erx_http_is_error(tx) ||
		(erx_cfg.shed_keep_slower_than_ns && tx->end_ns - tx->start_ns >= erx_cfg.shed_keep_slower_than_ns);

	erx_count(ERX_CNT_HTTP_PAIRED);
	if (ctl && ctl->shed_level >= (error ? ERX_SHED_ALL : ERX_SHED_SUCCESSES)) {
		reason = ERX_CNT_SHED_LEVEL;
	} else {
		limit = error ? erx_cfg.shed_error_ring_bytes : erx_cfg.shed_ring_bytes;
		avail = bpf_ringbuf_query(&erx_events, BPF_RB_AVAIL_DATA);
		if (limit && avail > limit)
			reason = ERX_CNT_SHED_RING;
	}
	if (!reason) {
		size = tx->strings_len;
		if (size > ERX_HTTP_STRINGS_MAX)
			size = ERX_HTTP_STRINGS_MAX;
		size += offsetof(struct erx_http_tx_event, strings);
		erx_count(ERX_CNT_PRODUCED);
		if (!bpf_ringbuf_output(&erx_events, tx, size, erx_rb_flags_avail(size, false, avail)))
			return 0;
		erx_count(ERX_CNT_LOST_RINGBUF_FULL);
		reason = ERX_CNT_SHED_RING_FULL;
	}
	erx_count(reason);
	erx_http_aggregate(tx);
	return 0;
}

#endif
