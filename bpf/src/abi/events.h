/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one definition of every kernel <-> user-space struct and constant.
 *
 * User space (receiver/bpf/abi.py) feeds the region between the "abi:begin" and "abi:end"
 * markers to cffi's cdef, so it must stay plain C that cffi understands: fixed-width
 * __u8/__u16/__u32/__u64 fields, integer #defines, enums, no attributes, no expressions in
 * #defines. Explicit padding keeps layouts identical on both sides; tests/kernel/test_abi.py
 * checks sizes and offsets against the BTF of the compiled object.
 */
#ifndef ERX_ABI_EVENTS_H
#define ERX_ABI_EVENTS_H

/* abi:begin */

/* Upper bound of the payload bytes captured per syscall (power of two). */
#define ERX_MAX_CAPTURE 16384
/* How many iovecs of readv/writev/sendmsg/recvmsg are walked for payload. */
#define ERX_MAX_IOVECS 64
/* How many messages of one sendmmsg/recvmmsg become data events. */
#define ERX_MAX_MMSG 8
/* Bytes of a process's comm. */
#define ERX_COMM_LEN 16

/* HTTP/1 transactions paired in the kernel (ERX_EV_HTTP_TX): bounds of the strings a record
 * carries (longer values are cut, and flagged). The target keeps url.path and url.query of
 * nearly every API request whole (route templating reads the path) while the six strings
 * together stay under 1 KiB of kernel state per connection. */
#define ERX_HTTP_METHOD_MAX 16      /* a longer method is handed to user space (fallback) */
#define ERX_HTTP_TARGET_MAX 256
#define ERX_HTTP_HOST_MAX 128
#define ERX_HTTP_USER_AGENT_MAX 192
#define ERX_HTTP_TRACEPARENT_MAX 64 /* version 00 is 55 bytes */
#define ERX_HTTP_TRACESTATE_MAX 64  /* a prefix */
#define ERX_HTTP_STRINGS_MAX 720    /* the six above together */
/* Longest request or response head (start line to blank line) the kernel parses; a longer one
 * is handed to user space, bytes included. */
#define ERX_HTTP_MAX_HEAD 2048
/* 1xx interim responses whose codes a record keeps (n_interim counts them all). */
#define ERX_HTTP_MAX_INTERIM 4
/* Duration buckets of the overload aggregates: upper-inclusive bounds in ns (the semantic
 * conventions' http.server.request.duration boundaries), then the overflow bucket. */
#define ERX_HTTP_BUCKETS 15
#define ERX_HTTP_BOUND_0_NS 5000000
#define ERX_HTTP_BOUND_1_NS 10000000
#define ERX_HTTP_BOUND_2_NS 25000000
#define ERX_HTTP_BOUND_3_NS 50000000
#define ERX_HTTP_BOUND_4_NS 75000000
#define ERX_HTTP_BOUND_5_NS 100000000
#define ERX_HTTP_BOUND_6_NS 250000000
#define ERX_HTTP_BOUND_7_NS 500000000
#define ERX_HTTP_BOUND_8_NS 750000000
#define ERX_HTTP_BOUND_9_NS 1000000000
#define ERX_HTTP_BOUND_10_NS 2500000000
#define ERX_HTTP_BOUND_11_NS 5000000000
#define ERX_HTTP_BOUND_12_NS 7500000000
#define ERX_HTTP_BOUND_13_NS 10000000000

/* Bits of erx_event_header.flags. */
#define ERX_FLAG_TLS 1 /* plaintext read at the TLS library (uprobes), not at the socket */
#define ERX_FLAG_SERVING_MULTIPLEXED 2 /* ERX_EV_SERVING: the thread read a second request before the
                                        * first was answered (an event loop); it announces no more */

/* The first byte of every ring-buffer record. */
enum erx_event_kind {
	ERX_EV_DATA = 1,       /* payload of a socket read/write (struct erx_data_event) */
	ERX_EV_CONN_OPEN = 2,  /* connect finished (struct erx_conn_event); an accepted connection is
	                        * announced by its first data or transaction record */
	ERX_EV_CONN_CLOSE = 3, /* close() of a tracked socket (struct erx_conn_event) */
	ERX_EV_PROC_EXEC = 4,  /* sched_process_exec (struct erx_proc_event) */
	ERX_EV_PROC_EXIT = 5,  /* sched_process_exit of a thread-group leader (struct erx_proc_event) */
	ERX_EV_LOG = 6,        /* write to stdout/stderr that is not a socket (struct erx_data_event) */
	ERX_EV_SENDFILE = 7,   /* sendfile to a socket: bytes counted, no payload (struct erx_data_event) */
	ERX_EV_CONN_FAILURE = 8, /* a TCP connect failed (struct erx_conn_failure_event; network_metrics) */
	ERX_EV_LOG_PIPE = 9,   /* first write to stdout/stderr of a pipe not classified yet (struct erx_log_pipe_event) */
	ERX_EV_HTTP_TX = 10,   /* an HTTP/1 request and its response, paired in the kernel (struct erx_http_tx_event) */
	ERX_EV_SERVING = 11,   /* a thread serving a paired request acts for it (struct erx_serving_event) */
};

/* Direction relative to the traced process. */
enum erx_direction {
	ERX_DIR_EGRESS = 0,  /* the process wrote/sent the bytes */
	ERX_DIR_INGRESS = 1, /* the process read/received the bytes */
};

/* The traced process's side of the connection. */
enum erx_role {
	ERX_ROLE_UNKNOWN = 0, /* socket existed before the agent or was inherited */
	ERX_ROLE_CLIENT = 1,  /* connect() */
	ERX_ROLE_SERVER = 2,  /* accept()/accept4() */
};

/* The syscall that produced a data event. */
enum erx_syscall {
	ERX_SYS_READ = 1,
	ERX_SYS_WRITE = 2,
	ERX_SYS_READV = 3,
	ERX_SYS_WRITEV = 4,
	ERX_SYS_RECVFROM = 5,
	ERX_SYS_SENDTO = 6,
	ERX_SYS_RECVMSG = 7,
	ERX_SYS_SENDMSG = 8,
	ERX_SYS_RECVMMSG = 9,
	ERX_SYS_SENDMMSG = 10,
	ERX_SYS_SENDFILE = 11,
	ERX_SYS_CONNECT = 12,
	ERX_SYS_ACCEPT = 13,
	ERX_SYS_ACCEPT4 = 14,
	ERX_SYS_CLOSE = 15,
	ERX_SYS_SSL_READ = 16,  /* SSL_read / SSL_read_ex (uprobe) */
	ERX_SYS_SSL_WRITE = 17, /* SSL_write / SSL_write_ex (uprobe) */
};

/* Transport of a tuple. */
enum erx_transport {
	ERX_TRANSPORT_UNKNOWN = 0,
	ERX_TRANSPORT_TCP = 1,
	ERX_TRANSPORT_UDP = 2,
	ERX_TRANSPORT_UNIX_STREAM = 3,
	ERX_TRANSPORT_UNIX_DGRAM = 4,
};

/* Indexes of the per-CPU counter array "erx_counters". produced == delivered + sum(lost_*). */
enum erx_counter {
	ERX_CNT_PRODUCED = 0,          /* records the kernel side tried to submit */
	ERX_CNT_LOST_RINGBUF_FULL = 1, /* bpf_ringbuf_output failed: ring buffer full */
	ERX_CNT_LOST_NO_SCRATCH = 2,   /* per-CPU scratch buffer lookup failed */
	ERX_CNT_PAYLOAD_READ_FAILED = 3, /* user memory unreadable: event sent with captured_len 0 */
	ERX_CNT_CONN_TABLE_FULL = 4,   /* connection table update failed (not a lost record) */
	ERX_CNT_INFLIGHT_FULL = 5,     /* per-thread in-flight table update failed (syscall missed) */
	ERX_CNT_FILTERED = 6,          /* socket syscalls dropped by a kernel filter */
	ERX_CNT_TLS_CIPHERTEXT = 7,    /* socket syscalls of TLS connections not captured (plaintext is) */
	ERX_CNT_TLS_UNMAPPED = 8,      /* TLS plaintext dropped: its SSL* was never tied to a socket */
	/* HTTP/1 pairing (erx_config.http_pairing). Transactions the kernel completed; each of them
	 * was submitted as an ERX_EV_HTTP_TX record or added to erx_http_aggregates (ERX_CNT_SHED_*),
	 * or lost with the aggregates full (ERX_CNT_HTTP_AGG_FULL). */
	ERX_CNT_HTTP_PAIRED = 9,
	/* Connections handed to the payload path (ERX_EV_DATA from a message boundary on), by why. */
	ERX_CNT_HTTP_FALLBACK_PIPELINED = 10,  /* a request before the previous response ended */
	ERX_CNT_HTTP_FALLBACK_EXPECT = 11,     /* a request with Expect (100-continue) */
	ERX_CNT_HTTP_FALLBACK_UPGRADE = 12,    /* Upgrade header, CONNECT, or a 101 response */
	ERX_CNT_HTTP_FALLBACK_HEAD_TOO_LARGE = 13, /* a head longer than ERX_HTTP_MAX_HEAD */
	ERX_CNT_HTTP_FALLBACK_UNPARSED = 14,   /* a head or body framing the kernel does not parse */
	ERX_CNT_HTTP_FALLBACK_UNEXPECTED = 15, /* response bytes while no response was due */
	ERX_CNT_HTTP_FALLBACK_TRUNCATED = 16,  /* the connection closed in the middle of a head */
	ERX_CNT_HTTP_FALLBACK_NO_STATE = 17,   /* the pairing table was full, or evicted the entry */
	ERX_CNT_HTTP_FALLBACK_UNSUPPORTED = 18, /* a syscall the pairing does not follow (mmsg, a head by sendfile) */
	/* Transactions aggregated into erx_http_aggregates instead of submitted, by why. */
	ERX_CNT_SHED_RING = 19,      /* the ring buffer held more than the shed threshold */
	ERX_CNT_SHED_LEVEL = 20,     /* user space's shed level (erx_http_control) */
	ERX_CNT_SHED_RING_FULL = 21, /* the record did not fit (also counted in LOST_RINGBUF_FULL) */
	ERX_CNT_HTTP_AGG_FULL = 22,  /* transactions lost: erx_http_aggregates was full */
	/* TLS plaintext read but not tied to a connection, by why (tls_unattached{reason}); the
	 * plaintext of SSL objects whose socket is unknown is ERX_CNT_TLS_UNMAPPED. */
	ERX_CNT_TLS_NO_CONN = 23,    /* the connection table had no room for its socket */
	ERX_CNT_TLS_BIO_BOUND = 24,  /* SSL objects on memory BIOs tied to a socket by the thread's socket I/O */
	ERX_CNT_TLS_GO_NO_FD = 25,   /* Go crypto/tls plaintext whose *tls.Conn gave no socket fd */
	ERX_CNT_DATA_AFTER_CLOSE = 26, /* data syscalls of a TCP socket that reached CLOSE (its close record sent) while they ran */
	ERX_CNT_CLOSE_UNANNOUNCED = 27, /* closes not sent: user space held nothing of the connection (its one record was its last transaction) */
	ERX_CNT_MAX = 28,
};

/* Values of the map erx_ignored_conns (conn id -> why user space switched it off). */
enum erx_ignore {
	ERX_IGNORE_ALL = 1,     /* nothing of this connection is wanted */
	ERX_IGNORE_SOCKET = 2,  /* its socket bytes are TLS ciphertext: TLS library plaintext still is */
};

/* Values of the map erx_excluded_pids (pid -> why it is not traced). */
enum erx_pid_exclusion {
	ERX_PID_EXCLUDED = 1,     /* exclude_pids or an exclude rule: kept across exec */
	ERX_PID_NOT_INCLUDED = 2, /* matches no include rule: dropped at exec (user space decides again) */
};

/* Methods the aggregates tell apart (the semantic conventions' known methods). */
enum erx_http_method {
	ERX_HTTP_OTHER = 0,
	ERX_HTTP_GET = 1,
	ERX_HTTP_HEAD = 2,
	ERX_HTTP_POST = 3,
	ERX_HTTP_PUT = 4,
	ERX_HTTP_DELETE = 5,
	ERX_HTTP_CONNECT = 6,
	ERX_HTTP_OPTIONS = 7,
	ERX_HTTP_TRACE = 8,
	ERX_HTTP_PATCH = 9,
	ERX_HTTP_QUERY = 10,
};

/* Bits of erx_http_tx_event.http_flags. */
enum erx_http_flag {
	ERX_HTTP_F_REQ_CHUNKED = 1,        /* the request body was chunked */
	ERX_HTTP_F_RESP_CHUNKED = 2,       /* the response body was chunked */
	ERX_HTTP_F_CLOSE_DELIMITED = 4,    /* the response body ran to connection close */
	ERX_HTTP_F_RESP_TRUNCATED = 8,     /* the connection closed before the response's end */
	ERX_HTTP_F_NO_RESPONSE = 16,       /* the connection closed before a final response (status 0) */
	ERX_HTTP_F_REQ_TRUNCATED = 32,     /* the connection closed before the request body's end */
	ERX_HTTP_F_TARGET_CUT = 64,        /* target_wire_len > target_len */
	ERX_HTTP_F_HOST_CUT = 128,
	ERX_HTTP_F_USER_AGENT_CUT = 256,
	ERX_HTTP_F_TRACEPARENT_CUT = 512,
	ERX_HTTP_F_TRACESTATE_CUT = 1024,
	ERX_HTTP_F_REQ_CONN_CLOSE = 2048,  /* the request said Connection: close */
	ERX_HTTP_F_RESP_CONN_CLOSE = 4096, /* the response said Connection: close */
	ERX_HTTP_F_RESP_UNPARSED = 8192,   /* the response head could not be parsed (handed over): status only */
	/* The transaction is its connection's last (either side said Connection: close); so is one
	 * completed by the close (hdr.syscall ERX_SYS_CLOSE). A connection whose first record is its
	 * last transaction gets no entry in user space, and no close record. */
	ERX_HTTP_F_LAST = ERX_HTTP_F_REQ_CONN_CLOSE | ERX_HTTP_F_RESP_CONN_CLOSE,
};

/* Values of erx_http_control.shed_level: what the kernel aggregates instead of submitting,
 * whatever the ring buffer's fill. */
enum erx_shed_level {
	ERX_SHED_NONE = 0,
	ERX_SHED_SUCCESSES = 1, /* every transaction but errors */
	ERX_SHED_ALL = 2,
};

/* Socket endpoints. Addresses are 16 bytes: IPv4 in the first 4 bytes. Ports in host order.
 * For unix sockets the ports hold nothing and the addresses are zero. */
struct erx_tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;    /* AF_INET, AF_INET6, AF_UNIX */
	__u8 transport;  /* enum erx_transport */
	__u8 _pad0;
};

/* Common head of every record. */
struct erx_event_header {
	__u8 kind;       /* enum erx_event_kind */
	__u8 direction;  /* enum erx_direction */
	__u8 role;       /* enum erx_role */
	__u8 syscall;    /* enum erx_syscall */
	__u32 pid;       /* thread-group id */
	__u32 tid;
	__u32 flags;     /* ERX_FLAG_* */
	__u64 conn_id;   /* unique for the lifetime of a connection; survives fd reuse */
	__u64 cgroup_id;
	__u64 ts_enter_ns; /* CLOCK_MONOTONIC at syscall entry */
	__u64 ts_exit_ns;  /* CLOCK_MONOTONIC at syscall exit */
};

/* ERX_EV_DATA / ERX_EV_LOG / ERX_EV_SENDFILE. The record is cut after captured_len bytes of
 * payload: record size == offsetof(payload) + captured_len. */
struct erx_data_event {
	struct erx_event_header hdr;
	struct erx_tuple tuple;
	__u32 total_len;    /* bytes the syscall really moved (this message, for mmsg) */
	__u32 captured_len; /* bytes of payload that follow (<= capture_size) */
	__s32 fd;
	__u32 _pad0;
	__u8 payload[ERX_MAX_CAPTURE];
};

/* ERX_EV_CONN_OPEN / ERX_EV_CONN_CLOSE. */
struct erx_conn_event {
	struct erx_event_header hdr;
	struct erx_tuple tuple;
	__s32 fd;
	__u32 _pad0;
	__u64 bytes_sent;     /* totals seen on the connection (for close) */
	__u64 bytes_received;
};

/* ERX_EV_PROC_EXEC / ERX_EV_PROC_EXIT. */
struct erx_proc_event {
	struct erx_event_header hdr;
	__u32 ppid;
	__s32 exit_code;
	__u8 comm[ERX_COMM_LEN];
};

/* Network health (receivers.ebpf.network_metrics): the per-peer aggregates of the map
 * erx_net_stats, the failed-connect records, and their knobs. */

/* Histogram bounds per kernel histogram (microseconds); a histogram has one bucket more. */
#define ERX_NET_BOUNDS 31
#define ERX_NET_BUCKETS 32

/* Bits of erx_config.net_metrics: which metrics the kernel side computes (programs of metrics
 * that are off are not loaded). */
enum erx_net_metric {
	ERX_NET_RTT = 1,              /* smoothed RTT samples (tcp_sock.srtt_us) */
	ERX_NET_RETRANSMITS = 2,      /* tcp:tcp_retransmit_skb */
	ERX_NET_RESETS = 4,           /* tcp:tcp_send_reset / tcp:tcp_receive_reset */
	ERX_NET_CONNECT_FAILURES = 8, /* SYN_SENT -> CLOSE, reason from sk_err */
	ERX_NET_CONNECT_DURATION = 16, /* SYN_SENT -> ESTABLISHED */
	ERX_NET_FLOW = 32,            /* bytes and segments of TCP sockets (tcp_sock counters) */
	ERX_NET_TC_FLOW = 64,         /* packets without a local socket, at tc (forwarded) */
};

/* Which end of the connection the process is; decides what erx_net_key.port holds. */
enum erx_net_side {
	ERX_NET_SIDE_UNKNOWN = 0, /* no syscall seen: guessed from the ports (see tcp_health.h) */
	ERX_NET_SIDE_CLIENT = 1,  /* the peer is the server: port is the peer's (remote) port */
	ERX_NET_SIDE_SERVER = 2,  /* the peer is a client: port is the local (service) port */
};

/* Why a connect failed (from the socket's error when SYN_SENT became CLOSE). */
enum erx_net_failure {
	ERX_NET_FAIL_REFUSED = 0,          /* ECONNREFUSED: a RST answered the SYN */
	ERX_NET_FAIL_TIMEOUT = 1,          /* ETIMEDOUT: the SYN retries ran out */
	ERX_NET_FAIL_HOST_UNREACHABLE = 2, /* EHOSTUNREACH (ICMP) */
	ERX_NET_FAIL_NET_UNREACHABLE = 3,  /* ENETUNREACH (ICMP) */
	ERX_NET_FAIL_RESET = 4,            /* ECONNRESET */
	ERX_NET_FAIL_ABORTED = 5,          /* no error: closed by the process before it connected */
	ERX_NET_FAIL_OTHER = 6,            /* any other errno */
	ERX_NET_FAIL_MAX = 7,
};

/* The key of erx_net_stats: one entry per (process, peer, service port, side). */
struct erx_net_key {
	__u8 peer_addr[16]; /* IPv4 in the first 4 bytes */
	__u32 tgid;         /* 0: no process (kernel replies, sockets seen only in softirq) */
	__u16 port;         /* service port, host order: remote (client side) or local (server side) */
	__u16 family;       /* AF_INET, AF_INET6 */
	__u8 side;          /* enum erx_net_side */
	__u8 overflow;      /* 1: the one entry that takes everything once the map is full */
	__u8 _pad0[6];
};

/* The value of erx_net_stats: cumulative since the entry was created. Histograms count values
 * v (microseconds) in bucket i when bounds[i-1] < v <= bounds[i] (OTLP's upper-inclusive). */
struct erx_net_stats {
	__u64 retransmits;
	__u64 resets_sent;
	__u64 resets_received;
	__u64 bytes_sent;     /* tcp_sock.bytes_acked: payload the peer acknowledged */
	__u64 bytes_received; /* tcp_sock.bytes_received: payload received in order */
	__u64 segs_out;       /* tcp_sock.segs_out: segments sent, retransmits and pure ACKs included */
	__u64 segs_in;        /* tcp_sock.segs_in */
	__u64 connect_failures[ERX_NET_FAIL_MAX]; /* by enum erx_net_failure */
	__u64 rtt_count;
	__u64 rtt_sum_us;
	__u64 rtt_buckets[ERX_NET_BUCKETS];
	__u64 connect_count;
	__u64 connect_sum_us;
	__u64 connect_buckets[ERX_NET_BUCKETS];
};

/* The key of erx_tc_flows: packets seen at tc that no local socket sent or will receive. */
struct erx_tc_flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 ifindex;
	__u16 port;       /* the lower of the two ports (the service port, as a guess), host order */
	__u16 family;
	__u8 direction;   /* enum erx_direction: egress or ingress of the interface */
	__u8 protocol;    /* IPPROTO_TCP, IPPROTO_UDP, other (port 0) */
	__u8 overflow;
	__u8 _pad0[5];
};

struct erx_tc_flow_stats {
	__u64 packets;
	__u64 bytes; /* skb->len at tc: the whole frame (link-layer header included, none on tun) */
};

/* ERX_EV_CONN_FAILURE: one failed connect, in the ring buffer with the traffic so that it is
 * seen in order with the request whose thread dialled. hdr.pid/tid: the connecting thread;
 * hdr.conn_id: the connection's id when connect() registered it (non-blocking), else 0;
 * hdr.ts_enter_ns: the SYN was about to be sent (inside connect()); hdr.ts_exit_ns: the socket
 * gave up. */
struct erx_conn_failure_event {
	struct erx_event_header hdr;
	struct erx_tuple tuple;
	__s32 error;       /* the socket's errno (sk_err), 0 when closed without one */
	__u8 reason;       /* enum erx_net_failure */
	__u8 _pad0[3];
};

/* The agent's own sockets (erx_agent_endpoints): connections of other processes whose remote end
 * is one of them are the agent's exports, scrapes and health checks, and are not traced. Listeners
 * bound to the wildcard address are keyed with a zero addr (matched for loopback peers only). */
struct erx_endpoint_key {
	__u8 addr[16];   /* IPv4 in the first 4 bytes */
	__u32 netns;     /* network namespace inode */
	__u16 port;      /* host order */
	__u16 family;    /* AF_INET, AF_INET6 */
};

/* Values of erx_agent_endpoints. */
enum erx_agent_endpoint {
	ERX_AGENT_CLIENT = 1,   /* the agent dialled from it (exports): its peer receives the agent's data;
				 * a connection is the agent's only if its other end is in erx_agent_conns */
	ERX_AGENT_LISTENER = 2, /* the agent serves on it (metrics, health, zPages) */
	ERX_AGENT_CLIENT_SEEDED = 3, /* a client socket user space found at start (its peer is not
				      * recorded): matched by this endpoint alone */
};

/* erx_config.log_pipes: a write to stdout/stderr that is a pipe is a log line when the pipe's reader
 * is a log destination (a container runtime's log pipe), not another local process. */
enum erx_log_pipes {
	ERX_LOG_PIPES_CLASSIFIED = 0, /* user space classifies each pipe (ERX_EV_LOG_PIPE), verdicts in erx_log_pipes */
	ERX_LOG_PIPES_ALL = 1,        /* every pipe is a log destination */
	ERX_LOG_PIPES_NONE = 2,       /* no pipe is */
};

/* Values of erx_log_pipes (pipe inode -> verdict). */
enum erx_log_pipe_verdict {
	ERX_PIPE_PENDING = 1, /* announced to user space (ERX_EV_LOG_PIPE), no verdict yet: writes dropped */
	ERX_PIPE_LOG = 2,     /* a log destination: writes are ERX_EV_LOG records */
	ERX_PIPE_NOT_LOG = 3, /* a pipe into another local process: writes are not logs */
};

/* ERX_EV_LOG_PIPE: the first write of hdr.pid to a pipe (on fd 1 or 2) not classified yet. */
struct erx_log_pipe_event {
	struct erx_event_header hdr;
	__u64 pipe_ino;  /* the pipe's inode (/proc/<pid>/fd/<fd> -> pipe:[ino]) */
	__s32 fd;
	__u32 _pad0;
};

/* ERX_EV_SERVING (http_pairing): the thread hdr.pid/hdr.tid is serving the request that arrived
 * on server connection hdr.conn_id (its first byte read at hdr.ts_exit_ns), and is about to act
 * for it — a call on a client connection, or a write to stdout/stderr — before that request's
 * ERX_EV_HTTP_TX record, which comes only once the response is sent. Sent once per request, and
 * only for requests whose thread acts: what the payload path learns from the request's data
 * records (thread-per-request linking). A thread that opens a second request before the first
 * was answered (an event loop) announces both, so user space stops linking by thread. */
struct erx_serving_event {
	struct erx_event_header hdr;
};

/* ERX_EV_HTTP_TX: one HTTP/1 request and its final response, paired in the kernel. No body
 * byte is in it. The record is cut after strings_len bytes of strings: record size ==
 * offsetof(strings) + strings_len.
 *
 * hdr.direction is the direction of the requests (egress: the traced process is the client);
 * hdr.syscall/tid/ts_enter_ns/ts_exit_ns are those of the syscall that completed the
 * transaction (the response's last byte, or the close that ended it: ERX_SYS_CLOSE, tid of the
 * connection's last data syscall). start_ns and end_ns are the ts_exit_ns of the syscalls that
 * carried the request's first byte and the response's last byte (the close for a body that
 * runs to close, or for a request that got no response): the timestamps the payload path's
 * parser gives a transaction. Sizes as the parser counts them: a head is start line to blank
 * line; the wire size of a message is its head and every body byte incl. chunk framing. */
struct erx_http_tx_event {
	struct erx_event_header hdr;
	struct erx_tuple tuple;
	__u64 start_ns;
	__u64 end_ns;
	__u64 req_body_size;
	__u64 req_wire_size;
	__u64 resp_body_size;
	__u64 resp_wire_size;
	__u32 req_tid;          /* thread that read (server) or wrote (client) the request's first byte */
	__u32 http_flags;       /* enum erx_http_flag */
	__u32 req_head_size;
	__u32 resp_head_size;
	__u16 status;           /* final status code; 0 with ERX_HTTP_F_NO_RESPONSE */
	__u16 target_len;       /* bytes of target in strings */
	__u16 target_wire_len;  /* the target's length in the request line */
	__u16 host_off;         /* Host value: strings[host_off, host_off + host_len) */
	__u16 host_len;
	__u16 user_agent_off;
	__u16 user_agent_len;
	__u16 traceparent_off;
	__u16 traceparent_len;
	__u16 tracestate_off;
	__u16 tracestate_len;
	__u16 strings_len;      /* bytes of strings in the record */
	__u16 interim[ERX_HTTP_MAX_INTERIM]; /* the first 1xx interim status codes, in order */
	__u8 method;            /* enum erx_http_method */
	__u8 method_len;        /* method: strings[0, method_len); target right after it */
	__u8 req_version;       /* minor version digit of the request line ("1.<d>") */
	__u8 resp_version;      /* of the final response's status line */
	__u8 n_interim;         /* 1xx interim responses before the final one */
	__u8 _pad0[3];
	__u8 strings[ERX_HTTP_STRINGS_MAX];
};

/* Key of erx_http_aggregates (per-CPU hash): what an aggregated transaction keeps of its RED
 * attributes. Client role: the server is the socket's remote end (not the Host header); server
 * role: the local port (server.port), address zero. No route, no Host, no user agent. */
struct erx_http_agg_key {
	__u32 pid;              /* as hdr.pid */
	__u16 status;           /* 0: no response */
	__u16 server_port;
	__u8 server_addr[16];   /* client role: as erx_tuple.daddr; server role: zero */
	__u16 family;
	__u8 role;              /* enum erx_role */
	__u8 method;            /* enum erx_http_method */
	__u8 version;           /* minor version of the request line */
	__u8 tls;               /* 1: TLS library plaintext (url.scheme https) */
	__u8 generation;        /* erx_http_control.generation when it was added */
	__u8 _pad0;
};

/* Value of erx_http_aggregates (one per CPU): a duration histogram in ns. */
struct erx_http_agg_value {
	__u64 count;
	__u64 sum_ns;
	__u64 min_ns;           /* of this CPU's transactions (count > 0) */
	__u64 max_ns;
	__u64 buckets[ERX_HTTP_BUCKETS]; /* bucket i: duration <= ERX_HTTP_BOUND_<i>_NS, the last one above */
};

/* The one entry of the array erx_http_control, written by user space. */
struct erx_http_control {
	__u32 shed_level;       /* enum erx_shed_level */
	__u32 generation;       /* 0 or 1: the aggregates the kernel adds to (the other is drained) */
};

/* Go crypto/tls (receiver/discovery/go_tls.py): one entry per attached Go executable in the
 * array erx_go_tls_binaries, at the index its uprobes carry as cookie: how to go from a
 * *tls.Conn to its socket's fd (tls.Conn.conn -> *net.TCPConn -> fd *netFD -> pfd.Sysfd). */
#define ERX_GO_TLS_BINARIES 1024
struct erx_go_tls_binary {
	__u64 itab_tcpconn;     /* address of go.itab.*net.TCPConn,net.Conn (0: not checked) */
	__u32 tls_conn_conn;    /* offsetof(crypto/tls.Conn, conn): a net.Conn interface */
	__u32 net_conn_fd;      /* offsetof(net.conn, fd) */
	__u32 netfd_pfd;        /* offsetof(net.netFD, pfd) */
	__u32 pfd_sysfd;        /* offsetof(internal/poll.FD, Sysfd) */
	__u8 valid;             /* 1: the entry is filled */
	__u8 _pad0[7];
};

/* Knobs set by user space in .rodata before load (the only thing in .rodata). */
struct erx_config {
	__u32 agent_tgid;    /* never trace the agent itself */
	__u32 capture_size;  /* payload bytes per syscall, <= ERX_MAX_CAPTURE */
	__u64 wakeup_bytes;  /* force a user-space wakeup when this much data is pending */
	__u8 capture_logs;   /* emit ERX_EV_LOG for writes to fd 1/2 */
	__u8 filter_ports;   /* consult erx_excluded_ports */
	__u8 filter_pids;    /* consult erx_excluded_pids */
	__u8 pidns_only;     /* with agent_pidns_ino: trace only tasks of that pid namespace */
	__u8 observe_self;   /* 1: trace connections whose other end is the agent (debugging) */
	__u8 log_pipes;      /* enum erx_log_pipes: which stdout/stderr pipes are log destinations */
	__u8 http_pairing;   /* pair HTTP/1 transactions in the kernel (ERX_EV_HTTP_TX) */
	__u8 _pad0[1];
	/* The agent's pid namespace (st_dev, st_ino of /proc/self/ns/pid) when it is not the
	 * initial one (a pod): agent_tgid and erx_excluded_pids then hold pids as seen there.
	 * Both 0 in the initial namespace (pids compared as the kernel reports them). */
	__u64 agent_pidns_dev;
	__u64 agent_pidns_ino;
	/* Network health: enabled metrics (enum erx_net_metric bits), how often a connection's
	 * RTT and byte counters are sampled from its data syscalls, histogram bounds (us). */
	__u32 net_metrics;
	__u32 net_rtt_bounds;     /* bounds used of net_rtt_bounds_us */
	__u32 net_connect_bounds; /* bounds used of net_connect_bounds_us */
	__u32 _pad1;
	__u64 net_sample_interval_ns;
	__u32 net_rtt_bounds_us[ERX_NET_BOUNDS];
	__u32 net_connect_bounds_us[ERX_NET_BOUNDS];
	/* Overload (http_pairing): with more than this many bytes waiting in the ring buffer, a
	 * transaction is aggregated instead of submitted; errors (5xx; 4xx too for a client; no
	 * response) only above shed_error_ring_bytes. 0: never. */
	__u64 shed_ring_bytes;
	__u64 shed_error_ring_bytes;
	/* A transaction lasting at least this long is shed as late as an error (what a tail
	 * sampler's latency policy keeps); 0: duration does not matter. */
	__u64 shed_keep_slower_than_ns;
};

/* -- CPU profiling (profile.bpf.c: its own object, loaded only with a profiles pipeline) ---- */

/* Python frames kept per sample (innermost first; a power of two); deeper stacks are cut and
 * flagged. */
#define ERX_PROF_PY_FRAMES 64
/* An offset of struct erx_prof_py_proc that does not apply to the interpreter's version. */
#define ERX_PROF_NO_OFFSET 4294967295

/* Indexes of the per-CPU array erx_prof_counters. */
enum erx_prof_counter {
	ERX_PROF_CNT_SAMPLES = 0,       /* perf events the program ran for (idle excluded) */
	ERX_PROF_CNT_IDLE = 1,          /* samples of the idle task (not kept) */
	ERX_PROF_CNT_KEYS_FULL = 2,     /* samples lost: erx_prof_counts was full */
	ERX_PROF_CNT_USER_STACK_ERR = 3,   /* user stack not collected (kernel thread, bucket collision) */
	ERX_PROF_CNT_KERNEL_STACK_ERR = 4, /* kernel stack not collected while in the kernel */
	ERX_PROF_CNT_PY_STACKS = 5,     /* samples with Python frames */
	ERX_PROF_CNT_PY_READ_ERR = 6,   /* a Python frame chain could not be read (paged out, torn) */
	ERX_PROF_CNT_PY_STACKS_FULL = 7, /* Python stacks lost: erx_prof_py_stacks was full */
	ERX_PROF_CNT_SERVING = 8,       /* samples of a thread serving a request (span id label) */
	ERX_PROF_CNT_MAX = 9,
};

/* The profiler's knobs (.rodata of profile.bpf.c). */
struct erx_prof_config {
	__u32 agent_tgid; /* the agent's own samples are kept too unless skip_agent */
	__u8 skip_agent;
	__u8 python;      /* walk the frames of the processes in erx_prof_py_procs */
	__u8 serving;     /* read the request the thread serves (erx_serving_state) */
	__u8 _pad0[1];
};

/* Aggregation key of erx_prof_counts (value: __u64 samples). Stack ids index erx_prof_stacks
 * (negative: the kernel's error, no stack). py_stack: key of erx_prof_py_stacks, 0 none.
 * serving_*: the HTTP/1 server request the thread was serving (the key of its span: conn_id and
 * the ts of its first byte, as in ERX_EV_HTTP_TX), 0 none. */
struct erx_prof_key {
	__u32 pid;
	__u32 tid;
	__s32 user_stack;
	__s32 kernel_stack;
	__u64 py_stack;
	__u64 serving_conn_id;
	__u64 serving_start_ns;
};

/* Where a CPython process keeps its frames (erx_prof_py_procs, by tgid; user space fills it
 * from the interpreter's symbols and version). The thread running Python code holds the GIL:
 * *tstate_ptr is its thread state; its frame chain is followed when native_thread_id is the
 * sampled thread. */
struct erx_prof_py_proc {
	__u64 tstate_ptr;       /* address of the pointer to the GIL holder's PyThreadState */
	__u32 ts_native_tid;    /* PyThreadState.native_thread_id */
	__u32 ts_cframe;        /* PyThreadState.cframe (3.11, 3.12), or ERX_PROF_NO_OFFSET */
	__u32 ts_frame;         /* _PyCFrame.current_frame, or PyThreadState.current_frame (3.13) */
	__u32 frame_code;       /* _PyInterpreterFrame.f_code (f_executable) */
	__u32 frame_previous;   /* _PyInterpreterFrame.previous */
	__u32 frame_owner;      /* _PyInterpreterFrame.owner, or ERX_PROF_NO_OFFSET */
	__u8 owner_cstack;      /* owner value of the C-stack shim frames (skipped), 255 none */
	__u8 _pad0[7];
};

/* One Python stack: code object addresses, innermost first (erx_prof_py_stacks). */
struct erx_prof_py_stack {
	__u32 depth;
	__u32 truncated; /* 1: deeper than ERX_PROF_PY_FRAMES */
	__u64 code[ERX_PROF_PY_FRAMES];
};

/* abi:end */

#endif /* ERX_ABI_EVENTS_H */
