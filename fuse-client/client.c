/*
 * client.c - the RPC layer of the orfa client (see client.h): calls, the
 * per-connection slot tables, receiving and sending.  Connecting, the
 * timer, interrupts and forgets are in client_session.c.
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
 * slots, such orphans without a reply buffer are evicted first (one with a
 * buffer stays: the peer may still write into it).
 *
 * Not here: FUSE (ops.c), command line (main.c), reconnecting
 * (client_session.c; this file only waits for it and translates file ids).
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

/* Run the callback that call_take_answer gave us, then drop the table ref
 * if we unlinked it. */
void call_complete(struct orfa_call *call, int err,
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

/*
 * The connection is gone: every call on it gets -EIO now, and the
 * connection stays dead (orfa_call_send skips it).  Calls are taken out in
 * batches so that no callback runs under cc->lock and nothing is
 * allocated on this path.
 */
void conn_fail(struct cconn *cc, int err)
{
	struct orfa_call *batch[64];
	bool answer[64];
	bool stopping = client_stopping(cc->cl);
	unsigned n;

	if (!cc->dead && err && !stopping)
		log_err("%s: connection lost: %s", cc->name,
			orfa_conn_last_error(cc->conn)[0] ?
			orfa_conn_last_error(cc->conn) : strerror(-err));
	/* First stop the peer from writing into reply buffers we free. */
	orfa_conn_shutdown(cc->conn);
	bool park = cc->cl->reconnect && !stopping;

	do {
		n = 0;
		pthread_mutex_lock(&cc->lock);
		cc->dead = true;
		/* The claimed call may also still be in its slot: its two
		 * references are dropped separately, its answer taken once
		 * (below, where it may also be parked for resending). */
		if (cc->claimed) {
			answer[n] = cc->claimed->linked ? false :
				    call_take_answer(cc, cc->claimed);
			batch[n++] = cc->claimed;
			cc->claimed = NULL;
		}
		for (unsigned i = 0; i < NSLOTS && n < 64; i++) {
			struct orfa_call *call = cc->slots[i];

			if (!call)
				continue;
			slot_unlink(cc, call);
			if (park && call->retry && !call->answered) {
				/* The table's reference moves to the list. */
				call->next_resend = cc->resend;
				cc->resend = call;
				continue;
			}
			answer[n] = call_take_answer(cc, call);
			batch[n++] = call;
		}
		pthread_cond_broadcast(&cc->slot_cond);
		pthread_mutex_unlock(&cc->lock);
		for (unsigned i = 0; i < n; i++) {
			if (answer[i])
				call_complete(batch[i], -EIO, NULL);
			call_put(batch[i]);
		}
	} while (n > 0);
}

/* Set on receiver threads: a call sent from one (a completion callback)
 * must never wait for a reconnect, which that very thread may have to
 * make. */
static __thread bool tl_rx_thread;

void *rx_main(void *arg)
{
	struct cconn *cc = arg;
	struct orfa_rxmsg rx;
	int rc;

	tl_rx_thread = true;
	for (;;) {
		for (;;) {
			memset(&rx, 0, sizeof(rx));
			rc = orfa_conn_recv(cc->conn, &rx);
			if (rc < 0)
				break;
			rx_handle(cc, &rx);
			orfa_conn_recv_done(cc->conn, &rx);
		}
		conn_fail(cc, rc);
		if (!cc->cl->reconnect || conn_reconnect(cc) < 0)
			break;
		conn_resend(cc);
	}
	conn_resend_fail(cc, -EIO, true);
	return NULL;
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

void orfa_call_send(struct orfa_call *call, const struct iovec *iov,
		    int iovcnt, unsigned flags, orfa_call_fn fn,
		    orfa_orphan_fn orphan)
{
	struct orfa_client *cl = call->cl;
	struct orfa_txmsg tx;
	struct cconn *cc = NULL;
	size_t data_len = 0;
	ssize_t head_len;
	int64_t wait_until = 0;
	int rc = -ENOTCONN;

	call->fn = fn;
	call->orphan = orphan;
	call->flags = flags;
	for (int i = 0; i < iovcnt; i++)
		data_len += iov[i].iov_len;
	if (cl->reconnect && (op_idempotent(&call->msg) ||
			      op_resolvable(&call->msg))) {
		call->retry = call_keep(call, iov, iovcnt, data_len);
		call->resolve = !op_idempotent(&call->msg);
	}

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
	if (rc < 0) {
		fn(call, -EIO, NULL);
		call_put(call);
		return;
	}
	pthread_mutex_lock(&cc->lock);
	call_remap(cc, call);
	pthread_mutex_unlock(&cc->lock);

	head_len = call_encode(call, data_len);
	/* Names point into the caller's buffers: gone after we return. */
	call->msg.name = call->msg.name2 = NULL;
	if (head_len < 0) {
		bool answer = false, unlinked = false;

		log_err("cannot encode %s request: %s", orfa_op_name(call->opcode),
			strerror((int)-head_len));
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
	rc = orfa_conn_send(call->conn, &tx);
	if (rc < 0) {
		bool answer = false, unlinked = false;

		log_err("%s: cannot send %s: %s", cc->name,
			orfa_op_name(call->opcode),
			orfa_conn_last_error(call->conn)[0] ?
			orfa_conn_last_error(call->conn) : strerror(-rc));
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
		orfa_conn_shutdown(call->conn);
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

/* ---- resending after a reconnect (issue 6) ------------------------------ */

void conn_resend_fail(struct cconn *cc, int err, bool all)
{
	int64_t now = orfa_now_ns();

	for (;;) {
		struct orfa_call *call = NULL, **pp;

		pthread_mutex_lock(&cc->lock);
		for (pp = &cc->resend; *pp; pp = &(*pp)->next_resend) {
			if (all || ((*pp)->deadline && (*pp)->deadline <= now)) {
				call = *pp;
				*pp = call->next_resend;
				call->answered = true;
				break;
			}
		}
		pthread_mutex_unlock(&cc->lock);
		if (!call)
			return;
		call_complete(call, err, NULL);
		call_put(call);		/* the list's reference */
	}
}

/* Send call (parked by conn_fail) again on cc, which is alive again. */
static void call_resend(struct cconn *cc, struct orfa_call *call)
{
	struct orfa_msg *m = &call->msg;
	struct iovec iov;
	struct orfa_txmsg tx;
	ssize_t head_len;
	bool answer = false, unlinked = false;
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
	pthread_mutex_lock(&cc->lock);
	call_remap(cc, call);
	pthread_mutex_unlock(&cc->lock);
	free(call->head_heap);
	call->head_heap = NULL;
	head_len = call_encode(call, call->rdata_len);
	m->name = m->name2 = NULL;
	if (head_len >= 0) {
		m->hdr.req_id = call->req_id;
		orfa_hdr_encode(call->head, &m->hdr);
		memset(&tx, 0, sizeof(tx));
		tx.head = call->head;
		tx.head_len = (size_t)head_len;
		if (call->rdata_len) {
			iov.iov_base = call->rdata;
			iov.iov_len = call->rdata_len;
			tx.iov = &iov;
			tx.iovcnt = 1;
		}
		tx.fd = -1;
		tx.reply_buf = call->sink;
		tx.reply_buf_len = call->sink_len;
		rc = orfa_conn_send(call->conn, &tx);
	} else {
		rc = (int)head_len;
	}
	if (rc == 0)
		return;
	log_err("%s: cannot resend %s: %s", cc->name,
		orfa_op_name(call->opcode), strerror(-rc));
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
	orfa_conn_shutdown(call->conn);
}

/*
 * Resolving a name-creating request that was in flight when its connection
 * died: LOOKUP the name on the new connection.  Found (with the expected
 * type): the first request was applied, and the LOOKUP's entry (and its
 * lookup reference) is the answer; for CREATE the file is then opened
 * (flags without O_CREAT|O_EXCL|O_TRUNC) for the file id.  ENOENT: it was
 * not applied; send it again.  Limit: a name another client made in the
 * meantime is taken as ours.  UNLINK, RMDIR and RENAME are sent again and
 * an ENOENT answer counts as done (same limit).
 */
struct resolve_ctx {
	struct cconn *cc;
	struct orfa_call *orig;		/* holds the list's reference */
	struct orfa_entry entry;
};

static void resolve_finish(struct resolve_ctx *r, int err,
			   const struct orfa_msg *rep)
{
	r->orig->answered = true;
	call_complete(r->orig, err, rep);
	call_put(r->orig);
}

static void resolve_open_done(struct orfa_call *call, int err,
			      const struct orfa_msg *rep)
{
	struct resolve_ctx *r = orfa_call_ctx(call);
	struct orfa_msg out;

	if (err) {
		/* The reference the LOOKUP handed out goes back. */
		orfa_client_forget(call->cl, r->cc->idx, r->entry.nodeid, 1);
		resolve_finish(r, err, NULL);
		return;
	}
	memset(&out, 0, sizeof(out));
	out.hdr.opcode = ORFA_OP_CREATE;
	out.a.create_rep.entry = r->entry;
	out.a.create_rep.entry.attr = rep->a.open_rep.attr;
	out.a.create_rep.fh = rep->a.open_rep.fh;
	resolve_finish(r, 0, &out);
}

static uint32_t expected_type(const struct orfa_msg *m)
{
	switch (m->hdr.opcode) {
	case ORFA_OP_CREATE: return S_IFREG;
	case ORFA_OP_MKDIR: return S_IFDIR;
	case ORFA_OP_SYMLINK: return S_IFLNK;
	case ORFA_OP_MKNOD: return m->a.mknod.mode & S_IFMT;
	default: return 0;		/* LINK: any */
	}
}

static void resolve_lookup_done(struct orfa_call *call, int err,
				const struct orfa_msg *rep)
{
	struct resolve_ctx *r = orfa_call_ctx(call);
	struct orfa_msg *om = &r->orig->msg;
	uint32_t want = expected_type(om);
	struct orfa_call *open;
	struct orfa_msg out;

	if (err == -ENOENT) {		/* not applied: send it again */
		r->orig->resolve = false;
		call_resend(r->cc, r->orig);
		call_put(r->orig);
		return;
	}
	if (err) {
		resolve_finish(r, err, NULL);
		return;
	}
	if ((want && (rep->a.entry.attr.mode & S_IFMT) != want) ||
	    (om->hdr.opcode == ORFA_OP_LINK &&
	     rep->a.entry.nodeid != om->a.link.nodeid)) {
		orfa_client_forget(call->cl, r->cc->idx, rep->a.entry.nodeid, 1);
		resolve_finish(r, -EEXIST, NULL);
		return;
	}
	if (om->hdr.opcode != ORFA_OP_CREATE) {
		memset(&out, 0, sizeof(out));
		out.hdr.opcode = om->hdr.opcode;
		out.a.entry = rep->a.entry;
		resolve_finish(r, 0, &out);
		return;
	}
	open = orfa_call_new(call->cl, ORFA_OP_OPEN, 0, sizeof(*r));
	if (!open) {
		orfa_client_forget(call->cl, r->cc->idx, rep->a.entry.nodeid, 1);
		resolve_finish(r, -ENOMEM, NULL);
		return;
	}
	*(struct resolve_ctx *)orfa_call_ctx(open) = *r;
	((struct resolve_ctx *)orfa_call_ctx(open))->entry = rep->a.entry;
	open->msg.cred = om->cred;
	open->msg.a.open.nodeid = rep->a.entry.nodeid;
	open->msg.a.open.flags = om->a.create.flags &
				 ~(uint32_t)(O_CREAT | O_EXCL | O_TRUNC);
	orfa_call_set_conn(open, r->cc->idx);
	orfa_call_send(open, NULL, 0, 0, resolve_open_done, NULL);
}

/* Resolve a parked name-creating call (see above); takes the list's
 * reference. */
static void call_resolve(struct cconn *cc, struct orfa_call *orig)
{
	struct orfa_msg *om = &orig->msg;
	struct resolve_ctx *r;
	struct orfa_call *lk;
	uint64_t parent;
	const char *name = orig->names;

	log_warn("%s: %s was in flight at the loss: resolving it", cc->name,
		 orfa_op_name(om->hdr.opcode));
	switch (om->hdr.opcode) {
	case ORFA_OP_UNLINK: case ORFA_OP_RMDIR: case ORFA_OP_RENAME:
		orig->enoent_ok = true;
		orig->resolve = false;
		call_resend(cc, orig);
		call_put(orig);
		return;
	case ORFA_OP_CREATE: parent = om->a.create.parent; break;
	case ORFA_OP_MKDIR: parent = om->a.mkdir.parent; break;
	case ORFA_OP_MKNOD: parent = om->a.mknod.parent; break;
	case ORFA_OP_SYMLINK: parent = om->a.symlink.parent; break;
	case ORFA_OP_LINK: parent = om->a.link.newparent; break;
	default: parent = 0; break;
	}
	lk = name && parent ? orfa_call_new(orig->cl, ORFA_OP_LOOKUP, 0,
					    sizeof(*r)) : NULL;
	if (!lk) {
		orig->answered = true;
		call_complete(orig, -EIO, NULL);
		call_put(orig);
		return;
	}
	r = orfa_call_ctx(lk);
	r->cc = cc;
	r->orig = orig;
	lk->msg.cred = om->cred;
	lk->msg.a.lookup.parent = parent;
	lk->msg.name = name;
	lk->msg.namelen = om->namelen;
	orfa_call_set_conn(lk, cc->idx);
	orfa_call_send(lk, NULL, 0, 0, resolve_lookup_done, NULL);
}

void conn_resend(struct cconn *cc)
{
	struct orfa_call *list, *rev = NULL;
	unsigned n = 0;

	pthread_mutex_lock(&cc->lock);
	list = cc->resend;
	cc->resend = NULL;
	pthread_mutex_unlock(&cc->lock);
	/* Parked LIFO: resend in the original order. */
	while (list) {
		struct orfa_call *next = list->next_resend;

		list->next_resend = rev;
		rev = list;
		list = next;
	}
	while (rev) {
		struct orfa_call *next = rev->next_resend;

		if (rev->resolve) {
			call_resolve(cc, rev);	/* takes the reference */
		} else {
			call_resend(cc, rev);
			call_put(rev);		/* the list's reference */
		}
		rev = next;
		n++;
	}
	if (n)
		log_warn("%s: %u requests in flight at the loss sent again",
			 cc->name, n);
}
