/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Tying TLS library calls to sockets, seen from the socket syscall side.
 *
 * An SSL object bound to a socket (SSL_set_fd) makes the socket syscalls inside SSL_read and
 * SSL_write: they tie it to its socket for certain. An SSL object on memory BIOs (Python's
 * asyncio/ssl.MemoryBIO, event-loop runtimes) has no fd: the runtime reads the ciphertext from
 * the socket and hands it to SSL_read (or the handshake), and sends what SSL_write or the
 * handshake produced. Its socket is learned from the same thread's socket I/O around the call:
 * - the socket the thread last read bytes from outside any TLS call is the one the next
 *   SSL_read/handshake of that thread decrypts (pending_in_sk);
 * - a TLS call that ends with its SSL object tied to no socket leaves that object pending, and
 *   the thread's next socket write carries its ciphertext (pending_out_ssl).
 * Guards against taking one connection for another on an event loop that also serves plain
 * connections: a read clears what a TLS call left pending; a pending SSL object is only tied to
 * a socket that has received nothing yet (a client's ClientHello: servers are tied by their
 * reads); a connection is marked TLS by its first plaintext, not by a tie that a later read may
 * correct; only TCP sockets count (an event loop's wake-up socket pair is read and written
 * around its TLS calls too). Every thread that reads a TCP socket gets an erx_ssl_calls entry
 * (once). */
#ifndef ERX_LIB_TLS_H
#define ERX_LIB_TLS_H

/* The thread's TLS call state whether or not it is inside a call, or NULL. */
static __always_inline struct erx_ssl_call *erx_ssl_thread(void)
{
	return bpf_task_storage_get(&erx_ssl_calls, bpf_get_current_task_btf(), 0, 0);
}

static __always_inline void erx_tls_mark_conn(struct sock *sk)
{
	struct erx_conn_state *c = erx_conn_lookup_or_create(sk);

	if (c)
		c->tls = 1;
}

/* Called on every socket data syscall enter. Returns true when the bytes are TLS ciphertext
 * and must not be captured: the thread is inside SSL_read/SSL_write (then the SSL object is
 * tied to this socket), or it writes what a memory-BIO TLS call just produced. A connection
 * already known to carry TLS is left to the exit, which looks the connection up anyway
 * (erx_data_exit). */
static __always_inline bool erx_tls_socket_syscall(__u64 pid_tgid, struct sock *sk, __u8 dir)
{
	struct erx_ssl_call *call = erx_ssl_thread();

	if (!call)
		return false;
	if (call->valid) {
		erx_ssl_bind(call->ssl, pid_tgid >> 32, (__u64)sk, ERX_SSL_BOUND_FD);
		erx_tls_mark_conn(sk);
		erx_count(ERX_CNT_TLS_CIPHERTEXT);
		return true;
	}
	if (dir == ERX_DIR_EGRESS && call->pending_out_ssl && erx_sock_is_tcp(sk)) {
		__u64 ssl = call->pending_out_ssl;
		__u64 key = (__u64)sk;
		struct erx_conn_state *c = bpf_map_lookup_elem(&erx_conns, &key);

		call->pending_out_ssl = 0;
		if (c && !c->tls && c->bytes_received)
			return false; /* a connection that has carried bytes of its own: not this one */
		erx_ssl_bind(ssl, pid_tgid >> 32, (__u64)sk, ERX_SSL_BOUND_BIO);
		erx_count(ERX_CNT_TLS_BIO_BOUND);
		erx_tls_mark_conn(sk);
		erx_count(ERX_CNT_TLS_CIPHERTEXT);
		return true;
	}
	return false;
}

/* A socket read outside any TLS call moved bytes: what the thread's next SSL_read or handshake
 * may be decrypting (memory BIOs). */
static __always_inline void erx_tls_socket_read(__u64 sk)
{
	struct erx_ssl_call *call;

	if (!erx_sock_is_tcp((struct sock *)sk))
		return; /* an event loop's wake-up socket pair is no TLS connection */
	call = bpf_task_storage_get(&erx_ssl_calls, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (call && !call->valid) {
		call->pending_in_sk = sk;
		call->pending_out_ssl = 0; /* the thread moved on: what a TLS call produced was sent */
	}
}

#endif
