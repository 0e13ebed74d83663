/*
 * client.c - the RPC layer of the orfa client (see client.h): calls, the
 * per-connection call table (slots), sending a call, completing a call
 * from its reply, and the messages that take no slot (FORGET batches,
 * RELEASE of orphaned opens).
 *
 * Per connection: a table of in-flight calls indexed by the low bits of
 * req_id (the high bits are a per-slot generation, so a stale or forged id
 * never matches a reused slot) and a lock.
 *
 * A call's life: orfa_call_new (sender holds one reference) ->
 * orfa_call_send registers it in a slot (the table holds a second one) and
 * hands it to the transport -> exactly one of {receiver, timer, connection
 * failure, failed send} flips call->answered under the connection lock and
 * runs the callback -> whoever unlinks it from its slot drops the table's
 * reference.  Timed-out and interrupted calls stay in their slot, answered,
 * until their reply arrives (so its server-side effect can be undone, see
 * orphan_cleanup) or the connection dies; when a connection runs out of
 * slots, such orphans without a reply buffer are evicted first (one with a
 * buffer stays: the peer may still write into it).
 *
 * Not here: FUSE (ops*.c), the command line (main.c); the receiver thread,
 * connection failure, reconnecting and resending parked calls (conn.c,
 * which calls into this file, never the reverse: here a sender only waits
 * for a connection to come back and translates file ids); HELLO/AUTH
 * (client_hello.c); connecting, the timer and interrupts
 * (client_session.c).
 */
#include "clock.h"
#include "client_impl.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "stats.h"
#include "transport.h"

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
	call->epoch = atomic_load(&cl->epoch);
	call->ctx = ctx_size ? (uint8_t *)call + base : NULL;
	orfa_msg_init(&call->msg, opcode, 0);
	return call;
}

void orfa_call_free(struct orfa_call *call)
{
	if (!call)
		return;
	if (call->conn)
		orfa_conn_put(&call->conn);
	free(call->names);
	free(call->rdata);
	free(call->sink);
	free(call->head_heap);
	free(call);
}

void call_get(struct orfa_call *call)
{
	atomic_fetch_add(&call->refs, 1);
}

void call_put(struct orfa_call *call)
{
	int old = atomic_fetch_sub(&call->refs, 1);

	assert(old > 0);
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
void slot_unlink(struct cconn *cc, struct orfa_call *call)
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
bool call_take_answer(struct cconn *cc, struct orfa_call *call)
{
	if (call->answered)
		return false;
	call->answered = true;
	if (call->linked)
		cc->nanswered++;
	return true;
}

struct orfa_call *slot_find(struct cconn *cc, uint64_t req_id)
{
	struct orfa_call *call = cc->slots[req_id & SLOT_MASK];

	return call && call->req_id == req_id ? call : NULL;
}

/* Evict one orphan to make room.  cc->lock held; returns the evicted call
 * (caller drops its table reference after unlocking) or NULL.  Calls with
 * a sink stay: the peer may still write into it (RDMA reply_buf) until it
 * replies or the connection dies. */
static struct orfa_call *slot_evict_orphan(struct cconn *cc)
{
	for (unsigned i = 0; i < NSLOTS; i++) {
		struct orfa_call *call = cc->slots[i];

		if (call && call->answered && !call->sink) {
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
		? orfa_now_ns() + (int64_t)timeout_ms * 1000000 : 0;
	call_get(call);			/* the table's reference */
	/* The connection the frame goes out on: a reconnect may replace
	 * cc->conn meanwhile, and this call must not reach the new one. */
	if (call->conn)
		orfa_conn_put(&call->conn);
	orfa_conn_get(cc->conn);
	call->conn = cc->conn;
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
void *rx_sink(void *arg, const struct orfa_hdr *hdr)
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

/* Run the callback of a call whose answer the caller holds (it got true
 * from call_take_answer, or set call->answered on a call no table holds).
 * rep reaches the callback only when err is 0.  Drops no reference: each
 * caller puts the ones it holds. */
void call_complete(struct orfa_call *call, int err,
		   const struct orfa_msg *rep)
{
	stats_call(call->opcode, err,
		   call->t_sent ? orfa_now_ns() - call->t_sent : -1,
		   !err && call->opcode == ORFA_OP_READ ? rep->data_len : 0,
		   !err ? call->wbytes : 0);
	call->fn(call, err, err ? NULL : rep);
}

void rx_handle(struct cconn *cc, struct orfa_rxmsg *rx)
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
		/* A removal sent again after a reconnect: ENOENT means the
		 * first one was applied before the server went away. */
		if (err == -ENOENT && call->enoent_ok)
			err = 0;
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


/* ---- sending ------------------------------------------------------------ */

/* The live connection with the fewest calls in flight; NULL if none. */
struct cconn *conn_pick(struct orfa_client *cl, int pin)
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

/* The server file ids a request carries (0 to 2 of them). */
static unsigned msg_fh_fields(struct orfa_msg *m, uint64_t *f[2])
{
	switch (m->hdr.opcode) {
	case ORFA_OP_GETATTR: f[0] = &m->a.getattr.fh; return 1;
	case ORFA_OP_SETATTR: f[0] = &m->a.setattr.fh; return 1;
	case ORFA_OP_READ: f[0] = &m->a.read.fh; return 1;
	case ORFA_OP_WRITE: f[0] = &m->a.write.fh; return 1;
	case ORFA_OP_FLUSH: case ORFA_OP_RELEASE: case ORFA_OP_FSYNC:
	case ORFA_OP_RELEASEDIR: case ORFA_OP_FSYNCDIR:
		f[0] = &m->a.fh.fh; return 1;
	case ORFA_OP_READDIR: case ORFA_OP_READDIRPLUS:
		f[0] = &m->a.readdir.fh; return 1;
	case ORFA_OP_GETLK: case ORFA_OP_SETLK:
		f[0] = &m->a.lk.fh; return 1;
	case ORFA_OP_FLOCK: f[0] = &m->a.flock.fh; return 1;
	case ORFA_OP_FALLOCATE: f[0] = &m->a.fallocate.fh; return 1;
	case ORFA_OP_LSEEK: f[0] = &m->a.lseek.fh; return 1;
	case ORFA_OP_COPY_FILE_RANGE:
		f[0] = &m->a.copy.fh_in;
		f[1] = &m->a.copy.fh_out;
		return 2;
	default:
		return 0;
	}
}

/* A call made before cc's last reconnect: translate the file ids it
 * carries to the new connection's.  An id not in the table (older, or
 * opened meanwhile) is left alone: the server answers EBADF to ids it
 * never gave out on this connection.  cc->lock held. */
static void call_remap(struct cconn *cc, struct orfa_call *call)
{
	uint64_t *f[2];
	unsigned n;

	if ((int32_t)(call->epoch - cc->epoch) >= 0 || !cc->nremap)
		return;
	n = msg_fh_fields(&call->msg, f);
	for (unsigned i = 0; i < n; i++) {
		for (unsigned k = 0; k < cc->nremap; k++) {
			if (*f[i] && *f[i] == cc->remap[k].old_fh) {
				*f[i] = cc->remap[k].new_fh;
				break;
			}
		}
	}
}

/* Requests that may be sent twice with the same effect (issue 6).
 * Creating, removing and renaming names are not; nor an O_APPEND write. */
static bool op_idempotent(const struct orfa_msg *m)
{
	switch (m->hdr.opcode) {
	case ORFA_OP_GETATTR: case ORFA_OP_SETATTR: case ORFA_OP_LOOKUP:
	case ORFA_OP_READLINK: case ORFA_OP_OPEN: case ORFA_OP_OPENDIR:
	case ORFA_OP_READ: case ORFA_OP_FLUSH: case ORFA_OP_RELEASE:
	case ORFA_OP_FSYNC: case ORFA_OP_RELEASEDIR: case ORFA_OP_FSYNCDIR:
	case ORFA_OP_READDIR: case ORFA_OP_READDIRPLUS: case ORFA_OP_STATFS:
	case ORFA_OP_GETXATTR: case ORFA_OP_LISTXATTR: case ORFA_OP_ACCESS:
	case ORFA_OP_LSEEK:
		return true;
	case ORFA_OP_WRITE:
		return !(m->a.write.flags & O_APPEND);
	default:
		return false;
	}
}

/* Not idempotent, but call_resolve can tell whether it was applied. */
static bool op_resolvable(const struct orfa_msg *m)
{
	switch (m->hdr.opcode) {
	case ORFA_OP_CREATE: case ORFA_OP_MKDIR: case ORFA_OP_MKNOD:
	case ORFA_OP_SYMLINK: case ORFA_OP_LINK: case ORFA_OP_UNLINK:
	case ORFA_OP_RMDIR: case ORFA_OP_RENAME:
		return true;
	default:
		return false;
	}
}

/* Keep what a resend needs: names and data are the caller's only until
 * orfa_call_send returns.  False when out of memory (then no resend). */
static bool call_keep(struct orfa_call *call, const struct iovec *iov,
		      int iovcnt, size_t data_len)
{
	struct orfa_msg *m = &call->msg;
	size_t nl = m->name ? m->namelen : 0, nl2 = m->name2 ? m->name2len : 0;

	if (nl + nl2) {
		call->names = malloc(nl + nl2);
		if (!call->names)
			return false;
		memcpy(call->names, m->name ? m->name : "", nl);
		memcpy(call->names + nl, m->name2 ? m->name2 : "", nl2);
	}
	if (data_len) {
		size_t off = 0;

		call->rdata = malloc(data_len);
		if (!call->rdata)
			return false;
		for (int i = 0; i < iovcnt; i++) {
			memcpy((char *)call->rdata + off, iov[i].iov_base,
			       iov[i].iov_len);
			off += iov[i].iov_len;
		}
		call->rdata_len = data_len;
	}
	return true;
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

/* Unlink a call whose frame could not be built or sent and answer it with
 * -EIO, unless another party (timer, interrupt, connection failure)
 * answered it first.  Drops the table's reference; the caller keeps its
 * own. */
static void call_fail_unsent(struct cconn *cc, struct orfa_call *call)
{
	bool answer = false, unlinked = false;

	pthread_mutex_lock(&cc->lock);
	if (call->linked && !call->answered) {
		answer = call_take_answer(cc, call);
		slot_unlink(cc, call);
		unlinked = true;
	}
	pthread_mutex_unlock(&cc->lock);
	if (answer)
		call_complete(call, -EIO, NULL);
	if (unlinked)
		call_put(call);
}

/* Build the frame of a call registered on cc: file ids translated, header
 * segment encoded with its req_id.  The names are dropped from call->msg
 * (they are the caller's, or call->names).  Returns the header segment's
 * length or a negative errno. */
static ssize_t call_frame(struct cconn *cc, struct orfa_call *call,
			  size_t data_len)
{
	ssize_t head_len;

	pthread_mutex_lock(&cc->lock);
	call_remap(cc, call);
	pthread_mutex_unlock(&cc->lock);
	free(call->head_heap);		/* a resend encodes again */
	call->head_heap = NULL;
	head_len = call_encode(call, data_len);
	call->msg.name = call->msg.name2 = NULL;
	if (head_len < 0)
		return head_len;
	call->msg.hdr.req_id = call->req_id;
	orfa_hdr_encode(call->head, &call->msg.hdr);
	return head_len;
}

/* The transport message for a call's frame (data: iov/iovcnt). */
static void call_txmsg(struct orfa_txmsg *tx, struct orfa_call *call,
		       ssize_t head_len, const struct iovec *iov, int iovcnt)
{
	memset(tx, 0, sizeof(*tx));
	tx->head = call->head;
	tx->head_len = (size_t)head_len;
	tx->iov = iovcnt ? iov : NULL;
	tx->iovcnt = iovcnt;
	tx->fd = -1;
	tx->reply_buf = call->sink;
	tx->reply_buf_len = call->sink_len;
}

__thread bool tl_rx_thread;

/*
 * Register call on a live connection (its pinned one, else the least
 * loaded).  With reconnect, waits for a connection to come back within the
 * request timeout, except on a receiver thread (a completion callback
 * sending), which may be the very thread that has to reconnect.  Returns
 * the connection, or NULL (client stopped, none alive).
 */
static struct cconn *call_place(struct orfa_call *call)
{
	struct orfa_client *cl = call->cl;
	struct cconn *cc = NULL;
	int64_t wait_until = 0;
	int rc = -ENOTCONN;

	while (!cl->stopped) {
		for (unsigned tries = 0; tries < cl->n; tries++) {
			cc = conn_pick(cl, call->pin);
			if (!cc)
				break;
			rc = slot_register(cc, call);
			if (rc == 0 || call->pin >= 0)
				break;
		}
		if (rc == 0 || !cl->reconnect || tl_rx_thread)
			break;
		/* Reconnecting: wait for the connection, within the request
		 * timeout. */
		if (!wait_until)
			wait_until = orfa_now_ns() + (int64_t)(cl->timeout_ms > 0 ?
				cl->timeout_ms : HELLO_WAIT_MS) * 1000000;
		if (!conn_wait_alive(cl, call->pin, wait_until))
			break;
	}
	return rc == 0 ? cc : NULL;
}

/* The caller's data buffer is lent until the transport's done(), which
 * TCP calls before send returns. */
static void call_wait_data(struct orfa_call *call)
{
	struct orfa_client *cl = call->cl;

	pthread_mutex_lock(&cl->data_lock);
	while (!call->data_done)
		pthread_cond_wait(&cl->data_cond, &cl->data_lock);
	pthread_mutex_unlock(&cl->data_lock);
}

void orfa_call_send(struct orfa_call *call, const struct iovec *iov,
		    int iovcnt, unsigned flags, orfa_call_fn fn,
		    orfa_orphan_fn orphan)
{
	struct orfa_client *cl = call->cl;
	struct orfa_txmsg tx;
	struct cconn *cc;
	size_t data_len = 0;
	ssize_t head_len;
	int rc;

	call->fn = fn;
	call->orphan = orphan;
	call->flags = flags;
	call->t_sent = orfa_now_ns();
	for (int i = 0; i < iovcnt; i++)
		data_len += iov[i].iov_len;
	if (call->opcode == ORFA_OP_WRITE)
		call->wbytes = data_len;
	if (cl->reconnect && (op_idempotent(&call->msg) ||
			      op_resolvable(&call->msg))) {
		call->retry = call_keep(call, iov, iovcnt, data_len);
		call->resolve = !op_idempotent(&call->msg);
	}

	cc = call_place(call);
	if (!cc) {
		stats_call(call->opcode, -EIO, -1, 0, 0);
		fn(call, -EIO, NULL);
		call_put(call);
		return;
	}
	head_len = call_frame(cc, call, data_len);
	if (head_len < 0) {
		log_err("cannot encode %s request: %s", orfa_op_name(call->opcode),
			strerror((int)-head_len));
		call_fail_unsent(cc, call);
		call_put(call);
		return;
	}
	if (call->hook) {
		struct orfa_call_ref ref = {
			.req_id = call->req_id, .conn = cc->idx,
		};
		call->hook(call, ref, call->hook_arg);
	}
	call_txmsg(&tx, call, head_len, iov, iovcnt);
	if (iovcnt) {
		tx.done = call_data_done;
		tx.done_arg = call;
	}
	rc = orfa_conn_send(call->conn, &tx);
	if (rc < 0) {
		log_err("%s: cannot send %s: %s", cc->name,
			orfa_op_name(call->opcode),
			orfa_conn_last_error(call->conn)[0] ?
			orfa_conn_last_error(call->conn) : strerror(-rc));
		call_fail_unsent(cc, call);
		/* A partly written frame leaves the stream unusable; the
		 * receiver fails the rest. */
		orfa_conn_shutdown(call->conn);
	}
	if (iovcnt)
		call_wait_data(call);
	call_put(call);
}

void call_resend(struct cconn *cc, struct orfa_call *call)
{
	struct orfa_msg *m = &call->msg;
	struct iovec iov = {
		.iov_base = call->rdata, .iov_len = call->rdata_len,
	};
	struct orfa_txmsg tx;
	ssize_t head_len;
	int rc;

	if (call->names) {
		m->name = m->namelen ? call->names : NULL;
		m->name2 = m->name2len ? call->names + m->namelen : NULL;
	}
	rc = slot_register(cc, call);
	if (rc < 0) {
		call->answered = true;
		call_complete(call, -EIO, NULL);
		return;
	}
	head_len = call_frame(cc, call, call->rdata_len);
	if (head_len >= 0) {
		call_txmsg(&tx, call, head_len, &iov, call->rdata_len ? 1 : 0);
		rc = orfa_conn_send(call->conn, &tx);
	} else {
		rc = (int)head_len;
	}
	if (rc == 0)
		return;
	log_err("%s: cannot resend %s: %s", cc->name,
		orfa_op_name(call->opcode), strerror(-rc));
	call_fail_unsent(cc, call);
	orfa_conn_shutdown(call->conn);
}

/* ---- waiting for a connection to come back ------------------------------ */

void realtime_after(struct timespec *ts, int64_t ns)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ns / 1000000000LL;
	ts->tv_nsec += ns % 1000000000LL;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

bool conn_wait_alive(struct orfa_client *cl, int pin, int64_t deadline)
{
	bool alive = false;

	pthread_mutex_lock(&cl->rc_lock);
	for (;;) {
		struct timespec ts;
		int64_t left;

		if (pin >= 0)
			alive = !__atomic_load_n(&cl->conns[pin]->dead,
						 __ATOMIC_ACQUIRE);
		else
			alive = conn_pick(cl, -1) != NULL;
		left = deadline - orfa_now_ns();
		if (alive || cl->stopped || left <= 0)
			break;
		if (left > 200 * 1000000LL)
			left = 200 * 1000000LL;	/* re-check now and then */
		realtime_after(&ts, left);
		pthread_cond_timedwait(&cl->rc_cond, &cl->rc_lock, &ts);
	}
	pthread_mutex_unlock(&cl->rc_lock);
	return alive && !cl->stopped;
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

