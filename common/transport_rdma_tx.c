/*
 * transport_rdma_tx.c - the send path of the RDMA transport: a message
 * becomes an rdma_tx (send_prepare: inline copy, rendezvous registration
 * or bounce buffer, or an RDMA WRITE into the reply buffer the peer
 * advertised), is queued under the connection lock and posted when
 * credits, a send buffer and send queue entries allow (tx_post, by the
 * sender or by the progress pass that freed them); control messages
 * return credits and rendezvous acks when nothing else carries them.
 * The framing bytes are written by rdma_wire.c; completions are taken by
 * transport_rdma_progress.c.
 *
 * Copies made on purpose: inline data is copied into a registered send
 * buffer (at most one receive buffer, 64 KiB by default); file data
 * (txmsg.fd) is read with pread into a registered bounce buffer.  done()
 * runs on the thread that finished the message: the sender (inline data,
 * copied at once) or the progress thread (rendezvous acknowledged, RDMA
 * WRITE completed, failure).
 */
#include "transport_rdma_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static uint32_t send_cap(const struct rdma_conn *c)
{
	return c->peer_buf_size < c->buf_size ? c->peer_buf_size : c->buf_size;
}

/* Lay the message out in send slot buf: the framing (rdma_wire.c), then
 * inline data.  Returns the SEND's length. */
static size_t tx_layout(const struct rdma_conn *c, const struct rdma_tx *tx,
			uint8_t *buf)
{
	struct rdma_wire w = { .type = RW_MSG };
	struct rdma_seg adv = { 0 }, segs[RDMA_MAX_SEG];
	uint8_t *p;

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
	p = buf + rdma_wire_write_msg(buf, &w, &adv, segs, tx->head);
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
	return (size_t)(p - buf);
}

/* The work requests of a message laid out in s (len bytes): for TX_WRITE
 * the unsignaled RDMA WRITEs of its data into the peer's reply buffer,
 * then the signaled SEND. */
static void tx_build_wrs(const struct rdma_conn *c, const struct rdma_tx *tx,
			 struct rdma_sslot *s, size_t len,
			 struct ibv_send_wr *wr, struct ibv_sge *sge)
{
	unsigned nwr = 0;

	memset(wr, 0, (RDMA_MAX_SEG + 1) * sizeof(*wr));
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
}

/* tx went out in s (wrs queue entries): charge credits and entries, wake
 * its blocking sender, and hand it on by kind. */
static void tx_posted(struct rdma_conn *c, struct rdma_tx *tx,
		      struct rdma_sslot *s, unsigned wrs)
{
	c->unreported = 0;
	c->rdv_ack_pending = 0;
	c->peer_credits--;
	c->sq_free -= wrs;
	s->wrs = wrs;
	s->tx = NULL;
	c->n_sent++;

	tx->adv = NULL;		/* owned by the table now */
	rdma_tx_wake(c, tx, 0);
	switch (tx->kind) {
	case TX_INLINE:
		rdma_tx_reap(c, tx, 0);	/* data copied: done() now */
		break;
	case TX_RDV:
		c->n_rdv_sent++;
		RDMA_QUEUE_PUSH(c->rdv_first, c->rdv_last, tx);
		break;
	case TX_WRITE:
		c->n_write_sent++;
		s->tx = tx;		/* done() when the SEND completes */
		break;
	}
}

/* Try to post the message at the head of txq.  0: posted, -EAGAIN: lacks
 * credits, a send buffer or send queue entries (retried by the progress
 * pass that frees them), other: the connection failed. */
static int tx_post(struct rdma_conn *c, struct rdma_tx *tx)
{
	struct ibv_send_wr wr[RDMA_MAX_SEG + 1], *bad;
	struct ibv_sge sge[RDMA_MAX_SEG + 1];
	struct rdma_sslot *s;
	unsigned wrs = tx->kind == TX_WRITE ? tx->nseg + 1 : 1;
	int rc;

	if (c->peer_credits < 2 || !c->sfree || c->sq_free < wrs)
		return -EAGAIN;
	s = c->sfree;
	c->sfree = s->next;
	tx_build_wrs(c, tx, s, tx_layout(c, tx, s->buf), wr, sge);

	/* The reply cannot be processed before we drop the lock, but the
	 * advert must be in the table by then: insert it now. */
	if (tx->adv)
		rdma_adv_mine_add(c, tx->adv);
	rc = ibv_post_send(c->qp, wr, &bad);
	if (rc) {
		if (rc == EACCES)
			log_warn("rdma: %s: the kernel refuses verbs commands "
				 "from this thread: its credentials changed "
				 "since the device was opened (README, RDMA)",
				 c->base.peer);
		if (tx->adv)
			rdma_adv_mine_take(c, tx->req_id);
		s->next = c->sfree;
		c->sfree = s;
		return rdma_fail(c, -ECONNRESET, "ibv_post_send: %s",
				  strerror(rc));
	}
	tx_posted(c, tx, s, wrs);
	return 0;
}

void rdma_tx_progress(struct rdma_conn *c)
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
void rdma_ctrl_maybe(struct rdma_conn *c)
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
		rdma_fail(c, -ECONNRESET, "ibv_post_send (control): %s",
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

/* Copy the data segment into a bounce buffer.  Cached bounce buffers
 * have local access only; one the peer must READ (access has
 * IBV_ACCESS_REMOTE_READ) is registered again for this transfer, and
 * that registration goes when the peer acknowledges (rdma_tx_revoke). */
static int tx_bounce(struct rdma_conn *c, struct rdma_tx *tx,
		     const struct orfa_txmsg *m, int access)
{
	struct ibv_mr *mr;
	uint8_t *p;
	int rc = 0;

	tx->bounce = rdma_rbuf_get(&c->mem, tx->data_len);
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
	mr = tx->bounce->mr;
	if (access) {
		mr = rdma_mr_pin(&c->mem, tx->bounce->addr, tx->data_len,
				 access);
		if (!mr)
			return -errno;
		tx->mr[tx->nmr++] = mr;
	}
	tx->nseg = 1;
	tx_add_seg(&tx->seg[0], tx->bounce->addr, tx->data_len, mr);
	return rc;
}

/* Register the caller's iovecs for the peer to READ (or for us to
 * WRITE from); falls back to a bounce copy. */
static int tx_register(struct rdma_conn *c, struct rdma_tx *tx,
		       const struct orfa_txmsg *m, int access)
{
	int n = 0;

	if (!m->iov)
		return tx_bounce(c, tx, m, access);
	for (int i = 0; i < m->iovcnt; i++)
		if (m->iov[i].iov_len)
			n++;
	if (n > (int)RDMA_MAX_SEG)
		return tx_bounce(c, tx, m, access);
	for (int i = 0; i < m->iovcnt; i++) {
		struct ibv_mr *mr;

		if (!m->iov[i].iov_len)
			continue;
		if (m->iov[i].iov_len > UINT32_MAX)
			goto fallback;
		mr = rdma_mr_pin(&c->mem, m->iov[i].iov_base,
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
	return tx_bounce(c, tx, m, access);
}

/* The rdma_tx of m in one block: the struct, room for the iovec array
 * (aligned, right after the struct), then the head copy.  NULL without
 * memory. */
static struct rdma_tx *tx_new(const struct orfa_txmsg *m,
			      const struct orfa_hdr *h, size_t data_len)
{
	size_t niov = m->iov ? (size_t)m->iovcnt : 0;
	struct rdma_tx *tx = calloc(1, sizeof(*tx) +
				    niov * sizeof(struct iovec) + m->head_len);

	if (!tx)
		return NULL;
	tx->head = (uint8_t *)((struct iovec *)(tx + 1) + niov);
	memcpy(tx->head, m->head, m->head_len);
	tx->head_len = (uint32_t)m->head_len;
	tx->req_id = h->req_id;
	tx->data_len = data_len;
	tx->done = m->done;
	tx->done_arg = m->done_arg;
	return tx;
}

/* Pin m's reply buffer for the peer to RDMA-WRITE into.  The advert's
 * bytes in the SEND (RDMA_SEG_SIZE), or 0 when it could not be pinned:
 * the reply then comes by rendezvous. */
static uint32_t tx_pin_advert(struct rdma_conn *c, struct rdma_tx *tx,
			      const struct orfa_txmsg *m)
{
	tx->adv = calloc(1, sizeof(*tx->adv));
	if (!tx->adv)
		return 0;
	tx->adv->mr = rdma_mr_pin(&c->mem, m->reply_buf, m->reply_buf_len,
				  IBV_ACCESS_LOCAL_WRITE |
				  IBV_ACCESS_REMOTE_WRITE);
	if (!tx->adv->mr) {
		free(tx->adv);
		tx->adv = NULL;
		return 0;
	}
	tx->adv->req_id = tx->req_id;
	tx->adv->buf = m->reply_buf;
	tx->adv->len = m->reply_buf_len;
	return RDMA_SEG_SIZE;
}

/* Inline: keep the caller's iovecs (copied when posted), or read file
 * data now and let the file go. */
static int tx_take_inline(struct rdma_tx *tx, const struct orfa_txmsg *m)
{
	int rc;

	tx->kind = TX_INLINE;
	if (tx->data_len && m->iov) {
		tx->iov = (struct iovec *)(tx + 1);
		memcpy(tx->iov, m->iov,
		       (size_t)m->iovcnt * sizeof(struct iovec));
		tx->iovcnt = m->iovcnt;
	} else if (tx->data_len) {
		tx->inl = malloc(tx->data_len);
		rc = tx->inl ? read_file(m->fd, m->fd_off, tx->inl,
					 tx->data_len) : -ENOMEM;
		if (rc)
			return rc;
		/* The file is no longer needed. */
		if (tx->done)
			tx->done(tx->done_arg);
		tx->done = NULL;
	}
	return 0;
}

/* Too large for inline: RDMA WRITE into the peer's reply buffer when one
 * was advertised that holds it, else rendezvous. */
static int tx_take_remote(struct rdma_conn *c, struct rdma_tx *tx,
			  const struct orfa_txmsg *m,
			  const struct rdma_seg *target)
{
	int write_it = target && target->len >= tx->data_len, rc;

	tx->kind = write_it ? TX_WRITE : TX_RDV;
	if (write_it)
		tx->target = *target;
	rc = tx_register(c, tx, m, write_it ? 0 : IBV_ACCESS_REMOTE_READ);
	if (rc)
		return rc;
	if (tx->bounce && tx->done) {
		/* Copied: the caller's memory or file is free. */
		tx->done(tx->done_arg);
		tx->done = NULL;
	}
	return 0;
}

static int send_prepare(struct rdma_conn *c, const struct orfa_txmsg *m,
			struct rdma_tx **out)
{
	struct orfa_hdr h;
	struct rdma_tx *tx;
	struct rdma_seg target;
	size_t data_len, cap, need;
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
	tx = tx_new(m, &h, data_len);
	if (!tx)
		return -ENOMEM;
	if (adv_len)
		adv_len = tx_pin_advert(c, tx, m);

	/* A reply to a request that advertised a buffer: forget the advert
	 * whatever happens, and use it if the data does not fit inline. */
	if (h.flags & ORFA_F_REPLY) {
		pthread_mutex_lock(&c->lock);
		has_target = rdma_adv_peer_take(c, h.req_id, &target);
		pthread_mutex_unlock(&c->lock);
	}

	cap = send_cap(c) - RDMA_WIRE_SIZE - adv_len - rdma_pad8(tx->head_len);
	if (data_len == 0 || data_len <= cap)
		rc = tx_take_inline(tx, m);
	else
		rc = tx_take_remote(c, tx, m, has_target ? &target : NULL);
	if (rc) {
		tx->done = NULL;  /* the caller calls done for a failed send */
		rdma_tx_release(c, tx);
		return rc;
	}
	*out = tx;
	return 0;
}

/* Queue tx and post what can go now, or leave the posting to the
 * progress thread when this thread may not call verbs.  Lock held. */
static void tx_enqueue(struct rdma_conn *c, struct rdma_tx *tx)
{
	RDMA_QUEUE_PUSH(c->txq_first, c->txq_last, tx);
	c->txq_bytes += tx->head_len + tx->data_len;
	if (orfa_thread_creds_changed()) {
		uint64_t one = 1;

		/* The kernel would refuse this thread's ibv_post_send on
		 * some devices (transport.h): the progress thread posts. */
		if (write(c->wake_efd, &one, sizeof(one)) < 0)
			log_warn("rdma: cannot wake the progress thread");
	} else {
		rdma_tx_progress(c);
	}
	rdma_ufd_update(c);
}

/* A message that timed out before it was posted leaves the queue. */
static void tx_unqueue(struct rdma_conn *c, struct rdma_tx *tx)
{
	struct rdma_tx **pp = &c->txq_first, *prev = NULL;

	for (; *pp && *pp != tx; pp = &(*pp)->next)
		prev = *pp;
	if (*pp) {
		*pp = tx->next;
		if (c->txq_last == tx)
			c->txq_last = prev;
		c->txq_bytes -= tx->head_len + tx->data_len;
		rdma_tx_reap(c, tx, -ETIMEDOUT);
	}
}

/* Blocking mode: wait until tx is posted (its ticket done) or the send
 * timeout passes (dl; no timeout when send_timeout_ms is 0).  Lock held. */
static int send_wait(struct rdma_conn *c, struct rdma_tx *tx,
		     struct send_ticket *ticket, const struct timespec *dl)
{
	while (!ticket->done) {
		if (c->send_timeout_ms <= 0) {
			pthread_cond_wait(&c->tx_cond, &c->lock);
			continue;
		}
		if (pthread_cond_timedwait(&c->tx_cond, &c->lock, dl) ==
		    ETIMEDOUT && !ticket->done) {
			tx_unqueue(c, tx);	/* still queued: take it back */
			break;
		}
	}
	return ticket->done ? ticket->err : -ETIMEDOUT;
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
	if (!c->nonblock && c->send_timeout_ms > 0)
		rdma_deadline(&dl, c->send_timeout_ms);
	pthread_mutex_lock(&c->lock);
	if (c->state != RC_CONNECTED) {
		rc = rdma_conn_err(c);
		rdma_tx_reap(c, tx, rc);
	} else {
		if (!c->nonblock)
			tx->ticket = &ticket;
		tx_enqueue(c, tx);
		if (c->nonblock)
			rc = c->state == RC_CONNECTED ? 0 : rdma_conn_err(c);
		else
			rc = send_wait(c, tx, &ticket, &dl);
	}
	pthread_mutex_unlock(&c->lock);
	rdma_io_reap(c);
	return rc;
}

int rdma_flush(struct orfa_conn *oc)
{
	struct rdma_conn *c = rdma_c(oc);
	int rc = 0;

	/* The progress thread posts queued messages; nothing to push. */
	pthread_mutex_lock(&c->lock);
	if (c->state != RC_CONNECTED)
		rc = rdma_conn_err(c);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* Messages wait in txq for credits or send slots; the progress thread
 * posts them, and the caller polls ufd for writable meanwhile. */
size_t rdma_queued(struct orfa_conn *oc, int *want_write)
{
	struct rdma_conn *c = rdma_c(oc);
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->txq_bytes;
	if (want_write)
		*want_write = c->state == RC_CONNECTED && c->txq_first;
	pthread_mutex_unlock(&c->lock);
	return n;
}
