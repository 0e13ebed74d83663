/*
 * test_seal.c - the protected framing (common/seal.c): a sealed frame
 * opens to the same bytes; any altered bit of header, body, trailer or
 * data, a replayed, reordered or dropped frame, the wrong key or the
 * other direction's key all fail with -EBADMSG; the body is not readable
 * on the wire (and is, unchanged, in integrity-only mode, where the same
 * alterations fail all the same); frames too short to be sealed are
 * -EPROTO.  Every test runs in both modes.
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "auth.h"
#include "check_main.h"
#include "codec.h"
#include "seal.h"

#define BODY 40
#define DATA 4096

struct frame {
	uint8_t head[ORFA_HDR_SIZE + BODY + ORFA_SEAL_TRAILER];
	uint8_t data[DATA];
	size_t head_len, data_len;
};

static const uint8_t k1[ORFA_SEAL_KEY_SIZE] = { 1, 2, 3 };
/* Every test runs twice: encrypting (0), then integrity only (1). */
static int g_mac;
static const uint8_t k2[ORFA_SEAL_KEY_SIZE] = { 9, 8, 7 };

/* A frame with req_id id, a body and data of patterns, sealed with d. */
static void make(struct frame *f, struct orfa_seal_dir *d, uint64_t id,
		 size_t data_len)
{
	struct orfa_hdr h = { .body_len = BODY, .data_len = (uint32_t)data_len,
			      .opcode = ORFA_OP_WRITE, .req_id = id };

	orfa_hdr_encode(f->head, &h);
	for (int i = 0; i < BODY; i++)
		f->head[ORFA_HDR_SIZE + i] = (uint8_t)(i + id);
	for (size_t i = 0; i < data_len; i++)
		f->data[i] = (uint8_t)(i * 7 + id);
	f->data_len = data_len;
	f->head_len = sizeof(f->head);
	ck_assert_int_eq(orfa_seal_frame(d, f->head, BODY, f->data, data_len),
			 0);
}

static int open_f(struct frame *f, struct orfa_seal_dir *d)
{
	size_t blen = 0;
	int rc = orfa_seal_open(d, f->head, f->head_len, f->data, f->data_len,
				&blen);

	if (rc == 0)
		ck_assert_uint_eq(blen, BODY);
	return rc;
}

START_TEST(round_trip)
{
	struct orfa_seal_dir tx, rx;
	struct frame f;

	orfa_seal_dir_init(&tx, k1, g_mac);
	orfa_seal_dir_init(&rx, k1, g_mac);
	for (uint64_t id = 1; id <= 3; id++) {
		make(&f, &tx, id, id == 2 ? 0 : DATA);
		ck_assert_uint_eq(orfa_get_le32(f.head), BODY + ORFA_SEAL_TRAILER);
		if (g_mac)	/* in clear */
			ck_assert_uint_eq(f.head[ORFA_HDR_SIZE + 5],
					  (uint8_t)(5 + id));
		else
			ck_assert_uint_ne(f.head[ORFA_HDR_SIZE + 5],
					  (uint8_t)(5 + id));
		ck_assert_int_eq(open_f(&f, &rx), 0);
		ck_assert_uint_eq(orfa_get_le32(f.head), BODY);
		ck_assert_uint_eq(f.head[ORFA_HDR_SIZE + 5], (uint8_t)(5 + id));
		if (f.data_len)
			ck_assert_uint_eq(f.data[100], (uint8_t)(700 + id));
	}
}
END_TEST

/* Flip one bit of each part of a sealed frame (head, then data), every
 * bit position: the open must fail. */
START_TEST(any_flipped_bit_fails)
{
	static const size_t where[] = {
		0, 4, 8, 10, 12, 16, 23,			/* header */
		ORFA_HDR_SIZE, ORFA_HDR_SIZE + BODY - 1,	/* body */
		ORFA_HDR_SIZE + BODY,				/* body tag */
		ORFA_HDR_SIZE + BODY + ORFA_SEAL_TAG_SIZE,	/* data tag */
		sizeof(((struct frame *)0)->head) + 0,		/* data */
		sizeof(((struct frame *)0)->head) + DATA - 1,
	};
	static struct frame f;

	for (size_t w = 0; w < sizeof(where) / sizeof(where[0]); w++) {
		for (int bit = 0; bit < 8; bit++) {
			struct orfa_seal_dir tx, rx;
			size_t i = where[w];
			int rc;

			orfa_seal_dir_init(&tx, k1, g_mac);
			orfa_seal_dir_init(&rx, k1, g_mac);
			make(&f, &tx, 5, DATA);
			if (i < sizeof(f.head))
				f.head[i] ^= (uint8_t)(1u << bit);
			else
				f.data[i - sizeof(f.head)] ^= (uint8_t)(1u << bit);
			rc = open_f(&f, &rx);
			/* A flipped length byte may also be caught as
			 * inconsistent. */
			ck_assert_msg(rc == -EBADMSG || (i < 8 && rc == -EPROTO),
				      "byte %zu bit %d: %d", i, bit, rc);
		}
	}
}
END_TEST

START_TEST(replay_reorder_drop_fail)
{
	struct orfa_seal_dir tx, rx;
	struct frame a, b, copy;

	orfa_seal_dir_init(&tx, k1, g_mac);
	orfa_seal_dir_init(&rx, k1, g_mac);
	make(&a, &tx, 1, DATA);
	make(&b, &tx, 2, DATA);
	copy = a;
	/* reorder: b first */
	ck_assert_int_eq(open_f(&b, &rx), -EBADMSG);
	orfa_seal_dir_init(&rx, k1, g_mac);
	ck_assert_int_eq(open_f(&a, &rx), 0);
	/* replay a */
	ck_assert_int_eq(open_f(&copy, &rx), -EBADMSG);
	/* drop: a third frame after b was lost */
	make(&b, &tx, 3, 10);
	ck_assert_int_eq(open_f(&b, &rx), -EBADMSG);
}
END_TEST

START_TEST(wrong_key_or_direction_fails)
{
	struct orfa_seal_dir tx, rx;
	struct frame f;
	struct orfa_key key;
	struct orfa_seal_keys cl, sv;
	uint8_t cn[ORFA_AUTH_NONCE_SIZE] = { 1 }, sn[ORFA_AUTH_NONCE_SIZE] = { 2 };

	orfa_seal_dir_init(&tx, k1, g_mac);
	orfa_seal_dir_init(&rx, k2, g_mac);
	make(&f, &tx, 1, DATA);
	ck_assert_int_eq(open_f(&f, &rx), -EBADMSG);

	/* A frame reflected back to its sender (the other direction's
	 * key) does not open. */
	ck_assert_int_eq(orfa_auth_init(), 0);
	memset(key.k, 5, sizeof(key.k));
	orfa_auth_session_keys(&key, ORFA_AUTH_CLIENT, cn, sn, "", g_mac, &cl);
	orfa_auth_session_keys(&key, ORFA_AUTH_SERVER, cn, sn, "", g_mac, &sv);
	orfa_seal_dir_init(&tx, cl.tx, g_mac);
	orfa_seal_dir_init(&rx, cl.rx, g_mac);
	make(&f, &tx, 1, DATA);
	ck_assert_int_eq(open_f(&f, &rx), -EBADMSG);
	/* ... while the server's receiving direction opens it. */
	orfa_seal_dir_init(&tx, cl.tx, g_mac);
	orfa_seal_dir_init(&rx, sv.rx, g_mac);
	make(&f, &tx, 2, DATA);
	ck_assert_int_eq(open_f(&f, &rx), 0);
}
END_TEST

/* Sealing from a separate source leaves it alone and opens the same. */
START_TEST(seal_from_source)
{
	static uint8_t src[DATA], keep[DATA];
	struct orfa_seal_dir tx, rx;
	struct frame f, g;

	for (size_t i = 0; i < DATA; i++)
		src[i] = keep[i] = (uint8_t)(i * 13);
	orfa_seal_dir_init(&tx, k1, g_mac);
	orfa_seal_dir_init(&rx, k1, g_mac);
	make(&f, &tx, 1, 0);	/* header and body; data below */
	orfa_seal_dir_init(&tx, k1, g_mac);
	g = f;
	orfa_put_le32(g.head, BODY);
	orfa_put_le32(g.head + 4, DATA);
	for (int i = 0; i < BODY; i++)
		g.head[ORFA_HDR_SIZE + i] = (uint8_t)(i + 1);
	ck_assert_int_eq(orfa_seal_frame_from(&tx, g.head, BODY, src,
					      g_mac ? NULL : g.data, DATA), 0);
	ck_assert_mem_eq(src, keep, DATA);
	if (g_mac)
		memcpy(g.data, src, DATA);	/* sent from where it is */
	g.data_len = DATA;
	ck_assert_int_eq(open_f(&g, &rx), 0);
	ck_assert_mem_eq(g.data, keep, DATA);
}
END_TEST

/* The two modes do not open each other's frames. */
START_TEST(modes_do_not_mix)
{
	struct orfa_seal_dir tx, rx;
	struct frame f;

	orfa_seal_dir_init(&tx, k1, g_mac);
	orfa_seal_dir_init(&rx, k1, !g_mac);
	make(&f, &tx, 1, DATA);
	ck_assert_int_eq(open_f(&f, &rx), -EBADMSG);
}
END_TEST

START_TEST(malformed_is_eproto)
{
	struct orfa_seal_dir tx, rx;
	struct frame f;
	size_t blen;

	orfa_seal_dir_init(&tx, k1, g_mac);
	orfa_seal_dir_init(&rx, k1, g_mac);
	make(&f, &tx, 1, DATA);
	ck_assert_int_eq(orfa_seal_open(&rx, f.head, ORFA_HDR_SIZE + 8, f.data,
					 DATA, &blen), -EPROTO);
	ck_assert_int_eq(orfa_seal_open(&rx, f.head, f.head_len, f.data,
					 DATA - 1, &blen), -EPROTO);
	ck_assert_int_eq(orfa_seal_open(&rx, f.head, f.head_len, NULL, DATA,
					 &blen), -EPROTO);
	/* the counter did not move: the genuine frame still opens */
	ck_assert_int_eq(open_f(&f, &rx), 0);
	ck_assert_int_eq(orfa_seal_frame(&tx, f.head, ORFA_MAX_BODY, NULL, 0),
			 -EMSGSIZE);
}
END_TEST

static void mode_encrypt(void)
{
	g_mac = 0;
}

static void mode_mac(void)
{
	g_mac = 1;
}

static TCase *mode_case(const char *name, void (*setup)(void))
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, any_flipped_bit_fails);
	tcase_add_test(tc, replay_reorder_drop_fail);
	tcase_add_test(tc, wrong_key_or_direction_fails);
	tcase_add_test(tc, modes_do_not_mix);
	tcase_add_test(tc, seal_from_source);
	tcase_add_test(tc, malformed_is_eproto);
	return tc;
}

int main(void)
{
	Suite *s = suite_create("seal");

	suite_add_tcase(s, mode_case("encrypt", mode_encrypt));
	suite_add_tcase(s, mode_case("integrity-only", mode_mac));
	return orfa_check_run(s);
}
