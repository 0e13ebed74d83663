/*
 * orfa_bounds.c - the bounds on every peer (issue 12, docs/limits.md)
 * against a real orfad over real TCP; run-bounds.sh starts the servers.
 *
 *   orfa_bounds --addr HOST:PORT --test NAME [--log FILE]
 *
 * Tests (TAP lines, no plan: the script prints it):
 *   flood     400 half-open connections (nothing or 2 bytes each, from
 *             127.0.0.1 to 127.0.0.20) against an orfad limited to 256
 *             descriptors; a real client's HELLO, CREATE, WRITE, READ
 *             still work within 10 s.
 *   trickle   6 connections each trickling a 1 MiB WRITE, a byte every
 *             2 s; another client's 256 KiB READ takes well under 1 s.
 *   deadlines with --hello-timeout 1 --idle-timeout 2 --msg-timeout 2:
 *             silent, idle, half-a-frame and slow-data connections are
 *             closed; one holding an open file is not idle.
 *   netcheck  an exports file allowing 10.0.0.0/8 only: a connection from
 *             127.0.0.1 is closed before anything is read.
 *   caps      --max-files 4 --max-nodes 6: CREATE beyond answers EMFILE,
 *             then ENFILE, and the server goes on serving.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "probe_lib.h"

#define FLOOD		400
#define TRICKLERS	6
#define TRICKLE_DATA	(1u << 20)

/* A TCP connection to the server from source address 127.0.0.<last>. */
static int connect_from(int last)
{
	struct sockaddr_in sa = { .sin_family = AF_INET }, me = sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	me.sin_addr.s_addr = htonl(0x7f000000u | (unsigned)last);
	sa.sin_port = htons((uint16_t)atoi(g_port));
	inet_pton(AF_INET, g_host, &sa.sin_addr);
	if (bind(fd, (struct sockaddr *)&me, sizeof(me)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* HELLO, CREATE, WRITE 64 KiB, READ it back, RELEASE: 0 when all went. */
static int client_cycle(const char *name)
{
	static uint8_t buf[65536], back[65536];
	struct orfa_entry e;
	uint64_t fh, written;
	size_t len = 0;
	struct pc p;
	int ret;

	if (pc_open(&p))
		return -1;
	ret = op_create(&p, p.root, name, 0644, 02 /* O_RDWR */, &e, &fh);
	if (ret == 0) {
		fill(buf, sizeof(buf), 0, 7);
		ret = op_write(&p, e.nodeid, fh, 0, buf, sizeof(buf),
			       &written, NULL);
	}
	if (ret == 0)
		ret = op_read(&p, e.nodeid, fh, 0, sizeof(back), back, &len);
	if (ret == 0 && (len != sizeof(back) ||
			 !check(back, len, 0, 7)))
		ret = -1;
	if (ret == 0)
		ret = op_fh(&p, ORFA_OP_RELEASE, e.nodeid, fh, 0);
	pc_close(&p);
	return ret;
}

static void test_flood(void)
{
	static int fds[FLOOD];
	struct rlimit rl = { 4096, 4096 };
	int opened = 0;
	double t0, dt;

	setrlimit(RLIMIT_NOFILE, &rl);	/* ours, not orfad's */
	for (int i = 0; i < FLOOD; i++) {
		fds[i] = connect_from(1 + i % 20);
		if (fds[i] < 0)
			continue;
		opened++;
		if (i % 2)
			raw_write(fds[i], "\x4f\x52", 2);
	}
	ok(opened == FLOOD, "flood: %d of %d half-open connections made",
	   opened, FLOOD);
	t0 = now_s();
	dt = 0;
	while (dt < 10.0) {
		char name[64];

		/* A new name each time: CREATE of an existing name fails. */
		snprintf(name, sizeof(name), "flood-%d-%.6f", (int)getpid(),
			 now_s());
		if (client_cycle(name) == 0)
			break;
		usleep(100000);
		dt = now_s() - t0;
	}
	dt = now_s() - t0;
	ok(dt < 10.0, "flood: a real client did HELLO, CREATE, WRITE, READ "
	   "in %.3f s (< 10 s)", dt);
	ok(log_has("limit:", "without handshake"),
	   "flood: orfad logged dropping connections without handshake");
	for (int i = 0; i < FLOOD; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	/* orfad is still whole afterwards */
	{
		char name[64];

		snprintf(name, sizeof(name), "after-%d", (int)getpid());
		ok(client_cycle(name) == 0, "flood: served afterwards");
	}
}

/* A slow sender, set up: HELLO and CREATE, its file id in *fh and node
 * in *node.  0 or -1. */
static int trickler_open(struct pc *p, int i, uint64_t *node, uint64_t *fh)
{
	struct orfa_entry e;
	char name[32];

	snprintf(name, sizeof(name), "trickle-%d", i);
	if (pc_open(p) || op_create(p, p->root, name, 0644, 02, &e, fh))
		return -1;
	*node = e.nodeid;
	return 0;
}

/* Start its WRITE of TRICKLE_DATA bytes: the frame and one data byte.
 * The socket's fd, or -1. */
static int trickler_start(struct pc *p, uint64_t node, uint64_t fh)
{
	uint8_t buf[512];
	struct orfa_msg m;
	size_t n;
	int fd;

	req_init(p, &m, ORFA_OP_WRITE);
	m.a.write.nodeid = node;
	m.a.write.fh = fh;
	m.a.write.offset = 0;
	n = raw_frame(buf, sizeof(buf), &m, 0);
	m.hdr.data_len = TRICKLE_DATA;
	orfa_hdr_encode(buf, &m.hdr);
	fd = orfa_conn_fd(p->c);
	if (raw_write(fd, buf, n) || raw_write(fd, "x", 1))
		return -1;
	return fd;
}

static int trickler(struct pc *p, int i)
{
	uint64_t node, fh;

	if (trickler_open(p, i, &node, &fh))
		return -1;
	return trickler_start(p, node, fh);
}

static void test_trickle(void)
{
	static uint8_t data[256 << 10], back[256 << 10];
	struct pc slow[TRICKLERS], p;
	uint64_t node[TRICKLERS], sfh[TRICKLERS], fh, written;
	int fds[TRICKLERS], made = 0, ret;
	struct orfa_entry e;
	double worst = 0, last;
	size_t len;

	/* Everything set up first: once the senders start, a server
	 * without the bound has no worker left for a CREATE either. */
	for (int i = 0; i < TRICKLERS; i++)
		fds[i] = trickler_open(&slow[i], i, &node[i], &sfh[i]);
	ret = pc_open(&p);
	if (ret == 0)
		ret = op_create(&p, p.root, "big", 0644, 02, &e, &fh);
	fill(data, sizeof(data), 0, 3);
	if (ret == 0)
		ret = op_write(&p, e.nodeid, fh, 0, data, sizeof(data),
			       &written, NULL);
	ok(ret == 0, "trickle: reader set up its 256 KiB file");
	for (int i = 0; i < TRICKLERS; i++) {
		if (fds[i] == 0)
			fds[i] = trickler_start(&slow[i], node[i], sfh[i]);
		made += fds[i] >= 0;
	}
	ok(made == TRICKLERS, "trickle: %d slow WRITE senders started", made);
	last = now_s();
	for (int round = 0; ret == 0 && round < 6; round++) {
		double t0;

		usleep(1000000);
		if (now_s() - last >= 2.0) {	/* a byte every 2 s */
			for (int i = 0; i < TRICKLERS; i++)
				if (fds[i] >= 0)
					raw_write(fds[i], "x", 1);
			last = now_s();
		}
		t0 = now_s();
		ret = op_read(&p, e.nodeid, fh, 0, sizeof(back), back, &len);
		if (now_s() - t0 > worst)
			worst = now_s() - t0;
		if (ret == 0 && (len != sizeof(back) ||
				 !check(back, len, 0, 3)))
			ret = -1;
	}
	ok(ret == 0 && worst < 1.0, "trickle: 256 KiB READ with %d slow "
	   "senders: slowest of 6 took %.3f s (< 1 s; read %s)", TRICKLERS,
	   worst, ret == 0 ? "ok" : strerror(ret < 0 ? -ret : ret));
	pc_close(&p);
	for (int i = 0; i < TRICKLERS; i++)
		pc_close(&slow[i]);
}

/* Seconds until the server closes fd (bounded by WAIT_MS), or -1. */
static double closed_after(int fd, double t0)
{
	return raw_closed(fd) ? now_s() - t0 : -1;
}

static void test_deadlines(void)
{
	struct pc idle, busy, slow;
	struct orfa_entry e;
	uint8_t buf[64];
	char me[64];
	uint64_t fh;
	double t0 = now_s(), dt;
	int fd;

	fd = raw_connect(me, sizeof(me));
	dt = closed_after(fd, t0);
	ok(dt >= 0.9 && dt < 5, "deadlines: a silent connection closed "
	   "after %.2f s (--hello-timeout 1)", dt);
	close(fd);

	t0 = now_s();
	fd = raw_connect(me, sizeof(me));
	ok(fd >= 0 && raw_hello(fd) == 0, "deadlines: HELLO in time accepted");
	dt = closed_after(fd, t0);
	ok(dt >= 1.5 && dt < 6, "deadlines: an idle session closed after "
	   "%.2f s (--idle-timeout 2)", dt);
	close(fd);

	ok(pc_open(&busy) == 0 &&
	   op_create(&busy, busy.root, "held", 0644, 02, &e, &fh) == 0,
	   "deadlines: a session holding an open file");
	if (pc_open(&idle) == 0) {	/* for the half frame below */
		fd = orfa_conn_fd(idle.c);
		/* Half a frame header, then nothing. */
		memset(buf, 0, sizeof(buf));
		raw_write(fd, buf, 10);
		t0 = now_s();
		dt = closed_after(fd, t0);
		ok(dt >= 1.5 && dt < 6, "deadlines: half a frame: dropped "
		   "after %.2f s (--msg-timeout 2)", dt);
		pc_close(&idle);
	}
	fd = trickler(&slow, 99);
	t0 = now_s();
	dt = fd >= 0 ? closed_after(fd, t0) : -1;
	ok(dt >= 1.5 && dt < 6, "deadlines: 1 MiB WRITE data not coming: "
	   "dropped after %.2f s (--msg-timeout 2)", dt);
	pc_close(&slow);
	ok(op_ping(&busy) == 0, "deadlines: the session holding a file is "
	   "still open (not idle)");
	pc_close(&busy);
}

static void test_netcheck(void)
{
	char me[64];
	double t0 = now_s(), dt;
	int fd = raw_connect(me, sizeof(me));

	dt = fd >= 0 ? closed_after(fd, t0) : -1;
	ok(dt >= 0 && dt < 1.0, "netcheck: 127.0.0.1 outside 10.0.0.0/8 "
	   "closed at accept, after %.3f s", dt);
	ok(log_has("refused at accept", NULL),
	   "netcheck: orfad logged the refusal at accept");
	if (fd >= 0)
		close(fd);
}

static void test_caps(void)
{
	struct orfa_entry e;
	uint64_t fh[16];
	char name[32];
	struct pc p;
	int ret = 0, n = 0;

	if (pc_open(&p)) {
		ok(0, "caps: connect");
		return;
	}
	for (n = 0; n < 16; n++) {
		snprintf(name, sizeof(name), "f%d", n);
		ret = op_create(&p, p.root, name, 0644, 02, &e, &fh[n]);
		if (ret)
			break;
	}
	ok(ret == EMFILE && n == 4, "caps: CREATE of file %d answered %s "
	   "(--max-files 4: EMFILE)", n + 1, strerror(ret));
	for (int i = 0; i < n; i++)
		op_fh(&p, ORFA_OP_RELEASE, 0, fh[i], 0);
	for (; n < 16; n++) {
		snprintf(name, sizeof(name), "f%d", n);
		ret = op_create(&p, p.root, name, 0644, 02, &e, &fh[0]);
		if (ret)
			break;
		op_fh(&p, ORFA_OP_RELEASE, e.nodeid, fh[0], 0);
	}
	ok(ret == ENFILE && n <= 6, "caps: new node %d answered %s "
	   "(--max-nodes 6: ENFILE)", n + 1, strerror(ret));
	ok(op_ping(&p) == 0, "caps: the session goes on");
	ok(log_has("limit:", "--max-files"), "caps: the hit was logged");
	pc_close(&p);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "log", required_argument, NULL, 'l' },
		{ "test", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = NULL, *test = "";
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'a': addr = optarg; break;
		case 'l': g_log = optarg; break;
		case 't': test = optarg; break;
		default: return 2;
		}
	}
	if (!addr || orfa_parse_address(addr, NULL, NULL, 0, g_host,
					sizeof(g_host), g_port,
					sizeof(g_port)) < 0) {
		fprintf(stderr, "orfa_bounds: --addr HOST:PORT needed\n");
		return 2;
	}
	if (strcmp(test, "flood") == 0)
		test_flood();
	else if (strcmp(test, "trickle") == 0)
		test_trickle();
	else if (strcmp(test, "deadlines") == 0)
		test_deadlines();
	else if (strcmp(test, "netcheck") == 0)
		test_netcheck();
	else if (strcmp(test, "caps") == 0)
		test_caps();
	else
		return 2;
	return g_failed ? 1 : 0;
}
