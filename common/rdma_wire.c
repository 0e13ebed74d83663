/*
 * rdma_wire.c - writing and parsing the RDMA transport's framing around
 * an ORFA message and its connection private data (layouts and rules in
 * rdma_wire.h).  Pure: bytes in, bytes or a parsed struct out; no verbs,
 * no allocation, no connection state, so it is built and unit-tested
 * (test/unit/test_rdma_wire.c) with or without libibverbs.  The frame
 * header inside is decoded by the transports' shared helper
 * (orfa_tp_hdr_decode).
 */
#include "rdma_wire.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "transport_impl.h"

static uint32_t ld32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t ld64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

/* ---- writer ------------------------------------------------------------- */

void rdma_wire_put(uint8_t p[RDMA_WIRE_SIZE], const struct rdma_wire *w)
{
	struct rdma_wire le = {
		.type = w->type, .flags = w->flags, .nseg = w->nseg,
		.head_len = htole32(w->head_len),
		.credits = htole32(w->credits),
		.rdv_acks = htole32(w->rdv_acks),
	};

	memcpy(p, &le, RDMA_WIRE_SIZE);
}

void rdma_seg_put(uint8_t p[RDMA_SEG_SIZE], const struct rdma_seg *s)
{
	struct rdma_seg le = {
		.addr = htole64(s->addr), .rkey = htole32(s->rkey),
		.len = htole32(s->len),
	};

	memcpy(p, &le, RDMA_SEG_SIZE);
}

size_t rdma_wire_write_msg(uint8_t *buf, const struct rdma_wire *w,
			   const struct rdma_seg *adv,
			   const struct rdma_seg *seg, const uint8_t *head)
{
	uint8_t *p = buf + RDMA_WIRE_SIZE;

	rdma_wire_put(buf, w);
	if (w->flags & RWF_ADVERT) {
		rdma_seg_put(p, adv);
		p += RDMA_SEG_SIZE;
	}
	for (unsigned i = 0; i < w->nseg; i++) {
		rdma_seg_put(p, &seg[i]);
		p += RDMA_SEG_SIZE;
	}
	memcpy(p, head, w->head_len);
	memset(p + w->head_len, 0, rdma_pad8(w->head_len) - w->head_len);
	p += rdma_pad8(w->head_len);
	return (size_t)(p - buf);
}

void rdma_priv_put(struct rdma_priv *p, uint32_t credits, uint32_t buf_size)
{
	memset(p, 0, sizeof(*p));
	p->magic = htole32(RDMA_PRIV_MAGIC);
	p->version = htole16(RDMA_PRIV_VERSION);
	p->credits = htole32(credits);
	p->buf_size = htole32(buf_size);
}

/* ---- parser ------------------------------------------------------------- */

int rdma_priv_parse(const void *data, size_t len, uint32_t *credits,
		    uint32_t *buf_size)
{
	struct rdma_priv p;
	uint32_t min_buf = RDMA_MSG_OVERHEAD + ORFA_HDR_SIZE + 64;

	if (!data || len < sizeof(p))
		return -EPROTO;
	memcpy(&p, data, sizeof(p));
	if (le32toh(p.magic) != RDMA_PRIV_MAGIC ||
	    le16toh(p.version) != RDMA_PRIV_VERSION || p.pad != 0)
		return -EPROTO;
	if (le32toh(p.credits) < 2 || le32toh(p.credits) > 65536 ||
	    le32toh(p.buf_size) < min_buf ||
	    le32toh(p.buf_size) > ORFA_RDMA_MAX_BUF_SIZE)
		return -EPROTO;
	*credits = le32toh(p.credits);
	*buf_size = le32toh(p.buf_size);
	return 0;
}

static void seg_get(const uint8_t *p, struct rdma_seg *s)
{
	s->addr = ld64(p);
	s->rkey = ld32(p + 8);
	s->len = ld32(p + 12);
}

static int bad(struct rdma_wire_msg *m, int err, const char *why)
{
	m->why = why;
	return err;
}

/* The 16-byte header on its own: padding, flags, control messages. */
static int parse_wire(const uint8_t *buf, size_t len, struct rdma_wire_msg *m)
{
	struct rdma_wire *w = &m->w;

	if (len < RDMA_WIRE_SIZE)
		return bad(m, -EBADMSG, "short message");
	w->type = buf[0];
	w->flags = buf[1];
	w->nseg = buf[2];
	w->pad = buf[3];
	w->head_len = ld32(buf + 4);
	w->credits = ld32(buf + 8);
	w->rdv_acks = ld32(buf + 12);
	if (w->pad != 0 || (w->flags & ~RWF_ALL) ||
	    (w->type == RW_CTRL && (w->flags || w->nseg || w->head_len)))
		return bad(m, -EPROTO, "non-zero padding or unknown flags");
	m->wire_ok = 1;
	if (w->type != RW_CTRL && w->type != RW_MSG)
		return bad(m, -EPROTO, "unknown type");
	return 0;
}

/* Where the segments and the head are, and the head's limits. */
static int parse_layout(const uint8_t *buf, size_t len, uint32_t max_body,
			uint32_t max_data, struct rdma_wire_msg *m)
{
	const struct rdma_wire *w = &m->w;
	uint32_t off = RDMA_WIRE_SIZE;
	int rc;

	if (w->flags & RWF_ADVERT)
		off += RDMA_SEG_SIZE;
	if (w->flags & RWF_RDV) {
		if (w->nseg == 0 || w->nseg > RDMA_MAX_SEG)
			return bad(m, -EPROTO, "bad segment count");
	} else if (w->nseg) {
		return bad(m, -EPROTO, "segments without rendezvous");
	}
	off += w->nseg * RDMA_SEG_SIZE;
	if (w->head_len < ORFA_HDR_SIZE ||
	    w->head_len - ORFA_HDR_SIZE > max_body)
		return bad(m, -EMSGSIZE, "header segment too large");
	if ((uint64_t)off + rdma_pad8(w->head_len) > len)
		return bad(m, -EBADMSG, "truncated header segment");

	/* Everything up to the end of the head is within len. */
	if (w->flags & RWF_ADVERT)
		seg_get(buf + RDMA_WIRE_SIZE, &m->adv);
	for (unsigned i = 0; i < w->nseg; i++)
		seg_get(buf + off - (w->nseg - i) * RDMA_SEG_SIZE, &m->seg[i]);
	m->head_off = off;
	m->data_off = off + rdma_pad8(w->head_len);
	rc = orfa_tp_hdr_decode(buf + off, &m->hdr, max_body, max_data,
				NULL, 0);
	if (m->hdr.body_len != w->head_len - ORFA_HDR_SIZE)
		return bad(m, -EBADMSG, "body length mismatch");
	if (rc)		/* the body is within max_body: checked above */
		return bad(m, -EMSGSIZE, "data segment too large");
	return 0;
}

/* How the data segment travels must agree with the lengths. */
static int parse_data(size_t len, struct rdma_wire_msg *m)
{
	const char *bad_len = "length does not match the header";
	const char *bad_desc = "bad data segment description";
	uint8_t fl = m->w.flags;
	uint64_t sum = 0;

	if (m->hdr.data_len == 0) {
		if (len != m->data_off)
			return bad(m, -EBADMSG, bad_len);
		if (fl & (RWF_RDV | RWF_WRITTEN))
			return bad(m, -EPROTO, bad_desc);
	} else if (fl & RWF_INLINE) {
		if (fl & (RWF_RDV | RWF_WRITTEN))
			return bad(m, -EPROTO, bad_desc);
		if ((uint64_t)m->data_off + m->hdr.data_len != len)
			return bad(m, -EBADMSG, bad_len);
	} else if (fl & RWF_RDV) {
		if (fl & RWF_WRITTEN)
			return bad(m, -EPROTO, bad_desc);
		for (unsigned i = 0; i < m->w.nseg; i++) {
			if (m->seg[i].len == 0)
				return bad(m, -EPROTO, bad_desc);
			sum += m->seg[i].len;
		}
		if (sum != m->hdr.data_len || len != m->data_off)
			return bad(m, -EBADMSG, bad_len);
	} else if (fl & RWF_WRITTEN) {
		if (len != m->data_off)
			return bad(m, -EPROTO, bad_desc);
	} else {
		return bad(m, -EPROTO, bad_desc);
	}
	return 0;
}

int rdma_wire_parse(const uint8_t *buf, size_t len, uint32_t max_body,
		    uint32_t max_data, struct rdma_wire_msg *m)
{
	int rc;

	memset(m, 0, sizeof(*m));
	rc = parse_wire(buf, len, m);
	if (rc || m->w.type == RW_CTRL)
		return rc;
	rc = parse_layout(buf, len, max_body, max_data, m);
	if (rc)
		return rc;
	return parse_data(len, m);
}
