/*
 * workers.c - where a request of orfad runs once it is read: on the
 * thread that read it (sequential and connection modes, and in queue mode
 * the requests known to be short), or on a worker of the queue-mode pool
 * (mutex + condvar queue).  Workers run the request (dispatch.c), which
 * answers through request.c; they never touch libevent objects.  Not
 * here: reading requests (conn.c, loop.c), the connection's events.
 */
#include "server_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dispatch.h"
#include "log.h"

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
 * seldom moves it: INLINE_MAX_NS is set well above a GETATTR's run time
 * for that reason.  Once a read burst of one connection has run
 * INLINE_BUDGET_NS of requests, the loop turns to its other connections
 * and comes back after the next poll (ev_more, loop.c).
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

void run_request(struct sconn *c, struct sreq *r)
{
	if (c->srv->cfg.threading != ORFA_THREADING_QUEUE) {
		dispatch_request(r);
		return;
	}
	if (r->rx.data_deferred) {
		/* A worker takes the data from the socket; the loop reads
		 * nothing more of c until then (conn_may_read, loop.c). */
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

int run_burst_spent(const struct sconn *c)
{
	return c->inline_ns >= INLINE_BUDGET_NS;
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

int workers_start(struct orfa_server *srv)
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
			log_err("cannot start worker thread: %s",
				strerror(ret));
			return -ret;
		}
		srv->nworkers++;
		snprintf(name, sizeof(name), "orfad-w%u", i);
		name[15] = '\0';
		pthread_setname_np(srv->workers[i], name);
	}
	return 0;
}

void workers_stop(struct orfa_server *srv)
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
