/*
 * probe_lib.c - the synchronous ORFA test client shared by the server
 * tests (orfa_probe, orfa_contain): TAP output, a blocking client over the
 * TCP transport and the codec, one helper per operation, raw-socket
 * helpers for input no real client would send, and a look at the
 * server's log.  See probe_lib.h.
 */
#include "probe_lib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

char g_host[256], g_port[16];
const char *g_log;
const char *g_export = "/";
void (*g_reply_watch)(const struct orfa_msg *rep, const void *data,
		      size_t len);
int g_n, g_failed;

/* ---- TAP ------------------------------------------------------------------ */

int __attribute__((format(printf, 2, 3)))
ok(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%s %d - ", cond ? "ok" : "not ok", ++g_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		g_failed++;
	return cond;
}

void __attribute__((format(printf, 2, 3)))
skip(const char *why, const char *fmt, ...)
{
	va_list ap;

	printf("ok %d - ", ++g_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # SKIP %s\n", why);
	fflush(stdout);
}

void __attribute__((format(printf, 1, 2))) diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- a synchronous client -------------------------------------------------- */

void cred_fill(struct orfa_cred *cr)
{
	memset(cr, 0, sizeof(*cr));
	cr->uid = (uint32_t)geteuid();
	cr->gid = (uint32_t)getegid();
	cr->pid = (uint32_t)getpid();
	cr->umask = 022;
}

void req_init(struct pc *p, struct orfa_msg *m, unsigned op)
{
	orfa_msg_init(m, op, ++p->next_id);
	if (op != ORFA_OP_HELLO && op != ORFA_OP_PING)
		cred_fill(&m->cred);
}

int pc_connect(struct pc *p)
{
	struct orfa_tp_opts o;

	memset(p, 0, sizeof(*p));
	orfa_tp_opts_default(&o);
	o.max_data = ORFA_MAX_DATA_LIMIT;
	return orfa_conn_connect("tcp", g_host, g_port, &o, &p->c);
}

void pc_close(struct pc *p)
{
	if (p->c)
		orfa_conn_put(&p->c);
}

/* Local address of p's socket as the server logs it ("127.0.0.1:N"). */
void sock_name(int fd, char *buf, size_t sz)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	buf[0] = '\0';
	if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		snprintf(buf, sz, "127.0.0.1:%u", ntohs(sa.sin_port));
}

int pc_send(struct pc *p, struct orfa_msg *m, const void *data,
		   size_t dlen)
{
	uint8_t head[ORFA_HDR_SIZE + ORFA_MAX_BODY];
	struct orfa_txmsg tx = { .fd = -1 };
	struct iovec iov = { (void *)data, dlen };
	ssize_t n;

	n = orfa_req_encode(m, head + ORFA_HDR_SIZE, ORFA_MAX_BODY);
	if (n < 0)
		return (int)n;
	m->hdr.data_len = (uint32_t)dlen;
	orfa_hdr_encode(head, &m->hdr);
	tx.head = head;
	tx.head_len = ORFA_HDR_SIZE + (size_t)n;
	if (dlen) {
		tx.iov = &iov;
		tx.iovcnt = 1;
	}
	return orfa_conn_send(p->c, &tx);
}

/* Receive one reply: 0, or a negative errno of the transport/decoder. */
int pc_recv(struct pc *p, struct orfa_msg *rep, void *rdata,
		   size_t rcap, size_t *rlen)
{
	struct orfa_rxmsg rx;
	const char *why = NULL;
	int ret;

	memset(&rx, 0, sizeof(rx));
	ret = orfa_conn_recv(p->c, &rx);
	if (ret)
		return ret;
	memset(rep, 0, sizeof(*rep));
	rep->hdr = rx.hdr;
	ret = orfa_rep_decode(rep, rx.body, &why);
	if (ret) {
		diag("bad reply to opcode %u: %s", rx.hdr.opcode,
		     why ? why : "?");
	} else {
		if (g_reply_watch)
			g_reply_watch(rep, rx.data, rx.hdr.data_len);
		size_t n = rx.hdr.data_len < rcap ? rx.hdr.data_len : rcap;

		if (rdata && n)
			memcpy(rdata, rx.data, n);
		if (rlen)
			*rlen = rx.hdr.data_len;
	}
	rep->name = rep->name2 = NULL;
	rep->data = NULL;
	orfa_conn_recv_done(p->c, &rx);
	return ret;
}

/*
 * One request, one reply.  Returns the reply status (0 or a positive
 * errno), or a negative errno when no valid reply came.
 */
int pc_call(struct pc *p, struct orfa_msg *m, const void *data,
		   size_t dlen, struct orfa_msg *rep, void *rdata,
		   size_t rcap, size_t *rlen)
{
	struct orfa_msg tmp;
	uint64_t id = m->hdr.req_id;
	int ret;

	if (!rep)
		rep = &tmp;
	if (rlen)
		*rlen = 0;
	ret = pc_send(p, m, data, dlen);
	if (ret)
		return ret;
	ret = pc_recv(p, rep, rdata, rcap, rlen);
	if (ret)
		return ret;
	if (rep->hdr.req_id != id || rep->hdr.opcode != m->hdr.opcode) {
		diag("reply id %llu op %u for request %llu op %u",
		     (unsigned long long)rep->hdr.req_id, rep->hdr.opcode,
		     (unsigned long long)id, m->hdr.opcode);
		return -EPROTO;
	}
	return (int)rep->hdr.status;
}

int pc_hello_v(struct pc *p, uint32_t version, const char *export,
		      struct orfa_msg *rep, char *reason, size_t rsz)
{
	struct orfa_msg m;
	size_t len = 0;
	int st;

	req_init(p, &m, ORFA_OP_HELLO);
	m.a.hello.magic = ORFA_MAGIC;
	m.a.hello.version = version;
	m.a.hello.max_data = ORFA_DEFAULT_MAX_DATA;
	m.a.hello.features = ORFA_FEAT_ALL;
	m.name = export;
	m.namelen = (uint32_t)strlen(export);
	if (reason && rsz)
		reason[0] = '\0';
	st = pc_call(p, &m, NULL, 0, rep, reason, rsz ? rsz - 1 : 0, &len);
	if (reason && rsz)
		reason[len < rsz ? len : rsz - 1] = '\0';
	if (st == 0) {
		p->root = rep->a.hello_rep.root_nodeid;
		p->max_data = (uint32_t)rep->a.hello_rep.max_data;
		p->root_attr = rep->a.hello_rep.root_attr;
	}
	return st;
}

/* Connect and say HELLO for g_export: 0 or non-zero. */
int pc_open(struct pc *p)
{
	struct orfa_msg rep;
	int ret = pc_connect(p);

	if (ret)
		return ret;
	ret = pc_hello_v(p, ORFA_PROTO_VERSION, g_export, &rep, NULL, 0);
	if (ret)
		pc_close(p);
	return ret;
}

/* ---- operations ------------------------------------------------------------- */

int op_ping(struct pc *p)
{
	struct orfa_msg m;

	req_init(p, &m, ORFA_OP_PING);
	return pc_call(p, &m, NULL, 0, NULL, NULL, 0, NULL);
}

int op_lookup(struct pc *p, uint64_t parent, const char *name,
		     struct orfa_entry *e)
{
	struct orfa_msg m, rep;
	int st;

	req_init(p, &m, ORFA_OP_LOOKUP);
	m.a.lookup.parent = parent;
	m.name = name;
	m.namelen = (uint32_t)strlen(name);
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	if (st == 0 && e)
		*e = rep.a.entry;
	return st;
}

int op_forget(struct pc *p, const uint64_t *nodes,
		     const uint64_t *counts, unsigned n)
{
	uint8_t buf[ORFA_FORGET_ONE_SIZE * 64];
	struct orfa_msg m;

	if (n > 64)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		struct orfa_forget_one f = { nodes[i], counts[i] };

		orfa_forget_put(buf, i, &f);
	}
	req_init(p, &m, ORFA_OP_FORGET);
	m.a.forget.count = n;
	return pc_send(p, &m, buf, n * ORFA_FORGET_ONE_SIZE);
}

int op_getattr(struct pc *p, uint64_t node, uint64_t fh,
		      struct orfa_attr *a)
{
	struct orfa_msg m, rep;
	int st;

	req_init(p, &m, ORFA_OP_GETATTR);
	m.a.getattr.nodeid = node;
	m.a.getattr.fh = fh;
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	if (st == 0 && a)
		*a = rep.a.attr;
	return st;
}

int op_mkdir(struct pc *p, uint64_t parent, const char *name,
		    uint32_t mode, struct orfa_entry *e)
{
	struct orfa_msg m, rep;
	int st;

	req_init(p, &m, ORFA_OP_MKDIR);
	m.a.mkdir.parent = parent;
	m.a.mkdir.mode = mode;
	m.name = name;
	m.namelen = (uint32_t)strlen(name);
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	if (st == 0 && e)
		*e = rep.a.entry;
	return st;
}

int op_create(struct pc *p, uint64_t parent, const char *name,
		     uint32_t mode, uint32_t flags, struct orfa_entry *e,
		     uint64_t *fh)
{
	struct orfa_msg m, rep;
	int st;

	req_init(p, &m, ORFA_OP_CREATE);
	m.a.create.parent = parent;
	m.a.create.mode = mode;
	m.a.create.flags = flags;
	m.name = name;
	m.namelen = (uint32_t)strlen(name);
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	if (st == 0) {
		if (e)
			*e = rep.a.create_rep.entry;
		*fh = rep.a.create_rep.fh;
	}
	return st;
}

int op_open(struct pc *p, unsigned op, uint64_t node, uint32_t flags,
		   uint64_t *fh, struct orfa_attr *a)
{
	struct orfa_msg m, rep;
	int st;

	req_init(p, &m, op);
	m.a.open.nodeid = node;
	m.a.open.flags = flags;
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	if (st == 0) {
		*fh = rep.a.open_rep.fh;
		if (a)
			*a = rep.a.open_rep.attr;
	}
	return st;
}

/* FLUSH, RELEASE, RELEASEDIR, FSYNC, FSYNCDIR. */
int op_fh(struct pc *p, unsigned op, uint64_t node, uint64_t fh,
		 uint64_t owner)
{
	struct orfa_msg m;

	req_init(p, &m, op);
	m.a.fh.nodeid = node;
	m.a.fh.fh = fh;
	m.a.fh.lock_owner = owner;
	return pc_call(p, &m, NULL, 0, NULL, NULL, 0, NULL);
}

int op_write(struct pc *p, uint64_t node, uint64_t fh, uint64_t off,
		    const void *buf, size_t len, uint64_t *written,
		    struct orfa_attr *a)
{
	struct orfa_msg m, rep;
	int st;

	req_init(p, &m, ORFA_OP_WRITE);
	m.a.write.nodeid = node;
	m.a.write.fh = fh;
	m.a.write.offset = off;
	st = pc_call(p, &m, buf, len, &rep, NULL, 0, NULL);
	if (st == 0) {
		if (written)
			*written = rep.a.write_rep.written;
		if (a)
			*a = rep.a.write_rep.attr;
	}
	return st;
}

void read_req(struct pc *p, struct orfa_msg *m, uint64_t node,
		     uint64_t fh, uint64_t off, uint32_t size)
{
	req_init(p, m, ORFA_OP_READ);
	m->a.read.nodeid = node;
	m->a.read.fh = fh;
	m->a.read.offset = off;
	m->a.read.size = size;
}

int op_read(struct pc *p, uint64_t node, uint64_t fh, uint64_t off,
		   uint32_t size, void *buf, size_t *len)
{
	struct orfa_msg m;

	read_req(p, &m, node, fh, off, size);
	return pc_call(p, &m, NULL, 0, NULL, buf, size, len);
}

int op_unlink(struct pc *p, unsigned op, uint64_t parent,
		     const char *name)
{
	struct orfa_msg m;

	req_init(p, &m, op);
	m.a.unlink.parent = parent;
	m.name = name;
	m.namelen = (uint32_t)strlen(name);
	return pc_call(p, &m, NULL, 0, NULL, NULL, 0, NULL);
}

void lk_req(struct pc *p, struct orfa_msg *m, unsigned op,
		   uint64_t node, uint64_t fh, uint64_t owner, uint32_t type,
		   uint64_t start, uint64_t end, uint32_t flags)
{
	req_init(p, m, op);
	m->a.lk.nodeid = node;
	m->a.lk.fh = fh;
	m->a.lk.owner = owner;
	m->a.lk.lock.type = type;
	m->a.lk.lock.start = start;
	m->a.lk.lock.end = end;
	m->a.lk.lock.pid = (uint32_t)owner + 1000;
	m->a.lk.flags = flags;
}

int op_setlk(struct pc *p, uint64_t node, uint64_t fh, uint64_t owner,
		    uint32_t type, uint64_t start, uint64_t end)
{
	struct orfa_msg m;

	lk_req(p, &m, ORFA_OP_SETLK, node, fh, owner, type, start, end, 0);
	return pc_call(p, &m, NULL, 0, NULL, NULL, 0, NULL);
}

int op_getlk(struct pc *p, uint64_t node, uint64_t fh, uint64_t owner,
		    uint32_t type, uint64_t start, uint64_t end,
		    struct orfa_lock *out)
{
	struct orfa_msg m, rep;
	int st;

	lk_req(p, &m, ORFA_OP_GETLK, node, fh, owner, type, start, end, 0);
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	if (st == 0)
		*out = rep.a.lock;
	return st;
}

void flock_req(struct pc *p, struct orfa_msg *m, uint64_t node,
		      uint64_t fh, uint32_t op)
{
	req_init(p, m, ORFA_OP_FLOCK);
	m->a.flock.nodeid = node;
	m->a.flock.fh = fh;
	m->a.flock.owner = fh;
	m->a.flock.op = op;
}

/* Nothing arrives on p within ms milliseconds (a parked request). */
int pc_quiet(struct pc *p, int ms)
{
	struct pollfd pfd = { .fd = orfa_conn_fd(p->c), .events = POLLIN };

	return poll(&pfd, 1, ms) == 0;
}

/* The reply to a request sent earlier, waiting at most WAIT_MS (nothing
 * else may be outstanding on p): 0 or a negative errno. */
int pc_wait_reply(struct pc *p, struct orfa_msg *rep)
{
	if (pc_quiet(p, WAIT_MS))
		return -ETIMEDOUT;
	return pc_recv(p, rep, NULL, 0, NULL);
}

/* Readdir through every cookie with reply size sz; names collected into
 * names (NUL-separated) and *count.  Plus: nodeids of "f" written to
 * *fnode and references counted into *refs. */
int read_dir(struct pc *p, unsigned op, uint64_t node, uint64_t fh,
		    uint32_t sz, char *names, size_t ncap, int *count,
		    uint64_t *refs)
{
	uint8_t *buf = malloc(sz);
	uint64_t cookie = 0;
	size_t used = 0;
	int st = 0, rounds = 0;

	*count = 0;
	if (!buf)
		return -ENOMEM;
	for (;;) {
		struct orfa_msg m;
		size_t len = 0, off = 0;
		struct orfa_dirent d;
		struct orfa_entry e;
		const char *name;
		int got = 0, r;

		if (++rounds > 10000) {
			st = -ELOOP;
			break;
		}
		req_init(p, &m, op);
		m.a.readdir.nodeid = node;
		m.a.readdir.fh = fh;
		m.a.readdir.cookie = cookie;
		m.a.readdir.size = sz;
		st = pc_call(p, &m, NULL, 0, NULL, buf, sz, &len);
		if (st)
			break;
		if (len == 0)
			break;
		while ((r = orfa_dirent_next(buf, len, &off,
					     op == ORFA_OP_READDIRPLUS, &d,
					     &e, &name)) == 1) {
			if (used + d.namelen + 1 < ncap) {
				memcpy(names + used, name, d.namelen);
				used += d.namelen;
				names[used++] = '\0';
			}
			if (op == ORFA_OP_READDIRPLUS && e.nodeid && refs)
				(*refs)++;
			(*count)++;
			cookie = d.cookie;
			got++;
		}
		if (r < 0 || got == 0) {
			st = -EPROTO;
			break;
		}
	}
	free(buf);
	return st;
}

int has_name(const char *names, int count, const char *name)
{
	for (int i = 0; i < count; i++) {
		if (strcmp(names, name) == 0)
			return 1;
		names += strlen(names) + 1;
	}
	return 0;
}

uint8_t pattern(uint64_t off, unsigned seed)
{
	return (uint8_t)(off * 7 + (off >> 12) + seed * 13);
}

void fill(uint8_t *b, size_t len, uint64_t off, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		b[i] = pattern(off + i, seed);
}

int check(const uint8_t *b, size_t len, uint64_t off, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		if (b[i] != pattern(off + i, seed))
			return 0;
	return 1;
}

/* ---- the server's log ------------------------------------------------------- */

/* Wait (bounded) for a log line containing a and b. */
int log_has(const char *a, const char *b)
{
	char line[2048];

	if (!g_log)
		return 0;
	for (int i = 0; i < WAIT_MS / 50; i++) {
		FILE *f = fopen(g_log, "r");

		if (f) {
			while (fgets(line, sizeof(line), f)) {
				if (strstr(line, a) && (!b || strstr(line, b))) {
					fclose(f);
					return 1;
				}
			}
			fclose(f);
		}
		usleep(50 * 1000);
	}
	return 0;
}

/* A plain TCP connection; its local address goes to me. */
int raw_connect(char *me, size_t sz)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_port = htons((uint16_t)atoi(g_port));
	inet_pton(AF_INET, g_host, &sa.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	sock_name(fd, me, sz);
	return fd;
}

int raw_write(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Encode m (with dlen bytes of zero data) into buf: the frame length. */
size_t raw_frame(uint8_t *buf, size_t cap, struct orfa_msg *m,
			size_t dlen)
{
	ssize_t n = orfa_req_encode(m, buf + ORFA_HDR_SIZE,
				    cap - ORFA_HDR_SIZE - dlen);

	if (n < 0)
		abort();
	m->hdr.data_len = (uint32_t)dlen;
	orfa_hdr_encode(buf, &m->hdr);
	memset(buf + ORFA_HDR_SIZE + n, 0, dlen);
	return ORFA_HDR_SIZE + (size_t)n + dlen;
}

/* Read exactly len bytes (bounded wait): 0 or -1. */
int raw_read(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, WAIT_MS) <= 0)
			return -1;
		n = recv(fd, p, len, 0);
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One reply frame: header decoded, body/data discarded. */
int raw_reply(int fd, struct orfa_hdr *h)
{
	uint8_t hb[ORFA_HDR_SIZE], junk[4096];
	struct orfa_limits lim = { ORFA_MAX_BODY, ORFA_MAX_DATA_LIMIT };
	size_t rest;

	if (raw_read(fd, hb, sizeof(hb)))
		return -1;
	/* -ENOSYS: an unknown opcode, echoed in an ENOSYS reply. */
	if (orfa_hdr_decode(hb, h, &lim, NULL) < 0 &&
	    !(h->flags & ORFA_F_REPLY && h->status == ENOSYS))
		return -1;
	rest = (size_t)h->body_len + h->data_len;
	while (rest) {
		size_t k = rest < sizeof(junk) ? rest : sizeof(junk);

		if (raw_read(fd, junk, k))
			return -1;
		rest -= k;
	}
	return 0;
}

int raw_hello(int fd)
{
	uint8_t buf[256];
	struct orfa_msg m;
	struct orfa_hdr h;

	orfa_msg_init(&m, ORFA_OP_HELLO, 1);
	m.a.hello.magic = ORFA_MAGIC;
	m.a.hello.version = ORFA_PROTO_VERSION;
	m.a.hello.max_data = 1 << 20;
	m.name = g_export;
	m.namelen = (uint32_t)strlen(g_export);
	if (raw_write(fd, buf, raw_frame(buf, sizeof(buf), &m, 0)))
		return -1;
	return raw_reply(fd, &h) == 0 && h.status == 0 ? 0 : -1;
}

/* The server closed fd (EOF or reset) within the bound. */
int raw_closed(int fd)
{
	uint8_t junk[4096];

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, WAIT_MS) <= 0)
			return 0;
		n = recv(fd, junk, sizeof(junk), 0);
		if (n <= 0)
			return 1;
	}
}
