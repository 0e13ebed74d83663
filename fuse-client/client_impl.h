/*
 * client_impl.h - what the files of the client's RPC layer share: client.c
 * (calls, slots, sending, completing calls from replies, FORGET/RELEASE),
 * conn.c (a connection's receiver thread, failure, reconnect, resending),
 * client_hello.c (HELLO/AUTH on a fresh connection) and client_session.c
 * (connecting, starting and stopping, the timer, interrupts).  Calls go
 * one way: client_session.c calls the three others, conn.c calls
 * client_hello.c and client.c, and those two call no other file here.
 * Not for ops: they use client.h.
 *
 * Locks: cconn.lock guards a connection's slot table and the answered /
 * linked flags of the calls in it; orfa_client.tlock guards the timer's
 * interrupt queue and the stopping flag; orfa_client.flock the forget
 * batches; orfa_client.data_lock the calls' data_done flags;
 * orfa_client.rc_lock only pairs with rc_cond.  Order: cconn.lock before
 * tlock; flock before cconn.lock (a reconnect swapping the connection,
 * conn.c); data_lock and rc_lock are never held with another.
 */
#ifndef ORFA_CLIENT_IMPL_H
#define ORFA_CLIENT_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

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
	int64_t t_sent;			/* ns, orfa_call_send began (stats) */
	uint64_t wbytes;		/* WRITE data sent (stats) */
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
	bool integrity_only;		/* ask for it in HELLO (-o integrity=) */
	uint32_t max_data_offer;
	atomic_uint epoch;		/* bumped by every reconnect */
	orfa_reconnect_fn rc_hook;
	void *rc_arg;
	pthread_mutex_t rc_lock;	/* rc_cond: a connection came back */
	pthread_cond_t rc_cond;
};

/* ---- client.c: calls and the call table ---- */

void call_get(struct orfa_call *call);
void call_put(struct orfa_call *call);
/* Mark a linked call answered; cc->lock held.  True: the caller runs the
 * callback (exactly one party ever gets true). */
bool call_take_answer(struct cconn *cc, struct orfa_call *call);
/* Run call's callback with err (rep only when err is 0); the caller holds
 * the answer.  Drops no reference. */
void call_complete(struct orfa_call *call, int err,
		   const struct orfa_msg *rep);

/* The call registered under req_id on cc, or NULL.  cc->lock held. */
struct orfa_call *slot_find(struct cconn *cc, uint64_t req_id);
/* Unlink call from its slot.  cc->lock held.  The caller then owns the
 * table's reference. */
void slot_unlink(struct cconn *cc, struct orfa_call *call);

/* Sink resolver the transport calls on the receiver thread once a reply's
 * frame header is in (arg: the cconn). */
void *rx_sink(void *arg, const struct orfa_hdr *hdr);
/* Complete the call a received reply answers (receiver thread). */
void rx_handle(struct cconn *cc, struct orfa_rxmsg *rx);

/* The live connection with the fewest calls in flight (or the pinned
 * one); NULL if none. */
struct cconn *conn_pick(struct orfa_client *cl, int pin);
/* Wait until a connection (pin >= 0: that one) is alive, the client
 * stops or deadline (CLOCK_MONOTONIC ns) passes.  True when alive. */
bool conn_wait_alive(struct orfa_client *cl, int pin, int64_t deadline);
/* Send call (parked by a connection failure) again on cc, alive again;
 * answers it with -EIO when that fails.  The caller keeps its reference. */
void call_resend(struct cconn *cc, struct orfa_call *call);
/* Set on receiver threads: a call sent from one (a completion callback)
 * must never wait for a reconnect, which that very thread may have to
 * make. */
extern __thread bool tl_rx_thread;

/* *ts = CLOCK_REALTIME now + ns (for pthread_cond_timedwait). */
void realtime_after(struct timespec *ts, int64_t ns);

/* ---- client_hello.c: the handshake, before the receiver thread runs ---- */

/*
 * HELLO (+AUTH when either side holds a key) on cc's fresh connection,
 * offering max_data.  The first connection records what the server
 * granted in cl->info, others check it; again (a reconnect) checks that
 * the server came back with the same root and no smaller max_data
 * (-ESTALE otherwise).  Returns 0 or a negative errno with a message in
 * err.
 */
int do_hello(struct orfa_client *cl, struct cconn *cc, uint32_t max_data,
	     const struct orfa_key *key, bool again, char *err, size_t errsz);
/* Server text (len bytes, up to a NUL) made printable: bytes outside
 * printable ASCII and a backslash as \xNN, cut to out[outsz], NUL-terminated. */
void text_escape(const char *in, size_t len, char *out, size_t outsz);
/* Send request m (no data) on cc's connection, without a slot. */
int hs_send(struct cconn *cc, struct orfa_msg *m, char *err, size_t errsz);
/* Wait (request timeout, else HELLO_WAIT_MS) for the reply to (opcode,
 * req_id) and decode it into rep; on 0 its body and data stay in rx until
 * orfa_conn_recv_done.  A refusal is its negative errno and a message. */
int hs_recv(struct orfa_client *cl, struct cconn *cc, unsigned opcode,
	    uint64_t req_id, struct orfa_rxmsg *rx, struct orfa_msg *rep,
	    char *err, size_t errsz);

/* ---- conn.c: a connection's receiver thread ---- */

/* Start cc's receiver thread, which also reconnects cc when it dies.
 * 0 or a negative errno. */
int conn_start(struct cconn *cc);
/* Shut cc's connection down and join its receiver thread (or, if none
 * ran, fail its calls).  The client is stopping.  NULL is fine. */
void conn_stop(struct cconn *cc);

#endif /* ORFA_CLIENT_IMPL_H */
