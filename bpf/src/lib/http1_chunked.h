/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Chunked bodies (RFC 9112 section 7.1) followed in the kernel: the framing bytes (chunk-size
 * lines, the CRLF after chunk data, the last chunk and trailer section) are read from the
 * window, up to ERX_HTTP_FRAMING_READ at a time, and the chunk data counted by its size, never
 * read. Sizes as the payload path's BodyReader counts them: a chunk's size adds to the body and
 * the wire when its size line ends; framing bytes add to the wire. */
#ifndef ERX_LIB_HTTP1_CHUNKED_H
#define ERX_LIB_HTTP1_CHUNKED_H

/* Chunk-framing bytes read at once. */
#define ERX_HTTP_FRAMING_READ 64
/* Longest chunk-size or trailer line followed (the payload path's MAX_CHUNK_LINE). */
#define ERX_HTTP_MAX_CHUNK_LINE 4096

static __always_inline int erx_hex(__u8 c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Advance f->d over f->len framing bytes; stops early at chunk data (f->d.chunk ==
 * ERX_CH_DATA: counted by length) and at the body's end. Global: verified once. */
__noinline int erx_http_framing(struct erx_http_framing *f)
{
	__u8 *w = erx_http_window();

	if (!f || !w)
		return 0;
	f->used = f->len;
	for (__u32 i = 0; i < ERX_HTTP_FRAMING_READ; i++) {
		struct erx_http_dir *d = &f->d;
		__u8 c;
		int v;

		if (i >= f->len)
			break;
		c = w[i];
		switch (d->chunk) {
		case ERX_CH_SIZE:
		case ERX_CH_EXT:
			d->line_len++;
			if (d->chunk == ERX_CH_SIZE) {
				v = erx_hex(c);
				if (v >= 0) {
					if (d->size_digits >= 16)
						goto bad;
					d->size_digits++;
					d->chunk_size = d->chunk_size << 4 | v;
					break;
				}
				if (!d->size_digits)
					goto bad;
				d->chunk = ERX_CH_EXT;
			}
			if (c != '\n') { /* whitespace, extensions, the CR */
				if (d->line_len >= ERX_HTTP_MAX_CHUNK_LINE)
					goto bad;
				break;
			}
			f->wire += d->line_len + d->chunk_size;
			f->body += d->chunk_size;
			d->line_len = 0;
			if (d->chunk_size) {
				d->remaining = d->chunk_size;
				d->chunk = ERX_CH_DATA;
				f->used = i + 1;
				return 0;
			}
			d->chunk = ERX_CH_TRAILER;
			break;
		case ERX_CH_DATA_END:
		case ERX_CH_DATA_LF:
			f->wire++;
			if (c == '\r' && d->chunk == ERX_CH_DATA_END) {
				d->chunk = ERX_CH_DATA_LF;
				break;
			}
			if (c != '\n')
				goto bad;
			d->chunk = ERX_CH_SIZE;
			d->chunk_size = 0;
			d->size_digits = 0;
			break;
		case ERX_CH_TRAILER:
			if (c == '\n') {
				f->wire++;
				f->used = i + 1;
				goto complete;
			}
			d->line_len = 1;
			d->chunk = c == '\r' ? ERX_CH_TRAILER_LF : ERX_CH_TRAILER_LINE;
			break;
		case ERX_CH_TRAILER_LF:
			if (c != '\n')
				goto bad;
			f->wire += 2;
			f->used = i + 1;
			goto complete;
		case ERX_CH_TRAILER_LINE:
			d->line_len++;
			if (c == '\n') {
				f->wire += d->line_len;
				d->chunk = ERX_CH_TRAILER;
			} else if (d->line_len >= ERX_HTTP_MAX_CHUNK_LINE) {
				goto bad;
			}
			break;
		default: /* ERX_CH_DATA: not framing */
			f->used = i;
			return 0;
		}
	}
	return 0;
complete:
	f->complete = 1;
	return 0;
bad:
	f->bad = 1;
	return 0;
}

#endif
