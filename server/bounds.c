/*
 * bounds.c - bounds on every peer of orfad (issue 12; docs/limits.md):
 * the defaults derived from the descriptor limit, admitting a new
 * connection (the exports' networks, the global and per-address caps,
 * dropping connections that have not finished their handshake, oldest
 * first, to make room), the sweep that enforces the handshake deadline,
 * the per-message deadline and the idle timeout, the cap on WRITE data
 * segments left in sockets for workers, and rate-limited logging of
 * every limit hit.
 *
 * A connection is dropped by shutting its transport down under
 * srv->clock (the list holds it alive: conn_free unlinks it under clock
 * before releasing the transport); its owner (loop thread, connection
 * thread, or the worker taking its data) then sees the connection fail
 * and tears it down as usual.  So this file never touches a loop's
 * events and works the same in every threading mode.
 *
 * Not here: the caps on open files and nodes (session.c, set in
 * conn_new), the global byte budget (loop.c, conn_may_read).
 */
#include "server_impl.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"

#define DEF_HELLO_TIMEOUT	10u		/* s */
#define DEF_IDLE_TIMEOUT	300u		/* s */
#define DEF_MSG_TIMEOUT		30u		/* s */
#define DEF_MAX_QUEUED		((size_t)1 << 30)
#define SWEEP_MS		500
/* Descriptors kept for the listener, logs, backends' own files. */
#define FD_RESERVE		64u

/* ---- defaults ------------------------------------------------------------ */

static unsigned clampu(uint64_t v, unsigned lo, unsigned hi)
{
	return v < lo ? lo : v > hi ? hi : (unsigned)v;
}

void bounds_resolve(struct orfa_server *srv)
{
	struct orfa_server_cfg *cfg = &srv->cfg;
	struct rlimit rl;
	uint64_t nofile = 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		nofile = rl.rlim_cur;
	else if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		nofile = 1u << 20;
	if (!cfg->hello_timeout)
		cfg->hello_timeout = DEF_HELLO_TIMEOUT;
	if (!cfg->idle_timeout)
		cfg->idle_timeout = DEF_IDLE_TIMEOUT;
	if (!cfg->msg_timeout)
		cfg->msg_timeout = DEF_MSG_TIMEOUT;
	/* A connection costs a socket, maybe a splice pipe (2), and what
	 * its files and nodes hold: half the descriptors for sockets. */
	if (!cfg->max_conns)
		cfg->max_conns = clampu(nofile > FD_RESERVE * 2 ?
					(nofile - FD_RESERVE) / 2 : 16,
					16, 65536);
	if (!cfg->max_conns_per_addr)
		cfg->max_conns_per_addr = clampu(cfg->max_conns / 4, 8,
						 cfg->max_conns);
	/* Half the descriptors for one connection's files.  Nodes: the
	 * kernel holds a lookup reference per cached dentry, so a mount
	 * walking a big tree legitimately holds tens of thousands. */
	if (!cfg->max_files)
		cfg->max_files = clampu(nofile / 2, 1024, 1u << 20);
	if (!cfg->max_nodes)
		cfg->max_nodes = clampu(nofile, 65536, 1u << 20);
	if (!cfg->max_queued)
		cfg->max_queued = DEF_MAX_QUEUED;
	/* Three workers in four stay free whatever slow senders do: the
	 * WRITE data of the others is read by the loops (conn.c). */
	srv->max_deferred = cfg->threads / 4 ? cfg->threads / 4 : 1;
	/* Descriptors are handed out lowest first: an accepted one this
	 * high means few are left for the files of open sessions. */
	srv->fd_high = (unsigned)(nofile - (nofile / 8 < FD_RESERVE ?
					    nofile / 8 : FD_RESERVE));
	log_info("limits: handshake %u s, message %u s, idle %d s (-1: "
		 "never); %u connections, %u per address; per connection %u "
		 "open files, %u nodes; %zu MiB held in all (nofile %llu)",
		 cfg->hello_timeout, cfg->msg_timeout,
		 cfg->idle_timeout == UINT_MAX ? -1 : (int)cfg->idle_timeout,
		 cfg->max_conns, cfg->max_conns_per_addr, cfg->max_files,
		 cfg->max_nodes, cfg->max_queued >> 20,
		 (unsigned long long)nofile);
}

/* ---- rate-limited logging --------------------------------------------------- */

#define LOG_SLOTS		256
#define LOG_PERIOD_NS		(60 * ORFA_NS_PER_SEC)
#define LOG_BURST_PER_SEC	10

static struct {
	pthread_mutex_t lock;
	struct { uint64_t key; int64_t last; unsigned quiet; } slot[LOG_SLOTS];
	int64_t sec;			/* this second, and lines in it */
	unsigned lines, lost;
} lg = { .lock = PTHREAD_MUTEX_INITIALIZER };

static uint64_t addr_key(const struct sockaddr_storage *ss, const char *fmt)
{
	uint64_t h = 1469598103934665603ull;
	const uint8_t *p = NULL;
	size_t n = 0;

	if (ss && ss->ss_family == AF_INET) {
		p = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
		n = 4;
	} else if (ss && ss->ss_family == AF_INET6) {
		p = (const uint8_t *)
		    &((const struct sockaddr_in6 *)ss)->sin6_addr;
		n = 16;
	}
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	/* The format names the limit: one line per address and limit. */
	return (h ^ (uint64_t)(uintptr_t)fmt) * 1099511628211ull;
}

void bounds_log(const struct sockaddr_storage *ss, const char *peer,
		const char *fmt, ...)
{
	uint64_t key = addr_key(ss, fmt);
	int64_t now = orfa_now_ns();
	unsigned quiet = 0, lost = 0, i = (unsigned)(key % LOG_SLOTS);
	char what[256];
	va_list ap;

	/* Counted every time (--metrics), logged at most once a minute. */
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	metrics_limit(what);
	pthread_mutex_lock(&lg.lock);
	if (lg.slot[i].key == key && lg.slot[i].last &&
	    now - lg.slot[i].last < LOG_PERIOD_NS) {
		lg.slot[i].quiet++;
		pthread_mutex_unlock(&lg.lock);
		return;
	}
	if (now / ORFA_NS_PER_SEC != lg.sec) {
		lg.sec = now / ORFA_NS_PER_SEC;
		lg.lines = 0;
	}
	if (lg.lines >= LOG_BURST_PER_SEC) {
		lg.lost++;
		pthread_mutex_unlock(&lg.lock);
		return;
	}
	lg.lines++;
	if (lg.slot[i].key == key)
		quiet = lg.slot[i].quiet;
	lg.slot[i].key = key;
	lg.slot[i].last = now;
	lg.slot[i].quiet = 0;
	lost = lg.lost;
	lg.lost = 0;
	pthread_mutex_unlock(&lg.lock);
	log_warn("%s: limit: %s (%u more like it from this address in the "
		 "last minute, %u other limit lines not logged)",
		 peer, what, quiet, lost);
}

/* ---- admitting connections ------------------------------------------------- */

/* Same peer address (the port aside)? */
static int addr_same(const struct sockaddr_storage *a,
		     const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
			      &((const struct sockaddr_in *)b)->sin_addr,
			      4) == 0;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr,
			      16) == 0;
	return 0;
}

/* Shut c down for a limit.  Caller holds srv->clock. */
static void conn_drop_limit(struct orfa_server *srv, struct sconn *c)
{
	c->dropped = 1;
	srv->ndropped++;
	orfa_conn_shutdown(c->tc);
}

/* The oldest connection not dropped and without a finished handshake,
 * from ss when ss is not NULL.  Caller holds srv->clock. */
static struct sconn *oldest_unshaken(struct orfa_server *srv,
				     const struct sockaddr_storage *ss)
{
	struct sconn *c, *best = NULL;

	for (c = srv->conns; c; c = c->next) {
		if (c->dropped || __atomic_load_n(&c->hs_done, __ATOMIC_ACQUIRE))
			continue;
		if (ss && !addr_same(ss, &c->addr))
			continue;
		if (!best || c->s.id < best->s.id)
			best = c;
	}
	return best;
}

/* Is ss in any export's networks? */
static int any_export_allows(struct orfa_server *srv,
			     const struct sockaddr_storage *ss)
{
	const struct orfa_exports *tab = server_gen(srv)->tab;

	for (int i = 0; i < tab->n; i++)
		if (orfa_export_allows(&tab->v[i],
				       (const struct sockaddr *)ss))
			return 1;
	return 0;
}

int bounds_admit(struct orfa_server *srv, struct orfa_conn *tc,
		 const struct sockaddr_storage *ss)
{
	const struct orfa_server_cfg *cfg = &srv->cfg;
	const char *peer = tc->peer[0] ? tc->peer : "?";
	struct sconn *c, *victim = NULL;
	unsigned live, from = 0;
	int fd = orfa_conn_fd(tc), ok = 1;

	if (ss->ss_family && !any_export_allows(srv, ss)) {
		bounds_log(ss, peer, "address in no export's networks: "
			   "refused at accept");
		return 0;
	}
	pthread_mutex_lock(&srv->clock);
	live = srv->nconns - srv->ndropped;
	if (ss->ss_family)
		for (c = srv->conns; c; c = c->next)
			if (!c->dropped && addr_same(ss, &c->addr))
				from++;
	if (ss->ss_family && from >= cfg->max_conns_per_addr) {
		victim = oldest_unshaken(srv, ss);
		if (!victim)
			ok = 0;
		bounds_log(ss, peer, "%u connections from this address "
			   "(--max-conns-per-addr): %s", from, victim ?
			   "dropped its oldest without handshake" :
			   "new one refused");
	} else if (live >= cfg->max_conns) {
		victim = oldest_unshaken(srv, NULL);
		if (!victim)
			ok = 0;
		bounds_log(ss, peer, "%u connections (--max-conns): %s", live,
			   victim ? "dropped the oldest without handshake" :
			   "new one refused");
	}
	if (victim) {
		bounds_log(&victim->addr, victim->s.peer,
			   "dropped without handshake to make room");
		conn_drop_limit(srv, victim);
	}
	pthread_mutex_unlock(&srv->clock);
	if (ok && fd >= 0 && (unsigned)fd >= srv->fd_high) {
		/* Keep the last descriptors for the files of sessions: make
		 * room (their descriptors come back once their owners tore
		 * them down), or refuse when nothing can go. */
		if (bounds_shed(srv, 16) == 0) {
			bounds_log(ss, peer, "descriptors short (fd %d): new "
				   "connection refused", fd);
			return 0;
		}
		return 2;
	}
	return ok;
}

unsigned bounds_shed(struct orfa_server *srv, unsigned n)
{
	unsigned done = 0;
	struct sconn *c;

	pthread_mutex_lock(&srv->clock);
	while (done < n && (c = oldest_unshaken(srv, NULL))) {
		bounds_log(&c->addr, c->s.peer, "out of descriptors: dropped "
			   "without handshake");
		conn_drop_limit(srv, c);
		done++;
	}
	pthread_mutex_unlock(&srv->clock);
	return done;
}

/* ---- deferred WRITE data ---------------------------------------------------- */

int bounds_defer_take(struct sconn *c)
{
	struct orfa_server *srv = c->srv;
	unsigned n = __atomic_load_n(&srv->ndeferred, __ATOMIC_RELAXED);

	if (srv->cfg.threading == ORFA_THREADING_CONNECTION)
		return 1;	/* its own thread waits: no worker held */
	if (__atomic_load_n(&c->defer_held, __ATOMIC_ACQUIRE))
		return 1;	/* one per connection: it reads no more */
	do {
		if (n >= srv->max_deferred)
			return 0;
	} while (!__atomic_compare_exchange_n(&srv->ndeferred, &n, n + 1, 0,
					      __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	__atomic_store_n(&c->defer_held, 1, __ATOMIC_RELEASE);
	return 1;
}

void bounds_defer_put(struct sconn *c)
{
	if (__atomic_exchange_n(&c->defer_held, 0, __ATOMIC_ACQ_REL))
		__atomic_fetch_sub(&c->srv->ndeferred, 1, __ATOMIC_ACQ_REL);
	__atomic_store_n(&c->t_deferred, 0, __ATOMIC_RELEASE);
}

/* ---- the sweep ---------------------------------------------------------------- */

/* Holds c nothing that closing it would lose (reconnecting restores
 * open files, not lookup references on exports without persistent node
 * ids, so a connection holding any is not idle)?  Caller holds clock. */
static int conn_idle(struct sconn *c)
{
	unsigned inflight;

	pthread_mutex_lock(&c->lock);
	inflight = c->inflight;
	pthread_mutex_unlock(&c->lock);
	return inflight == 0 && ftab_count(&c->s.files) == 0 &&
	       nmap_count(&c->s.nodes) == 0 &&
	       orfa_conn_queued_bytes(c->tc) == 0;
}

/* The deadline c missed, or NULL.  Caller holds srv->clock. */
static const char *conn_overdue(struct orfa_server *srv, struct sconn *c,
				int64_t now)
{
	const struct orfa_server_cfg *cfg = &srv->cfg;
	int64_t msg = (int64_t)cfg->msg_timeout * ORFA_NS_PER_SEC, t;

	if (!__atomic_load_n(&c->hs_done, __ATOMIC_ACQUIRE))
		return now - c->t_accept > (int64_t)cfg->hello_timeout *
		       ORFA_NS_PER_SEC ? "no handshake in --hello-timeout" :
		       NULL;
	t = __atomic_load_n(&c->t_partial, __ATOMIC_ACQUIRE);
	if (t && now - t > msg)
		return "message not whole in --msg-timeout";
	t = __atomic_load_n(&c->t_deferred, __ATOMIC_ACQUIRE);
	if (t && now - t > msg)
		return "WRITE data not whole in --msg-timeout";
	if (cfg->idle_timeout == UINT_MAX)
		return NULL;
	t = __atomic_load_n(&c->t_active, __ATOMIC_ACQUIRE);
	if (now - t > (int64_t)cfg->idle_timeout * ORFA_NS_PER_SEC &&
	    conn_idle(c))
		return "idle for --idle-timeout";
	return NULL;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct orfa_server *srv = arg;
	int64_t now = orfa_now_ns();
	const char *why;
	struct sconn *c;

	pthread_mutex_lock(&srv->clock);
	for (c = srv->conns; c; c = c->next) {
		if (c->dropped || !c->tc)
			continue;
		why = conn_overdue(srv, c, now);
		if (!why)
			continue;
		/* Idle is routine: the client reconnects when it needs to. */
		if (strncmp(why, "idle", 4) == 0)
			log_info("%s: closing: %s", c->s.peer, why);
		else
			bounds_log(&c->addr, c->s.peer, "%s: dropped", why);
		conn_drop_limit(srv, c);
	}
	pthread_mutex_unlock(&srv->clock);
}

int bounds_start(struct orfa_server *srv)
{
	struct timeval tv = { 0, SWEEP_MS * 1000 };

	srv->ev_sweep = event_new(srv->base, -1, EV_PERSIST, on_sweep, srv);
	if (!srv->ev_sweep || event_add(srv->ev_sweep, &tv) < 0)
		return -ENOMEM;
	return 0;
}
