/*
 * client_impl.h - what client.c (calls, slots, receiving, sending) and
 * client_session.c (connecting, threads, timeouts, interrupts, forgets)
 * share.  Not for ops: they use client.h.
 *
 * Locks: cconn.lock guards a connection's slot table and the answered /
 * linked flags of the calls in it; orfa_client.tlock guards the timer's
 * interrupt queue and the stopping flag; orfa_client.flock the forget
 * batches; orfa_client.data_lock the calls' data_done flags.  Order:
 * cconn.lock before tlock; flock and data_lock are never held with
 * another.
 */
#ifndef ORFA_CLIENT_IMPL_H
#define ORFA_CLIENT_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "clock.h"
#include "client.h"
#include "transport.h"

#define SLOT_BITS	12
#define NSLOTS		(1u << SLOT_BITS)	/* calls in flight per connection */
#define SLOT_MASK	(NSLOTS - 1)
#define HEAD_INLINE	320			/* most request headers fit */
#define HEAD_MAX	(ORFA_HDR_SIZE + ORFA_MAX_BODY)
#define TICK_MS		100			/* timer period */
#define HELLO_WAIT_MS	10000			/* HELLO reply, when no timeout set */

struct cconn;

struct orfa_call {
	struct orfa_client *cl;
	atomic_int refs;		/* sender + table (+ receiver claim) */
	unsigned opcode;
	unsigned flags;			/* ORFA_CALL_* */
	int pin;			/* connection index, or -1 */
	struct cconn *cc;		/* set at registration */
	uint64_t req_id;
	int64_t deadline;		/* CLOCK_MONOTONIC ns; 0 = none */
	bool answered;			/* cc->lock: callback taken */
	bool linked;			/* cc->lock: in cc->slots */
	orfa_call_fn fn;
	orfa_orphan_fn orphan;
	orfa_reg_hook hook;		/* run once registered, before sending */
	void *hook_arg;
	struct orfa_call *next_intr;	/* cl->tlock: interrupt queue */
	struct orfa_msg msg;		/* the request (names cleared after send) */
	void *sink;			/* reply data lands here (owned) */
	size_t sink_len;
	uint8_t *head;			/* encoded header segment */
	uint8_t *head_heap;		/* head when it did not fit inline */
	void *ctx;			/* caller's context, after this struct */
	bool data_done;			/* cl->data_lock: transport done() ran */
	uint32_t epoch;			/* cl->epoch when the call was made */
	struct orfa_conn *conn;		/* cc->conn at registration (ref) */
	/* Resending after a reconnect (cl->reconnect, idempotent calls):
	 * owned copies of the names and of the data segment. */
	bool retry;
	/* Not idempotent (issue 6): resolved after a reconnect instead of
	 * blindly resent (client.c, call_resolve); enoent_ok: a resent
	 * UNLINK/RMDIR/RENAME answered ENOENT counts as done. */
	bool resolve, enoent_ok;
	char *names;
	void *rdata;
	size_t rdata_len;
	struct orfa_call *next_resend;	/* cc->lock: cc->resend list */
	uint8_t head_inline[HEAD_INLINE];
};

struct cconn {
	struct orfa_client *cl;
	unsigned idx;
	struct orfa_conn *conn;
	pthread_t rx;
	bool rx_started;
	char name[96];			/* "host:port#idx" for logs */

	pthread_mutex_t lock;		/* everything below, unless noted */
	pthread_cond_t slot_cond;	/* a slot was freed or conn died */
	bool dead;
	unsigned nfree;
	unsigned nanswered;		/* orphans still in slots */
	unsigned waiters;
	struct orfa_call *slots[NSLOTS];
	uint32_t gen[NSLOTS];
	uint32_t free_stack[NSLOTS];
	atomic_uint inflight;		/* registered calls; read without lock */
	struct orfa_call *claimed;	/* receiver thread only: sink handed out */
	/* Reconnecting (cc->lock): conn is replaced while dead.  epoch is
	 * cl->epoch at the last reconnect; remap translates the previous
	 * connection's file ids for calls made before it. */
	uint32_t epoch;
	struct fh_pair { uint64_t old_fh, new_fh; } *remap;
	unsigned nremap, remap_cap;
	struct orfa_call *resend;	/* calls to send again once back */
};

struct orfa_client {
	struct orfa_session_info info;
	char *transport, *host, *port, *export_path;
	int timeout_ms;
	unsigned n;
	struct cconn **conns;
	atomic_uint rr;			/* tie breaker for least-loaded */
	atomic_uint_fast64_t noreply_id;

	pthread_t timer;
	bool timer_started;
	pthread_mutex_t tlock;		/* stopping, intr_head */
	pthread_cond_t tcond;
	bool stopping;
	struct orfa_call *intr_head;

	pthread_mutex_t flock;		/* forget batches, one per connection */
	struct orfa_forget_one *fbatch;	/* n x ORFA_MAX_FORGET entries */
	unsigned *fcount;		/* n counts */
	bool stopped;			/* no more sends */
	bool stop_done;			/* orfa_client_stop finished */

	pthread_mutex_t data_lock;	/* call->data_done */
	pthread_cond_t data_cond;

	/* Reconnecting (see client.h).  Immutable after connect but epoch
	 * (atomic) and the hook (set before start). */
	bool reconnect;
	struct orfa_tp_opts tpo;
	struct orfa_key key;
	bool has_key;
	uint32_t max_data_offer;
	atomic_uint epoch;		/* bumped by every reconnect */
	orfa_reconnect_fn rc_hook;
	void *rc_arg;
	pthread_mutex_t rc_lock;	/* rc_cond: a connection came back */
	pthread_cond_t rc_cond;
};

void call_get(struct orfa_call *call);
void call_put(struct orfa_call *call);
/* Mark a linked call answered; cc->lock held.  True: the caller runs the
 * callback (exactly one party ever gets true). */
bool call_take_answer(struct cconn *cc, struct orfa_call *call);
void call_complete(struct orfa_call *call, int err,
		   const struct orfa_msg *rep);

/* The call registered under req_id on cc, or NULL.  cc->lock held. */
struct orfa_call *slot_find(struct cconn *cc, uint64_t req_id);

/* Receiver thread of a connection, its sink resolver, and what it does
 * when the connection dies (also used by orfa_client_stop). */
void *rx_main(void *arg);
void *rx_sink(void *arg, const struct orfa_hdr *hdr);
void conn_fail(struct cconn *cc, int err);
/* cl->stopping, read under cl->tlock (any thread; not with tlock held). */
bool client_stopping(struct orfa_client *cl);

/* The live connection with the fewest calls in flight (or the pinned
 * one); NULL if none. */
struct cconn *conn_pick(struct orfa_client *cl, int pin);

/* Reconnect cc (its receiver thread, cc dead): loops with backoff until
 * it is alive again (0) or the client stops (-ESHUTDOWN). */
int conn_reconnect(struct cconn *cc);
/* Wait until a connection (pin >= 0: that one) is alive, the client
 * stops or deadline (CLOCK_MONOTONIC ns) passes.  True when alive. */
bool conn_wait_alive(struct orfa_client *cl, int pin, int64_t deadline);
/* After a reconnect: send cc's parked calls again (receiver thread). */
void conn_resend(struct cconn *cc);
/* Complete cc's parked calls whose deadline passed (all when all is set)
 * with err. */
void conn_resend_fail(struct cconn *cc, int err, bool all);

#endif /* ORFA_CLIENT_IMPL_H */
