/*
 * server_impl.h - what server.c and dispatch.c share: the server, the
 * connection and the request objects, and the calls dispatch uses to
 * answer and finish requests.  Not for use outside server/.
 *
 * Lifetimes.  A connection (struct sconn) lives until it is closing, no
 * request of it is left (inflight == 0) and its final teardown ran on the
 * thread that owns it (loop thread, or its own thread in connection mode).
 * Each request (struct sreq) counts in its connection's inflight from the
 * moment it is read until sreq_finish, so a request may always use
 * r->conn.  A request keeps its received frame on loan from the
 * transport (rx) until it is finished; the decoded message points into it.
 *
 * Lock order: sconn.lock, then libevent's base lock (event_active is
 * called under sconn.lock).  The lock manager's mutex is never held while
 * calling back into this code (see locks.h).
 */
#ifndef ORFA_SERVER_IMPL_H
#define ORFA_SERVER_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include "backend.h"
#include "codec.h"
#include "exports.h"
#include "locks.h"
#include "server.h"
#include "session.h"
#include "transport.h"

struct event;
struct event_base;
struct sexport;
struct sview;

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

struct orfa_server {
	struct orfa_server_cfg cfg;
	const struct orfa_exports *exports;	/* what is served (borrowed,
						 * or own_exports) */
	struct orfa_exports own_exports;	/* orfa_server_create's
						 * one-export table */
	struct sexport *sx;		/* sx[i] serves exports->v[i]
					 * (access.h) */
	struct orfa_listener *lst;
	struct event_base *base;
	struct event *ev_accept;	/* loop thread */
	struct event *ev_accept_retry;	/* loop thread: after EMFILE */
	struct event *ev_sig[2];	/* SIGINT, SIGTERM */

	/* Worker queue (queue mode). */
	pthread_mutex_t qlock;		/* guards q*, stopping */
	pthread_cond_t qcond;
	struct sreq *qhead, **qtail;
	int qstop;
	pthread_t *workers;
	unsigned nworkers;
	/* Queue mode: per opcode, the share of recent runs that took longer
	 * than INLINE_MAX_NS (server.c), in 1/256, a moving average over
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
};

struct sconn {
	struct orfa_server *srv;
	struct sconn *prev, *next;	/* srv->conns, under srv->clock */
	struct sloop *loop;		/* loop modes: the owning loop */
	struct sconn *lprev, *lnext;	/* loop->conns (loop thread), or
					 * loop->pending (lnext, loop->lock) */
	uint64_t id;			/* lock owner part, never reused */
	struct orfa_conn *tc;
	char peer[64];

	/* The session (access.h, hello.c): written by the receiving thread
	 * during the handshake, before any other request of c runs; then
	 * read-only until teardown. */
	struct sexport *ex;		/* the export; NULL before HELLO */
	struct sview *view;		/* subdirectory sessions, else NULL */
	uint64_t root_nodeid;		/* the client's root */
	uint64_t root_ino;
	int auth_wait;			/* HELLO asked for AUTH: nothing else
					 * may come before it */
	uint8_t cnonce[ORFA_NONCE_SIZE], snonce[ORFA_NONCE_SIZE];
	char *export_path;		/* as sent in HELLO (AUTH proof
					 * input), with a key only */

	/* Owned by the receiving thread (loop or connection thread). */
	struct event *ev_read, *ev_write, *ev_wake;
	struct event *ev_more;		/* queue mode: read on after a yield */
	int read_on, write_on;
	int hello_done;
	int close_after_flush;		/* HELLO refused: drain, then close */
	int teardown_stage;		/* 0, 1 (locks dropped), 2 (done) */
	uint32_t max_data;		/* negotiated in HELLO */
	uint64_t features;
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

	struct ftab files;
	struct nmap nodes;
};

struct sreq {
	struct sreq *next;		/* worker queue */
	struct sconn *conn;
	struct orfa_msg m;		/* decoded request; points into buf */
	struct orfa_lk_waiter waiter;	/* parked SETLK / FLOCK */
	/* Parking, under conn->lock: the handler that parked r has not
	 * returned yet (in_dispatch); a wake-up that came meanwhile is left
	 * to it (woken, wake_status). */
	int in_dispatch, woken, wake_status;
	struct orfa_rxmsg rx;		/* the frame, on loan */
	size_t cost;			/* counted in conn->inflight_bytes */
	size_t head_len;
	uint8_t *head;			/* frame header + body (rx.head) */
	void *data;			/* data segment (rx.data) or NULL */
};

/* Handler result meaning "parked: do not finish the request now". */
#define SREQ_PARKED 1

/*
 * Send the reply to r.  rep (may be NULL for an empty body) holds the
 * status (hdr.status, positive errno or 0) and reply arguments; opcode,
 * req_id and lengths are filled in here.  tx (may be NULL) carries the
 * data segment and its done callback, which the transport calls (also on
 * failure).  Returns 0 or the negative errno of the send; failures are
 * also noted on the connection, which the owning thread then closes.
 */
int sreq_reply(struct sreq *r, struct orfa_msg *rep, struct orfa_txmsg *tx);
/*
 * r's data segment is still in the connection (r->rx.data_deferred: a
 * WRITE of at least SPLICE_MIN_DATA bytes in queue or connection mode):
 * take it to d, a file range, or into memory when d is NULL (r->data and
 * r->m.data then point at it).  Any thread, once; the connection is read
 * again afterwards.  0, or a negative errno after which the connection is
 * closed (its owner is told).  A request finished without taking its data
 * has it read and dropped by sreq_finish.
 */
int sreq_take_data(struct sreq *r, struct orfa_rxdest *d);
/* Empty error reply with status err (positive errno). */
void sreq_reply_err(struct sreq *r, int err);
/* The request is over: free it and let the connection progress. */
void sreq_finish(struct sreq *r);
/* A request of c stopped running without finishing (it was parked):
 * wake c's owner if c is paused or closing.  Caller holds c->lock. */
void conn_kick_locked(struct sconn *c);

/* dispatch.c: run one decoded request (any thread); answers it unless it
 * is parked, then finishes it (sreq_finish) unless parked. */
void dispatch_request(struct sreq *r);
/* hello.c: HELLO, on the receiving thread.  Sets conn->hello_done (and
 * conn->auth_wait when AUTH must follow), or conn->close_after_flush when
 * refused.  Answers, does not finish. */
void dispatch_hello(struct sreq *r);
/* hello.c: AUTH, on the receiving thread, only while conn->auth_wait.
 * Opens the session, or refuses and sets conn->close_after_flush. */
void dispatch_auth(struct sreq *r);
/* dispatch.c: give back every lookup reference and file of c (teardown). */
void dispatch_conn_cleanup(struct sconn *c);

#endif /* ORFA_SERVER_IMPL_H */
