/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* HTTP/1 pairing in the kernel (erx_config.http_pairing): per-connection parser state with the
 * transaction in flight, heads split over several syscalls, the parse window, and the overload
 * aggregates with their control. */
#ifndef ERX_MAPS_HTTP_H
#define ERX_MAPS_HTTP_H

/* Values of erx_conn_state.http: which path a connection's bytes take. */
enum erx_http_mode {
	ERX_HTTP_UNDECIDED = 0, /* no byte seen yet */
	ERX_HTTP_PAIRING = 1,   /* HTTP/1, paired here: state in erx_http_conns */
	ERX_HTTP_PAYLOAD = 2,   /* handed over to user space (data records), for good */
	ERX_HTTP_NOT_HTTP = 3,  /* not HTTP/1 requests from the first byte: data records */
};

/* What a direction of a paired connection expects next. */
enum erx_http_stream {
	ERX_HS_IDLE = 0,        /* requests: a new request may start; responses: nothing is due */
	ERX_HS_HEAD = 1,        /* responses: a response head is due */
	ERX_HS_PARTIAL = 2,     /* a head started and is held in erx_http_partial */
	ERX_HS_LENGTH = 3,      /* a body of known length: remaining bytes */
	ERX_HS_CHUNKED = 4,     /* a chunked body: see enum erx_http_chunk */
	ERX_HS_UNTIL_CLOSE = 5, /* a response body delimited by the connection's close */
};

/* Where a chunked body is (RFC 9112 section 7.1). */
enum erx_http_chunk {
	ERX_CH_SIZE = 0,        /* hex digits of a chunk size (at least one read when size_digits) */
	ERX_CH_EXT = 1,         /* after the digits: extensions up to the line's LF */
	ERX_CH_DATA = 2,        /* remaining bytes of chunk data */
	ERX_CH_DATA_END = 3,    /* the CRLF (or LF) after chunk data */
	ERX_CH_DATA_LF = 4,     /* its CR was seen */
	ERX_CH_TRAILER = 5,     /* at the start of a trailer line (or of the final blank line) */
	ERX_CH_TRAILER_LINE = 6, /* inside a trailer field line */
	ERX_CH_TRAILER_LF = 7,  /* a CR at the start of a line: the LF ends the body */
};

/* The last head parsed in a direction, by a hash of its bytes: keep-alive connections send the
 * same heads again and again, and a head's parse depends on its bytes only. */
struct erx_http_seen {
	__u64 hash;             /* of its bytes (0: none) */
	__s64 content_length;
	__u32 len;              /* its bytes (no empty line before it) */
	__u32 cut_flags;        /* requests: ERX_HTTP_F_*_CUT of its strings (still in tx.strings) */
	__u16 status;
	__u8 version;
	__u8 fields;            /* ERX_HF_* */
	__u8 method;
	__u8 _pad0[3];
};

struct erx_http_dir {
	__u64 remaining;        /* LENGTH: body bytes left; CHUNKED/ERX_CH_DATA: bytes of this chunk */
	__u64 chunk_size;       /* the chunk size being read */
	__u32 line_len;         /* bytes of the current chunk-size or trailer line */
	__u8 state;             /* enum erx_http_stream */
	__u8 chunk;             /* enum erx_http_chunk */
	__u8 size_digits;       /* hex digits read of the chunk size */
	__u8 _pad0;
	struct erx_http_seen seen;
};

/* A paired connection. Its parsing state comes first: what every syscall reads sits in the
 * value's first cache lines, next to the table's own header. tx is the transaction in flight,
 * laid out as the record it becomes: it is submitted straight from here. _slack keeps bounded
 * copies into tx.strings provably inside the value. */
struct erx_http_conn {
	struct erx_http_dir req;
	struct erx_http_dir resp;
	__u32 last_tid;         /* thread of the last data syscall (the record of a close) */
	__u8 req_dir;           /* enum erx_direction of the requests */
	__u8 open;              /* tx holds a request head */
	__u8 req_done;          /* its request is complete */
	__u8 resp_done;         /* its final response is complete */
	__u8 handover;          /* requests already go to user space (pipelining): the responses
				 * follow once this one ended */
	__u8 kept;              /* user space keeps an entry for the connection: a transaction that
				 * was not its last, or data records, went out while it was paired */
	__u8 _pad0[6];
	struct erx_http_tx_event tx;
	__u8 _slack[512];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192); /* resized from receivers.ebpf.http_pairing.connections */
	__type(key, __u64);        /* conn id */
	__type(value, struct erx_http_conn);
} erx_http_conns SEC(".maps");

/* Never written: the zero value new entries of erx_http_conns and erx_http_aggregates start
 * from (too large for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct erx_http_conn);
} erx_http_zero SEC(".maps");

/* The bytes of a head that did not end in the syscall that started it, until it ends. */
struct erx_http_partial {
	__u64 ts_enter_ns;      /* of the syscall that carried the head's first byte */
	__u64 ts_exit_ns;
	__u32 pid;
	__u32 tid;
	__u32 len;
	__s32 fd;
	__u8 syscall;
	__u8 direction;
	__u8 tls;
	__u8 _pad0[5];
	__u8 buf[ERX_HTTP_MAX_HEAD];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024); /* 1 without pairing (the loader) */
	__type(key, __u64);     /* conn id */
	__type(value, struct erx_http_partial);
} erx_http_partial SEC(".maps");

/* One head being parsed (lib/http1_parse.h): what the parser was given and what it found.
 * Strings are [off, off + len) of the window. */
struct erx_http_head {
	__u64 hash;              /* erx_http_hash: of the window's first len bytes */
	__s64 content_length;    /* -1: none */
	__u32 len;               /* in: bytes of the window to parse */
	__u32 cursor;            /* next 8 bytes to scan */
	__u32 line_start;
	__u32 head_start;        /* after empty lines that precede the message */
	__u32 head_end;          /* 0 until the blank line is found: then just past it */
	__u16 status;
	__u16 method_len;        /* the method is at head_start */
	__u16 target_off;
	__u16 target_len;        /* as on the wire */
	__u16 host_off;
	__u16 host_len;
	__u16 user_agent_off;
	__u16 user_agent_len;
	__u16 traceparent_off;
	__u16 traceparent_len;
	__u16 tracestate_off;
	__u16 tracestate_len;
	__u8 is_request;         /* in */
	__u8 lines;              /* lines seen (the start line is the first) */
	__u8 version;            /* minor version digit */
	__u8 method;             /* enum erx_http_method */
	__u8 fields;             /* ERX_HF_* */
	__u8 bad;                /* erx_counter of why this head is handed over; 0: fine */
	__u8 _pad0[4];
};

/* Chunk framing bytes at the window's start, and a direction's chunk state (copied in and out)
 * (lib/http1_chunked.h). */
struct erx_http_framing {
	struct erx_http_dir d;
	__u64 wire;      /* out: bytes to add to the message's wire size */
	__u64 body;      /* out: bytes to add to its body size */
	__u32 len;       /* in: framing bytes in the window */
	__u32 used;      /* out: bytes used */
	__u8 complete;   /* out: the body ended */
	__u8 bad;        /* out: framing the payload path's parser rejects too */
	__u8 _pad0[6];
};

/* A data syscall handed to the HTTP program (progs/http.h) by a tail call: what erx_data_exit
 * or erx_ssl_exit knew. */
struct erx_http_call {
	struct erx_inflight inf;
	struct erx_conn_state conn; /* a copy: erx_http_set_mode writes the connection's mode back */
	__u64 sk;                 /* key of erx_conns */
	__u64 src;                /* as erx_emit_payload's */
	__u64 uaddr;
	__u32 n;
	__u32 iovcnt;
	__u8 kind;                /* the data record's kind without pairing */
	__u8 _pad0[7];
};

/* The syscall being followed (lib/http1_pair.h): scalars only. */
struct erx_http_ctx {
	__u64 src;                /* user buffer, or iovec array when iovcnt; 0: no bytes to read (sendfile) */
	__u64 now;                /* this syscall's exit */
	__u64 ts_enter;
	__u64 conn_id;
	__u32 iovcnt;
	__u32 n;                  /* bytes the syscall moved */
	__u32 pos;                /* bytes of them followed */
	__u32 handover_at;
	__u32 tid;
	__s32 fd;
	__u8 syscall;
	__u8 is_req;              /* the bytes go the requests' way */
	__u8 action;              /* enum erx_http_action */
	__u8 reason;              /* erx_counter of the handover; 0: counted already */
	__u8 replay;              /* submit erx_http_partial's bytes before the handover */
	__u8 _pad0[3];
};

/* Per CPU: the parse window (a head's bytes, copied from the syscall's buffer and from
 * erx_http_partial; room past ERX_HTTP_MAX_HEAD for masked offsets and 8-byte loads, and for
 * staging a new erx_http_partial entry), and the state of the syscall being followed. Kept out
 * of the stack so that the verifier does not track these values across bpf_loop steps. */
#define ERX_HTTP_WINDOW (4 * ERX_HTTP_MAX_HEAD)
struct erx_http_scratch {
	__u8 w[ERX_HTTP_WINDOW];
	struct erx_http_call call;
	struct erx_http_ctx x;
	struct erx_http_head h;
	struct erx_http_framing f;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct erx_http_scratch);
} erx_http_scratch SEC(".maps");

/* The HTTP program of each program type (a tail call stays within its type), set by the loader:
 * data syscalls of connections that are, or may become, paired jump there. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} erx_http_tp_progs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} erx_http_uprobe_progs SEC(".maps");

/* Overload aggregates: transactions not submitted, by RED attributes (see events.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 2048); /* resized from receivers.ebpf.http_pairing.aggregate_keys */
	__type(key, struct erx_http_agg_key);
	__type(value, struct erx_http_agg_value);
} erx_http_aggregates SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct erx_http_control);
} erx_http_control SEC(".maps");

/* Per generation, per CPU: programs adding to that generation's aggregates right now. User
 * space drains a generation once it is no longer current and this sums to 0 over the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __s64);
} erx_http_agg_busy SEC(".maps");

#include "maps/serving.h"

#endif
