/*
 * transport_tcp.c - the TCP implementation of transport.h.
 *
 * Sockets are always O_NONBLOCK; "blocking mode" is a poll loop on top, so
 * one code path serves the client (blocking) and the server (event loop).
 *
 * Receive: an incremental framing state machine (header, body, data) fed
 * from a 64 KiB staging buffer that reads ahead, so a burst of small
 * messages costs one read(2).  Large body or data remainders are read
 * straight into their destination with one readv that also refills the
 * staging buffer behind them.  Frame lengths are checked against the
 * limits before anything is allocated.  Received messages live in pooled
 * buffers lent to the caller until recv_done, so several messages may be
 * out on loan at once and returned from any thread.
 *
 * Send: serialised by tx_lock.  Header and memory data leave in one
 * sendmsg (MSG_NOSIGNAL); file data follows with sendfile, and if the file
 * turns out shorter than promised the rest is zero-filled so the framing
 * survives.  In non-blocking mode what the socket does not take is queued
 * (head copied, data referenced) and written by flush(); queued messages
 * that are pure memory are gathered into one sendmsg.
 *
 * Not here: message contents (the codec), opcodes, reconnection.
 */
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"	/* orfa_get_le* only */
#include "log.h"

#define RX_STAGE_SIZE	(64u * 1024)	/* read-ahead staging buffer */
#define RX_DIRECT_MIN	(16u * 1024)	/* bigger remainders bypass staging */
#define RX_SMALL_CAP	8192u		/* pooled buffer for small messages */
#define RX_SMALL_KEEP	64		/* small buffers kept per connection */
#define RX_BIG_KEEP	8		/* large buffers kept per connection */
#define RX_BIG_KEEP_BYTES (32u << 20)	/* ... and their total size */
#define RX_BIG_ROUND	4096u		/* large buffers round up to this */
#define RX_DATA_ALIGN	64u		/* data offset inside a buffer */
#define TX_IOV_MAX	64		/* iovecs per sendmsg */
#define TX_ZERO_SIZE	(64u * 1024)	/* zero padding block */
#define TX_BOUNCE_SIZE	(64u * 1024)	/* pread fallback buffer */
#define TX_FILE_CHUNK	(1u << 30)	/* largest single sendfile */

static const uint8_t tx_zeros[TX_ZERO_SIZE];

/* A lent receive buffer: frame header + body, then (unless the data went to
 * a sink) the data segment at an aligned offset. */
struct rxbuf {
	struct rxbuf *next;		/* pool link (pool_lock) */
	size_t cap;			/* bytes in mem[] */
	uint8_t mem[];
};

/* One message being sent.  Memory parts (head, iov) go first, then the
 * file range, then zero padding if the file ended early. */
struct txent {
	struct txent *next;
	const uint8_t *head;		/* head[head_off..head_len) left to send */
	size_t head_len, head_off;
	const struct iovec *iov;	/* data memory, caller-owned */
	int iovcnt, iov_idx;
	size_t iov_off;			/* bytes of iov[iov_idx] already sent */
	size_t mem_rem;			/* head + iov bytes left */
	int fd;				/* file data, caller-owned */
	off_t fd_off;
	size_t fd_rem;
	int use_pread;			/* sendfile refused this fd */
	size_t pad_rem;			/* zeros owed after a short file */
	size_t total, left;		/* whole message, still to send */
	void (*done)(void *);
	void *done_arg;
	int heap;			/* allocated by txent_clone */
};

struct txq {
	struct txent *head, **tail;
	size_t bytes;			/* sum of left over entries */
};

enum rx_state { RX_HDR, RX_BODY, RX_DATA };

struct tcp_conn {
	struct orfa_conn base;		/* must stay first */
	int fd;				/* closed only by destroy */
	int nonblock;			/* ORFA_TP_NONBLOCK */
	int closed;			/* atomic: set by shutdown */
	int send_timeout_ms;
	uint32_t max_body, max_data;	/* atomic: set_limits vs receiver */

	/* Receive side: owned by the receiving thread. */
	orfa_sink_fn sink;
	void *sink_arg;
	uint8_t *stage;			/* RX_STAGE_SIZE bytes */
	size_t s_start, s_end;		/* unread bytes are [s_start, s_end) */
	enum rx_state rx_state;
	struct orfa_hdr rx_hdr;
	struct rxbuf *rx_buf;		/* message being assembled */
	uint8_t *rx_data;		/* its data destination */
	int rx_in_sink;
	uint8_t *rx_dst;		/* where the next bytes go */
	size_t rx_need;			/* bytes missing at rx_dst */
	size_t rx_got, rx_total;	/* frame progress, for messages */
	int rx_err;			/* sticky receive failure */

	/* Buffer pool: pool_lock (recv_done may run on any thread). */
	pthread_mutex_t pool_lock;
	struct rxbuf *pool_small, *pool_big;
	unsigned n_small, n_big;
	size_t big_bytes;

	/* Send side: tx_lock.  Never held while calling done(). */
	pthread_mutex_t tx_lock;
	struct txq txq;			/* non-blocking mode backlog */
	int tx_err;			/* sticky send failure */
	uint8_t *bounce;		/* TX_BOUNCE_SIZE, for pread fallback */
};

struct tcp_listener {
	struct orfa_listener base;	/* must stay first */
	int fd;
	struct orfa_tp_opts opts;	/* given to accepted connections */
};

static inline struct tcp_conn *tcp(struct orfa_conn *c)
{
	return (struct tcp_conn *)c;
}

static size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

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

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

/* 0 means the default; nothing goes above the protocol's hard caps. */
static void clamp_limits(uint32_t *max_body, uint32_t *max_data)
{
	if (*max_body == 0 || *max_body > ORFA_MAX_BODY)
		*max_body = ORFA_MAX_BODY;
	if (*max_data == 0)
		*max_data = ORFA_DEFAULT_MAX_DATA;
	if (*max_data > ORFA_MAX_DATA_LIMIT)
		*max_data = ORFA_MAX_DATA_LIMIT;
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
	clamp_limits(&c->max_body, &c->max_data);
	c->rx_state = RX_HDR;
	c->txq.tail = &c->txq.head;
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
		int64_t left = deadline - now_ms();
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

static int tcp_connect(const char *host, const char *port,
		       const struct orfa_tp_opts *o, struct orfa_conn **out)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
	};
	struct addrinfo *res, *ai;
	int64_t deadline;
	int rc, err = -EHOSTUNREACH, fd = -1;

	*out = NULL;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		err = gai_errno(rc, -EHOSTUNREACH);
		log_info("tcp: cannot resolve %s:%s: %s", host, port,
			 gai_strerror(rc));
		return err;
	}
	deadline = now_ms() + (o->connect_timeout_ms > 0 ?
			       o->connect_timeout_ms : 10000);
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = -errno;
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

static int is_closed(struct tcp_conn *c)
{
	return __atomic_load_n(&c->closed, __ATOMIC_ACQUIRE);
}

/*
 * Wait until fd is ready for events (POLLIN/POLLOUT), or timeout_ms passes
 * (<= 0: forever).  0 when ready (errors and hangups count as ready: the
 * next I/O call reports them), -ETIMEDOUT, or -ENOTCONN after shutdown.
 */
static int wait_fd(struct tcp_conn *c, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->fd, .events = events };
	int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;

	for (;;) {
		int wait = -1, r;

		if (is_closed(c))
			return -ENOTCONN;
		if (timeout_ms > 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			wait = left > INT_MAX ? INT_MAX : (int)left;
		}
		r = poll(&pfd, 1, wait);
		if (r > 0)
			return is_closed(c) ? -ENOTCONN : 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* ---- receive buffers -------------------------------------------------- */

static size_t data_offset(size_t head_len)
{
	return (head_len + RX_DATA_ALIGN - 1) & ~(size_t)(RX_DATA_ALIGN - 1);
}

static struct rxbuf *rxbuf_get(struct tcp_conn *c, size_t need)
{
	struct rxbuf *b = NULL, **pp, **best = NULL;
	size_t cap;

	pthread_mutex_lock(&c->pool_lock);
	if (need <= RX_SMALL_CAP) {
		b = c->pool_small;
		if (b) {
			c->pool_small = b->next;
			c->n_small--;
		}
	} else {
		/* Best fit, so a 16 MiB buffer is not spent on 20 KiB. */
		for (pp = &c->pool_big; *pp; pp = &(*pp)->next)
			if ((*pp)->cap >= need &&
			    (!best || (*pp)->cap < (*best)->cap))
				best = pp;
		if (best) {
			b = *best;
			*best = b->next;
			c->n_big--;
			c->big_bytes -= b->cap;
		}
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (b)
		return b;
	if (need <= RX_SMALL_CAP)
		cap = RX_SMALL_CAP;
	else
		cap = (need + RX_BIG_ROUND - 1) & ~(size_t)(RX_BIG_ROUND - 1);
	b = malloc(sizeof(*b) + cap);
	if (b)
		b->cap = cap;
	return b;
}

static void pool_push_big(struct tcp_conn *c, struct rxbuf *b)
{
	b->next = c->pool_big;
	c->pool_big = b;
	c->n_big++;
	c->big_bytes += b->cap;
}

/* Keep b for reuse if the pool has room.  A full large-buffer pool gives
 * up its smallest buffer for a bigger one, so a stream of big messages
 * after many medium ones stops hitting malloc. */
static void rxbuf_put(struct tcp_conn *c, struct rxbuf *b)
{
	struct rxbuf **pp, **small = NULL, *victim;

	pthread_mutex_lock(&c->pool_lock);
	if (b->cap == RX_SMALL_CAP) {
		if (c->n_small < RX_SMALL_KEEP) {
			b->next = c->pool_small;
			c->pool_small = b;
			c->n_small++;
			b = NULL;
		}
	} else if (c->n_big < RX_BIG_KEEP &&
		   c->big_bytes + b->cap <= RX_BIG_KEEP_BYTES) {
		pool_push_big(c, b);
		b = NULL;
	} else {
		for (pp = &c->pool_big; *pp; pp = &(*pp)->next)
			if (!small || (*pp)->cap < (*small)->cap)
				small = pp;
		if (small && (*small)->cap < b->cap &&
		    c->big_bytes - (*small)->cap + b->cap <=
		    RX_BIG_KEEP_BYTES) {
			victim = *small;
			*small = victim->next;
			c->n_big--;
			c->big_bytes -= victim->cap;
			pool_push_big(c, b);
			b = victim;
		}
	}
	pthread_mutex_unlock(&c->pool_lock);
	free(b);
}

static void rxbuf_free_list(struct rxbuf *b)
{
	while (b) {
		struct rxbuf *next = b->next;

		free(b);
		b = next;
	}
}

/* ---- receive ---------------------------------------------------------- */

/* Record a receive failure; it sticks: later recv calls return it too. */
static int rx_fail(struct tcp_conn *c, int err)
{
	c->rx_err = err;
	return err;
}

/* A whole frame header is staged: check it, find homes for the body and
 * the data, and move on to the body. */
static int rx_start(struct tcp_conn *c)
{
	const uint8_t *p = c->stage + c->s_start;
	struct orfa_hdr *h = &c->rx_hdr;
	uint32_t max_body = __atomic_load_n(&c->max_body, __ATOMIC_RELAXED);
	uint32_t max_data = __atomic_load_n(&c->max_data, __ATOMIC_RELAXED);
	void *sinkbuf = NULL;
	size_t head_len, need;
	struct rxbuf *b;

	h->body_len = orfa_get_le32(p);
	h->data_len = orfa_get_le32(p + 4);
	h->opcode = orfa_get_le16(p + 8);
	h->flags = orfa_get_le16(p + 10);
	h->status = orfa_get_le32(p + 12);
	h->req_id = orfa_get_le64(p + 16);
	if (h->body_len > max_body)
		return rx_fail(c, orfa_conn_fail(&c->base, -EMSGSIZE,
			"frame body_len %u exceeds max_body %u (opcode %u)",
			h->body_len, max_body, h->opcode));
	if (h->data_len > max_data)
		return rx_fail(c, orfa_conn_fail(&c->base, -EMSGSIZE,
			"frame data_len %u exceeds max_data %u (opcode %u)",
			h->data_len, max_data, h->opcode));

	head_len = ORFA_HDR_SIZE + (size_t)h->body_len;
	if (h->data_len > 0 && c->sink)
		sinkbuf = c->sink(c->sink_arg, h);
	need = sinkbuf ? head_len : data_offset(head_len) + h->data_len;
	b = rxbuf_get(c, need);
	if (!b)
		return rx_fail(c, orfa_conn_fail(&c->base, -ENOMEM,
			"cannot allocate %zu bytes for a received frame",
			need));
	memcpy(b->mem, p, ORFA_HDR_SIZE);
	c->s_start += ORFA_HDR_SIZE;
	c->rx_buf = b;
	c->rx_in_sink = sinkbuf != NULL;
	c->rx_data = sinkbuf ? sinkbuf :
		     h->data_len ? b->mem + data_offset(head_len) : NULL;
	c->rx_state = RX_BODY;
	c->rx_dst = b->mem + ORFA_HDR_SIZE;
	c->rx_need = h->body_len;
	c->rx_got = ORFA_HDR_SIZE;
	c->rx_total = head_len + h->data_len;
	return 0;
}

/* Current segment complete: advance.  1 when the message is whole. */
static int rx_advance(struct tcp_conn *c)
{
	if (c->rx_state == RX_BODY && c->rx_hdr.data_len > 0) {
		c->rx_state = RX_DATA;
		c->rx_dst = c->rx_data;
		c->rx_need = c->rx_hdr.data_len;
		return 0;
	}
	return 1;
}

/* Read more from the socket.  >0 bytes read, 0 at EOF, or -errno. */
static ssize_t rx_fill(struct tcp_conn *c)
{
	size_t avail = c->s_end - c->s_start;
	ssize_t r;

	/* We only read when staging cannot make progress: at most a partial
	 * header (< 24 bytes) is left, so moving it down is cheap. */
	if (c->s_start > 0) {
		memmove(c->stage, c->stage + c->s_start, avail);
		c->s_start = 0;
		c->s_end = avail;
	}
	if (c->rx_state != RX_HDR && c->rx_need >= RX_DIRECT_MIN) {
		/* Big remainder: straight into place, read ahead behind it. */
		struct iovec iov[2] = {
			{ .iov_base = c->rx_dst, .iov_len = c->rx_need },
			{ .iov_base = c->stage + c->s_end,
			  .iov_len = RX_STAGE_SIZE - c->s_end },
		};
		size_t k;

		r = readv(c->fd, iov, 2);
		if (r > 0) {
			k = min_sz((size_t)r, c->rx_need);
			c->rx_dst += k;
			c->rx_need -= k;
			c->rx_got += k;
			c->s_end += (size_t)r - k;
		}
	} else {
		r = read(c->fd, c->stage + c->s_end, RX_STAGE_SIZE - c->s_end);
		if (r > 0)
			c->s_end += (size_t)r;
	}
	return r < 0 ? -errno : r;
}

static int tcp_recv(struct orfa_conn *oc, struct orfa_rxmsg *m)
{
	struct tcp_conn *c = tcp(oc);
	ssize_t r;
	int rc;

	if (is_closed(c))
		return -ENOTCONN;
	if (c->rx_err)
		return c->rx_err;
	for (;;) {
		size_t avail = c->s_end - c->s_start;

		if (c->rx_state == RX_HDR) {
			if (avail >= ORFA_HDR_SIZE) {
				rc = rx_start(c);
				if (rc)
					return rc;
				continue;
			}
		} else if (c->rx_need == 0 || avail > 0) {
			size_t k = min_sz(avail, c->rx_need);

			memcpy(c->rx_dst, c->stage + c->s_start, k);
			c->s_start += k;
			c->rx_dst += k;
			c->rx_need -= k;
			c->rx_got += k;
			if (c->rx_need == 0 && rx_advance(c))
				break;
			continue;
		}

		r = rx_fill(c);
		if (r > 0) {
			if (c->rx_state != RX_HDR && c->rx_need == 0 &&
			    rx_advance(c))
				break;
			continue;
		}
		if (r == 0) {
			if (is_closed(c))
				return -ENOTCONN;
			if (c->rx_state == RX_HDR && c->s_end == c->s_start)
				return rx_fail(c, orfa_conn_fail(oc,
					-ECONNRESET, "peer closed connection"));
			return rx_fail(c, orfa_conn_fail(oc, -ECONNRESET,
				"truncated frame: peer closed connection "
				"after %zu of %zu bytes",
				c->rx_state == RX_HDR ? c->s_end - c->s_start :
				c->rx_got,
				c->rx_state == RX_HDR ? (size_t)ORFA_HDR_SIZE :
				c->rx_total));
		}
		if (r == -EINTR)
			continue;
		if (r == -EAGAIN || r == -EWOULDBLOCK) {
			if (c->nonblock)
				return -EAGAIN;
			rc = wait_fd(c, POLLIN, 0);
			if (rc)
				return rc;
			continue;
		}
		if (is_closed(c))
			return -ENOTCONN;
		return rx_fail(c, orfa_conn_fail(oc, -ECONNRESET,
			"receive failed: %s", strerror((int)-r)));
	}

	/* Whole message: lend it. */
	m->hdr = c->rx_hdr;
	m->head = c->rx_buf->mem;
	m->head_len = ORFA_HDR_SIZE + (size_t)c->rx_hdr.body_len;
	m->body = m->head + ORFA_HDR_SIZE;
	m->data = c->rx_data;
	m->data_in_sink = c->rx_in_sink;
	m->tp_priv = c->rx_buf;
	c->rx_buf = NULL;
	c->rx_data = NULL;
	c->rx_in_sink = 0;
	c->rx_state = RX_HDR;
	return 0;
}

static void tcp_recv_done(struct orfa_conn *oc, struct orfa_rxmsg *m)
{
	if (m->tp_priv)
		rxbuf_put(tcp(oc), m->tp_priv);
	m->tp_priv = NULL;
	m->head = m->body = NULL;
	m->data = NULL;
}

static void tcp_set_sink(struct orfa_conn *oc, orfa_sink_fn fn, void *arg)
{
	tcp(oc)->sink = fn;
	tcp(oc)->sink_arg = arg;
}

static void tcp_set_limits(struct orfa_conn *oc, uint32_t max_body,
			   uint32_t max_data)
{
	clamp_limits(&max_body, &max_data);
	__atomic_store_n(&tcp(oc)->max_body, max_body, __ATOMIC_RELAXED);
	__atomic_store_n(&tcp(oc)->max_data, max_data, __ATOMIC_RELAXED);
}

/* ---- send: message bookkeeping ---------------------------------------- */

static void txq_init(struct txq *q)
{
	q->head = NULL;
	q->tail = &q->head;
	q->bytes = 0;
}

static void txq_push(struct txq *q, struct txent *e)
{
	e->next = NULL;
	*q->tail = e;
	q->tail = &e->next;
	q->bytes += e->left;
}

static struct txent *txq_pop(struct txq *q)
{
	struct txent *e = q->head;

	if (e) {
		q->head = e->next;
		if (!q->head)
			q->tail = &q->head;
		q->bytes -= e->left;
		e->next = NULL;
	}
	return e;
}

/* Move every entry of from to the end of to. */
static void txq_splice(struct txq *to, struct txq *from)
{
	struct txent *e;

	while ((e = txq_pop(from)))
		txq_push(to, e);
}

/* Call done() once per entry, in order, then free heap entries.  Called
 * without tx_lock so done() may send, shut down or drop a reference. */
static void txq_run_done(struct txq *q)
{
	struct txent *e;

	while ((e = txq_pop(q))) {
		if (e->done)
			e->done(e->done_arg);
		if (e->heap)
			free(e);
	}
}

/*
 * Fill e from m.  The frame header must match what follows it, since the
 * peer frames on it: body_len == head_len - 24 and data_len == the data
 * segment's length.  A mismatch is our caller's bug: -EINVAL.
 */
static int txent_init(struct txent *e, const struct orfa_txmsg *m)
{
	size_t data = 0;

	memset(e, 0, sizeof(*e));
	e->fd = -1;
	e->done = m->done;
	e->done_arg = m->done_arg;
	if (!m->head || m->head_len < ORFA_HDR_SIZE || m->iovcnt < 0 ||
	    (m->iovcnt > 0 && !m->iov))
		return -EINVAL;
	if (m->iov) {
		for (int i = 0; i < m->iovcnt; i++)
			data += m->iov[i].iov_len;
		e->iov = m->iov;
		e->iovcnt = m->iovcnt;
	} else if (m->fd >= 0) {
		data = m->fd_len;
		e->fd = m->fd;
		e->fd_off = m->fd_off;
		e->fd_rem = m->fd_len;
	}
	if (orfa_get_le32(m->head) != m->head_len - ORFA_HDR_SIZE ||
	    orfa_get_le32(m->head + 4) != data)
		return -EINVAL;
	e->head = m->head;
	e->head_len = m->head_len;
	e->mem_rem = m->head_len + (e->iov ? data : 0);
	e->total = e->left = m->head_len + data;
	return 0;
}

/* Copy what is left of e into one heap block: the remaining head bytes
 * and the remaining iovec array (not the data it points to). */
static struct txent *txent_clone(const struct txent *e)
{
	size_t hrem = e->head_len - e->head_off;
	int niov = e->iovcnt - e->iov_idx;
	struct txent *h;
	struct iovec *iov;
	uint8_t *head;

	h = malloc(sizeof(*h) + (size_t)niov * sizeof(*iov) + hrem);
	if (!h)
		return NULL;
	*h = *e;
	iov = (struct iovec *)(h + 1);
	for (int i = 0; i < niov; i++)
		iov[i] = e->iov[e->iov_idx + i];
	if (niov > 0) {
		iov[0].iov_base = (uint8_t *)iov[0].iov_base + e->iov_off;
		iov[0].iov_len -= e->iov_off;
	}
	head = (uint8_t *)(iov + niov);
	memcpy(head, e->head + e->head_off, hrem);
	h->next = NULL;
	h->iov = iov;
	h->iovcnt = niov;
	h->iov_idx = 0;
	h->iov_off = 0;
	h->head = head;
	h->head_len = hrem;
	h->head_off = 0;
	h->heap = 1;
	return h;
}

/* Add e's unsent memory parts to out[max]; *all says whether all fit. */
static int tx_gather(const struct txent *e, struct iovec *out, int max,
		     int *all)
{
	int n = 0;

	*all = 0;
	if (e->head_off < e->head_len) {
		if (n == max)
			return n;
		out[n].iov_base = (void *)(e->head + e->head_off);
		out[n].iov_len = e->head_len - e->head_off;
		n++;
	}
	for (int i = e->iov_idx; i < e->iovcnt; i++) {
		size_t off = i == e->iov_idx ? e->iov_off : 0;

		if (e->iov[i].iov_len <= off)
			continue;
		if (n == max)
			return n;
		out[n].iov_base = (uint8_t *)e->iov[i].iov_base + off;
		out[n].iov_len = e->iov[i].iov_len - off;
		n++;
	}
	*all = 1;
	return n;
}

/* Account n sent bytes to e's memory parts; returns how many it took. */
static size_t tx_consume(struct txent *e, size_t n)
{
	size_t used = 0, k;

	if (e->head_off < e->head_len) {
		k = min_sz(n, e->head_len - e->head_off);
		e->head_off += k;
		used += k;
	}
	while (e->iov_idx < e->iovcnt) {
		size_t len = e->iov[e->iov_idx].iov_len;

		k = min_sz(n - used, len - e->iov_off);
		e->iov_off += k;
		used += k;
		if (e->iov_off < len)
			break;
		e->iov_idx++;
		e->iov_off = 0;
	}
	e->mem_rem -= used;
	e->left -= used;
	return used;
}

static void tx_account(struct txq *q, struct txent *e, size_t n)
{
	e->left -= n;
	q->bytes -= n;
}

/* ---- send: I/O -------------------------------------------------------- */

/* sendmsg with MSG_NOSIGNAL; -errno on failure. */
static ssize_t sock_sendv(int fd, struct iovec *iov, int n, int more)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
	ssize_t r = sendmsg(fd, &mh, MSG_NOSIGNAL | (more ? MSG_MORE : 0));

	return r < 0 ? -errno : r;
}

/* sendfile has no MSG_NOSIGNAL: block SIGPIPE in this thread around it and
 * swallow one it raised, so a dead peer is an error return, not a kill. */
static ssize_t sendfile_nosig(int sock, int fd, off_t *off, size_t n)
{
	sigset_t pipe_set, old, pending;
	int was_pending, err;
	ssize_t r;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	r = sendfile(sock, fd, off, n);
	err = errno;
	/* A dead peer raises SIGPIPE even when sendfile still returns a
	 * short count, so look whenever it did not send everything. */
	if (!was_pending && (r < 0 || (size_t)r < n)) {
		struct timespec zero = { 0, 0 };

		sigpending(&pending);
		if (sigismember(&pending, SIGPIPE))
			while (sigtimedwait(&pipe_set, NULL, &zero) < 0 &&
			       errno == EINTR)
				;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r < 0 ? -err : r;
}

/* Errors from sendfile that concern the socket rather than the file. */
static int sock_errno(int err)
{
	switch (err) {
	case EPIPE:
	case ECONNRESET:
	case ENOTCONN:
	case ETIMEDOUT:
	case ECONNABORTED:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ENETDOWN:
		return 1;
	default:
		return 0;
	}
}

/* Write e's file range (or the zeros owed for it): >0 progress, -EAGAIN,
 * -EINTR, or another -errno that breaks the connection. */
static ssize_t tx_file(struct tcp_conn *c, struct txq *q, struct txent *e)
{
	ssize_t r;

	if (e->fd_rem > 0 && !e->use_pread) {
		off_t off = e->fd_off;

		r = sendfile_nosig(c->fd, e->fd, &off,
				   min_sz(e->fd_rem, TX_FILE_CHUNK));
		if (r > 0) {
			e->fd_off += r;
			e->fd_rem -= (size_t)r;
			tx_account(q, e, (size_t)r);
			return r;
		}
		if (r == 0)
			goto short_file;
		if (r == -EINVAL || r == -ENOSYS || r == -EOVERFLOW ||
		    r == -ESPIPE) {
			/* This fd does not do sendfile: copy through memory. */
			e->use_pread = 1;
			return -EINTR;
		}
		if (r == -EAGAIN || r == -EINTR || sock_errno((int)-r))
			return r;
		goto file_error;
	}
	if (e->fd_rem > 0) {
		size_t want = min_sz(e->fd_rem, TX_BOUNCE_SIZE);
		struct iovec iov;

		if (!c->bounce) {
			c->bounce = malloc(TX_BOUNCE_SIZE);
			if (!c->bounce)
				return -ENOMEM;
		}
		r = pread(e->fd, c->bounce, want, e->fd_off);
		if (r < 0) {
			r = -errno;
			if (r == -EINTR)
				return r;
			goto file_error;
		}
		if (r == 0)
			goto short_file;
		/* Sent bytes only advance the offset; an unsent tail is read
		 * again next time, which is simpler than keeping it. */
		iov.iov_base = c->bounce;
		iov.iov_len = (size_t)r;
		r = sock_sendv(c->fd, &iov, 1, e->fd_rem > (size_t)r);
		if (r > 0) {
			e->fd_off += r;
			e->fd_rem -= (size_t)r;
			tx_account(q, e, (size_t)r);
		}
		return r;
	}

	/* Zero padding for a file that ended early. */
	{
		struct iovec iov[16];
		size_t left = e->pad_rem;
		int n = 0;

		while (left > 0 && n < 16) {
			iov[n].iov_base = (void *)tx_zeros;
			iov[n].iov_len = min_sz(left, TX_ZERO_SIZE);
			left -= iov[n].iov_len;
			n++;
		}
		r = sock_sendv(c->fd, iov, n, 0);
		if (r > 0) {
			e->pad_rem -= (size_t)r;
			tx_account(q, e, (size_t)r);
		}
		return r;
	}

short_file:
	/* The file shrank after the header promised fd_len bytes: keep the
	 * framing intact by sending zeros for the missing part. */
	log_debug("tcp %s: data file ended %zu bytes early, padding with zeros",
		  c->base.peer, e->fd_rem);
	e->pad_rem += e->fd_rem;
	e->fd_rem = 0;
	return -EINTR;

file_error:
	orfa_conn_fail(&c->base, -EIO, "reading file data to send failed: %s",
		       strerror((int)-r));
	return -EIO;
}

/*
 * Write the entries of q, in order, as far as the socket takes them now.
 * Finished entries move to done.  0 when q is empty, -EAGAIN when the
 * socket is full, or another -errno (the connection is then broken).
 * Caller holds tx_lock.
 */
static int tx_progress(struct tcp_conn *c, struct txq *q, struct txq *done)
{
	for (;;) {
		struct txent *e = q->head;
		ssize_t r;

		if (!e)
			return 0;
		if (e->left == 0) {
			txq_push(done, txq_pop(q));
			continue;
		}
		if (e->mem_rem > 0) {
			struct iovec iov[TX_IOV_MAX];
			struct txent *x;
			int n = 0, all = 0, more = 0;
			size_t left;

			/* Gather memory of consecutive entries; stop at one
			 * whose file part must go first. */
			for (x = e; x && n < TX_IOV_MAX; x = x->next) {
				n += tx_gather(x, iov + n, TX_IOV_MAX - n,
					       &all);
				if (!all || x->fd_rem > 0 || x->pad_rem > 0) {
					more = all;
					break;
				}
			}
			r = sock_sendv(c->fd, iov, n, more);
			if (r < 0)
				goto io_error;
			left = (size_t)r;
			for (x = e; x && left > 0; x = x->next) {
				size_t u = tx_consume(x, left);

				q->bytes -= u;
				left -= u;
			}
			continue;
		}
		r = tx_file(c, q, e);
		if (r >= 0)
			continue;
io_error:
		if (r == -EINTR)
			continue;
		if (r == -EWOULDBLOCK)
			return -EAGAIN;
		return (int)r;
	}
}

/* The connection cannot send any more: remember why, fail the backlog
 * and shut the socket so the peer and our receiver notice.  Caller holds
 * tx_lock.  Returns err. */
static int tx_fail(struct tcp_conn *c, int err, struct txq *done)
{
	if (err == -EPIPE)
		err = -ECONNRESET;
	if (!c->tx_err) {
		c->tx_err = err;
		orfa_conn_fail(&c->base, err, "send failed: %s",
			       strerror(-err));
		shutdown(c->fd, SHUT_RDWR);
	}
	txq_splice(done, &c->txq);
	return err;
}

static int send_blocking(struct tcp_conn *c, struct txent *e,
			 struct txq *done)
{
	struct txq one;
	int rc;

	txq_init(&one);
	txq_push(&one, e);
	for (;;) {
		rc = tx_progress(c, &one, done);
		if (rc == 0)
			return 0;
		if (rc == -EAGAIN) {
			/* The timeout bounds each wait for socket space, i.e.
			 * how long the peer may take nothing at all. */
			rc = wait_fd(c, POLLOUT, c->send_timeout_ms);
			if (rc == 0)
				continue;
		}
		txq_splice(done, &one);
		if (rc == -ETIMEDOUT && e->left == e->total)
			return rc;	/* nothing sent: framing intact */
		if (rc == -ETIMEDOUT)
			orfa_conn_fail(&c->base, rc, "send timed out after "
				       "%d ms with %zu of %zu bytes sent",
				       c->send_timeout_ms,
				       e->total - e->left, e->total);
		return tx_fail(c, rc, done);
	}
}

static int send_nonblock(struct tcp_conn *c, struct txent *e,
			 struct txq *done)
{
	struct txent *h;
	int rc;

	if (!c->txq.head) {
		struct txq one;

		txq_init(&one);
		txq_push(&one, e);
		rc = tx_progress(c, &one, done);
		if (rc == 0)
			return 0;
		if (rc != -EAGAIN) {
			txq_splice(done, &one);
			return tx_fail(c, rc, done);
		}
	}
	h = txent_clone(e);
	if (!h) {
		txq_push(done, e);
		if (e->left == e->total)
			return -ENOMEM;
		orfa_conn_fail(&c->base, -ENOMEM, "cannot queue %zu bytes",
			       e->left);
		return tx_fail(c, -ENOMEM, done);
	}
	txq_push(&c->txq, h);
	return 0;
}

static int tcp_send(struct orfa_conn *oc, const struct orfa_txmsg *m)
{
	struct tcp_conn *c = tcp(oc);
	struct txent e;
	struct txq done;
	int rc;

	txq_init(&done);
	rc = txent_init(&e, m);
	if (rc) {
		txq_push(&done, &e);
		goto out;
	}
	pthread_mutex_lock(&c->tx_lock);
	if (is_closed(c)) {
		rc = -ENOTCONN;
		txq_push(&done, &e);
	} else if (c->tx_err) {
		rc = c->tx_err;
		txq_push(&done, &e);
	} else if (c->nonblock) {
		rc = send_nonblock(c, &e, &done);
	} else {
		rc = send_blocking(c, &e, &done);
	}
	pthread_mutex_unlock(&c->tx_lock);
	if (rc && is_closed(c))
		rc = -ENOTCONN;
out:
	txq_run_done(&done);
	return rc;
}

static int tcp_flush(struct orfa_conn *oc)
{
	struct tcp_conn *c = tcp(oc);
	struct txq done;
	int rc = 0;

	txq_init(&done);
	pthread_mutex_lock(&c->tx_lock);
	if (c->tx_err) {
		rc = c->tx_err;
	} else if (is_closed(c)) {
		txq_splice(&done, &c->txq);
		rc = -ENOTCONN;
	} else {
		rc = tx_progress(c, &c->txq, &done);
		if (rc == -EAGAIN)
			rc = 0;
		else if (rc < 0)
			rc = tx_fail(c, rc, &done);
	}
	pthread_mutex_unlock(&c->tx_lock);
	txq_run_done(&done);
	return rc;
}

static int tcp_want_write(struct orfa_conn *oc)
{
	struct tcp_conn *c = tcp(oc);
	int r;

	pthread_mutex_lock(&c->tx_lock);
	r = c->txq.head != NULL;
	pthread_mutex_unlock(&c->tx_lock);
	return r;
}

static size_t tcp_queued_bytes(struct orfa_conn *oc)
{
	struct tcp_conn *c = tcp(oc);
	size_t n;

	pthread_mutex_lock(&c->tx_lock);
	n = c->txq.bytes;
	pthread_mutex_unlock(&c->tx_lock);
	return n;
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
	txq_init(&done);
	pthread_mutex_lock(&c->tx_lock);
	txq_splice(&done, &c->txq);
	pthread_mutex_unlock(&c->tx_lock);
	txq_run_done(&done);
}

/* Last reference gone: no other thread uses c any more.  Messages still
 * lent out must have been returned (recv_done) before. */
static void tcp_destroy(struct orfa_conn *oc)
{
	struct tcp_conn *c = tcp(oc);
	struct txq done;

	txq_init(&done);
	txq_splice(&done, &c->txq);
	txq_run_done(&done);
	close(c->fd);
	free(c->rx_buf);
	rxbuf_free_list(c->pool_small);
	rxbuf_free_list(c->pool_big);
	free(c->stage);
	free(c->bounce);
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
	.want_write = tcp_want_write,
	.queued_bytes = tcp_queued_bytes,
	.fd = tcp_fd,
	.set_sink = tcp_set_sink,
	.set_limits = tcp_set_limits,
	.shutdown = tcp_shutdown,
	.destroy = tcp_destroy,
	.peer_addr = tcp_peer_addr,
};
