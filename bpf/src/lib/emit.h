/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Counting, filtering and ring-buffer submission shared by every program. */
#ifndef ERX_LIB_EMIT_H
#define ERX_LIB_EMIT_H

static __always_inline void erx_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&erx_counters, &idx);
	if (v)
		*v += 1;
}

/* No wakeup per record: user space polls on an interval, and is woken early once per
 * wakeup_bytes of pending data — when this record makes the unconsumed bytes cross a multiple of
 * wakeup_bytes. Waking on every record past the threshold instead would make each of them raise
 * an irq_work (a self-IPI, a VM exit under virtualization: ~2 us in the traced syscall) for as long
 * as the reader is busy draining, which is exactly when the load is highest. size is the record's
 * size; reserved: the record is already reserved (counted in the pending bytes). 0 wakes always. */
static __always_inline __u64 erx_rb_flags_avail(__u64 size, bool reserved, __u64 after)
{
	__u64 every = erx_cfg.wakeup_bytes;
	__u64 before;

	if (!every)
		return BPF_RB_FORCE_WAKEUP;
	if (!reserved)
		after += size;
	before = after > size ? after - size : 0;
	return before / every != after / every ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline __u64 erx_rb_flags(__u64 size, bool reserved)
{
	if (!erx_cfg.wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return erx_rb_flags_avail(size, reserved, bpf_ringbuf_query(&erx_events, BPF_RB_AVAIL_DATA));
}

/* The current task's tgid as the agent numbers processes: unchanged in the initial pid
 * namespace (the fast path: the branch is dead code when the knob is 0); in the agent's own
 * namespace (a pod) its pid there. False when the task is outside that namespace. */
static __always_inline bool erx_agent_view(__u32 *tgid)
{
	struct bpf_pidns_info ns;

	if (!erx_cfg.agent_pidns_ino)
		return true;
	if (bpf_get_ns_current_pid_tgid(erx_cfg.agent_pidns_dev, erx_cfg.agent_pidns_ino, &ns, sizeof(ns)))
		return false;
	*tgid = ns.tgid;
	return true;
}

/* Is the current task (thread-group id tgid) the agent, or a task whose process records are
 * not wanted (outside the agent's pid namespace when pidns_only is set)? */
static __always_inline bool erx_pid_hidden(__u32 tgid)
{
	if (!erx_agent_view(&tgid))
		return erx_cfg.pidns_only;
	return tgid == erx_cfg.agent_tgid;
}

/* Is the current task (thread-group id tgid) not traced: the agent, excluded by user space
 * (erx_excluded_pids), or outside the agent's pid namespace when pidns_only is set? */
static __always_inline bool erx_pid_excluded(__u32 tgid)
{
	if (!erx_agent_view(&tgid))
		return erx_cfg.pidns_only;
	if (tgid == erx_cfg.agent_tgid)
		return true;
	if (erx_cfg.filter_pids && bpf_map_lookup_elem(&erx_excluded_pids, &tgid))
		return true;
	return false;
}

static __always_inline bool erx_port_excluded(const struct erx_tuple *t)
{
	__u16 p;
	if (!erx_cfg.filter_ports)
		return false;
	p = t->sport;
	if (bpf_map_lookup_elem(&erx_excluded_ports, &p))
		return true;
	p = t->dport;
	return bpf_map_lookup_elem(&erx_excluded_ports, &p) != NULL;
}

static __always_inline void erx_fill_header_at(struct erx_event_header *h, __u8 kind, __u8 dir, __u8 role,
					       __u8 sys, __u64 conn_id, __u64 ts_enter, __u64 ts_exit)
{
	__u64 id = bpf_get_current_pid_tgid();
	h->kind = kind;
	h->direction = dir;
	h->role = role;
	h->syscall = sys;
	h->pid = id >> 32;
	h->tid = (__u32)id;
	h->flags = 0;
	h->conn_id = conn_id;
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->ts_enter_ns = ts_enter;
	h->ts_exit_ns = ts_exit;
}

static __always_inline void erx_fill_header(struct erx_event_header *h, __u8 kind, __u8 dir, __u8 role,
					    __u8 sys, __u64 conn_id, __u64 ts_enter)
{
	erx_fill_header_at(h, kind, dir, role, sys, conn_id, ts_enter, bpf_ktime_get_ns());
}

/* The connection state of sk, created on first sight (role unknown: the socket predates us or
 * was inherited). NULL when the family is not traced or the table refused the entry. */
static __always_inline struct erx_conn_state *erx_conn_lookup_or_create(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct erx_conn_state *c = bpf_map_lookup_elem(&erx_conns, &key);
	struct erx_conn_state fresh = {};

	if (c)
		return c;
	if (!erx_sock_tuple(sk, &fresh.tuple))
		return NULL;
	fresh.id = __sync_fetch_and_add(&erx_next_conn_id, 1);
	fresh.role = ERX_ROLE_UNKNOWN;
	fresh.ignored = erx_port_excluded(&fresh.tuple) || erx_connection_to_agent(sk, &fresh.tuple);
	if (bpf_map_update_elem(&erx_conns, &key, &fresh, BPF_NOEXIST)) {
		/* Lost a race with another CPU, or the table is full. */
		c = bpf_map_lookup_elem(&erx_conns, &key);
		if (!c)
			erx_count(ERX_CNT_CONN_TABLE_FULL);
		return c;
	}
	return bpf_map_lookup_elem(&erx_conns, &key);
}

/* A fixed-size connection record (open/close); ts_exit 0: now. */
static __always_inline void erx_emit_conn_at(__u8 kind, __u8 sys, struct erx_conn_state *c, int fd, __u64 ts_enter,
					     __u64 ts_exit)
{
	struct erx_conn_event *e;

	c->announced = 1;
	erx_count(ERX_CNT_PRODUCED);
	e = bpf_ringbuf_reserve(&erx_events, sizeof(*e), 0);
	if (!e) {
		erx_count(ERX_CNT_LOST_RINGBUF_FULL);
		return;
	}
	erx_fill_header_at(&e->hdr, kind, 0, c->role, sys, c->id, ts_enter, ts_exit ? ts_exit : bpf_ktime_get_ns());
	e->tuple = c->tuple;
	e->fd = fd;
	e->_pad0 = 0;
	e->bytes_sent = c->bytes_sent;
	e->bytes_received = c->bytes_received;
	bpf_ringbuf_submit(e, erx_rb_flags(sizeof(*e), true));
}

static __always_inline void erx_emit_conn(__u8 kind, __u8 sys, struct erx_conn_state *c, int fd, __u64 ts_enter)
{
	erx_emit_conn_at(kind, sys, c, fd, ts_enter, 0);
}

#endif
