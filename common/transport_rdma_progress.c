/*
 * transport_rdma_progress.c - the progress thread of an RDMA connection
 * ("orfa-rdma"), in both modes: it waits on the completion channel, the
 * CM event channel and a wake-up eventfd, takes completions (handing
 * receives and READs to transport_rdma_rx.c, send completions to the
 * send-slot lists), CM events, posts READs, queued messages and control
 * messages (transport_rdma_tx.c), and at the end destroys its QP, CQ and
 * CM id (rdma_conn_release_verbs), so those write()-based commands never
 * run on a caller whose credentials changed.  Also the pools of a
 * connection (rdma_io_init, rdma_io_fini).  It is started by
 * transport_rdma_setup.c and calls only downwards: rx, tx, state.
 */
#include "transport_rdma_impl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define POLL_BATCH	32

/* ---- pools ---------------------------------------------------------------- */

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
		int rc = rdma_post_recv(c, &c->rslots[i]);

		if (rc)
			return rc;
	}
	for (uint32_t i = c->credits; i < nr; i++) {
		c->rslots[i].next = c->spare;
		c->spare = &c->rslots[i];
	}
	return 0;
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
		rdma_rx_free(c, rx);
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
		rdma_tx_release(c, tx);
	}
	free(c->rslots);
	free(c->sslots);
	c->rslots = NULL;
	c->sslots = NULL;
}

/* ---- completions and events ---------------------------------------------- */

static const char *wc_op(const struct ibv_wc *wc)
{
	switch (wc->wr_id & WR_TAG_MASK) {
	case WR_RECV: return "receive";
	case WR_SEND: return "send";
	case WR_CTRL: return "control send";
	case WR_READ: return "RDMA read";
	case WR_PROBE: return "test RDMA access";
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

		rdma_fail(c, err, "%s failed: %s (vendor error %u)",
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
		rdma_on_recv(c, s, wc->byte_len);
		break;
	}
	case WR_SEND: {
		struct rdma_sslot *s = obj;

		c->sq_free += s->wrs;
		s->wrs = 0;
		if (s->tx) {		/* TX_WRITE: data was sent */
			rdma_tx_reap(c, s->tx, 0);
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
		rdma_on_read_done(c, rx);
		break;
	}
	case WR_PROBE: {
		struct rdma_probe *pr = obj;

		c->sq_free++;
		pr->status = wc->status;
		pr->done = 1;
		pthread_cond_broadcast(&c->tx_cond);
		break;
	}
	default:
		log_err("rdma: %s: completion with unknown id", c->base.peer);
		break;
	}
}

static void handle_cm_event(struct rdma_conn *c, enum rdma_cm_event_type ev,
			  int status)
{
	switch (ev) {
	case RDMA_CM_EVENT_DISCONNECTED:
		rdma_fail(c, -ECONNRESET, "peer disconnected");
		break;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		rdma_fail(c, -ECONNRESET, "RDMA device removed");
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
			return rdma_fail(c, -EIO, "ibv_poll_cq failed");
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
		handle_cm_event(c, ev, status);
		if (ev == RDMA_CM_EVENT_DISCONNECTED && !c->disc_sent) {
			rdma_disconnect(c->id);	/* answer the DREQ */
			c->disc_sent = 1;
		}
	}
}

/*
 * One progress pass.  Caller holds the lock (rdma_rx_advance drops it while
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
			rdma_fail(c, -EIO, "ibv_req_notify_cq failed");
			break;
		}
		armed = 1;
	}
	cm_poll(c);
	rdma_rx_advance(c);
	rdma_tx_progress(c);
	rdma_ctrl_maybe(c);
	rdma_ufd_update(c);
	c->progress_busy = 0;
	return c->state == RC_CONNECTED ? 0 : rdma_conn_err(c);
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


void rdma_conn_release_verbs(struct rdma_conn *c)
{
	if (c->qp) {
		if (!c->disc_sent)
			rdma_disconnect(c->id);
		c->disc_sent = 1;
		if (c->manual_qp)
			ibv_destroy_qp(c->qp);
		else
			rdma_destroy_qp(c->id);
		c->qp = NULL;
	}
	if (c->cq && ibv_destroy_cq(c->cq))
		log_warn("rdma: ibv_destroy_cq failed");
	c->cq = NULL;
	if (c->comp_ch && ibv_destroy_comp_channel(c->comp_ch))
		log_warn("rdma: ibv_destroy_comp_channel failed");
	c->comp_ch = NULL;
	if (c->id)
		rdma_destroy_id(c->id);
	c->id = NULL;
}
