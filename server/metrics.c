/*
 * metrics.c - orfad's counters and its Prometheus endpoint (metrics.h).
 *
 * Counting: one struct mop per (export slot, transport, opcode), slot 0
 * for requests before HELLO bound an export; relaxed atomic adds, no lock.
 * Latency is the time from the start of a request's dispatch to its
 * answer (or to its parking, for a lock request that waits), in a
 * log-scale histogram: bucket k holds runs up to 8 us * 2^k.
 *
 * Serving: a thread of its own with its own event base and evhttp, so a
 * slow scraper never holds a loop of the server.  GET /metrics only; the
 * page is built into an evbuffer from a racy but harmless snapshot of the
 * counters (each a relaxed load).  Not here: what is counted where (the
 * hooks in dispatch.c, request.c, conn.c, bounds.c).
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec.h"
#include "exports.h"
#include "orfa_proto.h"
#include "transport.h"

#define NBUCKET		16		/* 8 us .. 262 ms, then +Inf */
#define BUCKET0_NS	8000ull

/* Two atomic adds per request (sum_ns, one bucket; err only on error):
 * the request count is the sum of the buckets. */
struct mop {
	uint64_t err, sum_ns;
	uint64_t bucket[NBUCKET + 1];	/* not cumulative; [NBUCKET]: +Inf */
};

struct mexp {
	struct mop op[METRICS_NTP][ORFA_OP_MAX];
	uint64_t rbytes[METRICS_NTP], wbytes[METRICS_NTP];
};

/* The limits of bounds.c, found by a piece of their log line. */
static const struct {
	const char *match, *name;
} limit_tab[] = {
	{ "no export's networks", "networks" },
	{ "--max-conns-per-addr", "max_conns_per_addr" },
	{ "--max-conns)", "max_conns" },
	{ "to make room", "handshake_dropped_for_room" },
	{ "descriptors", "descriptors" },
	{ "cannot accept", "accept_failed" },
	{ "--hello-timeout", "hello_timeout" },
	{ "--msg-timeout", "msg_timeout" },
	{ "--idle-timeout", "idle_timeout" },
	{ "--max-queued", "max_queued" },
	{ "--max-nodes", "max_nodes" },
	{ "--max-files", "max_files" },
	{ "", "other" },		/* last: matches anything */
};
#define NLIMIT (sizeof(limit_tab) / sizeof(limit_tab[0]))

static struct {
	int on;				/* atomic: counters allocated */
	char (*name)[256];		/* labels of the slots in use */
	int nslot;			/* capacity: slot 0 + exports */
	int nused;			/* atomic: slots named so far */
	struct mexp *slot;
	uint64_t conns[METRICS_NTP], conns_total[METRICS_NTP];
	uint64_t limits[NLIMIT];
	evutil_socket_t fd;
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
	int started;
} m = { .fd = -1 };

static const char *const tp_name[METRICS_NTP] = { "tcp", "rdma" };

/* ---- counting --------------------------------------------------------- */

static void add(uint64_t *p, uint64_t n)
{
	__atomic_fetch_add(p, n, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static struct mexp *slot_of(int ex)
{
	if (!__atomic_load_n(&m.on, __ATOMIC_ACQUIRE))
		return NULL;
	ex = ex < 0 || ex + 1 >= __atomic_load_n(&m.nused, __ATOMIC_ACQUIRE) ?
	     0 : ex + 1;
	return &m.slot[ex];
}

static unsigned bucket_of(uint64_t ns)
{
	uint64_t q = ns / BUCKET0_NS;
	unsigned k;

	if (q == 0)
		return 0;
	k = 64 - (unsigned)__builtin_clzll(q);	/* q < 2^k */
	if (ns <= BUCKET0_NS << (k - 1))
		k--;				/* exactly a bound */
	return k > NBUCKET ? NBUCKET : k;
}

void metrics_request(int ex, enum metrics_tp tp, unsigned op, int ret,
		     uint64_t ns)
{
	struct mexp *s = slot_of(ex);
	struct mop *o;

	if (!s || op >= ORFA_OP_MAX || tp >= METRICS_NTP)
		return;
	o = &s->op[tp][op];
	if (ret < 0)
		add(&o->err, 1);
	add(&o->sum_ns, ns);
	add(&o->bucket[bucket_of(ns)], 1);
}

void metrics_bytes(int ex, enum metrics_tp tp, int written, uint64_t n)
{
	struct mexp *s = slot_of(ex);

	if (!s || tp >= METRICS_NTP || !n)
		return;
	add(written ? &s->wbytes[tp] : &s->rbytes[tp], n);
}

void metrics_conn(enum metrics_tp tp, int delta)
{
	if (!__atomic_load_n(&m.on, __ATOMIC_ACQUIRE) || tp >= METRICS_NTP)
		return;
	add(&m.conns[tp], (uint64_t)(int64_t)delta);
	if (delta > 0)
		add(&m.conns_total[tp], (uint64_t)delta);
}

void metrics_limit(const char *text)
{
	if (!__atomic_load_n(&m.on, __ATOMIC_ACQUIRE))
		return;
	for (size_t i = 0; i < NLIMIT; i++)
		if (strstr(text, limit_tab[i].match)) {
			add(&m.limits[i], 1);
			return;
		}
}

int metrics_on(void)
{
	return __atomic_load_n(&m.on, __ATOMIC_RELAXED);
}

/* Requests of o: the sum of its buckets. */
static uint64_t op_count(const struct mop *o)
{
	uint64_t n = 0;

	for (int k = 0; k <= NBUCKET; k++)
		n += get(&o->bucket[k]);
	return n;
}

int metrics_init(const struct orfa_exports *ex)
{
	m.nslot = ex->n + 1 + METRICS_SPARE_EXPORTS;
	m.slot = calloc((size_t)m.nslot, sizeof(*m.slot));
	m.name = calloc((size_t)m.nslot, sizeof(*m.name));
	if (!m.slot || !m.name) {
		free(m.slot);
		free(m.name);
		return -ENOMEM;
	}
	snprintf(m.name[0], sizeof(m.name[0]), "(none)");
	for (int i = 0; i < ex->n; i++)
		snprintf(m.name[i + 1], sizeof(m.name[0]), "%s",
			 ex->v[i].name);
	__atomic_store_n(&m.nused, ex->n + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&m.on, 1, __ATOMIC_RELEASE);
	return 0;
}

int metrics_export_idx(const char *name)
{
	int n;

	if (!__atomic_load_n(&m.on, __ATOMIC_ACQUIRE))
		return -1;
	n = __atomic_load_n(&m.nused, __ATOMIC_ACQUIRE);
	for (int i = 1; i < n; i++)
		if (strcmp(m.name[i], name) == 0)
			return i - 1;
	if (n >= m.nslot)
		return -1;	/* counted under "(none)" */
	snprintf(m.name[n], sizeof(m.name[0]), "%s", name);
	__atomic_store_n(&m.nused, n + 1, __ATOMIC_RELEASE);
	return n - 1;
}

/* ---- the page ---------------------------------------------------------- */

/* The label of slot i: the export's name, escaped for a label value. */
static void slot_label(int i, char *out, size_t len)
{
	const char *s = m.name[i];
	size_t o = 0;

	for (; *s && o + 3 < len; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n') {
			out[o++] = '\\';
			out[o++] = *s == '\n' ? 'n' : *s;
		} else {
			out[o++] = *s;
		}
	}
	out[o] = '\0';
}

static void head(struct evbuffer *b, const char *name, const char *type,
		 const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
			    name, type);
}

/* One family of per-opcode series: which = 0 requests, 1 errors. */
static void page_ops(struct evbuffer *b, int which)
{
	char ex[600];

	for (int i = 0; i < __atomic_load_n(&m.nused, __ATOMIC_ACQUIRE); i++) {
		slot_label(i, ex, sizeof(ex));
		for (int t = 0; t < METRICS_NTP; t++)
			for (unsigned op = 0; op < ORFA_OP_MAX; op++) {
				const struct mop *o = &m.slot[i].op[t][op];
				uint64_t n = op_count(o);

				if (!n)
					continue;
				evbuffer_add_printf(b, "orfad_%s_total{export="
					"\"%s\",transport=\"%s\",op=\"%s\"} "
					"%llu\n", which ? "request_errors" :
					"requests", ex, tp_name[t],
					orfa_op_name(op), (unsigned long long)
					(which ? get(&o->err) : n));
			}
	}
}

static void page_hist_one(struct evbuffer *b, const char *labels,
			  const struct mop *o)
{
	uint64_t cum = 0;

	for (int k = 0; k <= NBUCKET; k++) {
		cum += get(&o->bucket[k]);
		if (k < NBUCKET)
			evbuffer_add_printf(b, "orfad_request_duration_seconds"
				"_bucket{%s,le=\"%g\"} %llu\n", labels,
				(double)(BUCKET0_NS << k) / 1e9,
				(unsigned long long)cum);
		else
			evbuffer_add_printf(b, "orfad_request_duration_seconds"
				"_bucket{%s,le=\"+Inf\"} %llu\n", labels,
				(unsigned long long)cum);
	}
	evbuffer_add_printf(b, "orfad_request_duration_seconds_sum{%s} %.9f\n"
			    "orfad_request_duration_seconds_count{%s} %llu\n",
			    labels, (double)get(&o->sum_ns) / 1e9, labels,
			    (unsigned long long)cum);
}

static void page_hist(struct evbuffer *b)
{
	char ex[600], labels[800];

	for (int i = 0; i < __atomic_load_n(&m.nused, __ATOMIC_ACQUIRE); i++) {
		slot_label(i, ex, sizeof(ex));
		for (int t = 0; t < METRICS_NTP; t++)
			for (unsigned op = 0; op < ORFA_OP_MAX; op++) {
				const struct mop *o = &m.slot[i].op[t][op];

				if (!op_count(o))
					continue;
				snprintf(labels, sizeof(labels), "export=\"%s\","
					 "transport=\"%s\",op=\"%s\"", ex,
					 tp_name[t], orfa_op_name(op));
				page_hist_one(b, labels, o);
			}
	}
}

static void page_bytes(struct evbuffer *b, int written)
{
	char ex[600];

	for (int i = 0; i < __atomic_load_n(&m.nused, __ATOMIC_ACQUIRE); i++) {
		slot_label(i, ex, sizeof(ex));
		for (int t = 0; t < METRICS_NTP; t++) {
			uint64_t n = get(written ? &m.slot[i].wbytes[t] :
					 &m.slot[i].rbytes[t]);

			if (i == 0 && !n)
				continue;
			evbuffer_add_printf(b, "orfad_%s_bytes_total{export="
					    "\"%s\",transport=\"%s\"} %llu\n",
					    written ? "written" : "read", ex,
					    tp_name[t], (unsigned long long)n);
		}
	}
}

static void page_build(struct evbuffer *b)
{
	head(b, "orfad_requests_total", "counter",
	     "Requests dispatched, per export, transport and opcode.");
	page_ops(b, 0);
	head(b, "orfad_request_errors_total", "counter",
	     "Requests answered with an error.");
	page_ops(b, 1);
	head(b, "orfad_request_duration_seconds", "histogram",
	     "Time from dispatch to answer (or to parking, for a lock wait).");
	page_hist(b);
	head(b, "orfad_read_bytes_total", "counter",
	     "File data sent to clients by READ.");
	page_bytes(b, 0);
	head(b, "orfad_written_bytes_total", "counter",
	     "File data received from clients by WRITE.");
	page_bytes(b, 1);
	head(b, "orfad_connections", "gauge", "Connections open now.");
	for (int t = 0; t < METRICS_NTP; t++)
		evbuffer_add_printf(b, "orfad_connections{transport=\"%s\"} "
				    "%lld\n", tp_name[t],
				    (long long)get(&m.conns[t]));
	head(b, "orfad_connections_opened_total", "counter",
	     "Connections accepted since start.");
	for (int t = 0; t < METRICS_NTP; t++)
		evbuffer_add_printf(b, "orfad_connections_opened_total"
				    "{transport=\"%s\"} %llu\n", tp_name[t],
				    (unsigned long long)get(&m.conns_total[t]));
	head(b, "orfad_limit_hits_total", "counter",
	     "Times a bound on peers was hit (docs/limits.md), per limit.");
	for (size_t i = 0; i < NLIMIT; i++)
		evbuffer_add_printf(b, "orfad_limit_hits_total{limit=\"%s\"} "
				    "%llu\n", limit_tab[i].name,
				    (unsigned long long)get(&m.limits[i]));
}

/* ---- the endpoint ------------------------------------------------------ */

static void on_request(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evhttp_request_get_output_buffer(req);
	const char *uri = evhttp_request_get_uri(req);

	(void)arg;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET ||
	    !uri || (strcmp(uri, "/metrics") && strncmp(uri, "/metrics?", 9))) {
		evhttp_send_error(req, HTTP_NOTFOUND, "only GET /metrics");
		return;
	}
	page_build(b);
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "text/plain; version=0.0.4; "
			  "charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", NULL);
}

/* Open a listening TCP socket on host:port (numeric or a name). */
static int listen_on(const char *host, const char *port, char *err,
		     size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	struct addrinfo *ai;
	int fd, ret, one = 1;

	ret = getaddrinfo(host, port, &hints, &ai);
	if (ret) {
		snprintf(err, errlen, "%s", gai_strerror(ret));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 16) ||
	    evutil_make_socket_nonblocking(fd)) {
		ret = -errno;
		snprintf(err, errlen, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return ret;
	}
	freeaddrinfo(ai);
	m.fd = fd;
	return 0;
}

int metrics_listen(const char *spec, char *err, size_t errlen)
{
	char tp[16], host[256], port[16];
	const char *colon = strrchr(spec, ':');

	if (!colon && strspn(spec, "0123456789") == strlen(spec) && *spec) {
		snprintf(host, sizeof(host), "127.0.0.1");
		snprintf(port, sizeof(port), "%s", spec);
	} else if (!colon || orfa_parse_address(spec, "0", tp, sizeof(tp),
			host, sizeof(host), port, sizeof(port)) < 0 ||
		   strcmp(tp, "tcp")) {
		snprintf(err, errlen, "not ADDR:PORT or PORT");
		return -EINVAL;
	}
	return listen_on(host, port, err, errlen);
}

static void *metrics_main(void *arg)
{
	(void)arg;
	event_base_dispatch(m.base);
	return NULL;
}

int metrics_start(void)
{
	int ret;

	if (m.fd < 0)
		return 0;
	m.base = event_base_new();
	m.http = m.base ? evhttp_new(m.base) : NULL;
	if (!m.http)
		return -ENOMEM;
	evhttp_set_allowed_methods(m.http, EVHTTP_REQ_GET);
	evhttp_set_timeout(m.http, 10);
	evhttp_set_max_headers_size(m.http, 8192);
	evhttp_set_max_body_size(m.http, 1024);
	evhttp_set_gencb(m.http, on_request, NULL);
	if (evhttp_accept_socket(m.http, m.fd))
		return -EIO;
	ret = pthread_create(&m.thread, NULL, metrics_main, NULL);
	if (ret)
		return -ret;
	pthread_setname_np(m.thread, "orfad-metrics");
	m.started = 1;
	return 0;
}

void metrics_stop(void)
{
	if (m.started) {
		event_base_loopbreak(m.base);
		pthread_join(m.thread, NULL);
		m.started = 0;
	}
	if (m.http)
		evhttp_free(m.http);	/* closes m.fd */
	else if (m.fd >= 0)
		close(m.fd);
	if (m.base)
		event_base_free(m.base);
	m.http = NULL;
	m.base = NULL;
	m.fd = -1;
	__atomic_store_n(&m.on, 0, __ATOMIC_RELEASE);
	/* The counters stay: a request thread may still be counting. */
}
