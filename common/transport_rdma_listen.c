/*
 * transport_rdma_listen.c - the RDMA listener: it binds and listens with
 * librdmacm, and its thread ("orfa-rdma-lst") takes the CM events of the
 * listening id, builds and accepts each connection
 * (transport_rdma_setup.c) and starts its progress thread, so that none
 * of them inherits credentials a serving thread changed
 * (rdma_thread_may_verbs); accept only hands out what it made.  The
 * thread is started by the first listener_fd or accept in the process
 * that listens.  A listener opened before a daemonizing fork() re-opens
 * itself in the child (lst_reopen) and accepts with QPs on a device
 * context of its own (manual_qp).
 */
#include "transport_rdma_impl.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define LISTEN_BACKLOG		128

/*
 * The listener.  Its thread ("orfa-rdma-lst") takes the CM events of the
 * listening id, accepts, and starts each connection's progress thread, so
 * that none of them inherits credentials a serving thread changed (see
 * rdma_thread_may_verbs); accept only hands out what it made.  The thread
 * is started by the first listener_fd or accept in the process that
 * listens (a daemonizing server: after its fork, see lst_reopen).
 */
struct rdma_listener {
	struct orfa_listener base;	/* must stay first */
	struct rdma_event_channel *ch;	/* listener's CM events (non-blocking) */
	struct rdma_cm_id *id;		/* the listening id */
	int efd;			/* listener_fd: readable while a
					 * connection waits */
	int stop_efd;			/* wakes the thread to end */
	struct orfa_tp_opts opts;	/* given to accepted connections */
	struct sockaddr_storage addr;	/* bound address, for lst_reopen */
	pid_t pid;			/* process that made ch and id */
	pid_t thread_pid;		/* process the thread runs in, or 0 */
	pthread_t thread;
	int forked;			/* re-opened after fork(): accepted
					 * connections use manual QPs */
	pthread_mutex_t lock;		/* guards the lists and efd_set */
	int efd_set;			/* efd currently signalled */
	struct rdma_conn *pending;	/* accepted at the verbs level, not yet
					 * established (lnext list; thread) */
	struct rdma_conn *ready_first;	/* established, not yet handed out */
	struct rdma_conn *ready_last;
};

static void lst_release(struct rdma_listener *l);

static struct rdma_listener *lst(struct orfa_listener *l)
{
	return (struct rdma_listener *)l;
}

static void lst_signal(struct rdma_listener *l)
{
	uint64_t v = 1;
	int want = l->ready_first != NULL;

	if (want && !l->efd_set) {
		if (write(l->efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			l->efd_set = 1;
	} else if (!want && l->efd_set) {
		if (read(l->efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			l->efd_set = 0;
	}
}

void rdma_listener_close(struct orfa_listener *ol)
{
	struct rdma_listener *l = lst(ol);
	uint64_t one = 1;

	if (!l)
		return;
	if (l->thread_pid && l->thread_pid == getpid()) {
		/* The thread releases what it made (lst_release). */
		if (write(l->stop_efd, &one, sizeof(one)) < 0)
			log_warn("rdma: cannot stop the listener thread");
		pthread_join(l->thread, NULL);
	} else {
		lst_release(l);
	}
	if (l->efd >= 0)
		close(l->efd);
	if (l->stop_efd >= 0)
		close(l->stop_efd);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

/* Connections not handed out, the listening id and its channel. */
static void lst_release(struct rdma_listener *l)
{
	struct rdma_conn *c;

	if (l->pid != getpid() && l->ch) {
		/* Inherited across fork() and never re-opened: only our copy
		 * of the fd is ours to drop (see lst_reopen). */
		rdma_destroy_event_channel(l->ch);
		l->ch = NULL;
		l->id = NULL;
		l->pending = l->ready_first = NULL;
	}
	while ((c = l->pending)) {
		l->pending = c->lnext;
		rdma_conn_teardown(c);
	}
	pthread_mutex_lock(&l->lock);
	c = l->ready_first;
	l->ready_first = l->ready_last = NULL;
	pthread_mutex_unlock(&l->lock);
	while (c) {
		struct rdma_conn *next = c->lnext;

		rdma_conn_teardown(c);
		c = next;
	}
	if (l->id)
		rdma_destroy_id(l->id);
	if (l->ch)
		rdma_destroy_event_channel(l->ch);
	l->id = NULL;
	l->ch = NULL;
}

int rdma_listen_(const char *host, const char *port,
			const struct orfa_tp_opts *o,
			struct orfa_listener **out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | AI_PASSIVE },
			*res = NULL;
	struct rdma_listener *l;
	int rc;

	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->base.ops = &orfa_rdma_transport;
	l->opts = *o;
	pthread_mutex_init(&l->lock, NULL);
	l->efd = l->stop_efd = -1;
	rc = rdma_cm_open(&l->ch, &l->id, l);
	if (rc)
		goto fail;
	rc = getaddrinfo(host && *host ? host : NULL, port, &hints, &res);
	if (rc) {
		log_err("rdma: cannot resolve %s:%s: %s", host ? host : "*",
			port, gai_strerror(rc));
		rc = -EADDRNOTAVAIL;
		goto fail;
	}
	if (rdma_bind_addr(l->id, res->ai_addr)) {
		rc = -errno;
		log_err("rdma: cannot bind %s:%s: %s", host ? host : "*", port,
			strerror(-rc));
		freeaddrinfo(res);
		goto fail;
	}
	freeaddrinfo(res);
	memcpy(&l->addr, rdma_get_local_addr(l->id), sizeof(l->addr));
	l->pid = getpid();
	if (rdma_listen(l->id, LISTEN_BACKLOG)) {
		rc = -errno;
		log_err("rdma: cannot listen on %s:%s: %s", host ? host : "*",
			port, strerror(-rc));
		goto fail;
	}
	l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->stop_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->efd < 0 || l->stop_efd < 0) {
		rc = -errno;
		goto fail;
	}
	*out = &l->base;
	return 0;
fail:
	rdma_listener_close(&l->base);
	return rc;
}

/* A connect request: build the connection and accept it at the CM level;
 * it is handed out once ESTABLISHED arrives.  The event is acked. */
static void lst_request(struct rdma_listener *l, struct rdma_cm_id *id,
			const void *pdata, size_t plen, int peer_init_depth,
			int peer_resp_res)
{
	struct rdma_conn_param param;
	struct rdma_priv priv;
	struct rdma_conn *c = rdma_conn_alloc(&l->opts);
	int rc;

	if (!c) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return;
	}
	c->id = id;
	id->context = c;
	rdma_addr_str(rdma_get_peer_addr(id), c->base.peer, sizeof(c->base.peer));
	rc = rdma_conn_priv_take(c, pdata, plen);
	if (rc) {
		log_warn("rdma: %s: connect request without valid ORFA "
			 "parameters", c->base.peer);
		goto reject;
	}
	c->cm_ch = rdma_create_event_channel();
	if (!c->cm_ch) {
		rc = -(errno ? errno : ENOMEM);
		goto reject;
	}
	/* ORFA_RDMA_MANUAL_QP=1 takes that path always (tests). */
	c->manual_qp = l->forked || getenv("ORFA_RDMA_MANUAL_QP") != NULL;
	rc = rdma_conn_setup_verbs(c);
	if (rc)
		goto reject;
	rdma_conn_priv_fill(c, &priv);
	memset(&param, 0, sizeof(param));
	param.private_data = &priv;
	param.private_data_len = sizeof(priv);
	param.responder_resources = (uint8_t)(rdma_rd_atomic(c) < peer_init_depth ?
					      rdma_rd_atomic(c) : peer_init_depth);
	param.initiator_depth = (uint8_t)(rdma_rd_atomic(c) < peer_resp_res ?
					  rdma_rd_atomic(c) : peer_resp_res);
	param.retry_count = 7;
	param.rnr_retry_count = 0;
	if (c->manual_qp) {
		/* What rdma_accept does for a QP made by rdma_create_qp. */
		rc = rdma_qp_modify(c, IBV_QPS_RTR, param.responder_resources);
		if (rc == 0)
			rc = rdma_qp_modify(c, IBV_QPS_RTS, param.initiator_depth);
		if (rc)
			goto reject;
		param.qp_num = c->qp->qp_num;
	}
	if (rdma_accept(id, &param)) {
		rc = -errno;
		log_warn("rdma: %s: rdma_accept: %s", c->base.peer,
			 strerror(-rc));
		rdma_conn_teardown(c);
		return;
	}
	c->lnext = l->pending;
	l->pending = c;
	return;
reject:
	log_warn("rdma: %s: refusing connection: %s", c->base.peer,
		 strerror(-rc));
	rdma_reject(id, NULL, 0);
	rdma_conn_teardown(c);
}

static void lst_unlink_pending(struct rdma_listener *l, struct rdma_conn *c)
{
	struct rdma_conn **pp;

	for (pp = &l->pending; *pp; pp = &(*pp)->lnext)
		if (*pp == c) {
			*pp = c->lnext;
			c->lnext = NULL;
			return;
		}
}

static int lst_is_pending(struct rdma_listener *l, struct rdma_conn *c)
{
	for (struct rdma_conn *p = l->pending; p; p = p->lnext)
		if (p == c)
			return 1;
	return 0;
}

/* A pending connection's CM event (ESTABLISHED, or a failure): start it
 * on its own channel and thread and queue it for accept, or drop it. */
static void lst_settle(struct rdma_listener *l, struct rdma_conn *c,
		       enum rdma_cm_event_type ev)
{
	int rc;

	lst_unlink_pending(l, c);
	if (ev != RDMA_CM_EVENT_ESTABLISHED) {
		log_info("rdma: %s: connection not established: %s",
			 c->base.peer, rdma_event_str(ev));
		rdma_conn_teardown(c);
		return;
	}
	/* From now on its CM events go to its own channel. */
	if (rdma_migrate_id(c->id, c->cm_ch)) {
		rc = -errno;
		log_warn("rdma: %s: rdma_migrate_id: %s", c->base.peer,
			 strerror(-rc));
		rdma_conn_teardown(c);
		return;
	}
	rc = rdma_conn_start(c);
	if (rc) {
		log_warn("rdma: %s: cannot start connection: %s",
			 c->base.peer, strerror(-rc));
		rdma_conn_teardown(c);
		return;
	}
	log_info("rdma: %s: connected (credits %u/%u, buffers %u/%u)",
		 c->base.peer, c->credits, c->peer_credits_max,
		 c->buf_size, c->peer_buf_size);
	c->lnext = NULL;
	pthread_mutex_lock(&l->lock);
	if (l->ready_last)
		l->ready_last->lnext = c;
	else
		l->ready_first = c;
	l->ready_last = c;
	lst_signal(l);
	pthread_mutex_unlock(&l->lock);
}

static void lst_events(struct rdma_listener *l)
{
	struct rdma_cm_event *e;

	while (rdma_get_cm_event(l->ch, &e) == 0) {
		enum rdma_cm_event_type ev = e->event;
		struct rdma_cm_id *id = e->id;
		struct rdma_conn *c;

		log_debug("rdma: listener: %s (status %d)", rdma_event_str(ev),
			  e->status);
		if (ev == RDMA_CM_EVENT_CONNECT_REQUEST) {
			uint8_t pdata[256];
			size_t plen = e->param.conn.private_data_len;
			int init_depth = e->param.conn.initiator_depth;
			int resp_res = e->param.conn.responder_resources;

			if (plen > sizeof(pdata))
				plen = sizeof(pdata);
			if (plen && e->param.conn.private_data)
				memcpy(pdata, e->param.conn.private_data, plen);
			else
				plen = 0;
			rdma_ack_cm_event(e);
			lst_request(l, id, pdata, plen, init_depth, resp_res);
			continue;
		}
		rdma_ack_cm_event(e);
		if (id == l->id) {
			log_warn("rdma: listener: CM event %s",
				 rdma_event_str(ev));
			continue;
		}
		c = id->context;
		if (c && lst_is_pending(l, c))
			lst_settle(l, c, ev);
	}
}

/*
 * The listener was made by another process: we are the child of a fork()
 * (a daemonizing server).  The kernel's RDMA CM refuses every command
 * written to a CM channel fd by a process other than its opener (EACCES,
 * see ib_safe_file_access), so the inherited channel is useless: drop our
 * copy of its fd (its ids go away with the last copy, once the parent has
 * exited, which frees the port) and listen again on the same address
 * with a channel of our own, inside the epoll set the caller already
 * watches.  The old id is not destroyed (that is a CM command too); its
 * few bytes are left.  The device context librdmacm opened in the parent
 * is refused as well (rxe rings its doorbell with write()), so connections
 * accepted from now on use a context of our own and a QP we move through
 * its states ourselves (manual_qp).  Connections made before fork() are
 * not usable here; only the listener is carried over.  0 or -errno.
 */
static int lst_reopen(struct rdma_listener *l)
{
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id = NULL;
	int rc = 0;

	rdma_destroy_event_channel(l->ch);	/* close(fd) + free */
	l->ch = NULL;
	l->id = NULL;
	l->pending = l->ready_first = l->ready_last = NULL;
	ch = rdma_create_event_channel();
	if (!ch)
		return -(errno ? errno : ENODEV);
	if (rdma_set_nonblock(ch->fd) || rdma_create_id(ch, &id, l, RDMA_PS_TCP)) {
		rc = -(errno ? errno : EIO);
		goto fail;
	}
	/* The parent may not have closed its copy yet: the port stays
	 * taken until it has (it exits right after fork in practice). */
	for (int i = 0; i < 100; i++) {
		rc = rdma_bind_addr(id, (struct sockaddr *)&l->addr) ? -errno : 0;
		if (rc != -EADDRINUSE)
			break;
		usleep(50000);
	}
	if (rc == 0 && rdma_listen(id, LISTEN_BACKLOG))
		rc = -errno;
	if (rc)
		goto fail;
	l->ch = ch;
	l->id = id;
	l->pid = getpid();
	l->forked = 1;
	log_info("rdma: listener re-opened in process %d after fork()",
		 (int)l->pid);
	return 0;
fail:
	log_err("rdma: cannot listen again after fork(): %s", strerror(-rc));
	if (id)
		rdma_destroy_id(id);
	rdma_destroy_event_channel(ch);
	return rc;
}

static void *lst_thread(void *arg)
{
	struct rdma_listener *l = arg;
	struct pollfd pfd[2] = {
		{ .fd = l->ch->fd, .events = POLLIN },
		{ .fd = l->stop_efd, .events = POLLIN },
	};

	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
			log_err("rdma: listener: poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents)
			lst_events(l);
	}
	lst_release(l);
	return NULL;
}

/* Re-open after fork() if needed, start the thread if it does not run in
 * this process; 0 when the listener is usable. */
static int lst_check(struct rdma_listener *l)
{
	int rc;

	if (l->thread_pid == getpid())
		return 0;
	if (!l->ch)
		return -EBADF;	/* a failed re-open */
	if (l->pid != getpid()) {
		rc = lst_reopen(l);
		if (rc)
			return rc;
	}
	rc = pthread_create(&l->thread, NULL, lst_thread, l);
	if (rc) {
		log_err("rdma: cannot start the listener thread: %s",
			strerror(rc));
		return -rc;
	}
	pthread_setname_np(l->thread, "orfa-rdma-lst");
	l->thread_pid = getpid();
	return 0;
}

int rdma_accept_(struct orfa_listener *ol, struct orfa_conn **out)
{
	struct rdma_listener *l = lst(ol);
	struct rdma_conn *c;
	int rc;

	*out = NULL;
	rc = lst_check(l);
	if (rc)
		return rc;
	pthread_mutex_lock(&l->lock);
	c = l->ready_first;
	if (c) {
		l->ready_first = c->lnext;
		if (!l->ready_first)
			l->ready_last = NULL;
		c->lnext = NULL;
		*out = &c->base;
	}
	lst_signal(l);
	pthread_mutex_unlock(&l->lock);
	return c ? 0 : -EAGAIN;
}

int rdma_listener_fd(struct orfa_listener *ol)
{
	/* A server asks for the fd before it serves anyone (a daemonizing
	 * one after its fork()): start the thread now (lst_check). */
	lst_check(lst(ol));
	return lst(ol)->efd;
}

int rdma_listener_addr(struct orfa_listener *ol, char *buf,
			      size_t size)
{
	struct rdma_listener *l = lst(ol);
	struct sockaddr *sa = (struct sockaddr *)&l->addr;

	if (!buf || size == 0)
		return -EINVAL;
	rdma_addr_str(sa, buf, size);
	return 0;
}
