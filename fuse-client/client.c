/*
 * client.c - the RPC layer of the orfa client (see client.h).
 *
 * Per connection: a table of in-flight calls indexed by the low bits of
 * req_id (the high bits are a per-slot generation, so a stale or forged id
 * never matches a reused slot), one receiver thread that reads replies and
 * completes calls, and a lock.  One timer thread for the whole client fails
 * calls past their deadline, delivers interrupts and flushes the FORGET
 * batch.
 *
 * A call's life: orfa_call_new (sender holds one reference) ->
 * orfa_call_send registers it in a slot (the table holds a second one) and
 * hands it to the transport -> exactly one of {receiver, timer, connection
 * failure, failed send} flips call->answered under the connection lock and
 * runs the callback -> whoever unlinks it from its slot drops the table's
 * reference.  Timed-out and interrupted calls stay in their slot, answered,
 * until their reply arrives (so its server-side effect can be undone, see
 * orphan_cleanup) or the connection dies; when a connection runs out of
 * slots, such orphans are evicted first.
 *
 * Not here: FUSE (ops.c), command line (main.c), reconnecting.
 */
#include "client.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
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
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- calls ------------------------------------------------------------- */

struct orfa_call *orfa_call_new(struct orfa_client *cl, unsigned opcode,
				size_t sink_len, size_t ctx_size)
{
	size_t base = (sizeof(struct orfa_call) + 15) & ~(size_t)15;
	struct orfa_call *call = calloc(1, base + ctx_size);

	if (!call)
		return NULL;
	if (sink_len) {
		call->sink = malloc(sink_len);
		if (!call->sink) {
			free(call);
			return NULL;
		}
		call->sink_len = sink_len;
	}
	call->cl = cl;
	call->pin = -1;
	atomic_init(&call->refs, 1);
	call->opcode = opcode;
	call->ctx = ctx_size ? (uint8_t *)call + base : NULL;
	orfa_msg_init(&call->msg, opcode, 0);
	return call;
}

void orfa_call_free(struct orfa_call *call)
{
	if (!call)
		return;
	free(call->sink);
	free(call->head_heap);
	free(call);
}

static void call_get(struct orfa_call *call)
{
	atomic_fetch_add(&call->refs, 1);
}

static void call_put(struct orfa_call *call)
{
	int old = atomic_fetch_sub(&call->refs, 1);

	if (old == 1)
		orfa_call_free(call);
}

struct orfa_msg *orfa_call_msg(struct orfa_call *call) { return &call->msg; }
void *orfa_call_ctx(struct orfa_call *call) { return call->ctx; }
void *orfa_call_sink(struct orfa_call *call) { return call->sink; }
size_t orfa_call_sink_len(const struct orfa_call *call) { return call->sink_len; }
struct orfa_client *orfa_call_client(const struct orfa_call *call)
{
	return call->cl;
}

unsigned orfa_client_nconns(const struct orfa_client *cl) { return cl->n; }

void orfa_call_set_conn(struct orfa_call *call, unsigned conn)
{
	call->pin = conn < call->cl->n ? (int)conn : -1;
}

unsigned orfa_call_conn(const struct orfa_call *call)
{
	return call->cc ? call->cc->idx : 0;
}

void orfa_call_set_hook(struct orfa_call *call, orfa_reg_hook fn, void *arg)
{
	call->hook = fn;
	call->hook_arg = arg;
}

/* Encode the request header segment into call->head.  Returns its length
 * or a negative errno. */
static ssize_t call_encode(struct orfa_call *call, size_t data_len)
{
	ssize_t body;

	call->head = call->head_inline;
	body = orfa_req_encode(&call->msg, call->head + ORFA_HDR_SIZE,
			       HEAD_INLINE - ORFA_HDR_SIZE);
	if (body == -EMSGSIZE) {
		call->head_heap = malloc(HEAD_MAX);
		if (!call->head_heap)
			return -ENOMEM;
		call->head = call->head_heap;
		body = orfa_req_encode(&call->msg, call->head + ORFA_HDR_SIZE,
				       HEAD_MAX - ORFA_HDR_SIZE);
	}
	if (body < 0)
		return body;
	call->msg.hdr.data_len = (uint32_t)data_len;
	return ORFA_HDR_SIZE + body;
}

/* ---- slots ------------------------------------------------------------- */

/* Unlink call from its slot.  cc->lock held.  The caller then owns the
 * table's reference. */
static void slot_unlink(struct cconn *cc, struct orfa_call *call)
{
	uint32_t slot = (uint32_t)(call->req_id & SLOT_MASK);

	cc->slots[slot] = NULL;
	call->linked = false;
	if (call->answered && cc->nanswered)
		cc->nanswered--;
	cc->free_stack[cc->nfree++] = slot;
	atomic_fetch_sub(&cc->inflight, 1);
	if (cc->waiters)
		pthread_cond_signal(&cc->slot_cond);
}

/* Mark a linked call answered (orphan from now on).  cc->lock held.
 * Returns true when the caller took the answer. */
static bool call_take_answer(struct cconn *cc, struct orfa_call *call)
{
	if (call->answered)
		return false;
	call->answered = true;
	if (call->linked)
		cc->nanswered++;
	return true;
}

static struct orfa_call *slot_find(struct cconn *cc, uint64_t req_id)
{
	struct orfa_call *call = cc->slots[req_id & SLOT_MASK];

	return call && call->req_id == req_id ? call : NULL;
}

/* Evict one orphan to make room.  cc->lock held; returns the evicted call
 * (caller drops its table reference after unlocking) or NULL. */
static struct orfa_call *slot_evict_orphan(struct cconn *cc)
{
	for (unsigned i = 0; i < NSLOTS; i++) {
		struct orfa_call *call = cc->slots[i];

		if (call && call->answered) {
			slot_unlink(cc, call);
			return call;
		}
	}
	return NULL;
}

/*
 * Register call on cc.  Returns 0, or -ENOTCONN when cc is dead (nothing
 * done).  May wait for a free slot.
 */
static int slot_register(struct cconn *cc, struct orfa_call *call)
{
	struct orfa_call *evicted = NULL;
	int timeout_ms = cc->cl->timeout_ms;
	uint32_t slot;

	pthread_mutex_lock(&cc->lock);
	while (!cc->dead && cc->nfree == 0) {
		if (cc->nanswered) {
			evicted = slot_evict_orphan(cc);
			if (evicted)
				break;
		}
		cc->waiters++;
		pthread_cond_wait(&cc->slot_cond, &cc->lock);
		cc->waiters--;
	}
	if (cc->dead) {
		pthread_mutex_unlock(&cc->lock);
		return -ENOTCONN;
	}
	slot = cc->free_stack[--cc->nfree];
	if (++cc->gen[slot] == 0)
		cc->gen[slot] = 1;
	call->req_id = ((uint64_t)cc->gen[slot] << SLOT_BITS) | slot;
	call->cc = cc;
	call->linked = true;
	call->answered = false;
	call->deadline = (timeout_ms > 0 && !(call->flags & ORFA_CALL_NO_TIMEOUT))
		? now_ns() + (int64_t)timeout_ms * 1000000 : 0;
	call_get(call);			/* the table's reference */
	cc->slots[slot] = call;
	atomic_fetch_add(&cc->inflight, 1);
	pthread_mutex_unlock(&cc->lock);
	if (evicted) {
		log_warn("%s: too many requests without reply; gave up on "
			 "req %llu (%s)", cc->name,
			 (unsigned long long)evicted->req_id,
			 orfa_op_name(evicted->opcode));
		call_put(evicted);
	}
	return 0;
}

/* ---- orphans: replies to calls already answered ---------------------- */

/*
 * A successful reply for a call that was answered with an error
 * (timeout, interrupt): give back what the server handed out, so lookup
 * counts and open files balance.
 */
static void orphan_cleanup(struct orfa_call *call, const struct orfa_msg *rep)
{
	struct orfa_client *cl = call->cl;
	unsigned conn = call->cc->idx;
	size_t off = 0;

	switch (call->opcode) {
	case ORFA_OP_LOOKUP:
	case ORFA_OP_MKNOD:
	case ORFA_OP_MKDIR:
	case ORFA_OP_SYMLINK:
	case ORFA_OP_LINK:
		orfa_client_forget(cl, conn, rep->a.entry.nodeid, 1);
		break;
	case ORFA_OP_CREATE:
		orfa_client_release(cl, conn, rep->a.create_rep.entry.nodeid,
				    rep->a.create_rep.fh, 0);
		orfa_client_forget(cl, conn, rep->a.create_rep.entry.nodeid, 1);
		break;
	case ORFA_OP_OPEN:
	case ORFA_OP_OPENDIR:
		orfa_client_release(cl, conn, call->msg.a.open.nodeid,
				    rep->a.open_rep.fh,
				    call->opcode == ORFA_OP_OPENDIR);
		break;
	case ORFA_OP_READDIRPLUS:
		for (;;) {
			struct orfa_dirent d;
			struct orfa_entry e;
			const char *name;

			if (orfa_dirent_next(rep->data, rep->data_len, &off, 1,
					     &d, &e, &name) != 1)
				break;
			orfa_client_forget(cl, conn, e.nodeid, 1);
		}
		break;
	default:
		break;
	}
	if (call->orphan)
		call->orphan(call, rep);
}

/* ---- receiving --------------------------------------------------------- */

/* Sink resolver: runs on the receiver thread once a reply's frame header is
 * in.  Hands out the call's sink when the data fits, and pins the call so
 * the buffer outlives a concurrent timeout. */
static void *rx_sink(void *arg, const struct orfa_hdr *hdr)
{
	struct cconn *cc = arg;
	struct orfa_call *call;
	void *buf = NULL;

	pthread_mutex_lock(&cc->lock);
	call = slot_find(cc, hdr->req_id);
	if (call && call->sink && hdr->data_len <= call->sink_len &&
	    hdr->opcode == call->opcode && !cc->claimed) {
		call_get(call);
		cc->claimed = call;
		buf = call->sink;
	}
	pthread_mutex_unlock(&cc->lock);
	return buf;
}

/* Run the callback that call_take_answer gave us, then drop the table ref
 * if we unlinked it. */
static void call_complete(struct orfa_call *call, int err,
			  const struct orfa_msg *rep)
{
	call->fn(call, err, err ? NULL : rep);
}

static void rx_handle(struct cconn *cc, struct orfa_rxmsg *rx)
{
	struct orfa_call *call, *claimed = cc->claimed;
	bool unlinked = false, answer = false;
	struct orfa_msg rep;
	const char *why = NULL;
	int err, rc;

	pthread_mutex_lock(&cc->lock);
	cc->claimed = NULL;
	if (claimed && claimed->req_id == rx->hdr.req_id) {
		call = claimed;
	} else {
		call = slot_find(cc, rx->hdr.req_id);
	}
	if (call) {
		if (call->linked) {
			slot_unlink(cc, call);
			unlinked = true;
		}
		answer = call_take_answer(cc, call);
	}
	pthread_mutex_unlock(&cc->lock);
	if (claimed && claimed != call) {
		/* The sink was handed out for this very frame, so this
		 * cannot happen; keep the references right anyway. */
		call_put(claimed);
		claimed = NULL;
	}

	if (!call) {
		log_debug("%s: reply to unknown req %llu (%s), dropped",
			  cc->name, (unsigned long long)rx->hdr.req_id,
			  orfa_op_name(rx->hdr.opcode));
		return;
	}

	memset(&rep, 0, sizeof(rep));
	rep.hdr = rx->hdr;
	rc = orfa_rep_decode(&rep, rx->body, &why);
	if (rc == 0 && rep.hdr.opcode != call->opcode) {
		rc = -EPROTO;
		why = "reply opcode differs from the request's";
	}
	if (rc == 0 && call->sink && rep.hdr.data_len > call->sink_len) {
		rc = -EPROTO;
		why = "more reply data than asked for";
	}
	if (rc < 0) {
		log_err("%s: bad reply to %s (req %llu): %s", cc->name,
			orfa_op_name(call->opcode),
			(unsigned long long)call->req_id, why ? why : "?");
		err = -EIO;
	} else {
		err = -(int)rep.hdr.status;
		rep.data = rx->data;
		rep.data_len = rx->hdr.data_len;
	}

	if (answer)
		call_complete(call, err, &rep);
	else if (err == 0)
		orphan_cleanup(call, &rep);
	if (unlinked)
		call_put(call);
	if (claimed)
		call_put(claimed);
}

/* The connection is gone: every call on it gets -EIO now. */
static void conn_fail(struct cconn *cc, int err)
{
	struct orfa_call **dead;
	bool *answer;
	unsigned n = 0;

	dead = calloc(NSLOTS + 1, sizeof(*dead));
	answer = calloc(NSLOTS + 1, sizeof(*answer));
	pthread_mutex_lock(&cc->lock);
	if (!cc->dead && err && !cc->cl->stopping)
		log_err("%s: connection lost: %s", cc->name,
			orfa_conn_last_error(cc->conn)[0] ?
			orfa_conn_last_error(cc->conn) : strerror(-err));
	cc->dead = true;
	for (unsigned i = 0; i < NSLOTS; i++) {
		struct orfa_call *call = cc->slots[i];

		if (!call)
			continue;
		slot_unlink(cc, call);
		if (dead && answer) {
			answer[n] = call_take_answer(cc, call);
			dead[n++] = call;
		} else {
			/* Out of memory: answer under the lock rather
			 * than lose a reply. */
			if (call_take_answer(cc, call))
				call_complete(call, -EIO, NULL);
			call_put(call);
		}
	}
	if (cc->claimed) {
		struct orfa_call *call = cc->claimed;

		cc->claimed = NULL;
		if (dead && answer) {
			answer[n] = call_take_answer(cc, call);
			dead[n++] = call;
		} else {
			if (call_take_answer(cc, call))
				call_complete(call, -EIO, NULL);
			call_put(call);
		}
	}
	pthread_cond_broadcast(&cc->slot_cond);
	pthread_mutex_unlock(&cc->lock);

	for (unsigned i = 0; i < n; i++) {
		if (answer[i])
			call_complete(dead[i], -EIO, NULL);
		call_put(dead[i]);
	}
	free(dead);
	free(answer);
	orfa_conn_shutdown(cc->conn);
}

static void *rx_main(void *arg)
{
	struct cconn *cc = arg;
	struct orfa_rxmsg rx;
	int rc;

	for (;;) {
		memset(&rx, 0, sizeof(rx));
		rc = orfa_conn_recv(cc->conn, &rx);
		if (rc < 0)
			break;
		rx_handle(cc, &rx);
		orfa_conn_recv_done(cc->conn, &rx);
	}
	conn_fail(cc, rc);
	return NULL;
}

/* ---- sending ------------------------------------------------------------ */

/* The live connection with the fewest calls in flight; NULL if none. */
static struct cconn *conn_pick(struct orfa_client *cl, int pin)
{
	struct cconn *best = NULL;
	unsigned start, best_load = ~0u;

	if (pin >= 0)
		return cl->conns[pin];
	start = atomic_fetch_add(&cl->rr, 1);
	for (unsigned i = 0; i < cl->n; i++) {
		struct cconn *cc = cl->conns[(start + i) % cl->n];
		unsigned load;

		if (__atomic_load_n(&cc->dead, __ATOMIC_RELAXED))
			continue;
		load = atomic_load(&cc->inflight);
		if (load < best_load) {
			best = cc;
			best_load = load;
		}
	}
	return best;
}

/* Transport done() for a call's data segment. */
static void call_data_done(void *arg)
{
	struct orfa_call *call = arg;
	struct orfa_client *cl = call->cl;

	pthread_mutex_lock(&cl->data_lock);
	call->data_done = true;
	pthread_cond_broadcast(&cl->data_cond);
	pthread_mutex_unlock(&cl->data_lock);
}

void orfa_call_send(struct orfa_call *call, const struct iovec *iov,
		    int iovcnt, unsigned flags, orfa_call_fn fn,
		    orfa_orphan_fn orphan)
{
	struct orfa_client *cl = call->cl;
	struct orfa_txmsg tx;
	struct cconn *cc = NULL;
	size_t data_len = 0;
	ssize_t head_len;
	int rc = -ENOTCONN;

	call->fn = fn;
	call->orphan = orphan;
	call->flags = flags;
	for (int i = 0; i < iovcnt; i++)
		data_len += iov[i].iov_len;

	head_len = call_encode(call, data_len);
	if (head_len < 0) {
		log_err("cannot encode %s request: %s", orfa_op_name(call->opcode),
			strerror((int)-head_len));
		fn(call, -EIO, NULL);
		call_put(call);
		return;
	}
	/* Names point into the caller's buffers: gone after we return. */
	call->msg.name = call->msg.name2 = NULL;

	if (!cl->stopped) {
		for (unsigned tries = 0; tries < cl->n; tries++) {
			cc = conn_pick(cl, call->pin);
			if (!cc)
				break;
			rc = slot_register(cc, call);
			if (rc == 0 || call->pin >= 0)
				break;
		}
	}
	if (rc < 0) {
		fn(call, -EIO, NULL);
		call_put(call);
		return;
	}

	call->msg.hdr.req_id = call->req_id;
	orfa_hdr_encode(call->head, &call->msg.hdr);
	if (call->hook) {
		struct orfa_call_ref ref = {
			.req_id = call->req_id, .conn = cc->idx,
		};
		call->hook(call, ref, call->hook_arg);
	}
	memset(&tx, 0, sizeof(tx));
	tx.head = call->head;
	tx.head_len = (size_t)head_len;
	tx.iov = iovcnt ? iov : NULL;
	tx.iovcnt = iovcnt;
	tx.fd = -1;
	tx.reply_buf = call->sink;
	tx.reply_buf_len = call->sink_len;
	if (iovcnt) {
		tx.done = call_data_done;
		tx.done_arg = call;
	}
	rc = orfa_conn_send(cc->conn, &tx);
	if (rc < 0) {
		bool answer = false, unlinked = false;

		log_err("%s: cannot send %s: %s", cc->name,
			orfa_op_name(call->opcode),
			orfa_conn_last_error(cc->conn)[0] ?
			orfa_conn_last_error(cc->conn) : strerror(-rc));
		pthread_mutex_lock(&cc->lock);
		if (call->linked && !call->answered) {
			answer = call_take_answer(cc, call);
			slot_unlink(cc, call);
			unlinked = true;
		}
		pthread_mutex_unlock(&cc->lock);
		if (answer)
			fn(call, -EIO, NULL);
		if (unlinked)
			call_put(call);
		/* A partly written frame leaves the stream unusable; the
		 * receiver fails the rest. */
		orfa_conn_shutdown(cc->conn);
	}
	/* The caller's data buffer is lent until the transport's done(),
	 * which TCP calls before send returns. */
	if (iovcnt) {
		pthread_mutex_lock(&cl->data_lock);
		while (!call->data_done)
			pthread_cond_wait(&cl->data_cond, &cl->data_lock);
		pthread_mutex_unlock(&cl->data_lock);
	}
	call_put(call);
}

/* ---- interrupts and timeouts ------------------------------------------ */

void orfa_client_interrupt(struct orfa_client *cl, struct orfa_call_ref ref)
{
	struct orfa_call *call;
	struct cconn *cc;

	if (ref.conn >= cl->n)
		return;
	cc = cl->conns[ref.conn];
	pthread_mutex_lock(&cc->lock);
	call = slot_find(cc, ref.req_id);
	if (!call || !call_take_answer(cc, call)) {
		pthread_mutex_unlock(&cc->lock);
		return;
	}
	call_get(call);
	pthread_mutex_lock(&cl->tlock);	/* order: cc->lock, then tlock */
	call->next_intr = cl->intr_head;
	cl->intr_head = call;
	pthread_cond_signal(&cl->tcond);
	pthread_mutex_unlock(&cl->tlock);
	pthread_mutex_unlock(&cc->lock);
}

/* Fail calls whose deadline passed.  Timer thread; no lock held. */
static void expire_calls(struct orfa_client *cl)
{
	struct orfa_call *batch[64];
	int64_t now = now_ns();

	for (unsigned c = 0; c < cl->n; c++) {
		struct cconn *cc = cl->conns[c];
		unsigned n;

		if (atomic_load(&cc->inflight) == 0)
			continue;
		do {
			n = 0;
			pthread_mutex_lock(&cc->lock);
			for (unsigned i = 0; i < NSLOTS && n < 64; i++) {
				struct orfa_call *call = cc->slots[i];

				if (!call || call->answered || !call->deadline ||
				    call->deadline > now)
					continue;
				call_take_answer(cc, call);
				call_get(call);
				batch[n++] = call;
			}
			pthread_mutex_unlock(&cc->lock);
			for (unsigned i = 0; i < n; i++) {
				log_warn("%s: %s (req %llu) timed out after "
					 "%d ms", cc->name,
					 orfa_op_name(batch[i]->opcode),
					 (unsigned long long)batch[i]->req_id,
					 cl->timeout_ms);
				call_complete(batch[i], -ETIMEDOUT, NULL);
				call_put(batch[i]);
			}
		} while (n == 64);
	}
}

static void *timer_main(void *arg)
{
	struct orfa_client *cl = arg;
	int64_t next_expire = 0;

	pthread_mutex_lock(&cl->tlock);
	while (!cl->stopping) {
		struct timespec ts;
		struct orfa_call *intr = cl->intr_head;

		cl->intr_head = NULL;
		pthread_mutex_unlock(&cl->tlock);
		while (intr) {
			struct orfa_call *next = intr->next_intr;

			call_complete(intr, -EINTR, NULL);
			call_put(intr);
			intr = next;
		}
		if (now_ns() >= next_expire) {
			expire_calls(cl);
			next_expire = now_ns() + 250 * 1000000LL;
		}
		orfa_client_flush_forgets(cl);

		pthread_mutex_lock(&cl->tlock);
		if (cl->stopping || cl->intr_head)
			continue;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&cl->tcond, &cl->tlock, &ts);
	}
	pthread_mutex_unlock(&cl->tlock);
	return NULL;
}

/* ---- fire-and-forget messages ------------------------------------------ */

/* Send one FORGET with count records on connection conn.  No reply, no
 * slot.  cl->flock held (keeps batches in order). */
static void send_forget(struct orfa_client *cl, unsigned conn,
			const struct orfa_forget_one *f, unsigned count)
{
	uint8_t head[ORFA_HDR_SIZE + 64];
	struct orfa_txmsg tx;
	struct orfa_msg m;
	struct iovec iov;
	struct cconn *cc;
	uint8_t *data;
	ssize_t body;

	cc = cl->conns[conn];
	if (cc->dead || cl->stopped)
		return;
	data = malloc((size_t)count * ORFA_FORGET_ONE_SIZE);
	if (!data) {
		log_err("out of memory: %u lookup references not given back",
			count);
		return;
	}
	for (unsigned i = 0; i < count; i++)
		orfa_forget_put(data, i, &f[i]);
	orfa_msg_init(&m, ORFA_OP_FORGET,
		      atomic_fetch_add(&cl->noreply_id, 1) | (1ull << 63));
	m.a.forget.count = count;
	body = orfa_req_encode(&m, head + ORFA_HDR_SIZE,
			       sizeof(head) - ORFA_HDR_SIZE);
	if (body < 0) {
		free(data);
		return;
	}
	m.hdr.data_len = count * ORFA_FORGET_ONE_SIZE;
	orfa_hdr_encode(head, &m.hdr);
	iov.iov_base = data;
	iov.iov_len = m.hdr.data_len;
	memset(&tx, 0, sizeof(tx));
	tx.head = head;
	tx.head_len = ORFA_HDR_SIZE + (size_t)body;
	tx.iov = &iov;
	tx.iovcnt = 1;
	tx.fd = -1;
	if (orfa_conn_send(cc->conn, &tx) < 0)
		orfa_conn_shutdown(cc->conn);
	free(data);
}

void orfa_client_forget(struct orfa_client *cl, unsigned conn,
			uint64_t nodeid, uint64_t nlookup)
{
	struct orfa_forget_one *b;

	if (!nodeid || !nlookup || conn >= cl->n)
		return;
	b = cl->fbatch + (size_t)conn * ORFA_MAX_FORGET;
	pthread_mutex_lock(&cl->flock);
	b[cl->fcount[conn]].nodeid = nodeid;
	b[cl->fcount[conn]].nlookup = nlookup;
	if (++cl->fcount[conn] == ORFA_MAX_FORGET) {
		send_forget(cl, conn, b, cl->fcount[conn]);
		cl->fcount[conn] = 0;
	}
	pthread_mutex_unlock(&cl->flock);
}

void orfa_client_flush_forgets(struct orfa_client *cl)
{
	pthread_mutex_lock(&cl->flock);
	for (unsigned c = 0; c < cl->n; c++) {
		if (cl->fcount[c]) {
			send_forget(cl, c, cl->fbatch +
				    (size_t)c * ORFA_MAX_FORGET, cl->fcount[c]);
			cl->fcount[c] = 0;
		}
	}
	pthread_mutex_unlock(&cl->flock);
}

static void release_done(struct orfa_call *call, int err,
			 const struct orfa_msg *rep)
{
	if (err && err != -EIO)
		log_debug("RELEASE of an orphaned open: %s", strerror(-err));
}

void orfa_client_release(struct orfa_client *cl, unsigned conn,
			 uint64_t nodeid, uint64_t fh, int dir)
{
	struct orfa_call *call;

	if (fh == ORFA_FH_NONE)
		return;
	call = orfa_call_new(cl, dir ? ORFA_OP_RELEASEDIR : ORFA_OP_RELEASE,
			     0, 0);
	if (!call) {
		log_err("out of memory: server file %llu left open",
			(unsigned long long)fh);
		return;
	}
	call->msg.a.fh.nodeid = nodeid;
	call->msg.a.fh.fh = fh;
	orfa_call_set_conn(call, conn);
	orfa_call_send(call, NULL, 0, 0, release_done, NULL);
}

/* ---- connecting ---------------------------------------------------------- */

/* Synchronous HELLO on a fresh connection (no receiver thread yet). */
static int do_hello(struct orfa_client *cl, struct cconn *cc,
		    uint32_t max_data, char *err, size_t errsz)
{
	uint8_t head[ORFA_HDR_SIZE + 64 + 4096 + 8];
	const char *path = cl->export_path, *why = NULL;
	struct orfa_txmsg tx;
	struct orfa_rxmsg rx;
	struct orfa_msg m;
	struct pollfd pfd;
	ssize_t body;
	int rc, wait_ms;

	orfa_msg_init(&m, ORFA_OP_HELLO, 1);
	m.a.hello.magic = ORFA_MAGIC;
	m.a.hello.version = ORFA_PROTO_VERSION;
	m.a.hello.max_data = max_data;
	m.a.hello.features = ORFA_FEAT_ALL;
	m.name = path;
	m.namelen = (uint32_t)strlen(path);
	body = orfa_req_encode(&m, head + ORFA_HDR_SIZE,
			       sizeof(head) - ORFA_HDR_SIZE);
	if (body < 0) {
		snprintf(err, errsz, "bad export path '%s'", path);
		return -EINVAL;
	}
	m.hdr.data_len = 0;
	orfa_hdr_encode(head, &m.hdr);
	memset(&tx, 0, sizeof(tx));
	tx.head = head;
	tx.head_len = ORFA_HDR_SIZE + (size_t)body;
	tx.fd = -1;
	rc = orfa_conn_send(cc->conn, &tx);
	if (rc < 0) {
		snprintf(err, errsz, "%s: cannot send HELLO: %s", cc->name,
			 strerror(-rc));
		return rc;
	}

	/* Do not hang on a server that accepts but never answers. */
	wait_ms = cl->timeout_ms > 0 ? cl->timeout_ms : HELLO_WAIT_MS;
	pfd.fd = orfa_conn_fd(cc->conn);
	pfd.events = POLLIN;
	if (pfd.fd >= 0) {
		do {
			rc = poll(&pfd, 1, wait_ms);
		} while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			snprintf(err, errsz, "%s: no answer to HELLO within "
				 "%d ms", cc->name, wait_ms);
			return -ETIMEDOUT;
		}
	}

	memset(&rx, 0, sizeof(rx));
	rc = orfa_conn_recv(cc->conn, &rx);
	if (rc < 0) {
		const char *le = orfa_conn_last_error(cc->conn);

		snprintf(err, errsz, "%s: no answer to HELLO: %s", cc->name,
			 le && le[0] ? le : strerror(-rc));
		return rc;
	}
	memset(&m, 0, sizeof(m));
	m.hdr = rx.hdr;
	if (rx.hdr.opcode != ORFA_OP_HELLO || rx.hdr.req_id != 1) {
		rc = -EPROTO;
		why = "first reply is not the HELLO reply";
	} else {
		rc = orfa_rep_decode(&m, rx.body, &why);
	}
	if (rc < 0) {
		snprintf(err, errsz, "%s: bad HELLO reply: %s", cc->name,
			 why ? why : strerror(-rc));
		orfa_conn_recv_done(cc->conn, &rx);
		return -EPROTO;
	}
	if (m.hdr.status) {
		int len = rx.hdr.data_len > 200 ? 200 : (int)rx.hdr.data_len;
		const char *reason = rx.data ? (const char *)rx.data : "";

		/* The server's reason when it gave one, else the errno. */
		if (len && memchr(reason, '\0', (size_t)len))
			len = (int)strlen(reason);
		if (m.hdr.status == EPROTONOSUPPORT || m.a.hello_rep.version !=
		    ORFA_PROTO_VERSION)
			snprintf(err, errsz, "%s: server speaks protocol "
				 "version %u, we speak %u%s%.*s", cc->name,
				 m.a.hello_rep.version, ORFA_PROTO_VERSION,
				 len ? ": " : "", len, reason);
		else if (len)
			snprintf(err, errsz, "%s: server refused: %.*s",
				 cc->name, len, reason);
		else
			snprintf(err, errsz, "%s: server refused export %s: %s",
				 cc->name, path, strerror((int)m.hdr.status));
		rc = -(int)m.hdr.status;
		orfa_conn_recv_done(cc->conn, &rx);
		return rc;
	}
	orfa_conn_recv_done(cc->conn, &rx);

	if (cc->idx == 0) {
		cl->info.root_nodeid = m.a.hello_rep.root_nodeid;
		cl->info.root_generation = m.a.hello_rep.root_generation;
		cl->info.root_attr = m.a.hello_rep.root_attr;
		cl->info.features = m.a.hello_rep.features;
		cl->info.max_data = (uint32_t)(m.a.hello_rep.max_data <
			max_data ? m.a.hello_rep.max_data : max_data);
		cl->info.server_version = m.a.hello_rep.version;
	} else if (m.a.hello_rep.root_nodeid != cl->info.root_nodeid) {
		snprintf(err, errsz, "%s: server gave another root node on a "
			 "second connection", cc->name);
		return -EPROTO;
	}
	if (cl->info.root_nodeid == ORFA_ROOT_ID_NONE ||
	    cl->info.max_data < 4096) {
		snprintf(err, errsz, "%s: unusable HELLO reply (root %llu, "
			 "max_data %u)", cc->name,
			 (unsigned long long)cl->info.root_nodeid,
			 cl->info.max_data);
		return -EPROTO;
	}
	return 0;
}

static void cconn_free(struct cconn *cc)
{
	if (!cc)
		return;
	if (cc->conn)
		orfa_conn_put(&cc->conn);
	pthread_mutex_destroy(&cc->lock);
	pthread_cond_destroy(&cc->slot_cond);
	free(cc);
}

static struct cconn *cconn_new(struct orfa_client *cl, unsigned idx)
{
	struct cconn *cc = calloc(1, sizeof(*cc));

	if (!cc)
		return NULL;
	cc->cl = cl;
	cc->idx = idx;
	pthread_mutex_init(&cc->lock, NULL);
	pthread_cond_init(&cc->slot_cond, NULL);
	for (unsigned i = 0; i < NSLOTS; i++)
		cc->free_stack[i] = NSLOTS - 1 - i;
	cc->nfree = NSLOTS;
	atomic_init(&cc->inflight, 0);
	snprintf(cc->name, sizeof(cc->name), strchr(cl->host, ':') ?
		 "[%s]:%s" : "%s:%s", cl->host, cl->port);
	if (cl->n > 1)
		snprintf(cc->name + strlen(cc->name),
			 sizeof(cc->name) - strlen(cc->name), "#%u", idx);
	return cc;
}

int orfa_client_connect(const struct orfa_client_cfg *cfg,
			struct orfa_client **out, char *err, size_t errsz)
{
	struct orfa_client *cl;
	struct orfa_tp_opts o;
	int rc = -ENOMEM;

	*out = NULL;
	snprintf(err, errsz, "out of memory");
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return -ENOMEM;
	pthread_mutex_init(&cl->tlock, NULL);
	pthread_cond_init(&cl->tcond, NULL);
	pthread_mutex_init(&cl->flock, NULL);
	pthread_mutex_init(&cl->data_lock, NULL);
	pthread_cond_init(&cl->data_cond, NULL);
	cl->n = cfg->nconns ? cfg->nconns : 1;
	cl->timeout_ms = cfg->timeout_ms;
	cl->transport = strdup(cfg->transport);
	cl->host = strdup(cfg->host);
	cl->port = strdup(cfg->port);
	cl->export_path = strdup(cfg->export_path);
	cl->conns = calloc(cl->n, sizeof(*cl->conns));
	cl->fbatch = calloc((size_t)cl->n * ORFA_MAX_FORGET,
			    sizeof(*cl->fbatch));
	cl->fcount = calloc(cl->n, sizeof(*cl->fcount));
	if (!cl->transport || !cl->host || !cl->port || !cl->export_path ||
	    !cl->conns || !cl->fbatch || !cl->fcount)
		goto fail;

	orfa_tp_opts_default(&o);
	o.max_body = ORFA_MAX_BODY;
	o.max_data = cfg->max_data;
	o.send_timeout_ms = cfg->timeout_ms;
	for (unsigned i = 0; i < cl->n; i++) {
		struct cconn *cc = cconn_new(cl, i);

		if (!cc)
			goto fail;
		cl->conns[i] = cc;
		rc = orfa_conn_connect(cl->transport, cl->host, cl->port, &o,
				       &cc->conn);
		if (rc < 0) {
			char where[80];

			snprintf(where, sizeof(where), strchr(cl->host, ':') ?
				 "[%s]:%s" : "%s:%s", cl->host, cl->port);
			if (rc == -ENOENT || rc == -ENOSYS)
				snprintf(err, errsz, "cannot connect to %s: "
					 "transport '%s' is not available",
					 where, cl->transport);
			else
				snprintf(err, errsz, "cannot connect to %s: %s",
					 where, strerror(-rc));
			cc->conn = NULL;
			goto fail;
		}
		rc = do_hello(cl, cc, cfg->max_data, err, errsz);
		if (rc < 0)
			goto fail;
		orfa_conn_set_sink(cc->conn, rx_sink, cc);
	}
	*out = cl;
	return 0;

fail:
	cl->stopped = true;
	orfa_client_destroy(cl);
	return rc < 0 ? rc : -ENOMEM;
}

const struct orfa_session_info *orfa_client_info(const struct orfa_client *cl)
{
	return &cl->info;
}

int orfa_client_start(struct orfa_client *cl)
{
	int rc;

	for (unsigned i = 0; i < cl->n; i++) {
		struct cconn *cc = cl->conns[i];
		char tname[32];

		rc = pthread_create(&cc->rx, NULL, rx_main, cc);
		if (rc) {
			log_err("cannot start receiver thread: %s",
				strerror(rc));
			return -rc;
		}
		cc->rx_started = true;
		snprintf(tname, sizeof(tname), "orfa-rx%u", i);
		tname[15] = '\0';		/* the kernel's limit */
		pthread_setname_np(cc->rx, tname);
	}
	rc = pthread_create(&cl->timer, NULL, timer_main, cl);
	if (rc) {
		log_err("cannot start timer thread: %s", strerror(rc));
		return -rc;
	}
	cl->timer_started = true;
	pthread_setname_np(cl->timer, "orfa-timer");
	return 0;
}

void orfa_client_stop(struct orfa_client *cl)
{
	if (!cl || cl->stop_done)
		return;
	pthread_mutex_lock(&cl->tlock);
	cl->stopping = true;
	pthread_cond_signal(&cl->tcond);
	pthread_mutex_unlock(&cl->tlock);
	if (cl->timer_started) {
		pthread_join(cl->timer, NULL);
		cl->timer_started = false;
	}
	/* Queued interrupts still owe their answer. */
	while (cl->intr_head) {
		struct orfa_call *call = cl->intr_head;

		cl->intr_head = call->next_intr;
		call_complete(call, -EINTR, NULL);
		call_put(call);
	}
	if (!cl->stopped)
		orfa_client_flush_forgets(cl);
	cl->stopped = true;
	for (unsigned i = 0; cl->conns && i < cl->n; i++) {
		struct cconn *cc = cl->conns[i];

		if (!cc || !cc->conn)
			continue;
		orfa_conn_shutdown(cc->conn);
		if (cc->rx_started) {
			pthread_join(cc->rx, NULL);
			cc->rx_started = false;
		} else {
			conn_fail(cc, 0);
		}
	}
	cl->stop_done = true;
}

void orfa_client_destroy(struct orfa_client *cl)
{
	if (!cl)
		return;
	orfa_client_stop(cl);
	for (unsigned i = 0; cl->conns && i < cl->n; i++)
		cconn_free(cl->conns[i]);
	free(cl->conns);
	free(cl->fbatch);
	free(cl->fcount);
	free(cl->transport);
	free(cl->host);
	free(cl->port);
	free(cl->export_path);
	pthread_mutex_destroy(&cl->tlock);
	pthread_cond_destroy(&cl->tcond);
	pthread_mutex_destroy(&cl->flock);
	pthread_mutex_destroy(&cl->data_lock);
	pthread_cond_destroy(&cl->data_cond);
	free(cl);
}
