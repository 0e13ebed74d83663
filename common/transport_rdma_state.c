/*
 * transport_rdma_state.c - the state of an RDMA connection that its send
 * path (transport_rdma_tx.c), receive path (transport_rdma_rx.c) and
 * progress thread (transport_rdma_progress.c) all change: failing the
 * connection, the pollable fd handed to callers (ufd), finished messages
 * released outside the lock (reaping), the tables of reply-buffer
 * adverts, and the receive slots (posting a receive, freeing a received
 * message).  Every function here except rdma_io_reap runs with the
 * connection lock held.  Nothing here sends or parses messages.
 */
#include "transport_rdma_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

void rdma_tx_wake(struct rdma_conn *c, struct rdma_tx *tx, int err)
{
	if (tx->ticket) {
		tx->ticket->done = 1;
		tx->ticket->err = err;
		tx->ticket = NULL;
		pthread_cond_broadcast(&c->tx_cond);
	}
}

void rdma_tx_reap(struct rdma_conn *c, struct rdma_tx *tx, int err)
{
	rdma_tx_wake(c, tx, err);
	tx->err = err;
	RDMA_QUEUE_PUSH(c->reap_first, c->reap_last, tx);
}

void rdma_tx_revoke(struct rdma_tx *tx)
{
	for (unsigned i = 0; i < tx->nmr; i++)
		rdma_mr_unpin(tx->mr[i]);
	tx->nmr = 0;
}

void rdma_tx_release(struct rdma_conn *c, struct rdma_tx *tx)
{
	rdma_tx_revoke(tx);
	rdma_rbuf_put(&c->mem, tx->bounce);
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
		rdma_tx_release(c, tx);
	}
}

static unsigned adv_bucket(uint64_t req_id)
{
	return (unsigned)((req_id * 0x9e3779b97f4a7c15ull) >> 56) %
	       RDMA_ADV_BUCKETS;
}

struct rdma_adv_mine *rdma_adv_mine_take(struct rdma_conn *c,
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

void rdma_adv_mine_add(struct rdma_conn *c, struct rdma_adv_mine *a)
{
	struct rdma_adv_mine *old = rdma_adv_mine_take(c, a->req_id);
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

int rdma_adv_peer_take(struct rdma_conn *c, uint64_t req_id,
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

void rdma_adv_peer_add(struct rdma_conn *c, uint64_t req_id,
			 const struct rdma_seg *seg)
{
	struct rdma_seg old;
	struct rdma_adv_peer *a;
	unsigned b = adv_bucket(req_id);

	rdma_adv_peer_take(c, req_id, &old);
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
		rdma_tx_reap(c, tx, err);
	}
	c->txq_last = NULL;
	c->txq_bytes = 0;
	while ((tx = c->rdv_first)) {
		c->rdv_first = tx->next;
		rdma_tx_reap(c, tx, err);
	}
	c->rdv_last = NULL;
	for (uint32_t i = 0; c->sslots && i < c->nsslots; i++) {
		if (c->sslots[i].tx) {
			rdma_tx_reap(c, c->sslots[i].tx, err);
			c->sslots[i].tx = NULL;
		}
	}
	pthread_cond_broadcast(&c->tx_cond);
	pthread_cond_broadcast(&c->rx_cond);
	rdma_ufd_update(c);
}

int rdma_fail(struct rdma_conn *c, int err, const char *fmt, ...)
{
	char why[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	rdma_io_fail(c, err, why);
	return err;
}

int rdma_conn_err(struct rdma_conn *c)
{
	int e = c->base.last_err;

	if (c->shut)
		return -ENOTCONN;
	return e ? e : -ECONNRESET;
}

int rdma_post_recv(struct rdma_conn *c, struct rdma_rslot *s)
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
		return rdma_fail(c, -ECONNRESET, "ibv_post_recv: %s",
				  strerror(rc));
	return 0;
}

void rdma_rx_free(struct rdma_conn *c, struct rdma_rx *rx)
{
	rdma_mr_unpin(rx->sink_mr);
	rdma_rbuf_put(&c->mem, rx->landing);
	free(rx->copy);
	if (rx->slot) {
		rx->slot->next = c->spare;
		c->spare = rx->slot;
	}
	memset(rx, 0, sizeof(*rx));
	rx->next = c->rx_free;
	c->rx_free = rx;
}

/* The receiving thread has something to do: take the first message, or
 * ask the sink for the first message's rendezvous data. */
int rdma_rx_actionable(const struct rdma_conn *c)
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
void rdma_ufd_update(struct rdma_conn *c)
{
	int failed = c->state == RC_FAILED;
	int rd = failed || rdma_rx_actionable(c);
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
