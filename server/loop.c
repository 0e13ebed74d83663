/*
 * loop.c - the libevent loops of orfad's loop modes (queue and
 * sequential) and what a loop does with the connections it owns.
 *
 * loops[0] runs on the thread of orfa_server_run and also accepts
 * (server.c); queue mode adds a loop thread per further CPU.  Each
 * connection belongs to one loop: the loop reads whole frames from it
 * (non-blocking transport, until -EAGAIN) and hands them to conn.c, then
 * brings its events in line with its state (conn_progress): flushing
 * queued replies (EV_WRITE while the transport wants it), pausing and
 * resuming reading, tearing down.  Workers never touch these events:
 * they activate the connection's wake event (request.c) and the loop
 * looks again.
 *
 * Back-pressure: a connection stops being read while it has more than
 * max_inflight requests unfinished (not counting those parked for a lock)
 * or more than max_outq bytes of replies queued or to come, and is read
 * again once below; other connections are not affected.
 *
 * Not here: checking and decoding frames (conn.c), running requests
 * (workers.c), accepting and the server's life (server.c).
 */
#include "server_impl.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

static void conn_progress(struct sconn *c);
static int conn_read(struct sconn *c);

/* ---- a connection's events ---------------------------------------------------- */

/* c is closing: stop watching it (its own events only: the wake event
 * still brings word of its last requests). */
static void loop_conn_quiet(struct sconn *c)
{
	if (c->ev_read && c->read_on)
		event_del(c->ev_read);
	if (c->ev_write && c->write_on)
		event_del(c->ev_write);
	if (c->ev_more)
		event_del(c->ev_more);
	c->read_on = c->write_on = 0;
}

static void loop_detach(struct sconn *c);

/* Free c (its teardown is done) with its events, leaving its loop. */
static void loop_conn_free(struct sconn *c)
{
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
	conn_free(c);
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
	if (inflight == 0)
		return 1;
	/* The global budget (--max-queued): a connection with requests
	 * unfinished waits; their end wakes it (request.c). */
	if (__atomic_load_n(&c->srv->held_bytes, __ATOMIC_RELAXED) >=
	    c->srv->cfg.max_queued) {
		bounds_log(&c->addr, c->s.peer, "--max-queued reached: "
			   "reading paused");
		return 0;
	}
	return bytes + queued < c->srv->cfg.max_outq;
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

/* Loop modes: read frames until the transport has no whole one left.
 * 1 when it read none and the transport wants more bytes. */
static int conn_read(struct sconn *c)
{
	struct orfa_rxmsg rx;
	unsigned frames = 0;
	int ret = 0;

	c->inline_ns = 0;	/* a new read burst */
	while (!c->closing && c->read_on && !c->close_after_flush) {
		if (!conn_may_read(c)) {
			conn_pause(c);
			break;
		}
		if (run_burst_spent(c)) {
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
		int rc = orfa_conn_cork(c->tc, 0);

		if (rc < 0 && !c->closing)
			conn_recv_failed(c, rc);
	}
	return frames == 0 && ret == -EAGAIN;
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
			loop_conn_quiet(c);
			if (conn_teardown_step(c))
				loop_conn_free(c);
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

	/* Bytes came but no whole frame: one has begun.  The sweep drops c
	 * if it is not whole in --msg-timeout (bounds.c); the next frame
	 * clears the mark (conn_handle_frame).  Only here: elsewhere a read
	 * finding nothing does not mean bytes came. */
	if (conn_read(c) && !__atomic_load_n(&c->t_partial, __ATOMIC_RELAXED))
		__atomic_store_n(&c->t_partial, orfa_now_ns(),
				 __ATOMIC_RELEASE);
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

/* ---- event loops ------------------------------------------------------------ */


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
		loop_conn_free(c);
		return;
	}
	conn_defer_setup(c);
	c->read_on = 1;
	event_add(c->ev_read, NULL);
}

/* From loop_conn_free, on the loop thread. */
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
void loop_hand_over(struct orfa_server *srv, struct sconn *c)
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

int loops_create(struct orfa_server *srv)
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
void loops_start(struct orfa_server *srv)
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
void loops_stop(struct orfa_server *srv)
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

void loops_destroy(struct orfa_server *srv)
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

