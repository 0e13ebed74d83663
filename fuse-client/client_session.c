/*
 * client_session.c - the orfa client as a whole (see client.h): connecting
 * its N connections (each with its handshake, client_hello.c), starting
 * and stopping the threads (the receivers through conn.c, the timer here),
 * the timer's work (request timeouts, delivering interrupts, flushing
 * FORGET batches), and freeing.
 *
 * Not here: the call table and sending (client.c), a connection's receiver
 * thread, failure and reconnect (conn.c), HELLO/AUTH (client_hello.c).
 */
#include "client_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
		realtime_after(&ts, TICK_MS * 1000000LL);
		pthread_cond_timedwait(&cl->tcond, &cl->tlock, &ts);
	}
	pthread_mutex_unlock(&cl->tlock);
	return NULL;
}

/* ---- connecting, starting, stopping --------------------------------------- */

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

/* A client for cfg with its locks and buffers and no connection yet, or
 * NULL when out of memory. */
static struct orfa_client *client_new(const struct orfa_client_cfg *cfg)
{
	struct orfa_client *cl = calloc(1, sizeof(*cl));
	struct orfa_tp_opts *o;

	if (!cl)
		return NULL;
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
	    !cl->conns || !cl->fbatch || !cl->fcount) {
		cl->stopped = true;
		orfa_client_destroy(cl);
		return NULL;
	}

	o = &cl->tpo;
	orfa_tp_opts_default(o);
	o->max_body = ORFA_MAX_BODY;
	o->max_data = cfg->max_data;
	o->send_timeout_ms = cfg->timeout_ms;
	if (cfg->rdma_buf_size)
		o->rdma_buf_size = cfg->rdma_buf_size;
	if (cfg->rdma_credits)
		o->rdma_credits = cfg->rdma_credits;
	cl->max_data_offer = cfg->max_data;
	cl->reconnect = cfg->reconnect != 0;
	cl->integrity_only = cfg->integrity_only != 0;
	if (cl->reconnect && cfg->key) {
		cl->key = *cfg->key;
		cl->has_key = true;
	}
	return cl;
}

/* Make cc's transport connection and do its handshake.  0, or a negative
 * errno with a message for the user in err. */
static int conn_open(struct cconn *cc, const struct orfa_client_cfg *cfg,
		     char *err, size_t errsz)
{
	struct orfa_client *cl = cc->cl;
	int rc;

	rc = orfa_conn_connect(cl->transport, cl->host, cl->port, &cl->tpo,
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
		return rc;
	}
	rc = do_hello(cl, cc, cfg->max_data, cfg->key, false, err, errsz);
	if (rc < 0)
		return rc;
	orfa_conn_set_sink(cc->conn, rx_sink, cc);
	return 0;
}

int orfa_client_connect(const struct orfa_client_cfg *cfg,
			struct orfa_client **out, char *err, size_t errsz)
{
	struct orfa_client *cl;
	int rc = -ENOMEM;

	*out = NULL;
	snprintf(err, errsz, "out of memory");
	cl = client_new(cfg);
	if (!cl)
		return -ENOMEM;
	for (unsigned i = 0; i < cl->n; i++) {
		struct cconn *cc = cconn_new(cl, i);

		if (!cc) {
			rc = -ENOMEM;
			goto fail;
		}
		cl->conns[i] = cc;
		rc = conn_open(cc, cfg, err, errsz);
		if (rc < 0)
			goto fail;
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
		rc = conn_start(cl->conns[i]);
		if (rc < 0)
			return rc;
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
	for (unsigned i = 0; cl->conns && i < cl->n; i++)
		conn_stop(cl->conns[i]);
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

