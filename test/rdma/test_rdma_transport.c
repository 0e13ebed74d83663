/*
 * test_rdma_transport.c - the RDMA transport over real verbs, TAP on
 * stdout.  Runs where an RDMA device with 192.0.2.1 exists: inside the
 * Soft-RoCE VM of scripts/rdma-vm (test/rdma/meson.build does that).
 * Elsewhere it prints "1..0 # SKIP" and exits 77.
 *
 * A small in-process server (non-blocking poll loop, or a blocking thread
 * per connection) answers five test opcodes:
 *   T_ECHO   reply with the same body and data (data sent from the lent
 *            receive buffer, recv_done when the transport calls done)
 *   T_READ   body {size, offset, from_file}: reply data = pattern bytes
 *            [offset, offset+size), from memory or from a file (fd)
 *   T_PUT    reply body = 64-bit checksum of the request data
 *   T_PING   empty reply
 *   T_CLOSE  the server drops the connection without replying
 * Clients check every byte against the same pattern.
 *
 * Group 'isolation' (issue 12): the test holds both ends of connections
 * and replays rkeys through rdma_test_remote_access: one of a completed
 * rendezvous (READ), of an answered reply buffer (WRITE), and a live
 * reply buffer's through another connection must all get a remote
 * access error, never data.
 *
 * Modes: (no argument) the test suite; --bench: RDMA vs TCP round trip
 * and 1 MiB throughput over 192.0.2.1, printed as TAP comments;
 * --child-stream HOST PORT: helper process for the peer-death test;
 * --forked-server FILE: helper for the listener-across-fork() test.
 * ORFA_RDMA_TESTS=a,b runs some groups only; ORFA_RDMA_MANUAL_QP=1 makes
 * every accepted connection use the after-fork path (own device context,
 * QP states driven by the transport).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "transport.h"
#include "transport_rdma_impl.h"

#define T_ECHO		ORFA_OP_WRITE
#define T_READ		ORFA_OP_READ
#define T_PUT		ORFA_OP_SETXATTR
#define T_PING		ORFA_OP_PING
#define T_CLOSE		ORFA_OP_RELEASE

#define BENCH_MEM(c)	(&rdma_c(c)->mem)	/* the PD pins go to */
#define PAT_SIZE	((17u << 20) + 4096)
#define MAX_DATA	(32u << 20)

static const char *test_host = "192.0.2.1";
static uint8_t *pat;		/* the shared pattern */
static char pat_file[64];	/* the pattern in a file */

/* ---- TAP ------------------------------------------------------------------ */

static int tap_n, tap_fail;

static void tap(int ok, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void tap(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", ok ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		tap_fail++;
}

static void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void on_alarm(int sig)
{
	static const char msg[] = "Bail out! test_rdma_transport: watchdog "
				  "expired (hang)\n";

	(void)sig;
	if (write(1, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	_exit(1);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- helpers ------------------------------------------------------------------ */

static void pat_init(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	int fd;

	pat = malloc(PAT_SIZE);
	if (!pat)
		abort();
	for (size_t i = 0; i < PAT_SIZE; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(pat + i, &x, 8);
	}
	snprintf(pat_file, sizeof(pat_file), "/tmp/rdma-pat.XXXXXX");
	fd = mkstemp(pat_file);
	if (fd < 0 || write(fd, pat, PAT_SIZE) != (ssize_t)PAT_SIZE)
		abort();
	close(fd);
}

static uint64_t csum(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull, w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Frame header + body into buf; returns head length. */
static size_t mk_head(uint8_t *buf, uint16_t op, uint16_t flags,
		      uint64_t req_id, const void *body, uint32_t blen,
		      uint32_t dlen)
{
	put32(buf, blen);
	put32(buf + 4, dlen);
	put16(buf + 8, op);
	put16(buf + 10, flags);
	put32(buf + 12, 0);
	put64(buf + 16, req_id);
	if (blen)
		memcpy(buf + ORFA_HDR_SIZE, body, blen);
	return ORFA_HDR_SIZE + blen;
}

static atomic_long dones;	/* done() calls seen by clients */

static void count_done(void *arg)
{
	(void)arg;
	atomic_fetch_add(&dones, 1);
}

/* ---- the test server -------------------------------------------------------------- */

#define SRV_MAXC 64

struct srv {
	const char *tp;			/* "rdma" or "tcp" */
	struct orfa_tp_opts opts;	/* listener options */
	struct orfa_listener *l;
	char host[64], port[16];
	uint32_t limit_data;		/* set_limits on accepted conns */
	int pause_on_queue;		/* like orfad's back-pressure: stop
					 * polling for input while replies are
					 * queued, wait for writability */
	int paused;			/* times reading was paused */
	int file_fd;			/* pattern file */
	int stop[2];			/* pipe: stop the loop */
	pthread_t thr;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int accepted, closed, closed_err;	/* lock */
	int last_err;				/* lock */
	struct orfa_conn *conns[SRV_MAXC];	/* loop thread (non-blocking) */
	int nconns;
};

struct held {
	struct orfa_conn *c;
	struct orfa_rxmsg m;
};

static void held_done(void *arg)
{
	struct held *h = arg;

	orfa_conn_recv_done(h->c, &h->m);
	free(h);
}

/* Answer one request.  Returns 0, or a negative value to drop the
 * connection.  Always pairs the message with recv_done. */
static int srv_handle(struct srv *s, struct orfa_conn *c, struct orfa_rxmsg *m)
{
	uint8_t head[ORFA_HDR_SIZE + ORFA_MAX_BODY];
	struct orfa_txmsg tx = { .fd = -1 };
	struct iovec iov;
	uint64_t id = m->hdr.req_id;
	uint8_t body[8];
	int rc;

	switch (m->hdr.opcode) {
	case T_ECHO: {
		struct held *h = malloc(sizeof(*h));

		if (!h) {
			orfa_conn_recv_done(c, m);
			return -ENOMEM;
		}
		h->c = c;
		h->m = *m;
		tx.head = head;
		tx.head_len = mk_head(head, T_ECHO, ORFA_F_REPLY, id, m->body,
				      m->hdr.body_len, m->hdr.data_len);
		iov.iov_base = m->data;
		iov.iov_len = m->hdr.data_len;
		if (m->hdr.data_len) {
			tx.iov = &iov;
			tx.iovcnt = 1;
		}
		tx.done = held_done;
		tx.done_arg = h;
		return orfa_conn_send(c, &tx);
	}
	case T_READ: {
		uint32_t size, off, from_file;

		if (m->hdr.body_len < 12) {
			orfa_conn_recv_done(c, m);
			return -EPROTO;
		}
		size = get32(m->body);
		off = get32(m->body + 4);
		from_file = get32(m->body + 8);
		orfa_conn_recv_done(c, m);
		if ((uint64_t)off + size > PAT_SIZE)
			return -EPROTO;
		tx.head = head;
		tx.head_len = mk_head(head, T_READ, ORFA_F_REPLY, id, NULL, 0,
				      size);
		if (size && from_file) {
			tx.fd = s->file_fd;
			tx.fd_off = off;
			tx.fd_len = size;
		} else if (size) {
			iov.iov_base = pat + off;
			iov.iov_len = size;
			tx.iov = &iov;
			tx.iovcnt = 1;
		}
		return orfa_conn_send(c, &tx);
	}
	case T_PUT:
		put64(body, csum(m->data, m->hdr.data_len));
		orfa_conn_recv_done(c, m);
		tx.head = head;
		tx.head_len = mk_head(head, T_PUT, ORFA_F_REPLY, id, body, 8, 0);
		return orfa_conn_send(c, &tx);
	case T_PING:
		orfa_conn_recv_done(c, m);
		tx.head = head;
		tx.head_len = mk_head(head, T_PING, ORFA_F_REPLY, id, NULL, 0, 0);
		rc = orfa_conn_send(c, &tx);
		return rc;
	case T_CLOSE:
	default:
		orfa_conn_recv_done(c, m);
		return -ECONNABORTED;
	}
}

static void srv_closed(struct srv *s, int err)
{
	pthread_mutex_lock(&s->lock);
	s->closed++;
	if (err != -ECONNABORTED && err != 0) {
		s->closed_err++;
		s->last_err = err;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Blocking mode: one thread per connection. */
struct srv_cthread {
	struct srv *s;
	struct orfa_conn *c;
};

static void *srv_conn_thread(void *arg)
{
	struct srv_cthread *t = arg;
	struct orfa_rxmsg m;
	int rc;

	for (;;) {
		rc = orfa_conn_recv(t->c, &m);
		if (rc)
			break;
		rc = srv_handle(t->s, t->c, &m);
		if (rc)
			break;
	}
	orfa_conn_put(&t->c);
	srv_closed(t->s, rc);
	free(t);
	return NULL;
}

static void srv_add(struct srv *s, struct orfa_conn *c)
{
	if (s->limit_data)
		orfa_conn_set_limits(c, 0, s->limit_data);
	pthread_mutex_lock(&s->lock);
	s->accepted++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (!(s->opts.flags & ORFA_TP_NONBLOCK)) {
		struct srv_cthread *t = malloc(sizeof(*t));
		pthread_t th;

		t->s = s;
		t->c = c;
		if (pthread_create(&th, NULL, srv_conn_thread, t) == 0)
			pthread_detach(th);
		return;
	}
	if (s->nconns == SRV_MAXC) {
		orfa_conn_put(&c);
		return;
	}
	s->conns[s->nconns++] = c;
}

static void srv_drop(struct srv *s, int i, int err)
{
	orfa_conn_put(&s->conns[i]);
	s->conns[i] = s->conns[--s->nconns];
	srv_closed(s, err);
}

static void *srv_loop(void *arg)
{
	struct srv *s = arg;
	struct pollfd pfd[SRV_MAXC + 2];
	struct orfa_conn *c;
	struct orfa_rxmsg m;

	for (;;) {
		int n = s->nconns, rc;

		pfd[0] = (struct pollfd){ .fd = s->stop[0], .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = orfa_listener_fd(s->l),
					  .events = POLLIN };
		for (int i = 0; i < n; i++) {
			pfd[i + 2].fd = orfa_conn_fd(s->conns[i]);
			pfd[i + 2].events = POLLIN;
			if (s->pause_on_queue &&
			    orfa_conn_queued_bytes(s->conns[i])) {
				pfd[i + 2].events = 0;
				s->paused++;
			}
			if (orfa_conn_want_write(s->conns[i]))
				pfd[i + 2].events |= POLLOUT;
			pfd[i + 2].revents = 0;
		}
		rc = poll(pfd, (nfds_t)n + 2, 1000);
		if (rc < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			break;
		if (pfd[1].revents)
			while (orfa_listener_accept(s->l, &c) == 0)
				srv_add(s, c);
		for (int i = n - 1; i >= 0; i--) {
			if (!pfd[i + 2].revents)
				continue;
			c = s->conns[i];
			rc = 0;
			if (pfd[i + 2].revents & POLLOUT)
				rc = orfa_conn_flush(c);
			while (rc == 0) {
				if (s->pause_on_queue &&
				    orfa_conn_queued_bytes(c)) {
					rc = -EAGAIN;
					break;
				}
				rc = orfa_conn_recv(c, &m);
				if (rc == 0)
					rc = srv_handle(s, c, &m);
			}
			if (rc == -EAGAIN)
				rc = orfa_conn_flush(c);
			if (rc && rc != -EAGAIN)
				srv_drop(s, i, rc);
		}
	}
	while (s->nconns)
		srv_drop(s, s->nconns - 1, 0);
	return NULL;
}

static int srv_open(struct srv *s, const char *tp, unsigned flags,
		    unsigned credits, uint32_t limit_data);

static int srv_start(struct srv *s, const char *tp, unsigned flags,
		     unsigned credits, uint32_t limit_data)
{
	int rc = srv_open(s, tp, flags, credits, limit_data);

	if (rc)
		return rc;
	return pthread_create(&s->thr, NULL, srv_loop, s) ? -EAGAIN : 0;
}

/* The listener only (no thread yet). */
static int srv_open(struct srv *s, const char *tp, unsigned flags,
		    unsigned credits, uint32_t limit_data)
{
	char addr[64], *colon;
	int rc;

	memset(s, 0, sizeof(*s));
	s->tp = tp;
	orfa_tp_opts_default(&s->opts);
	s->opts.flags = flags;
	s->opts.max_data = MAX_DATA;
	if (credits)
		s->opts.rdma_credits = credits;
	s->limit_data = limit_data;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->file_fd = open(pat_file, O_RDONLY);
	if (s->file_fd < 0 || pipe(s->stop))
		return -errno;
	rc = orfa_listener_open(tp, test_host, "0", &s->opts, &s->l, NULL);
	if (rc)
		return rc;
	rc = orfa_listener_addr(s->l, addr, sizeof(addr));
	if (rc)
		return rc;
	colon = strrchr(addr, ':');
	if (!colon)
		return -EINVAL;
	snprintf(s->port, sizeof(s->port), "%s", colon + 1);
	*colon = '\0';
	snprintf(s->host, sizeof(s->host), "%s", addr);
	return 0;
}

/* Blocking-mode servers run per-connection threads that are detached;
 * wait until every accepted connection has been closed. */
static void srv_stop(struct srv *s)
{
	char b = 1;
	struct timespec dl;

	if (write(s->stop[1], &b, 1) != 1)
		return;
	pthread_join(s->thr, NULL);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 30;
	pthread_mutex_lock(&s->lock);
	while (s->closed < s->accepted &&
	       pthread_cond_timedwait(&s->cond, &s->lock, &dl) == 0)
		;
	pthread_mutex_unlock(&s->lock);
	orfa_listener_close(s->l);
	close(s->stop[0]);
	close(s->stop[1]);
	close(s->file_fd);
}

/* Wait until the server has closed at least n connections (30 s). */
static int srv_wait_closed(struct srv *s, int n)
{
	struct timespec dl;
	int ok;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 30;
	pthread_mutex_lock(&s->lock);
	while (s->closed < n &&
	       pthread_cond_timedwait(&s->cond, &s->lock, &dl) == 0)
		;
	ok = s->closed >= n;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

/* ---- client helpers ------------------------------------------------------------ */

static int cl_connect(struct srv *s, unsigned flags, unsigned credits,
		      struct orfa_conn **out)
{
	struct orfa_tp_opts o;

	orfa_tp_opts_default(&o);
	o.flags = flags;
	o.max_data = MAX_DATA;
	if (credits)
		o.rdma_credits = credits;
	return orfa_conn_connect(s->tp, s->host, s->port, &o, out);
}

/* Send one request: op, req_id, body, data (memory), reply buffer. */
static int cl_send(struct orfa_conn *c, uint16_t op, uint64_t id,
		   const void *body, uint32_t blen, const void *data,
		   size_t dlen, void *reply_buf, size_t reply_len)
{
	uint8_t head[ORFA_HDR_SIZE + 64];
	struct iovec iov = { .iov_base = (void *)data, .iov_len = dlen };
	struct orfa_txmsg tx = { .fd = -1 };

	tx.head = head;
	tx.head_len = mk_head(head, op, 0, id, body, blen, (uint32_t)dlen);
	if (dlen) {
		tx.iov = &iov;
		tx.iovcnt = 1;
	}
	tx.done = count_done;
	tx.reply_buf = reply_buf;
	tx.reply_buf_len = reply_len;
	return orfa_conn_send(c, &tx);
}

/* Data of the echo of request i: a window of the pattern. */
static const uint8_t *echo_data(uint64_t i)
{
	return pat + (i * 4099) % (1u << 20);
}

static int check_echo(const struct orfa_rxmsg *m, uint64_t id, size_t dlen)
{
	if (m->hdr.req_id != id || !(m->hdr.flags & ORFA_F_REPLY) ||
	    m->hdr.opcode != T_ECHO || m->hdr.data_len != dlen ||
	    m->hdr.body_len != 8 || get64(m->body) != id)
		return 0;
	return dlen == 0 || memcmp(m->data, echo_data(id), dlen) == 0;
}

static int echo_once(struct orfa_conn *c, uint64_t id, size_t dlen)
{
	struct orfa_rxmsg m;
	uint8_t body[8];
	int rc, ok;

	put64(body, id);
	rc = cl_send(c, T_ECHO, id, body, 8, echo_data(id), dlen, NULL, 0);
	if (rc) {
		diag("send %zu: %s", dlen, strerror(-rc));
		return 0;
	}
	rc = orfa_conn_recv(c, &m);
	if (rc) {
		diag("recv %zu: %s (%s)", dlen, strerror(-rc),
		     orfa_conn_last_error(c));
		return 0;
	}
	ok = check_echo(&m, id, dlen);
	if (!ok)
		diag("echo of %zu bytes: wrong reply (len %u)", dlen,
		     m.hdr.data_len);
	orfa_conn_recv_done(c, &m);
	return ok;
}

/* READ of size bytes at off; reply buffer and sink are optional. */
static int read_once(struct orfa_conn *c, uint64_t id, uint32_t size,
		     uint32_t off, int from_file, void *reply_buf,
		     int *in_sink, void **data_at)
{
	struct orfa_rxmsg m;
	uint8_t body[12];
	int rc, ok;

	put32(body, size);
	put32(body + 4, off);
	put32(body + 8, (uint32_t)from_file);
	rc = cl_send(c, T_READ, id, body, 12, NULL, 0, reply_buf,
		     reply_buf ? size : 0);
	if (rc)
		return 0;
	rc = orfa_conn_recv(c, &m);
	if (rc) {
		diag("read recv: %s (%s)", strerror(-rc),
		     orfa_conn_last_error(c));
		return 0;
	}
	ok = m.hdr.req_id == id && m.hdr.data_len == size &&
	     (size == 0 || memcmp(m.data, pat + off, size) == 0);
	if (!ok)
		diag("read %u@%u: wrong reply (len %u)", size, off,
		     m.hdr.data_len);
	if (in_sink)
		*in_sink = m.data_in_sink;
	if (data_at)
		*data_at = m.data;
	orfa_conn_recv_done(c, &m);
	return ok;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_basic(struct srv *s, const char *mode)
{
	struct orfa_conn *c = NULL;
	static const size_t sizes[] = {
		0, 1, 7, 100, 4096, 65000, 65400, 65535, 65536, 65537,
		200000, 1u << 20, (1u << 20) + 3, 16u << 20,
	};
	int rc, ok = 1;
	long d0 = atomic_load(&dones);
	unsigned n = 0;

	rc = cl_connect(s, 0, 0, &c);
	tap(rc == 0, "%s: connect to %s:%s", mode, s->host, s->port);
	if (rc) {
		diag("connect: %s", strerror(-rc));
		return;
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++, n++)
		if (!echo_once(c, 1000 + i, sizes[i])) {
			ok = 0;
			diag("echo size %zu failed", sizes[i]);
		}
	tap(ok, "%s: echo 0 B .. 16 MiB, content verified both ways", mode);
	tap(atomic_load(&dones) - d0 == (long)n,
	    "%s: done() called once per send (%ld of %u)", mode,
	    atomic_load(&dones) - d0, n);
	orfa_conn_put(&c);
}

/* Echo with an odd-length body and data in several iovecs: inline, a
 * rendezvous with one segment per iovec, and more iovecs than segments
 * (copied into a bounce buffer). */
static void test_iovecs(struct srv *s)
{
	static const struct { int n; size_t each; } cases[] = {
		{ 3, 1000 }, { 3, 300000 }, { 12, 50000 }, { 1, 0 },
	};
	struct orfa_conn *c = NULL;
	uint8_t head[ORFA_HDR_SIZE + 13], body[13];
	struct iovec iov[12];
	int ok = 1;

	if (cl_connect(s, 0, 0, &c)) {
		tap(0, "iovecs: connect");
		return;
	}
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct orfa_txmsg tx = { .fd = -1 };
		struct orfa_rxmsg m;
		size_t total = 0;
		uint8_t *want;

		memset(body, (int)k + 1, sizeof(body));
		for (int i = 0; i < cases[k].n; i++) {
			iov[i].iov_base = pat + 4096 * (size_t)(i + k) + 3;
			iov[i].iov_len = cases[k].each;
			total += cases[k].each;
		}
		tx.head = head;
		tx.head_len = mk_head(head, T_ECHO, 0, 7000 + k, body,
				      sizeof(body), (uint32_t)total);
		tx.iov = total ? iov : NULL;
		tx.iovcnt = total ? cases[k].n : 0;
		tx.done = count_done;
		if (orfa_conn_send(c, &tx) || orfa_conn_recv(c, &m)) {
			ok = 0;
			break;
		}
		want = malloc(total + 1);
		for (int i = 0, off = 0; total && i < cases[k].n; i++) {
			memcpy(want + off, iov[i].iov_base, iov[i].iov_len);
			off += (int)iov[i].iov_len;
		}
		if (m.hdr.body_len != sizeof(body) ||
		    memcmp(m.body, body, sizeof(body)) ||
		    m.hdr.data_len != total ||
		    (total && memcmp(m.data, want, total))) {
			ok = 0;
			diag("iovecs case %zu: wrong echo", k);
		}
		free(want);
		orfa_conn_recv_done(c, &m);
	}
	tap(ok, "iovecs: 13-byte body with 3 iovecs inline, 3 x 300000 "
	    "(3 segments), 12 x 50000 (bounce), none");
	orfa_conn_put(&c);
}

static void test_reads(struct srv *s)
{
	struct orfa_conn *c = NULL;
	static const uint32_t sizes[] = { 0, 100, 65000, 65536, 1u << 20,
					  (3u << 20) + 5, 16u << 20 };
	unsigned long before[6], after[6];
	int ok = 1, sink_ok = 1, in_sink;
	void *at;
	uint8_t *buf;
	uint64_t id = 5000;

	if (cl_connect(s, 0, 0, &c)) {
		tap(0, "reads: connect");
		return;
	}
	buf = malloc(16u << 20);
	rdma_conn_counters(c, before);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint32_t off = (uint32_t)(i * 977);

		if (!read_once(c, id++, sizes[i], off, 0, NULL, NULL, NULL))
			ok = 0;
		if (!read_once(c, id++, sizes[i], off, 1, NULL, NULL, NULL))
			ok = 0;
		memset(buf, 0, sizes[i]);
		if (!read_once(c, id++, sizes[i], off, 0, buf, &in_sink, &at))
			ok = 0;
		/* Large replies must land in the advertised buffer. */
		if (sizes[i] > 65536 && (!in_sink || at != buf ||
					 memcmp(buf, pat + off, sizes[i]))) {
			sink_ok = 0;
			diag("reply_buf %u: in_sink %d at %p buf %p", sizes[i],
			     in_sink, at, (void *)buf);
		}
		if (!read_once(c, id++, sizes[i], off, 1, buf, &in_sink, &at))
			ok = 0;
		if (sizes[i] > 65536 && (!in_sink || at != buf))
			sink_ok = 0;
	}
	rdma_conn_counters(c, after);
	tap(ok, "reads: 0 B .. 16 MiB from memory and from a file, with and "
	    "without reply_buf");
	tap(sink_ok, "reads: large replies are RDMA-written into reply_buf "
	    "(data_in_sink, data == reply_buf)");
	tap(after[3] == before[3],
	    "reads: client sent no rendezvous for requests without data");
	free(buf);
	orfa_conn_put(&c);
}

static uint8_t *sink_buf;
static atomic_int sink_calls;

static void *test_sink(void *arg, const struct orfa_hdr *h)
{
	(void)arg;
	atomic_fetch_add(&sink_calls, 1);
	return h->data_len <= (4u << 20) ? sink_buf : NULL;
}

static void test_sink_resolver(struct srv *s)
{
	struct orfa_conn *c = NULL;
	int in_sink = 0, ok;
	void *at = NULL;

	if (cl_connect(s, 0, 0, &c)) {
		tap(0, "sink: connect");
		return;
	}
	sink_buf = malloc(4u << 20);
	orfa_conn_set_sink(c, test_sink, NULL);
	ok = read_once(c, 9001, 1u << 20, 17, 0, NULL, &in_sink, &at);
	tap(ok && in_sink && at == sink_buf,
	    "sink: rendezvous data is RDMA-read into the sink");
	ok = read_once(c, 9002, 100, 5, 0, NULL, &in_sink, &at);
	tap(ok && in_sink && at == sink_buf,
	    "sink: inline data is copied into the sink");
	ok = read_once(c, 9003, 8u << 20, 5, 0, NULL, &in_sink, &at);
	tap(ok && !in_sink && at != sink_buf,
	    "sink: resolver returning NULL gets a transport buffer");
	tap(atomic_load(&sink_calls) == 3, "sink: resolver called once per "
	    "message with data (%d)", atomic_load(&sink_calls));
	orfa_conn_put(&c);
	free(sink_buf);
}

/* The client's resolver hands out one sink at a time and expects the next
 * message it handles to be the one it was asked for (as with TCP).  Many
 * rendezvous replies in flight, interleaved with small ones. */
static pthread_mutex_t claim_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t claimed_id;
static int claim_busy, claim_violations, claim_calls;

static void *claim_sink(void *arg, const struct orfa_hdr *h)
{
	void *buf = NULL;

	pthread_mutex_lock(&claim_lock);
	claim_calls++;
	if (claim_busy) {
		claim_violations++;
	} else {
		claim_busy = 1;
		claimed_id = h->req_id;
		buf = (uint8_t *)arg + (h->req_id % 4) * (1u << 20);
	}
	pthread_mutex_unlock(&claim_lock);
	return buf;
}

static void test_sink_order(struct srv *s)
{
	struct orfa_conn *c = NULL;
	uint8_t *bufs = malloc(4u << 20);
	uint8_t body[12];
	struct orfa_rxmsg m;
	unsigned n = 40, bad = 0;

	if (cl_connect(s, 0, 8, &c)) {
		tap(0, "sink order: connect");
		return;
	}
	orfa_conn_set_sink(c, claim_sink, bufs);
	for (unsigned i = 0; i < n; i++) {
		uint32_t size = i % 3 ? (1u << 20) - 8 * i : 64;

		put32(body, size);
		put32(body + 4, i * 8);
		put32(body + 8, i % 5 == 0);
		if (cl_send(c, T_READ, i, body, 12, NULL, 0, NULL, 0))
			bad++;
	}
	for (unsigned i = 0; i < n; i++) {
		uint32_t size = i % 3 ? (1u << 20) - 8 * i : 64;

		if (orfa_conn_recv(c, &m)) {
			bad++;
			break;
		}
		pthread_mutex_lock(&claim_lock);
		if (!claim_busy || claimed_id != m.hdr.req_id ||
		    !m.data_in_sink)
			bad++;
		claim_busy = 0;
		pthread_mutex_unlock(&claim_lock);
		if (m.hdr.req_id != i || m.hdr.data_len != size ||
		    memcmp(m.data, pat + i * 8, size))
			bad++;
		orfa_conn_recv_done(c, &m);
	}
	tap(bad == 0 && claim_violations == 0 && claim_calls == (int)n,
	    "sink order: resolver asked for each message only after the "
	    "previous one was returned (%u errors, %d overlapping asks, %d "
	    "asks)", bad, claim_violations, claim_calls);
	orfa_conn_put(&c);
	free(bufs);
}

/* Many messages in flight: a receiver thread checks replies in order
 * while the main thread sends without waiting. */
struct flood {
	struct orfa_conn *c;
	uint64_t first;
	unsigned count;
	size_t (*size_of)(uint64_t);
	int ok;
	unsigned got;
};

static size_t flood_size(uint64_t i)
{
	switch (i % 50) {
	case 7: return 100000;		/* rendezvous */
	case 13: return 60000;		/* inline, nearly full */
	default: return (size_t)(i % 300);
	}
}

static void *flood_rx(void *arg)
{
	struct flood *f = arg;
	struct orfa_rxmsg m;

	f->ok = 1;
	for (f->got = 0; f->got < f->count; f->got++) {
		uint64_t id = f->first + f->got;

		if (orfa_conn_recv(f->c, &m)) {
			f->ok = 0;
			diag("flood: recv failed after %u: %s", f->got,
			     orfa_conn_last_error(f->c));
			return NULL;
		}
		if (!check_echo(&m, id, f->size_of(id))) {
			if (f->ok)
				diag("flood: reply %u wrong (id %" PRIu64 ")",
				     f->got, m.hdr.req_id);
			f->ok = 0;
		}
		orfa_conn_recv_done(f->c, &m);
	}
	return NULL;
}

static void test_flood(struct srv *s, const char *mode, unsigned credits,
		       unsigned count, int late_receiver)
{
	struct flood f = { .first = 100000, .count = count,
			   .size_of = flood_size };
	unsigned long cnt[6];
	pthread_t th;
	int sent_ok = 1;
	double t0 = now_s();
	uint8_t body[8];

	if (cl_connect(s, 0, credits, &f.c)) {
		tap(0, "%s: connect", mode);
		return;
	}
	if (!late_receiver)
		pthread_create(&th, NULL, flood_rx, &f);
	for (unsigned i = 0; i < count; i++) {
		uint64_t id = f.first + i;

		put64(body, id);
		if (cl_send(f.c, T_ECHO, id, body, 8, echo_data(id),
			    flood_size(id), NULL, 0)) {
			sent_ok = 0;
			break;
		}
	}
	if (late_receiver)
		pthread_create(&th, NULL, flood_rx, &f);
	pthread_join(th, NULL);
	rdma_conn_counters(f.c, cnt);
	tap(sent_ok && f.ok && f.got == count,
	    "%s: %u messages in flight with %u credits, all replies correct "
	    "and in order", mode, count, credits);
	diag("%s: %.2f s; client sent %lu, received %lu, control %lu, "
	     "rendezvous %lu, copied out %lu", mode, now_s() - t0, cnt[0],
	     cnt[1], cnt[2], cnt[3], cnt[5]);
	orfa_conn_put(&f.c);
}

/* Several threads send on one blocking connection. */
struct mt_arg {
	struct orfa_conn *c;
	unsigned tid, n;
	int ok;
};

static void *mt_sender(void *arg)
{
	struct mt_arg *a = arg;
	uint8_t body[8];

	a->ok = 1;
	for (unsigned i = 0; i < a->n; i++) {
		uint64_t id = ((uint64_t)a->tid << 32) | i;

		put64(body, id);
		if (cl_send(a->c, T_PUT, id, body, 8, echo_data(i),
			    (i % 7) * 20000, NULL, 0))
			a->ok = 0;
	}
	return NULL;
}

static void test_threads(struct srv *s)
{
	struct orfa_conn *c = NULL;
	struct mt_arg a[4];
	pthread_t th[4];
	unsigned per = 300, seen[4] = { 0 };
	int ok = 1;
	struct orfa_rxmsg m;

	if (cl_connect(s, 0, 16, &c)) {
		tap(0, "threads: connect");
		return;
	}
	for (unsigned t = 0; t < 4; t++) {
		a[t] = (struct mt_arg){ .c = c, .tid = t, .n = per };
		pthread_create(&th[t], NULL, mt_sender, &a[t]);
	}
	for (unsigned i = 0; i < 4 * per; i++) {
		uint64_t id;
		unsigned t, k;

		if (orfa_conn_recv(c, &m)) {
			ok = 0;
			break;
		}
		id = m.hdr.req_id;
		t = (unsigned)(id >> 32);
		k = (unsigned)id;
		/* Each thread's messages arrive in its own order. */
		if (t >= 4 || k != seen[t] || m.hdr.body_len != 8 ||
		    get64(m.body) != csum(echo_data(k), (k % 7) * 20000))
			ok = 0;
		else
			seen[t]++;
		orfa_conn_recv_done(c, &m);
	}
	for (unsigned t = 0; t < 4; t++) {
		pthread_join(th[t], NULL);
		ok = ok && a[t].ok;
	}
	tap(ok, "threads: 4 senders on one connection, %u messages, checksums "
	    "and per-thread order correct", 4 * per);
	orfa_conn_put(&c);
}

/* Client in non-blocking mode: sends queue, a poll loop drives it. */
static void test_nonblock_client(struct srv *s)
{
	struct orfa_conn *c = NULL;
	unsigned count = 1000, got = 0;
	int ok = 1, queued_seen = 0;
	uint8_t body[8];
	double dl;

	if (cl_connect(s, ORFA_TP_NONBLOCK, 8, &c)) {
		tap(0, "nonblock client: connect");
		return;
	}
	for (unsigned i = 0; i < count; i++) {
		put64(body, i);
		if (cl_send(c, T_ECHO, i, body, 8, echo_data(i),
			    flood_size(i), NULL, 0))
			ok = 0;
		if (orfa_conn_queued_bytes(c))
			queued_seen = 1;
	}
	tap(ok && queued_seen, "nonblock client: 1000 sends accepted without "
	    "blocking, %s queued", queued_seen ? "some" : "none");
	dl = now_s() + 120;
	while (got < count && now_s() < dl) {
		struct pollfd p = { .fd = orfa_conn_fd(c), .events = POLLIN };
		struct orfa_rxmsg m;
		int rc;

		if (poll(&p, 1, 1000) < 0)
			break;
		while ((rc = orfa_conn_recv(c, &m)) == 0) {
			if (!check_echo(&m, got, flood_size(got)))
				ok = 0;
			orfa_conn_recv_done(c, &m);
			got++;
		}
		if (rc != -EAGAIN) {
			diag("nonblock client: %s", strerror(-rc));
			break;
		}
	}
	tap(ok && got == count && orfa_conn_queued_bytes(c) == 0,
	    "nonblock client: all %u replies through poll + recv (-EAGAIN "
	    "between)", got);
	orfa_conn_put(&c);
}

/* The server drops the connection while the client has sends pending
 * and a receiver blocked: errors, done() for everything, no hang. */
struct blocked_rx {
	struct orfa_conn *c;
	int rc;
};

static void *blocked_recv(void *arg)
{
	struct blocked_rx *b = arg;
	struct orfa_rxmsg m;

	b->rc = orfa_conn_recv(b->c, &m);
	if (b->rc == 0)
		orfa_conn_recv_done(b->c, &m);
	return NULL;
}

static void test_server_drop(struct srv *s)
{
	struct orfa_conn *c = NULL;
	struct blocked_rx b;
	pthread_t th;
	long d0;
	int rc, sends = 0, errs = 0;
	uint8_t *big = malloc(4u << 20);

	if (cl_connect(s, 0, 16, &c)) {
		tap(0, "server drop: connect");
		return;
	}
	memset(big, 0x5a, 4u << 20);
	d0 = atomic_load(&dones);
	b.c = c;
	pthread_create(&th, NULL, blocked_recv, &b);
	rc = cl_send(c, T_CLOSE, 1, NULL, 0, NULL, 0, NULL, 0);
	sends++;
	for (int i = 0; i < 40; i++) {
		rc = cl_send(c, T_PUT, 10 + (uint64_t)i, NULL, 0, big,
			     4u << 20, NULL, 0);
		sends++;
		if (rc)
			errs++;
	}
	pthread_join(th, NULL);
	tap(b.rc == -ECONNRESET, "server drop: blocked receiver gets "
	    "-ECONNRESET (%s)", strerror(-b.rc));
	rc = cl_send(c, T_PING, 99, NULL, 0, NULL, 0, NULL, 0);
	sends++;
	tap(rc == -ECONNRESET, "server drop: later send fails with "
	    "-ECONNRESET (%d)", rc);
	orfa_conn_put(&c);
	tap(atomic_load(&dones) - d0 == sends,
	    "server drop: done() called for all %d sends (%ld), %d failed",
	    sends, atomic_load(&dones) - d0, errs);
	free(big);
}

/* A peer process dies in the middle of a stream of large messages. */
static void test_peer_death(struct srv *s, const char *self)
{
	pid_t pid;
	int st = 0, before, ok;

	pthread_mutex_lock(&s->lock);
	before = s->closed;
	pthread_mutex_unlock(&s->lock);
	pid = fork();
	if (pid == 0) {
		execl(self, self, "--child-stream", s->host, s->port,
		      (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	tap(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "peer death: child streamed and exited abruptly (status %d)",
	    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	ok = srv_wait_closed(s, before + 1);
	pthread_mutex_lock(&s->lock);
	tap(ok && s->last_err == -ECONNRESET,
	    "peer death: server connection fails with -ECONNRESET, no hang "
	    "(%s)", strerror(-s->last_err));
	pthread_mutex_unlock(&s->lock);
}

/* --forked-server FILE: open the listener, fork, let the parent exit at
 * once and serve from the child, as a daemonizing orfad does.  The child
 * writes "HOST PORT PID" to FILE and serves for at most 60 s. */
static int forked_server(const char *file)
{
	struct srv s;
	FILE *f;
	pid_t pid;
	int rc = srv_open(&s, "rdma", ORFA_TP_NONBLOCK, 0, 0);

	if (rc) {
		fprintf(stderr, "forked server: listen: %s\n", strerror(-rc));
		return 1;
	}
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid > 0)
		_exit(0);
	setsid();
	if (pthread_create(&s.thr, NULL, srv_loop, &s))
		return 1;
	/* Written under another name and renamed, so the parent (which polls
	 * for the file) never reads it half-written. */
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	f = fopen(tmp, "w");
	if (!f)
		return 1;
	fprintf(f, "%s %s %d\n", s.host, s.port, (int)getpid());
	if (fclose(f) != 0 || rename(tmp, file) != 0)
		return 1;
	sleep(60);
	_exit(0);
}

static void test_forked_listener(const char *self)
{
	char file[] = "/tmp/rdma-fork.XXXXXX", port[16] = "";
	struct srv s;
	struct orfa_conn *c = NULL;
	int fd = mkstemp(file), st, pid = 0, ok = 0;
	pid_t p;
	FILE *f;

	memset(&s, 0, sizeof(s));
	s.tp = "rdma";
	close(fd);
	unlink(file);
	p = fork();
	if (p == 0) {
		execl(self, self, "--forked-server", file, (char *)NULL);
		_exit(127);
	}
	waitpid(p, &st, 0);
	for (int i = 0; i < 100 && !(f = fopen(file, "r")); i++)
		usleep(100000);
	if (f) {
		if (fscanf(f, "%63s %15s %d", s.host, port, &pid) != 3)
			pid = 0;
		fclose(f);
	}
	snprintf(s.port, sizeof(s.port), "%s", port);
	if (pid > 0 && cl_connect(&s, 0, 0, &c) == 0) {
		ok = echo_once(c, 1, 100) && echo_once(c, 2, 1u << 20);
		orfa_conn_put(&c);
	}
	tap(ok, "listener opened before fork(), served by the child after "
	    "the parent exited (daemonizing server)");
	if (pid > 0)
		kill(pid, SIGKILL);
	unlink(file);
}

/* The peer stops (SIGSTOP): its receives run out and nothing comes back,
 * so a blocking send waits for credits and gives up after
 * send_timeout_ms with -ETIMEDOUT, calling done; nothing hangs. */
static void test_send_timeout(const char *self)
{
	char file[] = "/tmp/rdma-stop.XXXXXX", port[16] = "";
	struct orfa_tp_opts o;
	struct orfa_conn *c = NULL;
	struct srv s;
	int fd = mkstemp(file), st, pid = 0, rc = 0, sent = 0;
	long d0;
	pid_t p;
	FILE *f = NULL;
	double t0;

	memset(&s, 0, sizeof(s));
	close(fd);
	unlink(file);
	p = fork();
	if (p == 0) {
		execl(self, self, "--forked-server", file, (char *)NULL);
		_exit(127);
	}
	waitpid(p, &st, 0);
	for (int i = 0; i < 100 && !(f = fopen(file, "r")); i++)
		usleep(100000);
	if (f) {
		if (fscanf(f, "%63s %15s %d", s.host, port, &pid) != 3)
			pid = 0;
		fclose(f);
	}
	orfa_tp_opts_default(&o);
	o.rdma_credits = 8;
	o.send_timeout_ms = 500;
	if (pid <= 0 || orfa_conn_connect("rdma", s.host, port, &o, &c)) {
		tap(0, "send timeout: helper server and connection");
		if (pid > 0)
			kill(pid, SIGKILL);
		return;
	}
	kill(pid, SIGSTOP);
	d0 = atomic_load(&dones);
	t0 = now_s();
	for (int i = 0; i < 200 && rc == 0; i++, sent++)
		rc = cl_send(c, T_PUT, (uint64_t)i, NULL, 0, pat, 100, NULL, 0);
	tap(rc == -ETIMEDOUT && sent > 1 && sent < 200,
	    "send timeout: blocking send to a stopped peer fails with "
	    "-ETIMEDOUT once credits run out (after %d sends, %.1f s)", sent,
	    now_s() - t0);
	tap(atomic_load(&dones) - d0 == sent,
	    "send timeout: done() called for every send (%ld of %d)",
	    atomic_load(&dones) - d0, sent);
	kill(pid, SIGKILL);
	kill(pid, SIGCONT);
	orfa_conn_put(&c);
	unlink(file);
}

static int child_stream(const char *host, const char *port)
{
	struct orfa_tp_opts o;
	struct orfa_conn *c = NULL;
	uint8_t *big = malloc(1u << 20);

	orfa_tp_opts_default(&o);
	o.rdma_credits = 8;
	if (orfa_conn_connect("rdma", host, port, &o, &c))
		return 2;
	memset(big, 0xa5, 1u << 20);
	for (int i = 0; i < 30; i++) {
		/* Rendezvous messages the server is still reading when we
		 * vanish. */
		if (cl_send(c, T_PUT, (uint64_t)i, NULL, 0, big, 1u << 20,
			    NULL, 0))
			return 3;
	}
	_exit(0);	/* no destroy, no disconnect: the kernel cleans up */
}

static void test_shutdown(struct srv *s)
{
	struct orfa_conn *c = NULL;
	struct blocked_rx b;
	pthread_t th;
	long d0;
	int rc;

	if (cl_connect(s, 0, 0, &c)) {
		tap(0, "shutdown: connect");
		return;
	}
	b.c = c;
	pthread_create(&th, NULL, blocked_recv, &b);
	usleep(100000);
	orfa_conn_shutdown(c);
	pthread_join(th, NULL);
	tap(b.rc == -ENOTCONN, "shutdown: wakes a blocked receiver with "
	    "-ENOTCONN (%d)", b.rc);
	d0 = atomic_load(&dones);
	rc = cl_send(c, T_PING, 1, NULL, 0, pat, 10, NULL, 0);
	tap(rc == -ENOTCONN && atomic_load(&dones) - d0 == 1,
	    "shutdown: later send fails with -ENOTCONN and calls done");
	orfa_conn_put(&c);
}

static void test_limits(void)
{
	struct srv s;
	struct orfa_conn *c = NULL;
	struct orfa_rxmsg m;
	int rc;

	if (srv_start(&s, "rdma", ORFA_TP_NONBLOCK, 0, 1000)) {
		tap(0, "limits: server");
		return;
	}
	if (cl_connect(&s, 0, 0, &c)) {
		tap(0, "limits: connect");
		srv_stop(&s);
		return;
	}
	rc = cl_send(c, T_PUT, 1, NULL, 0, pat, 500, NULL, 0);
	rc = rc ? rc : orfa_conn_recv(c, &m);
	if (rc == 0)
		orfa_conn_recv_done(c, &m);
	tap(rc == 0, "limits: data within max_data passes");
	rc = cl_send(c, T_PUT, 2, NULL, 0, pat, 2000, NULL, 0);
	rc = rc ? rc : orfa_conn_recv(c, &m);
	tap(rc == -ECONNRESET, "limits: data over the receiver's max_data "
	    "drops the connection (client sees %d)", rc);
	srv_wait_closed(&s, 1);
	pthread_mutex_lock(&s.lock);
	tap(s.last_err == -EMSGSIZE, "limits: receiver reports -EMSGSIZE (%d)",
	    s.last_err);
	pthread_mutex_unlock(&s.lock);
	orfa_conn_put(&c);
	srv_stop(&s);
}

static void test_refused(void)
{
	struct srv s;
	struct orfa_conn *c = NULL;
	char port[16];
	int rc;
	double t0;

	/* A port that was just free: nobody listens there any more. */
	if (srv_start(&s, "rdma", ORFA_TP_NONBLOCK, 0, 0)) {
		tap(0, "refused: server");
		return;
	}
	snprintf(port, sizeof(port), "%s", s.port);
	srv_stop(&s);
	snprintf(s.port, sizeof(s.port), "%s", port);
	t0 = now_s();
	rc = cl_connect(&s, 0, 0, &c);
	tap(rc < 0 && !c, "refused: connect to a closed port fails (%s, "
	    "%.1f s)", strerror(-rc), now_s() - t0);
	if (c)
		orfa_conn_put(&c);
}

static void test_cache(void)
{
	struct rdma_cache_stats st;

	rdma_cache_stats(&st);
	tap(st.rbuf_hits > 0 && st.pins > 0,
	    "regcache: bounce/landing buffers reused (hits %lu, misses %lu, "
	    "evictions %lu), caller memory pinned per transfer (%lu)",
	    st.rbuf_hits, st.rbuf_misses, st.rbuf_evictions, st.pins);
}

/* ---- isolation (issue 12) ---------------------------------------------------------- */

/*
 * The peer of a test connection keeps the rkeys it was given and tries
 * them again with RDMA READ/WRITE through rdma_test_remote_access, as a
 * hostile peer would on its own QP.  The server side here is accepted
 * directly (no server thread) so the test holds both ends.
 */
struct iso_pair {
	struct orfa_conn *c;		/* client end */
	struct orfa_conn *s;		/* accepted end */
};

static int iso_connect(struct srv *s, struct iso_pair *p)
{
	struct pollfd pfd = { .fd = orfa_listener_fd(s->l), .events = POLLIN };
	int rc;

	p->c = p->s = NULL;
	rc = cl_connect(s, 0, 0, &p->c);
	if (rc)
		return rc;
	if (poll(&pfd, 1, 20000) != 1)
		return -ETIMEDOUT;
	return orfa_listener_accept(s->l, &p->s);
}

static void iso_close(struct iso_pair *p)
{
	orfa_conn_put(&p->c);
	orfa_conn_put(&p->s);
}

/* Send a reply with head only (T_PUT) or with data (T_READ) from s. */
static int iso_reply(struct orfa_conn *s, uint16_t op, uint64_t id,
		     const void *data, uint32_t dlen)
{
	uint8_t head[ORFA_HDR_SIZE + 8];
	struct iovec iov = { .iov_base = (void *)data, .iov_len = dlen };
	struct orfa_txmsg tx = { .fd = -1 };

	tx.head = head;
	tx.head_len = mk_head(head, op, ORFA_F_REPLY, id, NULL, 0, dlen);
	if (dlen) {
		tx.iov = &iov;
		tx.iovcnt = 1;
	}
	return orfa_conn_send(s, &tx);
}

/* Wait (10 s) until c reports its connection failed. */
static int iso_dropped(struct orfa_conn *c)
{
	struct pollfd pfd = { .fd = orfa_conn_fd(c), .events = POLLIN };
	struct orfa_rxmsg m;
	int rc;

	if (poll(&pfd, 1, 10000) != 1)
		return 0;
	rc = orfa_conn_recv(c, &m);
	if (rc == 0)
		orfa_conn_recv_done(c, &m);
	return rc != 0 && rc != -EAGAIN;
}

static int all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

/* A rendezvous source (a transport bounce buffer: data from a file)
 * READ again with its rkey after the peer acknowledged it. */
static void iso_stale_read(struct srv *s, uint8_t *buf, size_t len)
{
	struct iso_pair p;
	struct orfa_txmsg tx = { .fd = s->file_fd, .fd_len = len };
	uint8_t head[ORFA_HDR_SIZE];
	struct orfa_rxmsg m;
	struct rdma_seg rdv, adv;
	int rc, ok;

	if (iso_connect(s, &p)) {
		tap(0, "isolation: connect");
		iso_close(&p);
		return;
	}
	tx.head = head;
	tx.head_len = mk_head(head, T_PUT, 0, 1, NULL, 0, (uint32_t)len);
	rc = orfa_conn_send(p.c, &tx);
	rc = rc ? rc : orfa_conn_recv(p.s, &m);
	ok = rc == 0 && m.hdr.data_len == len && !memcmp(m.data, pat, len);
	if (rc == 0)
		orfa_conn_recv_done(p.s, &m);
	rdma_test_peer_segs(p.s, &rdv, &adv);
	/* The reply carries the rendezvous ack: once the client has it,
	 * the source's rkey is gone. */
	rc = rc ? rc : iso_reply(p.s, T_PUT, 1, NULL, 0);
	rc = rc ? rc : orfa_conn_recv(p.c, &m);
	if (rc == 0)
		orfa_conn_recv_done(p.c, &m);
	tap(ok && rc == 0 && rdv.len == len, "isolation: %zu bytes sent by "
	    "rendezvous from a bounce buffer (rc %d)", len, rc);
	memset(buf, 0x5a, len);
	rc = rdma_test_remote_access(p.s, &rdv, buf, 0, 20000);
	tap(rc == -EACCES && all_bytes(buf, len, 0x5a), "isolation: RDMA READ "
	    "with the rkey of a completed rendezvous gets a remote access "
	    "error, no data (%s)", rc ? strerror(-rc) : "read succeeded");
	tap(iso_dropped(p.c), "isolation: and the connection is dropped");
	iso_close(&p);
}

/* Ask for len bytes into the client's reply buffer rb: the request
 * advertises rb; returns the advert as the server end saw it. */
static int iso_request(struct iso_pair *p, uint64_t id, uint8_t *rb,
		       uint32_t len, struct rdma_seg *adv)
{
	uint8_t body[12];
	struct orfa_rxmsg m;
	struct rdma_seg rdv;
	int rc;

	put32(body, len);
	put32(body + 4, 0);
	put32(body + 8, 0);
	rc = cl_send(p->c, T_READ, id, body, 12, NULL, 0, rb, len);
	rc = rc ? rc : orfa_conn_recv(p->s, &m);
	if (rc)
		return rc;
	orfa_conn_recv_done(p->s, &m);
	rdma_test_peer_segs(p->s, &rdv, adv);
	return adv->len == len ? 0 : -EPROTO;
}

/* A reply buffer WRITTEN again with its rkey after the reply came. */
static void iso_stale_write(struct srv *s, uint8_t *buf, uint8_t *rb,
			    uint32_t len)
{
	struct iso_pair p;
	struct orfa_rxmsg m;
	struct rdma_seg adv;
	int rc;

	if (iso_connect(s, &p)) {
		tap(0, "isolation: connect (2)");
		iso_close(&p);
		return;
	}
	rc = iso_request(&p, 2, rb, len, &adv);
	rc = rc ? rc : iso_reply(p.s, T_READ, 2, pat, len);
	rc = rc ? rc : orfa_conn_recv(p.c, &m);
	if (rc == 0) {
		rc = m.data_in_sink || m.data == rb ? 0 : -EPROTO;
		orfa_conn_recv_done(p.c, &m);
	}
	tap(rc == 0 && !memcmp(rb, pat, len), "isolation: %u byte reply "
	    "RDMA-written into the advertised buffer (rc %d)", len, rc);
	memset(rb, 0x5a, len);
	memset(buf, 0xc3, len);
	rc = rdma_test_remote_access(p.s, &adv, buf, 1, 20000);
	tap(rc == -EACCES && all_bytes(rb, len, 0x5a), "isolation: RDMA "
	    "WRITE with the rkey of an answered reply buffer gets a remote "
	    "access error, the buffer is untouched (%s)",
	    rc ? strerror(-rc) : "write succeeded");
	tap(iso_dropped(p.c), "isolation: and the connection is dropped (2)");
	iso_close(&p);
}

/* A live reply buffer of one connection, written through another. */
static void iso_cross(struct srv *s, uint8_t *buf, uint8_t *rb,
		      uint32_t len)
{
	struct iso_pair a = { 0 }, b = { 0 };
	struct orfa_rxmsg m;
	struct rdma_seg adv;
	int rc;

	if (iso_connect(s, &a) || iso_connect(s, &b)) {
		tap(0, "isolation: connect (3)");
		iso_close(&a);
		iso_close(&b);
		return;
	}
	memset(rb, 0x5a, len);
	rc = iso_request(&a, 3, rb, len, &adv);
	memset(buf, 0xc3, len);
	rc = rc ? rc : rdma_test_remote_access(b.s, &adv, buf, 1, 20000);
	tap(rc == -EACCES && all_bytes(rb, len, 0x5a), "isolation: another "
	    "connection's RDMA WRITE with a live reply buffer's rkey gets a "
	    "remote access error, the buffer is untouched (%s)",
	    rc ? strerror(-rc) : "write succeeded");
	tap(iso_dropped(b.c), "isolation: the offending connection is "
	    "dropped");
	rc = iso_reply(a.s, T_READ, 3, pat, len);
	rc = rc ? rc : orfa_conn_recv(a.c, &m);
	if (rc == 0)
		orfa_conn_recv_done(a.c, &m);
	tap(rc == 0 && !memcmp(rb, pat, len), "isolation: the owner's "
	    "transfer completes unharmed (rc %d)", rc);
	iso_close(&a);
	iso_close(&b);
}

static void test_isolation(void)
{
	const uint32_t len = 1u << 20;
	uint8_t *buf = malloc(len), *rb = malloc(len);
	struct srv s;

	if (!buf || !rb || srv_open(&s, "rdma", 0, 0, 0)) {
		tap(0, "isolation: listener");
	} else {
		iso_stale_read(&s, buf, len);
		iso_stale_write(&s, buf, rb, len);
		iso_cross(&s, buf, rb, len);
		orfa_listener_close(s.l);
		close(s.stop[0]);
		close(s.stop[1]);
		close(s.file_fd);
	}
	free(buf);
	free(rb);
}

/* ---- bench ------------------------------------------------------------------------------ */

/* n requests of 1 MiB data each, win in flight; MiB/s.  With fd >= 0 the
 * data comes from the file (over RDMA: a bounce buffer, read by the
 * peer by rendezvous), else from memory (registered per transfer). */
static double bench_put(struct orfa_conn *c, int fd, unsigned n,
			unsigned win)
{
	uint8_t head[ORFA_HDR_SIZE];
	struct orfa_txmsg tx = { .fd = fd, .fd_len = 1u << 20 };
	struct orfa_rxmsg m;
	unsigned sent, got;
	double t0 = now_s();

	for (sent = got = 0; got < n;) {
		if (sent < n && sent - got < win) {
			if (fd >= 0) {
				tx.head = head;
				tx.head_len = mk_head(head, T_PUT, 0, sent,
						      NULL, 0, 1u << 20);
				if (orfa_conn_send(c, &tx))
					return 0;
			} else if (cl_send(c, T_PUT, sent, NULL, 0, pat,
					   1u << 20, NULL, 0)) {
				return 0;
			}
			sent++;
			continue;
		}
		if (orfa_conn_recv(c, &m))
			return 0;
		orfa_conn_recv_done(c, &m);
		got++;
	}
	return n / (now_s() - t0);
}

/* What a transfer's own registration for remote access costs (us per
 * ibv_reg_mr + ibv_dereg_mr of size bytes), and a connection's set-up
 * (ms per connect + accept + close, its protection domain included). */
static void bench_setup_costs(struct srv *s, struct orfa_conn *c)
{
	const unsigned iters = 200, nconn = 10;
	size_t sizes[2] = { 64u << 10, 1u << 20 };
	uint8_t *buf = malloc(1u << 20);
	struct orfa_conn *x;
	double t0;

	if (!buf)
		return;
	memset(buf, 1, 1u << 20);
	for (int k = 0; k < 2; k++) {
		t0 = now_s();
		for (unsigned i = 0; i < iters; i++)
			rdma_mr_unpin(rdma_mr_pin(BENCH_MEM(c), buf, sizes[k],
						  IBV_ACCESS_REMOTE_READ));
		diag("  register+deregister %4zu KiB: %8.1f us", sizes[k] >> 10,
		     (now_s() - t0) / iters * 1e6);
	}
	free(buf);
	t0 = now_s();
	for (unsigned i = 0; i < nconn; i++) {
		x = NULL;
		if (cl_connect(s, 0, 0, &x))
			return;
		orfa_conn_put(&x);
	}
	diag("  connection set-up (connect, accept, close): %.1f ms",
	     (now_s() - t0) / nconn * 1e3);
}

static void bench_one(const char *tp, double res[4])
{
	struct srv s;
	struct orfa_conn *c = NULL;
	struct orfa_rxmsg m;
	const unsigned pings = 3000, n = 300, win = 8;
	uint8_t *bufs[8];
	double t0;
	unsigned sent, got;

	memset(res, 0, 4 * sizeof(double));
	if (srv_start(&s, tp, ORFA_TP_NONBLOCK, 0, 0) ||
	    cl_connect(&s, 0, 0, &c)) {
		diag("bench %s: cannot start", tp);
		return;
	}
	for (unsigned i = 0; i < 100; i++)	/* warm up */
		if (cl_send(c, T_PING, i, NULL, 0, NULL, 0, NULL, 0) == 0 &&
		    orfa_conn_recv(c, &m) == 0)
			orfa_conn_recv_done(c, &m);
	t0 = now_s();
	for (unsigned i = 0; i < pings; i++) {
		if (cl_send(c, T_PING, i, NULL, 0, NULL, 0, NULL, 0) ||
		    orfa_conn_recv(c, &m))
			goto out;
		orfa_conn_recv_done(c, &m);
	}
	res[0] = (now_s() - t0) / pings * 1e6;
	if (strcmp(tp, "rdma") == 0)
		bench_setup_costs(&s, c);

	/* 1 MiB requests carrying data (client -> server), from memory
	 * and from a file. */
	res[1] = bench_put(c, -1, n, win);
	res[3] = bench_put(c, s.file_fd, n, win);
	if (!res[1] || !res[3])
		goto out;

	/* 1 MiB replies (server -> client) into reply buffers. */
	for (unsigned i = 0; i < win; i++)
		bufs[i] = malloc(1u << 20);
	t0 = now_s();
	for (sent = got = 0; got < n;) {
		if (sent < n && sent - got < win) {
			uint8_t body[12];

			put32(body, 1u << 20);
			put32(body + 4, 0);
			put32(body + 8, 0);
			if (cl_send(c, T_READ, sent, body, 12, NULL, 0,
				    bufs[sent % win], 1u << 20))
				goto out;
			sent++;
			continue;
		}
		if (orfa_conn_recv(c, &m))
			goto out;
		if (m.hdr.data_len != (1u << 20))
			goto out;
		if (!m.data_in_sink)
			memcpy(bufs[m.hdr.req_id % win], m.data, 1u << 20);
		orfa_conn_recv_done(c, &m);
		got++;
	}
	res[2] = n / (now_s() - t0);
	for (unsigned i = 0; i < win; i++)
		free(bufs[i]);
out:
	orfa_conn_put(&c);
	srv_stop(&s);
}

static int bench(void)
{
	double r[4], t[4];

	bench_one("rdma", r);
	bench_one("tcp", t);
	tap(r[0] > 0 && t[0] > 0 && r[2] > 0 && t[2] > 0,
	    "bench: both transports ran");
	diag("bench (TCG VM, Soft-RoCE; compare ratios only):");
	diag("  small round trip   rdma %8.1f us   tcp %8.1f us   tcp/rdma %.2f",
	     r[0], t[0], r[0] > 0 ? t[0] / r[0] : 0);
	diag("  1 MiB requests     rdma %8.1f MiB/s tcp %8.1f MiB/s rdma/tcp %.2f",
	     r[1], t[1], t[1] > 0 ? r[1] / t[1] : 0);
	diag("  1 MiB replies      rdma %8.1f MiB/s tcp %8.1f MiB/s rdma/tcp %.2f",
	     r[2], t[2], t[2] > 0 ? r[2] / t[2] : 0);
	diag("  1 MiB file data    rdma %8.1f MiB/s tcp %8.1f MiB/s rdma/tcp %.2f",
	     r[3], t[3], t[3] > 0 ? r[3] / t[3] : 0);
	printf("1..%d\n", tap_n);
	return tap_fail ? 1 : 0;
}

/* ---- main ------------------------------------------------------------------------------- */

/* ORFA_RDMA_TESTS=name,name runs only those groups (debugging). */
static int want(const char *name)
{
	const char *sel = getenv("ORFA_RDMA_TESTS");
	size_t n = strlen(name);

	if (!sel || !*sel)
		return 1;
	for (const char *p = sel; (p = strstr(p, name)); p += n)
		if ((p == sel || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return 1;
	return 0;
}

static int have_rdma_addr(void)
{
	struct orfa_listener *l = NULL;
	struct orfa_tp_opts o;
	int rc;

	orfa_tp_opts_default(&o);
	rc = orfa_listener_open("rdma", test_host, "0", &o, &l, NULL);
	if (rc == 0)
		orfa_listener_close(l);
	return rc == 0;
}

int main(int argc, char **argv)
{
	struct srv s;
	const char *env = getenv("ORFA_RDMA_TEST_ADDR");

	signal(SIGPIPE, SIG_IGN);
	if (env && *env)
		test_host = env;
	orfa_log_set_level(getenv("ORFA_TEST_DEBUG") ? ORFA_LOG_DEBUG :
			   ORFA_LOG_ERR);
	if (argc == 4 && strcmp(argv[1], "--child-stream") == 0)
		return child_stream(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "--forked-server") == 0) {
		pat_init();
		return forked_server(argv[2]);
	}
	orfa_log_set_level(getenv("ORFA_TEST_DEBUG") ? ORFA_LOG_DEBUG :
			   ORFA_LOG_ERR);
	if (!orfa_transport_find("rdma")) {
		printf("1..0 # SKIP built without RDMA support\n");
		return 77;
	}
	if (!have_rdma_addr()) {
		printf("1..0 # SKIP no RDMA device with %s here (run under "
		       "scripts/rdma-vm)\n", test_host);
		return 77;
	}
	signal(SIGALRM, on_alarm);
	alarm(600);
	pat_init();
	if (argc == 2 && strcmp(argv[1], "--bench") == 0) {
		int rc = bench();

		unlink(pat_file);
		return rc;
	}

	/* Non-blocking server, blocking clients. */
	if (srv_start(&s, "rdma", ORFA_TP_NONBLOCK, 0, 0)) {
		printf("Bail out! cannot start the rdma server\n");
		return 1;
	}
	{
		char addr[128];

		tap(orfa_listener_addr(s.l, addr, sizeof(addr)) == 0 &&
		    strcmp(s.port, "0") != 0 && strcmp(s.host, test_host) == 0,
		    "listener_addr gives the bound address and real port (%s)",
		    addr);
	}
	if (want("basic")) {
		test_basic(&s, "nonblocking server");
		test_iovecs(&s);
	}
	if (want("reads"))
		test_reads(&s);
	if (want("sink")) {
		test_sink_resolver(&s);
		test_sink_order(&s);
	}
	if (want("flood")) {
		test_flood(&s, "flood", 16, 5000, 0);
		test_flood(&s, "flood, receiver starts late", 16, 2000, 1);
	}
	if (want("threads"))
		test_threads(&s);
	if (want("nonblock"))
		test_nonblock_client(&s);
	if (want("drop"))
		test_server_drop(&s);
	if (want("death"))
		test_peer_death(&s, "/proc/self/exe");
	if (want("shutdown"))
		test_shutdown(&s);
	srv_stop(&s);

	/* Blocking server (a thread per connection), small credits. */
	if (want("blocking")) {
		if (srv_start(&s, "rdma", 0, 8, 0) == 0) {
			test_basic(&s, "blocking server");
			test_flood(&s, "flood, blocking server", 4, 1500, 0);
			srv_stop(&s);
		} else {
			tap(0, "blocking server: start");
		}
	}
	/* A server that stops reading while replies are queued and waits
	 * for writability, as orfad's back-pressure does. */
	if (want("backpressure")) {
		if (srv_start(&s, "rdma", ORFA_TP_NONBLOCK, 4, 0) == 0) {
			s.pause_on_queue = 1;
			test_flood(&s, "back-pressure server", 4, 3000, 0);
			test_flood(&s, "back-pressure server, late receiver",
				   4, 1000, 1);
			srv_stop(&s);	/* joins the loop: s.paused is stable */
			tap(s.paused > 0, "back-pressure server: reading was "
			    "paused %d times and resumed on writability",
			    s.paused);
		} else {
			tap(0, "back-pressure server: start");
		}
	}
	if (want("fork"))
		test_forked_listener("/proc/self/exe");
	if (want("timeout"))
		test_send_timeout("/proc/self/exe");
	if (want("limits"))
		test_limits();
	if (want("refused"))
		test_refused();
	if (want("cache"))
		test_cache();
	if (want("isolation"))
		test_isolation();
	unlink(pat_file);
	printf("1..%d\n", tap_n);
	return tap_fail ? 1 : 0;
}
