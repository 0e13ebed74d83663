/*
 * stats.c - the orfa client's counters (stats.h) and `orfa stats`.
 *
 * Latency is the round trip of one call as the client sees it: from
 * handing the request to the transport to running its completion
 * (including, for a call resent after a reconnect, the wait for the
 * connection).  Bucket k of the histogram holds round trips of less than
 * 2^k microseconds; a percentile is reported as the upper bound of the
 * bucket it falls in, so it is exact within a factor of two.
 *
 * The text: "#" lines are comments; every other line is "KEY VALUE" or,
 * for one opcode, "op NAME calls N errors N timeouts N p50_us N p90_us N
 * p99_us N max_us N" (only opcodes called at least once).
 */
#include "stats.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>

#include "clock.h"
#include "codec.h"
#include "orfa_proto.h"

#define NBUCKET 32			/* 1 us .. 2^31 us (about 36 min) */

/* calls: the sum of the buckets (one atomic add fewer per call). */
struct sop {
	uint64_t errors, timeouts;
	uint64_t bucket[NBUCKET];
};

static struct {
	struct sop op[ORFA_OP_MAX];
	uint64_t rbytes, wbytes, reconnects, caps_hit, caps_miss, unsent;
	int64_t t0;			/* first count, ns */
	const char *source;
} st;

static void add(uint64_t *p, uint64_t n)
{
	__atomic_fetch_add(p, n, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static unsigned bucket_of(int64_t ns)
{
	uint64_t us = (uint64_t)ns / 1000;
	unsigned k = us ? 64 - (unsigned)__builtin_clzll(us) : 0;

	return k >= NBUCKET ? NBUCKET - 1 : k;	/* us < 2^k */
}

void stats_call(unsigned op, int err, int64_t ns, uint64_t rbytes,
		uint64_t wbytes)
{
	struct sop *o;

	if (op >= ORFA_OP_MAX)
		return;
	o = &st.op[op];
	if (ns < 0)
		add(&st.unsent, 1);
	else
		add(&o->bucket[bucket_of(ns)], 1);
	if (err)
		add(&o->errors, 1);
	if (err == -ETIMEDOUT)
		add(&o->timeouts, 1);
	if (rbytes)
		add(&st.rbytes, rbytes);
	if (wbytes)
		add(&st.wbytes, wbytes);
}

void stats_reconnect(void)
{
	add(&st.reconnects, 1);
}

void stats_caps(int hit)
{
	add(hit ? &st.caps_hit : &st.caps_miss, 1);
}

/* The upper bound in us of the bucket holding quantile q of o. */
static uint64_t pct_us(const uint64_t *b, uint64_t n, double q)
{
	uint64_t want = (uint64_t)((double)n * q + 0.999999), cum = 0;

	for (unsigned k = 0; k < NBUCKET; k++) {
		cum += b[k];
		if (cum >= want && cum)
			return 1ull << k;
	}
	return 1ull << (NBUCKET - 1);
}

/* Append to buf at *o what fmt says, unless it does not fit. */
static void put(char *buf, size_t len, size_t *o, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t len, size_t *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*o + 1 >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *o, len - *o, fmt, ap);
	va_end(ap);
	if (n > 0 && *o + (size_t)n < len)
		*o += (size_t)n;
	else
		buf[*o] = '\0';		/* cut at the last whole line */
}

static void format_ops(char *buf, size_t len, size_t *o)
{
	uint64_t b[NBUCKET], n, mx;

	for (unsigned op = 0; op < ORFA_OP_MAX; op++) {
		const struct sop *s = &st.op[op];

		n = 0;
		mx = 0;
		for (unsigned k = 0; k < NBUCKET; k++) {
			b[k] = get(&s->bucket[k]);
			n += b[k];
			if (b[k])
				mx = 1ull << k;
		}
		if (!n && !get(&s->errors))
			continue;
		put(buf, len, o, "op %s calls %llu errors %llu timeouts %llu "
		    "p50_us %llu p90_us %llu p99_us %llu max_us %llu\n",
		    orfa_op_name(op), (unsigned long long)n,
		    (unsigned long long)get(&s->errors),
		    (unsigned long long)get(&s->timeouts),
		    (unsigned long long)(n ? pct_us(b, n, 0.5) : 0),
		    (unsigned long long)(n ? pct_us(b, n, 0.9) : 0),
		    (unsigned long long)(n ? pct_us(b, n, 0.99) : 0),
		    (unsigned long long)mx);
	}
}

void stats_set_source(const char *source)
{
	st.source = source;
}

size_t stats_format(char *buf, size_t len)
{
	const char *source = st.source ? st.source : "?";
	uint64_t hit = get(&st.caps_hit), miss = get(&st.caps_miss);
	size_t o = 0;

	if (!len)
		return 0;
	buf[0] = '\0';
	put(buf, len, &o,
	    "# orfa client statistics for %s\n"
	    "# op: round trips to the server per opcode (calls), those that\n"
	    "#   ended in an error or a timeout; latency percentiles of the\n"
	    "#   round trip, upper bound of a power-of-two bucket in us.\n"
	    "# The kernel's page, attribute and name caches answer without\n"
	    "#   reaching orfa: only their misses appear here, so their hit\n"
	    "#   rates cannot be told by the client.\n", source);
	put(buf, len, &o, "uptime_s %.1f\n",
	    (double)(orfa_now_ns() - st.t0) / 1e9);
	put(buf, len, &o, "read_bytes %llu\nwritten_bytes %llu\n"
	    "reconnects %llu\nunsent_calls %llu\n",
	    (unsigned long long)get(&st.rbytes),
	    (unsigned long long)get(&st.wbytes),
	    (unsigned long long)get(&st.reconnects),
	    (unsigned long long)get(&st.unsent));
	put(buf, len, &o, "# caps_cache: security.capability known absent "
	    "(asked before every write), answered here\n"
	    "caps_cache_hits %llu\ncaps_cache_misses %llu\n"
	    "caps_cache_hit_pct %.1f\n", (unsigned long long)hit,
	    (unsigned long long)miss,
	    hit + miss ? 100.0 * (double)hit / (double)(hit + miss) : 0.0);
	format_ops(buf, len, &o);
	return o;
}

__attribute__((constructor)) static void stats_start(void)
{
	st.t0 = orfa_now_ns();
}

int stats_main(int argc, char **argv)
{
	char *buf;
	ssize_t n;

	if (argc != 3 || argv[2][0] == '-') {
		fprintf(stderr, "usage: orfa stats MOUNTPOINT\n");
		return 2;
	}
	buf = malloc(ORFA_STATS_MAX);
	if (!buf)
		return 1;
	n = getxattr(argv[2], ORFA_STATS_XATTR, buf, ORFA_STATS_MAX);
	if (n < 0) {
		int e = errno;

		fprintf(stderr, "orfa stats: %s: %s\n", argv[2],
			e == ENODATA || e == ENOTSUP || e == ENOSYS ?
			"not the root of an orfa mount" : strerror(e));
		free(buf);
		return 1;
	}
	fwrite(buf, 1, (size_t)n, stdout);
	free(buf);
	return 0;
}
