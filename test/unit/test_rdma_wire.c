/*
 * test_rdma_wire.c - the RDMA transport's framing (common/rdma_wire.c) on
 * raw bytes, without verbs: frames the writer makes parse back to what
 * went in; every malformed field (short, padding, flags, type, segment
 * counts, lengths that disagree, lengths above the limits) is refused
 * with its errno and reason; the connection private data round-trips and
 * its checks hold.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "codec.h"
#include "rdma_wire.h"
#include "transport.h"	/* ORFA_RDMA_MAX_BUF_SIZE */

#define BODY_MAX	4096u
#define DATA_MAX	(1u << 20)

static uint8_t buf[8192];

/* A message laid out by the writer: frame header + body_len bytes of
 * body announcing data_len, nseg segments of seglen[] bytes, inl bytes
 * of inline data appended.  Returns its length. */
static size_t frame(uint8_t flags, uint8_t nseg, uint32_t body_len,
		    uint32_t data_len, const uint32_t *seglen, size_t inl)
{
	uint8_t head[BODY_MAX + ORFA_HDR_SIZE + 64];
	struct orfa_hdr h = {
		.body_len = body_len, .data_len = data_len,
		.opcode = ORFA_OP_READ, .flags = ORFA_F_REPLY,
		.req_id = 0x1122334455667788ull,
	};
	struct rdma_wire w = {
		.type = RW_MSG, .flags = flags, .nseg = nseg,
		.head_len = ORFA_HDR_SIZE + body_len, .credits = 7,
		.rdv_acks = 2,
	};
	struct rdma_seg adv = { .addr = 0xa000, .rkey = 0xadu, .len = 65536 };
	struct rdma_seg seg[RDMA_MAX_SEG];
	size_t n;

	memset(buf, 0xee, sizeof(buf));
	for (unsigned i = 0; i < nseg && i < RDMA_MAX_SEG; i++)
		seg[i] = (struct rdma_seg){ .addr = 0x1000 * (i + 1),
					    .rkey = 100 + i,
					    .len = seglen ? seglen[i] : 0 };
	orfa_hdr_encode(head, &h);
	memset(head + ORFA_HDR_SIZE, 'b', body_len);
	n = rdma_wire_write_msg(buf, &w, &adv, seg, head);
	memset(buf + n, 'd', inl);
	return n + inl;
}

static void put32(size_t off, uint32_t v)
{
	v = htole32(v);
	memcpy(buf + off, &v, 4);
}

START_TEST(ctrl_message_parses)
{
	struct rdma_wire w = { .type = RW_CTRL, .credits = 9, .rdv_acks = 4 };
	struct rdma_wire_msg m;

	rdma_wire_put(buf, &w);
	ck_assert_int_eq(rdma_wire_parse(buf, RDMA_WIRE_SIZE, BODY_MAX,
					 DATA_MAX, &m), 0);
	ck_assert(m.wire_ok);
	ck_assert_uint_eq(m.w.type, RW_CTRL);
	ck_assert_uint_eq(m.w.credits, 9);
	ck_assert_uint_eq(m.w.rdv_acks, 4);
	ck_assert_ptr_null(m.why);
}
END_TEST

START_TEST(message_without_data_parses)
{
	struct rdma_wire_msg m;
	size_t len = frame(0, 0, 13, 0, NULL, 0);

	/* 16 + (24 + 13 padded to 40) */
	ck_assert_uint_eq(len, RDMA_WIRE_SIZE + 40);
	for (size_t i = RDMA_WIRE_SIZE + 37; i < len; i++)
		ck_assert_uint_eq(buf[i], 0);	/* padding written as zeros */
	ck_assert_int_eq(rdma_wire_parse(buf, len, BODY_MAX, DATA_MAX, &m), 0);
	ck_assert_uint_eq(m.w.type, RW_MSG);
	ck_assert_uint_eq(m.w.head_len, ORFA_HDR_SIZE + 13);
	ck_assert_uint_eq(m.w.credits, 7);
	ck_assert_uint_eq(m.w.rdv_acks, 2);
	ck_assert_uint_eq(m.head_off, RDMA_WIRE_SIZE);
	ck_assert_uint_eq(m.data_off, len);
	ck_assert_uint_eq(m.hdr.body_len, 13);
	ck_assert_uint_eq(m.hdr.opcode, ORFA_OP_READ);
	ck_assert_uint_eq(m.hdr.flags, ORFA_F_REPLY);
	ck_assert_uint_eq(m.hdr.req_id, 0x1122334455667788ull);
	ck_assert_uint_eq(buf[m.head_off + ORFA_HDR_SIZE], 'b');
}
END_TEST

START_TEST(inline_data_parses)
{
	struct rdma_wire_msg m;
	size_t len = frame(RWF_INLINE, 0, 16, 100, NULL, 100);

	ck_assert_int_eq(rdma_wire_parse(buf, len, BODY_MAX, DATA_MAX, &m), 0);
	ck_assert_uint_eq(m.data_off, RDMA_WIRE_SIZE + 40);
	ck_assert_uint_eq(m.hdr.data_len, 100);
	ck_assert_uint_eq(buf[m.data_off], 'd');
}
END_TEST

START_TEST(rendezvous_segments_parse)
{
	static const uint32_t lens[3] = { 4096, 8192, 1 };
	struct rdma_wire_msg m;
	size_t len = frame(RWF_RDV, 3, 8, 4096 + 8192 + 1, lens, 0);

	ck_assert_int_eq(rdma_wire_parse(buf, len, BODY_MAX, DATA_MAX, &m), 0);
	ck_assert_uint_eq(m.w.nseg, 3);
	ck_assert_uint_eq(m.head_off, RDMA_WIRE_SIZE + 3 * RDMA_SEG_SIZE);
	for (unsigned i = 0; i < 3; i++) {
		ck_assert_uint_eq(m.seg[i].addr, 0x1000 * (i + 1));
		ck_assert_uint_eq(m.seg[i].rkey, 100 + i);
		ck_assert_uint_eq(m.seg[i].len, lens[i]);
	}
}
END_TEST

START_TEST(advert_comes_before_segments)
{
	static const uint32_t lens[1] = { 70000 };
	struct rdma_wire_msg m;
	size_t len = frame(RWF_ADVERT | RWF_RDV, 1, 0, 70000, lens, 0);

	ck_assert_int_eq(rdma_wire_parse(buf, len, BODY_MAX, DATA_MAX, &m), 0);
	ck_assert_uint_eq(m.adv.addr, 0xa000);
	ck_assert_uint_eq(m.adv.rkey, 0xad);
	ck_assert_uint_eq(m.adv.len, 65536);
	ck_assert_uint_eq(m.seg[0].addr, 0x1000);
	ck_assert_uint_eq(m.seg[0].len, 70000);
	ck_assert_uint_eq(m.head_off, RDMA_WIRE_SIZE + 2 * RDMA_SEG_SIZE);
}
END_TEST

START_TEST(written_reply_parses)
{
	struct rdma_wire_msg m;
	size_t len = frame(RWF_WRITTEN, 0, 8, 500000, NULL, 0);

	ck_assert_int_eq(rdma_wire_parse(buf, len, BODY_MAX, DATA_MAX, &m), 0);
	ck_assert_uint_eq(m.hdr.data_len, 500000);
	ck_assert_uint_eq(m.data_off, len);
}
END_TEST

/* Unknown ORFA flags and opcodes are the codec's business, not the
 * transport's: the frame still parses. */
START_TEST(unknown_opcode_passes)
{
	struct rdma_wire_msg m;
	size_t len = frame(0, 0, 8, 0, NULL, 0);

	buf[RDMA_WIRE_SIZE + 8] = 0xfe;		/* opcode */
	buf[RDMA_WIRE_SIZE + 9] = 0xfe;
	buf[RDMA_WIRE_SIZE + 10] = 0xff;	/* flags */
	ck_assert_int_eq(rdma_wire_parse(buf, len, BODY_MAX, DATA_MAX, &m), 0);
	ck_assert_uint_eq(m.hdr.opcode, 0xfefe);
}
END_TEST

/* ---- malformed frames, one field at a time --------------------------- */

struct bad_case {
	const char *name;
	uint8_t flags, nseg;
	uint32_t body_len, data_len, seglen[RDMA_MAX_SEG + 1];
	size_t inl;
	int poke_at;			/* byte to overwrite, or -1 */
	uint8_t poke;
	int put32_at;			/* u32 to overwrite, or -1 */
	uint32_t put32;
	long len_delta;			/* bytes added to (removed from) len */
	int rc;
	int wire_ok;
	const char *why;
};

static const struct bad_case bad_cases[] = {
	{ "short", 0, 0, 8, 0, {0}, 0, -1, 0, -1, 0, 0, -EBADMSG, 0,
	  "short message" },
	{ "padding", 0, 0, 8, 0, {0}, 0, 3, 1, -1, 0, 0, -EPROTO, 0,
	  "non-zero padding or unknown flags" },
	{ "unknown flag", 0, 0, 8, 0, {0}, 0, 1, 0x10, -1, 0, 0, -EPROTO, 0,
	  "non-zero padding or unknown flags" },
	{ "ctrl with flags", 0, 0, 8, 0, {0}, 0, 0, RW_CTRL, -1, 0, 0,
	  -EPROTO, 0, "non-zero padding or unknown flags" },
	{ "unknown type", 0, 0, 8, 0, {0}, 0, 0, 3, -1, 0, 0, -EPROTO, 1,
	  "unknown type" },
	{ "rdv without segments", RWF_RDV, 1, 8, 10, {10}, 0, 2, 0, -1, 0, 0,
	  -EPROTO, 1, "bad segment count" },
	{ "too many segments", RWF_RDV, 1, 8, 10, {10}, 0, 2, RDMA_MAX_SEG + 1,
	  -1, 0, 0, -EPROTO, 1, "bad segment count" },
	{ "segments without rdv", 0, 0, 8, 0, {0}, 0, 2, 1, -1, 0, 0,
	  -EPROTO, 1, "segments without rendezvous" },
	{ "head_len below a frame header", 0, 0, 8, 0, {0}, 0, -1, 0, 4, 23, 0,
	  -EMSGSIZE, 1, "header segment too large" },
	{ "body above max_body", 0, 0, BODY_MAX + 1, 0, {0}, 0, -1, 0, -1, 0, 0,
	  -EMSGSIZE, 1, "header segment too large" },
	{ "head_len huge", 0, 0, 8, 0, {0}, 0, -1, 0, 4, 0xffffffffu, 0,
	  -EMSGSIZE, 1, "header segment too large" },
	{ "truncated head", 0, 0, 8, 0, {0}, 0, -1, 0, -1, 0, -1, -EBADMSG, 1,
	  "truncated header segment" },
	{ "truncated segments", RWF_RDV, 2, 8, 20, {10, 10}, 0, -1, 0, -1, 0,
	  -(long)(ORFA_HDR_SIZE + 8 + RDMA_SEG_SIZE), -EBADMSG, 1,
	  "truncated header segment" },
	{ "body_len disagrees", 0, 0, 8, 0, {0}, 0, -1, 0, RDMA_WIRE_SIZE, 16,
	  0, -EBADMSG, 1, "body length mismatch" },
	{ "data above max_data", RWF_WRITTEN, 0, 8, DATA_MAX + 1, {0}, 0, -1, 0,
	  -1, 0, 0, -EMSGSIZE, 1, "data segment too large" },
	{ "data_len huge", RWF_WRITTEN, 0, 8, 0xffffffffu, {0}, 0, -1, 0, -1, 0,
	  0, -EMSGSIZE, 1, "data segment too large" },
	{ "bytes after a message without data", 0, 0, 8, 0, {0}, 0, -1, 0, -1,
	  0, 8, -EBADMSG, 1, "length does not match the header" },
	{ "segments for no data", RWF_RDV, 1, 8, 0, {10}, 0, -1, 0, -1, 0, 0,
	  -EPROTO, 1, "bad data segment description" },
	{ "inline and rdv", RWF_INLINE | RWF_RDV, 1, 8, 10, {10}, 10, -1, 0, -1,
	  0, 0, -EPROTO, 1, "bad data segment description" },
	{ "inline data short", RWF_INLINE, 0, 8, 100, {0}, 99, -1, 0, -1, 0, 0,
	  -EBADMSG, 1, "length does not match the header" },
	{ "inline data long", RWF_INLINE, 0, 8, 100, {0}, 101, -1, 0, -1, 0, 0,
	  -EBADMSG, 1, "length does not match the header" },
	{ "empty segment", RWF_RDV, 2, 8, 10, {10, 0}, 0, -1, 0, -1, 0, 0,
	  -EPROTO, 1, "bad data segment description" },
	{ "segments do not add up", RWF_RDV, 2, 8, 30, {10, 10}, 0, -1, 0, -1,
	  0, 0, -EBADMSG, 1, "length does not match the header" },
	{ "rdv and written", RWF_RDV | RWF_WRITTEN, 1, 8, 10, {10}, 0, -1, 0,
	  -1, 0, 0, -EPROTO, 1, "bad data segment description" },
	{ "written with bytes after", RWF_WRITTEN, 0, 8, 10, {0}, 10, -1, 0,
	  -1, 0, 0, -EPROTO, 1, "bad data segment description" },
	{ "data but no way given", 0, 0, 8, 10, {0}, 0, -1, 0, -1, 0, 0,
	  -EPROTO, 1, "bad data segment description" },
};

START_TEST(malformed_field_refused)
{
	const struct bad_case *bc = &bad_cases[_i];
	struct rdma_wire_msg m;
	size_t len = frame(bc->flags, bc->nseg, bc->body_len, bc->data_len,
			   bc->seglen, bc->inl);
	int rc;

	if (bc->poke_at >= 0)
		buf[bc->poke_at] = bc->poke;
	if (bc->put32_at >= 0)
		put32((size_t)bc->put32_at, bc->put32);
	if (strcmp(bc->name, "short") == 0)
		len = RDMA_WIRE_SIZE - 1;
	len = (size_t)((long)len + bc->len_delta);
	rc = rdma_wire_parse(buf, len, BODY_MAX, DATA_MAX, &m);
	ck_assert_msg(rc == bc->rc, "%s: rc %d, want %d", bc->name, rc,
		      bc->rc);
	ck_assert_msg(m.wire_ok == bc->wire_ok, "%s: wire_ok %d", bc->name,
		      m.wire_ok);
	ck_assert_msg(m.why && strcmp(m.why, bc->why) == 0, "%s: why '%s'",
		      bc->name, m.why ? m.why : "(null)");
}
END_TEST

/* A control message with any message field set is refused. */
START_TEST(ctrl_fields_refused)
{
	struct rdma_wire w = { .type = RW_CTRL };
	struct rdma_wire_msg m;

	for (int f = 0; f < 3; f++) {
		w.flags = f == 0 ? RWF_INLINE : 0;
		w.nseg = f == 1 ? 1 : 0;
		w.head_len = f == 2 ? ORFA_HDR_SIZE : 0;
		rdma_wire_put(buf, &w);
		ck_assert_int_eq(rdma_wire_parse(buf, RDMA_WIRE_SIZE, BODY_MAX,
						 DATA_MAX, &m), -EPROTO);
		ck_assert(!m.wire_ok);
	}
}
END_TEST

/* ---- private data --------------------------------------------------------- */

START_TEST(priv_round_trips)
{
	struct rdma_priv p;
	uint32_t credits = 0, size = 0;

	rdma_priv_put(&p, 64, 65536 + 256);
	ck_assert_int_eq(rdma_priv_parse(&p, sizeof(p), &credits, &size), 0);
	ck_assert_uint_eq(credits, 64);
	ck_assert_uint_eq(size, 65536 + 256);
}
END_TEST

START_TEST(priv_checks_hold)
{
	struct rdma_priv good, p;
	uint32_t credits, size;

	rdma_priv_put(&good, 64, 65536);
	ck_assert_int_eq(rdma_priv_parse(NULL, 0, &credits, &size), -EPROTO);
	ck_assert_int_eq(rdma_priv_parse(&good, sizeof(good) - 1, &credits,
					 &size), -EPROTO);
	p = good;
	p.magic ^= 1;
	ck_assert_int_eq(rdma_priv_parse(&p, sizeof(p), &credits, &size),
			 -EPROTO);
	p = good;
	p.version = htole16(2);
	ck_assert_int_eq(rdma_priv_parse(&p, sizeof(p), &credits, &size),
			 -EPROTO);
	p = good;
	p.pad = 1;
	ck_assert_int_eq(rdma_priv_parse(&p, sizeof(p), &credits, &size),
			 -EPROTO);
	rdma_priv_put(&p, 1, 65536);
	ck_assert_int_eq(rdma_priv_parse(&p, sizeof(p), &credits, &size),
			 -EPROTO);
	rdma_priv_put(&p, 65537, 65536);
	ck_assert_int_eq(rdma_priv_parse(&p, sizeof(p), &credits, &size),
			 -EPROTO);
	rdma_priv_put(&p, 64, RDMA_MSG_OVERHEAD + ORFA_HDR_SIZE + 63);
	ck_assert_int_eq(rdma_priv_parse(&p, sizeof(p), &credits, &size),
			 -EPROTO);
	rdma_priv_put(&p, 64, ORFA_RDMA_MAX_BUF_SIZE + 1);
	ck_assert_int_eq(rdma_priv_parse(&p, sizeof(p), &credits, &size),
			 -EPROTO);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("rdma_wire");
	TCase *tc = tcase_create("rdma_wire");

	tcase_add_test(tc, ctrl_message_parses);
	tcase_add_test(tc, message_without_data_parses);
	tcase_add_test(tc, inline_data_parses);
	tcase_add_test(tc, rendezvous_segments_parse);
	tcase_add_test(tc, advert_comes_before_segments);
	tcase_add_test(tc, written_reply_parses);
	tcase_add_test(tc, unknown_opcode_passes);
	tcase_add_loop_test(tc, malformed_field_refused, 0,
			    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tc, ctrl_fields_refused);
	tcase_add_test(tc, priv_round_trips);
	tcase_add_test(tc, priv_checks_hold);
	suite_add_tcase(s, tc);
	return orfa_check_run(s);
}
