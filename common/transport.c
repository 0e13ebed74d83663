/*
 * transport.c - the transport-neutral half of transport.h: default options,
 * the registry of built-in transports, address parsing, connection
 * references and error recording, and the thin wrappers that forward to a
 * connection's ops table; and, for the transports (transport_impl.h), the
 * rules they share: receive limits, the frame header check, the check of
 * a message to send.  No I/O happens here; transport_tcp*.c and
 * transport_rdma*.c do that.
 */
#include "transport.h"
#include "transport_impl.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "config.h"

#if ORFA_HAVE_RDMA
extern const struct orfa_transport_ops orfa_rdma_transport;
#endif

void orfa_tp_opts_default(struct orfa_tp_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_body = ORFA_MAX_BODY;
	o->max_data = ORFA_DEFAULT_MAX_DATA;
	o->connect_timeout_ms = 10000;
	o->send_timeout_ms = 0;
	o->rdma_buf_size = 64 * 1024;
	o->rdma_credits = 64;
}

int orfa_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case '\0': break;
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0')
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

void orfa_tp_clamp_limits(uint32_t *max_body, uint32_t *max_data)
{
	if (*max_body == 0 || *max_body > ORFA_MAX_BODY)
		*max_body = ORFA_MAX_BODY;
	if (*max_data == 0)
		*max_data = ORFA_DEFAULT_MAX_DATA;
	if (*max_data > ORFA_MAX_DATA_LIMIT)
		*max_data = ORFA_MAX_DATA_LIMIT;
}

int orfa_tp_hdr_decode(const uint8_t p[ORFA_HDR_SIZE], struct orfa_hdr *h,
		       uint32_t max_body, uint32_t max_data,
		       char *why, size_t whysz)
{
	struct orfa_limits lim = { .max_body = max_body, .max_data = max_data };
	int rc;

	/* orfa_hdr_decode fills h whatever it finds and judges the lengths
	 * before flags and opcode, so any other failure has passed them. */
	rc = orfa_hdr_decode(p, h, &lim, NULL);
	if (rc != -EMSGSIZE)
		return 0;
	if (why && h->body_len > max_body)
		snprintf(why, whysz, "frame body_len %u exceeds max_body %u "
			 "(opcode %u)", h->body_len, max_body, h->opcode);
	else if (why)
		snprintf(why, whysz, "frame data_len %u exceeds max_data %u "
			 "(opcode %u)", h->data_len, max_data, h->opcode);
	return rc;
}

int orfa_tp_txmsg_check(const struct orfa_txmsg *m, size_t *data_len,
			struct orfa_hdr *hdr)
{
	struct orfa_hdr h;
	size_t data = 0;

	if (!m->head || m->head_len < ORFA_HDR_SIZE || m->iovcnt < 0 ||
	    (m->iovcnt > 0 && !m->iov))
		return -EINVAL;
	if (m->iov) {
		for (int i = 0; i < m->iovcnt; i++)
			data += m->iov[i].iov_len;
	} else if (m->fd >= 0) {
		data = m->fd_len;
	}
	(void)orfa_hdr_decode(m->head, &h, NULL, NULL);	/* fills h always */
	if (h.body_len != m->head_len - ORFA_HDR_SIZE || h.data_len != data)
		return -EINVAL;
	*data_len = data;
	if (hdr)
		*hdr = h;
	return 0;
}

static __thread bool tl_creds_changed;

void orfa_thread_creds_changing(void)
{
	tl_creds_changed = true;
}

bool orfa_thread_creds_changed(void)
{
	return tl_creds_changed;
}

const struct orfa_transport_ops *orfa_transport_find(const char *name)
{
	if (!name)
		return NULL;
	if (strcmp(name, "tcp") == 0)
		return &orfa_tcp_transport;
#if ORFA_HAVE_RDMA
	if (strcmp(name, "rdma") == 0)
		return &orfa_rdma_transport;
#endif
	return NULL;
}

/* Copy n bytes of s plus a NUL into dst[size]; -EINVAL if it does not fit. */
static int copy_part(char *dst, size_t size, const char *s, size_t n)
{
	if (!dst || n >= size)
		return -EINVAL;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

/* A port is 1 to 5 decimal digits with a value of at most 65535 (0 is
 * allowed: listeners use it to ask for a free port). */
static int port_valid(const char *s, size_t n)
{
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	return v <= 65535;
}

/* An IPv6 literal, optionally with a "%scope" suffix (fe80::1%eth0). */
static int ipv6_valid(const char *s, size_t n)
{
	char buf[INET6_ADDRSTRLEN + 1];
	struct in6_addr a;
	const char *pct = memchr(s, '%', n);
	size_t len = pct ? (size_t)(pct - s) : n;

	if (len == 0 || len >= sizeof(buf) || (pct && pct + 1 == s + n))
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET6, buf, &a) == 1;
}

/*
 * Accepted forms (after an optional "tcp://" or "rdma://" prefix):
 *   host:port   name or IPv4 address with a port
 *   host        port = defport (ORFA_DEFAULT_PORT when defport is NULL)
 *   [v6]:port   IPv6 literal with a port
 *   [v6]        IPv6 literal, default port
 *   v6          a bare IPv6 literal (two or more colons, valid for
 *               inet_pton) means the whole string is the host and the port
 *               is the default: a port can only be given with brackets.
 * Ports are decimal 0..65535; host and port must not be empty.  Anything
 * else, an unknown "scheme://" or an output that does not fit gives
 * -EINVAL.  tp may be NULL when the caller does not care.
 */
int orfa_parse_address(const char *spec, const char *defport,
		       char *tp, size_t tpsz, char *host, size_t hostsz,
		       char *port, size_t portsz)
{
	const char *tname = "tcp", *s = spec, *h, *p = NULL, *sep;
	size_t hlen, plen = 0;
	int rc;

	if (!spec || !host || !port)
		return -EINVAL;
	if (!defport)
		defport = ORFA_DEFAULT_PORT;

	sep = strstr(s, "://");
	if (sep) {
		if ((size_t)(sep - s) == 3 && strncmp(s, "tcp", 3) == 0)
			tname = "tcp";
		else if ((size_t)(sep - s) == 4 && strncmp(s, "rdma", 4) == 0)
			tname = "rdma";
		else
			return -EINVAL;
		s = sep + 3;
	}

	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end)
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(end - h);
		if (!ipv6_valid(h, hlen))
			return -EINVAL;
		if (end[1] == ':') {
			p = end + 2;
			plen = strlen(p);
		} else if (end[1] != '\0') {
			return -EINVAL;
		}
	} else {
		const char *colon = strchr(s, ':');

		h = s;
		hlen = strlen(s);
		if (colon && strchr(colon + 1, ':')) {
			/* Two or more colons: a bare IPv6 literal, no port. */
			if (!ipv6_valid(h, hlen))
				return -EINVAL;
		} else if (colon) {
			hlen = (size_t)(colon - s);
			p = colon + 1;
			plen = strlen(p);
		}
	}
	if (hlen == 0)
		return -EINVAL;
	if (!p) {
		p = defport;
		plen = strlen(p);
	}
	if (!port_valid(p, plen))
		return -EINVAL;

	if (tp) {
		rc = copy_part(tp, tpsz, tname, strlen(tname));
		if (rc)
			return rc;
	}
	rc = copy_part(host, hostsz, h, hlen);
	if (rc)
		return rc;
	return copy_part(port, portsz, p, plen);
}

/* The transport called name ("tcp" when NULL), and the options to use:
 * *o, or defaults in *def when *o is NULL.  NULL when not built in. */
static const struct orfa_transport_ops *tp_pick(const char *name,
						const struct orfa_tp_opts **o,
						struct orfa_tp_opts *def)
{
	if (!*o) {
		orfa_tp_opts_default(def);
		*o = def;
	}
	return orfa_transport_find(name ? name : "tcp");
}

int orfa_conn_connect(const char *transport, const char *host,
		      const char *port, const struct orfa_tp_opts *o,
		      struct orfa_conn **out)
{
	struct orfa_tp_opts def;
	const struct orfa_transport_ops *ops = tp_pick(transport, &o, &def);

	*out = NULL;
	if (!ops)
		return -EPROTONOSUPPORT;
	return ops->connect(host, port, o, out);
}

int orfa_listener_open(const char *transport, const char *host,
		       const char *port, const struct orfa_tp_opts *o,
		       struct orfa_listener **out,
		       const struct orfa_transport_ops **ops_out)
{
	struct orfa_tp_opts def;
	const struct orfa_transport_ops *ops = tp_pick(transport, &o, &def);
	int rc;

	*out = NULL;
	if (!ops)
		return -EPROTONOSUPPORT;
	rc = ops->listen(host, port, o, out);
	if (rc == 0 && ops_out)
		*ops_out = ops;
	return rc;
}

int orfa_listener_accept(struct orfa_listener *l, struct orfa_conn **out)
{
	return l->ops->accept(l, out);
}

int orfa_listener_fd(struct orfa_listener *l)
{
	return l->ops->listener_fd(l);
}

int orfa_listener_addr(struct orfa_listener *l, char *buf, size_t size)
{
	return l->ops->listener_addr(l, buf, size);
}

void orfa_listener_close(struct orfa_listener *l)
{
	if (l)
		l->ops->listener_close(l);
}

int orfa_conn_send(struct orfa_conn *c, const struct orfa_txmsg *m)
{
	if (__atomic_load_n(&c->seal, __ATOMIC_ACQUIRE))
		return tp_send_sealed(c, m);
	return c->ops->send(c, m);
}

int orfa_conn_recv(struct orfa_conn *c, struct orfa_rxmsg *m)
{
	if (c->seal)		/* set on this (the receiving) thread */
		return tp_recv_sealed(c, m);
	return c->ops->recv(c, m);
}

void orfa_conn_recv_done(struct orfa_conn *c, struct orfa_rxmsg *m)
{
	c->ops->recv_done(c, m);
}

int orfa_conn_flush(struct orfa_conn *c)
{
	return c->ops->flush(c);
}

int orfa_conn_want_write(struct orfa_conn *c)
{
	int want = 0;

	c->ops->queued(c, &want);
	return want;
}

size_t orfa_conn_queued_bytes(struct orfa_conn *c)
{
	return c->ops->queued(c, NULL);
}

int orfa_conn_fd(struct orfa_conn *c)
{
	return c->ops->fd(c);
}

void orfa_conn_set_sink(struct orfa_conn *c, orfa_sink_fn fn, void *arg)
{
	c->ops->set_sink(c, fn, arg);
}

void orfa_conn_set_limits(struct orfa_conn *c, uint32_t max_body,
			  uint32_t max_data)
{
	c->ops->set_limits(c, max_body, max_data);
}

void orfa_conn_shutdown(struct orfa_conn *c)
{
	c->ops->shutdown(c);
}

int orfa_conn_peer_addr(struct orfa_conn *c, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (!c->ops->peer_addr)
		return -ENOTSUP;
	return c->ops->peer_addr(c, ss);
}

int orfa_conn_cork(struct orfa_conn *c, int on)
{
	return c->ops->cork ? c->ops->cork(c, on) : 0;
}

/* The defer resolver the transport calls: the caller's, unless the
 * connection is sealed (sealed data is verified whole before use). */
static int defer_trampoline(void *arg, const struct orfa_hdr *hdr)
{
	struct orfa_conn *c = arg;

	if (c->seal || !c->defer_fn)
		return 0;
	return c->defer_fn(c->defer_arg, hdr);
}

int orfa_conn_set_defer(struct orfa_conn *c, orfa_defer_fn fn, void *arg)
{
	if (!c->ops->set_defer || !c->ops->recv_data)
		return -ENOTSUP;
	c->defer_fn = fn;
	c->defer_arg = arg;
	c->ops->set_defer(c, fn ? defer_trampoline : NULL, fn ? c : NULL);
	return 0;
}

int orfa_conn_recv_data(struct orfa_conn *c, struct orfa_rxmsg *m,
			struct orfa_rxdest *d)
{
	if (!c->ops->recv_data)
		return -ENOTSUP;
	return c->ops->recv_data(c, m, d);
}

void orfa_conn_get(struct orfa_conn *c)
{
	int old = __atomic_fetch_add(&c->refs, 1, __ATOMIC_RELAXED);

	assert(old > 0);
	(void)old;
}

void orfa_conn_put(struct orfa_conn **cp)
{
	struct orfa_conn *c = *cp;
	int old;

	if (!c)
		return;
	*cp = NULL;
	old = __atomic_fetch_sub(&c->refs, 1, __ATOMIC_ACQ_REL);
	assert(old > 0);
	if (old == 1) {
		tp_seal_free(c);
		c->ops->destroy(c);
	}
}

/*
 * last_err and why are written once (the first failure wins) and never
 * again, so orfa_conn_last_error can hand out c->why without a lock:
 * writers serialise on fail_lock, fill why, then publish last_err with
 * release order; readers that see last_err != 0 see the whole string.
 */
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

const char *orfa_conn_last_error(const struct orfa_conn *c)
{
	if (__atomic_load_n(&c->last_err, __ATOMIC_ACQUIRE) == 0)
		return "no error";
	return c->why;
}

int orfa_conn_fail(struct orfa_conn *c, int err, const char *fmt, ...)
{
	char buf[sizeof(c->why)];
	va_list ap;

	if (err == 0)
		return 0;
	if (__atomic_load_n(&c->last_err, __ATOMIC_ACQUIRE) != 0)
		return err;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&fail_lock);
	if (__atomic_load_n(&c->last_err, __ATOMIC_RELAXED) == 0) {
		memcpy(c->why, buf, sizeof(c->why));
		__atomic_store_n(&c->last_err, err, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&fail_lock);
	return err;
}
