/* An HTTPS/1.1 server with OpenSSL linked in statically (libssl.a, libcrypto.a), built by
 * tests/support/static_openssl.py:
 *
 *	tls-static-server CERT KEY
 *
 * prints "READY <port>", serves one keep-alive connection at a time until its stdin closes.
 * GET .../status/<code> answers that code, any other path 200. Requests have no body. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void serve(SSL_CTX *ctx, int fd)
{
	char buf[8192];
	size_t have = 0;
	SSL *ssl = SSL_new(ctx);

	SSL_set_fd(ssl, fd);
	if (SSL_accept(ssl) != 1)
		goto out;
	for (;;) {
		char *end, path[1024], resp[2048];
		int n, code = 200, len;
		const char *status;

		while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
			if (have == sizeof(buf))
				goto out;
			n = SSL_read(ssl, buf + have, (int)(sizeof(buf) - have));
			if (n <= 0)
				goto out;
			have += (size_t)n;
		}
		if (sscanf(buf, "%*s %1023s", path) != 1)
			goto out;
		if (strstr(path, "/status/"))
			code = atoi(strstr(path, "/status/") + 8);
		status = code == 200 ? "OK" : code == 404 ? "Not Found" : "Other";
		n = snprintf(resp + 1024, 1024, "%s over static openssl\n", path);
		len = snprintf(resp, 1024, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n",
			       code, status, n);
		if (SSL_write(ssl, resp, len) != len || SSL_write(ssl, resp + 1024, n) != n)
			goto out;
		end += 4;
		have -= (size_t)(end - buf);
		memmove(buf, end, have);
	}
out:
	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(addr);
	SSL_CTX *ctx;
	int one = 1, lfd;

	if (argc != 3)
		return 2;
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 64) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen)) {
		perror("listen");
		return 1;
	}
	printf("READY %d\n", ntohs(addr.sin_port));
	fflush(stdout);
	for (;;) {
		struct pollfd fds[2] = { { .fd = lfd, .events = POLLIN }, { .fd = 0, .events = POLLIN } };
		char c;

		if (poll(fds, 2, -1) < 0)
			return 1;
		if (fds[1].revents && read(0, &c, 1) <= 0)
			return 0;
		if (fds[0].revents & POLLIN) {
			int fd = accept(lfd, NULL, NULL);
			if (fd >= 0)
				serve(ctx, fd);
		}
	}
}
