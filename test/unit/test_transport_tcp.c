/*
 * test_transport_tcp.c - unit tests of the TCP transport (transport_tcp.c)
 * and of the transport-neutral helpers (transport.c) over real loopback
 * sockets: framing of all data sizes both ways, concurrent senders, file
 * data (sendfile, zero padding of a shrunk file), non-blocking queueing,
 * the sink resolver, two-phase receive (deferred data into a file by
 * splice, into memory, fallbacks), refusal of oversized or truncated
 * frames, shutdown,
 * connect errors, address parsing and IPv6.
 *
 * Payloads are patterned by (seed, offset) so a lost, duplicated or
 * shifted byte is caught.  Helper threads never assert: they record what
 * they saw and the test thread checks it.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "codec.h"
#include "log.h"
#include "transport.h"

#define MAX_TEST_BODY	1024u
#define FILE_SEED	0xf11e5eedull

/* ---- patterns ---------------------------------------------------------- */

static inline uint8_t pat(uint64_t seed, size_t i)
{
	uint64_t x = (seed << 32) ^ (seed >> 32) ^ (uint64_t)i;

	x *= 0x9e3779b97f4a7c15ull;
	return (uint8_t)(x >> 56);
}

static void fill(uint8_t *p, size_t n, uint64_t seed, size_t off)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat(seed, off + i);
}

/* 1 when p[0..n) is the pattern of seed starting at off. */
static int matches(const uint8_t *p, size_t n, uint64_t seed, size_t off)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pat(seed, off + i))
			return 0;
	return 1;
}

static uint64_t body_seed(uint64_t req_id)
{
	return req_id ^ 0xb0d1b0d1ull;
}

/* ---- messages ---------------------------------------------------------- */

static void make_head(uint8_t *head, uint64_t req_id, uint32_t body_len,
		      uint32_t data_len)
{
	orfa_put_le32(head, body_len);
	orfa_put_le32(head + 4, data_len);
	orfa_put_le16(head + 8, ORFA_OP_PING);
	orfa_put_le16(head + 10, 0);
	orfa_put_le32(head + 12, 0);
	orfa_put_le64(head + 16, req_id);
	fill(head + ORFA_HDR_SIZE, body_len, body_seed(req_id), 0);
}

static void count_done(void *arg)
{
	__atomic_fetch_add((int *)arg, 1, __ATOMIC_SEQ_CST);
}

/* Send req_id with a patterned body and data from memory. */
static int send_mem(struct orfa_conn *c, uint64_t req_id, uint32_t body_len,
		    const void *data, size_t len, int *done_ctr)
{
	uint8_t head[ORFA_HDR_SIZE + MAX_TEST_BODY];
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct orfa_txmsg m = {
		.head = head, .head_len = ORFA_HDR_SIZE + body_len,
		.iov = len ? &iov : NULL, .iovcnt = len ? 1 : 0, .fd = -1,
		.done = done_ctr ? count_done : NULL, .done_arg = done_ctr,
	};

	make_head(head, req_id, body_len, (uint32_t)len);
	return orfa_conn_send(c, &m);
}

/* Send req_id with data from fd [off, off+len). */
static int send_file(struct orfa_conn *c, uint64_t req_id, uint32_t body_len,
		     int fd, off_t off, size_t len, int *done_ctr)
{
	uint8_t head[ORFA_HDR_SIZE + MAX_TEST_BODY];
	struct orfa_txmsg m = {
		.head = head, .head_len = ORFA_HDR_SIZE + body_len,
		.fd = fd, .fd_off = off, .fd_len = len,
		.done = done_ctr ? count_done : NULL, .done_arg = done_ctr,
	};

	make_head(head, req_id, body_len, (uint32_t)len);
	return orfa_conn_send(c, &m);
}

/* What a receiver saw of one message; filled by recv_check. */
struct seen {
	int rc;
	uint64_t req_id;
	uint32_t body_len, data_len;
	int body_ok, data_ok;
};

/* Receive one message and compare body and data with the patterns:
 * data from data_seed at offset data_off (data_seed 0: body_seed). */
static void recv_check(struct orfa_conn *c, uint64_t data_seed,
		       size_t data_off, struct seen *s)
{
	struct orfa_rxmsg m;

	memset(s, 0, sizeof(*s));
	s->rc = orfa_conn_recv(c, &m);
	if (s->rc)
		return;
	s->req_id = m.hdr.req_id;
	s->body_len = m.hdr.body_len;
	s->data_len = m.hdr.data_len;
	s->body_ok = m.head_len == ORFA_HDR_SIZE + m.hdr.body_len &&
		     m.body == m.head + ORFA_HDR_SIZE &&
		     orfa_get_le64(m.head + 16) == m.hdr.req_id &&
		     matches(m.body, m.hdr.body_len, body_seed(m.hdr.req_id), 0);
	if (m.hdr.data_len == 0)
		s->data_ok = m.data == NULL;
	else
		s->data_ok = m.data != NULL &&
			     matches(m.data, m.hdr.data_len,
				     data_seed ? data_seed : m.hdr.req_id,
				     data_off);
	orfa_conn_recv_done(c, &m);
}

#define ck_seen(s, id, blen, dlen) do {					\
	ck_assert_int_eq((s)->rc, 0);					\
	ck_assert_uint_eq((s)->req_id, (id));				\
	ck_assert_uint_eq((s)->body_len, (blen));			\
	ck_assert_uint_eq((s)->data_len, (dlen));			\
	ck_assert_msg((s)->body_ok, "body of %llu corrupt",		\
		      (unsigned long long)(id));			\
	ck_assert_msg((s)->data_ok, "data of %llu corrupt",		\
		      (unsigned long long)(id));			\
} while (0)

/* ---- connections ------------------------------------------------------- */

struct pair {
	struct orfa_listener *l;
	struct orfa_conn *cli, *srv;
	char port[16];
};

static void listener_port(struct orfa_listener *l, char *port, size_t size)
{
	char addr[80];
	char *colon;

	ck_assert_int_eq(orfa_listener_addr(l, addr, sizeof(addr)), 0);
	colon = strrchr(addr, ':');
	ck_assert_ptr_nonnull(colon);
	snprintf(port, size, "%s", colon + 1);
}

static int accept_wait(struct orfa_listener *l, struct orfa_conn **out)
{
	struct pollfd pfd = { .fd = orfa_listener_fd(l), .events = POLLIN };
	int rc = -EAGAIN;

	for (int i = 0; i < 100 && rc == -EAGAIN; i++) {
		if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			return -errno;
		rc = orfa_listener_accept(l, out);
	}
	return rc;
}

static void pair_open_host(struct pair *p, const char *host, unsigned cflags,
			   unsigned sflags)
{
	struct orfa_tp_opts o;

	memset(p, 0, sizeof(*p));
	orfa_tp_opts_default(&o);
	o.flags = sflags;
	ck_assert_int_eq(orfa_listener_open("tcp", host, "0", &o, &p->l,
					    NULL), 0);
	listener_port(p->l, p->port, sizeof(p->port));
	o.flags = cflags;
	ck_assert_int_eq(orfa_conn_connect("tcp", host, p->port, &o, &p->cli),
			 0);
	ck_assert_int_eq(accept_wait(p->l, &p->srv), 0);
}

static void pair_open(struct pair *p, unsigned cflags, unsigned sflags)
{
	pair_open_host(p, "127.0.0.1", cflags, sflags);
}

static void pair_close(struct pair *p)
{
	orfa_conn_put(&p->cli);
	orfa_conn_put(&p->srv);
	orfa_listener_close(p->l);
	p->l = NULL;
}

/* A plain blocking socket connected to port on 127.0.0.1. */
static int raw_connect(const char *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons((uint16_t)atoi(port)) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static void write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	while (n > 0) {
		ssize_t r = write(fd, p, n);

		ck_assert_int_gt(r, 0);
		p += r;
		n -= (size_t)r;
	}
}

/* A raw client to a blocking server conn: p->srv is the transport end. */
static int raw_pair(struct pair *p, unsigned sflags)
{
	struct orfa_tp_opts o;
	int fd;

	memset(p, 0, sizeof(*p));
	orfa_tp_opts_default(&o);
	o.flags = sflags;
	ck_assert_int_eq(orfa_listener_open("tcp", "127.0.0.1", "0", &o, &p->l,
					    NULL), 0);
	listener_port(p->l, p->port, sizeof(p->port));
	fd = raw_connect(p->port);
	ck_assert_int_eq(accept_wait(p->l, &p->srv), 0);
	return fd;
}

static int temp_file(size_t size, uint64_t seed)
{
	char path[] = "/tmp/orfa-tcp-test-XXXXXX";
	int fd = mkstemp(path);
	uint8_t *buf = malloc(size ? size : 1);

	ck_assert_int_ge(fd, 0);
	unlink(path);
	fill(buf, size, seed, 0);
	write_all(fd, buf, size);
	free(buf);
	return fd;
}

static void thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	ck_assert_int_eq(pthread_create(t, NULL, fn, arg), 0);
}

/* ---- sizes, both directions ------------------------------------------- */

static const size_t sizes[] = { 0, 1, 4096, 65536, 1u << 20, 16u << 20 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

struct size_job {
	struct orfa_conn *c;
	uint64_t base;
	uint8_t *data[NSIZES];
	int rc[NSIZES];
};

static void *size_sender(void *arg)
{
	struct size_job *j = arg;

	for (size_t i = 0; i < NSIZES; i++)
		j->rc[i] = send_mem(j->c, j->base + i, (uint32_t)(i * 13),
				    j->data[i], sizes[i], NULL);
	return NULL;
}

static void sizes_one_way(struct orfa_conn *from, struct orfa_conn *to,
			  uint64_t base)
{
	struct size_job j = { .c = from, .base = base };
	struct seen s;
	pthread_t t;

	for (size_t i = 0; i < NSIZES; i++) {
		j.data[i] = malloc(sizes[i] ? sizes[i] : 1);
		fill(j.data[i], sizes[i], base + i, 0);
	}
	thread_start(&t, size_sender, &j);
	for (size_t i = 0; i < NSIZES; i++) {
		recv_check(to, 0, 0, &s);
		ck_seen(&s, base + i, i * 13, sizes[i]);
	}
	pthread_join(t, NULL);
	for (size_t i = 0; i < NSIZES; i++) {
		ck_assert_int_eq(j.rc[i], 0);
		free(j.data[i]);
	}
}

START_TEST(test_sizes_both_directions)
{
	struct pair p;

	pair_open(&p, 0, 0);
	sizes_one_way(p.cli, p.srv, 100);
	sizes_one_way(p.srv, p.cli, 200);
	pair_close(&p);
}
END_TEST

/* ---- many senders ------------------------------------------------------ */

#define NSENDERS	4
#define PER_SENDER	300

struct mt_job {
	struct orfa_conn *c;
	unsigned tid;
	int failures;
};

static size_t mt_len(unsigned seq)
{
	return seq % 5 == 0 ? 0 : (seq * 7919u) % 70000u;
}

static void *mt_sender(void *arg)
{
	struct mt_job *j = arg;
	uint8_t *buf = malloc(70000);

	for (unsigned seq = 0; seq < PER_SENDER; seq++) {
		uint64_t id = ((uint64_t)j->tid << 32) | seq;
		size_t len = mt_len(seq);

		fill(buf, len, id, 0);
		if (send_mem(j->c, id, seq % 97, buf, len, NULL) != 0)
			j->failures++;
	}
	free(buf);
	return NULL;
}

START_TEST(test_concurrent_senders_keep_order)
{
	struct mt_job jobs[NSENDERS];
	pthread_t t[NSENDERS];
	unsigned next[NSENDERS] = { 0 };
	struct pair p;
	struct seen s;

	pair_open(&p, 0, 0);
	for (unsigned i = 0; i < NSENDERS; i++) {
		jobs[i] = (struct mt_job){ .c = p.cli, .tid = i };
		thread_start(&t[i], mt_sender, &jobs[i]);
	}
	for (unsigned n = 0; n < NSENDERS * PER_SENDER; n++) {
		unsigned tid, seq;

		recv_check(p.srv, 0, 0, &s);
		ck_assert_int_eq(s.rc, 0);
		tid = (unsigned)(s.req_id >> 32);
		seq = (unsigned)s.req_id;
		ck_assert_uint_lt(tid, NSENDERS);
		ck_assert_uint_eq(seq, next[tid]);
		ck_seen(&s, s.req_id, seq % 97, mt_len(seq));
		next[tid]++;
	}
	for (unsigned i = 0; i < NSENDERS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(jobs[i].failures, 0);
		ck_assert_uint_eq(next[i], PER_SENDER);
	}
	pair_close(&p);
}
END_TEST

/* ---- file data --------------------------------------------------------- */

struct file_job {
	struct orfa_conn *c;
	int fd;
	off_t off;
	size_t len;
	int rc, done;
};

static void *file_sender(void *arg)
{
	struct file_job *j = arg;

	j->rc = send_file(j->c, 7, 40, j->fd, j->off, j->len, &j->done);
	return NULL;
}

START_TEST(test_file_data_sendfile)
{
	const size_t fsize = (1u << 20) + 4000;
	struct file_job j;
	struct pair p;
	struct seen s;
	pthread_t t;

	pair_open(&p, 0, 0);
	j = (struct file_job){ .c = p.srv, .fd = temp_file(fsize, FILE_SEED),
			       .off = 1234, .len = 1u << 20 };
	thread_start(&t, file_sender, &j);
	recv_check(p.cli, FILE_SEED, 1234, &s);
	pthread_join(t, NULL);
	ck_assert_int_eq(j.rc, 0);
	ck_assert_int_eq(j.done, 1);
	ck_seen(&s, 7, 40, 1u << 20);
	close(j.fd);
	pair_close(&p);
}
END_TEST

START_TEST(test_file_shrunk_is_zero_padded)
{
	const size_t have = 1000, promised = 300000;
	int fd = temp_file(have, FILE_SEED);
	struct orfa_rxmsg m;
	struct file_job j;
	struct pair p;
	struct seen s;
	pthread_t t;
	size_t i;

	pair_open(&p, 0, 0);
	j = (struct file_job){ .c = p.srv, .fd = fd, .off = 0,
			       .len = promised };
	thread_start(&t, file_sender, &j);
	ck_assert_int_eq(orfa_conn_recv(p.cli, &m), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(j.rc, 0);
	ck_assert_int_eq(j.done, 1);
	ck_assert_uint_eq(m.hdr.data_len, promised);
	ck_assert(matches(m.data, have, FILE_SEED, 0));
	for (i = have; i < promised; i++)
		if (((uint8_t *)m.data)[i] != 0)
			break;
	ck_assert_uint_eq(i, promised);
	orfa_conn_recv_done(p.cli, &m);

	/* The framing survived: the next message is intact. */
	uint8_t small[100];

	fill(small, sizeof(small), 8, 0);
	ck_assert_int_eq(send_mem(p.srv, 8, 16, small, sizeof(small), NULL), 0);
	recv_check(p.cli, 0, 0, &s);
	ck_seen(&s, 8, 16, sizeof(small));
	close(fd);
	pair_close(&p);
}
END_TEST

START_TEST(test_file_without_sendfile_support)
{
	/* seq_file /proc files refuse sendfile (EINVAL) on current kernels
	 * but pread fine: the transport copies through memory instead.  The
	 * length promised is more than the file holds, so the copy path
	 * also meets EOF and pads. */
	static uint8_t want[16384];
	size_t have = 0, promised;
	struct orfa_rxmsg m;
	struct file_job j;
	struct pair p;
	pthread_t t;
	ssize_t r;
	int fd = open("/proc/self/limits", O_RDONLY);

	ck_assert_int_ge(fd, 0);
	while ((r = pread(fd, want + have, sizeof(want) - have,
			  (off_t)have)) > 0)
		have += (size_t)r;
	ck_assert_uint_gt(have, 0);
	promised = have + 70000;
	pair_open(&p, 0, 0);
	j = (struct file_job){ .c = p.srv, .fd = fd, .len = promised };
	thread_start(&t, file_sender, &j);
	ck_assert_int_eq(orfa_conn_recv(p.cli, &m), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(j.rc, 0);
	ck_assert_int_eq(j.done, 1);
	ck_assert_uint_eq(m.hdr.data_len, promised);
	ck_assert_int_eq(memcmp(m.data, want, have), 0);
	for (size_t i = have; i < promised; i++)
		ck_assert_uint_eq(((uint8_t *)m.data)[i], 0);
	orfa_conn_recv_done(p.cli, &m);
	close(fd);
	pair_close(&p);
}
END_TEST

/* ---- lending and gathering --------------------------------------------- */

#define LENT_MSGS	100

static size_t lent_len(int i)
{
	return i % 10 == 9 ? 300000 + (size_t)i : (size_t)i * 37;
}

struct return_job {
	struct orfa_conn *c;
	struct orfa_rxmsg *m;
	int n;
};

static void *return_all(void *arg)
{
	struct return_job *j = arg;

	for (int i = 0; i < j->n; i++)
		orfa_conn_recv_done(j->c, &j->m[i]);
	return NULL;
}

static void *lent_sender(void *arg)
{
	struct mt_job *j = arg;
	uint8_t *buf = malloc(300000 + LENT_MSGS);

	for (int round = 0; round < 2; round++)
		for (int i = 0; i < LENT_MSGS; i++) {
			fill(buf, lent_len(i), (uint64_t)i, 0);
			if (send_mem(j->c, (uint64_t)i, (uint32_t)i, buf,
				     lent_len(i), NULL) != 0)
				j->failures++;
		}
	free(buf);
	return NULL;
}

START_TEST(test_many_messages_on_loan)
{
	static struct orfa_rxmsg m[LENT_MSGS];
	struct mt_job sj = { 0 };
	struct return_job rj;
	struct pair p;
	pthread_t t, r;
	struct seen s;

	pair_open(&p, 0, 0);
	sj.c = p.cli;
	thread_start(&t, lent_sender, &sj);
	/* Keep every message of the first round: none may be overwritten
	 * by a later one. */
	for (int i = 0; i < LENT_MSGS; i++)
		ck_assert_int_eq(orfa_conn_recv(p.srv, &m[i]), 0);
	for (int i = 0; i < LENT_MSGS; i++) {
		ck_assert_uint_eq(m[i].hdr.req_id, (uint64_t)i);
		ck_assert(matches(m[i].body, (size_t)i, body_seed((uint64_t)i),
				  0));
		ck_assert(lent_len(i) == 0 ||
			  matches(m[i].data, lent_len(i), (uint64_t)i, 0));
	}
	/* Give them back from another thread, then reuse the pool. */
	rj = (struct return_job){ .c = p.srv, .m = m, .n = LENT_MSGS };
	thread_start(&r, return_all, &rj);
	pthread_join(r, NULL);
	for (int i = 0; i < LENT_MSGS; i++) {
		recv_check(p.srv, 0, 0, &s);
		ck_seen(&s, (uint64_t)i, (uint32_t)i, lent_len(i));
	}
	pthread_join(t, NULL);
	ck_assert_int_eq(sj.failures, 0);
	pair_close(&p);
}
END_TEST

START_TEST(test_many_iovecs_gathered)
{
	enum { NIOV = 200 };
	struct iovec iov[NIOV];
	uint8_t head[ORFA_HDR_SIZE + 8], *data;
	struct orfa_txmsg m = { .head = head, .head_len = sizeof(head),
				.iov = iov, .iovcnt = NIOV, .fd = -1 };
	size_t total = 0, off = 0;
	struct pair p;
	struct seen s;

	for (int i = 0; i < NIOV; i++)
		total += (size_t)(i % 7) * 100;	/* some are empty */
	data = malloc(total);
	fill(data, total, 77, 0);
	for (int i = 0; i < NIOV; i++) {
		iov[i].iov_base = data + off;
		iov[i].iov_len = (size_t)(i % 7) * 100;
		off += iov[i].iov_len;
	}
	pair_open(&p, 0, 0);
	make_head(head, 77, 8, (uint32_t)total);
	ck_assert_int_eq(orfa_conn_send(p.cli, &m), 0);
	recv_check(p.srv, 0, 0, &s);
	ck_seen(&s, 77, 8, total);
	pair_close(&p);
	free(data);
}
END_TEST

START_TEST(test_peer_names)
{
	struct pair p;
	char want[32];

	pair_open(&p, 0, 0);
	snprintf(want, sizeof(want), "127.0.0.1:%s", p.port);
	ck_assert_str_eq(p.cli->peer, want);
	ck_assert_int_eq(strncmp(p.srv->peer, "127.0.0.1:", 10), 0);
	ck_assert_str_eq(orfa_conn_last_error(p.cli), "no error");
	pair_close(&p);
}
END_TEST

/* ---- non-blocking sender ----------------------------------------------- */

#define NB_MSGS		64		/* mixed test */
#define NB_MAX		512		/* queue test, upper bound */
#define NB_LEN		(512u * 1024)
#define NB_SEED		0xda7aull

struct nb_reader {
	struct orfa_conn *c;
	int expect;			/* messages to read */
	int n, bad, rc;
	/* for the mixed test: message i carries file data when fd_every
	 * divides i */
	int fd_every;
};

static size_t mixed_len(int i)
{
	return (size_t)(i % 4 == 1 ? 0 : 100000 + i * 3001);
}

static off_t mixed_off(int i)
{
	return (off_t)i * 12345;
}

static void *nb_read_all(void *arg)
{
	struct nb_reader *r = arg;
	struct seen s;

	for (r->n = 0; r->n < r->expect; r->n++) {
		int i = r->n, file = r->fd_every && i % r->fd_every == 0;

		recv_check(r->c, file ? FILE_SEED : r->fd_every ? 0 : NB_SEED,
			   file ? (size_t)mixed_off(i) : 0, &s);
		if (s.rc) {
			r->rc = s.rc;
			break;
		}
		if (s.req_id != (uint64_t)i + 1 || !s.body_ok || !s.data_ok ||
		    s.data_len != (r->fd_every ? mixed_len(i) : NB_LEN))
			r->bad++;
	}
	return NULL;
}

/* Flush c until nothing is queued; bounded. */
static void flush_until_empty(struct orfa_conn *c)
{
	struct pollfd pfd = { .fd = orfa_conn_fd(c), .events = POLLOUT };

	for (int i = 0; i < 200000 && orfa_conn_want_write(c); i++) {
		ck_assert_int_ge(poll(&pfd, 1, 10000), 0);
		ck_assert_int_eq(orfa_conn_flush(c), 0);
	}
	ck_assert_int_eq(orfa_conn_want_write(c), 0);
	ck_assert_uint_eq(orfa_conn_queued_bytes(c), 0);
}

START_TEST(test_nonblock_queue_and_flush)
{
	static int done[NB_MAX];
	uint8_t *data = malloc(NB_LEN);
	struct nb_reader r = { 0 };
	size_t prev = 0, q, at_first = 0;
	struct pair p;
	pthread_t t;
	int n, extra = 0, total = 0;

	fill(data, NB_LEN, NB_SEED, 0);
	pair_open(&p, 0, ORFA_TP_NONBLOCK);
	/* Nobody reads: once the socket buffers are full, sends queue
	 * instead of blocking and the backlog only grows.  Send until
	 * something is queued, then 16 more. */
	for (n = 0; n < NB_MAX && extra < 16; n++) {
		done[n] = 0;
		ck_assert_int_eq(send_mem(p.srv, (uint64_t)n + 1, 24, data,
					  NB_LEN, &done[n]), 0);
		q = orfa_conn_queued_bytes(p.srv);
		ck_assert_uint_ge(q, prev);
		prev = q;
		if (q > 0 && extra++ == 0)
			at_first = q;
	}
	ck_assert_int_eq(extra, 16);
	ck_assert_uint_ge(prev, at_first + 15 * (size_t)NB_LEN);
	ck_assert_int_eq(orfa_conn_want_write(p.srv), 1);
	for (int i = 0; i < n; i++)
		total += done[i];
	ck_assert_int_lt(total, n);

	r.c = p.cli;
	r.expect = n;
	thread_start(&t, nb_read_all, &r);
	flush_until_empty(p.srv);
	pthread_join(t, NULL);
	ck_assert_int_eq(r.rc, 0);
	ck_assert_int_eq(r.n, n);
	ck_assert_int_eq(r.bad, 0);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(done[i], 1);
	free(data);
	pair_close(&p);
}
END_TEST

START_TEST(test_nonblock_mixed_file_and_memory_order)
{
	static int done[NB_MSGS];
	uint8_t *data[NB_MSGS];
	int fd = temp_file(2u << 20, FILE_SEED);
	struct nb_reader r = { .fd_every = 3 };
	struct pair p;
	pthread_t t;

	pair_open(&p, 0, ORFA_TP_NONBLOCK);
	for (int i = 0; i < NB_MSGS; i++) {
		size_t len = mixed_len(i);

		done[i] = 0;
		data[i] = NULL;
		if (i % 3 == 0) {
			ck_assert_int_eq(send_file(p.srv, (uint64_t)i + 1,
						   (uint32_t)i, fd,
						   mixed_off(i), len,
						   &done[i]), 0);
			continue;
		}
		data[i] = malloc(len ? len : 1);
		fill(data[i], len, (uint64_t)i + 1, 0);
		ck_assert_int_eq(send_mem(p.srv, (uint64_t)i + 1, (uint32_t)i,
					  data[i], len, &done[i]), 0);
	}
	r.c = p.cli;
	r.expect = NB_MSGS;
	thread_start(&t, nb_read_all, &r);
	flush_until_empty(p.srv);
	pthread_join(t, NULL);
	ck_assert_int_eq(r.rc, 0);
	ck_assert_int_eq(r.n, NB_MSGS);
	ck_assert_int_eq(r.bad, 0);
	for (int i = 0; i < NB_MSGS; i++) {
		ck_assert_int_eq(done[i], 1);
		free(data[i]);
	}
	close(fd);
	pair_close(&p);
}
END_TEST

START_TEST(test_destroy_calls_pending_done)
{
	static int done[64];
	uint8_t *data = malloc(4u << 20);
	struct pair p;
	int n;

	fill(data, 4u << 20, 1, 0);
	pair_open(&p, 0, ORFA_TP_NONBLOCK);
	for (n = 0; n < 64 && (n < 4 || !orfa_conn_want_write(p.srv)); n++)
		ck_assert_int_eq(send_mem(p.srv, 1, 0, data, 4u << 20,
					  &done[n]), 0);
	ck_assert_int_eq(orfa_conn_want_write(p.srv), 1);
	orfa_conn_put(&p.srv);
	ck_assert_ptr_null(p.srv);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(done[i], 1);
	pair_close(&p);
	free(data);
}
END_TEST

/* ---- non-blocking receiver --------------------------------------------- */

START_TEST(test_nonblock_recv_eagain_until_whole)
{
	uint8_t frame[ORFA_HDR_SIZE + 32 + 100];
	struct pollfd pfd;
	struct orfa_rxmsg m;
	struct pair p;
	int fd, rc = -EAGAIN;

	fd = raw_pair(&p, ORFA_TP_NONBLOCK);
	make_head(frame, 42, 32, 100);
	fill(frame + ORFA_HDR_SIZE + 32, 100, 42, 0);
	ck_assert_int_eq(orfa_conn_recv(p.srv, &m), -EAGAIN);
	write_all(fd, frame, 30);	/* header and a bit of body */
	pfd = (struct pollfd){ .fd = orfa_conn_fd(p.srv), .events = POLLIN };
	ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
	ck_assert_int_eq(orfa_conn_recv(p.srv, &m), -EAGAIN);
	write_all(fd, frame + 30, sizeof(frame) - 30);
	for (int i = 0; i < 100 && rc == -EAGAIN; i++) {
		poll(&pfd, 1, 100);
		rc = orfa_conn_recv(p.srv, &m);
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(m.hdr.req_id, 42);
	ck_assert(matches(m.body, 32, body_seed(42), 0));
	ck_assert(matches(m.data, 100, 42, 0));
	orfa_conn_recv_done(p.srv, &m);
	ck_assert_int_eq(orfa_conn_recv(p.srv, &m), -EAGAIN);
	close(fd);
	pair_close(&p);
}
END_TEST

START_TEST(test_nonblock_recv_drains_readahead)
{
	const int n = 300;
	uint8_t data[100];
	struct pollfd pfd;
	struct orfa_rxmsg m;
	struct pair p;
	int got = 0;

	pair_open(&p, 0, ORFA_TP_NONBLOCK);
	for (int i = 0; i < n; i++) {
		fill(data, (size_t)i % 100, (uint64_t)i, 0);
		ck_assert_int_eq(send_mem(p.cli, (uint64_t)i, (uint32_t)i % 50,
					  data, (size_t)i % 100, NULL), 0);
	}
	pfd = (struct pollfd){ .fd = orfa_conn_fd(p.srv), .events = POLLIN };
	/* The loop contract: once readable, recv until -EAGAIN. */
	for (int loops = 0; loops < 10000 && got < n; loops++) {
		int rc;

		ck_assert_int_ge(poll(&pfd, 1, 10000), 1);
		while ((rc = orfa_conn_recv(p.srv, &m)) == 0) {
			ck_assert_uint_eq(m.hdr.req_id, (uint64_t)got);
			ck_assert(matches(m.data, m.hdr.data_len,
					  (uint64_t)got, 0));
			orfa_conn_recv_done(p.srv, &m);
			got++;
		}
		ck_assert_int_eq(rc, -EAGAIN);
	}
	ck_assert_int_eq(got, n);
	pair_close(&p);
}
END_TEST

/* ---- refused frames ---------------------------------------------------- */

/* Corked: sends queue (nothing reaches the peer, no EV_WRITE wanted);
 * uncorking writes them, in order, and calls every done(). */
START_TEST(test_cork_batches_sends)
{
	static uint8_t data[6][3000];	/* referenced until done() */
	int done = 0;
	struct pollfd pfd;
	struct seen s;
	struct pair p;

	pair_open(&p, 0, ORFA_TP_NONBLOCK);
	ck_assert_int_eq(orfa_conn_cork(p.srv, 1), 0);
	for (int i = 1; i <= 5; i++) {
		fill(data[i], sizeof(data[i]), (uint64_t)i, 0);
		ck_assert_int_eq(send_mem(p.srv, (uint64_t)i, 12, data[i],
					  (size_t)i * 500, &done), 0);
	}
	ck_assert_int_eq(done, 0);
	ck_assert_uint_gt(orfa_conn_queued_bytes(p.srv), 0);
	ck_assert_int_eq(orfa_conn_want_write(p.srv), 0);
	pfd.fd = orfa_conn_fd(p.cli);
	pfd.events = POLLIN;
	ck_assert_int_eq(poll(&pfd, 1, 50), 0);	/* nothing sent */
	ck_assert_int_eq(orfa_conn_cork(p.srv, 0), 0);
	ck_assert_int_eq(done, 5);
	ck_assert_uint_eq(orfa_conn_queued_bytes(p.srv), 0);
	for (int i = 1; i <= 5; i++) {
		recv_check(p.cli, 0, 0, &s);
		ck_seen(&s, (uint64_t)i, 12, (size_t)i * 500);
	}
	/* Uncorked again: a send goes out at once. */
	ck_assert_int_eq(send_mem(p.srv, 6, 12, data[0], 10, &done), 0);
	ck_assert_int_eq(done, 6);
	pair_close(&p);
}
END_TEST

/* ---- two-phase receive (deferred data) ----------------------------------- */

/* Defer the data of odd req_ids (read from the frame header). */
static int defer_odd(void *arg, const struct orfa_hdr *h)
{
	__atomic_fetch_add((int *)arg, 1, __ATOMIC_SEQ_CST);
	return (int)(h->req_id & 1);
}

struct seq_job {
	struct orfa_conn *c;
	uint8_t *data[3];
	size_t len[3];
	int n, rc;
};

/* Patterned payloads: data[i] of len[i] bytes, seed i + 1. */
static void seq_fill(struct seq_job *j)
{
	for (int i = 0; i < j->n; i++) {
		j->data[i] = malloc(j->len[i]);
		ck_assert_ptr_nonnull(j->data[i]);
		fill(j->data[i], j->len[i], (uint64_t)i + 1, 0);
	}
}

static void seq_free(struct seq_job *j)
{
	for (int i = 0; i < j->n; i++)
		free(j->data[i]);
}

/* Send messages 1..n with data[i] (pattern seed = req_id). */
static void *seq_sender(void *arg)
{
	struct seq_job *j = arg;

	for (int i = 0; i < j->n && !j->rc; i++)
		j->rc = send_mem(j->c, (uint64_t)i + 1, 16, j->data[i],
				 j->len[i], NULL);
	return NULL;
}

static char *tmpfile_path(char *buf, size_t size)
{
	snprintf(buf, size, "/tmp/orfa-tcp-defer-XXXXXX");
	return buf;
}

/* 1 when fd holds the pattern of seed at [off, off + len). */
static int file_matches(int fd, off_t off, size_t len, uint64_t seed)
{
	uint8_t *b = malloc(len);
	int ok = b && pread(fd, b, len, off) == (ssize_t)len &&
		 matches(b, len, seed, 0);

	free(b);
	return ok;
}

START_TEST(test_deferred_data_to_file_and_memory)
{
	const size_t big = (3u << 20) + 123;
	struct seq_job j = { .len = { big, 5000, 300000 }, .n = 3 };
	struct orfa_rxdest d;
	struct orfa_rxmsg m;
	struct pair p;
	pthread_t t;
	char path[64];
	int calls = 0, fd;

	pair_open(&p, 0, 0);
	ck_assert_int_eq(orfa_conn_set_defer(p.cli, defer_odd, &calls), 0);
	fd = mkstemp(tmpfile_path(path, sizeof(path)));
	ck_assert_int_ge(fd, 0);
	unlink(path);
	j.c = p.srv;
	seq_fill(&j);
	thread_start(&t, seq_sender, &j);

	/* 1: deferred, then into the file at 1000 (splice). */
	ck_assert_int_eq(orfa_conn_recv(p.cli, &m), 0);
	ck_assert_uint_eq(m.hdr.req_id, 1);
	ck_assert_int_eq(m.data_deferred, 1);
	ck_assert_ptr_null(m.data);
	ck_assert(matches(m.body, m.hdr.body_len, body_seed(1), 0));
	{
		struct orfa_rxmsg m2;

		ck_assert_int_eq(orfa_conn_recv(p.cli, &m2), -EBUSY);
	}
	memset(&d, 0, sizeof(d));
	d.fd = fd;
	d.off = 1000;
	ck_assert_int_eq(orfa_conn_recv_data(p.cli, &m, &d), 0);
	ck_assert_int_eq(m.data_deferred, 0);
	ck_assert_uint_eq(d.written, big);
	ck_assert_int_eq(d.werr, 0);
	ck_assert(file_matches(fd, 1000, big, 1));
	orfa_conn_recv_done(p.cli, &m);

	/* 2: even, received as usual. */
	ck_assert_int_eq(orfa_conn_recv(p.cli, &m), 0);
	ck_assert_int_eq(m.data_deferred, 0);
	ck_assert(matches(m.data, 5000, 2, 0));
	orfa_conn_recv_done(p.cli, &m);

	/* 3: deferred, taken into lent memory; the head stays in place. */
	ck_assert_int_eq(orfa_conn_recv(p.cli, &m), 0);
	ck_assert_int_eq(m.data_deferred, 1);
	{
		uint8_t *head = m.head;

		memset(&d, 0, sizeof(d));
		d.fd = -1;
		ck_assert_int_eq(orfa_conn_recv_data(p.cli, &m, &d), 0);
		ck_assert_ptr_eq(m.head, head);
	}
	ck_assert_ptr_nonnull(m.data);
	ck_assert_int_eq(m.data_in_sink, 0);
	ck_assert(matches(m.data, 300000, 3, 0));
	ck_assert(matches(m.body, m.hdr.body_len, body_seed(3), 0));
	/* Nothing deferred any more. */
	ck_assert_int_eq(orfa_conn_recv_data(p.cli, &m, &d), -EINVAL);
	orfa_conn_recv_done(p.cli, &m);
	pthread_join(t, NULL);
	ck_assert_int_eq(j.rc, 0);
	ck_assert_int_eq(calls, 3);
	close(fd);
	pair_close(&p);
	seq_free(&j);
}
END_TEST

/* A file that refuses splice with an offset (O_APPEND) gets read + pwrite;
 * one that refuses writing reports the error, and the framing survives. */
START_TEST(test_deferred_data_fallbacks)
{
	const size_t len = 1u << 20;
	struct seq_job j = { .len = { len, len, 100 }, .n = 3 };
	struct orfa_rxdest d;
	struct orfa_rxmsg m;
	struct pair p;
	pthread_t t;
	char path[64];
	int calls = 0, fd, afd, rofd;

	pair_open(&p, 0, ORFA_TP_NONBLOCK);
	/* The receiving end here is the accepted, non-blocking one. */
	ck_assert_int_eq(orfa_conn_set_defer(p.srv, defer_odd, &calls), 0);
	fd = mkstemp(tmpfile_path(path, sizeof(path)));
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "0123456789", 10), 10);
	afd = open(path, O_WRONLY | O_APPEND);
	rofd = open(path, O_RDONLY);
	unlink(path);
	ck_assert_int_ge(afd, 0);
	ck_assert_int_ge(rofd, 0);
	j.c = p.cli;
	seq_fill(&j);
	thread_start(&t, seq_sender, &j);

	/* 1 to the O_APPEND descriptor: appended after the 10 bytes. */
	while ((calls = orfa_conn_recv(p.srv, &m)) == -EAGAIN)
		poll(NULL, 0, 1);
	ck_assert_int_eq(calls, 0);
	ck_assert_int_eq(m.data_deferred, 1);
	memset(&d, 0, sizeof(d));
	d.fd = afd;
	d.off = 0;
	ck_assert_int_eq(orfa_conn_recv_data(p.srv, &m, &d), 0);
	ck_assert_uint_eq(d.written, len);
	ck_assert_int_eq(d.werr, 0);
	ck_assert(file_matches(fd, 10, len, 1));
	orfa_conn_recv_done(p.srv, &m);

	/* 2 is even: as usual.  3 to a read-only descriptor: error, data
	 * dropped, and whatever follows still frames right. */
	while ((calls = orfa_conn_recv(p.srv, &m)) == -EAGAIN)
		poll(NULL, 0, 1);
	ck_assert_int_eq(calls, 0);
	ck_assert(matches(m.data, len, 2, 0));
	orfa_conn_recv_done(p.srv, &m);
	while ((calls = orfa_conn_recv(p.srv, &m)) == -EAGAIN)
		poll(NULL, 0, 1);
	ck_assert_int_eq(calls, 0);
	ck_assert_int_eq(m.data_deferred, 1);
	memset(&d, 0, sizeof(d));
	d.fd = rofd;
	ck_assert_int_eq(orfa_conn_recv_data(p.srv, &m, &d), 0);
	ck_assert_uint_eq(d.written, 0);
	ck_assert_int_eq(d.werr, -EBADF);
	orfa_conn_recv_done(p.srv, &m);
	pthread_join(t, NULL);
	ck_assert_int_eq(j.rc, 0);
	ck_assert_int_eq(send_mem(p.cli, 4, 16, j.data[2], 10, NULL), 0);
	while ((calls = orfa_conn_recv(p.srv, &m)) == -EAGAIN)
		poll(NULL, 0, 1);
	ck_assert_int_eq(calls, 0);
	ck_assert_uint_eq(m.hdr.req_id, 4);
	ck_assert_int_eq(m.data_deferred, 0);
	orfa_conn_recv_done(p.srv, &m);
	close(fd);
	close(afd);
	close(rofd);
	pair_close(&p);
	seq_free(&j);
}
END_TEST

/* The peer dies inside a deferred segment: recv_data fails, for good. */
START_TEST(test_deferred_data_peer_close)
{
	uint8_t head[ORFA_HDR_SIZE + 16], part[1000];
	struct orfa_rxdest d = { .fd = -1, .timeout_ms = 5000 };
	struct orfa_rxmsg m;
	struct pair p;
	int calls = 0, raw;

	pair_open(&p, 0, 0);
	orfa_conn_put(&p.srv);
	orfa_conn_put(&p.cli);
	raw = raw_connect(p.port);
	ck_assert_int_eq(accept_wait(p.l, &p.srv), 0);
	ck_assert_int_eq(orfa_conn_set_defer(p.srv, defer_odd, &calls), 0);
	make_head(head, 1, 16, 1u << 20);
	write_all(raw, head, sizeof(head));
	memset(part, 1, sizeof(part));
	write_all(raw, part, sizeof(part));
	close(raw);
	ck_assert_int_eq(orfa_conn_recv(p.srv, &m), 0);
	ck_assert_int_eq(m.data_deferred, 1);
	ck_assert_int_eq(orfa_conn_recv_data(p.srv, &m, &d), -ECONNRESET);
	ck_assert_ptr_nonnull(strstr(orfa_conn_last_error(p.srv),
				     "data segment"));
	orfa_conn_recv_done(p.srv, &m);
	pair_close(&p);
}
END_TEST

START_TEST(test_oversized_body_refused)
{
	uint8_t head[ORFA_HDR_SIZE];
	struct orfa_rxmsg m;
	struct pair p;
	int fd = raw_pair(&p, 0);

	make_head(head, 1, 0, 0);
	orfa_put_le32(head, ORFA_MAX_BODY + 1);
	write_all(fd, head, sizeof(head));
	ck_assert_int_eq(orfa_conn_recv(p.srv, &m), -EMSGSIZE);
	ck_assert_ptr_nonnull(strstr(orfa_conn_last_error(p.srv), "body_len"));
	/* The failure sticks. */
	ck_assert_int_eq(orfa_conn_recv(p.srv, &m), -EMSGSIZE);
	close(fd);
	pair_close(&p);
}
END_TEST

START_TEST(test_oversized_data_refused)
{
	uint8_t head[ORFA_HDR_SIZE];
	struct orfa_rxmsg m;
	struct pair p;
	int fd = raw_pair(&p, 0);

	orfa_conn_set_limits(p.srv, 4096, 1000);
	make_head(head, 1, 0, 0);
	orfa_put_le32(head + 4, 1001);
	write_all(fd, head, sizeof(head));
	ck_assert_int_eq(orfa_conn_recv(p.srv, &m), -EMSGSIZE);
	ck_assert_ptr_nonnull(strstr(orfa_conn_last_error(p.srv), "data_len"));
	ck_assert_ptr_nonnull(strstr(orfa_conn_last_error(p.srv), "1001"));
	close(fd);
	pair_close(&p);
}
END_TEST

START_TEST(test_peer_close_mid_frame)
{
	uint8_t frame[ORFA_HDR_SIZE + 100];
	struct orfa_rxmsg m;
	struct pair p;
	int fd = raw_pair(&p, 0);

	make_head(frame, 1, 100, 0);
	write_all(fd, frame, ORFA_HDR_SIZE + 50);
	close(fd);
	ck_assert_int_eq(orfa_conn_recv(p.srv, &m), -ECONNRESET);
	ck_assert_ptr_nonnull(strstr(orfa_conn_last_error(p.srv),
				     "truncated"));
	pair_close(&p);
}
END_TEST

START_TEST(test_peer_close_between_frames)
{
	struct orfa_rxmsg m;
	struct pair p;

	pair_open(&p, 0, 0);
	ck_assert_int_eq(send_mem(p.cli, 1, 0, NULL, 0, NULL), 0);
	orfa_conn_put(&p.cli);
	ck_assert_int_eq(orfa_conn_recv(p.srv, &m), 0);
	orfa_conn_recv_done(p.srv, &m);
	ck_assert_int_eq(orfa_conn_recv(p.srv, &m), -ECONNRESET);
	ck_assert_str_eq(orfa_conn_last_error(p.srv), "peer closed connection");
	pair_close(&p);
}
END_TEST

START_TEST(test_send_rejects_inconsistent_header)
{
	uint8_t head[ORFA_HDR_SIZE + 8], data[10] = { 0 };
	struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) };
	struct orfa_txmsg m = { .head = head, .head_len = sizeof(head),
				.iov = &iov, .iovcnt = 1, .fd = -1,
				.done = count_done };
	struct pair p;
	struct seen s;
	int done = 0;

	pair_open(&p, 0, 0);
	m.done_arg = &done;
	make_head(head, 1, 8, 11);	/* says 11 data bytes, has 10 */
	ck_assert_int_eq(orfa_conn_send(p.cli, &m), -EINVAL);
	ck_assert_int_eq(done, 1);
	/* The connection is still fine. */
	ck_assert_int_eq(send_mem(p.cli, 2, 8, data, 0, NULL), 0);
	recv_check(p.srv, 0, 0, &s);
	ck_seen(&s, 2, 8, 0);
	pair_close(&p);
}
END_TEST

/* ---- shutdown, errors, timeouts ---------------------------------------- */

struct recv_job {
	struct orfa_conn *c;
	int rc;
};

static void *blocked_recv(void *arg)
{
	struct recv_job *j = arg;
	struct orfa_rxmsg m;

	j->rc = orfa_conn_recv(j->c, &m);
	if (j->rc == 0)
		orfa_conn_recv_done(j->c, &m);
	return NULL;
}

START_TEST(test_shutdown_wakes_receiver)
{
	struct recv_job j = { 0 };
	struct pair p;
	pthread_t t;
	int done = 0;

	pair_open(&p, 0, 0);
	j.c = p.cli;
	thread_start(&t, blocked_recv, &j);
	usleep(100 * 1000);	/* let it block; correctness does not depend on it */
	orfa_conn_shutdown(p.cli);
	pthread_join(t, NULL);
	ck_assert_int_eq(j.rc, -ENOTCONN);
	ck_assert_int_eq(send_mem(p.cli, 1, 0, NULL, 0, &done), -ENOTCONN);
	ck_assert_int_eq(done, 1);
	pair_close(&p);
}
END_TEST

struct big_send_job {
	struct orfa_conn *c;
	uint8_t *data;
	size_t len;
	int rc, done, calls;
};

static void *big_sender(void *arg)
{
	struct big_send_job *j = arg;

	j->rc = send_mem(j->c, 1, 0, j->data, j->len, &j->done);
	return NULL;
}

/* Send big messages until one fails (at most 16): a peer that does not
 * read makes that happen however large the socket buffers are. */
static void *big_sender_until_failure(void *arg)
{
	struct big_send_job *j = arg;

	for (int i = 0; i < 16; i++) {
		j->calls++;
		j->rc = send_mem(j->c, 1, 0, j->data, j->len, &j->done);
		if (j->rc)
			break;
	}
	return NULL;
}

/* ---- sink -------------------------------------------------------------- */

struct sink_ctx {
	uint8_t *buf;
	size_t size;
	int calls;
};

static void *sink_for_odd(void *arg, const struct orfa_hdr *hdr)
{
	struct sink_ctx *s = arg;

	s->calls++;
	if (hdr->req_id % 2 == 0 || hdr->data_len > s->size)
		return NULL;
	return s->buf;
}

START_TEST(test_sink_receives_in_place)
{
	struct sink_ctx sk = { .size = 1u << 20 };
	const size_t len = 1u << 20;
	struct big_send_job j = { .len = len };
	struct orfa_rxmsg m;
	struct pair p;
	pthread_t t;
	uint8_t *src = malloc(len);

	sk.buf = malloc(sk.size);
	memset(sk.buf, 0xee, sk.size);
	pair_open(&p, 0, 0);
	orfa_conn_set_sink(p.cli, sink_for_odd, &sk);
	fill(src, len, 1, 0);
	j.c = p.srv;
	j.data = src;
	thread_start(&t, big_sender, &j);	/* sends req_id 1 */
	ck_assert_int_eq(orfa_conn_recv(p.cli, &m), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(j.rc, 0);
	ck_assert_uint_eq(m.hdr.req_id, 1);
	ck_assert_int_eq(m.data_in_sink, 1);
	ck_assert_ptr_eq(m.data, sk.buf);
	ck_assert(matches(sk.buf, len, 1, 0));
	ck_assert(matches(m.body, m.hdr.body_len, body_seed(1), 0));
	orfa_conn_recv_done(p.cli, &m);

	/* Even id: the resolver declines and the transport lends a buffer. */
	fill(src, 5000, 2, 0);
	ck_assert_int_eq(send_mem(p.srv, 2, 8, src, 5000, NULL), 0);
	ck_assert_int_eq(orfa_conn_recv(p.cli, &m), 0);
	ck_assert_int_eq(m.data_in_sink, 0);
	ck_assert_ptr_ne(m.data, sk.buf);
	ck_assert(matches(m.data, 5000, 2, 0));
	orfa_conn_recv_done(p.cli, &m);

	/* No data: the resolver is not asked. */
	ck_assert_int_eq(send_mem(p.srv, 3, 8, NULL, 0, NULL), 0);
	ck_assert_int_eq(orfa_conn_recv(p.cli, &m), 0);
	ck_assert_ptr_null(m.data);
	ck_assert_int_eq(m.data_in_sink, 0);
	orfa_conn_recv_done(p.cli, &m);
	ck_assert_int_eq(sk.calls, 2);

	pair_close(&p);
	free(sk.buf);
	free(src);
}
END_TEST

START_TEST(test_shutdown_wakes_blocked_sender)
{
	struct big_send_job j = { .len = 64u << 20 };
	struct pair p;
	pthread_t t;

	j.data = calloc(1, j.len);
	pair_open(&p, 0, 0);
	j.c = p.cli;
	/* Nobody reads: the sender blocks. */
	thread_start(&t, big_sender_until_failure, &j);
	usleep(200 * 1000);
	orfa_conn_shutdown(p.cli);
	pthread_join(t, NULL);
	ck_assert_int_eq(j.rc, -ENOTCONN);
	ck_assert_int_eq(j.done, j.calls);	/* once per message */
	pair_close(&p);
	free(j.data);
}
END_TEST

START_TEST(test_send_timeout)
{
	struct orfa_tp_opts o;
	struct orfa_listener *l;
	struct orfa_conn *c, *s;
	char port[16];
	uint8_t *data = calloc(1, 64u << 20);
	int done = 0, rc = 0, sent;

	orfa_tp_opts_default(&o);
	ck_assert_int_eq(orfa_listener_open("tcp", "127.0.0.1", "0", &o, &l,
					    NULL), 0);
	listener_port(l, port, sizeof(port));
	o.send_timeout_ms = 200;
	ck_assert_int_eq(orfa_conn_connect("tcp", "127.0.0.1", port, &o, &c),
			 0);
	ck_assert_int_eq(accept_wait(l, &s), 0);
	/* Nobody reads s: the socket buffers fill and the send stalls. */
	for (sent = 0; sent < 16 && rc == 0; sent++)
		rc = send_mem(c, 1, 0, data, 64u << 20, &done);
	ck_assert_int_eq(rc, -ETIMEDOUT);
	ck_assert_int_eq(done, sent);
	ck_assert_ptr_nonnull(strstr(orfa_conn_last_error(c), "timed out"));
	/* The frame was cut: the connection refuses further sends. */
	ck_assert_int_ne(send_mem(c, 2, 0, NULL, 0, NULL), 0);
	orfa_conn_put(&c);
	orfa_conn_put(&s);
	orfa_listener_close(l);
	free(data);
}
END_TEST

START_TEST(test_send_to_closed_peer_no_sigpipe)
{
	int fd = temp_file(4u << 20, FILE_SEED);
	struct pair p;
	int rc = 0;

	pair_open(&p, 0, 0);
	orfa_conn_put(&p.srv);
	/* File data so sendfile meets the dead peer; SIGPIPE is not ignored
	 * in this process, so a raised signal would kill the test. */
	for (int i = 0; i < 200 && rc == 0; i++) {
		rc = send_file(p.cli, (uint64_t)i, 0, fd, 0, 4u << 20, NULL);
		if (rc == 0)
			usleep(10 * 1000);
	}
	ck_assert_int_eq(rc, -ECONNRESET);
	close(fd);
	pair_close(&p);
}
END_TEST

START_TEST(test_connect_refused)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	struct orfa_conn *c = (struct orfa_conn *)1;
	char port[16];
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(port, sizeof(port), "%u", ntohs(sin.sin_port));
	close(fd);	/* bound, never listened: the port refuses */
	ck_assert_int_eq(orfa_conn_connect("tcp", "127.0.0.1", port, NULL, &c),
			 -ECONNREFUSED);
	ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_unknown_transport)
{
	struct orfa_conn *c;

	ck_assert_ptr_eq(orfa_transport_find("tcp"), &orfa_tcp_transport);
	ck_assert_ptr_null(orfa_transport_find("carrier-pigeon"));
	ck_assert_int_eq(orfa_conn_connect("carrier-pigeon", "127.0.0.1", "1",
					   NULL, &c), -EPROTONOSUPPORT);
}
END_TEST

/* ---- listener ---------------------------------------------------------- */

static char logged[256];

static void capture_log(enum orfa_log_level level, const char *msg, void *arg)
{
	snprintf(logged, sizeof(logged), "%s", msg);
}

START_TEST(test_listener_addr_and_addrinuse)
{
	struct orfa_listener *l, *l2 = NULL;
	const struct orfa_transport_ops *ops = NULL;
	struct orfa_conn *c = (struct orfa_conn *)1;
	char addr[64], port[16];

	ck_assert_int_eq(orfa_listener_open("tcp", "127.0.0.1", "0", NULL, &l,
					    &ops), 0);
	ck_assert_ptr_eq(ops, &orfa_tcp_transport);
	ck_assert_int_eq(orfa_listener_addr(l, addr, sizeof(addr)), 0);
	ck_assert_int_eq(strncmp(addr, "127.0.0.1:", 10), 0);
	ck_assert_int_gt(atoi(addr + 10), 0);
	ck_assert_int_eq(orfa_listener_addr(l, addr, 5), -ENOSPC);
	ck_assert_int_eq(orfa_listener_accept(l, &c), -EAGAIN);
	ck_assert_ptr_null(c);
	listener_port(l, port, sizeof(port));
	orfa_log_set_sink(capture_log, NULL);
	ck_assert_int_eq(orfa_listener_open("tcp", "127.0.0.1", port, NULL,
					    &l2, NULL), -EADDRINUSE);
	orfa_log_set_sink(NULL, NULL);
	ck_assert_ptr_null(l2);
	/* orfad shows this to the user. */
	ck_assert_ptr_nonnull(strstr(logged, "Address already in use"));
	ck_assert_ptr_nonnull(strstr(logged, port));
	orfa_listener_close(l);
}
END_TEST

START_TEST(test_ipv6_loopback)
{
	struct orfa_listener *l;
	struct orfa_conn *c, *s;
	char addr[64], port[16];
	uint8_t data[3000];
	struct seen sn;
	int rc;

	rc = orfa_listener_open("tcp", "::1", "0", NULL, &l, NULL);
	if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
		fprintf(stderr, "# ::1 unavailable (%s): IPv6 test skipped\n",
			strerror(-rc));
		return;
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(orfa_listener_addr(l, addr, sizeof(addr)), 0);
	ck_assert_int_eq(strncmp(addr, "[::1]:", 6), 0);
	listener_port(l, port, sizeof(port));
	ck_assert_int_eq(orfa_conn_connect("tcp", "::1", port, NULL, &c), 0);
	ck_assert_int_eq(accept_wait(l, &s), 0);
	fill(data, sizeof(data), 5, 0);
	ck_assert_int_eq(send_mem(c, 5, 10, data, sizeof(data), NULL), 0);
	recv_check(s, 0, 0, &sn);
	ck_seen(&sn, 5, 10, sizeof(data));
	orfa_conn_put(&c);
	orfa_conn_put(&s);
	orfa_listener_close(l);
}
END_TEST

START_TEST(test_refcount_put_clears_pointer)
{
	struct pair p;
	struct orfa_conn *extra;
	struct seen s;

	pair_open(&p, 0, 0);
	extra = p.cli;
	orfa_conn_get(extra);
	orfa_conn_put(&p.cli);
	ck_assert_ptr_null(p.cli);
	/* One reference left: still usable. */
	ck_assert_int_eq(send_mem(extra, 9, 0, NULL, 0, NULL), 0);
	recv_check(p.srv, 0, 0, &s);
	ck_seen(&s, 9, 0, 0);
	orfa_conn_put(&extra);
	ck_assert_ptr_null(extra);
	orfa_conn_put(&extra);	/* NULL is fine */
	pair_close(&p);
}
END_TEST

/* ---- address parsing --------------------------------------------------- */

struct addr_case {
	const char *spec, *tp, *host, *port;	/* tp NULL: -EINVAL */
};

static const struct addr_case addr_cases[] = {
	{ "server", "tcp", "server", "7207" },
	{ "server:1234", "tcp", "server", "1234" },
	{ "10.0.0.1:0", "tcp", "10.0.0.1", "0" },
	{ "tcp://server:99", "tcp", "server", "99" },
	{ "rdma://10.1.2.3", "rdma", "10.1.2.3", "7207" },
	{ "rdma://[fe80::1%eth0]:5", "rdma", "fe80::1%eth0", "5" },
	{ "[::1]:7300", "tcp", "::1", "7300" },
	{ "[::1]", "tcp", "::1", "7207" },
	{ "::1", "tcp", "::1", "7207" },
	{ "2001:db8::42", "tcp", "2001:db8::42", "7207" },
	{ "", NULL, NULL, NULL },
	{ ":7207", NULL, NULL, NULL },
	{ "server:", NULL, NULL, NULL },
	{ "server:65536", NULL, NULL, NULL },
	{ "server:12a", NULL, NULL, NULL },
	{ "[::1", NULL, NULL, NULL },
	{ "[::1]x", NULL, NULL, NULL },
	{ "[]:80", NULL, NULL, NULL },
	{ "[server]:80", NULL, NULL, NULL },
	{ "server:1:2", NULL, NULL, NULL },
	{ "udp://server", NULL, NULL, NULL },
	{ "1::2::3", NULL, NULL, NULL },
};

START_TEST(test_parse_address)
{
	for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
		const struct addr_case *t = &addr_cases[i];
		char tp[8], host[64], port[8];
		int rc = orfa_parse_address(t->spec, NULL, tp, sizeof(tp),
					    host, sizeof(host), port,
					    sizeof(port));

		if (!t->tp) {
			ck_assert_msg(rc == -EINVAL, "'%s' accepted", t->spec);
			continue;
		}
		ck_assert_msg(rc == 0, "'%s' refused", t->spec);
		ck_assert_str_eq(tp, t->tp);
		ck_assert_str_eq(host, t->host);
		ck_assert_str_eq(port, t->port);
	}
}
END_TEST

START_TEST(test_parse_address_limits)
{
	char tp[8], host[8], port[8];

	ck_assert_int_eq(orfa_parse_address("h:1", "99", NULL, 0, host,
					     sizeof(host), port, sizeof(port)),
			 0);
	ck_assert_int_eq(orfa_parse_address("h", "99", tp, sizeof(tp), host,
					    sizeof(host), port, sizeof(port)),
			 0);
	ck_assert_str_eq(port, "99");
	/* Outputs that do not fit are refused, not truncated. */
	ck_assert_int_eq(orfa_parse_address("longhostname", NULL, tp,
					    sizeof(tp), host, sizeof(host),
					    port, sizeof(port)), -EINVAL);
	ck_assert_int_eq(orfa_parse_address(NULL, NULL, tp, sizeof(tp), host,
					    sizeof(host), port, sizeof(port)),
			 -EINVAL);
}
END_TEST

START_TEST(test_opts_default)
{
	struct orfa_tp_opts o;

	memset(&o, 0xff, sizeof(o));
	orfa_tp_opts_default(&o);
	ck_assert_uint_eq(o.flags, 0);
	ck_assert_uint_eq(o.max_body, ORFA_MAX_BODY);
	ck_assert_uint_eq(o.max_data, ORFA_DEFAULT_MAX_DATA);
	ck_assert_int_eq(o.connect_timeout_ms, 10000);
	ck_assert_uint_eq(o.rdma_buf_size, 64 * 1024);
	ck_assert_uint_eq(o.rdma_credits, 64);
}
END_TEST

static Suite *tcp_suite(void)
{
	Suite *s = suite_create("transport_tcp");
	TCase *io = tcase_create("io"), *core = tcase_create("core");

	tcase_set_timeout(io, 120);
	tcase_add_test(io, test_sizes_both_directions);
	tcase_add_test(io, test_concurrent_senders_keep_order);
	tcase_add_test(io, test_file_data_sendfile);
	tcase_add_test(io, test_file_shrunk_is_zero_padded);
	tcase_add_test(io, test_file_without_sendfile_support);
	tcase_add_test(io, test_many_messages_on_loan);
	tcase_add_test(io, test_many_iovecs_gathered);
	tcase_add_test(io, test_peer_names);
	tcase_add_test(io, test_nonblock_queue_and_flush);
	tcase_add_test(io, test_nonblock_mixed_file_and_memory_order);
	tcase_add_test(io, test_destroy_calls_pending_done);
	tcase_add_test(io, test_nonblock_recv_eagain_until_whole);
	tcase_add_test(io, test_nonblock_recv_drains_readahead);
	tcase_add_test(io, test_sink_receives_in_place);
	tcase_add_test(io, test_cork_batches_sends);
	tcase_add_test(io, test_deferred_data_to_file_and_memory);
	tcase_add_test(io, test_deferred_data_fallbacks);
	tcase_add_test(io, test_deferred_data_peer_close);
	tcase_add_test(io, test_oversized_body_refused);
	tcase_add_test(io, test_oversized_data_refused);
	tcase_add_test(io, test_peer_close_mid_frame);
	tcase_add_test(io, test_peer_close_between_frames);
	tcase_add_test(io, test_send_rejects_inconsistent_header);
	tcase_add_test(io, test_shutdown_wakes_receiver);
	tcase_add_test(io, test_shutdown_wakes_blocked_sender);
	tcase_add_test(io, test_send_timeout);
	tcase_add_test(io, test_send_to_closed_peer_no_sigpipe);
	tcase_add_test(io, test_connect_refused);
	tcase_add_test(io, test_listener_addr_and_addrinuse);
	tcase_add_test(io, test_ipv6_loopback);
	tcase_add_test(io, test_refcount_put_clears_pointer);
	suite_add_tcase(s, io);

	tcase_add_test(core, test_unknown_transport);
	tcase_add_test(core, test_parse_address);
	tcase_add_test(core, test_parse_address_limits);
	tcase_add_test(core, test_opts_default);
	suite_add_tcase(s, core);
	return s;
}

int main(void)
{
	return orfa_check_run(tcp_suite());
}
