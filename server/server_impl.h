/*
 * server_impl.h - what the files that run orfad's connections share: the
 * server, its event loops and the connection object (struct sconn), and
 * the calls between those files.  Not for the request handlers, which see
 * a request through request.h only.
 *
 * Lifetimes.  A connection (struct sconn) lives until it is closing, no
 * request of it is left (inflight == 0) and its final teardown ran on the
 * thread that owns it (loop thread, or its own thread in connection mode).
 * Each request (struct sreq, request.h) counts in its connection's
 * inflight from the moment it is read until sreq_finish, so a request may
 * always use r->conn.
 *
 * Lock order: orfa_server.clock, then sconn.lock (the sweep, bounds.c),
 * then libevent's base lock (event_active is called under sconn.lock).  The lock manager's mutex is never held while
 * calling back into this code (see locks.h).
 */
#ifndef ORFA_SERVER_IMPL_H
#define ORFA_SERVER_IMPL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#include "access.h"
#include "codec.h"
#include "exports.h"
#include "request.h"
#include "server.h"
#include "transport.h"

struct event;
struct event_base;

/*
 * An event loop that owns connections (loop modes).  loops[0] runs on
 * the thread of orfa_server_run and also accepts; queue mode adds one
 * loop thread per further CPU, so receiving and short requests run on
 * every CPU while the workers take the long ones.  A connection belongs
 * to one loop for its whole life: its events live on that loop's base and
 * only that loop's thread touches them.
 */
struct sloop {
	struct orfa_server *srv;
	unsigned idx;
	struct event_base *base;	/* loops[0]: srv->base */
	pthread_t thread;		/* idx > 0, once started */
	int started;
	struct event *ev_attach;	/* pending connections handed over */
	struct event *ev_stop;		/* idx > 0: stop and drain */
	int stop;			/* loop thread */
	struct sconn *conns;		/* loop thread: attached connections */
	pthread_mutex_t lock;		/* guards pending and nconns */
	struct sconn *pending;		/* handed over, not attached yet */
	unsigned nconns;		/* owned (pending or attached) */
};

/*
 * One generation of the exports served: a table (borrowed from orfad's
 * main, or own_exports) and sx[i] serving tab->v[i].  SIGHUP publishes a
 * new generation; sessions keep the sexport they bound to, so nothing a
 * session or a HELLO in flight points to is freed before destroy.
 */
struct sgen {
	const struct orfa_exports *tab;
	struct sexport **sx;
	struct sgen *older;
};

/* Build and publish the generation serving tab (reload.c); base thread. */
int sgen_publish(struct orfa_server *srv, const struct orfa_exports *tab);
/* Free every generation and export (reload.c); at destroy. */
void sgen_free_all(struct orfa_server *srv);

struct orfa_server {
	struct orfa_server_cfg cfg;
	struct sgen *gen;		/* what is served now: atomic
					 * (server_gen); older generations
					 * stay until destroy (reload.c) */
	struct sexport *sx_all;		/* every export ever served, for
					 * destroy (sexport.all_next) */
	struct orfa_exports own_exports;	/* orfa_server_create's
						 * one-export table */
	void (*reload)(void *arg);	/* SIGHUP (orfa_server_on_reload) */
	void *reload_arg;
	struct orfa_listener *lst;
	struct event_base *base;
	struct event *ev_accept;	/* loop thread */
	struct event *ev_accept_retry;	/* loop thread: after EMFILE */
	struct event *ev_sig[3];	/* SIGINT, SIGTERM, SIGHUP */

	/* Worker queue (queue mode). */
	pthread_mutex_t qlock;		/* guards q*, stopping */
	pthread_cond_t qcond;
	struct sreq *qhead, **qtail;
	int qstop;
	pthread_t *workers;
	unsigned nworkers;
	/* Queue mode: per opcode, the share of recent runs that took longer
	 * than INLINE_MAX_NS (workers.c), in 1/256, a moving average over
	 * about 8 runs; relaxed atomics: a lost update does not matter.  It
	 * decides whether the loop thread may run one itself. */
	uint32_t op_slow[ORFA_OP_MAX];

	/* Connections.  clock guards the list (the loop thread and, in
	 * connection mode, the connection threads change it). */
	pthread_mutex_t clock;
	pthread_cond_t ccond;		/* connection mode: a thread ended */
	struct sconn *conns;
	unsigned nconns;
	unsigned nthreads;		/* connection threads not yet ended */
	uint64_t next_conn_id;
	int stopping;			/* loop thread; clock for threads */

	struct sloop *loops;		/* loop modes: nloops (>= 1) */
	unsigned nloops;

	/* Bounds on peers (bounds.c). */
	struct event *ev_sweep;		/* loop thread: deadlines, idle */
	unsigned ndropped;		/* clock: conns shut down by a limit,
					 * not freed yet (not counted) */
	unsigned ndeferred;		/* atomic: deferred WRITE data
					 * segments not yet taken */
	unsigned max_deferred;		/* cap on ndeferred */
	unsigned fd_high;		/* an accepted descriptor at or above
					 * this means descriptors run short */
	size_t held_bytes;		/* atomic: inflight_bytes of all
					 * connections (cfg.max_queued) */
};

/* The generation of exports served now (any thread). */
static inline const struct sgen *server_gen(struct orfa_server *srv)
{
	return __atomic_load_n(&srv->gen, __ATOMIC_ACQUIRE);
}

struct sconn {
	struct orfa_server *srv;
	struct sconn *prev, *next;	/* srv->conns, under srv->clock */
	struct sloop *loop;		/* loop modes: the owning loop */
	struct sconn *lprev, *lnext;	/* loop->conns (loop thread), or
					 * loop->pending (lnext, loop->lock) */
	struct orfa_conn *tc;
	struct ssession s;		/* id, peer name, and what the
					 * handshake bound (access.h) */
	struct sockaddr_storage addr;	/* peer address (family 0: unknown) */
	int64_t t_accept;		/* ns, orfa_now_ns(); const */
	/* Atomic: read by the sweep (bounds.c) on the accepting thread. */
	int hs_done;			/* handshake finished (HELLO, AUTH) */
	int64_t t_active;		/* ns: last frame received */
	int64_t t_partial;		/* ns: a frame begun, not whole yet
					 * (loop modes; 0: none) */
	int64_t t_deferred;		/* ns: deferred data being taken
					 * (0: none) */
	int defer_held;			/* counts in srv->ndeferred */
	int dropped;			/* srv->clock: shut down by a limit */

	/* Owned by the receiving thread (loop or connection thread). */
	struct event *ev_read, *ev_write, *ev_wake;
	struct event *ev_more;		/* queue mode: read on after a yield */
	int read_on, write_on;
	int hello_done;
	int auth_wait;			/* HELLO asked for AUTH: nothing else
					 * may come before it */
	int close_after_flush;		/* HELLO refused: drain, then close */
	int teardown_stage;		/* 0, 1 (locks dropped), 2 (done) */
	int splice_ok;			/* atomic: big WRITE data may stay in
					 * the connection for write_fd (0 once
					 * the backend showed it has none) */
	uint64_t inline_ns;		/* queue mode: time spent running
					 * requests of this read burst on the
					 * loop thread */

	/* Guarded by lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* connection mode: inflight changed */
	unsigned inflight;		/* read, not yet finished */
	unsigned parked;		/* of which parked for a lock (after
					 * their handler returned) */
	size_t inflight_bytes;		/* their data + expected reply data */
	int closing;			/* nothing more is read */
	int read_paused;		/* back-pressure on */
	int wake_pending;		/* ev_wake activated, not yet run */
	int send_failed;		/* a worker found the connection dead
					 * (send, or taking deferred data) */
	int rx_deferred;		/* a request is taking its data
					 * segment from the connection
					 * (sreq_take_data): nothing is read
					 * meanwhile */
};

/*
 * The calls between the files that run connections.  They go one way:
 * server.c -> loop.c -> conn.c -> workers.c -> dispatch.h -> request.c
 * (server.c also calls conn.c and workers.c directly).
 */

/* ---- bounds.c ---------------------------------------------------------- */

/* Resolve the bounds left 0 in cfg (from RLIMIT_NOFILE and nworkers). */
void bounds_resolve(struct orfa_server *srv);
/* Start the sweep timer on srv->base: 0 or -ENOMEM. */
int bounds_start(struct orfa_server *srv);
/* Accepting thread: may tc (peer address ss, family 0 when unknown)
 * become a connection?  Drops older connections that have not finished
 * their handshake when a cap is reached or descriptors run short.  1:
 * yes; 2: yes, but descriptors run short: pause accepting until the
 * dropped ones are torn down; 0: refused (logged). */
int bounds_admit(struct orfa_server *srv, struct orfa_conn *tc,
		 const struct sockaddr_storage *ss);
/* Descriptors ran short (accept failed): drop up to n connections that
 * have not finished their handshake, oldest first.  Returns how many. */
unsigned bounds_shed(struct orfa_server *srv, unsigned n);
/* Log a limit hit by peer (address ss, name peer): once a minute per
 * address and limit, and at most a few lines a second in all. */
void bounds_log(const struct sockaddr_storage *ss, const char *peer,
		const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The defer resolver may let c's next big WRITE data stay in the
 * socket: 1 (counted, c->defer_held) or 0 (all deferred slots taken). */
int bounds_defer_take(struct sconn *c);
/* c's deferred data was taken, or never will be: give the slot back. */
void bounds_defer_put(struct sconn *c);

/* ---- loop.c (loop modes) ------------------------------------------------- */

/* Create the loops (loops[0] on srv->base) / start the threads of the
 * others (one that cannot start gets no connections) / stop them once
 * accepting stopped, returning when every connection was torn down /
 * free them.  loops_create: 0 or -ENOMEM. */
int loops_create(struct orfa_server *srv);
void loops_start(struct orfa_server *srv);
void loops_stop(struct orfa_server *srv);
void loops_destroy(struct orfa_server *srv);
/* Accepting thread: give c to the loop with the fewest connections. */
void loop_hand_over(struct orfa_server *srv, struct sconn *c);

/* ---- conn.c ----------------------------------------------------------------- */

/* A connection object for transport connection tc (taken), listed in
 * srv; NULL on ENOMEM (tc is then the caller's). */
struct sconn *conn_new(struct orfa_server *srv, struct orfa_conn *tc);
/* Last step of teardown, on the owning thread; nothing refers to c. */
void conn_free(struct sconn *c);
/* Stop reading c and start its teardown (receiving thread).  In loop
 * modes the caller must not use c after its callback's final
 * conn_progress (loop.c), which completes the teardown. */
void conn_close(struct sconn *c);
/* Loop modes: advance c's teardown; 1 when c may be freed now. */
int conn_teardown_step(struct sconn *c);
/* A receive failed with err: say why (warning for bad input), close. */
void conn_recv_failed(struct sconn *c, int err);
/* One received frame of c, on the receiving thread: check it, make a
 * request of it and run or queue it (workers.c); or drop c. */
void conn_handle_frame(struct sconn *c, struct orfa_rxmsg *rx);
/* Receiving thread, before the first receive: let big WRITE data stay in
 * the connection (queue and connection modes, when the transport can). */
void conn_defer_setup(struct sconn *c);
/* Connection mode: start c's thread, which owns c from then on: 0 or a
 * negative errno (c is still the caller's). */
int conn_thread_start(struct sconn *c);
/* Join the connection threads that ended. */
void zombies_join(struct orfa_server *srv);

/* ---- workers.c ---------------------------------------------------------------- */

/* Start the queue-mode workers (0 or a negative errno) / stop them once
 * the queue is drained. */
int workers_start(struct orfa_server *srv);
void workers_stop(struct orfa_server *srv);
/* Run the decoded request r of c, counted in flight: here, or on a
 * worker in queue mode.  r may be gone on return. */
void run_request(struct sconn *c, struct sreq *r);
/* Queue mode: has c's current read burst run enough requests on the loop
 * thread that the loop should turn to its other connections? */
int run_burst_spent(const struct sconn *c);

/* ---- request.c ------------------------------------------------------------ */

/* Give a request's frame back to the transport and free the request,
 * without counting it out of its connection (sreq_finish does both). */
void sreq_free(struct sreq *r);
/* Wake c's owner (its loop, or its thread in connection mode) to look at
 * c again.  Caller holds c->lock. */
void conn_wake_locked(struct sconn *c);

#endif /* ORFA_SERVER_IMPL_H */
