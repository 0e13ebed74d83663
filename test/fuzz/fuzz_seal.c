/*
 * fuzz_seal.c - libFuzzer harness for the protected framing (common/seal.c,
 * PROTOCOL.md section 6.1), the code that sees a hostile peer's sealed
 * frames before anything else does.
 *
 * The first input byte picks the property (and bit 1 of it the mode:
 * encrypting, or integrity only):
 *  - even: the rest is a received frame (two bytes: where head ends, then
 *    head and data) opened with a fixed key at counter 0 to 3: it must
 *    never crash, read out of bounds, or open (a forgery).
 *  - odd: [pos lo][pos hi][mask][opcode] then body and data (split at
 *    the next byte): sealed with the key, one byte XORed with mask at pos
 *    (over header, body, trailer and data), then opened: it must open to
 *    the same bytes when mask is 0 and fail when it is not.
 * Any violation aborts (a finding).  Seeds: corpus/seal.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "orfa_proto.h"
#include "seal.h"

#define MAXF 8192

static const uint8_t key[ORFA_SEAL_KEY_SIZE] = { 0x42, 0x17 };

static void open_raw(const uint8_t *in, size_t n)
{
	static uint8_t head[MAXF], data[MAXF];
	struct orfa_seal_dir d;
	size_t hl, blen;

	if (n < 3)
		return;
	hl = ((size_t)in[1] | (size_t)in[2] << 8) % (n - 2);
	if (hl > MAXF || n - 3 - hl > MAXF)
		return;
	memcpy(head, in + 3, hl);
	memcpy(data, in + 3 + hl, n - 3 - hl);
	orfa_seal_dir_init(&d, key, in[0] & 2);
	d.seq = in[0] >> 6;
	if (orfa_seal_open(&d, head, hl, data, n - 3 - hl, &blen) == 0)
		abort();	/* a frame forged without the key */
}

static void round_trip(const uint8_t *in, size_t n)
{
	static uint8_t head[MAXF + 64], data[MAXF], ref_h[MAXF + 64],
		ref_d[MAXF];
	struct orfa_hdr h = { .flags = ORFA_F_REPLY };
	struct orfa_seal_dir tx, rx;
	size_t blen, dlen, pos, total, got;
	uint8_t mask;
	int rc;

	if (n < 6)
		return;
	pos = (size_t)in[1] | (size_t)in[2] << 8;
	mask = in[3];
	h.opcode = in[4];
	blen = in[5] % (n - 5);
	dlen = n - 6 - blen;
	if (blen > MAXF || dlen > MAXF)
		return;
	h.body_len = (uint32_t)blen;
	h.data_len = (uint32_t)dlen;
	orfa_hdr_encode(head, &h);
	memcpy(head + ORFA_HDR_SIZE, in + 6, blen);
	memcpy(data, in + 6 + blen, dlen);
	memcpy(ref_h, head, ORFA_HDR_SIZE + blen);
	memcpy(ref_d, data, dlen);
	orfa_seal_dir_init(&tx, key, in[0] & 2);
	orfa_seal_dir_init(&rx, key, in[0] & 2);
	if (orfa_seal_frame(&tx, head, blen, data, dlen))
		abort();
	total = ORFA_HDR_SIZE + blen + ORFA_SEAL_TRAILER + dlen;
	pos %= total;
	if (pos < ORFA_HDR_SIZE + blen + ORFA_SEAL_TRAILER)
		head[pos] ^= mask;
	else
		data[pos - ORFA_HDR_SIZE - blen - ORFA_SEAL_TRAILER] ^= mask;
	rc = orfa_seal_open(&rx, head, ORFA_HDR_SIZE + blen + ORFA_SEAL_TRAILER,
			    data, dlen, &got);
	if (mask == 0 && (rc != 0 || got != blen ||
			  memcmp(head, ref_h, ORFA_HDR_SIZE + blen) ||
			  memcmp(data, ref_d, dlen)))
		abort();	/* a genuine frame did not survive */
	if (mask != 0 && rc == 0)
		abort();	/* an altered frame was accepted */
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
	if (n == 0)
		return 0;
	if (in[0] & 1)
		round_trip(in, n);
	else
		open_raw(in, n);
	return 0;
}
