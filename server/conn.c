/*
 * conn.c - one orfad connection's life apart from the event loop: the
 * connection object (creation, close, the teardown stages, freeing),
 * receiving frames (checks, the handshake's order, decoding, counting the
 * request in flight, handing it to workers.c to run), the two-phase
 * receive of big WRITE data, and in connection mode the connection's own
 * thread doing blocking receive / run / send.
 *
 * Teardown: a closing connection reads nothing more; once only parked lock
 * requests are left its locks are dropped (which cancels those), once no
 * request is left its files, lookup references and transport are released
 * and it is freed, by the thread that owns it.
 *
 * Not here: the event loops and what a loop does with a connection's
 * events (loop.c), where requests run (workers.c), answering and
 * finishing them (request.c).
 */
#include "server_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dispatch.h"
#include "log.h"
#include "metrics.h"

struct zombie {
	struct zombie *next;
	pthread_t thread;
};
static struct zombie *zombies;	/* under srv->clock; one server per process */

/* ---- two-phase receive ------------------------------------------------------ */

/*
 * WRITE data of at least SPLICE_MIN_DATA bytes stays in the socket until
 * the worker running the WRITE moves it into the file (backend write_fd;
 * TCP splices socket -> pipe -> file): one copy instead of two, and no
 * buffer of that size.  Below SPLICE_MIN_DATA, pausing and waking the
 * loop for each write costs more orfad CPU than the copy saved.  Queue
 * and connection modes only: the sequential loop would wait for a slow
 * client's data itself.  ORFA_NO_SPLICE=1 in the environment turns it
 * off (for comparisons).
 */
#define SPLICE_MIN_DATA		(512u * 1024)

/* The transport's defer resolver, on the receiving thread. */
static int conn_defer(void *arg, const struct orfa_hdr *h)
{
	struct sconn *c = arg;

	/* Only a few at once server-wide (bounds_defer_take): a worker
	 * taking data waits for the sender, and slow senders must not hold
	 * every worker (issue 12).  The others are read by the loop. */
	return h->opcode == ORFA_OP_WRITE && h->data_len >= SPLICE_MIN_DATA &&
	       c->hello_done && !(h->flags & ORFA_F_REPLY) &&
	       __atomic_load_n(&c->splice_ok, __ATOMIC_RELAXED) &&
	       bounds_defer_take(c);
}

/* On the receiving thread before the first recv; a transport without
 * two-phase receive keeps the usual path. */
void conn_defer_setup(struct sconn *c)
{
	if (c->srv->cfg.threading == ORFA_THREADING_SEQUENTIAL ||
	    getenv("ORFA_NO_SPLICE"))
		return;
	c->splice_ok = 1;
	if (orfa_conn_set_defer(c->tc, conn_defer, c) != 0)
		c->splice_ok = 0;
}

/* ---- connection objects --------------------------------------------------- */

struct sconn *conn_new(struct orfa_server *srv, struct orfa_conn *tc)
{
	struct sconn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (access_session_init(&c->s)) {
		free(c);
		return NULL;
	}
	c->srv = srv;
	c->tc = tc;
	c->t_accept = orfa_now_ns();
	c->t_active = c->t_accept;
	c->s.files.max = srv->cfg.max_files;
	c->s.nodes.max = srv->cfg.max_nodes;
	snprintf(c->s.peer, sizeof(c->s.peer), "%s",
		 tc->peer[0] ? tc->peer : "?");
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	pthread_mutex_lock(&srv->clock);
	c->s.id = ++srv->next_conn_id;
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	pthread_mutex_unlock(&srv->clock);
	metrics_conn(tc->ops == &orfa_tcp_transport ? METRICS_TCP :
		     METRICS_RDMA, 1);
	return c;
}

/* Last step of teardown, on the owning thread; nothing refers to c (in
 * loop modes, loop_conn_free let go of its events and its loop first). */
void conn_free(struct sconn *c)
{
	struct orfa_server *srv = c->srv;

	pthread_mutex_lock(&srv->clock);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	if (c->dropped)
		srv->ndropped--;
	pthread_mutex_unlock(&srv->clock);
	bounds_defer_put(c);
	metrics_conn(c->tc->ops == &orfa_tcp_transport ? METRICS_TCP :
		     METRICS_RDMA, -1);
	/* Transport first: queued replies let go of their file objects. */
	orfa_conn_put(&c->tc);
	access_session_end(&c->s);
	log_debug("%s: connection %llu freed", c->s.peer,
		  (unsigned long long)c->s.id);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void conn_close(struct sconn *c)
{
	if (c->closing)
		return;
	pthread_mutex_lock(&c->lock);
	c->closing = 1;
	pthread_mutex_unlock(&c->lock);
	orfa_conn_shutdown(c->tc);
}

/* Drop c's locks (and cancel its parked waiters) in its export's table. */
static void conn_drop_locks(struct sconn *c)
{
	if (c->s.ex)
		orfa_locks_drop_conn(c->s.ex->locks, c->s.id);
}

int conn_teardown_step(struct sconn *c)
{
	pthread_mutex_lock(&c->lock);
	if (c->teardown_stage == 0) {
		if (c->inflight > c->parked) {
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		c->teardown_stage = 1;
		pthread_mutex_unlock(&c->lock);
		/* No request of c is running: no lock or waiter of c can
		 * appear any more.  Cancelled waiters finish here. */
		conn_drop_locks(c);
		pthread_mutex_lock(&c->lock);
	}
	if (c->inflight > 0) {
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	c->teardown_stage = 2;
	pthread_mutex_unlock(&c->lock);
	return 1;
}

/* Connection mode: the whole teardown, waiting instead of returning;
 * frees c. */
static void conn_teardown_wait(struct sconn *c)
{
	pthread_mutex_lock(&c->lock);
	while (c->inflight > c->parked)
		pthread_cond_wait(&c->cond, &c->lock);
	c->teardown_stage = 1;
	pthread_mutex_unlock(&c->lock);
	conn_drop_locks(c);
	pthread_mutex_lock(&c->lock);
	while (c->inflight > 0)
		pthread_cond_wait(&c->cond, &c->lock);
	c->teardown_stage = 2;
	pthread_mutex_unlock(&c->lock);
	conn_free(c);
}

/* ---- receiving ------------------------------------------------------------ */

/* A receive failed: say why (warning for bad input), then close. */
void conn_recv_failed(struct sconn *c, int err)
{
	const char *why = orfa_conn_last_error(c->tc);

	if (!why || !*why)
		why = strerror(-err);
	/* An orderly close between frames, or our own shutdown, is routine;
	 * a frame cut short or refused by the transport is bad input. */
	if ((err == -ECONNRESET && strncmp(why, "truncated", 9) != 0) ||
	    err == -ENOTCONN)
		log_info("%s: connection closed: %s", c->s.peer, why);
	else
		log_warn("%s: dropping connection: %s", c->s.peer, why);
	conn_close(c);
}

static void conn_drop(struct sconn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void conn_drop(struct sconn *c, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warn("%s: dropping connection: %s", c->s.peer, why);
	conn_close(c);
}

/* Count r in c's requests in flight, with what it will hold in memory:
 * its data segment and the reply data it asks for. */
static void conn_inflight_inc(struct sconn *c, struct sreq *r)
{
	uint64_t want = 0;

	switch (r->m.hdr.opcode) {
	case ORFA_OP_READ:
		want = r->m.a.read.size;
		break;
	case ORFA_OP_READDIR:
	case ORFA_OP_READDIRPLUS:
		want = r->m.a.readdir.size;
		break;
	case ORFA_OP_GETXATTR:
	case ORFA_OP_LISTXATTR:
		want = r->m.a.getxattr.size;
		break;
	default:
		break;
	}
	if (want > c->s.max_data)
		want = c->s.max_data;
	r->cost = r->m.hdr.data_len + (size_t)want;
	__atomic_fetch_add(&c->srv->held_bytes, r->cost, __ATOMIC_RELAXED);
	pthread_mutex_lock(&c->lock);
	c->inflight++;
	c->inflight_bytes += r->cost;
	pthread_mutex_unlock(&c->lock);
}

/*
 * A request of the frame rx, which stays on loan from the transport
 * (which allows several at once, returned from any thread) until the
 * request is finished, so file data is never copied here.  NULL when the
 * frame is inconsistent or memory is short: rx is given back and c
 * closed.
 */
static struct sreq *sreq_new(struct sconn *c, struct orfa_rxmsg *rx)
{
	size_t dlen = rx->hdr.data_len, hlen = rx->head_len;
	struct sreq *r;

	if (hlen != ORFA_HDR_SIZE + (size_t)rx->hdr.body_len ||
	    (dlen && !rx->data && !rx->data_deferred)) {
		orfa_conn_recv_done(c->tc, rx);
		conn_drop(c, "transport returned an inconsistent frame");
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		orfa_conn_recv_done(c->tc, rx);
		log_err("%s: out of memory for a request", c->s.peer);
		conn_close(c);
		return NULL;
	}
	r->conn = c;
	r->rx = *rx;
	r->head = rx->head;
	r->head_len = hlen;
	r->data = rx->data;
	r->m.hdr = rx->hdr;
	return r;
}

/* Drop r and c: r came out of the handshake's order. */
static void conn_drop_req(struct sconn *c, struct sreq *r, const char *why)
{
	unsigned op = r->m.hdr.opcode;

	sreq_free(r);
	conn_drop(c, "%s request (opcode %u) %s", orfa_op_name(op), op, why);
}

/*
 * The handshake's order: HELLO first and once; with a key, AUTH right
 * after HELLO, and alone.  HELLO and AUTH run here (hello.c).  Returns 1
 * when r was taken (run, or dropped with c), 0 for a request of an open
 * session.
 */
static int conn_handshake(struct sconn *c, struct sreq *r)
{
	unsigned op = r->m.hdr.opcode;

	if (!c->hello_done && op != ORFA_OP_HELLO) {
		conn_drop_req(c, r, "before HELLO");
		return 1;
	}
	if (op == ORFA_OP_HELLO || op == ORFA_OP_AUTH) {
		const char *bad = NULL;

		if (op == ORFA_OP_HELLO && c->hello_done)
			bad = "second HELLO";
		else if (op == ORFA_OP_AUTH && !c->auth_wait)
			bad = "AUTH request the server did not ask for";
		if (bad) {
			sreq_free(r);
			conn_drop(c, "%s", bad);
			return 1;
		}
		conn_inflight_inc(c, r);
		if (op == ORFA_OP_HELLO)
			hello_handle(r);
		else
			auth_handle(r);
		sreq_finish(r);
		return 1;
	}
	if (c->auth_wait) {
		conn_drop_req(c, r, "before AUTH");
		return 1;
	}
	return 0;
}

/* Decode r's body.  0 when r is to run; 1 when it was taken: answered
 * ENOSYS (an opcode we do not know), or dropped with c (malformed). */
static int conn_decode(struct sconn *c, struct sreq *r)
{
	unsigned op = r->m.hdr.opcode;
	const char *why = NULL;
	int ret;

	ret = orfa_req_decode(&r->m, r->head + ORFA_HDR_SIZE, &why);
	if (ret == -ENOSYS && (r->m.hdr.flags & ORFA_F_REPLY) == 0) {
		log_debug("%s: unknown opcode %u: ENOSYS", c->s.peer, op);
		conn_inflight_inc(c, r);
		sreq_reply_err(r, ENOSYS);
		sreq_finish(r);
		return 1;
	}
	if (ret < 0) {
		sreq_free(r);
		conn_drop(c, "malformed %s request: %s", orfa_op_name(op),
			  why ? why : strerror(-ret));
		return 1;
	}
	r->m.data = r->data;
	r->m.data_len = r->rx.hdr.data_len;
	return 0;
}

void conn_handle_frame(struct sconn *c, struct orfa_rxmsg *rx)
{
	struct sreq *r;
	int64_t now = orfa_now_ns();

	__atomic_store_n(&c->t_active, now, __ATOMIC_RELEASE);
	__atomic_store_n(&c->t_partial, 0, __ATOMIC_RELEASE);
	if (rx->data_deferred)		/* bounds.c: --msg-timeout */
		__atomic_store_n(&c->t_deferred, now, __ATOMIC_RELEASE);
	r = sreq_new(c, rx);
	if (!r || conn_handshake(c, r) || conn_decode(c, r))
		return;
	conn_inflight_inc(c, r);
	run_request(c, r);
}
/* ---- connection threads (connection mode) -------------------------------- */

static void *conn_thread(void *arg)
{
	struct sconn *c = arg;
	struct orfa_server *srv = c->srv;
	struct orfa_rxmsg rx;
	struct zombie *z = malloc(sizeof(*z));
	char name[32];
	int ret, failed;

	/* Named here: once created, the thread may end (and free c) before
	 * its creator could touch it again. */
	snprintf(name, sizeof(name), "orfad-c%llu",
		 (unsigned long long)c->s.id);
	name[15] = '\0';
	pthread_setname_np(pthread_self(), name);
	conn_defer_setup(c);
	while (!c->closing) {
		memset(&rx, 0, sizeof(rx));
		ret = orfa_conn_recv(c->tc, &rx);
		if (ret == -EAGAIN || ret == -EINTR)
			continue;
		if (ret < 0) {
			conn_recv_failed(c, ret);
			break;
		}
		conn_handle_frame(c, &rx);
		if (c->close_after_flush)
			break;		/* the refusal was sent (blocking) */
		pthread_mutex_lock(&c->lock);
		failed = c->send_failed;
		pthread_mutex_unlock(&c->lock);
		if (failed) {
			log_info("%s: connection lost: %s", c->s.peer,
				 orfa_conn_last_error(c->tc));
			break;
		}
	}
	conn_close(c);
	conn_teardown_wait(c);
	/* Hand our pthread_t to whoever joins threads (accept, stop). */
	pthread_mutex_lock(&srv->clock);
	if (z) {
		z->thread = pthread_self();
		z->next = zombies;
		zombies = z;
	} else {
		pthread_detach(pthread_self());
	}
	srv->nthreads--;
	pthread_cond_broadcast(&srv->ccond);
	pthread_mutex_unlock(&srv->clock);
	return NULL;
}

void zombies_join(struct orfa_server *srv)
{
	struct zombie *z;

	pthread_mutex_lock(&srv->clock);
	z = zombies;
	zombies = NULL;
	pthread_mutex_unlock(&srv->clock);
	while (z) {
		struct zombie *next = z->next;

		pthread_join(z->thread, NULL);
		free(z);
		z = next;
	}
}

int conn_thread_start(struct sconn *c)
{
	struct orfa_server *srv = c->srv;
	pthread_t th;
	int ret;

	pthread_mutex_lock(&srv->clock);
	srv->nthreads++;
	pthread_mutex_unlock(&srv->clock);
	ret = pthread_create(&th, NULL, conn_thread, c);
	if (ret) {
		pthread_mutex_lock(&srv->clock);
		srv->nthreads--;
		pthread_mutex_unlock(&srv->clock);
		return -ret;
	}
	return 0;
}
