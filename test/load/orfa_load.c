/*
 * orfa_load.c - load generator for orfad: many connections, mixed
 * metadata and data requests, latency percentiles, server memory.
 *
 *   orfa-load --addr HOST:PORT [--conns 500] [--seconds 10] [--depth 2]
 *             [--server-pid PID]
 *
 * One thread drives every connection through the non-blocking transport
 * (epoll over orfa_conn_fd).  Each connection says HELLO, makes its own
 * directory and a 64 KiB file, then keeps --depth requests in flight until
 * the time is up: GETATTR, LOOKUP (+ batched FORGET), READ and WRITE of
 * 4 KiB at random offsets, STATFS, and a CREATE -> RELEASE -> UNLINK chain.
 * Every reply is checked (status, and READ data against what this
 * connection wrote).  The run is bounded by --seconds and a hard deadline.
 *
 * Output: one line per figure ("connections=500", "requests=...",
 * "errors=0", "p50_us=", "p99_us=", "p999_us=", "server_peak_rss_kib=")
 * and exit status 0 only when every connection completed with no error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "transport.h"

#define FILE_SIZE	(64u * 1024)
#define IO_SIZE		4096u
#define MAX_SAMPLES	(4u << 20)
#define FORGET_BATCH	64

enum phase { PH_HELLO, PH_MKDIR, PH_CREATE, PH_FILL, PH_RUN, PH_DRAIN, PH_DONE };

/* A request in flight: what it was, when it left, what it needs after. */
struct pending {
	uint64_t req_id;
	uint16_t op;
	double t0;
	uint64_t offset;	/* READ/WRITE */
	uint32_t serial;	/* CREATE: name serial */
};

struct lconn {
	int id;
	struct orfa_conn *conn;
	enum phase phase;
	uint64_t root, dir, file, fh;
	uint64_t next_req;
	struct pending inflight[16];
	int ninflight;
	uint32_t create_serial;
	uint64_t chain_fh, chain_node;	/* CREATE chain: fh to release */
	uint32_t chain_serial;
	int chain_step;			/* 0 none, 1 release due, 2 unlink due */
	uint64_t lookups_owed;		/* references to give back on dir/f */
	uint8_t content[FILE_SIZE];	/* what the file holds */
};

static struct {
	const char *host, *port;
	int conns, seconds, depth;
	pid_t server_pid;
} opt = { NULL, NULL, 500, 10, 2, 0 };

static double *samples;
static size_t nsamples;
static uint64_t nrequests, nerrors;
static int verbose_errors = 10;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void error_at(struct lconn *c, const char *what, int err)
{
	nerrors++;
	if (verbose_errors-- > 0)
		fprintf(stderr, "orfa-load: conn %d: %s: %s\n", c->id, what,
			err ? strerror(err) : "unexpected reply");
}

static int send_req(struct lconn *c, struct orfa_msg *m, const void *data,
		    uint32_t dlen, struct pending *p)
{
	uint8_t head[ORFA_HDR_SIZE + 1024];
	struct iovec iov = { (void *)data, dlen };
	ssize_t n;

	m->cred.uid = 0;
	m->cred.gid = 0;
	m->cred.pid = (uint32_t)getpid();
	m->cred.umask = 022;
	n = orfa_req_encode(m, head + ORFA_HDR_SIZE, sizeof(head) - ORFA_HDR_SIZE);
	if (n < 0)
		return (int)n;
	m->hdr.data_len = dlen;
	orfa_hdr_encode(head, &m->hdr);
	struct orfa_txmsg tx = {
		.head = head, .head_len = ORFA_HDR_SIZE + (size_t)n,
		.iov = dlen ? &iov : NULL, .iovcnt = dlen ? 1 : 0, .fd = -1,
	};
	int rc = orfa_conn_send(c->conn, &tx);
	if (rc < 0)
		return rc;
	if (p) {
		p->req_id = m->hdr.req_id;
		p->op = m->hdr.opcode;
		p->t0 = now();
		c->inflight[c->ninflight++] = *p;
	}
	return 0;
}

static void msg(struct orfa_msg *m, struct lconn *c, unsigned op)
{
	orfa_msg_init(m, op, ++c->next_req);
}

static int start_hello(struct lconn *c)
{
	struct orfa_msg m;
	struct pending p = { 0 };

	orfa_msg_init(&m, ORFA_OP_HELLO, ++c->next_req);
	m.a.hello.magic = ORFA_MAGIC;
	m.a.hello.version = ORFA_PROTO_VERSION;
	m.a.hello.max_data = ORFA_DEFAULT_MAX_DATA;
	m.a.hello.features = ORFA_FEAT_ALL;
	m.name = "/";
	m.namelen = 1;
	return send_req(c, &m, NULL, 0, &p);
}

/* Issue the next request of the steady-state mix. */
static int issue(struct lconn *c)
{
	struct orfa_msg m;
	struct pending p = { 0 };
	char name[32];

	if (c->chain_step == 1) {		/* RELEASE the created file */
		msg(&m, c, ORFA_OP_RELEASE);
		m.a.fh.nodeid = c->chain_node;
		m.a.fh.fh = c->chain_fh;
		c->chain_step = 2;
		return send_req(c, &m, NULL, 0, &p);
	}
	if (c->chain_step == 2) {		/* then UNLINK it */
		snprintf(name, sizeof(name), "t%u", c->chain_serial);
		msg(&m, c, ORFA_OP_UNLINK);
		m.a.unlink.parent = c->dir;
		m.name = name;
		m.namelen = (uint32_t)strlen(name);
		c->chain_step = 3;		/* wait for the reply */
		return send_req(c, &m, NULL, 0, &p);
	}
	if (c->lookups_owed >= FORGET_BATCH) {	/* FORGET: no reply */
		uint8_t data[ORFA_FORGET_ONE_SIZE];
		struct orfa_forget_one f = { c->file, c->lookups_owed };

		orfa_forget_put(data, 0, &f);
		msg(&m, c, ORFA_OP_FORGET);
		m.a.forget.count = 1;
		c->lookups_owed = 0;
		int rc = send_req(c, &m, data, sizeof(data), NULL);
		if (rc)
			return rc;
	}

	int r = rand() % 100;
	if (r < 25) {
		msg(&m, c, ORFA_OP_GETATTR);
		m.a.getattr.nodeid = c->file;
	} else if (r < 45) {
		msg(&m, c, ORFA_OP_LOOKUP);
		m.a.lookup.parent = c->dir;
		m.name = "f";
		m.namelen = 1;
	} else if (r < 65) {
		msg(&m, c, ORFA_OP_READ);
		p.offset = (uint64_t)(rand() % (FILE_SIZE / IO_SIZE)) * IO_SIZE;
		m.a.read.nodeid = c->file;
		m.a.read.fh = c->fh;
		m.a.read.offset = p.offset;
		m.a.read.size = IO_SIZE;
	} else if (r < 82) {
		msg(&m, c, ORFA_OP_WRITE);
		p.offset = (uint64_t)(rand() % (FILE_SIZE / IO_SIZE)) * IO_SIZE;
		for (unsigned i = 0; i < IO_SIZE; i += 64)
			c->content[p.offset + i] = (uint8_t)rand();
		m.a.write.nodeid = c->file;
		m.a.write.fh = c->fh;
		m.a.write.offset = p.offset;
		return send_req(c, &m, c->content + p.offset, IO_SIZE, &p);
	} else if (r < 90 || c->chain_step) {
		msg(&m, c, ORFA_OP_STATFS);
		m.a.node.nodeid = c->dir;
	} else {
		p.serial = ++c->create_serial;
		snprintf(name, sizeof(name), "t%u", p.serial);
		msg(&m, c, ORFA_OP_CREATE);
		m.a.create.parent = c->dir;
		m.a.create.mode = 0100644;
		m.a.create.flags = 02 | 0100;	/* O_RDWR | O_CREAT */
		m.name = name;
		m.namelen = (uint32_t)strlen(name);
		c->chain_step = 3;		/* busy until the reply */
	}
	return send_req(c, &m, NULL, 0, &p);
}

static int setup_step(struct lconn *c)
{
	struct orfa_msg m;
	struct pending p = { 0 };
	char name[32];

	switch (c->phase) {
	case PH_MKDIR:
		snprintf(name, sizeof(name), "load%d-%d", (int)getpid(), c->id);
		msg(&m, c, ORFA_OP_MKDIR);
		m.a.mkdir.parent = c->root;
		m.a.mkdir.mode = 040755;
		m.name = name;
		m.namelen = (uint32_t)strlen(name);
		return send_req(c, &m, NULL, 0, &p);
	case PH_CREATE:
		msg(&m, c, ORFA_OP_CREATE);
		m.a.create.parent = c->dir;
		m.a.create.mode = 0100644;
		m.a.create.flags = 02 | 0100;
		m.name = "f";
		m.namelen = 1;
		return send_req(c, &m, NULL, 0, &p);
	case PH_FILL:
		for (unsigned i = 0; i < FILE_SIZE; i++)
			c->content[i] = (uint8_t)(c->id * 31 + i);
		msg(&m, c, ORFA_OP_WRITE);
		m.a.write.nodeid = c->file;
		m.a.write.fh = c->fh;
		return send_req(c, &m, c->content, FILE_SIZE, &p);
	default:
		return 0;
	}
}

static struct pending *take_pending(struct lconn *c, uint64_t req_id)
{
	for (int i = 0; i < c->ninflight; i++) {
		if (c->inflight[i].req_id == req_id) {
			static struct pending out;
			out = c->inflight[i];
			c->inflight[i] = c->inflight[--c->ninflight];
			return &out;
		}
	}
	return NULL;
}

/* Handle one reply; returns 0, or -1 when the connection is broken. */
static int on_reply(struct lconn *c, struct orfa_rxmsg *rx, int running)
{
	struct orfa_msg m;
	const char *why = NULL;
	struct pending *p = take_pending(c, rx->hdr.req_id);

	if (!p) {
		error_at(c, "reply to an unknown request id", 0);
		return -1;
	}
	memset(&m, 0, sizeof(m));
	m.hdr = rx->hdr;
	if (orfa_rep_decode(&m, rx->body, &why) < 0) {
		fprintf(stderr, "orfa-load: conn %d: bad reply: %s\n", c->id, why);
		nerrors++;
		return -1;
	}
	double lat = (now() - p->t0) * 1e6;
	nrequests++;
	if (c->phase == PH_RUN && nsamples < MAX_SAMPLES)
		samples[nsamples++] = lat;
	if (m.hdr.status) {
		error_at(c, orfa_op_name(p->op), (int)m.hdr.status);
		return -1;
	}
	switch (p->op) {
	case ORFA_OP_HELLO:
		c->root = m.a.hello_rep.root_nodeid;
		c->phase = PH_MKDIR;
		return setup_step(c);
	case ORFA_OP_MKDIR:
		c->dir = m.a.entry.nodeid;
		c->phase = PH_CREATE;
		return setup_step(c);
	case ORFA_OP_CREATE:
		if (c->phase == PH_CREATE) {
			c->file = m.a.create_rep.entry.nodeid;
			c->fh = m.a.create_rep.fh;
			c->phase = PH_FILL;
			return setup_step(c);
		}
		c->chain_node = m.a.create_rep.entry.nodeid;
		c->chain_fh = m.a.create_rep.fh;
		c->chain_serial = p->serial;
		c->chain_step = 1;
		/* the created node's lookup reference goes back at once */
		{
			uint8_t data[ORFA_FORGET_ONE_SIZE];
			struct orfa_forget_one f = { c->chain_node, 1 };
			struct orfa_msg fm;

			orfa_forget_put(data, 0, &f);
			msg(&fm, c, ORFA_OP_FORGET);
			fm.a.forget.count = 1;
			if (send_req(c, &fm, data, sizeof(data), NULL))
				return -1;
		}
		break;
	case ORFA_OP_WRITE:
		if (c->phase == PH_FILL) {
			if (m.a.write_rep.written != FILE_SIZE) {
				error_at(c, "short initial write", 0);
				return -1;
			}
			c->phase = PH_RUN;
		} else if (m.a.write_rep.written != IO_SIZE) {
			error_at(c, "short write", 0);
		}
		break;
	case ORFA_OP_READ:
		if (rx->hdr.data_len != IO_SIZE) {
			error_at(c, "short read", 0);
		} else {
			/* Writes to the same block may be in flight; only blocks
			 * not written meanwhile are compared. */
			int racing = 0;
			for (int i = 0; i < c->ninflight; i++)
				if (c->inflight[i].op == ORFA_OP_WRITE &&
				    c->inflight[i].offset == p->offset)
					racing = 1;
			if (!racing &&
			    memcmp(rx->data, c->content + p->offset, IO_SIZE) != 0)
				error_at(c, "read data differs from what was written", 0);
		}
		break;
	case ORFA_OP_LOOKUP:
		if (m.a.entry.nodeid != c->file)
			error_at(c, "lookup returned another node", 0);
		c->lookups_owed++;
		break;
	case ORFA_OP_UNLINK:
		c->chain_step = 0;
		break;
	default:
		break;
	}
	if (c->phase == PH_RUN && !running)
		c->phase = PH_DRAIN;
	while (c->phase == PH_RUN && c->ninflight < opt.depth)
		if (issue(c))
			return -1;
	return 0;
}

static long rss_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	long v = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, strlen(key)) == 0)
			v = atol(line + strlen(key) + 1);
	fclose(f);
	return v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fprintf(stderr, "usage: orfa-load --addr HOST:PORT [--conns N] "
		"[--seconds S] [--depth D] [--server-pid PID]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "addr", 1, 0, 'a' }, { "conns", 1, 0, 'c' },
		{ "seconds", 1, 0, 's' }, { "depth", 1, 0, 'd' },
		{ "server-pid", 1, 0, 'p' }, { 0, 0, 0, 0 } };
	char tp[16], host[256], port[32];
	int o;

	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 'a':
			if (orfa_parse_address(optarg, "7207", tp, sizeof(tp), host,
					       sizeof(host), port, sizeof(port)))
				usage();
			opt.host = host;
			opt.port = port;
			break;
		case 'c': opt.conns = atoi(optarg); break;
		case 's': opt.seconds = atoi(optarg); break;
		case 'd': opt.depth = atoi(optarg); break;
		case 'p': opt.server_pid = atoi(optarg); break;
		default: usage();
		}
	}
	if (!opt.host || opt.conns < 1 || opt.seconds < 1 || opt.depth < 1 ||
	    opt.depth > 8)
		usage();
	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	srand(12345);
	samples = malloc(MAX_SAMPLES * sizeof(*samples));
	struct lconn *cs = calloc((size_t)opt.conns, sizeof(*cs));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (!samples || !cs || ep < 0) {
		perror("orfa-load");
		return 1;
	}

	struct orfa_tp_opts to;
	orfa_tp_opts_default(&to);
	to.flags = ORFA_TP_NONBLOCK;
	int connected = 0;
	for (int i = 0; i < opt.conns; i++) {
		struct lconn *c = &cs[i];
		c->id = i;
		int rc = orfa_conn_connect("tcp", opt.host, opt.port, &to, &c->conn);
		if (rc < 0) {
			fprintf(stderr, "orfa-load: connection %d: %s\n", i, strerror(-rc));
			nerrors++;
			c->phase = PH_DONE;
			continue;
		}
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		epoll_ctl(ep, EPOLL_CTL_ADD, orfa_conn_fd(c->conn), &ev);
		if (start_hello(c) < 0) {
			error_at(c, "HELLO", EIO);
			c->phase = PH_DONE;
		}
		connected++;
	}

	double t_start = now(), t_end = t_start + opt.seconds;
	double hard_end = t_end + 30, last_mem = 0;
	long peak_rss = -1;
	int live = connected;
	uint64_t req_at_start = 0;
	int started = 0;
	while (live > 0 && now() < hard_end) {
		struct epoll_event evs[64];
		int running = now() < t_end;
		int n = epoll_wait(ep, evs, 64, 100);

		if (!started) {
			int all = 1;
			for (int i = 0; i < opt.conns; i++)
				if (cs[i].phase < PH_RUN)
					all = 0;
			if (all) {
				started = 1;
				req_at_start = nrequests;
				t_start = now();
				t_end = t_start + opt.seconds;
				hard_end = t_end + 30;
			}
		}
		for (int i = 0; i < n; i++) {
			struct lconn *c = evs[i].data.ptr;
			struct orfa_rxmsg rx;
			int rc = 0;

			while (c->phase != PH_DONE &&
			       (rc = orfa_conn_recv(c->conn, &rx)) == 0) {
				int bad = on_reply(c, &rx, running);
				orfa_conn_recv_done(c->conn, &rx);
				if (bad || (c->phase == PH_DRAIN && c->ninflight == 0 &&
					    c->chain_step == 0)) {
					c->phase = PH_DONE;
					live--;
				}
			}
			if (c->phase != PH_DONE && rc != -EAGAIN) {
				error_at(c, "connection", -rc);
				c->phase = PH_DONE;
				live--;
			}
		}
		/* A draining connection with a chain left keeps issuing it. */
		for (int i = 0; i < opt.conns && !running; i++) {
			struct lconn *c = &cs[i];
			if (c->phase == PH_RUN)
				c->phase = PH_DRAIN;
			if (c->phase == PH_DRAIN && c->ninflight == 0) {
				if (c->chain_step == 1 || c->chain_step == 2) {
					if (issue(c))
						c->phase = PH_DONE, live--;
				} else if (c->chain_step == 0) {
					c->phase = PH_DONE;
					live--;
				}
			}
		}
		for (int i = 0; i < opt.conns; i++)
			if (cs[i].conn && orfa_conn_want_write(cs[i].conn))
				orfa_conn_flush(cs[i].conn);
		if (opt.server_pid && now() - last_mem > 0.25) {
			long r = rss_kib(opt.server_pid, "VmRSS:");
			if (r > peak_rss)
				peak_rss = r;
			last_mem = now();
		}
	}
	double elapsed = now() - t_start;
	int stuck = 0;
	for (int i = 0; i < opt.conns; i++) {
		if (cs[i].phase != PH_DONE)
			stuck++;
		if (cs[i].conn)
			orfa_conn_put(&cs[i].conn);
	}
	qsort(samples, nsamples, sizeof(*samples), cmp_double);
	printf("connections=%d\n", connected);
	printf("requests=%" PRIu64 "\n", nrequests);
	printf("requests_per_s=%.0f\n",
	       started && elapsed > 0 ? (double)(nrequests - req_at_start) / elapsed : 0);
	printf("errors=%" PRIu64 "\n", nerrors);
	printf("stuck_connections=%d\n", stuck);
	if (nsamples) {
		printf("p50_us=%.0f\n", samples[nsamples / 2]);
		printf("p99_us=%.0f\n", samples[(size_t)((double)nsamples * 0.99)]);
		printf("p999_us=%.0f\n", samples[(size_t)((double)nsamples * 0.999)]);
		printf("max_us=%.0f\n", samples[nsamples - 1]);
	}
	if (opt.server_pid) {
		printf("server_peak_rss_kib=%ld\n", peak_rss);
		printf("server_hwm_kib=%ld\n", rss_kib(opt.server_pid, "VmHWM:"));
	}
	free(samples);
	free(cs);
	close(ep);
	return (nerrors || stuck || connected != opt.conns || !started) ? 1 : 0;
}
