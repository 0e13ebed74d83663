/*
 * server.c - the orfad server (server.h): configuration, creating and
 * destroying the server, accepting connections and handing each to its
 * owner (a loop, or its own thread), signals, running and stopping.
 *
 * The receive / process / send pipeline, one direction:
 *   loop.c (event loops; or conn.c's thread in connection mode) reads
 *   -> conn.c checks and decodes a frame into a request
 *   -> workers.c runs it here or queues it for a worker
 *   -> dispatch.c / hello.c handle it
 *   -> request.c answers and finishes it, and wakes the connection's
 *      owner, which flushes, resumes reading or tears down.
 *
 * Queue mode: the libevent loop threads (one per CPU, each owning some
 * of the connections; loops[0] also accepts) read whole frames from each
 * connection (non-blocking transport, until -EAGAIN), decode them, and
 * queue them to a pool of workers (mutex + condvar); requests known to be
 * short run on the loop thread instead (workers.c).  A worker runs the
 * request against the backend (dispatch.c) and sends the reply itself:
 * non-blocking sends never stall it, the transport queues what the socket
 * does not take.  Workers never touch libevent objects: when output is
 * left queued, or a paused or closing connection needs attention, they
 * activate that connection's wake event and the loop thread flushes
 * (EV_WRITE while the transport wants it) or tears down.  Sequential mode
 * runs requests on the loop thread instead; connection mode gives each
 * connection a thread doing blocking receive / run / send, and the loop
 * thread only accepts.
 *
 * Back-pressure and teardown are described in loop.c and conn.c.
 */
#include "server_impl.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

/* Data segment limit before HELLO negotiates one: HELLO carries none. */
#define PRE_HELLO_MAX_DATA	4096u

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

/* ---- accepting ---------------------------------------------------------- */

/* Make a connection of tc, if bounds_admit lets it in.  Returns 1 when
 * accepting should pause (descriptors short). */
static int conn_setup(struct orfa_server *srv, struct orfa_conn *tc)
{
	struct sockaddr_storage ss;
	struct sconn *c;
	int ret, admit;

	memset(&ss, 0, sizeof(ss));
	if (orfa_conn_peer_addr(tc, &ss) < 0)
		memset(&ss, 0, sizeof(ss));	/* unknown: HELLO checks */
	admit = bounds_admit(srv, tc, &ss);
	if (!admit) {		/* refused: the next one may be welcome */
		orfa_conn_put(&tc);
		return 0;
	}
	c = conn_new(srv, tc);
	if (!c) {
		log_err("out of memory for a new connection");
		orfa_conn_put(&tc);
		return 1;
	}
	pthread_mutex_lock(&srv->clock);
	c->addr = ss;
	pthread_mutex_unlock(&srv->clock);
	log_info("%s: connection %llu accepted", c->s.peer,
		 (unsigned long long)c->s.id);
	if (srv->cfg.threading == ORFA_THREADING_CONNECTION) {
		ret = conn_thread_start(c);
		if (ret) {
			log_err("%s: cannot start connection thread: %s",
				c->s.peer, strerror(-ret));
			c->closing = 1;
			c->teardown_stage = 2;
			conn_free(c);
			return 1;
		}
		return admit == 2;	/* c belongs to its thread now */
	}
	loop_hand_over(srv, c);
	return admit == 2;
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

			/* Out of descriptors or memory: drop connections
			 * that have not finished their handshake, oldest
			 * first, and accept again once their descriptors
			 * are back (soon), or in a second; the listener is
			 * off meanwhile, so the loop does not spin. */
			if ((ret == -EMFILE || ret == -ENFILE) &&
			    bounds_shed(srv, 16) > 0)
				tv = (struct timeval){ 0, 50000 };
			else
				bounds_log(NULL, "orfad", "cannot accept a "
					   "connection: %s", strerror(-ret));
			event_del(srv->ev_accept);
			event_add(srv->ev_accept_retry, &tv);
			break;
		}
		if (conn_setup(srv, tc)) {
			/* Descriptors or memory short: accept again once
			 * the connections dropped meanwhile are torn down,
			 * not now (the listener stays readable). */
			struct timeval tv = { 0, 20000 };

			event_del(srv->ev_accept);
			event_add(srv->ev_accept_retry, &tv);
			break;
		}
	}
	if (srv->cfg.threading == ORFA_THREADING_CONNECTION)
		zombies_join(srv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct orfa_server *srv = arg;

	if (sig == SIGHUP) {
		if (srv->reload)
			srv->reload(srv->reload_arg);
		else
			log_notice("caught SIGHUP: no exports file to re-read "
				   "(--export/--ramfs), ignored");
		return;
	}
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
	/* In-process servers (tests, fuzzers) trust their one peer. */
	ret = orfa_exports_shortcut(&tab, NULL, 0,
				    "no_root_squash,insecure,dev,suid", NULL, 0);
	if (ret)
		return ret;
	tab.v[0].backend = be;
	ret = orfa_server_create_exports(cfg, &tab, lst, out);
	if (ret) {
		orfa_exports_free(&tab);
		return ret;
	}
	/* Nothing reads the table before orfa_server_run; the generation
	 * points to it, so move it to its final place. */
	(*out)->own_exports = tab;
	(*out)->gen->tab = &(*out)->own_exports;
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
	bounds_resolve(srv);
	srv->lst = lst;
	srv->qtail = &srv->qhead;
	pthread_mutex_init(&srv->qlock, NULL);
	pthread_cond_init(&srv->qcond, NULL);
	pthread_mutex_init(&srv->clock, NULL);
	pthread_cond_init(&srv->ccond, NULL);
	ret = sgen_publish(srv, ex);
	if (ret)
		goto fail;
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
	ret = bounds_start(srv);
	if (ret)
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
	static const int sigs[3] = { SIGINT, SIGTERM, SIGHUP };

	for (int i = 0; i < 3; i++) {
		srv->ev_sig[i] = evsignal_new(srv->base, sigs[i], on_signal,
					      srv);
		if (!srv->ev_sig[i] || event_add(srv->ev_sig[i], NULL) < 0)
			return -ENOMEM;
	}
	return 0;
}

void orfa_server_on_reload(struct orfa_server *srv, void (*fn)(void *),
			   void *arg)
{
	srv->reload = fn;
	srv->reload_arg = arg;
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
	if (srv->ev_sweep)
		event_del(srv->ev_sweep);
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
	for (int i = 0; i < 3; i++)
		if (srv->ev_sig[i])
			event_free(srv->ev_sig[i]);
	if (srv->ev_accept)
		event_free(srv->ev_accept);
	if (srv->ev_accept_retry)
		event_free(srv->ev_accept_retry);
	if (srv->ev_sweep)
		event_free(srv->ev_sweep);
	loops_destroy(srv);
	if (srv->base)
		event_base_free(srv->base);
	sgen_free_all(srv);
	orfa_exports_free(&srv->own_exports);
	pthread_cond_destroy(&srv->ccond);
	pthread_mutex_destroy(&srv->clock);
	pthread_cond_destroy(&srv->qcond);
	pthread_mutex_destroy(&srv->qlock);
	free(srv);
}
