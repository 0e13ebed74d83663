/*
 * request.c - the request API of orfad (request.h): what a handler may
 * ask of its request (session, server configuration, export lookup, peer
 * address), how it answers (replies, reply buffers, a WRITE's deferred
 * data), parking a lock request, and finishing.  This is the half of the
 * pipeline that comes after the handlers: it talks to the connection
 * (struct sconn) and wakes the connection's owner, and never calls a
 * handler.  Not here: reading and queueing requests (conn.c, workers.c),
 * the event loops (loop.c).
 */
#include "server_impl.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

static int conn_export_idx(const struct sconn *c);
static enum metrics_tp conn_tp(const struct sconn *c);

/* Longest pause inside a deferred data segment. */
#define DEFER_WAIT_MS		30000

/* Parked requests per connection: they do not count against the
 * back-pressure limits, so they have their own. */
#define MAX_PARKED		4096u

/* ---- the connection's owner -------------------------------------------- */

void conn_wake_locked(struct sconn *c)
{
	if (c->srv->cfg.threading == ORFA_THREADING_CONNECTION) {
		pthread_cond_broadcast(&c->cond);
		return;
	}
	if (!c->wake_pending) {
		c->wake_pending = 1;
		event_active(c->ev_wake, EV_READ, 0);
	}
}

/* A request of c stopped running (finished, or parked): wake c's owner
 * if c is paused or closing.  Caller holds c->lock. */
static void conn_kick_locked(struct sconn *c)
{
	if (c->closing || c->read_paused)
		conn_wake_locked(c);
}

/* ---- what the request belongs to ------------------------------------------- */

struct ssession *sreq_session(struct sreq *r)
{
	return &r->conn->s;
}

const struct orfa_server_cfg *sreq_server_cfg(struct sreq *r)
{
	return &r->conn->srv->cfg;
}

struct sexport *sreq_find_export(struct sreq *r, const char *path,
				 const char **subdir)
{
	const struct sgen *g = server_gen(r->conn->srv);

	return access_find(g->tab, g->sx, path, subdir);
}

int sreq_peer_addr(struct sreq *r, struct sockaddr_storage *ss)
{
	return orfa_conn_peer_addr(r->conn->tc, ss);
}

int sreq_seal(struct sreq *r, const struct orfa_seal_keys *keys)
{
	int ret = orfa_conn_seal(r->conn->tc, keys);

	if (ret)
		orfa_conn_shutdown(r->conn->tc);
	return ret;
}

/* ---- replies ---------------------------------------------------------------- */

/*
 * Send a reply on c, any thread.  A failure is noted for c's owner, which
 * closes c; in loop modes the owner is also woken for that, and when the
 * transport kept output queued, to flush it.  0 or the negative errno of
 * the send.
 */
static int conn_send(struct sconn *c, struct orfa_txmsg *tx)
{
	int ret = orfa_conn_send(c->tc, tx);

	if (c->srv->cfg.threading == ORFA_THREADING_CONNECTION) {
		if (ret < 0 && ret != -ENOTCONN) {
			pthread_mutex_lock(&c->lock);
			c->send_failed = 1;
			pthread_mutex_unlock(&c->lock);
		}
		return ret;
	}
	if (ret < 0 && ret != -ENOTCONN) {
		pthread_mutex_lock(&c->lock);
		c->send_failed = 1;
		conn_wake_locked(c);
		pthread_mutex_unlock(&c->lock);
	} else if (ret == 0 && orfa_conn_want_write(c->tc)) {
		pthread_mutex_lock(&c->lock);
		conn_wake_locked(c);
		pthread_mutex_unlock(&c->lock);
	}
	return ret;
}

int sreq_reply(struct sreq *r, struct orfa_msg *rep, struct orfa_txmsg *tx)
{
	struct sconn *c = r->conn;
	uint8_t head[ORFA_HDR_SIZE + 512];
	struct orfa_txmsg none = { .fd = -1 };
	struct orfa_msg empty;
	size_t dlen = 0;
	ssize_t n;

	if (!rep) {
		memset(&empty, 0, sizeof(empty));
		rep = &empty;
	}
	if (!tx)
		tx = &none;
	if (tx->iov) {
		for (int i = 0; i < tx->iovcnt; i++)
			dlen += tx->iov[i].iov_len;
	} else if (tx->fd >= 0) {
		dlen = tx->fd_len;
	}
	rep->hdr.opcode = r->m.hdr.opcode;
	rep->hdr.req_id = r->m.hdr.req_id;
	rep->hdr.flags = 0;
	rep->hdr.data_len = (uint32_t)dlen;
	if (rep->hdr.status && rep->hdr.opcode != ORFA_OP_HELLO && !dlen) {
		/* Error replies have an empty body; built by hand so that
		 * opcodes the codec does not know get their ENOSYS. */
		rep->hdr.flags = ORFA_F_REPLY;
		rep->hdr.body_len = 0;
		n = 0;
	} else {
		n = orfa_rep_encode(rep, head + ORFA_HDR_SIZE,
				    sizeof(head) - ORFA_HDR_SIZE);
	}
	if (n < 0) {
		/* Our own bug, not the peer's: answer EIO instead. */
		log_err("%s: cannot encode %s reply: %s", c->s.peer,
			orfa_op_name(r->m.hdr.opcode), strerror((int)-n));
		if (tx->done)
			tx->done(tx->done_arg);
		memset(&empty, 0, sizeof(empty));
		rep = &empty;
		rep->hdr.opcode = r->m.hdr.opcode;
		rep->hdr.req_id = r->m.hdr.req_id;
		rep->hdr.status = EIO;
		rep->hdr.flags = ORFA_F_REPLY;
		tx = &none;
		n = 0;
	}
	orfa_hdr_encode(head, &rep->hdr);
	tx->head = head;
	tx->head_len = ORFA_HDR_SIZE + (size_t)n;
	if (rep->hdr.opcode == ORFA_OP_READ && !rep->hdr.status)
		metrics_bytes(conn_export_idx(c), conn_tp(c), 0, dlen);
	return conn_send(c, tx);
}

void sreq_reply_err(struct sreq *r, int err)
{
	struct orfa_msg rep;

	memset(&rep, 0, sizeof(rep));
	rep.hdr.status = (uint32_t)err;
	sreq_reply(r, &rep, NULL);
}

struct sreq_buf *sreq_buf_new(size_t cap)
{
	return malloc(sizeof(struct sreq_buf) + cap);
}

void sreq_reply_buf(struct sreq *r, struct orfa_msg *rep, struct sreq_buf *b,
		    size_t len)
{
	struct orfa_txmsg tx = { .fd = -1 };

	if (len == 0) {
		free(b);
		sreq_reply(r, rep, NULL);
		return;
	}
	b->iov.iov_base = b->data;
	b->iov.iov_len = len;
	tx.iov = &b->iov;
	tx.iovcnt = 1;
	tx.done = free;
	tx.done_arg = b;
	sreq_reply(r, rep, &tx);
}

/* ---- the data segment of a WRITE ------------------------------------------- */

int sreq_data_deferred(const struct sreq *r)
{
	return r->rx.data_deferred;
}

void sreq_no_defer(struct sreq *r)
{
	__atomic_store_n(&r->conn->splice_ok, 0, __ATOMIC_RELAXED);
}

int sreq_take_data(struct sreq *r, struct orfa_rxdest *d)
{
	struct sconn *c = r->conn;
	struct orfa_rxdest mem = { .fd = -1 };
	int ret;

	if (!r->rx.data_deferred)
		return -EINVAL;
	if (!d)
		d = &mem;
	if (!d->timeout_ms)
		d->timeout_ms = DEFER_WAIT_MS;
	ret = orfa_conn_recv_data(c->tc, &r->rx, d);
	if (ret == 0 && d->fd < 0) {
		r->data = r->rx.data;
		r->m.data = r->data;
	}
	r->rx.data_deferred = 0;	/* taken, or never will be */
	bounds_defer_put(c);
	pthread_mutex_lock(&c->lock);
	c->rx_deferred = 0;
	if (ret) {
		c->send_failed = 1;
		conn_wake_locked(c);
	} else {
		conn_kick_locked(c);
	}
	pthread_mutex_unlock(&c->lock);
	if (ret)
		log_info("%s: cannot take %u bytes of %s data: %s", c->s.peer,
			 r->m.hdr.data_len, orfa_op_name(r->m.hdr.opcode),
			 strerror(-ret));
	return ret;
}

/* ---- limits ------------------------------------------------------------------- */

void sreq_limit_hit(struct sreq *r, const char *what, int ret)
{
	struct sconn *c = r->conn;

	bounds_log(&c->addr, c->s.peer, "%s: %s answered %s", what,
		   orfa_op_name(r->m.hdr.opcode), strerror(-ret));
}

/* ---- metrics ------------------------------------------------------------------ */

static int conn_export_idx(const struct sconn *c)
{
	return c->s.ex ? c->s.ex->metrics_idx : -1;
}

static enum metrics_tp conn_tp(const struct sconn *c)
{
	return c->tc->ops == &orfa_tcp_transport ? METRICS_TCP : METRICS_RDMA;
}

void sreq_metrics_labels(const struct sreq *r, int *ex, int *tp)
{
	*ex = conn_export_idx(r->conn);
	*tp = (int)conn_tp(r->conn);
}

/* ---- finishing ------------------------------------------------------------ */

void sreq_free(struct sreq *r)
{
	if (r->rx.data_deferred)	/* never taken: c is being dropped */
		bounds_defer_put(r->conn);
	if (r->rx.tp_priv || r->rx.head)
		orfa_conn_recv_done(r->conn->tc, &r->rx);
	free(r);
}

void sreq_finish(struct sreq *r)
{
	struct sconn *c = r->conn;
	size_t cost = r->cost;

	if (r->rx.data_deferred)
		sreq_take_data(r, NULL);	/* refused early: drop it */
	sreq_free(r);
	__atomic_fetch_sub(&c->srv->held_bytes, cost, __ATOMIC_RELAXED);
	/* Nothing may touch c after the unlock: once inflight reaches zero
	 * on a closing connection its owner may free it. */
	pthread_mutex_lock(&c->lock);
	c->inflight--;
	c->inflight_bytes -= cost;
	conn_kick_locked(c);
	pthread_mutex_unlock(&c->lock);
}

/* ---- parking ---------------------------------------------------------------- */

/* The answer to a parked SETLK/FLOCK: granted (0), cancelled because its
 * connection is going away (-ECANCELED: no answer), or cancelled because
 * its file id was released (-EBADF: answered). */
static void park_done(struct sreq *r, int status)
{
	log_debug("%s: %s #%llu %s", r->conn->s.peer,
		  orfa_op_name(r->m.hdr.opcode),
		  (unsigned long long)r->m.hdr.req_id,
		  status ? "cancelled" : "granted after wait");
	if (status == 0)
		sreq_reply(r, NULL, NULL);
	else if (status != -ECANCELED &&
		 !(r->m.hdr.flags & ORFA_F_NOREPLY))
		sreq_reply_err(r, -status);
	sreq_finish(r);
}

/* Lock manager callback, any thread.  If the handler that parked r has
 * not returned yet, r is still its: leave the answer to it. */
static void park_wake(struct orfa_lk_waiter *w, int status)
{
	struct sreq *r = w->arg;
	struct sconn *c = r->conn;

	pthread_mutex_lock(&c->lock);
	if (r->in_dispatch) {
		r->woken = 1;
		r->wake_status = status;
		pthread_mutex_unlock(&c->lock);
		return;
	}
	c->parked--;
	pthread_mutex_unlock(&c->lock);
	park_done(r, status);
}

/*
 * The grant may come from another thread before the lock manager's call
 * returns, so r is marked in_dispatch and park_wake leaves the answer to
 * sreq_park_end.  r counts in conn->parked only once sreq_park_end has
 * parked it: until then it is running, and teardown waits for it (a
 * waiter queued after the connection's locks were dropped would never be
 * cancelled).
 */
struct orfa_lk_waiter *sreq_park_begin(struct sreq *r)
{
	struct sconn *c = r->conn;

	pthread_mutex_lock(&c->lock);
	if (c->parked >= MAX_PARKED) {
		pthread_mutex_unlock(&c->lock);
		return NULL;
	}
	r->in_dispatch = 1;
	r->woken = 0;
	pthread_mutex_unlock(&c->lock);
	r->waiter.wake = park_wake;
	r->waiter.arg = r;
	return &r->waiter;
}

int sreq_park_end(struct sreq *r, int ret)
{
	struct sconn *c = r->conn;

	pthread_mutex_lock(&c->lock);
	r->in_dispatch = 0;
	if (ret != -EINPROGRESS) {
		pthread_mutex_unlock(&c->lock);
		return ret;
	}
	if (r->woken) {			/* granted or cancelled already */
		pthread_mutex_unlock(&c->lock);
		return r->wake_status;	/* -ECANCELED: no answer */
	}
	/* Parked: r stops counting as running, which may unblock a paused
	 * or closing connection.  From here on r is park_wake's. */
	c->parked++;
	conn_kick_locked(c);
	pthread_mutex_unlock(&c->lock);
	return SREQ_PARKED;
}

/* ---- the handshake ------------------------------------------------------------ */

void sreq_hello_wait_auth(struct sreq *r)
{
	r->conn->hello_done = 1;
	r->conn->auth_wait = 1;
}

void sreq_session_open(struct sreq *r)
{
	struct sconn *c = r->conn;

	c->hello_done = 1;
	c->auth_wait = 0;
	__atomic_store_n(&c->hs_done, 1, __ATOMIC_RELEASE);
	orfa_conn_set_limits(c->tc, ORFA_MAX_BODY, c->s.max_data);
}

void sreq_close_after_reply(struct sreq *r)
{
	r->conn->close_after_flush = 1;
}
