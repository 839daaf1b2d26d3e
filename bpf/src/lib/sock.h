/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* From a file descriptor of the current task to its struct sock, and from a sock to a tuple. */
#ifndef ERX_LIB_SOCK_H
#define ERX_LIB_SOCK_H

#define ERX_S_IFMT 00170000
#define ERX_S_IFSOCK 0140000
#define ERX_AF_UNIX 1
#define ERX_AF_INET 2
#define ERX_AF_INET6 10
#define ERX_SOCK_STREAM 1
#define ERX_SOCK_DGRAM 2
#define ERX_IPPROTO_TCP 6
#define ERX_IPPROTO_UDP 17

/* The struct file behind fd in the current task, or NULL. The task's file table is walked
 * through BTF (plain loads); only the fd array's slot needs a probe read. */
static __always_inline struct file *erx_fd_file(int fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt;
	struct file *f = NULL;
	__u64 fds;

	if (fd < 0)
		return NULL;
	fdt = task->files->fdt;
	if (!fdt || (unsigned int)fd >= fdt->max_fds)
		return NULL;
	fds = (__u64)fdt->fd;
	bpf_probe_read_kernel(&f, sizeof(f), (void *)(fds + (__u64)fd * sizeof(f)));
	return f;
}

/* The sock behind a socket file, or NULL when the file is not a socket. */
static __always_inline struct sock *erx_file_sock(struct file *f)
{
	umode_t mode;
	struct socket *sock;

	if (!f)
		return NULL;
	mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & ERX_S_IFMT) != ERX_S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	if (!sock)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

/* Local and remote endpoints of sk. Returns 0 for families we do not trace. */
static __always_inline int erx_sock_tuple(struct sock *sk, struct erx_tuple *t)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 type = BPF_CORE_READ(sk, sk_type);
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);

	__builtin_memset(t, 0, sizeof(*t));
	t->family = family;
	if (family == ERX_AF_INET || family == ERX_AF_INET6) {
		if (proto == ERX_IPPROTO_TCP)
			t->transport = ERX_TRANSPORT_TCP;
		else if (proto == ERX_IPPROTO_UDP)
			t->transport = ERX_TRANSPORT_UDP;
		else
			return 0;
		t->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
		t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		if (family == ERX_AF_INET) {
			bpf_core_read(t->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
			bpf_core_read(t->daddr, 4, &sk->__sk_common.skc_daddr);
		} else {
			bpf_core_read(t->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
			bpf_core_read(t->daddr, 16, &sk->__sk_common.skc_v6_daddr);
		}
		return 1;
	}
	if (family == ERX_AF_UNIX) {
		if (type == ERX_SOCK_STREAM)
			t->transport = ERX_TRANSPORT_UNIX_STREAM;
		else if (type == ERX_SOCK_DGRAM)
			t->transport = ERX_TRANSPORT_UNIX_DGRAM;
		else
			return 0;
		return 1;
	}
	return 0;
}

/* Overwrite the remote endpoint from a user sockaddr (unconnected UDP sendto/recvfrom). */
static __always_inline void erx_tuple_remote_from_user(struct erx_tuple *t, __u64 uaddr)
{
	__u16 family = 0;

	if (!uaddr || t->transport != ERX_TRANSPORT_UDP)
		return;
	if (bpf_probe_read_user(&family, sizeof(family), (void *)uaddr))
		return;
	if (family == ERX_AF_INET) {
		struct sockaddr_in sin = {};
		if (bpf_probe_read_user(&sin, sizeof(sin), (void *)uaddr))
			return;
		__builtin_memset(t->daddr, 0, sizeof(t->daddr));
		__builtin_memcpy(t->daddr, &sin.sin_addr, 4);
		t->dport = bpf_ntohs(sin.sin_port);
	} else if (family == ERX_AF_INET6) {
		struct sockaddr_in6 sin6 = {};
		if (bpf_probe_read_user(&sin6, sizeof(sin6), (void *)uaddr))
			return;
		__builtin_memcpy(t->daddr, &sin6.sin6_addr, 16);
		t->dport = bpf_ntohs(sin6.sin6_port);
	}
}

#endif
