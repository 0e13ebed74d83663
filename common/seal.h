/*
 * seal.h - the protected framing of ORFA (PROTOCOL.md section 6.1): the
 * pure cryptography, with no I/O, so it can be unit-tested and fuzzed on
 * bytes.  transport.c applies it to every frame of a sealed connection.
 *
 * After a successful AUTH both sides derive two directional keys
 * (orfa_auth_session_keys, auth.h).  A sealed frame keeps its 24-byte
 * frame header in clear (the transports need its lengths) and authenticates
 * it; the body is encrypted and followed by a trailer of ORFA_SEAL_TRAILER
 * bytes (the body's tag, then the data segment's tag), counted in the
 * header's body_len; the data segment keeps its length and place and is
 * encrypted in place (integrity-only mode: both stay in clear and are
 * authenticated as associated data).  The AEAD is libsodium's
 * ChaCha20-Poly1305 (IETF),
 * detached; the nonce is the direction's frame counter (never on the wire)
 * with a part number (0 body, 1 data), so a frame replayed, reordered,
 * dropped or injected fails verification.  A direction's counter only
 * moves on success; after a failure the connection must be dropped.
 *
 * Not thread-safe: one struct orfa_seal_dir per direction, used by one
 * thread at a time (transport.c holds a lock around seal + send).
 */
#ifndef ORFA_SEAL_H
#define ORFA_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define ORFA_SEAL_KEY_SIZE	32u
#define ORFA_SEAL_TAG_SIZE	16u
#define ORFA_SEAL_TRAILER	(2u * ORFA_SEAL_TAG_SIZE)

/* One direction of a sealed connection. */
struct orfa_seal_dir {
	uint8_t key[ORFA_SEAL_KEY_SIZE];
	uint64_t seq;		/* frames sealed (or opened) so far */
	int integrity_only;	/* 1: authenticate, do not encrypt */
};

/* The two keys of a connection, as each side sees them, and the mode. */
struct orfa_seal_keys {
	uint8_t tx[ORFA_SEAL_KEY_SIZE];	/* what we send */
	uint8_t rx[ORFA_SEAL_KEY_SIZE];	/* what the peer sends */
	int integrity_only;		/* both directions */
};

/* integrity_only: the same frame layout and checks, but body and data stay
 * in clear (the tags authenticate them as associated data). */
void orfa_seal_dir_init(struct orfa_seal_dir *d,
			const uint8_t key[ORFA_SEAL_KEY_SIZE],
			int integrity_only);
/* Overwrite keys in memory. */
void orfa_seal_dir_wipe(struct orfa_seal_dir *d);
void orfa_seal_keys_wipe(struct orfa_seal_keys *k);

/*
 * Seal one frame in place.  head holds the 24-byte frame header and
 * body_len bytes of body, and has room for ORFA_SEAL_TRAILER more bytes
 * after them; data (data_len bytes, may be NULL when 0) is encrypted in
 * place.  The header's body_len becomes body_len + ORFA_SEAL_TRAILER
 * (its data_len must already be data_len).  0, or -EMSGSIZE when the
 * grown body would exceed ORFA_MAX_BODY.
 */
int orfa_seal_frame(struct orfa_seal_dir *d, uint8_t *head, size_t body_len,
		    uint8_t *data, size_t data_len);
/* The same with the data segment read from src and, when encrypting,
 * written to dst (data_len bytes; dst may be src).  In integrity-only mode
 * src is only read and dst is not used (may be NULL): the data can be
 * sent from where it is. */
int orfa_seal_frame_from(struct orfa_seal_dir *d, uint8_t *head,
			 size_t body_len, const uint8_t *src, uint8_t *dst,
			 size_t data_len);

/*
 * Open (verify, then decrypt in place) one received frame: head of
 * head_len bytes (header + sealed body + trailer) and its data segment.
 * On success the header's body_len is put back to the plain body's
 * length, which *body_len receives (head_len - 24 - ORFA_SEAL_TRAILER),
 * and 0 is returned.  -EBADMSG when anything was altered, replayed,
 * reordered or forged (data and head are then unspecified and the
 * direction unusable); -EPROTO when the frame is too short to be sealed
 * or its lengths disagree.
 */
int orfa_seal_open(struct orfa_seal_dir *d, uint8_t *head, size_t head_len,
		   uint8_t *data, size_t data_len, size_t *body_len);

#endif /* ORFA_SEAL_H */
