/*
 * server.c - connections, threads and the receive / process / send
 * pipeline of orfad (server.h).
 *
 * Queue mode: the libevent loop thread accepts, reads whole frames from
 * each connection (non-blocking transport, until -EAGAIN), copies and
 * decodes them, and queues them to a pool of workers (mutex + condvar);
 * requests known to be short run on the loop thread instead
 * (may_run_inline).  Queue mode runs one loop per CPU, each owning some
 * of the connections.
 * A worker runs the request against the backend (dispatch.c) and sends
 * the reply itself: non-blocking sends never stall it, the transport
 * queues what the socket does not take.  Workers never touch libevent
 * objects: when output is left queued, or a paused or closing connection
 * needs attention, they activate that connection's wake event and the
 * loop thread flushes (EV_WRITE while the transport wants it) or tears
 * down.  Sequential mode runs requests on the loop thread instead;
 * connection mode gives each connection a thread doing blocking receive /
 * run / send, and the loop thread only accepts.
 *
 * Back-pressure: a connection stops being read while it has more than
 * max_inflight requests unfinished (not counting those parked for a lock)
 * or more than max_outq bytes of replies queued or to come, and is read
 * again once below; other connections are not affected.
 *
 * Teardown: a closing connection reads nothing more; once only parked lock
 * requests are left its locks are dropped (which cancels those), once no
 * request is left its files, lookup references and transport are released
 * and it is freed, by the thread that owns it.
 */
#include "clock.h"
#include "server_impl.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "log.h"

/* Data segment limit before HELLO negotiates one: HELLO carries none. */
#define PRE_HELLO_MAX_DATA	4096u

struct zombie {
	struct zombie *next;
	pthread_t thread;
};
static struct zombie *zombies;	/* under srv->clock; one server per process */

static void conn_progress(struct sconn *c);
static void conn_read(struct sconn *c);
static void loop_detach(struct sconn *c);

/* ---- configuration ----------------------------------------------------- */

void orfa_server_cfg_default(struct orfa_server_cfg *cfg)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	memset(cfg, 0, sizeof(*cfg));
	cfg->threading = ORFA_THREADING_QUEUE;
	cfg->threads = n > 2 ? (unsigned)n * 2 : 4;
	cfg->max_inflight = 256;
	cfg->max_outq = 64u << 20;
	cfg->max_data = ORFA_DEFAULT_MAX_DATA;
}

static const char *const threading_names[] = {
	[ORFA_THREADING_QUEUE] = "queue",
	[ORFA_THREADING_SEQUENTIAL] = "sequential",
	[ORFA_THREADING_CONNECTION] = "connection",
};

int orfa_threading_parse(const char *s)
{
	for (unsigned i = 0; i < 3; i++)
		if (strcmp(s, threading_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *orfa_threading_name(enum orfa_threading t)
{
	return (unsigned)t < 3 ? threading_names[t] : "?";
}

void orfa_server_listen_opts(const struct orfa_server_cfg *cfg,
			     struct orfa_tp_opts *o)
{
	orfa_tp_opts_default(o);
	/* Accepted connections inherit the listener's mode: blocking ones
	 * for the connection threads, non-blocking for the event loop. */
	o->flags = cfg->threading == ORFA_THREADING_CONNECTION ?
		   0 : ORFA_TP_NONBLOCK;
	o->max_body = ORFA_MAX_BODY;
	o->max_data = PRE_HELLO_MAX_DATA;
	if (cfg->rdma_buf_size)
		o->rdma_buf_size = cfg->rdma_buf_size;
	if (cfg->rdma_credits)
		o->rdma_credits = cfg->rdma_credits;
}

/* ---- worker queue ------------------------------------------------------ */

/*
 * Queue mode runs a request on the loop thread itself when handing it to
 * a worker would cost more than running it: the wake-up of a worker and
 * the switch to it take several microseconds, as long as a GETATTR.  The
 * loop thread runs requests that move at most INLINE_MAX_BYTES of data
 * and whose opcode was seldom slow lately: less than a quarter of its
 * recent runs (a moving average over about 8) took longer than
 * INLINE_MAX_NS.  The workers run the others.  An opcode that turns slow
 * (a cold disk under the native backend) holds the loop two or three
 * times, then goes to the workers until their runs are fast again; a
 * run that was slow only because the thread lost its CPU for a while
 * does not move it (with 50 us, 10% of 4 KiB reads went to the workers
 * for that reason on a busy 2-CPU machine; with 200 us, under 1%).  Once a read burst of one connection has run
 * INLINE_BUDGET_NS of requests, the loop turns to its other connections
 * and comes back after the next poll (ev_more).
 */
#define INLINE_MAX_NS		200000u
#define INLINE_MAX_BYTES	(64u * 1024)
#define INLINE_BUDGET_NS	100000u
#define SLOW_ONE		256u	/* op_slow of an always slow opcode */
#define SLOW_MAX		(SLOW_ONE / 4)	/* inline below this */

/* Run r (any thread of queue mode) and note in its opcode's op_slow
 * whether it was slow.  r is gone on return.  Returns the run time. */
static uint64_t run_timed(struct orfa_server *srv, struct sreq *r)
{
	unsigned op = r->m.hdr.opcode;
	uint64_t t0 = (uint64_t)orfa_now_ns(), dt;
	uint32_t f;

	dispatch_request(r);
	dt = (uint64_t)orfa_now_ns() - t0;
	if (op >= ORFA_OP_MAX)
		return dt;
	f = __atomic_load_n(&srv->op_slow[op], __ATOMIC_RELAXED);
	f = f - f / 8 + (dt > INLINE_MAX_NS ? SLOW_ONE / 8 : 0);
	__atomic_store_n(&srv->op_slow[op], f, __ATOMIC_RELAXED);
	return dt;
}

/* Operations that may wait for the disk by design never run inline. */
static int op_may_inline(unsigned op)
{
	switch (op) {
	case ORFA_OP_FSYNC:
	case ORFA_OP_FSYNCDIR:
	case ORFA_OP_FALLOCATE:
	case ORFA_OP_COPY_FILE_RANGE:
		return 0;
	default:
		return op < ORFA_OP_MAX;
	}
}

/* Loop thread, queue mode: may r, just read, run here? */
static int may_run_inline(struct sconn *c, struct sreq *r)
{
	unsigned op = r->m.hdr.opcode;

	return !c->closing && op_may_inline(op) &&
	       r->cost <= INLINE_MAX_BYTES &&
	       __atomic_load_n(&c->srv->op_slow[op], __ATOMIC_RELAXED) <
	       SLOW_MAX;
}

static void queue_push(struct orfa_server *srv, struct sreq *r)
{
	pthread_mutex_lock(&srv->qlock);
	r->next = NULL;
	*srv->qtail = r;
	srv->qtail = &r->next;
	pthread_cond_signal(&srv->qcond);
	pthread_mutex_unlock(&srv->qlock);
}

static void *worker_main(void *arg)
{
	struct orfa_server *srv = arg;
	struct sreq *r;

	pthread_mutex_lock(&srv->qlock);
	for (;;) {
		while (!srv->qhead && !srv->qstop)
			pthread_cond_wait(&srv->qcond, &srv->qlock);
		r = srv->qhead;
		if (!r)
			break;		/* stopping and drained */
		srv->qhead = r->next;
		if (!srv->qhead)
			srv->qtail = &srv->qhead;
		pthread_mutex_unlock(&srv->qlock);
		run_timed(srv, r);
		pthread_mutex_lock(&srv->qlock);
	}
	pthread_mutex_unlock(&srv->qlock);
	return NULL;
}

static int workers_start(struct orfa_server *srv)
{
	unsigned n = srv->cfg.threads ? srv->cfg.threads : 1;

	srv->workers = calloc(n, sizeof(*srv->workers));
	if (!srv->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		char name[32];
		int ret = pthread_create(&srv->workers[i], NULL, worker_main,
					 srv);

		if (ret) {
			log_err("cannot start worker thread: %s", strerror(ret));
			return -ret;
		}
		srv->nworkers++;
		snprintf(name, sizeof(name), "orfad-w%u", i);
		name[15] = '\0';
		pthread_setname_np(srv->workers[i], name);
	}
	return 0;
}

static void workers_stop(struct orfa_server *srv)
{
	pthread_mutex_lock(&srv->qlock);
	srv->qstop = 1;
	pthread_cond_broadcast(&srv->qcond);
	pthread_mutex_unlock(&srv->qlock);
	for (unsigned i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i], NULL);
	srv->nworkers = 0;
	free(srv->workers);
	srv->workers = NULL;
}

/* ---- two-phase receive ---------------------------------------------------- */

/*
 * WRITE data of at least SPLICE_MIN_DATA bytes stays in the socket until
 * the worker running the WRITE moves it into the file (backend write_fd;
 * TCP splices socket -> pipe -> file): one copy instead of two, and no
 * buffer of that size.  Measured on loopback into tmpfs (orfad CPU per
 * GiB written): 1 MiB writes 15-20% less with splice, 512 KiB 20% less,
 * 256 KiB even, 128 KiB 10-40% more (pausing and waking the loop for
 * each write costs more than the copy saved).  Queue and connection
 * modes only: the sequential loop would wait for a slow client's data
 * itself.  ORFA_NO_SPLICE=1 in the environment turns it off (for such
 * comparisons).
 */
#define SPLICE_MIN_DATA		(512u * 1024)

/* The transport's defer resolver, on the receiving thread. */
static int conn_defer(void *arg, const struct orfa_hdr *h)
{
	struct sconn *c = arg;

	return h->opcode == ORFA_OP_WRITE && h->data_len >= SPLICE_MIN_DATA &&
	       c->hello_done && !(h->flags & ORFA_F_REPLY) &&
	       __atomic_load_n(&c->splice_ok, __ATOMIC_RELAXED);
}

/* On the receiving thread before the first recv; a transport without
 * two-phase receive keeps the usual path. */
static void conn_defer_setup(struct sconn *c)
{
	if (c->srv->cfg.threading == ORFA_THREADING_SEQUENTIAL ||
	    getenv("ORFA_NO_SPLICE"))
		return;
	c->splice_ok = 1;
	if (orfa_conn_set_defer(c->tc, conn_defer, c) != 0)
		c->splice_ok = 0;
}

/* ---- connection objects --------------------------------------------------- */

static struct sconn *conn_new(struct orfa_server *srv, struct orfa_conn *tc)
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
	return c;
}

/* Last step of teardown, on the owning thread; nothing refers to c. */
static void conn_free(struct sconn *c)
{
	struct orfa_server *srv = c->srv;

	if (c->ev_read)
		event_free(c->ev_read);
	if (c->ev_write)
		event_free(c->ev_write);
	if (c->ev_wake)
		event_free(c->ev_wake);
	if (c->ev_more)
		event_free(c->ev_more);
	if (c->loop)
		loop_detach(c);
	pthread_mutex_lock(&srv->clock);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	pthread_mutex_unlock(&srv->clock);
	/* Transport first: queued replies let go of their file objects. */
	orfa_conn_put(&c->tc);
	access_session_end(&c->s);
	log_debug("%s: connection %llu freed", c->s.peer,
		  (unsigned long long)c->s.id);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/*
 * Stop reading c and start its teardown (receiving thread).  In loop
 * modes the caller must not use c after its callback's final
 * conn_progress, which completes the teardown.
 */
static void conn_close(struct sconn *c)
{
	if (c->closing)
		return;
	pthread_mutex_lock(&c->lock);
	c->closing = 1;
	pthread_mutex_unlock(&c->lock);
	if (c->ev_read && c->read_on)
		event_del(c->ev_read);
	if (c->ev_write && c->write_on)
		event_del(c->ev_write);
	if (c->ev_more)
		event_del(c->ev_more);
	c->read_on = c->write_on = 0;
	orfa_conn_shutdown(c->tc);
}

/* Drop c's locks (and cancel its parked waiters) in its export's table. */
static void conn_drop_locks(struct sconn *c)
{
	if (c->s.ex)
		orfa_locks_drop_conn(c->s.ex->locks, c->s.id);
}

/* Loop modes: advance the teardown; returns 1 when c was freed. */
static int conn_teardown_step(struct sconn *c)
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
	conn_free(c);
	return 1;
}

/* Connection mode: the same, waiting instead of returning. */
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
static void conn_recv_failed(struct sconn *c, int err)
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
	pthread_mutex_lock(&c->lock);
	c->inflight++;
	c->inflight_bytes += r->cost;
	pthread_mutex_unlock(&c->lock);
}

/*
 * One received frame: check it, hand it on.  The frame stays on loan from
 * the transport (which allows several at once, returned from any thread)
 * until the request is finished, so file data is never copied here.
 */
static void conn_handle_frame(struct sconn *c, struct orfa_rxmsg *rx)
{
	size_t dlen = rx->hdr.data_len, hlen = rx->head_len;
	unsigned op = rx->hdr.opcode;
	const char *why = NULL;
	struct sreq *r;
	int ret;

	if (hlen != ORFA_HDR_SIZE + (size_t)rx->hdr.body_len ||
	    (dlen && !rx->data && !rx->data_deferred)) {
		orfa_conn_recv_done(c->tc, rx);
		conn_drop(c, "transport returned an inconsistent frame");
		return;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		orfa_conn_recv_done(c->tc, rx);
		log_err("%s: out of memory for a request", c->s.peer);
		conn_close(c);
		return;
	}
	r->conn = c;
	r->rx = *rx;
	r->head = rx->head;
	r->head_len = hlen;
	r->data = rx->data;
	r->m.hdr = rx->hdr;

	if (!c->hello_done && op != ORFA_OP_HELLO) {
		sreq_free(r);
		conn_drop(c, "%s request (opcode %u) before HELLO",
			  orfa_op_name(op), op);
		return;
	}
	if (op == ORFA_OP_HELLO) {
		if (c->hello_done) {
			sreq_free(r);
			conn_drop(c, "second HELLO");
			return;
		}
		conn_inflight_inc(c, r);
		hello_handle(r);
		sreq_finish(r);
		return;
	}
	/* With a key, AUTH must come right after HELLO, and alone. */
	if (op == ORFA_OP_AUTH) {
		if (!c->auth_wait) {
			sreq_free(r);
			conn_drop(c, "AUTH request the server did not ask for");
			return;
		}
		conn_inflight_inc(c, r);
		auth_handle(r);
		sreq_finish(r);
		return;
	}
	if (c->auth_wait) {
		sreq_free(r);
		conn_drop(c, "%s request (opcode %u) before AUTH",
			  orfa_op_name(op), op);
		return;
	}
	ret = orfa_req_decode(&r->m, r->head + ORFA_HDR_SIZE, &why);
	if (ret == -ENOSYS && (r->m.hdr.flags & ORFA_F_REPLY) == 0) {
		log_debug("%s: unknown opcode %u: ENOSYS", c->s.peer, op);
		conn_inflight_inc(c, r);
		sreq_reply_err(r, ENOSYS);
		sreq_finish(r);
		return;
	}
	if (ret < 0) {
		sreq_free(r);
		conn_drop(c, "malformed %s request: %s", orfa_op_name(op),
			  why ? why : strerror(-ret));
		return;
	}
	r->m.data = r->data;
	r->m.data_len = (uint32_t)dlen;
	conn_inflight_inc(c, r);
	if (c->srv->cfg.threading != ORFA_THREADING_QUEUE) {
		dispatch_request(r);
		return;
	}
	if (rx->data_deferred) {
		/* A worker takes the data from the socket; the loop reads
		 * nothing more of c until then (conn_may_read). */
		pthread_mutex_lock(&c->lock);
		c->rx_deferred = 1;
		pthread_mutex_unlock(&c->lock);
		queue_push(c->srv, r);
		return;
	}
	if (may_run_inline(c, r))
		c->inline_ns += run_timed(c->srv, r);
	else
		queue_push(c->srv, r);
}

/*
 * Loop modes: may c be read now?  Not while it has max_inflight requests
 * unfinished, or its queued replies plus what its unfinished requests
 * hold and will send reach max_outq -- but one request at a time always
 * goes, however big.
 */
static int conn_may_read(struct sconn *c)
{
	size_t queued = orfa_conn_queued_bytes(c->tc), bytes;
	unsigned inflight;
	int deferred;

	/* Parked lock requests do not count: the unlock that frees them
	 * may be the next request on this very connection. */
	pthread_mutex_lock(&c->lock);
	inflight = c->inflight - c->parked;
	bytes = c->inflight_bytes;
	deferred = c->rx_deferred;
	pthread_mutex_unlock(&c->lock);
	if (deferred || inflight >= c->srv->cfg.max_inflight ||
	    queued >= c->srv->cfg.max_outq)
		return 0;
	return inflight == 0 || bytes + queued < c->srv->cfg.max_outq;
}

static void conn_pause(struct sconn *c)
{
	log_debug("%s: back-pressure: reading paused", c->s.peer);
	pthread_mutex_lock(&c->lock);
	c->read_paused = 1;
	pthread_mutex_unlock(&c->lock);
	if (c->read_on)
		event_del(c->ev_read);
	c->read_on = 0;
}

/* Loop modes: read frames until the transport has no whole one left. */
static void conn_read(struct sconn *c)
{
	struct orfa_rxmsg rx;
	unsigned frames = 0;
	int ret;

	c->inline_ns = 0;	/* a new read burst */
	while (!c->closing && c->read_on && !c->close_after_flush) {
		if (!conn_may_read(c)) {
			conn_pause(c);
			break;
		}
		if (c->inline_ns >= INLINE_BUDGET_NS) {
			/* A timer, not event_active: it fires after the next
			 * poll, so connections that became readable since
			 * get their turn first. */
			static const struct timeval now = { 0, 0 };

			evtimer_add(c->ev_more, &now);
			break;
		}
		memset(&rx, 0, sizeof(rx));
		ret = orfa_conn_recv(c->tc, &rx);
		if (ret == -EAGAIN)
			break;
		if (ret < 0) {
			conn_recv_failed(c, ret);
			break;
		}
		/* A second frame in one burst: the replies run here go out
		 * together when the burst ends (one sendmsg, one wake-up
		 * of the client). */
		if (++frames == 2)
			orfa_conn_cork(c->tc, 1);
		conn_handle_frame(c, &rx);
	}
	if (frames >= 2) {
		ret = orfa_conn_cork(c->tc, 0);
		if (ret < 0 && !c->closing)
			conn_recv_failed(c, ret);
	}
}

/*
 * Loop modes: bring c's events in line with its state: flush, watch for
 * writability, resume reading, close, tear down.  Called last in every
 * callback of c: c may be freed on return.
 */
static void conn_progress(struct sconn *c)
{
	int failed, ret, ww;

	for (;;) {
		if (c->closing) {
			conn_teardown_step(c);
			return;
		}
		pthread_mutex_lock(&c->lock);
		failed = c->send_failed;
		pthread_mutex_unlock(&c->lock);
		if (failed) {
			const char *why = orfa_conn_last_error(c->tc);

			log_info("%s: connection lost: %s", c->s.peer,
				 why && *why ? why : "send failed");
			conn_close(c);
			continue;
		}
		ww = orfa_conn_want_write(c->tc);
		if (ww) {
			ret = orfa_conn_flush(c->tc);
			if (ret < 0 && ret != -EAGAIN) {
				conn_recv_failed(c, ret);
				continue;
			}
			ww = orfa_conn_want_write(c->tc);
		}
		if (ww && !c->write_on) {
			event_add(c->ev_write, NULL);
			c->write_on = 1;
		} else if (!ww && c->write_on) {
			event_del(c->ev_write);
			c->write_on = 0;
		}
		if (c->close_after_flush) {
			if (!ww) {
				log_debug("%s: closing after refused HELLO",
					  c->s.peer);
				conn_close(c);
				continue;
			}
			return;
		}
		if (!c->read_on && conn_may_read(c)) {
			pthread_mutex_lock(&c->lock);
			c->read_paused = 0;
			pthread_mutex_unlock(&c->lock);
			event_add(c->ev_read, NULL);
			c->read_on = 1;
			/* Whole frames may wait inside the transport already:
			 * no EV_READ would announce them. */
			conn_read(c);
			continue;
		}
		return;
	}
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *c = arg;

	conn_read(c);
	conn_progress(c);
}

/* After a yield (conn_read): read on if reading is still on. */
static void on_more(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *c = arg;

	if (c->read_on)
		conn_read(c);
	conn_progress(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	conn_progress(arg);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *c = arg;

	pthread_mutex_lock(&c->lock);
	c->wake_pending = 0;
	pthread_mutex_unlock(&c->lock);
	conn_progress(c);
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
	snprintf(name, sizeof(name), "orfad-c%llu", (unsigned long long)c->s.id);
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

static void zombies_join(struct orfa_server *srv)
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

/* ---- event loops (loop modes) --------------------------------------------- */

/* On c's loop thread: give c its events and start reading it. */
static void conn_attach(struct sconn *c)
{
	struct sloop *l = c->loop;
	int fd = orfa_conn_fd(c->tc);

	c->lnext = l->conns;
	c->lprev = NULL;
	if (l->conns)
		l->conns->lprev = c;
	l->conns = c;
	c->ev_read = event_new(l->base, fd, EV_READ | EV_PERSIST, on_read, c);
	c->ev_write = event_new(l->base, fd, EV_WRITE | EV_PERSIST, on_write,
				c);
	c->ev_wake = event_new(l->base, -1, 0, on_wake, c);
	c->ev_more = evtimer_new(l->base, on_more, c);
	if (!c->ev_read || !c->ev_write || !c->ev_wake || !c->ev_more) {
		log_err("%s: out of memory for connection events", c->s.peer);
		c->closing = 1;
		conn_free(c);
		return;
	}
	conn_defer_setup(c);
	c->read_on = 1;
	event_add(c->ev_read, NULL);
}

/* From conn_free, on the loop thread. */
static void loop_detach(struct sconn *c)
{
	struct sloop *l = c->loop;

	if (c->lprev)
		c->lprev->lnext = c->lnext;
	else
		l->conns = c->lnext;
	if (c->lnext)
		c->lnext->lprev = c->lprev;
	pthread_mutex_lock(&l->lock);
	l->nconns--;
	pthread_mutex_unlock(&l->lock);
}

/* Accepting thread: give c to the loop with the fewest connections. */
static void loop_hand_over(struct orfa_server *srv, struct sconn *c)
{
	struct sloop *l = &srv->loops[0];
	unsigned best = ~0u;

	for (unsigned i = 0; i < srv->nloops; i++) {
		struct sloop *x = &srv->loops[i];
		unsigned n;

		if (i > 0 && !x->started)
			continue;
		pthread_mutex_lock(&x->lock);
		n = x->nconns;
		pthread_mutex_unlock(&x->lock);
		if (n < best) {
			best = n;
			l = x;
		}
	}
	c->loop = l;
	pthread_mutex_lock(&l->lock);
	l->nconns++;
	if (l->idx > 0) {
		c->lnext = l->pending;
		l->pending = c;
		event_active(l->ev_attach, EV_READ, 0);
	}
	pthread_mutex_unlock(&l->lock);
	if (l->idx == 0)
		conn_attach(c);
}

static void on_attach(evutil_socket_t fd, short what, void *arg)
{
	struct sloop *l = arg;
	struct sconn *c, *next;

	pthread_mutex_lock(&l->lock);
	c = l->pending;
	l->pending = NULL;
	pthread_mutex_unlock(&l->lock);
	for (; c; c = next) {
		next = c->lnext;
		conn_attach(c);
	}
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
}

/* On l's thread once it stops: close its connections and run until each
 * is torn down (their requests finish on the workers, which wake us). */
static void loop_drain(struct sloop *l)
{
	struct timeval tv = { 1, 0 };
	struct event *keep;
	struct sconn *c, *next;

	on_attach(-1, 0, l);
	for (c = l->conns; c; c = c->lnext)
		conn_close(c);
	for (c = l->conns; c; c = next) {
		next = c->lnext;
		conn_progress(c);
	}
	/* Keeps the loop waiting (not spinning) while workers finish. */
	keep = event_new(l->base, -1, EV_PERSIST, on_keepalive, NULL);
	if (keep)
		event_add(keep, &tv);
	while (l->conns)
		event_base_loop(l->base, EVLOOP_ONCE);
	if (keep)
		event_free(keep);
}

static void on_loop_stop(evutil_socket_t fd, short what, void *arg)
{
	struct sloop *l = arg;

	l->stop = 1;
	event_base_loopbreak(l->base);
}

static void *loop_main(void *arg)
{
	struct sloop *l = arg;
	char name[32];

	snprintf(name, sizeof(name), "orfad-l%u", l->idx);
	name[15] = '\0';
	pthread_setname_np(pthread_self(), name);
	while (!l->stop)
		if (event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY) < 0) {
			log_err("event loop %u failed", l->idx);
			break;
		}
	loop_drain(l);
	return NULL;
}

static int loops_create(struct orfa_server *srv)
{
	unsigned n = 1;

	if (srv->cfg.threading == ORFA_THREADING_QUEUE) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		n = srv->cfg.loops ? srv->cfg.loops :
		    cpus > 1 ? (unsigned)cpus : 1;
		if (n > 8 && !srv->cfg.loops)
			n = 8;
	}
	if (srv->cfg.threading == ORFA_THREADING_CONNECTION)
		n = 1;
	srv->loops = calloc(n, sizeof(*srv->loops));
	if (!srv->loops)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		struct sloop *l = &srv->loops[i];

		l->srv = srv;
		l->idx = i;
		pthread_mutex_init(&l->lock, NULL);
		srv->nloops++;
		l->base = i == 0 ? srv->base : event_base_new();
		if (!l->base)
			return -ENOMEM;
		l->ev_attach = event_new(l->base, -1, 0, on_attach, l);
		if (!l->ev_attach)
			return -ENOMEM;
		if (i == 0)
			continue;
		l->ev_stop = event_new(l->base, -1, 0, on_loop_stop, l);
		if (!l->ev_stop)
			return -ENOMEM;
	}
	return 0;
}

/* Start the loop threads; one that cannot start gets no connections. */
static void loops_start(struct orfa_server *srv)
{
	for (unsigned i = 1; i < srv->nloops; i++) {
		struct sloop *l = &srv->loops[i];
		int ret = pthread_create(&l->thread, NULL, loop_main, l);

		if (ret) {
			log_warn("cannot start event loop thread: %s",
				 strerror(ret));
			continue;
		}
		l->started = 1;
	}
}

/* After accepting stopped: every loop drains; returns once all did. */
static void loops_stop(struct orfa_server *srv)
{
	for (unsigned i = 1; i < srv->nloops; i++)
		if (srv->loops[i].started)
			event_active(srv->loops[i].ev_stop, EV_READ, 0);
	loop_drain(&srv->loops[0]);
	for (unsigned i = 1; i < srv->nloops; i++) {
		if (srv->loops[i].started)
			pthread_join(srv->loops[i].thread, NULL);
		srv->loops[i].started = 0;
	}
}

static void loops_destroy(struct orfa_server *srv)
{
	for (unsigned i = 0; srv->loops && i < srv->nloops; i++) {
		struct sloop *l = &srv->loops[i];

		if (l->ev_attach)
			event_free(l->ev_attach);
		if (l->ev_stop)
			event_free(l->ev_stop);
		if (i > 0 && l->base)
			event_base_free(l->base);
		pthread_mutex_destroy(&l->lock);
	}
	free(srv->loops);
	srv->loops = NULL;
	srv->nloops = 0;
}

/* ---- accepting ---------------------------------------------------------- */

static void conn_setup(struct orfa_server *srv, struct orfa_conn *tc)
{
	struct sconn *c = conn_new(srv, tc);
	int ret;

	if (!c) {
		log_err("out of memory for a new connection");
		orfa_conn_put(&tc);
		return;
	}
	log_info("%s: connection %llu accepted", c->s.peer,
		 (unsigned long long)c->s.id);
	if (srv->cfg.threading == ORFA_THREADING_CONNECTION) {
		pthread_t th;

		pthread_mutex_lock(&srv->clock);
		srv->nthreads++;
		pthread_mutex_unlock(&srv->clock);
		ret = pthread_create(&th, NULL, conn_thread, c);
		if (ret) {
			pthread_mutex_lock(&srv->clock);
			srv->nthreads--;
			pthread_mutex_unlock(&srv->clock);
			log_err("%s: cannot start connection thread: %s",
				c->s.peer, strerror(ret));
			c->closing = 1;
			c->teardown_stage = 2;
			conn_free(c);
			return;
		}
		return;		/* c belongs to its thread now */
	}
	loop_hand_over(srv, c);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	struct orfa_server *srv = arg;

	event_add(srv->ev_accept, NULL);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct orfa_server *srv = arg;
	struct orfa_conn *tc;
	int ret;

	for (int i = 0; i < 64; i++) {
		ret = orfa_listener_accept(srv->lst, &tc);
		if (ret == -EAGAIN)
			break;
		if (ret == -ECONNABORTED || ret == -EINTR)
			continue;
		if (ret < 0) {
			struct timeval tv = { 1, 0 };

			/* Out of descriptors or memory: stop accepting for
			 * a second instead of spinning on the listener. */
			log_warn("cannot accept a connection: %s",
				 strerror(-ret));
			event_del(srv->ev_accept);
			event_add(srv->ev_accept_retry, &tv);
			break;
		}
		conn_setup(srv, tc);
	}
	if (srv->cfg.threading == ORFA_THREADING_CONNECTION)
		zombies_join(srv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct orfa_server *srv = arg;

	log_notice("caught signal %d, stopping", (int)sig);
	orfa_server_stop(srv);
}

/* ---- server --------------------------------------------------------------- */

int orfa_server_create(const struct orfa_server_cfg *cfg,
		       struct orfa_backend *be, struct orfa_listener *lst,
		       struct orfa_server **out)
{
	struct orfa_exports tab;
	int ret;

	*out = NULL;
	ret = orfa_exports_shortcut(&tab, NULL, 0);
	if (ret)
		return ret;
	tab.v[0].backend = be;
	ret = orfa_server_create_exports(cfg, &tab, lst, out);
	if (ret) {
		orfa_exports_free(&tab);
		return ret;
	}
	/* Nothing reads the table before orfa_server_run. */
	(*out)->own_exports = tab;
	(*out)->exports = &(*out)->own_exports;
	return 0;
}

int orfa_server_create_exports(const struct orfa_server_cfg *cfg,
			       const struct orfa_exports *ex,
			       struct orfa_listener *lst,
			       struct orfa_server **out)
{
	struct orfa_server *srv;
	int ret;

	*out = NULL;
	if (!ex || ex->n < 1)
		return -EINVAL;
	/* Before the event base exists, so the base is created with locks
	 * and a notification channel for event_active from workers. */
	if (evthread_use_pthreads() < 0)
		return -ENOMEM;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->cfg = *cfg;
	if (srv->cfg.max_inflight == 0)
		srv->cfg.max_inflight = 256;
	if (srv->cfg.max_outq == 0)
		srv->cfg.max_outq = 64u << 20;
	if (srv->cfg.max_data == 0 || srv->cfg.max_data > ORFA_MAX_DATA_LIMIT)
		srv->cfg.max_data = ORFA_DEFAULT_MAX_DATA;
	srv->exports = ex;
	srv->lst = lst;
	srv->qtail = &srv->qhead;
	pthread_mutex_init(&srv->qlock, NULL);
	pthread_cond_init(&srv->qcond, NULL);
	pthread_mutex_init(&srv->clock, NULL);
	pthread_cond_init(&srv->ccond, NULL);
	ret = -ENOMEM;
	srv->sx = calloc((size_t)ex->n, sizeof(*srv->sx));
	if (!srv->sx)
		goto fail;
	for (int i = 0; i < ex->n; i++) {
		ret = sexport_init(&srv->sx[i], &ex->v[i]);
		if (ret)
			goto fail;
	}
	ret = -ENOMEM;
	srv->base = event_base_new();
	if (!srv->base)
		goto fail;
	srv->ev_accept = event_new(srv->base, orfa_listener_fd(lst),
				   EV_READ | EV_PERSIST, on_accept, srv);
	srv->ev_accept_retry = evtimer_new(srv->base, on_accept_retry, srv);
	if (!srv->ev_accept || !srv->ev_accept_retry)
		goto fail;
	if (event_add(srv->ev_accept, NULL) < 0)
		goto fail;
	ret = loops_create(srv);
	if (ret)
		goto fail;
	if (srv->cfg.threading == ORFA_THREADING_QUEUE) {
		ret = workers_start(srv);
		if (ret)
			goto fail;
	}
	*out = srv;
	return 0;
fail:
	orfa_server_destroy(srv);
	return ret;
}

int orfa_server_catch_signals(struct orfa_server *srv)
{
	static const int sigs[2] = { SIGINT, SIGTERM };

	for (int i = 0; i < 2; i++) {
		srv->ev_sig[i] = evsignal_new(srv->base, sigs[i], on_signal,
					      srv);
		if (!srv->ev_sig[i] || event_add(srv->ev_sig[i], NULL) < 0)
			return -ENOMEM;
	}
	return 0;
}

void orfa_server_stop(struct orfa_server *srv)
{
	event_base_loopbreak(srv->base);
}

/* After the loop was broken: close every connection and wait until all
 * are torn down. */
static void server_drain(struct orfa_server *srv)
{
	struct sconn *c;

	srv->stopping = 1;
	event_del(srv->ev_accept);
	event_del(srv->ev_accept_retry);
	if (srv->cfg.threading == ORFA_THREADING_CONNECTION) {
		pthread_mutex_lock(&srv->clock);
		for (c = srv->conns; c; c = c->next)
			orfa_conn_shutdown(c->tc);
		while (srv->nthreads)
			pthread_cond_wait(&srv->ccond, &srv->clock);
		pthread_mutex_unlock(&srv->clock);
		zombies_join(srv);
		return;
	}
	loops_stop(srv);
}

int orfa_server_run(struct orfa_server *srv)
{
	int ret;

	loops_start(srv);
	ret = event_base_dispatch(srv->base);
	if (ret < 0)
		log_err("event loop failed");
	server_drain(srv);
	if (srv->workers)
		workers_stop(srv);
	return ret < 0 ? -EIO : 0;
}

void orfa_server_destroy(struct orfa_server *srv)
{
	if (!srv)
		return;
	if (srv->workers)
		workers_stop(srv);
	for (int i = 0; i < 2; i++)
		if (srv->ev_sig[i])
			event_free(srv->ev_sig[i]);
	if (srv->ev_accept)
		event_free(srv->ev_accept);
	if (srv->ev_accept_retry)
		event_free(srv->ev_accept_retry);
	loops_destroy(srv);
	if (srv->base)
		event_base_free(srv->base);
	for (int i = 0; srv->sx && i < srv->exports->n; i++)
		sexport_fini(&srv->sx[i]);
	free(srv->sx);
	orfa_exports_free(&srv->own_exports);
	pthread_cond_destroy(&srv->ccond);
	pthread_mutex_destroy(&srv->clock);
	pthread_cond_destroy(&srv->qcond);
	pthread_mutex_destroy(&srv->qlock);
	free(srv);
}
