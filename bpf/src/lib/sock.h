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

/* Socket files all share one file_operations (socket_file_ops): the first socket recognised
 * by its inode's mode teaches it, and from then on a file's f_op alone says whether it is a
 * socket (no inode read). */
__u64 erx_socket_fops = 0;

/* The sock behind a socket file, or NULL when the file is not a socket. f_op, private_data and
 * f_inode are read with one probe read when they lie within 64 bytes of each other (the
 * offsets are the running kernel's, relocated at load: the other branch is dead code). */
static __always_inline struct sock *erx_file_sock(struct file *f)
{
	__u32 o_op = bpf_core_field_offset(struct file, f_op);
	__u32 o_pd = bpf_core_field_offset(struct file, private_data);
	__u32 o_in = bpf_core_field_offset(struct file, f_inode);
	__u32 lo = o_op < o_pd ? o_op : o_pd;
	__u64 span[8] = {}, fops, inode;
	struct socket *sock;
	struct sock *sk = NULL;
	__u64 known;
	umode_t mode;

	if (!f)
		return NULL;
	lo = lo < o_in ? lo : o_in;
	if (o_op - lo < 64 && o_pd - lo < 64 && o_in - lo < 64) {
		bpf_probe_read_kernel(span, sizeof(span), (void *)f + lo);
		fops = span[((o_op - lo) / 8) & 7];
		sock = (struct socket *)span[((o_pd - lo) / 8) & 7];
		inode = span[((o_in - lo) / 8) & 7];
	} else {
		fops = (__u64)BPF_CORE_READ(f, f_op);
		sock = BPF_CORE_READ(f, private_data);
		inode = (__u64)BPF_CORE_READ(f, f_inode);
	}
	known = *(volatile __u64 *)&erx_socket_fops;
	if (known) {
		if (fops != known)
			return NULL;
	} else {
		mode = BPF_CORE_READ((struct inode *)inode, i_mode);
		if ((mode & ERX_S_IFMT) != ERX_S_IFSOCK)
			return NULL;
		erx_socket_fops = fops;
	}
	if (!sock)
		return NULL;
	bpf_probe_read_kernel(&sk, sizeof(sk), &sock->sk);
	return sk;
}

/* A TCP socket (IPv4/IPv6). */
static __always_inline bool erx_sock_is_tcp(struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	return (family == ERX_AF_INET || family == ERX_AF_INET6) && BPF_CORE_READ(sk, sk_protocol) == ERX_IPPROTO_TCP;
}

/* A TCP socket in state CLOSE: ended (or never connected). */
static __always_inline bool erx_tcp_sock_closed(struct sock *sk)
{
	return erx_sock_is_tcp(sk) && BPF_CORE_READ(sk, __sk_common.skc_state) == 7 /* TCP_CLOSE */;
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
