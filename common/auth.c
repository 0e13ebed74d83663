/*
 * auth.c - key files and handshake proofs (see auth.h).  All cryptography
 * is libsodium's.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEYFILE_MAX 4096

int orfa_auth_init(void)
{
	return sodium_init() < 0 ? -EIO : 0;
}

/*
 * The key-file rule (issue 12): at least 256 bits of entropy as
 * orfa_key_generate writes them, so only hex digits (any case), at least
 * KEY_MIN_HEX of them, and not a visibly patterned string: a passphrase,
 * a word or "0000..." are refused.  At least 8 distinct digits: 64 random
 * hex digits have fewer with probability below 1e-18.  0, -EINVAL, or
 * -EMSGSIZE (longer than the file may be).
 */
#define KEY_MIN_HEX 64
static int key_strong(const uint8_t *b, size_t n)
{
	unsigned seen = 0, distinct = 0;

	if (n > KEYFILE_MAX)
		return -EMSGSIZE;
	if (n < KEY_MIN_HEX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int v;

		if (b[i] >= '0' && b[i] <= '9')
			v = b[i] - '0';
		else if ((b[i] | 0x20) >= 'a' && (b[i] | 0x20) <= 'f')
			v = (b[i] | 0x20) - 'a' + 10;
		else
			return -EINVAL;
		if (!(seen & (1u << v)))
			distinct++;
		seen |= 1u << v;
	}
	return distinct >= 8 ? 0 : -EINVAL;
}

int orfa_key_load(const char *file, struct orfa_key *key, char *err,
		  size_t errsz)
{
	uint8_t buf[KEYFILE_MAX + 1];
	struct stat st;
	ssize_t n;
	int fd, rc = 0;

	if (orfa_auth_init())
		return -EIO;
	fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errsz, "%s: %s", file, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errsz, "%s: %s", file, strerror(-rc));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(err, errsz, "%s: not a regular file", file);
		goto out_close;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		rc = -EPERM;
		snprintf(err, errsz,
			 "%s: key file is accessible by others (mode %04o); "
			 "chmod 600 it", file, (unsigned)(st.st_mode & 07777));
		goto out_close;
	}
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		rc = -errno;
		snprintf(err, errsz, "%s: %s", file, strerror(-rc));
		goto out_wipe;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
			 buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	rc = key_strong(buf, (size_t)n);
	if (rc) {
		snprintf(err, errsz, "%s: not a key of at least 256 random "
			 "bits (%s); make one with: orfad --genkey FILE", file,
			 rc == -EMSGSIZE ? "too long" : n < KEY_MIN_HEX ?
			 "too short" : "not random hex digits");
		rc = -EINVAL;
		goto out_wipe;
	}
	crypto_generichash(key->k, sizeof(key->k), buf, (size_t)n,
			   (const uint8_t *)"orfa-key-v1", 11);
out_wipe:
	sodium_memzero(buf, sizeof(buf));
out_close:
	close(fd);
	return rc;
}

void orfa_key_wipe(struct orfa_key *key)
{
	sodium_memzero(key, sizeof(*key));
}

int orfa_key_generate(const char *file, char *err, size_t errsz)
{
	uint8_t raw[32];
	char hex[2 * sizeof(raw) + 2];
	int fd, rc = 0;

	if (orfa_auth_init())
		return -EIO;
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errsz, "%s: %s", file, strerror(-rc));
		return rc;
	}
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(hex, sizeof(hex) - 1, raw, sizeof(raw));
	strcat(hex, "\n");
	if (write(fd, hex, strlen(hex)) != (ssize_t)strlen(hex)) {
		rc = -EIO;
		snprintf(err, errsz, "%s: short write", file);
		unlink(file);
	}
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(hex, sizeof(hex));
	close(fd);
	return rc;
}

void orfa_auth_nonce(uint8_t nonce[ORFA_AUTH_NONCE_SIZE])
{
	orfa_auth_init();
	randombytes_buf(nonce, ORFA_AUTH_NONCE_SIZE);
}

static const char *const role_label[] = {
	[ORFA_AUTH_CLIENT] = "orfa-auth-client-v1",
	[ORFA_AUTH_SERVER] = "orfa-auth-server-v1",
};

/* HMAC state keyed with key over label || cnonce || snonce || len ||
 * export (label with its NUL: labels are domain separators). */
static void mac_state(crypto_auth_hmacsha512256_state *st,
		      const struct orfa_key *key, const char *l,
		      const uint8_t *cnonce, const uint8_t *snonce,
		      const char *export_path)
{
	uint8_t len[4];
	size_t elen = export_path ? strlen(export_path) : 0;

	crypto_auth_hmacsha512256_init(st, key->k, sizeof(key->k));
	crypto_auth_hmacsha512256_update(st, (const uint8_t *)l, strlen(l) + 1);
	crypto_auth_hmacsha512256_update(st, cnonce, ORFA_AUTH_NONCE_SIZE);
	crypto_auth_hmacsha512256_update(st, snonce, ORFA_AUTH_NONCE_SIZE);
	for (int i = 0; i < 4; i++)
		len[i] = (uint8_t)(elen >> (8 * i));
	crypto_auth_hmacsha512256_update(st, len, sizeof(len));
	if (elen)
		crypto_auth_hmacsha512256_update(st, (const uint8_t *)export_path,
						 elen);
}

static void mac_compute(const struct orfa_key *key, const char *label,
			const uint8_t *cnonce, const uint8_t *snonce,
			const char *export_path, uint8_t out[32])
{
	crypto_auth_hmacsha512256_state st;

	mac_state(&st, key, label, cnonce, snonce, export_path);
	crypto_auth_hmacsha512256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

void orfa_auth_proof(const struct orfa_key *key, enum orfa_auth_role role,
		     const uint8_t cnonce[ORFA_AUTH_NONCE_SIZE],
		     const uint8_t snonce[ORFA_AUTH_NONCE_SIZE],
		     const char *export_path, uint8_t mac[ORFA_AUTH_MAC_SIZE])
{
	mac_compute(key, role_label[role == ORFA_AUTH_SERVER ?
				    ORFA_AUTH_SERVER : ORFA_AUTH_CLIENT],
		    cnonce, snonce, export_path, mac);
}

void orfa_auth_session_keys(const struct orfa_key *key,
			    enum orfa_auth_role self,
			    const uint8_t cnonce[ORFA_AUTH_NONCE_SIZE],
			    const uint8_t snonce[ORFA_AUTH_NONCE_SIZE],
			    const char *export_path, int integrity_only,
			    struct orfa_seal_keys *out)
{
	uint8_t c2s[32], s2c[32];

	/* The mode is part of the labels: two sides that disagree on it
	 * (a flag altered on the way) fail on the first frame. */
	mac_compute(key, integrity_only ? "orfa-seal-c2s-mac-v1" :
		    "orfa-seal-c2s-v1", cnonce, snonce, export_path, c2s);
	mac_compute(key, integrity_only ? "orfa-seal-s2c-mac-v1" :
		    "orfa-seal-s2c-v1", cnonce, snonce, export_path, s2c);
	out->integrity_only = !!integrity_only;
	memcpy(out->tx, self == ORFA_AUTH_SERVER ? s2c : c2s, sizeof(out->tx));
	memcpy(out->rx, self == ORFA_AUTH_SERVER ? c2s : s2c, sizeof(out->rx));
	sodium_memzero(c2s, sizeof(c2s));
	sodium_memzero(s2c, sizeof(s2c));
}

int orfa_auth_verify(const struct orfa_key *key, enum orfa_auth_role role,
		     const uint8_t cnonce[ORFA_AUTH_NONCE_SIZE],
		     const uint8_t snonce[ORFA_AUTH_NONCE_SIZE],
		     const char *export_path,
		     const uint8_t mac[ORFA_AUTH_MAC_SIZE])
{
	uint8_t expect[ORFA_AUTH_MAC_SIZE];
	int ok;

	orfa_auth_proof(key, role, cnonce, snonce, export_path, expect);
	ok = sodium_memcmp(expect, mac, sizeof(expect)) == 0;
	sodium_memzero(expect, sizeof(expect));
	return ok ? 0 : -EACCES;
}
