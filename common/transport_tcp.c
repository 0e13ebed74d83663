/*
 * transport_tcp.c - the TCP implementation of transport.h: connection
 * setup, the listener, waiting, shutdown and the ops table.  Receiving is
 * in transport_tcp_rx.c, sending in transport_tcp_tx.c.
 *
 * Sockets are always O_NONBLOCK; "blocking mode" is a poll loop on top, so
 * one code path serves the client (blocking) and the server (event loop).
 *
 * Source ports (issue 12): a client allowed to bind ports below 1024 (root,
 * CAP_NET_BIND_SERVICE) connects from one, like bindresvport(3), so a
 * server can tell it from a local user's process (export option secure,
 * docs/security.md); others connect from an ephemeral port.
 *
 * Not here: message contents (the codec), opcodes, reconnection.
 */
#include "clock.h"
#include "transport_tcp_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct tcp_listener {
	struct orfa_listener base;	/* must stay first */
	int fd;
	struct orfa_tp_opts opts;	/* given to accepted connections */
};
/* ---- addresses -------------------------------------------------------- */

/* "a.b.c.d:port" or "[v6]:port"; 0, -ENOSPC or -EAFNOSUPPORT. */
static int format_addr(const struct sockaddr *sa, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned port;
	int n;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		port = ntohs(in->sin_port);
		n = snprintf(buf, size, "%s:%u", ip, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		port = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			/* IPv4 peer of a dual-stack socket: show it as such. */
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip,
				  sizeof(ip));
			n = snprintf(buf, size, "%s:%u", ip, port);
		} else {
			inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
			n = snprintf(buf, size, "[%s]:%u", ip, port);
		}
	} else {
		return -EAFNOSUPPORT;
	}
	return (n < 0 || (size_t)n >= size) ? -ENOSPC : 0;
}

/* Map a getaddrinfo failure to a negative errno. */
static int gai_errno(int rc, int fallback)
{
	switch (rc) {
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_SYSTEM:
		return errno ? -errno : fallback;
	case EAI_SERVICE:
		return -EINVAL;
	default:
		return fallback;
	}
}

/* ---- connection setup ------------------------------------------------- */

static void sock_tune(int fd)
{
	int one = 1, idle = 60, intvl = 10, cnt = 6;

	/* Failures only cost performance or dead-peer detection time. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	/* SO_SNDBUF/SO_RCVBUF are left alone: setting them disables the
	 * kernel's buffer autotuning, which does better on loopback and LAN. */
}

/* Wrap a connected non-blocking socket.  Takes fd (closed on failure). */
static int conn_new(int fd, const struct orfa_tp_opts *o,
		    struct orfa_conn **out)
{
	struct tcp_conn *c = calloc(1, sizeof(*c));
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	*out = NULL;
	if (!c)
		goto err_close;
	c->stage = malloc(RX_STAGE_SIZE);
	if (!c->stage)
		goto err_free;
	c->base.ops = &orfa_tcp_transport;
	c->base.refs = 1;
	c->fd = fd;
	c->nonblock = !!(o->flags & ORFA_TP_NONBLOCK);
	c->send_timeout_ms = o->send_timeout_ms;
	c->max_body = o->max_body;
	c->max_data = o->max_data;
	orfa_tp_clamp_limits(&c->max_body, &c->max_data);
	c->rx_state = RX_HDR;
	c->txq.tail = &c->txq.head;
	c->pipefd[0] = c->pipefd[1] = -1;
	pthread_mutex_init(&c->pool_lock, NULL);
	pthread_mutex_init(&c->tx_lock, NULL);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0 ||
	    format_addr((struct sockaddr *)&ss, c->base.peer,
			sizeof(c->base.peer)) != 0)
		snprintf(c->base.peer, sizeof(c->base.peer), "?");
	sock_tune(fd);
	*out = &c->base;
	return 0;

err_free:
	free(c);
err_close:
	close(fd);
	return -ENOMEM;
}

/* Wait for a non-blocking connect on fd until deadline: 0 or -errno. */
static int connect_wait(int fd, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	for (;;) {
		int64_t left = deadline - orfa_now_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0)
			break;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
		return -errno;
	return -soerr;
}

#define RESV_PORT_HI	1023
#define RESV_PORT_LO	512

/*
 * Bind fd (of family) to the highest free privileged port not above *next,
 * and set *next below it for the caller's next try.  0 when bound; 1 when
 * the caller should connect from an ephemeral port (no privilege or
 * another family), 2 the same because every privileged port is in use; a
 * negative errno for other failures.
 */
static int bind_privileged(int fd, int family, int *next)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;

	if ((family != AF_INET && family != AF_INET6) || *next == 0)
		return 1;	/* 0: found we may not, see below */
	/* Only 512 ports, and each connection this client closed keeps its
	 * port in TIME_WAIT for a minute: with SO_REUSEADDR (set on every
	 * socket bound here) such a port binds again, and connect answers
	 * EADDRNOTAVAIL only if the old connection was to the same server
	 * address and cannot be recycled (the caller then tries the next
	 * port). */
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)family;
	len = family == AF_INET ? sizeof(struct sockaddr_in) :
				  sizeof(struct sockaddr_in6);
	for (; *next >= RESV_PORT_LO; (*next)--) {
		in_port_t p = htons((uint16_t)*next);

		if (family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = p;
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = p;
		if (bind(fd, (struct sockaddr *)&ss, len) == 0) {
			(*next)--;
			return 0;
		}
		if (errno == EACCES || errno == EPERM) {
			*next = 0;
			return 1;
		}
		if (errno != EADDRINUSE)
			return -errno;
	}
	return 2;
}

/* A socket for ai, bound to a privileged port when we may (see
 * bind_privileged; *next as there; *priv 1 when bound to one).  The
 * descriptor or a negative errno. */
static int client_socket(const struct addrinfo *ai, int *next, int *priv)
{
	static int said, said_full;	/* each said once per process */
	int fd, rc;

	fd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
	if (fd < 0)
		return -errno;
	rc = bind_privileged(fd, ai->ai_family, next);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	*priv = rc == 0;
	if (rc == 1 && ai->ai_family != AF_UNIX &&
	    !__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
		log_notice("not root, so connecting from an unprivileged "
			   "port: a server accepts this only for exports with "
			   "the option insecure");
	if (rc == 2 && !__atomic_exchange_n(&said_full, 1, __ATOMIC_RELAXED))
		log_warn("tcp: every source port from %d to %d is in use: "
			 "connecting from an unprivileged port", RESV_PORT_LO,
			 RESV_PORT_HI);
	return fd;
}

static int tcp_connect(const char *host, const char *port,
		       const struct orfa_tp_opts *o, struct orfa_conn **out)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
	};
	struct addrinfo *res, *ai;
	int64_t deadline;
	int rc, err = -EHOSTUNREACH, fd = -1, next = RESV_PORT_HI, priv = 0;

	*out = NULL;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		err = gai_errno(rc, -EHOSTUNREACH);
		log_info("tcp: cannot resolve %s:%s: %s", host, port,
			 gai_strerror(rc));
		return err;
	}
	deadline = orfa_now_ms() + (o->connect_timeout_ms > 0 ?
			       o->connect_timeout_ms : 10000);
	for (ai = res; ai; ) {
		fd = client_socket(ai, &next, &priv);
		if (fd < 0) {
			err = fd;
			ai = ai->ai_next;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = -errno;
		if (err == -EINPROGRESS)
			err = connect_wait(fd, deadline);
		if (err == 0)
			break;
		close(fd);
		fd = -1;
		if (err == -ETIMEDOUT)
			break;	/* the deadline covers all addresses */
		/* EADDRNOTAVAIL from a privileged port: that source port
		 * still has a connection to this server (open or in
		 * TIME_WAIT); the same address again from the next port, or
		 * from an ephemeral one once none is left (bind_privileged
		 * then answers 2). */
		if (err != -EADDRNOTAVAIL || !priv)
			ai = ai->ai_next;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		log_info("tcp: cannot connect to %s:%s: %s", host, port,
			 strerror(-err));
		return err;
	}
	return conn_new(fd, o, out);
}

/* ---- listener --------------------------------------------------------- */

static int listen_one(const struct addrinfo *ai, int wildcard)
{
	int fd, one = 1, zero = 0, err;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* A wildcard IPv6 socket also takes IPv4 (dual stack). */
	if (wildcard && ai->ai_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero,
				 sizeof(zero));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    listen(fd, SOMAXCONN) != 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int tcp_listen(const char *host, const char *port,
		      const struct orfa_tp_opts *o, struct orfa_listener **out)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE,
	};
	struct addrinfo *res, *ai;
	struct tcp_listener *l;
	int wildcard, rc, fd = -EADDRNOTAVAIL;

	*out = NULL;
	wildcard = !host || !host[0] || strcmp(host, "*") == 0;
	rc = getaddrinfo(wildcard ? NULL : host, port, &hints, &res);
	if (rc != 0) {
		log_err("tcp: cannot listen on %s:%s: %s",
			wildcard ? "*" : host, port, gai_strerror(rc));
		return gai_errno(rc, -EADDRNOTAVAIL);
	}
	/* Wildcard: prefer the dual-stack IPv6 socket, then anything. */
	for (int pass = wildcard ? 0 : 1; pass < 2 && fd < 0; pass++) {
		for (ai = res; ai && fd < 0; ai = ai->ai_next) {
			if (pass == 0 && ai->ai_family != AF_INET6)
				continue;
			fd = listen_one(ai, wildcard);
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		log_err("tcp: cannot listen on %s:%s: %s%s",
			wildcard ? "*" : host, port, strerror(-fd),
			fd == -EADDRINUSE ? " (another server on this port?)" :
			"");
		return fd;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	l->base.ops = &orfa_tcp_transport;
	l->fd = fd;
	l->opts = *o;
	*out = &l->base;
	return 0;
}

static int tcp_accept(struct orfa_listener *ol, struct orfa_conn **out)
{
	struct tcp_listener *l = (struct tcp_listener *)ol;
	int fd;

	*out = NULL;
	for (;;) {
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			return conn_new(fd, &l->opts, out);
		switch (errno) {
		case EINTR:
		case ECONNABORTED:
		/* Linux passes pending network errors up through accept;
		 * they concern that one connection, not the listener. */
		case EPROTO:
		case ENOPROTOOPT:
		case EHOSTDOWN:
		case ENONET:
		case EHOSTUNREACH:
		case ENETDOWN:
		case ENETUNREACH:
			continue;
		case EWOULDBLOCK:
			return -EAGAIN;
		default:
			return -errno;
		}
	}
}

static int tcp_listener_fd(struct orfa_listener *ol)
{
	return ((struct tcp_listener *)ol)->fd;
}

static int tcp_listener_addr(struct orfa_listener *ol, char *buf, size_t size)
{
	struct tcp_listener *l = (struct tcp_listener *)ol;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(l->fd, (struct sockaddr *)&ss, &len) != 0)
		return -errno;
	return format_addr((struct sockaddr *)&ss, buf, size);
}

static void tcp_listener_close(struct orfa_listener *ol)
{
	struct tcp_listener *l = (struct tcp_listener *)ol;

	close(l->fd);
	free(l);
}
/* ---- waiting ---------------------------------------------------------- */

int tcp_wait_fd(struct tcp_conn *c, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->fd, .events = events };
	int64_t deadline = timeout_ms > 0 ? orfa_now_ms() + timeout_ms : 0;

	for (;;) {
		int wait = -1, r;

		if (tcp_is_closed(c))
			return -ENOTCONN;
		if (timeout_ms > 0) {
			int64_t left = deadline - orfa_now_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			wait = left > INT_MAX ? INT_MAX : (int)left;
		}
		r = poll(&pfd, 1, wait);
		if (r > 0)
			return tcp_is_closed(c) ? -ENOTCONN : 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}
static void tcp_set_sink(struct orfa_conn *oc, orfa_sink_fn fn, void *arg)
{
	tcp(oc)->sink = fn;
	tcp(oc)->sink_arg = arg;
}

static void tcp_set_limits(struct orfa_conn *oc, uint32_t max_body,
			   uint32_t max_data)
{
	orfa_tp_clamp_limits(&max_body, &max_data);
	__atomic_store_n(&tcp(oc)->max_body, max_body, __ATOMIC_RELAXED);
	__atomic_store_n(&tcp(oc)->max_data, max_data, __ATOMIC_RELAXED);
}
static int tcp_fd(struct orfa_conn *oc)
{
	return tcp(oc)->fd;
}
/* ---- shutdown and destroy --------------------------------------------- */

static void tcp_shutdown(struct orfa_conn *oc)
{
	struct tcp_conn *c = tcp(oc);
	struct txq done;

	/* Flag and shut the socket before taking tx_lock: a blocked sender
	 * holds it and only lets go once the socket wakes it up. */
	__atomic_store_n(&c->closed, 1, __ATOMIC_RELEASE);
	orfa_conn_fail(oc, -ENOTCONN, "connection shut down locally");
	shutdown(c->fd, SHUT_RDWR);
	tcp_txq_init(&done);
	pthread_mutex_lock(&c->tx_lock);
	tcp_txq_splice(&done, &c->txq);
	pthread_mutex_unlock(&c->tx_lock);
	tcp_txq_run_done(&done);
}

/* Last reference gone: no other thread uses c any more.  Messages still
 * lent out must have been returned (recv_done) before. */
static void tcp_destroy(struct orfa_conn *oc)
{
	struct tcp_conn *c = tcp(oc);
	struct txq done;

	tcp_txq_init(&done);
	tcp_txq_splice(&done, &c->txq);
	tcp_txq_run_done(&done);
	close(c->fd);
	free(c->rx_buf);
	tcp_rxbuf_free_list(c->pool_small);
	tcp_rxbuf_free_list(c->pool_big);
	free(c->stage);
	free(c->bounce);
	free(c->rx_bounce);
	if (c->pipefd[0] >= 0) {
		close(c->pipefd[0]);
		close(c->pipefd[1]);
	}
	pthread_mutex_destroy(&c->pool_lock);
	pthread_mutex_destroy(&c->tx_lock);
	free(c);
}

static int tcp_peer_addr(struct orfa_conn *base, struct sockaddr_storage *ss)
{
	struct tcp_conn *c = (struct tcp_conn *)base;
	socklen_t len = sizeof(*ss);

	return getpeername(c->fd, (struct sockaddr *)ss, &len) ? -errno : 0;
}

const struct orfa_transport_ops orfa_tcp_transport = {
	.name = "tcp",
	.connect = tcp_connect,
	.listen = tcp_listen,
	.accept = tcp_accept,
	.listener_fd = tcp_listener_fd,
	.listener_addr = tcp_listener_addr,
	.listener_close = tcp_listener_close,
	.send = tcp_send,
	.recv = tcp_recv,
	.recv_done = tcp_recv_done,
	.flush = tcp_flush,
	.queued = tcp_queued,
	.fd = tcp_fd,
	.set_sink = tcp_set_sink,
	.set_limits = tcp_set_limits,
	.shutdown = tcp_shutdown,
	.destroy = tcp_destroy,
	.peer_addr = tcp_peer_addr,
	.cork = tcp_cork,
	.set_defer = tcp_set_defer,
	.recv_data = tcp_recv_data,
};

