/*
 * fuzz_client.c - libFuzzer harness for the orfa client's reply path: the
 * TCP framing, the reply decoder and the completion of calls in the RPC
 * layer (fuse-client/client.c).
 *
 * Each input runs one real client against a fake server thread in this
 * process.  The fake server answers HELLO properly, reads the calls the
 * harness sends (GETATTR, LOOKUP, READ with a sink, READDIRPLUS, GETXATTR,
 * OPEN, CREATE), then streams the input back as "replies" and closes.  So
 * that mutations reach the decoder instead of dying on an unknown id, the
 * input is walked frame by frame (header lengths taken from the input) and
 * each frame's req_id is replaced by one of the pending calls' ids, chosen
 * by the input's own byte; the opcode is made to match when the input's
 * opcode byte is even.  Every call must complete exactly once (reply,
 * error or the 3 s request timeout); a call still open after 15 s aborts
 * (a hang is a finding), as does any sanitizer report.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "codec.h"
#include "log.h"

#define NCALLS 7

static int lfd = -1;
static char port[16];

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int completed;

struct fake {
	const uint8_t *data;
	size_t size;
};

static void quiet_sink(enum orfa_log_level level, const char *msg, void *arg)
{
	(void)level;
	(void)msg;
	(void)arg;
}

static void setup_once(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	signal(SIGPIPE, SIG_IGN);
	orfa_log_set_sink(quiet_sink, NULL);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(lfd, 16) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &len) < 0)
		abort();
	snprintf(port, sizeof(port), "%u", ntohs(a.sin_port));
}

static int read_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t r = recv(fd, p, n, 0);
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Read one frame, keep its header; the body and data are discarded. */
static int read_frame(int fd, struct orfa_hdr *h)
{
	uint8_t hb[ORFA_HDR_SIZE], junk[4096];

	if (read_full(fd, hb, sizeof(hb)) < 0 ||
	    orfa_hdr_decode(hb, h, NULL, NULL) < 0)
		return -1;
	for (size_t left = (size_t)h->body_len + h->data_len; left;) {
		size_t n = left < sizeof(junk) ? left : sizeof(junk);
		if (read_full(fd, junk, n) < 0)
			return -1;
		left -= n;
	}
	return 0;
}

static void send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void *fake_server(void *arg)
{
	struct fake *f = arg;
	struct orfa_hdr h;
	struct orfa_msg m;
	uint8_t buf[512];
	uint64_t ids[NCALLS];
	uint16_t ops[NCALLS];
	struct timeval tv = { 5, 0 };
	int fd = accept(lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (read_frame(fd, &h) < 0 || h.opcode != ORFA_OP_HELLO)
		goto out;
	orfa_msg_init(&m, ORFA_OP_HELLO, h.req_id);
	m.hdr.flags = ORFA_F_REPLY;
	m.a.hello_rep.magic = ORFA_MAGIC;
	m.a.hello_rep.version = ORFA_PROTO_VERSION;
	m.a.hello_rep.max_data = 1u << 20;
	m.a.hello_rep.features = ORFA_FEAT_ALL;
	m.a.hello_rep.root_nodeid = 1;
	m.a.hello_rep.root_attr.mode = 040755;
	m.a.hello_rep.root_attr.nlink = 2;
	ssize_t n = orfa_rep_encode(&m, buf + ORFA_HDR_SIZE,
				    sizeof(buf) - ORFA_HDR_SIZE);
	if (n < 0)
		abort();
	orfa_hdr_encode(buf, &m.hdr);
	send_all(fd, buf, ORFA_HDR_SIZE + (size_t)n);

	int ncalls = 0;
	while (ncalls < NCALLS) {
		if (read_frame(fd, &h) < 0)
			goto out;
		if (h.opcode == ORFA_OP_FORGET)
			continue;
		ids[ncalls] = h.req_id;
		ops[ncalls++] = h.opcode;
	}

	uint8_t *s = malloc(f->size ? f->size : 1);
	if (!s)
		abort();
	memcpy(s, f->data, f->size);
	for (size_t off = 0; off + ORFA_HDR_SIZE <= f->size;) {
		uint32_t body = orfa_get_le32(s + off);
		uint32_t data = orfa_get_le32(s + off + 4);
		int k = s[off + 16] % NCALLS;

		orfa_put_le64(s + off + 16, ids[k]);
		if ((s[off + 8] & 1) == 0)
			orfa_put_le16(s + off + 8, ops[k]);
		if ((s[off + 11] & 0x80) == 0)
			s[off + 10] |= ORFA_F_REPLY;
		uint64_t next = off + ORFA_HDR_SIZE + (uint64_t)body + data;
		if (next > f->size)
			break;
		off = (size_t)next;
	}
	send_all(fd, s, f->size);
	free(s);
out:
	shutdown(fd, SHUT_RDWR);
	close(fd);
	return NULL;
}

static void done(struct orfa_call *call, int err, const struct orfa_msg *rep)
{
	(void)call;
	(void)err;
	(void)rep;
	pthread_mutex_lock(&lock);
	completed++;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

static void send_call(struct orfa_client *cl, unsigned op, size_t sink,
		      void (*fill)(struct orfa_msg *))
{
	struct orfa_call *c = orfa_call_new(cl, op, sink, 0);

	if (!c)
		abort();
	fill(orfa_call_msg(c));
	orfa_call_send(c, NULL, 0, 0, done, NULL);
}

static void f_getattr(struct orfa_msg *m) { m->a.getattr.nodeid = 1; }
static void f_lookup(struct orfa_msg *m)
{
	m->a.lookup.parent = 1;
	m->name = "name";
	m->namelen = 4;
}
static void f_read(struct orfa_msg *m)
{
	m->a.read.nodeid = 2;
	m->a.read.fh = 5;
	m->a.read.size = 4096;
}
static void f_readdir(struct orfa_msg *m)
{
	m->a.readdir.nodeid = 1;
	m->a.readdir.fh = 6;
	m->a.readdir.size = 4096;
}
static void f_getxattr(struct orfa_msg *m)
{
	m->a.getxattr.nodeid = 1;
	m->a.getxattr.size = 256;
	m->name = "user.x";
	m->namelen = 6;
}
static void f_open(struct orfa_msg *m) { m->a.open.nodeid = 2; }
static void f_create(struct orfa_msg *m)
{
	m->a.create.parent = 1;
	m->a.create.mode = 0100644;
	m->a.create.flags = 0102;
	m->name = "new";
	m->namelen = 3;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct orfa_client_cfg cfg = {
		.transport = "tcp", .host = "127.0.0.1", .export_path = "/",
		.nconns = 1, .timeout_ms = 3000, .max_data = 1u << 20,
	};
	struct orfa_client *cl = NULL;
	struct fake f = { data, size };
	char err[256];
	pthread_t t;

	pthread_once(&once, setup_once);
	cfg.port = port;
	completed = 0;
	if (pthread_create(&t, NULL, fake_server, &f) != 0)
		abort();
	if (orfa_client_connect(&cfg, &cl, err, sizeof(err)) < 0 ||
	    orfa_client_start(cl) < 0) {
		fprintf(stderr, "fuzz_client: %s\n", err);
		abort();
	}
	send_call(cl, ORFA_OP_GETATTR, 0, f_getattr);
	send_call(cl, ORFA_OP_LOOKUP, 0, f_lookup);
	send_call(cl, ORFA_OP_READ, 4096, f_read);
	send_call(cl, ORFA_OP_READDIRPLUS, 4096, f_readdir);
	send_call(cl, ORFA_OP_GETXATTR, 256, f_getxattr);
	send_call(cl, ORFA_OP_OPEN, 0, f_open);
	send_call(cl, ORFA_OP_CREATE, 0, f_create);

	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 15;
	pthread_mutex_lock(&lock);
	while (completed < NCALLS)
		if (pthread_cond_timedwait(&cond, &lock, &until) == ETIMEDOUT) {
			fprintf(stderr, "fuzz_client: %d of %d calls never "
				"completed\n", NCALLS - completed, NCALLS);
			abort();
		}
	pthread_mutex_unlock(&lock);
	pthread_join(t, NULL);
	orfa_client_destroy(cl);
	if (completed != NCALLS) {
		fprintf(stderr, "fuzz_client: %d completions for %d calls\n",
			completed, NCALLS);
		abort();
	}
	return 0;
}
