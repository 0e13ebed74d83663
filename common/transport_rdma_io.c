/*
 * transport_rdma_io.c - the data path of the RDMA transport: sending
 * (inline, rendezvous, RDMA-WRITE into an advertised reply buffer),
 * receiving (pre-posted buffers lent to the caller, RDMA-READ of
 * rendezvous data), credit-based flow control, completion processing and
 * failure handling.  The wire format and the flow-control rules are
 * described in transport_rdma_impl.h; connection setup and teardown live
 * in transport_rdma.c.
 *
 * Progress (polling the CQ, handling CM events, posting READs and queued
 * messages, control messages) is done by each connection's progress
 * thread, in both modes.  Any thread may send: a message is queued under
 * the connection lock and posted at once when credits, a send buffer and
 * send queue entries are available, otherwise by the progress pass that
 * frees them.  done() callbacks run on the thread that finished the
 * message: the sender (inline data, copied at once) or the progress
 * thread (rendezvous acknowledged, RDMA WRITE completed, failure).
 *
 * Copies made on purpose: inline data is copied into a registered send
 * buffer (at most one receive buffer, 64 KiB by default); file data
 * (txmsg.fd) is read with pread into a registered bounce buffer; a
 * received message is copied out of its receive buffer only when the
 * caller already holds all spare buffers (so the receive can be posted
 * again at once and the peer never waits for our caller).
 */
#include "transport_rdma_impl.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Work request ids: an object pointer (8-byte aligned) or'ed with a tag. */
#define WR_RECV		1u	/* struct rdma_rslot */
#define WR_SEND		2u	/* struct rdma_sslot */
#define WR_CTRL		3u	/* control slot index << 3 */
#define WR_READ		4u	/* struct rdma_rx */
#define WR_TAG_MASK	7u

#define POLL_BATCH	32

enum tx_kind {
	TX_INLINE,		/* everything in one SEND */
	TX_RDV,			/* SEND with segments; peer READs; ack frees */
	TX_WRITE,		/* WRITE into the peer's reply buffer + SEND */
};

/* A blocking sender waits on this until its message is posted or fails. */
struct send_ticket {
	int done;
	int err;
};

/* Local description of one data segment of a rendezvous or WRITE. */
struct tx_seg {
	uint8_t *addr;
	uint32_t len;
	uint32_t lkey;
	uint32_t rkey;
};

/* One message accepted by rdma_send. */
struct rdma_tx {
	struct rdma_tx *next;		/* txq, rdv list or reap list */
	enum tx_kind kind;
	uint8_t *head;			/* copy of frame header + body */
	uint32_t head_len;
	uint64_t req_id;		/* from the frame header */
	size_t data_len;
	/* inline data: caller memory (copied when posted) or file data */
	struct iovec *iov;		/* copy of the caller's iovec array */
	int iovcnt;
	uint8_t *inl;			/* file data read ahead (malloc) */
	/* rendezvous / write data */
	unsigned nseg;
	struct tx_seg seg[RDMA_MAX_SEG];
	struct ibv_mr *mr[RDMA_MAX_SEG]; /* per-transfer registrations */
	unsigned nmr;
	struct rdma_rbuf *bounce;	/* bounce buffer instead of mr[] */
	struct rdma_seg target;		/* TX_WRITE: the peer's reply buffer */
	struct rdma_adv_mine *adv;	/* reply buffer to advertise, or NULL */
	void (*done)(void *);		/* NULL once called */
	void *done_arg;
	struct send_ticket *ticket;	/* blocking sender, or NULL */
	int err;			/* why it was reaped unsent */
};

enum rx_state {
	RX_NEED_DEST,		/* rendezvous: destination not chosen yet */
	RX_RESOLVING,		/* destination being chosen (lock dropped) */
	RX_NEED_READ,		/* destination chosen, READs not posted */
	RX_READING,		/* READs posted */
	RX_READY,		/* can be handed to the caller */
	RX_DEAD,		/* READ failed (connection failed) */
};

/* One received message, from arrival until recv_done. */
struct rdma_rx {
	struct rdma_rx *next;		/* rxq or free list */
	enum rx_state state;
	struct rdma_rslot *slot;	/* lent receive buffer, or NULL */
	uint8_t *copy;			/* heap copy of it, or NULL */
	uint8_t *head;			/* frame header + body in slot/copy */
	uint32_t head_len;
	struct orfa_hdr hdr;
	uint8_t flags;			/* RWF_* */
	uint8_t *inl;			/* inline data in slot/copy */
	void *data;			/* where the data is: advert buffer,
					 * sink or landing buffer */
	unsigned nseg;
	struct rdma_seg seg[RDMA_MAX_SEG];
	void *sink;			/* caller's sink for RDV data */
	struct ibv_mr *sink_mr;		/* its per-transfer registration */
	struct rdma_rbuf *landing;	/* transport buffer for RDV data */
	unsigned read_wrs;		/* send queue entries of the READs */
};

/* ---- reaping: finished messages are released outside the lock -------- */

static void tx_reap(struct rdma_conn *c, struct rdma_tx *tx, int err)
{
	if (tx->ticket) {
		tx->ticket->done = 1;
		tx->ticket->err = err;
		tx->ticket = NULL;
		pthread_cond_broadcast(&c->tx_cond);
	}
	tx->err = err;
	tx->next = NULL;
	if (c->reap_last)
		c->reap_last->next = tx;
	else
		c->reap_first = tx;
	c->reap_last = tx;
}

static void tx_release(struct rdma_conn *c, struct rdma_tx *tx)
{
	for (unsigned i = 0; i < tx->nmr; i++)
		rdma_mr_unpin(tx->mr[i]);
	rdma_rbuf_put(c->dev, tx->bounce);
	if (tx->adv) {
		/* Never advertised (or the connection died): unpin here. */
		rdma_mr_unpin(tx->adv->mr);
		free(tx->adv);
	}
	if (tx->done)
		tx->done(tx->done_arg);
	free(tx->inl);
	free(tx);
}

/* Release everything reaped so far.  Called without the lock. */
void rdma_io_reap(struct rdma_conn *c)
{
	struct rdma_tx *list, *tx;

	pthread_mutex_lock(&c->lock);
	list = c->reap_first;
	c->reap_first = c->reap_last = NULL;
	pthread_mutex_unlock(&c->lock);
	while ((tx = list)) {
		list = tx->next;
		tx_release(c, tx);
	}
}

/* ---- adverts ------------------------------------------------------------ */

static unsigned adv_bucket(uint64_t req_id)
{
	return (unsigned)((req_id * 0x9e3779b97f4a7c15ull) >> 56) %
	       RDMA_ADV_BUCKETS;
}

static struct rdma_adv_mine *adv_mine_take(struct rdma_conn *c,
					   uint64_t req_id)
{
	struct rdma_adv_mine **pp = &c->adv_mine[adv_bucket(req_id)], *a;

	for (; (a = *pp); pp = &a->next)
		if (a->req_id == req_id) {
			*pp = a->next;
			return a;
		}
	return NULL;
}

static void adv_mine_add(struct rdma_conn *c, struct rdma_adv_mine *a)
{
	struct rdma_adv_mine *old = adv_mine_take(c, a->req_id);
	unsigned b = adv_bucket(a->req_id);

	if (old) {
		/* Request id reused before its reply came: the old buffer
		 * must no longer be written. */
		rdma_mr_unpin(old->mr);
		free(old);
	}
	a->next = c->adv_mine[b];
	c->adv_mine[b] = a;
}

static int adv_peer_take(struct rdma_conn *c, uint64_t req_id,
			 struct rdma_seg *seg)
{
	struct rdma_adv_peer **pp = &c->adv_peer[adv_bucket(req_id)], *a;

	for (; (a = *pp); pp = &a->next)
		if (a->req_id == req_id) {
			*pp = a->next;
			*seg = a->seg;
			free(a);
			c->n_adv_peer--;
			return 1;
		}
	return 0;
}

static void adv_peer_add(struct rdma_conn *c, uint64_t req_id,
			 const struct rdma_seg *seg)
{
	struct rdma_seg old;
	struct rdma_adv_peer *a;
	unsigned b = adv_bucket(req_id);

	adv_peer_take(c, req_id, &old);
	if (c->n_adv_peer >= RDMA_ADV_MAX)
		return;		/* the reply falls back to rendezvous */
	a = malloc(sizeof(*a));
	if (!a)
		return;
	a->req_id = req_id;
	a->seg = *seg;
	a->next = c->adv_peer[b];
	c->adv_peer[b] = a;
	c->n_adv_peer++;
}

/* ---- failure -------------------------------------------------------------- */

static void ufd_update(struct rdma_conn *c);

/*
 * The connection cannot be used any more.  Record why, move the QP to
 * the error state (the peer can no longer read or write our memory, and
 * posted work requests complete with a flush status), then fail every
 * message that still references caller memory: done() is called for all
 * of them (by rdma_io_reap), blocked senders and the receiver wake up.
 * Caller holds the lock.
 */
void rdma_io_fail(struct rdma_conn *c, int err, const char *why)
{
	struct ibv_qp_attr attr = { .qp_state = IBV_QPS_ERR };
	struct rdma_tx *tx;

	if (c->state == RC_FAILED)
		return;
	c->state = RC_FAILED;
	orfa_conn_fail(&c->base, err, "%s", why);
	if (err != -ENOTCONN)
		log_info("rdma: %s: %s", c->base.peer, why);
	if (c->qp && !c->qp_err && rdma_thread_may_verbs()) {
		if (ibv_modify_qp(c->qp, &attr, IBV_QP_STATE))
			log_warn("rdma: %s: cannot move QP to error state",
				 c->base.peer);
		c->qp_err = 1;
	} else if (c->qp && !c->qp_err && c->wake_efd >= 0) {
		uint64_t one = 1;

		/* The progress thread moves it (rdma_io_thread). */
		if (write(c->wake_efd, &one, sizeof(one)) < 0)
			log_warn("rdma: cannot wake the progress thread");
	}
	while ((tx = c->txq_first)) {
		c->txq_first = tx->next;
		tx_reap(c, tx, err);
	}
	c->txq_last = NULL;
	c->txq_bytes = 0;
	while ((tx = c->rdv_first)) {
		c->rdv_first = tx->next;
		tx_reap(c, tx, err);
	}
	c->rdv_last = NULL;
	for (uint32_t i = 0; c->sslots && i < c->nsslots; i++) {
		if (c->sslots[i].tx) {
			tx_reap(c, c->sslots[i].tx, err);
			c->sslots[i].tx = NULL;
		}
	}
	pthread_cond_broadcast(&c->tx_cond);
	pthread_cond_broadcast(&c->rx_cond);
	ufd_update(c);
}

static int fail_errno(struct rdma_conn *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail_errno(struct rdma_conn *c, int err, const char *fmt, ...)
{
	char why[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	rdma_io_fail(c, err, why);
	return err;
}

static int conn_err(struct rdma_conn *c)
{
	int e = c->base.last_err;

	if (c->shut)
		return -ENOTCONN;
	return e ? e : -ECONNRESET;
}

/* ---- receive buffers ------------------------------------------------------ */

static int post_recv(struct rdma_conn *c, struct rdma_rslot *s)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)s->buf,
		.length = c->buf_size,
		.lkey = c->rpool_mr->lkey,
	};
	struct ibv_recv_wr wr = {
		.wr_id = (uintptr_t)s | WR_RECV,
		.sg_list = &sge,
		.num_sge = 1,
	}, *bad;
	int rc;

	if (c->qp_err)
		return -ECONNRESET;
	rc = ibv_post_recv(c->qp, &wr, &bad);
	if (rc)
		return fail_errno(c, -ECONNRESET, "ibv_post_recv: %s",
				  strerror(rc));
	return 0;
}

/* Allocate the pools and post the initial receives (before connecting). */
int rdma_io_init(struct rdma_conn *c)
{
	uint32_t nr = c->credits + c->nspare;
	uint8_t *mem;

	c->rslots = calloc(nr, sizeof(*c->rslots));
	c->sslots = calloc(c->nsslots, sizeof(*c->sslots));
	if (!c->rslots || !c->sslots)
		return -ENOMEM;
	mem = c->rpool_mr->addr;
	for (uint32_t i = 0; i < nr; i++) {
		c->rslots[i].buf = mem + (size_t)i * c->buf_size;
		c->rslots[i].idx = i;
	}
	mem = c->spool_mr->addr;
	for (uint32_t i = 0; i < c->nsslots; i++) {
		c->sslots[i].buf = mem + (size_t)i * c->buf_size;
		c->sslots[i].next = c->sfree;
		c->sfree = &c->sslots[i];
	}
	c->ctrl_buf = mem + (size_t)c->nsslots * c->buf_size;
	c->ctrl_free = (1u << RDMA_CTRL_SLOTS) - 1;
	for (uint32_t i = 0; i < c->credits; i++) {
		int rc = post_recv(c, &c->rslots[i]);

		if (rc)
			return rc;
	}
	for (uint32_t i = c->credits; i < nr; i++) {
		c->rslots[i].next = c->spare;
		c->spare = &c->rslots[i];
	}
	return 0;
}

static void rx_free_item(struct rdma_conn *c, struct rdma_rx *rx)
{
	rdma_mr_unpin(rx->sink_mr);
	rdma_rbuf_put(c->dev, rx->landing);
	free(rx->copy);
	if (rx->slot) {
		rx->slot->next = c->spare;
		c->spare = rx->slot;
	}
	memset(rx, 0, sizeof(*rx));
	rx->next = c->rx_free;
	c->rx_free = rx;
}

/* Everything still allocated once the QP is gone (no DMA any more). */
void rdma_io_fini(struct rdma_conn *c)
{
	struct rdma_rx *rx;
	struct rdma_tx *tx;

	/* Messages still referenced: done() must still be called once. */
	pthread_mutex_lock(&c->lock);
	if (c->state != RC_FAILED)
		rdma_io_fail(c, -ENOTCONN, "connection closed");
	pthread_mutex_unlock(&c->lock);
	rdma_io_reap(c);
	while ((rx = c->rxq_first)) {
		c->rxq_first = rx->next;
		rx_free_item(c, rx);
	}
	while ((rx = c->rx_free)) {
		c->rx_free = rx->next;
		free(rx);
	}
	for (unsigned b = 0; b < RDMA_ADV_BUCKETS; b++) {
		struct rdma_adv_mine *am;
		struct rdma_adv_peer *ap;

		while ((am = c->adv_mine[b])) {
			c->adv_mine[b] = am->next;
			rdma_mr_unpin(am->mr);
			free(am);
		}
		while ((ap = c->adv_peer[b])) {
			c->adv_peer[b] = ap->next;
			free(ap);
		}
	}
	while ((tx = c->reap_first)) {
		c->reap_first = tx->next;
		tx_release(c, tx);
	}
	free(c->rslots);
	free(c->sslots);
	c->rslots = NULL;
	c->sslots = NULL;
}

/* ---- sending -------------------------------------------------------------- */

static uint32_t send_cap(const struct rdma_conn *c)
{
	return c->peer_buf_size < c->buf_size ? c->peer_buf_size : c->buf_size;
}

/* Try to post the message at the head of txq.  0: posted, -EAGAIN: lacks
 * credits, a send buffer or send queue entries (retried by the progress
 * pass that frees them), other: the connection failed. */
static int tx_post(struct rdma_conn *c, struct rdma_tx *tx)
{
	struct ibv_send_wr wr[RDMA_MAX_SEG + 1], *bad;
	struct ibv_sge sge[RDMA_MAX_SEG + 1];
	struct rdma_wire w = { .type = RW_MSG };
	struct rdma_seg adv = { 0 }, segs[RDMA_MAX_SEG];
	struct rdma_sslot *s;
	unsigned nwr = 0, wrs = tx->kind == TX_WRITE ? tx->nseg + 1 : 1;
	uint8_t *p;
	size_t len;
	int rc;

	if (c->peer_credits < 2 || !c->sfree || c->sq_free < wrs)
		return -EAGAIN;
	s = c->sfree;
	c->sfree = s->next;

	w.head_len = tx->head_len;
	w.credits = c->unreported;
	w.rdv_acks = c->rdv_ack_pending;
	if (tx->adv) {
		w.flags |= RWF_ADVERT;
		adv = (struct rdma_seg){
			.addr = (uintptr_t)tx->adv->buf,
			.rkey = tx->adv->mr->rkey,
			.len = (uint32_t)tx->adv->len,
		};
	}
	if (tx->data_len) {
		if (tx->kind == TX_INLINE)
			w.flags |= RWF_INLINE;
		else if (tx->kind == TX_RDV)
			w.flags |= RWF_RDV;
		else
			w.flags |= RWF_WRITTEN;
	}
	if (tx->kind == TX_RDV) {
		w.nseg = (uint8_t)tx->nseg;
		for (unsigned i = 0; i < tx->nseg; i++)
			segs[i] = (struct rdma_seg){
				.addr = (uintptr_t)tx->seg[i].addr,
				.rkey = tx->seg[i].rkey,
				.len = tx->seg[i].len,
			};
	}
	p = s->buf + rdma_wire_write_msg(s->buf, &w, &adv, segs, tx->head);
	if (tx->kind == TX_INLINE && tx->data_len) {
		if (tx->inl) {
			memcpy(p, tx->inl, tx->data_len);
			p += tx->data_len;
		} else {
			for (int i = 0; i < tx->iovcnt; i++) {
				memcpy(p, tx->iov[i].iov_base,
				       tx->iov[i].iov_len);
				p += tx->iov[i].iov_len;
			}
		}
	}
	len = (size_t)(p - s->buf);

	memset(wr, 0, sizeof(wr));
	if (tx->kind == TX_WRITE) {
		uint64_t raddr = tx->target.addr;

		for (unsigned i = 0; i < tx->nseg; i++, nwr++) {
			sge[nwr] = (struct ibv_sge){
				.addr = (uintptr_t)tx->seg[i].addr,
				.length = tx->seg[i].len,
				.lkey = tx->seg[i].lkey,
			};
			wr[nwr].wr_id = 0;	/* unsignaled */
			wr[nwr].opcode = IBV_WR_RDMA_WRITE;
			wr[nwr].sg_list = &sge[nwr];
			wr[nwr].num_sge = 1;
			wr[nwr].wr.rdma.remote_addr = raddr;
			wr[nwr].wr.rdma.rkey = tx->target.rkey;
			wr[nwr].next = &wr[nwr + 1];
			raddr += tx->seg[i].len;
		}
	}
	sge[nwr] = (struct ibv_sge){
		.addr = (uintptr_t)s->buf,
		.length = (uint32_t)len,
		.lkey = c->spool_mr->lkey,
	};
	wr[nwr].wr_id = (uintptr_t)s | WR_SEND;
	wr[nwr].opcode = IBV_WR_SEND;
	wr[nwr].sg_list = &sge[nwr];
	wr[nwr].num_sge = 1;
	wr[nwr].send_flags = IBV_SEND_SIGNALED;
	wr[nwr].next = NULL;

	/* The reply cannot be processed before we drop the lock, but the
	 * advert must be in the table by then: insert it now. */
	if (tx->adv)
		adv_mine_add(c, tx->adv);
	rc = ibv_post_send(c->qp, wr, &bad);
	if (rc) {
		if (rc == EACCES)
			log_warn("rdma: %s: the kernel refuses verbs commands "
				 "from this thread: its credentials changed "
				 "since the device was opened (README, RDMA)",
				 c->base.peer);
		if (tx->adv)
			adv_mine_take(c, tx->req_id);
		s->next = c->sfree;
		c->sfree = s;
		return fail_errno(c, -ECONNRESET, "ibv_post_send: %s",
				  strerror(rc));
	}
	c->unreported = 0;
	c->rdv_ack_pending = 0;
	c->peer_credits--;
	c->sq_free -= wrs;
	s->wrs = wrs;
	s->tx = NULL;
	c->n_sent++;

	tx->adv = NULL;		/* owned by the table now */
	if (tx->ticket) {
		tx->ticket->done = 1;
		tx->ticket->err = 0;
		tx->ticket = NULL;
		pthread_cond_broadcast(&c->tx_cond);
	}
	switch (tx->kind) {
	case TX_INLINE:
		tx_reap(c, tx, 0);	/* data copied: done() now */
		break;
	case TX_RDV:
		c->n_rdv_sent++;
		tx->next = NULL;
		if (c->rdv_last)
			c->rdv_last->next = tx;
		else
			c->rdv_first = tx;
		c->rdv_last = tx;
		break;
	case TX_WRITE:
		c->n_write_sent++;
		s->tx = tx;		/* done() when the SEND completes */
		break;
	}
	return 0;
}

static void tx_progress(struct rdma_conn *c)
{
	struct rdma_tx *tx;

	while ((tx = c->txq_first) && c->state == RC_CONNECTED) {
		/* tx_post hands a posted message on to the rdv or reap list
		 * (reusing tx->next): take what we need first. */
		struct rdma_tx *next = tx->next;
		size_t bytes = tx->head_len + tx->data_len;

		if (tx_post(c, tx))
			break;	/* not posted; still at the head (or failed) */
		c->txq_first = next;
		if (!next)
			c->txq_last = NULL;
		c->txq_bytes -= bytes;
	}
}

/* Send a control message when credits or rendezvous acks wait and no
 * queued message can carry them. */
static void ctrl_maybe(struct rdma_conn *c)
{
	struct rdma_wire w = { .type = RW_CTRL };
	uint32_t thresh = c->credits / 2 ? c->credits / 2 : 1;
	struct ibv_sge sge;
	struct ibv_send_wr wr = { 0 }, *bad;
	unsigned slot;
	uint8_t *buf;
	int rc;

	if (c->state != RC_CONNECTED)
		return;
	if (c->unreported < thresh && !c->rdv_ack_pending)
		return;
	/* The last credit is only for a message that returns credits. */
	if (c->peer_credits < (c->unreported ? 1 : 2) || c->sq_free < 1 ||
	    !c->ctrl_free)
		return;
	slot = (unsigned)__builtin_ctz(c->ctrl_free);
	buf = c->ctrl_buf + slot * RDMA_WIRE_SIZE;
	w.credits = c->unreported;
	w.rdv_acks = c->rdv_ack_pending;
	rdma_wire_put(buf, &w);
	sge.addr = (uintptr_t)buf;
	sge.length = RDMA_WIRE_SIZE;
	sge.lkey = c->spool_mr->lkey;
	wr.wr_id = ((uint64_t)slot << 3) | WR_CTRL;
	wr.opcode = IBV_WR_SEND;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.send_flags = IBV_SEND_SIGNALED;
	rc = ibv_post_send(c->qp, &wr, &bad);
	if (rc) {
		fail_errno(c, -ECONNRESET, "ibv_post_send (control): %s",
			   strerror(rc));
		return;
	}
	c->ctrl_free &= ~(1u << slot);
	c->unreported = 0;
	c->rdv_ack_pending = 0;
	c->peer_credits--;
	c->sq_free--;
	c->n_ctrl_sent++;
}

/* ---- receiving ------------------------------------------------------------ */

/* The receiving thread has something to do: take the first message, or
 * ask the sink for the first message's rendezvous data. */
static int rx_head_actionable(const struct rdma_conn *c)
{
	const struct rdma_rx *rx = c->rxq_first;

	return rx && (rx->state == RX_READY ||
		      (rx->state == RX_NEED_DEST && c->sink));
}

/*
 * Bring the user's fd (ufd[0]) and the blocking receiver in line with the
 * state: readable while the first message is ready or the connection
 * failed; not writable while messages are queued (its send buffer is
 * filled, the bytes parked in ufd[1]'s receive queue), writable otherwise.
 * Lock held.
 */
static void ufd_update(struct rdma_conn *c)
{
	int failed = c->state == RC_FAILED;
	int rd = failed || rx_head_actionable(c);
	int full = !failed && c->txq_first != NULL;
	char buf[256];

	if (rd)
		pthread_cond_broadcast(&c->rx_cond);
	if (c->ufd[0] < 0)
		return;
	if (rd && !c->ufd_readable) {
		if (write(c->ufd[1], "r", 1) == 1)
			c->ufd_readable = 1;
	} else if (!rd && c->ufd_readable) {
		if (read(c->ufd[0], buf, 1) == 1)
			c->ufd_readable = 0;
	}
	if (full && !c->ufd_full) {
		memset(buf, 0, sizeof(buf));
		while (write(c->ufd[0], buf, sizeof(buf)) > 0)
			;
		c->ufd_full = 1;
	} else if (!full && c->ufd_full) {
		while (read(c->ufd[1], buf, sizeof(buf)) > 0)
			;
		c->ufd_full = 0;
	}
}

static struct rdma_rx *rx_alloc(struct rdma_conn *c)
{
	struct rdma_rx *rx = c->rx_free;

	if (rx) {
		c->rx_free = rx->next;
		rx->next = NULL;
		return rx;
	}
	return calloc(1, sizeof(*rx));
}

static int proto_err(struct rdma_conn *c, int err, const char *what)
{
	return fail_errno(c, err, "bad message from peer: %s", what);
}

/* Acknowledgements of our rendezvous messages: the peer has READ them. */
static int rdv_acked(struct rdma_conn *c, uint32_t n)
{
	struct rdma_tx *tx;

	while (n--) {
		tx = c->rdv_first;
		if (!tx)
			return proto_err(c, -EPROTO, "unexpected rendezvous ack");
		c->rdv_first = tx->next;
		if (!c->rdv_first)
			c->rdv_last = NULL;
		tx_reap(c, tx, 0);
	}
	return 0;
}

/* Credits and rendezvous acks the peer returned, in any message. */
static int rx_take_flow(struct rdma_conn *c, const struct rdma_wire *w)
{
	if (w->credits > c->peer_credits_max ||
	    (uint64_t)c->peer_credits + w->credits > c->peer_credits_max)
		return proto_err(c, -EPROTO, "too many credits returned");
	c->peer_credits += (int)w->credits;
	if (w->rdv_acks && rdv_acked(c, w->rdv_acks))
		return -EPROTO;
	return 0;
}

/*
 * Reply buffers: a request's advert is kept for its reply (server); a
 * reply ends ours (client), and an RDMA-written one must have landed in
 * a buffer we advertised that holds it (*written: where).
 */
static int rx_adverts(struct rdma_conn *c, const struct rdma_wire_msg *pm,
		      void **written)
{
	const struct orfa_hdr *h = &pm->hdr;
	struct rdma_adv_mine *mine = NULL;
	int ok = 1;

	*written = NULL;
	if ((pm->w.flags & RWF_ADVERT) && !(h->flags & ORFA_F_REPLY))
		adv_peer_add(c, h->req_id, &pm->adv);
	if (h->flags & ORFA_F_REPLY)
		mine = adv_mine_take(c, h->req_id);
	if (pm->w.flags & RWF_WRITTEN) {
		ok = mine && mine->len >= h->data_len;
		if (ok)
			*written = mine->buf;
	}
	if (mine) {
		/* The peer has answered: it will not write there again. */
		rdma_mr_unpin(mine->mr);
		free(mine);
	}
	return ok ? 0 : proto_err(c, -EPROTO, "bad data segment description");
}

/* Keep the receive buffer for the caller and post a spare in its place,
 * or, when the caller holds all spares, copy it out and post it again. */
static int rx_keep_buffer(struct rdma_conn *c, struct rdma_rx *rx,
			  struct rdma_rslot *s, uint32_t len)
{
	if (c->spare) {
		struct rdma_rslot *sp = c->spare;

		c->spare = sp->next;
		rx->slot = s;
		if (post_recv(c, sp)) {
			rx_free_item(c, rx);
			return -ECONNRESET;
		}
	} else {
		rx->copy = malloc(len);
		if (!rx->copy) {
			rx_free_item(c, rx);
			return fail_errno(c, -ENOMEM, "out of memory receiving");
		}
		memcpy(rx->copy, s->buf, len);
		c->n_copied_rx++;
		if (post_recv(c, s)) {
			rx_free_item(c, rx);
			return -ECONNRESET;
		}
	}
	c->unreported++;
	return 0;
}

static void rx_queue(struct rdma_conn *c, struct rdma_rx *rx)
{
	rx->next = NULL;
	if (c->rxq_last)
		c->rxq_last->next = rx;
	else
		c->rxq_first = rx;
	c->rxq_last = rx;
	c->n_recv++;
}

/*
 * A receive completed into slot s (len bytes): parse it (every length
 * checked before anything is allocated), take the credits and acks it
 * returns, settle reply-buffer adverts, then keep the buffer and queue
 * the message for the caller.  Lock held.
 */
static int on_recv(struct rdma_conn *c, struct rdma_rslot *s, uint32_t len)
{
	struct rdma_wire_msg pm;
	struct rdma_rx *rx;
	const uint8_t *p;
	void *written;
	int rc, perr;

	perr = rdma_wire_parse(s->buf, len, c->max_body, c->max_data, &pm);
	if (!pm.wire_ok)
		return proto_err(c, perr, pm.why);
	rc = rx_take_flow(c, &pm.w);
	if (rc)
		return rc;
	if (perr)
		return proto_err(c, perr, pm.why);
	if (pm.w.type == RW_CTRL) {
		c->unreported++;
		return post_recv(c, s);
	}
	rc = rx_adverts(c, &pm, &written);
	if (rc)
		return rc;

	rx = rx_alloc(c);
	if (!rx)
		return fail_errno(c, -ENOMEM, "out of memory receiving");
	rx->hdr = pm.hdr;
	rx->flags = pm.w.flags;
	rx->head_len = pm.w.head_len;
	rx->data = written;
	rx->state = RX_READY;
	if (pm.w.flags & RWF_RDV) {	/* with data: rdma_wire_parse */
		rx->nseg = pm.w.nseg;
		memcpy(rx->seg, pm.seg, sizeof(rx->seg));
		rx->state = RX_NEED_DEST;
	}
	rc = rx_keep_buffer(c, rx, s, len);
	if (rc)
		return rc;
	p = rx->slot ? rx->slot->buf : rx->copy;
	rx->head = (uint8_t *)p + pm.head_off;
	if ((pm.w.flags & RWF_INLINE) && pm.hdr.data_len)
		rx->inl = (uint8_t *)p + pm.data_off;
	rx_queue(c, rx);
	return 0;
}

/* Post the READs of a rendezvous message whose destination is known. */
static int rx_post_reads(struct rdma_conn *c, struct rdma_rx *rx)
{
	struct ibv_send_wr wr[RDMA_MAX_SEG], *bad;
	struct ibv_sge sge[RDMA_MAX_SEG];
	uint8_t *dst;
	uint32_t lkey;
	int rc;

	if (c->sq_free < rx->nseg)
		return -EAGAIN;
	if (rx->sink_mr) {
		dst = rx->sink;
		lkey = rx->sink_mr->lkey;
	} else {
		dst = rx->landing->addr;
		lkey = rx->landing->mr->lkey;
	}
	memset(wr, 0, sizeof(wr));
	for (unsigned i = 0; i < rx->nseg; i++) {
		sge[i] = (struct ibv_sge){
			.addr = (uintptr_t)dst, .length = rx->seg[i].len,
			.lkey = lkey,
		};
		wr[i].opcode = IBV_WR_RDMA_READ;
		wr[i].sg_list = &sge[i];
		wr[i].num_sge = 1;
		wr[i].wr.rdma.remote_addr = rx->seg[i].addr;
		wr[i].wr.rdma.rkey = rx->seg[i].rkey;
		wr[i].next = i + 1 < rx->nseg ? &wr[i + 1] : NULL;
		dst += rx->seg[i].len;
	}
	/* Only the last READ is signaled; READs complete in order. */
	wr[rx->nseg - 1].wr_id = (uintptr_t)rx | WR_READ;
	wr[rx->nseg - 1].send_flags = IBV_SEND_SIGNALED;
	rc = ibv_post_send(c->qp, wr, &bad);
	if (rc)
		return fail_errno(c, -ECONNRESET, "ibv_post_send (read): %s",
				  strerror(rc));
	c->sq_free -= rx->nseg;
	rx->read_wrs = rx->nseg;
	rx->state = RX_READING;
	return 0;
}

/*
 * Choose the destination of a rendezvous message (the caller's sink, else
 * a transport buffer) and register it.  The lock is dropped around the
 * sink resolver (it may take client locks that are held around sends)
 * and the registration; rx is in RX_RESOLVING meanwhile, so nobody else
 * touches it.  Returns 0, or the error that failed the connection.
 */
static int rx_resolve(struct rdma_conn *c, struct rdma_rx *rx,
		      orfa_sink_fn sink, void *arg)
{
	void *dst = NULL;
	struct ibv_mr *mr = NULL;
	struct rdma_rbuf *rb = NULL;
	int err = 0;

	rx->state = RX_RESOLVING;
	pthread_mutex_unlock(&c->lock);
	if (sink)
		dst = sink(arg, &rx->hdr);
	if (dst) {
		mr = rdma_mr_pin(c->dev, dst, rx->hdr.data_len,
				 IBV_ACCESS_LOCAL_WRITE);
		if (!mr)
			err = errno;
	}
	if (!mr) {
		rb = rdma_rbuf_get(c->dev, rx->hdr.data_len);
		err = rb ? 0 : errno;
	}
	pthread_mutex_lock(&c->lock);
	rx->sink = dst;
	rx->sink_mr = mr;
	rx->landing = rb;
	rx->state = RX_NEED_READ;
	if (!mr && !rb)
		return fail_errno(c, -ENOMEM, "cannot register %u bytes for a "
				  "rendezvous: %s", rx->hdr.data_len,
				  strerror(err));
	return 0;
}

/*
 * Progress thread: post READs for rendezvous messages, in arrival order.
 * Without a sink resolver it also chooses their destinations (transport
 * buffers), reading ahead of the caller.  With one, a message's sink is
 * asked for by the receiving thread, inside the recv call that finds the
 * message first in line (rx_deliver), as TCP does: the client's resolver
 * relies on that order (one sink handed out at a time, for the message
 * its receiver handles next).
 */
static void rx_advance(struct rdma_conn *c)
{
	struct rdma_rx *rx;

	for (rx = c->rxq_first; rx && c->state == RC_CONNECTED; rx = rx->next) {
		if (rx->state == RX_RESOLVING)
			return;
		if (rx->state == RX_NEED_DEST) {
			if (c->sink || rx_resolve(c, rx, NULL, NULL))
				return;
		}
		if (rx->state == RX_NEED_READ && rx_post_reads(c, rx))
			return;	/* no room: retried after completions */
	}
}

static void on_read_done(struct rdma_conn *c, struct rdma_rx *rx)
{
	c->sq_free += rx->read_wrs;
	rx->read_wrs = 0;
	if (rx->sink_mr) {
		rdma_mr_unpin(rx->sink_mr);
		rx->sink_mr = NULL;
		rx->data = rx->sink;
	} else if (rx->sink) {
		/* The sink could not be registered: copy from the landing
		 * buffer so the caller still finds the data in its sink. */
		memcpy(rx->sink, rx->landing->addr, rx->hdr.data_len);
		rx->data = rx->sink;
	} else {
		rx->data = rx->landing->addr;
	}
	rx->state = RX_READY;
	c->rdv_ack_pending++;
}

/* ---- completions and events ---------------------------------------------- */

static const char *wc_op(const struct ibv_wc *wc)
{
	switch (wc->wr_id & WR_TAG_MASK) {
	case WR_RECV: return "receive";
	case WR_SEND: return "send";
	case WR_CTRL: return "control send";
	case WR_READ: return "RDMA read";
	default: return "?";
	}
}

static void on_wc(struct rdma_conn *c, const struct ibv_wc *wc)
{
	unsigned tag = wc->wr_id & WR_TAG_MASK;
	void *obj = (void *)(uintptr_t)(wc->wr_id & ~(uint64_t)WR_TAG_MASK);

	/* Status first: after an error only resources are reclaimed. */
	if (wc->status != IBV_WC_SUCCESS && c->state == RC_CONNECTED) {
		int err = wc->status == IBV_WC_WR_FLUSH_ERR ? -ECONNRESET :
			  wc->status == IBV_WC_RETRY_EXC_ERR ? -ETIMEDOUT :
			  -ECONNRESET;

		fail_errno(c, err, "%s failed: %s (vendor error %u)",
			   wc_op(wc), ibv_wc_status_str(wc->status),
			   wc->vendor_err);
	}
	switch (tag) {
	case WR_RECV: {
		struct rdma_rslot *s = obj;

		if (wc->status != IBV_WC_SUCCESS || c->state != RC_CONNECTED) {
			s->next = c->spare;	/* not posted any more */
			c->spare = s;
			break;
		}
		on_recv(c, s, wc->byte_len);
		break;
	}
	case WR_SEND: {
		struct rdma_sslot *s = obj;

		c->sq_free += s->wrs;
		s->wrs = 0;
		if (s->tx) {		/* TX_WRITE: data was sent */
			tx_reap(c, s->tx, 0);
			s->tx = NULL;
		}
		s->next = c->sfree;
		c->sfree = s;
		break;
	}
	case WR_CTRL:
		c->sq_free++;
		c->ctrl_free |= 1u << (wc->wr_id >> 3);
		break;
	case WR_READ: {
		struct rdma_rx *rx = obj;

		if (wc->status != IBV_WC_SUCCESS || c->state != RC_CONNECTED) {
			c->sq_free += rx->read_wrs;
			rx->read_wrs = 0;
			rx->state = RX_DEAD;
			break;
		}
		on_read_done(c, rx);
		break;
	}
	default:
		log_err("rdma: %s: completion with unknown id", c->base.peer);
		break;
	}
}

void rdma_handle_cm_event(struct rdma_conn *c, enum rdma_cm_event_type ev,
			  int status)
{
	switch (ev) {
	case RDMA_CM_EVENT_DISCONNECTED:
		fail_errno(c, -ECONNRESET, "peer disconnected");
		break;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		fail_errno(c, -ECONNRESET, "RDMA device removed");
		break;
	case RDMA_CM_EVENT_TIMEWAIT_EXIT:
	case RDMA_CM_EVENT_ESTABLISHED:
		break;
	default:
		log_debug("rdma: %s: CM event %s (status %d)", c->base.peer,
			  rdma_event_str(ev), status);
		break;
	}
}

/* Take every completion now in the CQ.  0, or -EIO if polling failed. */
static int cq_drain(struct rdma_conn *c)
{
	struct ibv_wc wc[POLL_BATCH];
	int n;

	do {
		n = ibv_poll_cq(c->cq, POLL_BATCH, wc);
		if (n < 0)
			return fail_errno(c, -EIO, "ibv_poll_cq failed");
		for (int i = 0; i < n; i++)
			on_wc(c, &wc[i]);
	} while (n > 0);
	return 0;
}

static void cm_poll(struct rdma_conn *c)
{
	struct rdma_cm_event *e;

	while (rdma_get_cm_event(c->cm_ch, &e) == 0) {
		enum rdma_cm_event_type ev = e->event;
		int status = e->status;

		rdma_ack_cm_event(e);
		/* A message the peer sent before disconnecting may have
		 * completed after our last poll: take it in first (it
		 * stays deliverable, as data before a TCP FIN). */
		if (ev == RDMA_CM_EVENT_DISCONNECTED && c->state == RC_CONNECTED)
			cq_drain(c);
		rdma_handle_cm_event(c, ev, status);
		if (ev == RDMA_CM_EVENT_DISCONNECTED && !c->disc_sent) {
			rdma_disconnect(c->id);	/* answer the DREQ */
			c->disc_sent = 1;
		}
	}
}

/*
 * One progress pass.  Caller holds the lock (rx_advance drops it while
 * calling the sink resolver).  Returns 0, or the error of a failed
 * connection.
 */
int rdma_io_progress(struct rdma_conn *c)
{
	struct ibv_cq *ecq;
	void *ectx;
	unsigned nev = 0;
	int armed = 0;

	if (c->progress_busy)
		return 0;
	c->progress_busy = 1;
	while (ibv_get_cq_event(c->comp_ch, &ecq, &ectx) == 0)
		nev++;
	if (nev)
		ibv_ack_cq_events(c->cq, nev);
	for (;;) {
		if (cq_drain(c) || armed)
			break;
		/* Arm, then poll once more: a completion that arrived
		 * between the last poll and arming raises no event. */
		if (ibv_req_notify_cq(c->cq, 0)) {
			fail_errno(c, -EIO, "ibv_req_notify_cq failed");
			break;
		}
		armed = 1;
	}
	cm_poll(c);
	rx_advance(c);
	tx_progress(c);
	ctrl_maybe(c);
	ufd_update(c);
	c->progress_busy = 0;
	return c->state == RC_CONNECTED ? 0 : conn_err(c);
}

/* What a thread that may not call verbs left to this one (lock held):
 * the QP of a failed connection to the error state, the disconnect a
 * shutdown asked for. */
static void io_deferred(struct rdma_conn *c)
{
	struct ibv_qp_attr attr = { .qp_state = IBV_QPS_ERR };

	if (c->state == RC_FAILED && c->qp && !c->qp_err) {
		if (ibv_modify_qp(c->qp, &attr, IBV_QP_STATE))
			log_warn("rdma: %s: cannot move QP to error state",
				 c->base.peer);
		c->qp_err = 1;
	}
	if (c->disc_wanted && !c->disc_sent) {
		rdma_disconnect(c->id);
		c->disc_sent = 1;
	}
}

/* The progress owner, in both modes.  Ends when destroy sets stop. */
void *rdma_io_thread(void *arg)
{
	struct rdma_conn *c = arg;
	struct epoll_event ev[4];
	uint64_t v;

	for (;;) {
		int n = epoll_wait(c->epfd, ev, 4, -1);

		if (n < 0 && errno != EINTR) {
			log_err("rdma: epoll_wait: %s", strerror(errno));
			break;
		}
		pthread_mutex_lock(&c->lock);
		if (c->stop) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		if (read(c->wake_efd, &v, sizeof(v)) < 0) {
			/* nothing to clear */
		}
		rdma_io_progress(c);
		io_deferred(c);
		pthread_mutex_unlock(&c->lock);
		rdma_io_reap(c);
	}
	/* Fail what is pending (done() runs in the destroyer's reap) and
	 * destroy the verbs objects here, not on the destroying thread. */
	pthread_mutex_lock(&c->lock);
	rdma_io_fail(c, -ENOTCONN, "connection closed");
	io_deferred(c);
	pthread_mutex_unlock(&c->lock);
	rdma_conn_release_verbs(c);
	return NULL;
}

/* ---- the ops ------------------------------------------------------------------ */

static int tx_add_seg(struct tx_seg *sg, void *addr, size_t len,
		      struct ibv_mr *mr)
{
	sg->addr = addr;
	sg->len = (uint32_t)len;
	sg->lkey = mr->lkey;
	sg->rkey = mr->rkey;
	return 0;
}

/* pread exactly len bytes; zero-fill what the file does not have (like
 * the TCP transport, so the framing the header promised holds). */
static int read_file(int fd, off_t off, uint8_t *dst, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = pread(fd, dst + got, len - got, off + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got < len)
		memset(dst + got, 0, len - got);
	return 0;
}

/* Copy the data segment into a bounce buffer. */
static int tx_bounce(struct rdma_conn *c, struct rdma_tx *tx,
		     const struct orfa_txmsg *m)
{
	uint8_t *p;
	int rc = 0;

	tx->bounce = rdma_rbuf_get(c->dev, tx->data_len);
	if (!tx->bounce)
		return -errno;
	p = tx->bounce->addr;
	if (m->iov) {
		for (int i = 0; i < m->iovcnt; i++) {
			memcpy(p, m->iov[i].iov_base, m->iov[i].iov_len);
			p += m->iov[i].iov_len;
		}
	} else {
		rc = read_file(m->fd, m->fd_off, p, tx->data_len);
	}
	tx->nseg = 1;
	tx_add_seg(&tx->seg[0], tx->bounce->addr, tx->data_len,
		   tx->bounce->mr);
	return rc;
}

/* Register the caller's iovecs for the peer to READ (or for us to
 * WRITE from); falls back to a bounce copy. */
static int tx_register(struct rdma_conn *c, struct rdma_tx *tx,
		       const struct orfa_txmsg *m, int access)
{
	int n = 0;

	if (!m->iov)
		return tx_bounce(c, tx, m);
	for (int i = 0; i < m->iovcnt; i++)
		if (m->iov[i].iov_len)
			n++;
	if (n > (int)RDMA_MAX_SEG)
		return tx_bounce(c, tx, m);
	for (int i = 0; i < m->iovcnt; i++) {
		struct ibv_mr *mr;

		if (!m->iov[i].iov_len)
			continue;
		if (m->iov[i].iov_len > UINT32_MAX)
			goto fallback;
		mr = rdma_mr_pin(c->dev, m->iov[i].iov_base,
				 m->iov[i].iov_len, access);
		if (!mr)
			goto fallback;
		tx->mr[tx->nmr++] = mr;
		tx_add_seg(&tx->seg[tx->nseg++], m->iov[i].iov_base,
			   m->iov[i].iov_len, mr);
	}
	return 0;
fallback:
	for (unsigned i = 0; i < tx->nmr; i++)
		rdma_mr_unpin(tx->mr[i]);
	tx->nmr = 0;
	tx->nseg = 0;
	return tx_bounce(c, tx, m);
}

static int send_prepare(struct rdma_conn *c, const struct orfa_txmsg *m,
			struct rdma_tx **out)
{
	struct orfa_hdr h;
	struct rdma_tx *tx;
	struct rdma_seg target;
	size_t data_len, cap, need, niov;
	int has_target = 0, rc;
	uint32_t adv_len = 0;

	*out = NULL;
	rc = orfa_tp_txmsg_check(m, &data_len, &h);
	if (rc)
		return rc;

	/* Advertise the reply buffer when the reply may be too large to
	 * come inline: the peer sends inline what fits the smaller of the
	 * two sides' receive buffers (send_cap), else RDMA-WRITEs it here. */
	if (m->reply_buf && m->reply_buf_len &&
	    m->reply_buf_len + RDMA_WIRE_SIZE + ORFA_HDR_SIZE > send_cap(c) &&
	    m->reply_buf_len <= UINT32_MAX)
		adv_len = RDMA_SEG_SIZE;
	need = RDMA_WIRE_SIZE + adv_len + RDMA_MAX_SEG * RDMA_SEG_SIZE +
	       rdma_pad8((uint32_t)m->head_len);
	if (need > send_cap(c))
		return -EMSGSIZE;

	/* One block: the struct, room for the iovec array (aligned, right
	 * after the struct), then the head copy. */
	niov = m->iov ? (size_t)m->iovcnt : 0;
	tx = calloc(1, sizeof(*tx) + niov * sizeof(struct iovec) +
		    m->head_len);
	if (!tx)
		return -ENOMEM;
	tx->head = (uint8_t *)((struct iovec *)(tx + 1) + niov);
	memcpy(tx->head, m->head, m->head_len);
	tx->head_len = (uint32_t)m->head_len;
	tx->req_id = h.req_id;
	tx->data_len = data_len;
	tx->done = m->done;
	tx->done_arg = m->done_arg;

	if (adv_len) {
		tx->adv = calloc(1, sizeof(*tx->adv));
		if (tx->adv) {
			tx->adv->mr = rdma_mr_pin(c->dev, m->reply_buf,
						  m->reply_buf_len,
						  IBV_ACCESS_LOCAL_WRITE |
						  IBV_ACCESS_REMOTE_WRITE);
			if (!tx->adv->mr) {
				free(tx->adv);
				tx->adv = NULL;	/* reply comes by rendezvous */
				adv_len = 0;
			} else {
				tx->adv->req_id = h.req_id;
				tx->adv->buf = m->reply_buf;
				tx->adv->len = m->reply_buf_len;
			}
		} else {
			adv_len = 0;
		}
	}

	/* A reply to a request that advertised a buffer: forget the advert
	 * whatever happens, and use it if the data does not fit inline. */
	if (h.flags & ORFA_F_REPLY) {
		pthread_mutex_lock(&c->lock);
		has_target = adv_peer_take(c, h.req_id, &target);
		pthread_mutex_unlock(&c->lock);
	}

	cap = send_cap(c) - RDMA_WIRE_SIZE - adv_len - rdma_pad8(tx->head_len);
	if (data_len == 0 || data_len <= cap) {
		tx->kind = TX_INLINE;
		if (data_len && m->iov) {
			tx->iov = (struct iovec *)(tx + 1);
			memcpy(tx->iov, m->iov,
			       (size_t)m->iovcnt * sizeof(struct iovec));
			tx->iovcnt = m->iovcnt;
		} else if (data_len) {
			tx->inl = malloc(data_len);
			rc = tx->inl ? read_file(m->fd, m->fd_off, tx->inl,
						 data_len) : -ENOMEM;
			if (rc)
				goto fail;
			/* The file is no longer needed. */
			if (tx->done)
				tx->done(tx->done_arg);
			tx->done = NULL;
		}
	} else {
		int write_it = has_target && target.len >= data_len;

		tx->kind = write_it ? TX_WRITE : TX_RDV;
		if (write_it)
			tx->target = target;
		rc = tx_register(c, tx, m, write_it ? 0 :
				 IBV_ACCESS_REMOTE_READ);
		if (rc)
			goto fail;
		if (tx->bounce && tx->done) {
			/* Copied: the caller's memory or file is free. */
			tx->done(tx->done_arg);
			tx->done = NULL;
		}
	}
	*out = tx;
	return 0;
fail:
	tx->done = NULL;	/* the caller calls done for a failed send */
	tx_release(c, tx);
	return rc;
}

int rdma_send(struct orfa_conn *oc, const struct orfa_txmsg *m)
{
	struct rdma_conn *c = rdma_c(oc);
	struct send_ticket ticket = { 0 };
	struct rdma_tx *tx;
	struct timespec dl;
	int rc;

	rc = send_prepare(c, m, &tx);
	if (rc) {
		if (m->done)
			m->done(m->done_arg);
		return rc;
	}
	if (!c->nonblock && c->send_timeout_ms > 0) {
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += c->send_timeout_ms / 1000;
		dl.tv_nsec += (long)(c->send_timeout_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&c->lock);
	if (c->state != RC_CONNECTED) {
		rc = conn_err(c);
		tx_reap(c, tx, rc);
		goto out;
	}
	if (!c->nonblock)
		tx->ticket = &ticket;
	tx->next = NULL;
	if (c->txq_last)
		c->txq_last->next = tx;
	else
		c->txq_first = tx;
	c->txq_last = tx;
	c->txq_bytes += tx->head_len + tx->data_len;
	if (orfa_thread_creds_changed()) {
		uint64_t one = 1;

		/* The kernel would refuse this thread's ibv_post_send on
		 * some devices (transport.h): the progress thread posts. */
		if (write(c->wake_efd, &one, sizeof(one)) < 0)
			log_warn("rdma: cannot wake the progress thread");
	} else {
		tx_progress(c);
	}
	ufd_update(c);
	if (c->nonblock) {
		rc = c->state == RC_CONNECTED ? 0 : conn_err(c);
		goto out;
	}
	while (!ticket.done) {
		if (c->send_timeout_ms > 0) {
			if (pthread_cond_timedwait(&c->tx_cond, &c->lock, &dl) ==
			    ETIMEDOUT && !ticket.done) {
				/* Still queued (not posted): take it back. */
				struct rdma_tx **pp = &c->txq_first, *prev = NULL;

				for (; *pp && *pp != tx; pp = &(*pp)->next)
					prev = *pp;
				if (*pp) {
					*pp = tx->next;
					if (c->txq_last == tx)
						c->txq_last = prev;
					c->txq_bytes -= tx->head_len +
							tx->data_len;
					tx_reap(c, tx, -ETIMEDOUT);
				}
				break;
			}
		} else {
			pthread_cond_wait(&c->tx_cond, &c->lock);
		}
	}
	rc = ticket.done ? ticket.err : -ETIMEDOUT;
out:
	pthread_mutex_unlock(&c->lock);
	rdma_io_reap(c);
	return rc;
}

static void rx_fill(struct rdma_rx *rx, struct orfa_rxmsg *m)
{
	m->hdr = rx->hdr;
	m->head = rx->head;
	m->head_len = rx->head_len;
	m->body = rx->head + ORFA_HDR_SIZE;
	m->data = NULL;
	m->data_in_sink = 0;
	m->tp_priv = rx;
	if (rx->hdr.data_len == 0)
		return;
	if (rx->flags & RWF_WRITTEN) {
		m->data = rx->data;
		m->data_in_sink = 1;
	} else if (rx->flags & RWF_RDV) {
		m->data = rx->data;
		m->data_in_sink = rx->sink != NULL;
	} else {
		m->data = rx->inl;
	}
}

/* Hand out the first message if it is ready.  Lock held; may drop it to
 * call the sink resolver for inline data. */
static int rx_deliver(struct rdma_conn *c, struct orfa_rxmsg *m)
{
	struct rdma_rx *rx = c->rxq_first;
	orfa_sink_fn sink;
	void *arg, *dst;

	if (rx && rx->state == RX_NEED_DEST && c->sink) {
		/* Ask the sink now, as TCP does inside recv; the READs
		 * complete later. */
		if (rx_resolve(c, rx, c->sink, c->sink_arg) == 0 &&
		    rx->state == RX_NEED_READ) {
			uint64_t one = 1;

			if (rdma_thread_may_verbs())
				rx_post_reads(c, rx); /* -EAGAIN: progress
						       * retries */
			else if (write(c->wake_efd, &one, sizeof(one)) < 0)
				log_warn("rdma: cannot wake the progress "
					 "thread");
		}
		ufd_update(c);
		return -EAGAIN;
	}
	if (!rx || rx->state != RX_READY)
		return -EAGAIN;
	c->rxq_first = rx->next;
	if (!c->rxq_first)
		c->rxq_last = NULL;
	rx->next = NULL;
	c->lent++;
	ufd_update(c);
	rx_fill(rx, m);
	if ((rx->flags & RWF_INLINE) && rx->hdr.data_len && c->sink) {
		sink = c->sink;
		arg = c->sink_arg;
		pthread_mutex_unlock(&c->lock);
		dst = sink(arg, &rx->hdr);
		if (dst) {
			memcpy(dst, rx->inl, rx->hdr.data_len);
			m->data = dst;
			m->data_in_sink = 1;
		}
		pthread_mutex_lock(&c->lock);
	}
	return 0;
}

int rdma_recv(struct orfa_conn *oc, struct orfa_rxmsg *m)
{
	struct rdma_conn *c = rdma_c(oc);
	int rc;

	pthread_mutex_lock(&c->lock);
	if (c->nonblock) {
		rc = rx_deliver(c, m);
		if (rc == -EAGAIN && (c->state != RC_CONNECTED || c->shut))
			rc = conn_err(c);
	} else {
		for (;;) {
			rc = rx_deliver(c, m);
			if (rc != -EAGAIN)
				break;
			if (c->state != RC_CONNECTED || c->shut) {
				rc = conn_err(c);
				break;
			}
			if (!rx_head_actionable(c))
				pthread_cond_wait(&c->rx_cond, &c->lock);
		}
	}
	pthread_mutex_unlock(&c->lock);
	rdma_io_reap(c);
	return rc;
}

void rdma_recv_done(struct orfa_conn *oc, struct orfa_rxmsg *m)
{
	struct rdma_conn *c = rdma_c(oc);
	struct rdma_rx *rx = m->tp_priv;

	if (!rx)
		return;
	m->tp_priv = NULL;
	pthread_mutex_lock(&c->lock);
	c->lent--;
	rx_free_item(c, rx);

	pthread_mutex_unlock(&c->lock);
}

int rdma_flush(struct orfa_conn *oc)
{
	struct rdma_conn *c = rdma_c(oc);
	int rc = 0;

	/* The progress thread posts queued messages; nothing to push. */
	pthread_mutex_lock(&c->lock);
	if (c->state != RC_CONNECTED)
		rc = conn_err(c);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int rdma_want_write(struct orfa_conn *oc)
{
	struct rdma_conn *c = rdma_c(oc);
	int r;

	pthread_mutex_lock(&c->lock);
	r = c->state == RC_CONNECTED && c->txq_first != NULL;
	pthread_mutex_unlock(&c->lock);
	return r;
}

size_t rdma_queued_bytes(struct orfa_conn *oc)
{
	struct rdma_conn *c = rdma_c(oc);
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->txq_bytes;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void rdma_conn_counters(struct orfa_conn *oc, unsigned long out[6])
{
	struct rdma_conn *c = rdma_c(oc);

	pthread_mutex_lock(&c->lock);
	out[0] = c->n_sent;
	out[1] = c->n_recv;
	out[2] = c->n_ctrl_sent;
	out[3] = c->n_rdv_sent;
	out[4] = c->n_write_sent;
	out[5] = c->n_copied_rx;
	pthread_mutex_unlock(&c->lock);
}
