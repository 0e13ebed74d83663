/*
 * auth.h - shared-key mutual authentication for the ORFA handshake.
 *
 * Both sides hold the same secret key (a file readable only by its owner).
 * The handshake (PROTOCOL.md, "Authentication") exchanges fresh random
 * nonces, then each side proves it knows the key with a MAC over the role,
 * both nonces and the export name.  The key never crosses the wire; a
 * recorded handshake cannot be replayed because the peer's nonce is new
 * each time; the two roles are domain-separated so a proof cannot be
 * reflected back.  The primitives are libsodium's (HMAC-SHA-512-256 via
 * crypto_auth, randombytes, constant-time verification): nothing here is
 * hand-written cryptography.
 */
#ifndef ORFA_AUTH_H
#define ORFA_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "seal.h"

#define ORFA_AUTH_KEY_SIZE	32u
#define ORFA_AUTH_NONCE_SIZE	32u
#define ORFA_AUTH_MAC_SIZE	32u

enum orfa_auth_role {
	ORFA_AUTH_CLIENT = 1,	/* proof sent by the client */
	ORFA_AUTH_SERVER = 2,	/* proof sent by the server */
};

struct orfa_key {
	uint8_t k[ORFA_AUTH_KEY_SIZE];
};

/* Initialise libsodium; 0 or -EIO.  Safe to call more than once. */
int orfa_auth_init(void);

/*
 * Load a key file.  The file must be a regular file with no group or other
 * permission bits (mode 0600 or 0400), else -EPERM.  Its content must
 * hold at least 256 random bits as orfa_key_generate writes them: 64 to
 * 4096 hex digits, not a patterned string (fewer than 8 distinct digits),
 * else -EINVAL with a message that says how to make one (orfad --genkey).
 * Trailing white space is ignored; the content is hashed down to the
 * 32-byte key.  Returns 0 or a negative errno, with a reason in err.
 */
int orfa_key_load(const char *file, struct orfa_key *key, char *err,
		  size_t errsz);

/* Overwrite a key in memory (before it goes out of scope). */
void orfa_key_wipe(struct orfa_key *key);

/* Write a new random key file (64 hex digits) with mode 0600; fails with
 * -EEXIST rather than overwrite. */
int orfa_key_generate(const char *file, char *err, size_t errsz);

/* Fill a nonce with random bytes. */
void orfa_auth_nonce(uint8_t nonce[ORFA_AUTH_NONCE_SIZE]);

/* mac = MAC_key(role || client_nonce || server_nonce || export). */
void orfa_auth_proof(const struct orfa_key *key, enum orfa_auth_role role,
		     const uint8_t cnonce[ORFA_AUTH_NONCE_SIZE],
		     const uint8_t snonce[ORFA_AUTH_NONCE_SIZE],
		     const char *export_path, uint8_t mac[ORFA_AUTH_MAC_SIZE]);

/* Constant-time check of a peer's proof: 0 when valid, -EACCES if not. */
int orfa_auth_verify(const struct orfa_key *key, enum orfa_auth_role role,
		     const uint8_t cnonce[ORFA_AUTH_NONCE_SIZE],
		     const uint8_t snonce[ORFA_AUTH_NONCE_SIZE],
		     const char *export_path,
		     const uint8_t mac[ORFA_AUTH_MAC_SIZE]);

/*
 * The session keys of a connection after a successful AUTH (PROTOCOL.md
 * section 6.1): client-to-server = MAC_key("orfa-seal-c2s-v1" || ...) and
 * server-to-client likewise, over the same nonces and export as the
 * proofs.  self says which side we are: out->tx is the key of what we
 * send.  integrity_only (granted in HELLO) selects the labels
 * "orfa-seal-c2s-mac-v1" / "orfa-seal-s2c-mac-v1" and is copied to out.
 * Nothing new crosses the wire.  Wipe out after use.
 */
void orfa_auth_session_keys(const struct orfa_key *key,
			    enum orfa_auth_role self,
			    const uint8_t cnonce[ORFA_AUTH_NONCE_SIZE],
			    const uint8_t snonce[ORFA_AUTH_NONCE_SIZE],
			    const char *export_path, int integrity_only,
			    struct orfa_seal_keys *out);

#endif /* ORFA_AUTH_H */
