// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ebpf-receiver's kernel side: tracepoints (syscalls, sock, tcp, sched), TLS uprobes, tc classifiers;
 * one ring buffer. With http_pairing, HTTP/1 transactions are paired here (lib/http1_pair.h).
 * Programs are grouped by attach family in progs/; maps in maps/; the ABI in abi/events.h. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

#include "abi/events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Knobs: written by user space into .rodata before load. */
const volatile struct erx_config erx_cfg = {
	.agent_tgid = 0,
	.capture_size = 4096,
	.wakeup_bytes = 1 << 20,
};

#include "maps/events.h"
#include "maps/inflight.h"
#include "maps/conns.h"
#include "maps/filters.h"
#include "maps/ssl.h"
#include "maps/go_tls.h"
#include "maps/tcp_health.h"
#include "maps/self.h"
#include "maps/http.h"

#include "lib/sock.h"
#include "lib/self.h"
#include "lib/emit.h"
#include "lib/tls.h"
#include "lib/tcp_health.h"
#include "lib/self_tracking.h"

#ifdef ERX_FLOOR
/* The benchmark floor: the same tracepoints with empty programs (cost of the hook design). */
#include "progs/floor.h"
#else
/* Before syscalls_conn.h: on inet_sock_set_state this program runs first (attach order), while
 * the connection state it reads for a failed connect's id is still there. */
#include "progs/tcp_health.h"
#include "progs/tc_flow.h"
#include "progs/syscalls_data.h"
#include "progs/syscalls_conn.h"
#include "progs/sched.h"
#include "progs/ssl_uprobes.h"
#include "progs/go_tls.h"
#endif

/* Never called, never loaded: its argument makes clang emit every ABI record and enum into the
 * object's BTF (records that are only reserved in the ring buffer and enums only used as
 * constants leave no type there otherwise), where tests/kernel/test_abi.py compares them with
 * the layouts user space derives from abi/events.h. */
struct erx_abi_types {
	struct erx_tuple tuple;
	struct erx_event_header header;
	struct erx_data_event data;
	struct erx_conn_event conn;
	struct erx_proc_event proc;
	struct erx_config config;
	struct erx_http_tx_event http_tx;
	struct erx_http_agg_key http_agg_key;
	struct erx_http_agg_value http_agg_value;
	struct erx_http_control http_control;
	struct erx_go_tls_binary go_tls_binary;
	enum erx_event_kind kind;
	enum erx_direction direction;
	enum erx_role role;
	enum erx_syscall syscall;
	enum erx_transport transport;
	enum erx_counter counter;
	enum erx_ignore ignore;
	enum erx_pid_exclusion pid_exclusion;
	struct erx_net_key net_key;
	struct erx_net_stats net_stats;
	struct erx_tc_flow_key tc_flow_key;
	struct erx_tc_flow_stats tc_flow_stats;
	struct erx_conn_failure_event conn_failure;
	enum erx_net_metric net_metric;
	enum erx_net_side net_side;
	enum erx_net_failure net_failure;
	struct erx_endpoint_key endpoint_key;
	enum erx_agent_endpoint agent_endpoint;
	enum erx_log_pipes log_pipes;
	enum erx_log_pipe_verdict log_pipe_verdict;
	struct erx_log_pipe_event log_pipe;
	enum erx_http_method http_method;
	enum erx_http_flag http_flag;
	enum erx_shed_level shed_level;
	struct erx_serving_event serving;
};

static __attribute__((used, noinline)) int erx_abi_types(struct erx_abi_types *types)
{
	return types != 0;
}
