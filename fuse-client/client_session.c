/*
 * client_session.c - the orfa client's connections as a whole (see
 * client.h): connecting with HELLO, starting and stopping the receiver
 * and timer threads, the timer's work (request timeouts, interrupts,
 * flushing FORGET batches), the fire-and-forget FORGET and RELEASE, and
 * reconnecting dead connections (issue 6; see client.h).
 */
#include "client_impl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handshake.h"
#include "log.h"

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
	int64_t now = orfa_now_ns();

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
		if (orfa_now_ns() >= next_expire) {
			expire_calls(cl);
			next_expire = orfa_now_ns() + 250 * 1000000LL;
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

/* Send one handshake request m (no data) on a fresh connection. */
static int hs_send(struct cconn *cc, struct orfa_msg *m, char *err,
		   size_t errsz)
{
	uint8_t head[ORFA_HDR_SIZE + 128 + ORFA_MAX_EXPORT + 8];
	struct orfa_txmsg tx;
	ssize_t body;
	int rc;

	body = orfa_req_encode(m, head + ORFA_HDR_SIZE,
			       sizeof(head) - ORFA_HDR_SIZE);
	if (body < 0) {
		snprintf(err, errsz, "%s: cannot encode %s: %s", cc->name,
			 orfa_op_name(m->hdr.opcode), strerror((int)-body));
		return (int)body;
	}
	m->hdr.data_len = 0;
	orfa_hdr_encode(head, &m->hdr);
	memset(&tx, 0, sizeof(tx));
	tx.head = head;
	tx.head_len = ORFA_HDR_SIZE + (size_t)body;
	tx.fd = -1;
	rc = orfa_conn_send(cc->conn, &tx);
	if (rc < 0)
		snprintf(err, errsz, "%s: cannot send %s: %s", cc->name,
			 orfa_op_name(m->hdr.opcode), strerror(-rc));
	return rc;
}

/*
 * Receive the reply to handshake request (opcode, req_id) into rep (its
 * body and data stay in rx until orfa_conn_recv_done).  Waits at most
 * wait_ms: a server that accepts but never answers must not hang the
 * mount.  A refusal (status != 0) is turned into a message and its errno.
 */
static int hs_recv(struct orfa_client *cl, struct cconn *cc, unsigned opcode,
		   uint64_t req_id, struct orfa_rxmsg *rx, struct orfa_msg *rep,
		   char *err, size_t errsz)
{
	int wait_ms = cl->timeout_ms > 0 ? cl->timeout_ms : HELLO_WAIT_MS;
	const char *why = NULL;
	struct pollfd pfd;
	int rc;

	pfd.fd = orfa_conn_fd(cc->conn);
	pfd.events = POLLIN;
	if (pfd.fd >= 0) {
		do {
			rc = poll(&pfd, 1, wait_ms);
		} while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			snprintf(err, errsz, "%s: no answer to %s within %d ms",
				 cc->name, orfa_op_name(opcode), wait_ms);
			return -ETIMEDOUT;
		}
	}
	memset(rx, 0, sizeof(*rx));
	rc = orfa_conn_recv(cc->conn, rx);
	if (rc < 0) {
		const char *le = orfa_conn_last_error(cc->conn);

		snprintf(err, errsz, "%s: no answer to %s: %s", cc->name,
			 orfa_op_name(opcode), le && le[0] ? le : strerror(-rc));
		return rc;
	}
	memset(rep, 0, sizeof(*rep));
	rep->hdr = rx->hdr;
	if (rx->hdr.opcode != opcode || rx->hdr.req_id != req_id) {
		rc = -EPROTO;
		why = "not the reply to the handshake";
	} else {
		rc = orfa_rep_decode(rep, rx->body, &why);
	}
	if (rc < 0) {
		snprintf(err, errsz, "%s: bad %s reply: %s", cc->name,
			 orfa_op_name(opcode), why ? why : strerror(-rc));
		orfa_conn_recv_done(cc->conn, rx);
		return -EPROTO;
	}
	rep->data = rx->data;
	if (rep->hdr.status) {
		int len = rx->hdr.data_len > 200 ? 200 : (int)rx->hdr.data_len;
		const char *reason = rx->data ? (const char *)rx->data : "";

		/* The server's reason when it gave one, else the errno. */
		if (len && memchr(reason, '\0', (size_t)len))
			len = (int)strlen(reason);
		if (opcode == ORFA_OP_HELLO &&
		    (rep->hdr.status == EPROTONOSUPPORT ||
		     rep->a.hello_rep.version != ORFA_PROTO_VERSION))
			snprintf(err, errsz, "%s: server speaks protocol "
				 "version %u, we speak %u%s%.*s", cc->name,
				 rep->a.hello_rep.version, ORFA_PROTO_VERSION,
				 len ? ": " : "", len, reason);
		else if (len)
			snprintf(err, errsz, "%s: server refused: %.*s",
				 cc->name, len, reason);
		else
			snprintf(err, errsz, "%s: server refused export %s: %s",
				 cc->name, cl->export_path,
				 strerror((int)rep->hdr.status));
		rc = -(int)rep->hdr.status;
		orfa_conn_recv_done(cc->conn, rx);
		return rc;
	}
	return 0;
}

/*
 * Synchronous handshake on a fresh connection (no receiver thread yet):
 * HELLO, then AUTH when either side holds a key (common/handshake.c does
 * the protocol; this does the I/O).
 */
static int do_hello(struct orfa_client *cl, struct cconn *cc,
		    uint32_t max_data, const struct orfa_key *key, bool again,
		    char *err, size_t errsz)
{
	struct orfa_handshake hs;
	struct orfa_hello_rep hello;
	struct orfa_rxmsg rx;
	struct orfa_msg m, rep;
	int rc;

	orfa_handshake_init(&hs, key, cl->export_path);
	rc = orfa_handshake_hello(&hs, &m, 1, max_data, ORFA_FEAT_ALL);
	if (rc < 0) {
		snprintf(err, errsz, "bad export path '%s'", cl->export_path);
		goto out;
	}
	rc = hs_send(cc, &m, err, errsz);
	if (rc < 0)
		goto out;
	rc = hs_recv(cl, cc, ORFA_OP_HELLO, 1, &rx, &rep, err, errsz);
	if (rc < 0)
		goto out;
	rc = orfa_handshake_hello_reply(&hs, &rep, err, errsz);
	hello = rep.a.hello_rep;
	orfa_conn_recv_done(cc->conn, &rx);
	if (rc == 1) {
		rc = orfa_handshake_auth(&hs, &m, 2);
		if (rc == 0)
			rc = hs_send(cc, &m, err, errsz);
		if (rc == 0)
			rc = hs_recv(cl, cc, ORFA_OP_AUTH, 2, &rx, &rep, err,
				     errsz);
		if (rc == 0) {
			rc = orfa_handshake_auth_reply(&hs, &rep, &hello, err,
						       errsz);
			orfa_conn_recv_done(cc->conn, &rx);
		}
	}
	if (rc < 0)
		goto out;

	if (again) {
		/* A restarted server: same root unless its ids did not
		 * survive (then old ids answer ESTALE); same limits, since
		 * the FUSE session was set up with them. */
		if (hello.root_nodeid != cl->info.root_nodeid ||
		    hello.max_data < cl->info.max_data) {
			snprintf(err, errsz, "%s: the server came back with "
				 "another root node or a smaller max_data",
				 cc->name);
			rc = -ESTALE;
		}
		goto out;
	}
	if (cc->idx == 0) {
		cl->info.root_nodeid = hello.root_nodeid;
		cl->info.root_generation = hello.root_generation;
		cl->info.root_attr = hello.root_attr;
		cl->info.features = hello.features;
		cl->info.max_data = (uint32_t)(hello.max_data < max_data ?
					       hello.max_data : max_data);
		cl->info.server_version = hello.version;
	} else if (hello.root_nodeid != cl->info.root_nodeid) {
		snprintf(err, errsz, "%s: server gave another root node on a "
			 "second connection", cc->name);
		rc = -EPROTO;
		goto out;
	}
	if (cl->info.root_nodeid == ORFA_ROOT_ID_NONE ||
	    cl->info.max_data < 4096) {
		snprintf(err, errsz, "%s: unusable HELLO reply (root %llu, "
			 "max_data %u)", cc->name,
			 (unsigned long long)cl->info.root_nodeid,
			 cl->info.max_data);
		rc = -EPROTO;
	}
out:
	orfa_handshake_clear(&hs);
	return rc;
}

static void cconn_free(struct cconn *cc)
{
	if (!cc)
		return;
	if (cc->conn)
		orfa_conn_put(&cc->conn);
	free(cc->remap);
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
	pthread_mutex_init(&cl->rc_lock, NULL);
	pthread_cond_init(&cl->rc_cond, NULL);
	atomic_init(&cl->epoch, 0);
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
	if (cfg->rdma_buf_size)
		o.rdma_buf_size = cfg->rdma_buf_size;
	if (cfg->rdma_credits)
		o.rdma_credits = cfg->rdma_credits;
	cl->tpo = o;
	cl->max_data_offer = cfg->max_data;
	cl->reconnect = cfg->reconnect != 0;
	if (cl->reconnect && cfg->key) {
		cl->key = *cfg->key;
		cl->has_key = true;
	}
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
		rc = do_hello(cl, cc, cfg->max_data, cfg->key, false, err,
			      errsz);
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
	pthread_cond_broadcast(&cl->tcond);	/* timer, reconnect backoff */
	pthread_mutex_unlock(&cl->tlock);
	pthread_mutex_lock(&cl->rc_lock);
	pthread_cond_broadcast(&cl->rc_cond);	/* senders waiting for one */
	pthread_mutex_unlock(&cl->rc_lock);
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
	pthread_mutex_destroy(&cl->rc_lock);
	pthread_cond_destroy(&cl->rc_cond);
	if (cl->has_key)
		orfa_key_wipe(&cl->key);
	free(cl);
}

/* ---- reconnecting (issue 6) ---------------------------------------------- */

void orfa_client_set_reconnect_hook(struct orfa_client *cl,
				    orfa_reconnect_fn fn, void *arg)
{
	cl->rc_hook = fn;
	cl->rc_arg = arg;
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
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += left / 1000000000LL;
		ts.tv_nsec += left % 1000000000LL;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&cl->rc_cond, &cl->rc_lock, &ts);
	}
	pthread_mutex_unlock(&cl->rc_lock);
	return alive && !cl->stopped;
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

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&cl->tlock);
	if (!cl->stopping)
		pthread_cond_timedwait(&cl->tcond, &cl->tlock, &ts);
	stop = cl->stopping;
	pthread_mutex_unlock(&cl->tlock);
	return !stop;
}

bool client_stopping(struct orfa_client *cl)
{
	bool stop;

	pthread_mutex_lock(&cl->tlock);
	stop = cl->stopping;
	pthread_mutex_unlock(&cl->tlock);
	return stop;
}

int conn_reconnect(struct cconn *cc)
{
	struct orfa_client *cl = cc->cl;
	struct orfa_tp_opts o = cl->tpo;
	int backoff = 100, attempts = 0;
	int64_t t0 = orfa_now_ns();
	char err[512];

	/* Short connect attempts, so that a stop is never held up long. */
	o.connect_timeout_ms = 2000;
	while (backoff_sleep(cl, backoff)) {
		struct orfa_conn *fresh = NULL, *old;
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
		/* Swap while dead: senders never use cc->conn then, and
		 * FORGET batches (flock) check dead under that lock. */
		pthread_mutex_lock(&cl->flock);
		pthread_mutex_lock(&cc->lock);
		old = cc->conn;
		cc->conn = fresh;
		pthread_mutex_unlock(&cc->lock);
		/* References the old connection held died with it. */
		cl->fcount[cc->idx] = 0;
		pthread_mutex_unlock(&cl->flock);
		orfa_conn_put(&old);

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
		pthread_mutex_lock(&cl->rc_lock);
		pthread_cond_broadcast(&cl->rc_cond);
		pthread_mutex_unlock(&cl->rc_lock);
		log_warn("%s: reconnected after %.1f s (%d attempts)",
			 cc->name, (double)(orfa_now_ns() - t0) / 1e9,
			 attempts);
		return 0;
	}
	return -ESHUTDOWN;
}
