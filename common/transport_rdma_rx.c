/*
 * transport_rdma_rx.c - the receive path of the RDMA transport: a
 * completed receive is parsed (rdma_wire_parse: every length checked
 * before anything is allocated), its credits and acks taken, reply-buffer
 * adverts settled, and the message queued with its receive buffer lent
 * to the caller (or copied out when the caller holds every spare, so the
 * receive is posted again at once and the peer never waits for our
 * caller); rendezvous data is RDMA-READ into the caller's sink or a
 * transport buffer; recv hands messages out in arrival order.
 * Completions are taken by transport_rdma_progress.c, which calls in
 * here; nothing here sends except through the posted READs.
 */
#include "transport_rdma_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

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
	return rdma_fail(c, err, "bad message from peer: %s", what);
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
		/* The peer has read it: its rkeys die now, under the lock,
		 * before anything else of this message is looked at. */
		rdma_tx_revoke(tx);
		rdma_tx_reap(c, tx, 0);
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
	if ((pm->w.flags & RWF_ADVERT) && !(h->flags & ORFA_F_REPLY)) {
		rdma_adv_peer_add(c, h->req_id, &pm->adv);
		c->last_peer_adv = pm->adv;
	}
	if (h->flags & ORFA_F_REPLY)
		mine = rdma_adv_mine_take(c, h->req_id);
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
		if (rdma_post_recv(c, sp)) {
			rdma_rx_free(c, rx);
			return -ECONNRESET;
		}
	} else {
		rx->copy = malloc(len);
		if (!rx->copy) {
			rdma_rx_free(c, rx);
			return rdma_fail(c, -ENOMEM, "out of memory receiving");
		}
		memcpy(rx->copy, s->buf, len);
		c->n_copied_rx++;
		if (rdma_post_recv(c, s)) {
			rdma_rx_free(c, rx);
			return -ECONNRESET;
		}
	}
	c->unreported++;
	return 0;
}

static void rx_queue(struct rdma_conn *c, struct rdma_rx *rx)
{
	RDMA_QUEUE_PUSH(c->rxq_first, c->rxq_last, rx);
	c->n_recv++;
}

/*
 * A receive completed into slot s (len bytes): parse it (every length
 * checked before anything is allocated), take the credits and acks it
 * returns, settle reply-buffer adverts, then keep the buffer and queue
 * the message for the caller.  Lock held.
 */
int rdma_on_recv(struct rdma_conn *c, struct rdma_rslot *s, uint32_t len)
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
		return rdma_post_recv(c, s);
	}
	rc = rx_adverts(c, &pm, &written);
	if (rc)
		return rc;

	rx = rx_alloc(c);
	if (!rx)
		return rdma_fail(c, -ENOMEM, "out of memory receiving");
	rx->hdr = pm.hdr;
	rx->flags = pm.w.flags;
	rx->head_len = pm.w.head_len;
	rx->data = written;
	rx->state = RX_READY;
	if (pm.w.flags & RWF_RDV) {	/* with data: rdma_wire_parse */
		rx->nseg = pm.w.nseg;
		memcpy(rx->seg, pm.seg, sizeof(rx->seg));
		c->last_peer_rdv = pm.seg[0];
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
		return rdma_fail(c, -ECONNRESET, "ibv_post_send (read): %s",
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
		mr = rdma_mr_pin(&c->mem, dst, rx->hdr.data_len,
				 IBV_ACCESS_LOCAL_WRITE);
		if (!mr)
			err = errno;
	}
	if (!mr) {
		rb = rdma_rbuf_get(&c->mem, rx->hdr.data_len);
		err = rb ? 0 : errno;
	}
	pthread_mutex_lock(&c->lock);
	rx->sink = dst;
	rx->sink_mr = mr;
	rx->landing = rb;
	rx->state = RX_NEED_READ;
	if (!mr && !rb)
		return rdma_fail(c, -ENOMEM, "cannot register %u bytes for a "
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
void rdma_rx_advance(struct rdma_conn *c)
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

void rdma_on_read_done(struct rdma_conn *c, struct rdma_rx *rx)
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
		rdma_ufd_update(c);
		return -EAGAIN;
	}
	if (!rx || rx->state != RX_READY)
		return -EAGAIN;
	c->rxq_first = rx->next;
	if (!c->rxq_first)
		c->rxq_last = NULL;
	rx->next = NULL;
	c->lent++;
	rdma_ufd_update(c);
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
			rc = rdma_conn_err(c);
	} else {
		for (;;) {
			rc = rx_deliver(c, m);
			if (rc != -EAGAIN)
				break;
			if (c->state != RC_CONNECTED || c->shut) {
				rc = rdma_conn_err(c);
				break;
			}
			if (!rdma_rx_actionable(c))
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
	rdma_rx_free(c, rx);

	pthread_mutex_unlock(&c->lock);
}
