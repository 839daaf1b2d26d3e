/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Empty programs on exactly the tracepoints the real object uses, with the same names:
 * bench/ attaches this object to measure what the hook design costs by itself. */
#ifndef ERX_PROGS_FLOOR_H
#define ERX_PROGS_FLOOR_H

#define ERX_FLOOR_PROG(sec, name)   \
	SEC(sec)                    \
	int name(void *ctx)         \
	{                           \
		return 0;           \
	}
#define ERX_FLOOR_SYSCALL(sc)                                              \
	ERX_FLOOR_PROG("tracepoint/syscalls/sys_enter_" #sc, erx_enter_##sc) \
	ERX_FLOOR_PROG("tracepoint/syscalls/sys_exit_" #sc, erx_exit_##sc)

ERX_FLOOR_SYSCALL(read)
ERX_FLOOR_SYSCALL(write)
ERX_FLOOR_SYSCALL(readv)
ERX_FLOOR_SYSCALL(writev)
ERX_FLOOR_SYSCALL(recvfrom)
ERX_FLOOR_SYSCALL(sendto)
ERX_FLOOR_SYSCALL(recvmsg)
ERX_FLOOR_SYSCALL(sendmsg)
ERX_FLOOR_SYSCALL(recvmmsg)
ERX_FLOOR_SYSCALL(sendmmsg)
ERX_FLOOR_SYSCALL(sendfile64)
ERX_FLOOR_SYSCALL(connect)
ERX_FLOOR_SYSCALL(accept)
ERX_FLOOR_SYSCALL(accept4)
ERX_FLOOR_PROG("tracepoint/syscalls/sys_enter_close", erx_enter_close)
ERX_FLOOR_PROG("tracepoint/sock/inet_sock_set_state", erx_inet_sock_set_state)
ERX_FLOOR_PROG("tracepoint/sched/sched_process_exec", erx_sched_process_exec)
ERX_FLOOR_PROG("tracepoint/sched/sched_process_exit", erx_sched_process_exit)

#endif
