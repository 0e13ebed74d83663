/*
 * seal.c - sealing and opening frames of a protected connection (see
 * seal.h and PROTOCOL.md section 6.1).  All cryptography is libsodium's.
 */
#include "seal.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "codec.h"
#include "orfa_proto.h"

_Static_assert(crypto_aead_chacha20poly1305_IETF_KEYBYTES ==
	       ORFA_SEAL_KEY_SIZE, "seal key size");
_Static_assert(crypto_aead_chacha20poly1305_IETF_ABYTES ==
	       ORFA_SEAL_TAG_SIZE, "seal tag size");
_Static_assert(crypto_aead_chacha20poly1305_IETF_NPUBBYTES == 12,
	       "seal nonce size");

void orfa_seal_dir_init(struct orfa_seal_dir *d,
			const uint8_t key[ORFA_SEAL_KEY_SIZE],
			int integrity_only)
{
	memcpy(d->key, key, ORFA_SEAL_KEY_SIZE);
	d->seq = 0;
	d->integrity_only = !!integrity_only;
}

void orfa_seal_dir_wipe(struct orfa_seal_dir *d)
{
	sodium_memzero(d, sizeof(*d));
}

void orfa_seal_keys_wipe(struct orfa_seal_keys *k)
{
	sodium_memzero(k, sizeof(*k));
}

/* Nonce: the frame counter (8 bytes) then the part (4 bytes), LE. */
static void nonce_make(uint8_t n[12], uint64_t seq, uint32_t part)
{
	orfa_put_le64(n, seq);
	orfa_put_le32(n + 8, part);
}

/*
 * Integrity only: the tags of the same AEAD over an empty message, with
 * header + body (contiguous) as associated data for the first and the data
 * segment for the second.  The data's tag does not cover the header: the
 * body's tag does, including data_len, and both share the frame counter.
 */
static void mac_frame(const struct orfa_seal_dir *d, const uint8_t *head,
		      size_t body_len, const uint8_t *data, size_t data_len,
		      uint8_t tags[ORFA_SEAL_TRAILER])
{
	uint8_t n[12], none[1] = { 0 };

	nonce_make(n, d->seq, 0);
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(none, tags, NULL,
		none, 0, head, ORFA_HDR_SIZE + body_len, NULL, n, d->key);
	nonce_make(n, d->seq, 1);
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(none, tags +
		ORFA_SEAL_TAG_SIZE, NULL, none, 0, data ? data : none,
		data_len, NULL, n, d->key);
}

int orfa_seal_frame(struct orfa_seal_dir *d, uint8_t *head, size_t body_len,
		    uint8_t *data, size_t data_len)
{
	return orfa_seal_frame_from(d, head, body_len, data, data, data_len);
}

int orfa_seal_frame_from(struct orfa_seal_dir *d, uint8_t *head,
			 size_t body_len, const uint8_t *data, uint8_t *dst,
			 size_t data_len)
{
	uint8_t n[12], *body = head + ORFA_HDR_SIZE, none[1] = { 0 };
	uint8_t *tags = body + body_len;

	if (body_len + ORFA_SEAL_TRAILER > ORFA_MAX_BODY)
		return -EMSGSIZE;
	if (!data)
		data = none;	/* data_len is 0: libsodium wants a pointer */
	if (!dst)
		dst = none;
	orfa_put_le32(head, (uint32_t)(body_len + ORFA_SEAL_TRAILER));
	if (d->integrity_only) {
		mac_frame(d, head, body_len, data, data_len, tags);
		d->seq++;
		return 0;
	}
	nonce_make(n, d->seq, 0);
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(body, tags, NULL,
		body, body_len, head, ORFA_HDR_SIZE, NULL, n, d->key);
	/* The data's tag also covers the frame header: a data segment can
	 * move to no other frame (and the counter differs anyway). */
	nonce_make(n, d->seq, 1);
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(dst, tags +
		ORFA_SEAL_TAG_SIZE, NULL, data, data_len, head, ORFA_HDR_SIZE,
		NULL, n, d->key);
	d->seq++;
	return 0;
}

int orfa_seal_open(struct orfa_seal_dir *d, uint8_t *head, size_t head_len,
		   uint8_t *data, size_t data_len, size_t *body_len)
{
	uint8_t n[12], *body = head + ORFA_HDR_SIZE, *tags, none[1] = { 0 };
	size_t blen;

	if (head_len < ORFA_HDR_SIZE + ORFA_SEAL_TRAILER ||
	    orfa_get_le32(head) != head_len - ORFA_HDR_SIZE ||
	    orfa_get_le32(head + 4) != data_len || (data_len && !data))
		return -EPROTO;
	blen = head_len - ORFA_HDR_SIZE - ORFA_SEAL_TRAILER;
	tags = body + blen;
	if (!data)
		data = none;	/* data_len is 0 */
	if (d->integrity_only) {
		uint8_t want[ORFA_SEAL_TRAILER];
		int bad;

		/* The tags were computed over the header as sent. */
		mac_frame(d, head, blen, data, data_len, want);
		bad = sodium_memcmp(want, tags, sizeof(want));
		sodium_memzero(want, sizeof(want));
		if (bad)
			return -EBADMSG;
		orfa_put_le32(head, (uint32_t)blen);
		d->seq++;
		*body_len = blen;
		return 0;
	}
	/* Each part is verified before it is decrypted (libsodium). */
	nonce_make(n, d->seq, 1);
	if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(data, NULL,
		data, data_len, tags + ORFA_SEAL_TAG_SIZE, head,
		ORFA_HDR_SIZE, n, d->key) != 0)
		return -EBADMSG;
	nonce_make(n, d->seq, 0);
	if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(body, NULL,
		body, blen, tags, head, ORFA_HDR_SIZE, n, d->key) != 0)
		return -EBADMSG;
	orfa_put_le32(head, (uint32_t)blen);
	d->seq++;
	*body_len = blen;
	return 0;
}
