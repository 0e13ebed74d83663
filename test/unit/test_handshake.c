/*
 * test_handshake.c - the client's half of the handshake (common/handshake.c)
 * against a server side written here from PROTOCOL.md section 6 with the
 * auth.h primitives: every decision the client makes (go on, AUTH, refuse)
 * and every proof it checks, with the messages passing through the codec.
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handshake.h"
#include "check_main.h"

static const char EXPORT[] = "/data/sub";

static void key_of(struct orfa_key *k, uint8_t fill)
{
	memset(k->k, fill, sizeof(k->k));
}

/* Encode m as a request (reply false) or a reply and decode it as the
 * peer would, into out. */
static void through_wire(bool reply, struct orfa_msg *m, struct orfa_msg *out,
			 uint8_t *buf, size_t cap)
{
	ssize_t n = reply ? orfa_rep_encode(m, buf, cap)
			  : orfa_req_encode(m, buf, cap);
	const char *why = NULL;

	ck_assert_int_ge(n, 0);
	memset(out, 0, sizeof(*out));
	out->hdr = m->hdr;
	ck_assert_int_eq(reply ? orfa_rep_decode(out, buf, &why)
			       : orfa_req_decode(out, buf, &why), 0);
}

static void through_wire_req(struct orfa_msg *m, struct orfa_msg *out,
			     uint8_t *buf, size_t cap)
{
	through_wire(false, m, out, buf, cap);
}

static void through_wire_rep(struct orfa_msg *m, struct orfa_msg *out,
			     uint8_t *buf, size_t cap)
{
	through_wire(true, m, out, buf, cap);
}

/* The server's HELLO reply: AUTH asked for (with snonce) or not. */
static void server_hello_rep(struct orfa_msg *rep, int auth,
			     const uint8_t snonce[ORFA_NONCE_SIZE])
{
	orfa_msg_init(rep, ORFA_OP_HELLO, 1);
	rep->a.hello_rep.magic = ORFA_MAGIC;
	rep->a.hello_rep.version = ORFA_PROTO_VERSION;
	rep->a.hello_rep.max_data = 1 << 20;
	if (auth) {
		rep->a.hello_rep.flags = ORFA_HELLO_AUTH;
		memcpy(rep->a.hello_rep.nonce, snonce, ORFA_NONCE_SIZE);
	} else {
		rep->a.hello_rep.root_nodeid = 1;
	}
}

START_TEST(no_key_anywhere_needs_no_auth)
{
	struct orfa_handshake hs;
	struct orfa_msg m, seen, rep, back;
	uint8_t buf[512];
	char err[256] = "";

	orfa_handshake_init(&hs, NULL, EXPORT);
	ck_assert_int_eq(orfa_handshake_hello(&hs, &m, 1, 1 << 20, 0xf), 0);
	through_wire_req(&m, &seen, buf, sizeof(buf));
	ck_assert_uint_eq(seen.a.hello.flags, 0);
	for (unsigned i = 0; i < ORFA_NONCE_SIZE; i++)
		ck_assert_uint_eq(seen.a.hello.nonce[i], 0);
	ck_assert_str_eq(seen.name, EXPORT);
	server_hello_rep(&rep, 0, NULL);
	through_wire_rep(&rep, &back, buf, sizeof(buf));
	ck_assert_int_eq(orfa_handshake_hello_reply(&hs, &back, err,
						    sizeof(err)), 0);
	ck_assert_int_eq(orfa_handshake_auth(&hs, &m, 2), -EINVAL);
	orfa_handshake_clear(&hs);
}
END_TEST

/* The whole exchange with the same key on both sides. */
START_TEST(mutual_auth_with_the_right_key)
{
	struct orfa_key key;
	struct orfa_handshake hs;
	struct orfa_msg m, seen, rep, back, arep;
	uint8_t buf[512], cnonce[ORFA_NONCE_SIZE], snonce[ORFA_NONCE_SIZE];
	char err[256] = "";

	key_of(&key, 0x42);
	orfa_auth_nonce(snonce);
	orfa_handshake_init(&hs, &key, EXPORT);
	ck_assert_int_eq(orfa_handshake_hello(&hs, &m, 1, 1 << 20, 0xf), 0);
	through_wire_req(&m, &seen, buf, sizeof(buf));
	ck_assert_uint_eq(seen.a.hello.flags, ORFA_HELLO_AUTH);
	memcpy(cnonce, seen.a.hello.nonce, sizeof(cnonce));

	server_hello_rep(&rep, 1, snonce);
	through_wire_rep(&rep, &back, buf, sizeof(buf));
	ck_assert_int_eq(orfa_handshake_hello_reply(&hs, &back, err,
						    sizeof(err)), 1);
	ck_assert_int_eq(orfa_handshake_auth(&hs, &m, 2), 0);
	through_wire_req(&m, &seen, buf, sizeof(buf));
	ck_assert_uint_eq(seen.hdr.opcode, ORFA_OP_AUTH);
	/* The server accepts the proof: client role, both nonces, path. */
	ck_assert_int_eq(orfa_auth_verify(&key, ORFA_AUTH_CLIENT, cnonce,
					  snonce, EXPORT, seen.a.auth.proof),
			 0);

	orfa_msg_init(&rep, ORFA_OP_AUTH, 2);
	orfa_auth_proof(&key, ORFA_AUTH_SERVER, cnonce, snonce, EXPORT,
			rep.a.auth_rep.proof);
	rep.a.auth_rep.root_nodeid = 77;
	rep.a.auth_rep.root_generation = 3;
	rep.a.auth_rep.root_attr.mode = 040755;
	through_wire_rep(&rep, &arep, buf, sizeof(buf));
	ck_assert_int_eq(orfa_handshake_auth_reply(&hs, &arep,
						   &back.a.hello_rep, err,
						   sizeof(err)), 0);
	ck_assert_uint_eq(back.a.hello_rep.root_nodeid, 77);
	ck_assert_uint_eq(back.a.hello_rep.root_generation, 3);
	ck_assert_uint_eq(back.a.hello_rep.root_attr.mode, 040755);
	/* The session keys: the server derives the mirror image. */
	{
		struct orfa_seal_keys ck, sk;

		ck_assert_int_eq(orfa_handshake_session_keys(&hs, &ck), 0);
		orfa_auth_session_keys(&key, ORFA_AUTH_SERVER, cnonce, snonce,
				       EXPORT, 0, &sk);
		ck_assert_mem_eq(ck.tx, sk.rx, sizeof(ck.tx));
		ck_assert_mem_eq(ck.rx, sk.tx, sizeof(ck.rx));
		ck_assert_int_eq(ck.integrity_only, 0);
	}
	orfa_handshake_clear(&hs);
}
END_TEST

/* Integrity only: asked for in HELLO; granted only when the reply says
 * so; a grant not asked for is a protocol error. */
START_TEST(integrity_only_is_asked_and_granted)
{
	struct orfa_key key;
	struct orfa_handshake hs;
	struct orfa_msg m, seen, rep, back;
	uint8_t buf[512], snonce[ORFA_NONCE_SIZE];
	char err[256] = "";

	key_of(&key, 0x42);
	orfa_auth_nonce(snonce);
	for (int ask = 0; ask <= 1; ask++) {
		for (int grant = 0; grant <= 1; grant++) {
			orfa_handshake_init(&hs, &key, EXPORT);
			hs.want_integrity_only = ask;
			orfa_handshake_hello(&hs, &m, 1, 1 << 20, 0xf);
			through_wire_req(&m, &seen, buf, sizeof(buf));
			ck_assert_uint_eq(seen.a.hello.flags, ORFA_HELLO_AUTH |
					  (ask ? ORFA_HELLO_INTEGRITY : 0));
			server_hello_rep(&rep, 1, snonce);
			if (grant)
				rep.a.hello_rep.flags |= ORFA_HELLO_INTEGRITY;
			through_wire_rep(&rep, &back, buf, sizeof(buf));
			ck_assert_int_eq(orfa_handshake_hello_reply(&hs, &back,
				err, sizeof(err)), grant && !ask ? -EPROTO : 1);
			if (!(grant && !ask))
				ck_assert_int_eq(hs.integrity_only, grant);
			orfa_handshake_clear(&hs);
		}
	}
}
END_TEST

/* A server proof made with another key, or the client's own proof sent
 * back (reflection), or one for another export: refused. */
START_TEST(bad_server_proofs_are_refused)
{
	struct orfa_key key, other;
	struct orfa_handshake hs;
	struct orfa_msg m, seen, rep, back;
	uint8_t buf[512], cnonce[ORFA_NONCE_SIZE], snonce[ORFA_NONCE_SIZE];
	char err[256];

	key_of(&key, 0x42);
	key_of(&other, 0x43);
	for (int variant = 0; variant < 3; variant++) {
		orfa_auth_nonce(snonce);
		orfa_handshake_init(&hs, &key, EXPORT);
		orfa_handshake_hello(&hs, &m, 1, 1 << 20, 0xf);
		memcpy(cnonce, m.a.hello.nonce, sizeof(cnonce));
		server_hello_rep(&rep, 1, snonce);
		ck_assert_int_eq(orfa_handshake_hello_reply(&hs, &rep, err,
							    sizeof(err)), 1);
		ck_assert_int_eq(orfa_handshake_auth(&hs, &m, 2), 0);
		orfa_msg_init(&rep, ORFA_OP_AUTH, 2);
		if (variant == 0)
			orfa_auth_proof(&other, ORFA_AUTH_SERVER, cnonce,
					snonce, EXPORT, rep.a.auth_rep.proof);
		else if (variant == 1)
			memcpy(rep.a.auth_rep.proof, m.a.auth.proof,
			       ORFA_PROOF_SIZE);
		else
			orfa_auth_proof(&key, ORFA_AUTH_SERVER, cnonce, snonce,
					"/data", rep.a.auth_rep.proof);
		rep.a.auth_rep.root_nodeid = 77;
		through_wire_rep(&rep, &seen, buf, sizeof(buf));
		memset(&back, 0, sizeof(back));
		err[0] = '\0';
		ck_assert_int_eq(orfa_handshake_auth_reply(&hs, &seen,
							   &back.a.hello_rep,
							   err, sizeof(err)),
				 -EACCES);
		ck_assert_ptr_nonnull(strstr(err, "could not prove"));
		ck_assert_uint_eq(back.a.hello_rep.root_nodeid, 0);
		orfa_handshake_clear(&hs);
	}
}
END_TEST

START_TEST(key_but_server_without_auth_is_refused)
{
	struct orfa_key key;
	struct orfa_handshake hs;
	struct orfa_msg m, rep;
	char err[256] = "";

	key_of(&key, 1);
	orfa_handshake_init(&hs, &key, EXPORT);
	orfa_handshake_hello(&hs, &m, 1, 1 << 20, 0xf);
	server_hello_rep(&rep, 0, NULL);
	ck_assert_int_eq(orfa_handshake_hello_reply(&hs, &rep, err,
						    sizeof(err)), -EACCES);
	ck_assert_ptr_nonnull(strstr(err, "does not authenticate"));
	ck_assert_int_eq(orfa_handshake_auth(&hs, &m, 2), -EINVAL);
}
END_TEST

START_TEST(server_auth_but_no_key_is_refused)
{
	struct orfa_handshake hs;
	struct orfa_msg m, rep;
	uint8_t snonce[ORFA_NONCE_SIZE] = { 1 };
	char err[256] = "";

	orfa_handshake_init(&hs, NULL, EXPORT);
	orfa_handshake_hello(&hs, &m, 1, 1 << 20, 0xf);
	server_hello_rep(&rep, 1, snonce);
	ck_assert_int_eq(orfa_handshake_hello_reply(&hs, &rep, err,
						    sizeof(err)), -EACCES);
	ck_assert_ptr_nonnull(strstr(err, "key=FILE"));
}
END_TEST

/* Each HELLO carries a new client nonce. */
START_TEST(client_nonces_are_fresh)
{
	struct orfa_key key;
	struct orfa_handshake hs;
	struct orfa_msg a, b;

	key_of(&key, 9);
	orfa_handshake_init(&hs, &key, EXPORT);
	orfa_handshake_hello(&hs, &a, 1, 1 << 20, 0);
	orfa_handshake_init(&hs, &key, EXPORT);
	orfa_handshake_hello(&hs, &b, 1, 1 << 20, 0);
	ck_assert(memcmp(a.a.hello.nonce, b.a.hello.nonce,
			 ORFA_NONCE_SIZE) != 0);
}
END_TEST

/* Calls out of order are refused, not followed. */
START_TEST(out_of_sequence_calls_fail)
{
	struct orfa_key key;
	struct orfa_handshake hs;
	struct orfa_msg m, rep;
	char err[256];

	key_of(&key, 5);
	orfa_handshake_init(&hs, &key, EXPORT);
	ck_assert_int_eq(orfa_handshake_auth(&hs, &m, 1), -EINVAL);
	orfa_msg_init(&rep, ORFA_OP_AUTH, 1);
	ck_assert_int_eq(orfa_handshake_auth_reply(&hs, &rep,
						   &rep.a.hello_rep, err,
						   sizeof(err)), -EINVAL);
	server_hello_rep(&rep, 0, NULL);
	ck_assert_int_eq(orfa_handshake_hello_reply(&hs, &rep, err,
						    sizeof(err)), -EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("handshake");
	TCase *tc = tcase_create("handshake");

	tcase_add_test(tc, no_key_anywhere_needs_no_auth);
	tcase_add_test(tc, mutual_auth_with_the_right_key);
	tcase_add_test(tc, integrity_only_is_asked_and_granted);
	tcase_add_test(tc, bad_server_proofs_are_refused);
	tcase_add_test(tc, key_but_server_without_auth_is_refused);
	tcase_add_test(tc, server_auth_but_no_key_is_refused);
	tcase_add_test(tc, client_nonces_are_fresh);
	tcase_add_test(tc, out_of_sequence_calls_fail);
	suite_add_tcase(s, tc);
	return orfa_check_run(s);
}
