/*
 * rdma_wire.h - the bytes the RDMA transport puts around an ORFA message
 * inside each SEND, and the connection private data: layouts, the writer
 * and a pure parser (no verbs, no allocation, no connection state), so
 * this builds and is tested without libibverbs.  The transport itself is
 * transport_rdma*.c.
 *
 * The RDMA wire format (inside each SEND; all fields little-endian):
 *
 *   struct rdma_wire                      16 bytes, always
 *   struct rdma_seg  (if RWF_ADVERT)      reply buffer of this request
 *   struct rdma_seg x nseg (if RWF_RDV)   data segment to RDMA-READ
 *   frame header + body                   head_len bytes, padded to 8
 *   data segment (if RWF_INLINE)          hdr.data_len bytes
 *
 * A data segment travels inline when everything fits in one receive
 * buffer of the peer; otherwise by rendezvous: the sender registers the
 * memory and sends its address/rkey (RWF_RDV); the receiver RDMA-READs it
 * and acknowledges (rdma_wire.rdv_acks) so the sender can call done().  A
 * reply whose request advertised a reply buffer (RWF_ADVERT) is instead
 * RDMA-WRITTEN into that buffer before the SEND that carries its head
 * (RWF_WRITTEN); RC ordering guarantees the data is in place when the
 * SEND completes at the receiver.
 *
 * Flow control: each side posts `credits` receives and tells the peer in
 * the connection private data.  A SEND costs one credit; a receiver
 * returns credits (receives posted again) in every message it sends
 * (rdma_wire.credits) and in a control message (RW_CTRL: the 16-byte
 * header alone) when half of them are waiting and nothing else goes out.
 * A data message needs two credits so the last one is kept for a control
 * message that returns credits, which is what lets two peers that both
 * ran dry start again.
 */
#ifndef ORFA_RDMA_WIRE_H
#define ORFA_RDMA_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "orfa_proto.h"

#define RDMA_PRIV_MAGIC		0x4d445246u	/* "FRDM" as LE u32 */
#define RDMA_PRIV_VERSION	1u

/* Connection private data (connect request and accept reply). */
struct rdma_priv {
	uint32_t magic;		/* RDMA_PRIV_MAGIC */
	uint16_t version;	/* RDMA_PRIV_VERSION */
	uint16_t pad;		/* zero */
	uint32_t credits;	/* receives posted for the peer */
	uint32_t buf_size;	/* bytes in each of them */
};

enum rdma_wire_type {
	RW_MSG = 1,		/* an ORFA message */
	RW_CTRL = 2,		/* credits / rendezvous acks only */
};

#define RWF_INLINE	0x01u	/* data follows the head in this SEND */
#define RWF_RDV		0x02u	/* nseg segments to RDMA-READ follow */
#define RWF_WRITTEN	0x04u	/* data is already in the advertised buffer */
#define RWF_ADVERT	0x08u	/* one segment follows: this request's reply
				 * buffer, may be RDMA-WRITTEN by the peer */
#define RWF_ALL		(RWF_INLINE | RWF_RDV | RWF_WRITTEN | RWF_ADVERT)

/* Host form of the 16-byte header (the wire has the same layout, LE). */
struct rdma_wire {
	uint8_t type;		/* enum rdma_wire_type */
	uint8_t flags;		/* RWF_* */
	uint8_t nseg;		/* RWF_RDV: segments, 1..RDMA_MAX_SEG */
	uint8_t pad;		/* zero */
	uint32_t head_len;	/* frame header + body bytes (RW_MSG) */
	uint32_t credits;	/* receives posted again since last report */
	uint32_t rdv_acks;	/* peer rendezvous messages READ since last */
};

struct rdma_seg {
	uint64_t addr;		/* remote virtual address */
	uint32_t rkey;
	uint32_t len;
};

#define RDMA_WIRE_SIZE	16u
#define RDMA_SEG_SIZE	16u
#define RDMA_MAX_SEG	8u	/* more iovecs than this are copied */

/* Space around the head in a receive buffer: wire header, one advert and
 * RDMA_MAX_SEG segments, and the padding of the head to 8 bytes. */
#define RDMA_MSG_OVERHEAD (RDMA_WIRE_SIZE + RDMA_SEG_SIZE * (1 + RDMA_MAX_SEG) + 8)

static inline uint32_t rdma_pad8(uint32_t n)
{
	return (n + 7u) & ~7u;
}

/* ---- writer ------------------------------------------------------------- */

void rdma_wire_put(uint8_t p[RDMA_WIRE_SIZE], const struct rdma_wire *w);
void rdma_seg_put(uint8_t p[RDMA_SEG_SIZE], const struct rdma_seg *s);

/*
 * Lay out everything of an RW_MSG up to its inline data at buf: the wire
 * header w (its type, nseg and head_len are taken as given), the advert
 * adv when w->flags has RWF_ADVERT, the w->nseg segments seg[] (RWF_RDV),
 * then head_len bytes of head and zeros up to the next multiple
 * of 8.  The caller makes room (RDMA_MSG_OVERHEAD + head_len is enough).
 * Returns the offset where inline data goes (the message's length when
 * there is none).
 */
size_t rdma_wire_write_msg(uint8_t *buf, const struct rdma_wire *w,
			   const struct rdma_seg *adv,
			   const struct rdma_seg *seg, const uint8_t *head);

/* The private data this side sends. */
void rdma_priv_put(struct rdma_priv *p, uint32_t credits, uint32_t buf_size);

/* ---- parser ------------------------------------------------------------- */

/*
 * Check the peer's private data (len bytes at data, may be NULL): magic,
 * version, zero padding, 2..65536 credits, a buffer size that holds a
 * message with a 64-byte body and is at most ORFA_RDMA_MAX_BUF_SIZE.
 * 0 with *credits and *buf_size set, or -EPROTO.
 */
int rdma_priv_parse(const void *data, size_t len, uint32_t *credits,
		    uint32_t *buf_size);

/* One received SEND, as rdma_wire_parse found it.  Offsets are from the
 * start of the buffer that was parsed. */
struct rdma_wire_msg {
	struct rdma_wire w;		/* the 16-byte header */
	int wire_ok;			/* w passed its own checks: credits and
					 * rdv_acks may be taken even when a
					 * later check failed */
	struct rdma_seg adv;		/* RWF_ADVERT: the request's reply
					 * buffer */
	struct rdma_seg seg[RDMA_MAX_SEG]; /* RWF_RDV: w.nseg segments */
	struct orfa_hdr hdr;		/* RW_MSG: the frame header */
	uint32_t head_off;		/* RW_MSG: where frame header + body
					 * (w.head_len bytes) start */
	uint32_t data_off;		/* RW_MSG: end of the padded head:
					 * where RWF_INLINE data starts */
	const char *why;		/* NULL, or what was wrong */
};

/*
 * Parse the len bytes at buf that one receive completion delivered,
 * against the receiver's limits: max_body for the frame body, max_data
 * for its data segment.  Every length and flag is checked here, before
 * the transport allocates anything for the message; what needs the
 * connection (credits within the peer's window, acks matching messages
 * sent, an RWF_WRITTEN reply matching a buffer we advertised and large
 * enough) is the caller's.  Returns 0, or -EBADMSG (short, truncated,
 * lengths that disagree), -EPROTO (non-zero padding, unknown type or
 * flags, a control message with message fields, a bad segment count or
 * data segment description) or -EMSGSIZE (body or data above the
 * limits), with m->why saying which.  An RW_CTRL message sets only m->w.
 */
int rdma_wire_parse(const uint8_t *buf, size_t len, uint32_t max_body,
		    uint32_t max_data, struct rdma_wire_msg *m);

#endif /* ORFA_RDMA_WIRE_H */
