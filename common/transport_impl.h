/*
 * transport_impl.h - what transport.c gives the transports themselves
 * (transport_tcp*.c, transport_rdma*.c), so that a rule both follow is
 * written once: the receive limits, the frame header check.  Not for
 * callers of transport.h, nor for use outside common/ and its tests.
 */
#ifndef ORFA_TRANSPORT_IMPL_H
#define ORFA_TRANSPORT_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "transport.h"

/*
 * The receive limits of a connection, from orfa_tp_opts or set_limits:
 * 0 means the default (ORFA_MAX_BODY, ORFA_DEFAULT_MAX_DATA: what
 * PROTOCOL.md section 4 says both sides offer by default, and what
 * orfa_tp_opts_default sets), and nothing goes above the protocol's hard
 * caps (ORFA_MAX_BODY, ORFA_MAX_DATA_LIMIT).  A transport may lower
 * max_body further to what its buffers hold.
 */
void orfa_tp_clamp_limits(uint32_t *max_body, uint32_t *max_data);

/*
 * Decode the frame header at p (orfa_hdr_decode) and hold its lengths to
 * max_body and max_data.  h is filled in either case.  Unknown flags and
 * opcodes pass: they are the codec's to judge with the body, and the
 * frame can still be skipped, its lengths being known.  Returns 0, or
 * -EMSGSIZE with "frame body_len N exceeds max_body M (opcode K)" (or the
 * same for data_len) in why[whysz] when why is not NULL.
 */
int orfa_tp_hdr_decode(const uint8_t p[ORFA_HDR_SIZE], struct orfa_hdr *h,
		       uint32_t max_body, uint32_t max_data,
		       char *why, size_t whysz);

/*
 * The number of bytes a message's data segment holds: the sum of iov's
 * lengths, else fd_len when fd >= 0, else 0.  -EINVAL when the message is
 * malformed (no head, a head shorter than a frame header, a negative
 * iovcnt, iovcnt > 0 without iov) or its frame header does not announce
 * exactly head_len - ORFA_HDR_SIZE body bytes and that many data bytes;
 * *hdr (may be NULL) receives the decoded frame header.
 */
int orfa_tp_txmsg_check(const struct orfa_txmsg *m, size_t *data_len,
			struct orfa_hdr *hdr);

/* transport_seal.c, for the wrappers of transport.c: send and receive on
 * a sealed connection (c->seal set), and freeing its state at destroy. */
int tp_send_sealed(struct orfa_conn *c, const struct orfa_txmsg *m);
int tp_recv_sealed(struct orfa_conn *c, struct orfa_rxmsg *m);
void tp_seal_free(struct orfa_conn *c);

#endif /* ORFA_TRANSPORT_IMPL_H */
