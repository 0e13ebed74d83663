/*
 * transport_rdma_setup.c - the life of one RDMA connection object, for
 * both sides: allocation with its limits and sizes (rdma_conn_alloc), its
 * verbs resources (device, own protection domain, pools, completion
 * channel, CQ, QP: created in this order by rdma_conn_setup_verbs,
 * receives posted), the pollable fd,
 * epoll set and progress thread (rdma_conn_start), the ORFA parameters in
 * the CM private data, and teardown in the reverse order
 * (rdma_conn_teardown).  Connecting is in transport_rdma.c, accepting in
 * transport_rdma_listen.c; the data path starts at the progress thread
 * (transport_rdma_progress.c).
 */
#include "transport_rdma_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
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

int rdma_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

void rdma_addr_str(const struct sockaddr *sa, char *buf, size_t size)
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

int rdma_cm_open(struct rdma_event_channel **ch, struct rdma_cm_id **id,
		 void *ctx)
{
	int rc;

	*ch = rdma_create_event_channel();
	if (!*ch) {
		rc = -(errno ? errno : ENODEV);
		log_err("rdma: cannot open the RDMA CM (%s): no RDMA device "
			"or rdma_ucm not loaded?", strerror(-rc));
		return rc;
	}
	rc = rdma_set_nonblock((*ch)->fd);
	if (rc)
		return rc;
	if (rdma_create_id(*ch, id, ctx, RDMA_PS_TCP))
		return -errno;
	return 0;
}

struct rdma_conn *rdma_conn_alloc(const struct orfa_tp_opts *o)
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

/* Manual QP: move it to state st with the CM's attributes (what
 * rdma_create_qp/rdma_accept do for QPs they know); rd is the RDMA READ
 * depth for RTR (responder) and RTS (initiator). */
int rdma_qp_modify(struct rdma_conn *c, enum ibv_qp_state st, int rd)
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

int rdma_conn_setup_verbs(struct rdma_conn *c)
{
	struct ibv_context *verbs;
	struct ibv_qp_init_attr qa;
	uint32_t max_wr, cqe;
	int rc;

	c->dev = c->manual_qp ? rdma_dev_get_own(c->id->verbs) :
				rdma_dev_get(c->id->verbs);
	if (!c->dev)
		return verbs_err(c, "cannot open the device", errno);
	rc = rdma_mem_init(&c->mem, c->dev);	/* this connection's own PD */
	if (rc)
		return verbs_err(c, "ibv_alloc_pd", -rc);
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

	c->rpool_mr = rdma_pool_alloc(&c->mem, (size_t)(c->credits + c->nspare) *
				      c->buf_size);
	if (!c->rpool_mr)
		return verbs_err(c, "receive pool", errno);
	c->spool_mr = rdma_pool_alloc(&c->mem, (size_t)c->nsslots * c->buf_size +
				      RDMA_CTRL_SLOTS * RDMA_WIRE_SIZE);
	if (!c->spool_mr)
		return verbs_err(c, "send pool", errno);
	c->comp_ch = ibv_create_comp_channel(verbs);
	if (!c->comp_ch)
		return verbs_err(c, "ibv_create_comp_channel", errno);
	rc = rdma_set_nonblock(c->comp_ch->fd);
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
		c->qp = ibv_create_qp(c->mem.pd, &qa);
		if (!c->qp)
			return verbs_err(c, "ibv_create_qp", errno);
		rc = rdma_qp_modify(c, IBV_QPS_INIT, 0);
		if (rc)
			return rc;
	} else {
		if (rdma_create_qp(c->id, c->mem.pd, &qa))
			return verbs_err(c, "rdma_create_qp", errno);
		c->qp = c->id->qp;
	}
	c->sq_free = c->sq_depth;
	return rdma_io_init(c);
}

/* The pollable fd, the epoll set and the progress thread. */
int rdma_conn_start(struct rdma_conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int one = 1, rc;

	rdma_addr_str(rdma_get_peer_addr(c->id), c->base.peer, sizeof(c->base.peer));
	rc = rdma_set_nonblock(c->cm_ch->fd);
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

/*
 * Tear down whatever rdma_conn_alloc/setup/start built, in reverse order.  A
 * started connection's progress thread fails it and destroys its QP, CQ
 * and CM id before it ends (the calling thread may be one that must not
 * call verbs); without a thread (a failed setup, on the listener's or
 * connecting thread) that happens here.
 */
void rdma_conn_teardown(struct rdma_conn *c)
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
	rdma_mem_fini(&c->mem);		/* cached buffers, then the PD */
	rdma_dev_put(c->dev);
	if (c->cm_ch)
		rdma_destroy_event_channel(c->cm_ch);
	pthread_cond_destroy(&c->rx_cond);
	pthread_cond_destroy(&c->tx_cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void rdma_conn_priv_fill(const struct rdma_conn *c, struct rdma_priv *p)
{
	rdma_priv_put(p, c->credits, c->buf_size);
}

/* Check the peer's private data; sets peer_credits / peer_buf_size. */
int rdma_conn_priv_take(struct rdma_conn *c, const void *data, size_t len)
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

int rdma_rd_atomic(const struct rdma_conn *c)
{
	int n = MAX_RD_ATOMIC;

	if (c->dev->attr.max_qp_rd_atom < n)
		n = c->dev->attr.max_qp_rd_atom;
	if (c->dev->attr.max_qp_init_rd_atom < n)
		n = c->dev->attr.max_qp_init_rd_atom;
	return n > 0 ? n : 1;
}
