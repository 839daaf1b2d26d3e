/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* HTTP/1 heads parsed in the kernel, from the per-CPU window (erx_http_scratch).
 *
 * The head is scanned 8 bytes at a time for line feeds (SWAR); each line is handled once: the
 * start line in full, a field line by its first 8-18 bytes, lowercased (host, user-agent,
 * traceparent, tracestate, content-length, transfer-encoding, connection, expect, upgrade) and,
 * for those, its value's bounds. Other field lines are not read past their name. The grammar
 * follows the payload path's parser (receiver/protocols/http1/parse.py) for what it pairs: CRLF
 * or bare LF line ends, empty lines before a message skipped, Content-Length digits only (a
 * list, or a second one that differs, is not parsed here), Transfer-Encoding chunked when its
 * last coding is. What this parser does not accept is handed over to user space, bytes
 * included.
 *
 * erx_http_parse and erx_http_line are global functions: the verifier checks each once, with
 * nothing but scalars in their arguments (struct erx_http_head), whatever calls them. */
#ifndef ERX_LIB_HTTP1_PARSE_H
#define ERX_LIB_HTTP1_PARSE_H

/* 8 characters as the little-endian u64 a load of them gives. */
#define ERX_W8(a, b, c, d, e, f, g, h)                                                              \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 | (__u64)(e) << 32 |       \
	 (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)
#define ERX_LOWER 0x2020202020202020ULL
#define ERX_ONES 0x0101010101010101ULL
#define ERX_HIGHS 0x8080808080808080ULL
#define ERX_MASK(n) ((n) >= 8 ? ~0ULL : ((1ULL << ((n) * 8)) - 1))

/* Offsets into the window are masked so that every access is provably inside it. */
#define ERX_WIN_MASK 0xfff /* < ERX_HTTP_WINDOW / 2 */

/* Bits of erx_http_head.fields. */
#define ERX_HF_EXPECT 1
#define ERX_HF_UPGRADE 2
#define ERX_HF_CONN_CLOSE 4
#define ERX_HF_CHUNKED 8
#define ERX_HF_OTHER_CODING 16
#define ERX_HF_HOST 32
#define ERX_HF_USER_AGENT 64
#define ERX_HF_TRACESTATE 128

static __always_inline __u8 *erx_http_window(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&erx_http_scratch, &zero);
}

static __always_inline __u64 erx_load8(const __u8 *w, __u32 off)
{
	return *(const __u64 *)(w + (off & ERX_WIN_MASK));
}

static __always_inline __u8 erx_byte(const __u8 *w, __u32 off)
{
	return w[off & ERX_WIN_MASK];
}

/* RFC 9110 tchar. */
static __always_inline bool erx_tchar(__u8 c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
	case '-': case '.': case '^': case '_': case '`': case '|': case '~':
		return true;
	}
	return false;
}

/* A known method word at the start of v (8 bytes): its length, and the method. */
static __always_inline __u32 erx_http_known_method(__u64 v, __u8 *method)
{
	if ((v & ERX_MASK(4)) == ERX_W8('G', 'E', 'T', ' ', 0, 0, 0, 0))
		return *method = ERX_HTTP_GET, 3;
	if ((v & ERX_MASK(5)) == ERX_W8('P', 'O', 'S', 'T', ' ', 0, 0, 0))
		return *method = ERX_HTTP_POST, 4;
	if ((v & ERX_MASK(4)) == ERX_W8('P', 'U', 'T', ' ', 0, 0, 0, 0))
		return *method = ERX_HTTP_PUT, 3;
	if ((v & ERX_MASK(5)) == ERX_W8('H', 'E', 'A', 'D', ' ', 0, 0, 0))
		return *method = ERX_HTTP_HEAD, 4;
	if ((v & ERX_MASK(7)) == ERX_W8('D', 'E', 'L', 'E', 'T', 'E', ' ', 0))
		return *method = ERX_HTTP_DELETE, 6;
	if ((v & ERX_MASK(6)) == ERX_W8('P', 'A', 'T', 'C', 'H', ' ', 0, 0))
		return *method = ERX_HTTP_PATCH, 5;
	if (v == ERX_W8('O', 'P', 'T', 'I', 'O', 'N', 'S', ' '))
		return *method = ERX_HTTP_OPTIONS, 7;
	if (v == ERX_W8('C', 'O', 'N', 'N', 'E', 'C', 'T', ' '))
		return *method = ERX_HTTP_CONNECT, 7;
	if ((v & ERX_MASK(6)) == ERX_W8('T', 'R', 'A', 'C', 'E', ' ', 0, 0))
		return *method = ERX_HTTP_TRACE, 5;
	if ((v & ERX_MASK(6)) == ERX_W8('Q', 'U', 'E', 'R', 'Y', ' ', 0, 0))
		return *method = ERX_HTTP_QUERY, 5;
	return *method = ERX_HTTP_OTHER, 0;
}

/* Could the first n (< 8) bytes of v begin a request with a known method ("GET ", "POST "...)?
 * A client may write its request a few bytes at a time. */
static __always_inline bool erx_http_method_prefix(__u64 v, __u32 n)
{
	__u8 method;
	__u64 word;

	if (!n || n >= 8)
		return false;
	/* the method word the bytes would make, padded: the known word it starts must match */
	for (__u32 i = 1; i < 8; i++) {
		if (i > n)
			break;
		word = v & ((1ULL << (i * 8)) - 1);
		if (((word >> ((i - 1) * 8)) & 0xff) == ' ')
			return erx_http_known_method(word, &method) == i - 1;
	}
	/* no space yet: the bytes must begin a known method */
	return (v & ERX_MASK(n)) == (ERX_W8('G', 'E', 'T', ' ', 0, 0, 0, 0) & ERX_MASK(n)) ||
	       (v & ERX_MASK(n)) == (ERX_W8('P', 'O', 'S', 'T', ' ', 0, 0, 0) & ERX_MASK(n)) ||
	       (v & ERX_MASK(n)) == (ERX_W8('P', 'U', 'T', ' ', 0, 0, 0, 0) & ERX_MASK(n)) ||
	       (v & ERX_MASK(n)) == (ERX_W8('H', 'E', 'A', 'D', ' ', 0, 0, 0) & ERX_MASK(n)) ||
	       (v & ERX_MASK(n)) == (ERX_W8('D', 'E', 'L', 'E', 'T', 'E', ' ', 0) & ERX_MASK(n)) ||
	       (v & ERX_MASK(n)) == (ERX_W8('P', 'A', 'T', 'C', 'H', ' ', 0, 0) & ERX_MASK(n)) ||
	       (v & ERX_MASK(n)) == (ERX_W8('O', 'P', 'T', 'I', 'O', 'N', 'S', ' ') & ERX_MASK(n)) ||
	       (v & ERX_MASK(n)) == (ERX_W8('C', 'O', 'N', 'N', 'E', 'C', 'T', ' ') & ERX_MASK(n)) ||
	       (v & ERX_MASK(n)) == (ERX_W8('T', 'R', 'A', 'C', 'E', ' ', 0, 0) & ERX_MASK(n)) ||
	       (v & ERX_MASK(n)) == (ERX_W8('Q', 'U', 'E', 'R', 'Y', ' ', 0, 0) & ERX_MASK(n));
}

/* Request line: METHOD SP target SP HTTP/1.d (end: the line without its CR/LF). */
static __always_inline void erx_http_request_line(struct erx_http_head *h, const __u8 *w, __u32 start, __u32 end)
{
	__u32 ml, tstart, tlen;
	__u8 method;

	ml = erx_http_known_method(erx_load8(w, start), &method);
	if (!ml) {
		for (__u32 i = 0; i <= ERX_HTTP_METHOD_MAX; i++) {
			__u8 c = erx_byte(w, start + i);
			if (c == ' ') {
				ml = i;
				break;
			}
			if (!erx_tchar(c) || start + i >= end)
				break;
		}
		if (!ml) {
			h->bad = ERX_CNT_HTTP_FALLBACK_UNPARSED; /* not a token, or longer than kept */
			return;
		}
	}
	/* target SP "HTTP/1." digit: the version sits at the line's end. */
	if (end < start + ml + 2 + 9 || erx_load8(w, end - 9) != ERX_W8(' ', 'H', 'T', 'T', 'P', '/', '1', '.') ||
	    erx_byte(w, end - 1) < '0' || erx_byte(w, end - 1) > '9') {
		h->bad = ERX_CNT_HTTP_FALLBACK_UNPARSED;
		return;
	}
	tstart = start + ml + 1;
	tlen = end - 9 - tstart;
	/* The target kept must be visible characters (obs-text allowed): no SP, CTL or DEL. */
	for (__u32 i = 0; i < ERX_HTTP_TARGET_MAX / 8; i++) {
		__u64 x, y, m;
		__u32 o = i * 8;

		if (o >= tlen)
			break;
		x = erx_load8(w, tstart + o);
		y = x ^ 0x7f7f7f7f7f7f7f7fULL;
		m = (((x - 0x2121212121212121ULL) & ~x) | ((y - ERX_ONES) & ~y)) & ERX_HIGHS;
		if (tlen - o < 8)
			m &= (1ULL << ((tlen - o) * 8)) - 1;
		if (m) {
			h->bad = ERX_CNT_HTTP_FALLBACK_UNPARSED;
			return;
		}
	}
	h->version = erx_byte(w, end - 1) - '0';
	h->method = method;
	h->method_len = ml;
	h->target_off = tstart;
	h->target_len = tlen;
}

/* Status line: HTTP/1.d SP ddd [ (SP|HT) reason ]. */
static __always_inline void erx_http_status_line(struct erx_http_head *h, const __u8 *w, __u32 start, __u32 end)
{
	__u64 v = erx_load8(w, start), v2 = erx_load8(w, start + 8);
	__u8 d = v >> 56, s1 = v2 >> 8, s2 = v2 >> 16, s3 = v2 >> 24, after = v2 >> 32;

	if (end < start + 12 || (v & ERX_MASK(7)) != ERX_W8('H', 'T', 'T', 'P', '/', '1', '.', 0) || d < '0' ||
	    d > '9' || (__u8)v2 != ' ' || s1 < '1' || s1 > '9' || s2 < '0' || s2 > '9' || s3 < '0' || s3 > '9' ||
	    (end > start + 12 && after != ' ' && after != '\t')) {
		h->bad = ERX_CNT_HTTP_FALLBACK_UNPARSED;
		return;
	}
	h->version = d - '0';
	h->status = (s1 - '0') * 100 + (s2 - '0') * 10 + (s3 - '0');
}

/* Digits only, at most 19 (as the payload path's fast path). -1: not a length parsed here. */
static __always_inline __s64 erx_http_digits(const __u8 *w, __u32 start, __u32 len)
{
	__s64 n = 0;

	if (len == 0 || len > 19)
		return -1;
	for (__u32 i = 0; i < 19; i++) {
		__u8 c;

		if (i >= len)
			break;
		c = erx_byte(w, start + i);
		if (c < '0' || c > '9')
			return -1;
		n = n * 10 + (c - '0');
	}
	return n;
}

/* Names of the field lines read (erx_http_field). */
enum erx_http_field_name {
	ERX_FN_NONE = 0,
	ERX_FN_HOST,
	ERX_FN_USER_AGENT,
	ERX_FN_TRACEPARENT,
	ERX_FN_TRACESTATE,
	ERX_FN_CONTENT_LENGTH,
	ERX_FN_TRANSFER_ENCODING,
	ERX_FN_CONNECTION,
	ERX_FN_EXPECT,
	ERX_FN_UPGRADE,
};

/* A field line's name, matched lowercased on its first 8 (and next 10) bytes with the colon;
 * *name: the bytes up to the value. */
static __always_inline __u8 erx_http_field_name(const __u8 *w, __u32 start, __u32 *name)
{
	__u64 v = erx_load8(w, start) | ERX_LOWER, v2;

	if ((v & ERX_MASK(5)) == ERX_W8('h', 'o', 's', 't', ':', 0, 0, 0))
		return *name = 5, ERX_FN_HOST;
	if ((v & ERX_MASK(7)) == ERX_W8('e', 'x', 'p', 'e', 'c', 't', ':', 0))
		return *name = 7, ERX_FN_EXPECT;
	if (v == ERX_W8('u', 'p', 'g', 'r', 'a', 'd', 'e', ':'))
		return *name = 8, ERX_FN_UPGRADE;
	v2 = erx_load8(w, start + 8) | ERX_LOWER;
	if (v == ERX_W8('u', 's', 'e', 'r', '-', 'a', 'g', 'e') && (v2 & ERX_MASK(3)) == ERX_W8('n', 't', ':', 0, 0, 0, 0, 0))
		return *name = 11, ERX_FN_USER_AGENT;
	if (v == ERX_W8('t', 'r', 'a', 'c', 'e', 'p', 'a', 'r') && (v2 & ERX_MASK(4)) == ERX_W8('e', 'n', 't', ':', 0, 0, 0, 0))
		return *name = 12, ERX_FN_TRACEPARENT;
	if (v == ERX_W8('t', 'r', 'a', 'c', 'e', 's', 't', 'a') && (v2 & ERX_MASK(3)) == ERX_W8('t', 'e', ':', 0, 0, 0, 0, 0))
		return *name = 11, ERX_FN_TRACESTATE;
	if (v == ERX_W8('c', 'o', 'n', 't', 'e', 'n', 't', '-') &&
	    (v2 & ERX_MASK(7)) == ERX_W8('l', 'e', 'n', 'g', 't', 'h', ':', 0))
		return *name = 15, ERX_FN_CONTENT_LENGTH;
	if (v == ERX_W8('t', 'r', 'a', 'n', 's', 'f', 'e', 'r') && v2 == ERX_W8('-', 'e', 'n', 'c', 'o', 'd', 'i', 'n') &&
	    ((erx_load8(w, start + 16) | ERX_LOWER) & ERX_MASK(2)) == ERX_W8('g', ':', 0, 0, 0, 0, 0, 0))
		return *name = 18, ERX_FN_TRANSFER_ENCODING;
	if (v == ERX_W8('c', 'o', 'n', 'n', 'e', 'c', 't', 'i') && (v2 & ERX_MASK(3)) == ERX_W8('o', 'n', ':', 0, 0, 0, 0, 0))
		return *name = 11, ERX_FN_CONNECTION;
	return *name = 0, ERX_FN_NONE;
}

/* A field line [start, end). */
static __always_inline void erx_http_field(struct erx_http_head *h, const __u8 *w, __u32 start, __u32 end)
{
	__u32 name, vs, ve, vlen;
	__u8 which = erx_http_field_name(w, start, &name);
	__s64 n;

	if (which == ERX_FN_NONE || start + name > end)
		return;
	/* The value, without the whitespace around it. */
	vs = start + name;
	for (int i = 0; i < 16; i++) {
		__u8 c;
		if (vs >= end)
			break;
		c = erx_byte(w, vs);
		if (c != ' ' && c != '\t')
			break;
		vs++;
	}
	ve = end;
	for (int i = 0; i < 16; i++) {
		__u8 c;
		if (ve <= vs)
			break;
		c = erx_byte(w, ve - 1);
		if (c != ' ' && c != '\t')
			break;
		ve--;
	}
	vlen = ve - vs;
	switch (which) {
	case ERX_FN_HOST:
		if (!(h->fields & ERX_HF_HOST)) { /* the first one, as the payload path's lookup */
			h->fields |= ERX_HF_HOST;
			h->host_off = vs;
			h->host_len = vlen;
		}
		break;
	case ERX_FN_USER_AGENT:
		if (!(h->fields & ERX_HF_USER_AGENT)) {
			h->fields |= ERX_HF_USER_AGENT;
			h->user_agent_off = vs;
			h->user_agent_len = vlen;
		}
		break;
	case ERX_FN_TRACEPARENT:
		if (!h->traceparent_off) {
			h->traceparent_off = vs;
			h->traceparent_len = vlen;
		}
		break;
	case ERX_FN_TRACESTATE:
		if (!(h->fields & ERX_HF_TRACESTATE)) {
			h->fields |= ERX_HF_TRACESTATE;
			h->tracestate_off = vs;
			h->tracestate_len = vlen;
		}
		break;
	case ERX_FN_CONTENT_LENGTH:
		n = erx_http_digits(w, vs, vlen);
		if (n < 0 || (h->content_length >= 0 && n != h->content_length))
			h->bad = ERX_CNT_HTTP_FALLBACK_UNPARSED;
		h->content_length = n;
		break;
	case ERX_FN_TRANSFER_ENCODING:
		/* Chunked when the last coding is (alone, or after a comma or whitespace). */
		if (!vlen)
			break;
		h->fields &= ~(ERX_HF_CHUNKED | ERX_HF_OTHER_CODING);
		h->fields |= ERX_HF_OTHER_CODING;
		if (vlen >= 7 && ((erx_load8(w, ve - 7) | ERX_LOWER) & ERX_MASK(7)) == ERX_W8('c', 'h', 'u', 'n', 'k', 'e', 'd', 0)) {
			__u8 before = vlen > 7 ? erx_byte(w, ve - 8) : ',';
			if (before == ',' || before == ' ' || before == '\t')
				h->fields ^= ERX_HF_CHUNKED | ERX_HF_OTHER_CODING;
		}
		break;
	case ERX_FN_CONNECTION:
		if (vlen == 5 && ((erx_load8(w, vs) | ERX_LOWER) & ERX_MASK(5)) == ERX_W8('c', 'l', 'o', 's', 'e', 0, 0, 0))
			h->fields |= ERX_HF_CONN_CLOSE;
		break;
	case ERX_FN_EXPECT:
		h->fields |= ERX_HF_EXPECT;
		break;
	case ERX_FN_UPGRADE:
		h->fields |= ERX_HF_UPGRADE;
		break;
	}
}

/* One line [start, nl) of the head (nl: its LF). Returns 1 to stop: the head ended, or is handed
 * over. */
__noinline int erx_http_line(struct erx_http_head *h, __u32 start, __u32 nl)
{
	__u8 *w = erx_http_window();
	__u32 end = nl;

	if (!h || !w)
		return 1;
	if (end > start && erx_byte(w, end - 1) == '\r')
		end--;
	if (end == start) {
		if (!h->lines) { /* an empty line before the message: not part of it */
			h->head_start = nl + 1;
			return 0;
		}
		h->head_end = nl + 1;
		return 1;
	}
	if (!h->lines++) {
		if (h->is_request)
			erx_http_request_line(h, w, start, end);
		else
			erx_http_status_line(h, w, start, end);
	} else if (erx_byte(w, start) == ' ' || erx_byte(w, start) == '\t') {
		h->bad = ERX_CNT_HTTP_FALLBACK_UNPARSED; /* obsolete line folding */
	} else {
		erx_http_field(h, w, start, end);
	}
	return h->bad ? 1 : 0;
}

struct erx_http_scan {
	struct erx_http_head *h;
	__u8 *w;
};

/* bpf_loop step: 8 bytes of the window; each line feed in them ends a line. */
static long erx_http_scan_word(__u64 i, struct erx_http_scan *sc)
{
	struct erx_http_head *h = sc->h;
	__u32 o = h->cursor, len = h->len;
	__u64 x, m;

	if (o >= len)
		return 1;
	h->cursor = o + 8;
	x = erx_load8(sc->w, o) ^ 0x0a0a0a0a0a0a0a0aULL;
	m = (x - ERX_ONES) & ~x & ERX_HIGHS;
	if (len - o < 8)
		m &= (1ULL << ((len - o) * 8)) - 1;
	for (int j = 0; j < 8; j++) {
		__u64 low;
		__u32 nl;

		if (!m)
			break;
		low = m & -m;
		m &= m - 1;
		/* index of the flagged byte: the top byte of 0x0001..07 shifted by it */
		nl = o + (__u32)(((low >> 7) * 0x0001020304050607ULL) >> 56);
		if (erx_byte(sc->w, nl) != '\n')
			continue; /* a borrow's false positive (a 0x0b right after a LF) */
		if (erx_http_line(h, h->line_start, nl))
			return 1;
		h->line_start = nl + 1;
	}
	return 0;
}

/* A hash of the window's first h->len bytes (at most ERX_HTTP_MAX_HEAD) into h->hash; never
 * 0. Global: verified once. */
__noinline int erx_http_hash(struct erx_http_head *h)
{
	__u8 *w = erx_http_window();
	__u32 len, o = 0;
	__u64 v, x;

	if (!h || !w)
		return 0;
	len = h->len;
	if (len > ERX_HTTP_MAX_HEAD)
		len = ERX_HTTP_MAX_HEAD;
	x = 0x9e3779b97f4a7c15ULL ^ len;
	/* 32 bytes a step while they are all the head's, then 8 (the last ones masked) */
	for (__u32 i = 0; i < ERX_HTTP_MAX_HEAD / 32; i++) {
		if (o + 32 > len)
			break;
		x = (x ^ erx_load8(w, o)) * 0xff51afd7ed558ccdULL;
		x = (x ^ erx_load8(w, o + 8)) * 0xc4ceb9fe1a85ec53ULL;
		x = (x ^ erx_load8(w, o + 16)) * 0xff51afd7ed558ccdULL;
		x = (x ^ erx_load8(w, o + 24)) * 0xc4ceb9fe1a85ec53ULL;
		x ^= x >> 32;
		o += 32;
	}
	for (__u32 i = 0; i < 4; i++) {
		if (o >= len)
			break;
		v = erx_load8(w, o);
		if (len - o < 8)
			v &= (1ULL << ((len - o) * 8)) - 1;
		x = (x ^ v) * 0xff51afd7ed558ccdULL;
		x ^= x >> 32;
		o += 8;
	}
	h->hash = x | 1;
	return 0;
}

/* Parse the head at the window's start (h->len bytes, at most ERX_HTTP_MAX_HEAD; h->is_request
 * set). Returns with h->head_end set when the head is complete, h->bad when it is handed over,
 * neither when more bytes are needed. */
__noinline int erx_http_parse(struct erx_http_head *h)
{
	struct erx_http_scan sc;
	__u8 is_request;
	__u32 len;

	if (!h)
		return 0;
	sc.w = erx_http_window();
	if (!sc.w)
		return 0;
	len = h->len;
	is_request = h->is_request;
	__builtin_memset(h, 0, sizeof(*h));
	h->content_length = -1;
	h->len = len > ERX_HTTP_MAX_HEAD ? ERX_HTTP_MAX_HEAD : len;
	h->is_request = is_request;
	sc.h = h;
	bpf_loop(ERX_HTTP_MAX_HEAD / 8, erx_http_scan_word, &sc, 0);
	return 0;
}

#endif
