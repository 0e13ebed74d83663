/*
 * test_auth.c - key files and handshake proofs (common/auth.c): mode 0600
 * enforced, 256 random bits required (passphrases refused with how to make
 * a key), proofs verify only with the same key, nonces, role and export,
 * so replayed or reflected proofs fail; session keys differ per direction
 * and per handshake and the two sides agree on them.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "check_main.h"

static char dir[64];

static void setup(void)
{
	strcpy(dir, "/tmp/orfa-auth-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	ck_assert_int_eq(chmod(path, mode), 0);
}

START_TEST(generated_key_loads)
{
	char path[128], err[256];
	struct orfa_key k;
	struct stat st;

	snprintf(path, sizeof(path), "%s/key", dir);
	ck_assert_int_eq(orfa_key_generate(path, err, sizeof(err)), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(orfa_key_load(path, &k, err, sizeof(err)), 0);
	ck_assert_int_eq(orfa_key_generate(path, err, sizeof(err)), -EEXIST);
}
END_TEST

/* Loads the key file path; returns orfa_key_load's result, its message in
 * err (256 bytes). */
static int load_key(const char *path, char *err)
{
	struct orfa_key k;

	return orfa_key_load(path, &k, err, 256);
}

START_TEST(key_mode_enforced)
{
	char path[128], err[256];

	snprintf(path, sizeof(path), "%s/key", dir);
	write_file(path, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", 0644);
	ck_assert_int_eq(load_key(path, err), -EPERM);
	ck_assert_msg(strstr(err, "chmod 600"), "%s", err);
	ck_assert_int_eq(chmod(path, 0640), 0);
	ck_assert_int_eq(load_key(path, err), -EPERM);
	ck_assert_int_eq(chmod(path, 0600), 0);
	ck_assert_int_eq(load_key(path, err), 0);
	ck_assert_int_eq(chmod(path, 0400), 0);
	ck_assert_int_eq(load_key(path, err), 0);
}
END_TEST

START_TEST(key_too_short_or_missing)
{
	char path[128], err[256];

	snprintf(path, sizeof(path), "%s/short", dir);
	write_file(path, "tooshort\n", 0600);
	ck_assert_int_eq(load_key(path, err), -EINVAL);
	snprintf(path, sizeof(path), "%s/missing", dir);
	ck_assert_int_eq(load_key(path, err), -ENOENT);
}
END_TEST

START_TEST(weak_keys_refused)
{
	static const char *const weak[] = {
		"correct horse battery staple and some more words to be long\n",
		"0000000000000000000000000000000000000000000000000000000000000000\n",
		"0123456789abcdef0123456789abcdef\n",	/* 128 bits */
		"abababababababababababababababababababababababababababababababab\n",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg\n",
	};
	char path[128], err[256];

	snprintf(path, sizeof(path), "%s/weak", dir);
	for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
		unlink(path);
		write_file(path, weak[i], 0600);
		ck_assert_int_eq(load_key(path, err), -EINVAL);
		ck_assert_msg(strstr(err, "orfad --genkey"), "%s", err);
	}
}
END_TEST

START_TEST(session_keys_agree_and_differ)
{
	struct orfa_key k;
	struct orfa_seal_keys cl, sv, other;
	uint8_t cn[ORFA_AUTH_NONCE_SIZE], sn[ORFA_AUTH_NONCE_SIZE],
		sn2[ORFA_AUTH_NONCE_SIZE];

	ck_assert_int_eq(orfa_auth_init(), 0);
	memset(k.k, 3, sizeof(k.k));
	orfa_auth_nonce(cn);
	orfa_auth_nonce(sn);
	orfa_auth_nonce(sn2);
	orfa_auth_session_keys(&k, ORFA_AUTH_CLIENT, cn, sn, "/x", 0, &cl);
	orfa_auth_session_keys(&k, ORFA_AUTH_SERVER, cn, sn, "/x", 0, &sv);
	ck_assert_mem_eq(cl.tx, sv.rx, sizeof(cl.tx));
	ck_assert_mem_eq(cl.rx, sv.tx, sizeof(cl.rx));
	ck_assert_mem_ne(cl.tx, cl.rx, sizeof(cl.tx));
	/* another handshake, another export: other keys */
	orfa_auth_session_keys(&k, ORFA_AUTH_CLIENT, cn, sn2, "/x", 0, &other);
	ck_assert_mem_ne(cl.tx, other.tx, sizeof(cl.tx));
	orfa_auth_session_keys(&k, ORFA_AUTH_CLIENT, cn, sn, "/y", 0, &other);
	ck_assert_mem_ne(cl.tx, other.tx, sizeof(cl.tx));
	/* integrity only: other keys, so a mode altered on the way fails */
	orfa_auth_session_keys(&k, ORFA_AUTH_CLIENT, cn, sn, "/x", 1, &other);
	ck_assert_mem_ne(cl.tx, other.tx, sizeof(cl.tx));
	ck_assert_int_eq(other.integrity_only, 1);
	ck_assert_int_eq(cl.integrity_only, 0);
	/* no key is a proof on the wire */
	{
		uint8_t mac[ORFA_AUTH_MAC_SIZE];

		orfa_auth_proof(&k, ORFA_AUTH_CLIENT, cn, sn, "/x", mac);
		ck_assert_mem_ne(mac, cl.tx, sizeof(mac));
		orfa_auth_proof(&k, ORFA_AUTH_SERVER, cn, sn, "/x", mac);
		ck_assert_mem_ne(mac, sv.tx, sizeof(mac));
	}
}
END_TEST

START_TEST(trailing_newline_ignored)
{
	char a[128], b[128], err[256];
	struct orfa_key ka, kb;

	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	write_file(a, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 0600);
	write_file(b, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", 0600);
	ck_assert_int_eq(orfa_key_load(a, &ka, err, sizeof(err)), 0);
	ck_assert_int_eq(orfa_key_load(b, &kb, err, sizeof(err)), 0);
	ck_assert_mem_eq(ka.k, kb.k, sizeof(ka.k));
}
END_TEST

START_TEST(proofs_bind_everything)
{
	struct orfa_key k1, k2;
	uint8_t cn[ORFA_AUTH_NONCE_SIZE], sn[ORFA_AUTH_NONCE_SIZE],
		sn2[ORFA_AUTH_NONCE_SIZE], mac[ORFA_AUTH_MAC_SIZE];

	ck_assert_int_eq(orfa_auth_init(), 0);
	memset(k1.k, 1, sizeof(k1.k));
	memset(k2.k, 2, sizeof(k2.k));
	orfa_auth_nonce(cn);
	orfa_auth_nonce(sn);
	orfa_auth_nonce(sn2);
	ck_assert_mem_ne(sn, sn2, sizeof(sn));

	orfa_auth_proof(&k1, ORFA_AUTH_CLIENT, cn, sn, "/data", mac);
	ck_assert_int_eq(orfa_auth_verify(&k1, ORFA_AUTH_CLIENT, cn, sn, "/data", mac), 0);
	/* wrong key */
	ck_assert_int_eq(orfa_auth_verify(&k2, ORFA_AUTH_CLIENT, cn, sn, "/data", mac), -EACCES);
	/* replay against a new server nonce */
	ck_assert_int_eq(orfa_auth_verify(&k1, ORFA_AUTH_CLIENT, cn, sn2, "/data", mac), -EACCES);
	/* reflection: a client proof is no server proof */
	ck_assert_int_eq(orfa_auth_verify(&k1, ORFA_AUTH_SERVER, cn, sn, "/data", mac), -EACCES);
	/* another export */
	ck_assert_int_eq(orfa_auth_verify(&k1, ORFA_AUTH_CLIENT, cn, sn, "/data2", mac), -EACCES);
	/* one flipped bit */
	mac[7] ^= 0x10;
	ck_assert_int_eq(orfa_auth_verify(&k1, ORFA_AUTH_CLIENT, cn, sn, "/data", mac), -EACCES);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("auth");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, generated_key_loads);
	tcase_add_test(tc, key_mode_enforced);
	tcase_add_test(tc, key_too_short_or_missing);
	tcase_add_test(tc, weak_keys_refused);
	tcase_add_test(tc, trailing_newline_ignored);
	tcase_add_test(tc, session_keys_agree_and_differ);
	tcase_add_test(tc, proofs_bind_everything);
	suite_add_tcase(s, tc);
	return orfa_check_run(s);
}
