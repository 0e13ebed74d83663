/*
 * contain_channel.c - the protected channel against a man in the middle
 * (issue 12 items 3 and 4), part of orfa_contain --mode auth (orfad
 * --key): a relay thread between the test client and orfad forwards the
 * real handshake, then injects a plain frame, replays a sealed one, or
 * flips one bit of a data segment in either direction; orfad must drop
 * the connection and say why, the client must refuse an altered reply,
 * and nothing written through the relay reaches the wire in clear (but
 * in integrity-only mode, where alterations fail all the same).  And
 * before AUTH, a known and an unknown export get byte-identical refusals.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec.h"
#include "contain_channel.h"
#include "orfa_proto.h"
#include "transport.h"

#define MARKER "ORFA-PLAINTEXT-MARKER"

bool g_integrity_only;

enum relay_mode {
	RELAY_PASS,		/* forward only */
	RELAY_INJECT,		/* a plain PING to orfad after the AUTH reply */
	RELAY_REPLAY,		/* the client's first sealed frame, twice */
	RELAY_FLIP_REQ,		/* one bit of the first request data */
	RELAY_FLIP_REP,		/* one bit of the first reply data */
};

/* Where one direction's stream is: inside which part of which frame. */
struct stream {
	uint8_t hb[ORFA_HDR_SIZE];
	size_t hn;			/* header bytes seen of this frame */
	uint64_t body_left, data_left;
	unsigned frames;		/* frames begun, 1 = HELLO (reply) */
};

struct relay {
	enum relay_mode mode;
	int lfd;
	char port[16], sport[16];
	pthread_t th;
	uint8_t cap[4096];		/* RELAY_REPLAY: client frame 3 */
	size_t capn;
	/* Results, read after relay_stop: */
	int acted;			/* injected, replayed or flipped */
	int server_eof;			/* orfad closed its side */
	int saw_marker;			/* MARKER crossed the wire */
};

/* Between two frames of s. */
static int at_boundary(const struct stream *s)
{
	return s->hn == 0 && s->body_left == 0 && s->data_left == 0;
}

/* Walk n bytes of one direction (to_server: client to orfad), flipping
 * or capturing as the mode says. */
static void walk(struct relay *r, struct stream *s, uint8_t *b, size_t n,
		 int to_server)
{
	enum relay_mode flip = to_server ? RELAY_FLIP_REQ : RELAY_FLIP_REP;

	if (memmem(b, n, MARKER, strlen(MARKER)))
		r->saw_marker = 1;
	for (size_t i = 0; i < n; i++) {
		if (s->body_left || s->data_left) {
			if (to_server && r->mode == RELAY_REPLAY &&
			    s->frames == 3 && r->capn < sizeof(r->cap))
				r->cap[r->capn++] = b[i];
			if (s->body_left) {
				s->body_left--;
				continue;
			}
			if (r->mode == flip && !r->acted && s->frames > 2) {
				b[i] ^= 0x04;
				r->acted = 1;
			}
			s->data_left--;
			continue;
		}
		s->hb[s->hn++] = b[i];
		if (s->hn < ORFA_HDR_SIZE)
			continue;
		s->frames++;
		s->body_left = orfa_get_le32(s->hb);
		s->data_left = orfa_get_le32(s->hb + 4);
		s->hn = 0;
		if (to_server && r->mode == RELAY_REPLAY && s->frames == 3) {
			memcpy(r->cap, s->hb, ORFA_HDR_SIZE);
			r->capn = ORFA_HDR_SIZE;
		}
	}
}

static int connect_server(const char *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_port = htons((uint16_t)atoi(port));
	inet_pton(AF_INET, g_host, &sa.sin_addr);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* One frame the relay makes up: a plain PING request. */
static void inject_ping(int sfd)
{
	struct pc dummy = { .next_id = 7776 };
	struct orfa_msg m;
	uint8_t buf[256];

	req_init(&dummy, &m, ORFA_OP_PING);
	raw_write(sfd, buf, raw_frame(buf, sizeof(buf), &m, 0));
}

/* One relayed connection, until either side closes (or a long quiet). */
static void *relay_main(void *arg)
{
	struct relay *r = arg;
	struct stream up = { 0 }, down = { 0 };
	struct pollfd lp = { .fd = r->lfd, .events = POLLIN };
	static __thread uint8_t buf[65536];
	int cfd, sfd;

	if (poll(&lp, 1, WAIT_MS) <= 0)
		return NULL;
	cfd = accept(r->lfd, NULL, NULL);
	sfd = connect_server(r->sport);
	while (cfd >= 0 && sfd >= 0) {
		struct pollfd p[2] = { { .fd = cfd, .events = POLLIN },
				       { .fd = sfd, .events = POLLIN } };
		ssize_t n;

		if (poll(p, 2, 2 * WAIT_MS) <= 0)
			break;
		if (p[0].revents) {
			n = recv(cfd, buf, sizeof(buf), 0);
			if (n <= 0)
				break;
			walk(r, &up, buf, (size_t)n, 1);
			raw_write(sfd, buf, (size_t)n);
			if (r->mode == RELAY_REPLAY && !r->acted &&
			    up.frames == 3 && at_boundary(&up)) {
				raw_write(sfd, r->cap, r->capn);
				r->acted = 1;
			}
		}
		if (p[1].revents) {
			n = recv(sfd, buf, sizeof(buf), 0);
			if (n <= 0) {
				r->server_eof = 1;
				break;
			}
			walk(r, &down, buf, (size_t)n, 0);
			/* Inject before the client sees the AUTH reply, so
			 * its handshake returns with acted already set. */
			if (r->mode == RELAY_INJECT && !r->acted &&
			    down.frames >= 2 && at_boundary(&down)) {
				inject_ping(sfd);
				__atomic_store_n(&r->acted, 1,
						 __ATOMIC_RELEASE);
			}
			raw_write(cfd, buf, (size_t)n);
		}
	}
	if (cfd >= 0)
		close(cfd);
	if (sfd >= 0)
		close(sfd);
	return NULL;
}

static int relay_start(struct relay *r, enum relay_mode mode)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);

	memset(r, 0, sizeof(*r));
	r->mode = mode;
	snprintf(r->sport, sizeof(r->sport), "%s", g_port);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r->lfd < 0 ||
	    bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(r->lfd, 1) < 0 ||
	    getsockname(r->lfd, (struct sockaddr *)&sa, &len) < 0 ||
	    pthread_create(&r->th, NULL, relay_main, r) != 0) {
		if (r->lfd >= 0)
			close(r->lfd);
		return -1;
	}
	snprintf(r->port, sizeof(r->port), "%u", ntohs(sa.sin_port));
	return 0;
}

/* The client's side is closed first: the relay then ends. */
static void relay_stop(struct relay *r, struct pc *p)
{
	pc_close(p);
	pthread_join(r->th, NULL);
	close(r->lfd);
}

/* The sealed handshake for /a through a new relay in mode. */
static int relay_session(struct relay *r, enum relay_mode mode, struct pc *p,
			 const struct orfa_key *key)
{
	char port[sizeof(g_port)], msg[256];
	int st;

	memset(p, 0, sizeof(*p));
	if (relay_start(r, mode))
		return -1;
	memcpy(port, g_port, sizeof(port));
	snprintf(g_port, sizeof(g_port), "%s", r->port);
	st = handshake(p, "/a", key, msg, sizeof(msg));
	memcpy(g_port, port, sizeof(port));
	if (st)
		diag("handshake through the relay: %d %s", st, msg);
	return st;
}

/* A file name in /a and data full of MARKER. */
static int make_file(struct pc *p, const char *name, uint8_t *buf,
		     size_t len, uint64_t *node, uint64_t *fh)
{
	struct orfa_entry e;
	int st;

	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)MARKER[i % strlen(MARKER)];
	op_unlink(p, ORFA_OP_UNLINK, p->root, name);
	st = op_create(p, p->root, name, 0644, O_RDWR, &e, fh);
	*node = e.nodeid;
	return st;
}

static void t_relay_pass(const struct orfa_key *key)
{
	static uint8_t out[256 << 10], in[256 << 10];
	struct relay r;
	struct pc p;
	uint64_t node = 0, fh = 0, w = 0;
	size_t got = 0;
	int st;

	st = relay_session(&r, RELAY_PASS, &p, key);
	if (st == 0)
		st = make_file(&p, MARKER, out, sizeof(out), &node, &fh);
	if (st == 0)
		st = op_write(&p, node, fh, 0, out, sizeof(out), &w, NULL);
	if (st == 0)
		st = op_read(&p, node, fh, 0, sizeof(in), in, &got);
	ok(st == 0 && w == sizeof(out) && got == sizeof(in) &&
	   memcmp(in, out, sizeof(in)) == 0,
	   "a sealed session through a relay: 256 KiB written and read back "
	   "intact (%d)", st);
	relay_stop(&r, &p);
	ok(!r.saw_marker, "... and neither the name nor the data crossed the "
	   "wire in clear");
}

static void t_relay_inject(const struct orfa_key *key)
{
	struct relay r;
	struct pc p;
	int st;

	st = relay_session(&r, RELAY_INJECT, &p, key);
	ok(st == 0 && __atomic_load_n(&r.acted, __ATOMIC_ACQUIRE),
	   "relay: handshake forwarded, then a plain "
	   "PING injected (%d)", st);
	st = op_ping(&p);
	ok(st < 0, "... the client's next request gets no answer (%d)", st);
	relay_stop(&r, &p);
	ok(r.server_eof, "... orfad closed the connection");
	ok(log_has("protected frame 0 (opcode 38, req_id 7777) failed "
		   "verification", NULL), "... and logs the injected frame");

	st = relay_session(&r, RELAY_REPLAY, &p, key);
	op_ping(&p);
	st = st ? st : op_ping(&p);
	ok(r.acted && st < 0, "relay: a sealed PING replayed: the session "
	   "ends (%d)", st);
	relay_stop(&r, &p);
	ok(r.server_eof && log_has("protected frame 1 (opcode 38",
				   "failed verification"),
	   "... orfad closed it and logs the replayed frame");
}

static void t_relay_flip(const struct orfa_key *key)
{
	static uint8_t buf[8192], in[8192];
	struct relay r;
	struct pc p;
	struct orfa_entry e;
	uint64_t node = 0, fh = 0, w = 0;
	size_t got = 0;
	char msg[256];
	int st;

	st = relay_session(&r, RELAY_FLIP_REQ, &p, key);
	if (st == 0)
		st = make_file(&p, "flip-req", buf, sizeof(buf), &node, &fh);
	ok(st == 0, "relay: a sealed session and a new file (%d)", st);
	st = op_write(&p, node, fh, 0, buf, sizeof(buf), &w, NULL);
	ok(st < 0, "relay flips one bit of WRITE data: the WRITE fails (%d)",
	   st);
	relay_stop(&r, &p);
	ok(r.acted && r.server_eof, "... orfad closed the connection");
	snprintf(msg, sizeof(msg), "(opcode %u, req_id", ORFA_OP_WRITE);
	ok(log_has(msg, "failed verification"),
	   "... and logs the altered frame");
	st = handshake(&p, "/a", key, msg, sizeof(msg));
	ok(st == 0 && op_lookup(&p, p.root, "flip-req", &e) == 0 &&
	   e.attr.size == 0, "... and the file did not take the data "
	   "(size %llu)", (unsigned long long)e.attr.size);
	pc_close(&p);

	st = relay_session(&r, RELAY_FLIP_REP, &p, key);
	if (st == 0)
		st = make_file(&p, "flip-rep", buf, sizeof(buf), &node, &fh);
	if (st == 0)
		st = op_write(&p, node, fh, 0, buf, sizeof(buf), &w, NULL);
	ok(st == 0, "relay: a sealed session writes 8 KiB (%d)", st);
	st = op_read(&p, node, fh, 0, sizeof(in), in, &got);
	ok(st < 0 && p.c && strstr(orfa_conn_last_error(p.c),
				   "failed verification"),
	   "relay flips one bit of READ reply data: the client refuses the "
	   "reply (%d: %s)", st, p.c ? orfa_conn_last_error(p.c) : "");
	relay_stop(&r, &p);
}

/* The whole reply to a raw HELLO (req_id 1, no key) for export. */
static size_t hello_reply_bytes(const char *export, uint8_t *out, size_t cap)
{
	uint8_t req[256];
	struct orfa_msg m;
	char me[64];
	size_t len = 0;
	int fd = raw_connect(me, sizeof(me));

	orfa_msg_init(&m, ORFA_OP_HELLO, 1);
	m.a.hello.magic = ORFA_MAGIC;
	m.a.hello.version = ORFA_PROTO_VERSION;
	m.a.hello.max_data = 1 << 20;
	m.name = export;
	m.namelen = (uint32_t)strlen(export);
	if (fd >= 0 && raw_write(fd, req, raw_frame(req, sizeof(req), &m, 0))
	    == 0 && raw_read(fd, out, ORFA_HDR_SIZE) == 0) {
		len = ORFA_HDR_SIZE + (size_t)orfa_get_le32(out) +
		      orfa_get_le32(out + 4);
		if (len > cap || raw_read(fd, out + ORFA_HDR_SIZE,
					  len - ORFA_HDR_SIZE))
			len = 0;
	}
	if (fd >= 0)
		close(fd);
	return len;
}

static void t_same_refusal(const struct orfa_key *key,
			   const struct orfa_key *wrong)
{
	uint8_t a[1024], b[1024], c[1024];
	size_t na = hello_reply_bytes("/a", a, sizeof(a));
	size_t nb = hello_reply_bytes("/nope", b, sizeof(b));
	size_t nc = hello_reply_bytes("/net", c, sizeof(c));
	struct pc p;
	char msg[256];
	int st;

	ok(na > ORFA_HDR_SIZE && na == nb && na == nc && !memcmp(a, b, na) &&
	   !memcmp(a, c, na), "no key: HELLO for a known, an unknown and a "
	   "network-refused export get byte-identical refusals (%zu %zu %zu "
	   "bytes)", na, nb, nc);
	st = handshake(&p, "/nope", wrong, msg, sizeof(msg));
	ok(st == EACCES && strstr(msg, "authentication failed"),
	   "a wrong key for an unknown export: the same AUTH refusal as for "
	   "a known one (\"%s\")", msg);
	pc_close(&p);
	st = handshake(&p, "/nope", key, msg, sizeof(msg));
	ok(st == ENOENT && strstr(msg, "no export /nope"),
	   "the right key: only then is the export said not to exist "
	   "(\"%s\")", msg);
	pc_close(&p);
}

/* Integrity only, granted: data in clear on the wire, still verified. */
static void t_relay_integrity_only(const struct orfa_key *key)
{
	static uint8_t out[64 << 10], in[64 << 10];
	struct relay r;
	struct pc p;
	uint64_t node = 0, fh = 0, w = 0;
	size_t got = 0;
	int st;

	g_integrity_only = true;
	st = relay_session(&r, RELAY_PASS, &p, key);
	if (st == 0)
		st = make_file(&p, "mac", out, sizeof(out), &node, &fh);
	if (st == 0)
		st = op_write(&p, node, fh, 0, out, sizeof(out), &w, NULL);
	if (st == 0)
		st = op_read(&p, node, fh, 0, sizeof(in), in, &got);
	ok(st == 0 && got == sizeof(in) && !memcmp(in, out, sizeof(in)),
	   "integrity only (asked and allowed): 64 KiB written and read "
	   "back (%d)", st);
	relay_stop(&r, &p);
	ok(r.saw_marker, "... and the data crossed the wire in clear");

	st = relay_session(&r, RELAY_FLIP_REQ, &p, key);
	if (st == 0)
		st = make_file(&p, "mac-flip", out, 8192, &node, &fh);
	if (st == 0)
		st = op_write(&p, node, fh, 0, out, 8192, &w, NULL);
	relay_stop(&r, &p);
	ok(st < 0 && r.acted && r.server_eof, "integrity only: one flipped "
	   "bit of WRITE data still closes the connection (%d)", st);
	g_integrity_only = false;
}

void t_channel(const struct orfa_key *key)
{
	struct orfa_key wrong;

	memset(&wrong, 0x5a, sizeof(wrong));
	t_same_refusal(key, &wrong);
	t_relay_pass(key);
	t_relay_inject(key);
	t_relay_flip(key);
	t_relay_integrity_only(key);
}
