/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Filters filled by user space from the config (discovery rules, excluded ports). */
#ifndef ERX_MAPS_FILTERS_H
#define ERX_MAPS_FILTERS_H

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768); /* include rules exclude every other process */
	__type(key, __u32);   /* tgid (as the agent numbers them: see erx_config.agent_pidns_ino) */
	__type(value, __u8);  /* enum erx_pid_exclusion */
} erx_excluded_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);   /* local or remote port, host order */
	__type(value, __u8);
} erx_excluded_ports SEC(".maps");

#endif
