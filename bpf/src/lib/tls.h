/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Tying TLS library calls to sockets, seen from the socket syscall side. */
#ifndef ERX_LIB_TLS_H
#define ERX_LIB_TLS_H

/* Called on every socket data syscall enter. Returns true when the bytes are TLS ciphertext
 * and must not be captured because the thread is inside SSL_read/SSL_write (then the SSL
 * object is tied to this socket). A connection already known to carry TLS is left to the exit,
 * which looks the connection up anyway (erx_data_exit). */
static __always_inline bool erx_tls_socket_syscall(__u64 pid_tgid, struct sock *sk)
{
	struct erx_ssl_call *call = erx_ssl_call_current();
	struct erx_conn_state *c;

	if (call) {
		struct erx_ssl_key k = { .ssl = call->ssl, .tgid = pid_tgid >> 32 };
		__u64 v = (__u64)sk;

		bpf_map_update_elem(&erx_ssl_socks, &k, &v, BPF_ANY);
		c = erx_conn_lookup_or_create(sk);
		if (c)
			c->tls = 1;
		erx_count(ERX_CNT_TLS_CIPHERTEXT);
		return true;
	}
	return false;
}

#endif
