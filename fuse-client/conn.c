/*
 * conn.c - the life of one client connection (see client.h, "Reconnecting"):
 * its receiver thread, which reads replies and hands them to the call
 * table; what happens when the connection dies (every call on it answered
 * with -EIO, or parked for resending); reconnecting with backoff (a new
 * transport connection, HELLO again, the reconnect hook); and sending the
 * parked calls again, or resolving the ones that are not idempotent.
 *
 * This file owns the receiver thread and its restart: conn_start creates
 * it, conn_stop joins it, and a reconnect happens on it.  It calls into
 * the call table (client.c) and the handshake (client_hello.c); neither
 * calls back here.
 *
 * Not here: the call table, sending and completing calls (client.c),
 * HELLO/AUTH (client_hello.c), the first connect, the timer and stopping
 * the client as a whole (client_session.c), reopening files after a
 * reconnect (the FUSE side's hook, ops_reopen.c).
 */
#include "client_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "stats.h"

/* ---- failure ------------------------------------------------------------- */

/* cl->stopping, read under cl->tlock (not with tlock held). */
static bool client_stopping(struct orfa_client *cl)
{
	bool stop;

	pthread_mutex_lock(&cl->tlock);
	stop = cl->stopping;
	pthread_mutex_unlock(&cl->tlock);
	return stop;
}

/*
 * The connection is gone: every call on it gets -EIO now, except the ones
 * kept for resending (with reconnect, not stopping: parked on cc->resend),
 * and the connection stays dead (orfa_call_send skips it) until a
 * reconnect revives it.  Calls are taken out in batches so that no
 * callback runs under cc->lock and nothing is allocated on this path.
 */
static void conn_fail(struct cconn *cc, int err)
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

/* ---- resending after a reconnect (issue 6) ------------------------------ */

/* Complete cc's parked calls whose deadline passed (all when all is set)
 * with err. */
static void conn_resend_fail(struct cconn *cc, int err, bool all)
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

/* After a reconnect: send cc's parked calls again, in their original
 * order (receiver thread). */
static void conn_resend(struct cconn *cc)
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

/* ---- reconnecting (issue 6) ---------------------------------------------- */

void orfa_client_set_reconnect_hook(struct orfa_client *cl,
				    orfa_reconnect_fn fn, void *arg)
{
	cl->rc_hook = fn;
	cl->rc_arg = arg;
}

/* The connection a reconnect hook may use, set for its duration (only one
 * connection reconnects at a time per thread; each has its own thread). */
static __thread struct cconn *tl_fresh;

int orfa_client_sync_call(struct orfa_client *cl, unsigned conn,
			  struct orfa_msg *m, struct orfa_msg *rep)
{
	static atomic_uint_fast64_t sync_id = 1000;
	struct cconn *cc = tl_fresh;
	struct orfa_rxmsg rx;
	char err[256];
	int rc;

	if (!cc || cc->idx != conn || cc->cl != cl)
		return -EINVAL;
	m->hdr.req_id = atomic_fetch_add(&sync_id, 1);
	rc = hs_send(cc, m, err, sizeof(err));
	if (rc == 0)
		rc = hs_recv(cl, cc, m->hdr.opcode, m->hdr.req_id, &rx, rep,
			     err, sizeof(err));
	if (rc == 0) {
		rep->data = NULL;
		rep->data_len = 0;
		orfa_conn_recv_done(cc->conn, &rx);
	}
	return rc;
}

int orfa_client_remap_fh(struct orfa_client *cl, unsigned conn,
			 uint64_t old_fh, uint64_t new_fh)
{
	struct cconn *cc;

	if (conn >= cl->n)
		return -EINVAL;
	cc = cl->conns[conn];
	pthread_mutex_lock(&cc->lock);
	if (cc->nremap == cc->remap_cap) {
		unsigned cap = cc->remap_cap ? cc->remap_cap * 2 : 16;
		struct fh_pair *nr = realloc(cc->remap, cap * sizeof(*nr));

		if (!nr) {
			pthread_mutex_unlock(&cc->lock);
			return -ENOMEM;
		}
		cc->remap = nr;
		cc->remap_cap = cap;
	}
	cc->remap[cc->nremap].old_fh = old_fh;
	cc->remap[cc->nremap].new_fh = new_fh;
	cc->nremap++;
	pthread_mutex_unlock(&cc->lock);
	return 0;
}

/* Sleep ms on the client's stop condition: false when stopping. */
static bool backoff_sleep(struct orfa_client *cl, int ms)
{
	struct timespec ts;
	bool stop;

	realtime_after(&ts, (int64_t)ms * 1000000);
	pthread_mutex_lock(&cl->tlock);
	if (!cl->stopping)
		pthread_cond_timedwait(&cl->tcond, &cl->tlock, &ts);
	stop = cl->stopping;
	pthread_mutex_unlock(&cl->tlock);
	return !stop;
}

/* Put fresh in place of cc's dead transport connection. */
static void conn_swap(struct cconn *cc, struct orfa_conn *fresh)
{
	struct orfa_client *cl = cc->cl;
	struct orfa_conn *old;

	/* Swap while dead: senders never use cc->conn then, and FORGET
	 * batches (flock) check dead under that lock. */
	pthread_mutex_lock(&cl->flock);
	pthread_mutex_lock(&cc->lock);
	old = cc->conn;
	cc->conn = fresh;
	pthread_mutex_unlock(&cc->lock);
	/* References the old connection held died with it. */
	cl->fcount[cc->idx] = 0;
	pthread_mutex_unlock(&cl->flock);
	orfa_conn_put(&old);
}

/* The handshake on the new connection is done: run the reconnect hook,
 * then let calls flow on cc again and wake the senders waiting for it. */
static void conn_revive(struct cconn *cc)
{
	struct orfa_client *cl = cc->cl;

	pthread_mutex_lock(&cc->lock);
	cc->nremap = 0;
	pthread_mutex_unlock(&cc->lock);
	if (cl->rc_hook) {
		tl_fresh = cc;
		cl->rc_hook(cl, cc->idx, cl->rc_arg);
		tl_fresh = NULL;
	}
	orfa_conn_set_sink(cc->conn, rx_sink, cc);
	pthread_mutex_lock(&cc->lock);
	cc->epoch = atomic_fetch_add(&cl->epoch, 1) + 1;
	cc->claimed = NULL;
	__atomic_store_n(&cc->dead, false, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&cc->lock);
	stats_reconnect();
	pthread_mutex_lock(&cl->rc_lock);
	pthread_cond_broadcast(&cl->rc_cond);
	pthread_mutex_unlock(&cl->rc_lock);
}

/* Reconnect cc (its receiver thread, cc dead): loops with backoff until
 * it is alive again (0), the server is hopeless (its negative errno: cc
 * stays dead) or the client stops (-ESHUTDOWN). */
static int conn_reconnect(struct cconn *cc)
{
	struct orfa_client *cl = cc->cl;
	struct orfa_tp_opts o = cl->tpo;
	int backoff = 100, attempts = 0;
	int64_t t0 = orfa_now_ns();
	char err[512];

	/* Short connect attempts, so that a stop is never held up long. */
	o.connect_timeout_ms = 2000;
	while (backoff_sleep(cl, backoff)) {
		struct orfa_conn *fresh = NULL;
		int rc;

		/* Parked requests still owe an answer within their timeout. */
		conn_resend_fail(cc, -ETIMEDOUT, false);

		attempts++;
		if (backoff < 2000)
			backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
		rc = orfa_conn_connect(cl->transport, cl->host, cl->port, &o,
				       &fresh);
		if (rc < 0) {
			log_debug("%s: reconnect attempt %d: %s", cc->name,
				  attempts, strerror(-rc));
			continue;
		}
		conn_swap(cc, fresh);
		rc = do_hello(cl, cc, cl->max_data_offer,
			      cl->has_key ? &cl->key : NULL, true, err,
			      sizeof(err));
		if (rc < 0) {
			log_warn("reconnect: %s", err);
			orfa_conn_shutdown(cc->conn);
			if (rc == -ESTALE || rc == -EACCES ||
			    rc == -EPROTONOSUPPORT)
				return rc;	/* hopeless: stay dead */
			continue;
		}
		if (client_stopping(cl)) {
			orfa_conn_shutdown(cc->conn);
			break;
		}
		conn_revive(cc);
		log_warn("%s: reconnected after %.1f s (%d attempts)",
			 cc->name, (double)(orfa_now_ns() - t0) / 1e9,
			 attempts);
		return 0;
	}
	return -ESHUTDOWN;
}

/* ---- the receiver thread ------------------------------------------------- */

/* Reads replies until the connection dies, then fails or parks its calls
 * and, with reconnect, connects again and resends; ends when the client
 * stops or the server cannot be used again. */
static void *rx_main(void *arg)
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

int conn_start(struct cconn *cc)
{
	char tname[32];
	int rc;

	rc = pthread_create(&cc->rx, NULL, rx_main, cc);
	if (rc) {
		log_err("cannot start receiver thread: %s", strerror(rc));
		return -rc;
	}
	cc->rx_started = true;
	snprintf(tname, sizeof(tname), "orfa-rx%u", cc->idx);
	tname[15] = '\0';		/* the kernel's limit */
	pthread_setname_np(cc->rx, tname);
	return 0;
}

void conn_stop(struct cconn *cc)
{
	if (!cc || !cc->conn)
		return;
	/* A reconnect may be swapping the connection. */
	pthread_mutex_lock(&cc->lock);
	orfa_conn_shutdown(cc->conn);
	pthread_mutex_unlock(&cc->lock);
	if (cc->rx_started) {
		pthread_join(cc->rx, NULL);
		cc->rx_started = false;
	} else {
		conn_fail(cc, 0);
	}
}
