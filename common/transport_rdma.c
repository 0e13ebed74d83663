/*
 * transport_rdma.c - the RDMA verbs implementation of transport.h, its
 * front: connecting with librdmacm (rdma://ADDR:PORT, RC queue pairs),
 * the small ops (fd, sink, limits, shutdown, peer address) and the ops
 * table.  The rest, called from here downwards only: the listener
 * (transport_rdma_listen.c), a connection's object, verbs resources and
 * teardown (transport_rdma_setup.c), its progress thread and completions
 * (transport_rdma_progress.c), the send and receive paths
 * (transport_rdma_tx.c, transport_rdma_rx.c), the state they share
 * (transport_rdma_state.c), the framing (rdma_wire.c) and registered
 * memory (rdma_regcache.c); the structures are in transport_rdma_impl.h.
 *
 * Event integration.  Each connection has its own CM event channel (an
 * accepted connection's id is migrated off the listener's channel once
 * established), its own completion channel, and a progress thread
 * ("orfa-rdma") that waits on both and does all the work: completions,
 * credits, READs of rendezvous data, posting queued messages, CM events,
 * and at the end the destruction of its QP, CQ and CM id.  The listener
 * has a thread too ("orfa-rdma-lst": CM events of the listening id,
 * accept, starting progress threads).  So every write()-based verbs or
 * rdma_cm command runs on a thread whose credentials are the process's,
 * never on a caller whose credentials changed (rdma_thread_may_verbs).
 * orfa_conn_fd is one end of a socketpair the transport drives: readable
 * while a received message waits (or the connection failed), writable
 * while no message is queued.  So an event loop can follow TCP's rules:
 * recv until -EAGAIN on readable, and when want_write (messages queued,
 * waiting for credits or send buffers) poll for writable -- which comes
 * once the thread has posted them, even if the loop stopped reading for
 * back-pressure meanwhile.  flush has nothing to do but report errors.
 * Blocking mode differs only in that send waits until its message is
 * posted and recv waits for a message.
 *
 * Resources per connection, created in this order and destroyed in the
 * reverse: CM event channel, CM id, (address and route), device (shared
 * verbs context), the connection's own PD, receive pool MR, send pool
 * MR, completion channel, CQ, QP,
 * (receives posted, connect/accept), epoll and eventfds, thread.
 *
 * fork(): the kernel refuses RDMA CM and verbs write() commands on fds
 * another process opened, so a listener opened before a daemonizing
 * fork() re-opens itself in the child on first use and accepts with QPs on
 * a device context of its own (lst_reopen, manual_qp).  Connections do
 * not survive fork().
 *
 * Not here: reconnection, multiple paths, IPv6 link-local scopes.
 */
#include "transport_rdma_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"


/* ---- connect ------------------------------------------------------------ */

static int ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (deadline->tv_sec - now.tv_sec) * 1000 +
	     (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : (int)ms;
}

static int cm_event_err(enum rdma_cm_event_type ev)
{
	switch (ev) {
	case RDMA_CM_EVENT_REJECTED:
	case RDMA_CM_EVENT_CONNECT_ERROR:
		return -ECONNREFUSED;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
		return -EHOSTUNREACH;
	case RDMA_CM_EVENT_DISCONNECTED:
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		return -ECONNRESET;
	default:
		return -EPROTO;
	}
}

/* Wait for one CM event on the connection's channel.  For ESTABLISHED
 * the peer's private data is checked (rdma_conn_priv_take). */
static int wait_cm(struct rdma_conn *c, enum rdma_cm_event_type want,
		   const struct timespec *deadline, const char *what)
{
	struct rdma_cm_event *e;
	struct pollfd pfd = { .fd = c->cm_ch->fd, .events = POLLIN };
	enum rdma_cm_event_type ev;
	int status, rc = 0;

	for (;;) {
		if (rdma_get_cm_event(c->cm_ch, &e) == 0)
			break;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		rc = poll(&pfd, 1, ms_left(deadline));
		if (rc < 0 && errno != EINTR)
			return -errno;
		if (rc == 0) {
			log_info("rdma: timed out waiting for %s", what);
			return -ETIMEDOUT;
		}
	}
	ev = e->event;
	status = e->status;
	rc = 0;
	if (ev == want && ev == RDMA_CM_EVENT_ESTABLISHED)
		rc = rdma_conn_priv_take(c, e->param.conn.private_data,
			       e->param.conn.private_data_len);
	rdma_ack_cm_event(e);
	if (ev == want)
		return rc;
	log_info("rdma: %s: got %s (status %d)", what, rdma_event_str(ev),
		 status);
	return cm_event_err(ev);
}

/* Resolve host:port to an address (the first that resolves) and a
 * route, before deadline. */
static int cm_resolve(struct rdma_conn *c, const char *host,
		      const char *port, const struct timespec *deadline)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV }, *res = NULL, *ai;
	int rc;

	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		log_err("rdma: cannot resolve %s:%s: %s", host, port,
			gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	rc = -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		if (rdma_resolve_addr(c->id, NULL, ai->ai_addr,
				      ms_left(deadline) ?: 1)) {
			rc = -errno;
			continue;
		}
		rc = wait_cm(c, RDMA_CM_EVENT_ADDR_RESOLVED, deadline,
			     "address resolution");
		if (rc == 0)
			break;
	}
	freeaddrinfo(res);
	if (rc)
		return rc;
	if (rdma_resolve_route(c->id, ms_left(deadline) ?: 1))
		return -errno;
	return wait_cm(c, RDMA_CM_EVENT_ROUTE_RESOLVED, deadline,
		       "route resolution");
}

/* Connect with our ORFA parameters and wait until established. */
static int cm_connect(struct rdma_conn *c, const struct timespec *deadline)
{
	struct rdma_conn_param param;
	struct rdma_priv priv;

	rdma_conn_priv_fill(c, &priv);
	memset(&param, 0, sizeof(param));
	param.private_data = &priv;
	param.private_data_len = sizeof(priv);
	param.responder_resources = (uint8_t)rdma_rd_atomic(c);
	param.initiator_depth = (uint8_t)rdma_rd_atomic(c);
	param.retry_count = 7;
	param.rnr_retry_count = 0;	/* credits make RNR a bug: fail loudly */
	if (rdma_connect(c->id, &param))
		return -errno;
	return wait_cm(c, RDMA_CM_EVENT_ESTABLISHED, deadline, "connection");
}

static int rdma_connect_(const char *host, const char *port,
			 const struct orfa_tp_opts *o, struct orfa_conn **out)
{
	struct timespec deadline;
	struct rdma_conn *c;
	int rc;

	*out = NULL;
	c = rdma_conn_alloc(o);
	if (!c)
		return -ENOMEM;
	rdma_deadline(&deadline, o->connect_timeout_ms > 0 ?
		      o->connect_timeout_ms : 10000);
	rc = rdma_cm_open(&c->cm_ch, &c->id, c);
	if (rc == 0)
		rc = cm_resolve(c, host, port, &deadline);
	if (rc == 0)
		rc = rdma_conn_setup_verbs(c);
	if (rc == 0)
		rc = cm_connect(c, &deadline);
	if (rc == 0)
		rc = rdma_conn_start(c);
	if (rc) {
		log_info("rdma: connect to %s:%s failed: %s", host, port,
			 strerror(-rc));
		rdma_conn_teardown(c);
		return rc;
	}
	log_debug("rdma: connected to %s (credits %u/%u, buffers %u/%u)",
		  c->base.peer, c->credits, c->peer_credits_max, c->buf_size,
		  c->peer_buf_size);
	*out = &c->base;
	return 0;
}

/* ---- small ops ----------------------------------------------------------- */

static int rdma_fd(struct orfa_conn *oc)
{
	return rdma_c(oc)->ufd[0];
}

static void rdma_set_sink(struct orfa_conn *oc, orfa_sink_fn fn, void *arg)
{
	struct rdma_conn *c = rdma_c(oc);

	pthread_mutex_lock(&c->lock);
	c->sink = fn;
	c->sink_arg = arg;
	pthread_mutex_unlock(&c->lock);
}

static void rdma_set_limits(struct orfa_conn *oc, uint32_t max_body,
			    uint32_t max_data)
{
	struct rdma_conn *c = rdma_c(oc);
	uint32_t cap = c->buf_size - RDMA_MSG_OVERHEAD - ORFA_HDR_SIZE;

	orfa_tp_clamp_limits(&max_body, &max_data);
	pthread_mutex_lock(&c->lock);
	c->max_body = max_body < cap ? max_body : cap;
	c->max_data = max_data;
	pthread_mutex_unlock(&c->lock);
}

/* How long a local shutdown waits for messages already sent to complete
 * (a refusal sent just before closing, say): disconnecting at once would
 * flush them, unlike a TCP close, which delivers what was written. */
#define SHUTDOWN_LINGER_MS	200

static void rdma_shutdown_(struct orfa_conn *oc)
{
	struct rdma_conn *c = rdma_c(oc);
	struct timespec until;

	rdma_deadline(&until, SHUTDOWN_LINGER_MS);
	pthread_mutex_lock(&c->lock);
	while (c->state == RC_CONNECTED && !c->shut &&
	       (c->txq_first || c->rdv_first || c->sq_free < c->sq_depth)) {
		struct timespec now, slice;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > until.tv_sec ||
		    (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec))
			break;
		/* The progress thread takes the lock to complete sends. */
		pthread_mutex_unlock(&c->lock);
		slice = (struct timespec){ 0, 1000000L };
		nanosleep(&slice, NULL);
		pthread_mutex_lock(&c->lock);
	}
	c->shut = 1;
	rdma_io_fail(c, -ENOTCONN, "connection shut down locally");
	if (rdma_thread_may_verbs()) {
		rdma_disconnect(c->id);
		c->disc_sent = 1;
	} else if (!c->disc_sent) {
		uint64_t one = 1;

		c->disc_wanted = 1;	/* the progress thread disconnects */
		if (write(c->wake_efd, &one, sizeof(one)) < 0)
			log_warn("rdma: cannot wake the progress thread");
	}
	pthread_mutex_unlock(&c->lock);
	rdma_io_reap(c);
}

/* The address rdma_cm resolved the peer to (export access checks). */
static int rdma_peer_addr_(struct orfa_conn *oc, struct sockaddr_storage *ss)
{
	struct rdma_conn *c = rdma_c(oc);
	const struct sockaddr *sa;

	if (!c->id)
		return -ENOTCONN;
	sa = rdma_get_peer_addr(c->id);
	switch (sa->sa_family) {
	case AF_INET:
		memcpy(ss, sa, sizeof(struct sockaddr_in));
		return 0;
	case AF_INET6:
		memcpy(ss, sa, sizeof(struct sockaddr_in6));
		return 0;
	default:		/* AF_IB: not an IP peer */
		return -EAFNOSUPPORT;
	}
}

/* Last reference gone: no other thread uses c any more. */
static void rdma_destroy_(struct orfa_conn *oc)
{
	rdma_conn_teardown(rdma_c(oc));
}

void rdma_conn_counters(struct orfa_conn *oc, unsigned long out[6])
{
	struct rdma_conn *c = rdma_c(oc);

	pthread_mutex_lock(&c->lock);
	out[0] = c->n_sent;
	out[1] = c->n_recv;
	out[2] = c->n_ctrl_sent;
	out[3] = c->n_rdv_sent;
	out[4] = c->n_write_sent;
	out[5] = c->n_copied_rx;
	pthread_mutex_unlock(&c->lock);
}

void rdma_test_peer_segs(struct orfa_conn *oc, struct rdma_seg *rdv,
			 struct rdma_seg *adv)
{
	struct rdma_conn *c = rdma_c(oc);

	pthread_mutex_lock(&c->lock);
	*rdv = c->last_peer_rdv;
	*adv = c->last_peer_adv;
	pthread_mutex_unlock(&c->lock);
}

/* Post the probe's work request (lock held); 0 or -errno. */
static int probe_post(struct rdma_conn *c, struct rdma_probe *pr,
		      const struct rdma_seg *seg, void *buf,
		      const struct ibv_mr *mr, int write)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)buf, .length = seg->len, .lkey = mr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = (uintptr_t)pr | WR_PROBE,
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = write ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ,
		.send_flags = IBV_SEND_SIGNALED,
	}, *bad;
	int rc;

	wr.wr.rdma.remote_addr = seg->addr;
	wr.wr.rdma.rkey = seg->rkey;
	if (c->state != RC_CONNECTED || c->qp_err)
		return -ENOTCONN;
	if (!c->sq_free)
		return -EAGAIN;
	rc = ibv_post_send(c->qp, &wr, &bad);
	if (rc)
		return -rc;
	c->sq_free--;
	return 0;
}

int rdma_test_remote_access(struct orfa_conn *oc, const struct rdma_seg *seg,
			    void *buf, int write, int ms)
{
	struct rdma_conn *c = rdma_c(oc);
	struct rdma_probe *pr;
	struct ibv_mr *mr;
	struct timespec dl;
	int rc;

	if (!rdma_thread_may_verbs())
		return -EPERM;
	pr = calloc(1, sizeof(*pr));
	if (!pr)
		return -ENOMEM;
	mr = rdma_mr_pin(&c->mem, buf, seg->len, IBV_ACCESS_LOCAL_WRITE);
	if (!mr) {
		rc = -errno;
		free(pr);
		return rc;
	}
	pthread_mutex_lock(&c->lock);
	rc = probe_post(c, pr, seg, buf, mr, write);
	if (rc == 0) {
		rdma_deadline(&dl, ms);
		while (!pr->done &&
		       pthread_cond_timedwait(&c->tx_cond, &c->lock, &dl) == 0)
			;
		rc = !pr->done ? -ETIMEDOUT :
		     pr->status == IBV_WC_SUCCESS ? 0 :
		     pr->status == IBV_WC_REM_ACCESS_ERR ? -EACCES : -EIO;
	}
	pthread_mutex_unlock(&c->lock);
	if (rc == -ETIMEDOUT)
		return rc;	/* still posted: probe and MR stay (tests) */
	rdma_mr_unpin(mr);
	free(pr);
	return rc;
}

const struct orfa_transport_ops orfa_rdma_transport = {
	.name = "rdma",
	.connect = rdma_connect_,
	.listen = rdma_listen_,
	.accept = rdma_accept_,
	.listener_fd = rdma_listener_fd,
	.listener_addr = rdma_listener_addr,
	.listener_close = rdma_listener_close,
	.send = rdma_send,
	.recv = rdma_recv,
	.recv_done = rdma_recv_done,
	.flush = rdma_flush,
	.queued = rdma_queued,
	.fd = rdma_fd,
	.set_sink = rdma_set_sink,
	.set_limits = rdma_set_limits,
	.shutdown = rdma_shutdown_,
	.destroy = rdma_destroy_,
	.peer_addr = rdma_peer_addr_,
};
