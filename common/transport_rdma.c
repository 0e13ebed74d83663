/*
 * transport_rdma.c - the RDMA verbs implementation of transport.h:
 * connection setup with librdmacm (rdma://ADDR:PORT, RC queue pairs),
 * the listener, per-connection verbs resources and their teardown in
 * mirrored order, the event-loop hooks and the ops table.  The data path
 * (messages, credits, rendezvous, completions) is in transport_rdma_io.c,
 * registered memory in rdma_regcache.c, the shared structures and the
 * wire format in transport_rdma_impl.h.
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
 * PD), receive pool MR, send pool MR, completion channel, CQ, QP,
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

#define DEFAULT_CREDITS		64u
#define MIN_CREDITS		ORFA_RDMA_MIN_CREDITS
#define MAX_CREDITS		ORFA_RDMA_MAX_CREDITS
#define MAX_SPARE		16u
#define DEFAULT_BUF_SIZE	(64u * 1024)
#define MAX_BUF_SIZE		ORFA_RDMA_MAX_BUF_SIZE
#define MAX_RD_ATOMIC		16
#define LISTEN_BACKLOG		128

const struct orfa_transport_ops orfa_rdma_transport;

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

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static void addr_str(const struct sockaddr *sa, char *buf, size_t size)
{
	char host[NI_MAXHOST], port[NI_MAXSERV];
	socklen_t len = sa->sa_family == AF_INET6 ?
			sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

	if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(buf, size, "?");
		return;
	}
	if (sa->sa_family == AF_INET6)
		snprintf(buf, size, "[%s]:%s", host, port);
	else
		snprintf(buf, size, "%s:%s", host, port);
}

/* ---- connection object ------------------------------------------------- */

static struct rdma_conn *conn_alloc(const struct orfa_tp_opts *o)
{
	struct rdma_conn *c = calloc(1, sizeof(*c));
	uint32_t min_buf;
	size_t bs;

	if (!c)
		return NULL;
	c->base.ops = &orfa_rdma_transport;
	c->base.refs = 1;
	snprintf(c->base.peer, sizeof(c->base.peer), "?");
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->tx_cond, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_destroy(&c->tx_cond);
		pthread_cond_init(&c->tx_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_cond_init(&c->rx_cond, NULL);
	c->epfd = c->wake_efd = -1;
	c->ufd[0] = c->ufd[1] = -1;
	c->nonblock = !!(o->flags & ORFA_TP_NONBLOCK);
	c->send_timeout_ms = o->send_timeout_ms;
	c->max_body = o->max_body;
	c->max_data = o->max_data;
	orfa_tp_clamp_limits(&c->max_body, &c->max_data);
	c->credits = o->rdma_credits ? o->rdma_credits : DEFAULT_CREDITS;
	if (c->credits < MIN_CREDITS)
		c->credits = MIN_CREDITS;
	if (c->credits > MAX_CREDITS)
		c->credits = MAX_CREDITS;
	/* A receive buffer always holds the largest header segment. */
	min_buf = RDMA_MSG_OVERHEAD + ORFA_HDR_SIZE + c->max_body;
	bs = o->rdma_buf_size ? o->rdma_buf_size : DEFAULT_BUF_SIZE;
	if (bs < min_buf)
		bs = min_buf;
	if (bs > MAX_BUF_SIZE)
		bs = MAX_BUF_SIZE;
	c->buf_size = (uint32_t)((bs + 63) & ~(size_t)63);
	c->state = RC_CONNECTED;
	return c;
}

/* Verbs resources of a connection whose id has a device (route resolved
 * or connect request received).  Receives are posted on return. */
/* Manual QP: move it to state st with the CM's attributes (what
 * rdma_create_qp/rdma_accept do for QPs they know); rd is the RDMA READ
 * depth for RTR (responder) and RTS (initiator). */
static int qp_modify(struct rdma_conn *c, enum ibv_qp_state st, int rd)
{
	struct ibv_qp_attr a;
	int mask = 0, rc;

	memset(&a, 0, sizeof(a));
	a.qp_state = st;
	if (rdma_init_qp_attr(c->id, &a, &mask)) {
		log_warn("rdma: %s: rdma_init_qp_attr(state %d): %s",
			 c->base.peer, (int)st, strerror(errno));
		return -(errno ? errno : EINVAL);
	}
	if (st == IBV_QPS_INIT)
		a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE |
				    IBV_ACCESS_REMOTE_READ |
				    IBV_ACCESS_REMOTE_WRITE;
	else if (st == IBV_QPS_RTR)
		a.max_dest_rd_atomic = (uint8_t)rd;
	else if (st == IBV_QPS_RTS)
		a.max_rd_atomic = (uint8_t)rd;
	rc = ibv_modify_qp(c->qp, &a, mask);
	if (rc) {
		log_warn("rdma: %s: ibv_modify_qp(state %d): %s", c->base.peer,
			 (int)st, strerror(rc));
		return -rc;
	}
	return 0;
}

/* Log a failed set-up step; returns -err (ENOMEM if err is 0). */
static int verbs_err(struct rdma_conn *c, const char *what, int err)
{
	if (!err)
		err = ENOMEM;
	log_warn("rdma: %s: %s: %s", c->base.peer, what, strerror(err));
	return -err;
}

static int conn_setup_verbs(struct rdma_conn *c)
{
	struct ibv_context *verbs;
	struct ibv_qp_init_attr qa;
	uint32_t max_wr, cqe;
	int rc;

	c->dev = c->manual_qp ? rdma_dev_get_own(c->id->verbs) :
				rdma_dev_get(c->id->verbs);
	if (!c->dev)
		return verbs_err(c, "cannot open the device", errno);
	verbs = c->dev->verbs;
	max_wr = (uint32_t)c->dev->attr.max_qp_wr;
	c->nspare = c->credits < MAX_SPARE ? c->credits : MAX_SPARE;
	c->sq_depth = 2 * c->credits + 8 * RDMA_MAX_SEG + RDMA_CTRL_SLOTS + 16;
	while (c->credits > MIN_CREDITS &&
	       (c->sq_depth > max_wr || c->credits + c->nspare > max_wr)) {
		c->credits /= 2;
		c->sq_depth = 2 * c->credits + 8 * RDMA_MAX_SEG +
			      RDMA_CTRL_SLOTS + 16;
	}
	if (c->sq_depth > max_wr)
		c->sq_depth = max_wr;
	c->nsslots = c->credits + 4;

	c->rpool_mr = rdma_pool_alloc(c->dev, (size_t)(c->credits + c->nspare) *
				      c->buf_size);
	if (!c->rpool_mr)
		return verbs_err(c, "receive pool", errno);
	c->spool_mr = rdma_pool_alloc(c->dev, (size_t)c->nsslots * c->buf_size +
				      RDMA_CTRL_SLOTS * RDMA_WIRE_SIZE);
	if (!c->spool_mr)
		return verbs_err(c, "send pool", errno);
	c->comp_ch = ibv_create_comp_channel(verbs);
	if (!c->comp_ch)
		return verbs_err(c, "ibv_create_comp_channel", errno);
	rc = set_nonblock(c->comp_ch->fd);
	if (rc)
		return rc;
	cqe = c->sq_depth + c->credits + c->nspare + 16;
	if (cqe > (uint32_t)c->dev->attr.max_cqe)
		cqe = (uint32_t)c->dev->attr.max_cqe;
	c->cq = ibv_create_cq(verbs, (int)cqe, c, c->comp_ch, 0);
	if (!c->cq)
		return verbs_err(c, "ibv_create_cq", errno);
	rc = ibv_req_notify_cq(c->cq, 0);
	if (rc)
		return verbs_err(c, "ibv_req_notify_cq", rc);
	memset(&qa, 0, sizeof(qa));
	qa.send_cq = c->cq;
	qa.recv_cq = c->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.sq_sig_all = 0;
	qa.cap.max_send_wr = c->sq_depth;
	qa.cap.max_recv_wr = c->credits + c->nspare;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	if (c->manual_qp) {
		qa.qp_context = c;
		c->qp = ibv_create_qp(c->dev->pd, &qa);
		if (!c->qp)
			return verbs_err(c, "ibv_create_qp", errno);
		rc = qp_modify(c, IBV_QPS_INIT, 0);
		if (rc)
			return rc;
	} else {
		if (rdma_create_qp(c->id, c->dev->pd, &qa))
			return verbs_err(c, "rdma_create_qp", errno);
		c->qp = c->id->qp;
	}
	c->sq_free = c->sq_depth;
	return rdma_io_init(c);
}

/* The pollable fd, the epoll set and the progress thread. */
static int conn_start(struct rdma_conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int one = 1, rc;

	addr_str(rdma_get_peer_addr(c->id), c->base.peer, sizeof(c->base.peer));
	rc = set_nonblock(c->cm_ch->fd);
	if (rc)
		return rc;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       c->ufd))
		return -errno;
	/* Small, so that making ufd[0] unwritable takes a few bytes. */
	setsockopt(c->ufd[0], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one));
	c->wake_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->wake_efd < 0)
		return -errno;
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->epfd < 0)
		return -errno;
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->comp_ch->fd, &ev) ||
	    epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->cm_ch->fd, &ev) ||
	    epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->wake_efd, &ev))
		return -errno;
	rc = pthread_create(&c->thread, NULL, rdma_io_thread, c);
	if (rc)
		return -rc;
	pthread_setname_np(c->thread, "orfa-rdma");
	c->have_thread = 1;
	return 0;
}

void rdma_conn_release_verbs(struct rdma_conn *c)
{
	if (c->qp) {
		if (!c->disc_sent)
			rdma_disconnect(c->id);
		c->disc_sent = 1;
		if (c->manual_qp)
			ibv_destroy_qp(c->qp);
		else
			rdma_destroy_qp(c->id);
		c->qp = NULL;
	}
	if (c->cq && ibv_destroy_cq(c->cq))
		log_warn("rdma: ibv_destroy_cq failed");
	c->cq = NULL;
	if (c->comp_ch && ibv_destroy_comp_channel(c->comp_ch))
		log_warn("rdma: ibv_destroy_comp_channel failed");
	c->comp_ch = NULL;
	if (c->id)
		rdma_destroy_id(c->id);
	c->id = NULL;
}

/*
 * Tear down whatever conn_alloc/setup/start built, in reverse order.  A
 * started connection's progress thread fails it and destroys its QP, CQ
 * and CM id before it ends (the calling thread may be one that must not
 * call verbs); without a thread (a failed setup, on the listener's or
 * connecting thread) that happens here.
 */
static void conn_teardown(struct rdma_conn *c)
{
	uint64_t one = 1;

	if (c->have_thread) {
		pthread_mutex_lock(&c->lock);
		c->stop = 1;
		pthread_mutex_unlock(&c->lock);
		if (write(c->wake_efd, &one, sizeof(one)) < 0)
			log_warn("rdma: cannot wake the progress thread");
		pthread_join(c->thread, NULL);
		c->have_thread = 0;
	} else {
		pthread_mutex_lock(&c->lock);
		rdma_io_fail(c, -ENOTCONN, "connection closed");
		pthread_mutex_unlock(&c->lock);
	}
	rdma_io_reap(c);	/* done() for every message still pending */
	if (c->epfd >= 0)
		close(c->epfd);
	if (c->wake_efd >= 0)
		close(c->wake_efd);
	for (int i = 0; i < 2; i++)
		if (c->ufd[i] >= 0)
			close(c->ufd[i]);
	c->epfd = c->wake_efd = c->ufd[0] = c->ufd[1] = -1;
	rdma_conn_release_verbs(c);	/* done already if there was a thread */
	if (c->dev)
		rdma_io_fini(c);	/* per-transfer MRs, lent buffers */
	rdma_pool_free(c->spool_mr);
	rdma_pool_free(c->rpool_mr);
	rdma_dev_put(c->dev);
	if (c->cm_ch)
		rdma_destroy_event_channel(c->cm_ch);
	pthread_cond_destroy(&c->rx_cond);
	pthread_cond_destroy(&c->tx_cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void priv_fill(const struct rdma_conn *c, struct rdma_priv *p)
{
	rdma_priv_put(p, c->credits, c->buf_size);
}

/* Check the peer's private data; sets peer_credits / peer_buf_size. */
static int priv_take(struct rdma_conn *c, const void *data, size_t len)
{
	uint32_t credits, buf_size;
	int rc = rdma_priv_parse(data, len, &credits, &buf_size);

	if (rc)
		return rc;
	c->peer_credits_max = credits;
	c->peer_credits = (int)credits;
	c->peer_buf_size = buf_size;
	return 0;
}

static int rd_atomic(const struct rdma_conn *c)
{
	int n = MAX_RD_ATOMIC;

	if (c->dev->attr.max_qp_rd_atom < n)
		n = c->dev->attr.max_qp_rd_atom;
	if (c->dev->attr.max_qp_init_rd_atom < n)
		n = c->dev->attr.max_qp_init_rd_atom;
	return n > 0 ? n : 1;
}

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
 * the peer's private data is checked (priv_take). */
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
		rc = priv_take(c, e->param.conn.private_data,
			       e->param.conn.private_data_len);
	rdma_ack_cm_event(e);
	if (ev == want)
		return rc;
	log_info("rdma: %s: got %s (status %d)", what, rdma_event_str(ev),
		 status);
	return cm_event_err(ev);
}

static int rdma_connect_(const char *host, const char *port,
			 const struct orfa_tp_opts *o, struct orfa_conn **out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV }, *res = NULL, *ai;
	struct rdma_conn_param param;
	struct rdma_priv priv;
	struct timespec deadline;
	struct rdma_conn *c;
	int tmo = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
	int rc;

	*out = NULL;
	c = conn_alloc(o);
	if (!c)
		return -ENOMEM;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += tmo / 1000;
	deadline.tv_nsec += (long)(tmo % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}

	c->cm_ch = rdma_create_event_channel();
	if (!c->cm_ch) {
		rc = -(errno ? errno : ENODEV);
		log_err("rdma: cannot open the RDMA CM (%s): no RDMA device "
			"or rdma_ucm not loaded?", strerror(-rc));
		goto fail;
	}
	rc = set_nonblock(c->cm_ch->fd);
	if (rc)
		goto fail;
	if (rdma_create_id(c->cm_ch, &c->id, c, RDMA_PS_TCP)) {
		rc = -errno;
		goto fail;
	}
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		log_err("rdma: cannot resolve %s:%s: %s", host, port,
			gai_strerror(rc));
		rc = -EHOSTUNREACH;
		goto fail;
	}
	rc = -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		if (rdma_resolve_addr(c->id, NULL, ai->ai_addr,
				      ms_left(&deadline) ?: 1)) {
			rc = -errno;
			continue;
		}
		rc = wait_cm(c, RDMA_CM_EVENT_ADDR_RESOLVED, &deadline,
			     "address resolution");
		if (rc == 0)
			break;
	}
	freeaddrinfo(res);
	if (rc)
		goto fail;
	if (rdma_resolve_route(c->id, ms_left(&deadline) ?: 1)) {
		rc = -errno;
		goto fail;
	}
	rc = wait_cm(c, RDMA_CM_EVENT_ROUTE_RESOLVED, &deadline,
		     "route resolution");
	if (rc)
		goto fail;
	rc = conn_setup_verbs(c);
	if (rc)
		goto fail;
	priv_fill(c, &priv);
	memset(&param, 0, sizeof(param));
	param.private_data = &priv;
	param.private_data_len = sizeof(priv);
	param.responder_resources = (uint8_t)rd_atomic(c);
	param.initiator_depth = (uint8_t)rd_atomic(c);
	param.retry_count = 7;
	param.rnr_retry_count = 0;	/* credits make RNR a bug: fail loudly */
	if (rdma_connect(c->id, &param)) {
		rc = -errno;
		goto fail;
	}
	rc = wait_cm(c, RDMA_CM_EVENT_ESTABLISHED, &deadline, "connection");
	if (rc)
		goto fail;
	rc = conn_start(c);
	if (rc)
		goto fail;
	log_debug("rdma: connected to %s (credits %u/%u, buffers %u/%u)",
		  c->base.peer, c->credits, c->peer_credits_max, c->buf_size,
		  c->peer_buf_size);
	*out = &c->base;
	return 0;
fail:
	log_info("rdma: connect to %s:%s failed: %s", host, port,
		 strerror(-rc));
	conn_teardown(c);
	return rc;
}

/* ---- listener ------------------------------------------------------------ */

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

static void lst_release(struct rdma_listener *l);

static void rdma_listener_close(struct orfa_listener *ol)
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
		conn_teardown(c);
	}
	pthread_mutex_lock(&l->lock);
	c = l->ready_first;
	l->ready_first = l->ready_last = NULL;
	pthread_mutex_unlock(&l->lock);
	while (c) {
		struct rdma_conn *next = c->lnext;

		conn_teardown(c);
		c = next;
	}
	if (l->id)
		rdma_destroy_id(l->id);
	if (l->ch)
		rdma_destroy_event_channel(l->ch);
	l->id = NULL;
	l->ch = NULL;
}

static int rdma_listen_(const char *host, const char *port,
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
	l->ch = rdma_create_event_channel();
	if (!l->ch) {
		rc = -(errno ? errno : ENODEV);
		log_err("rdma: cannot open the RDMA CM (%s): no RDMA device "
			"or rdma_ucm not loaded?", strerror(-rc));
		goto fail;
	}
	rc = set_nonblock(l->ch->fd);
	if (rc)
		goto fail;
	if (rdma_create_id(l->ch, &l->id, l, RDMA_PS_TCP)) {
		rc = -errno;
		goto fail;
	}
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
	struct rdma_conn *c = conn_alloc(&l->opts);
	int rc;

	if (!c) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return;
	}
	c->id = id;
	id->context = c;
	addr_str(rdma_get_peer_addr(id), c->base.peer, sizeof(c->base.peer));
	rc = priv_take(c, pdata, plen);
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
	rc = conn_setup_verbs(c);
	if (rc)
		goto reject;
	priv_fill(c, &priv);
	memset(&param, 0, sizeof(param));
	param.private_data = &priv;
	param.private_data_len = sizeof(priv);
	param.responder_resources = (uint8_t)(rd_atomic(c) < peer_init_depth ?
					      rd_atomic(c) : peer_init_depth);
	param.initiator_depth = (uint8_t)(rd_atomic(c) < peer_resp_res ?
					  rd_atomic(c) : peer_resp_res);
	param.retry_count = 7;
	param.rnr_retry_count = 0;
	if (c->manual_qp) {
		/* What rdma_accept does for a QP made by rdma_create_qp. */
		rc = qp_modify(c, IBV_QPS_RTR, param.responder_resources);
		if (rc == 0)
			rc = qp_modify(c, IBV_QPS_RTS, param.initiator_depth);
		if (rc)
			goto reject;
		param.qp_num = c->qp->qp_num;
	}
	if (rdma_accept(id, &param)) {
		rc = -errno;
		log_warn("rdma: %s: rdma_accept: %s", c->base.peer,
			 strerror(-rc));
		conn_teardown(c);
		return;
	}
	c->lnext = l->pending;
	l->pending = c;
	return;
reject:
	log_warn("rdma: %s: refusing connection: %s", c->base.peer,
		 strerror(-rc));
	rdma_reject(id, NULL, 0);
	conn_teardown(c);
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

static void lst_events(struct rdma_listener *l)
{
	struct rdma_cm_event *e;

	while (rdma_get_cm_event(l->ch, &e) == 0) {
		enum rdma_cm_event_type ev = e->event;
		struct rdma_cm_id *id = e->id;
		struct rdma_conn *c;
		int rc;

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
		if (!c || !lst_is_pending(l, c))
			continue;
		lst_unlink_pending(l, c);
		if (ev != RDMA_CM_EVENT_ESTABLISHED) {
			log_info("rdma: %s: connection not established: %s",
				 c->base.peer, rdma_event_str(ev));
			conn_teardown(c);
			continue;
		}
		/* From now on its CM events go to its own channel. */
		if (rdma_migrate_id(c->id, c->cm_ch)) {
			rc = -errno;
			log_warn("rdma: %s: rdma_migrate_id: %s", c->base.peer,
				 strerror(-rc));
			conn_teardown(c);
			continue;
		}
		rc = conn_start(c);
		if (rc) {
			log_warn("rdma: %s: cannot start connection: %s",
				 c->base.peer, strerror(-rc));
			conn_teardown(c);
			continue;
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
	if (set_nonblock(ch->fd) || rdma_create_id(ch, &id, l, RDMA_PS_TCP)) {
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

static int rdma_accept_(struct orfa_listener *ol, struct orfa_conn **out)
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

static int rdma_listener_fd(struct orfa_listener *ol)
{
	/* A server asks for the fd before it serves anyone (a daemonizing
	 * one after its fork()): start the thread now (lst_check). */
	lst_check(lst(ol));
	return lst(ol)->efd;
}

static int rdma_listener_addr(struct orfa_listener *ol, char *buf,
			      size_t size)
{
	struct rdma_listener *l = lst(ol);
	struct sockaddr *sa = (struct sockaddr *)&l->addr;

	if (!buf || size == 0)
		return -EINVAL;
	addr_str(sa, buf, size);
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

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += SHUTDOWN_LINGER_MS * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
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
	conn_teardown(rdma_c(oc));
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
	.want_write = rdma_want_write,
	.queued_bytes = rdma_queued_bytes,
	.fd = rdma_fd,
	.set_sink = rdma_set_sink,
	.set_limits = rdma_set_limits,
	.shutdown = rdma_shutdown_,
	.destroy = rdma_destroy_,
	.peer_addr = rdma_peer_addr_,
};
