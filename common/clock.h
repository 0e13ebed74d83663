/*
 * clock.h - the one monotonic clock every part of ORFA measures time with
 * (deadlines, timeouts, latency figures).  Never the wall clock: these
 * values only make sense as differences within one process.
 */
#ifndef ORFA_CLOCK_H
#define ORFA_CLOCK_H

#include <stdint.h>
#include <time.h>

#define ORFA_NS_PER_SEC 1000000000LL
#define ORFA_NS_PER_MS	1000000LL

/* CLOCK_MONOTONIC in nanoseconds. */
static inline int64_t orfa_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * ORFA_NS_PER_SEC + ts.tv_nsec;
}

/* CLOCK_MONOTONIC in milliseconds. */
static inline int64_t orfa_now_ms(void)
{
	return orfa_now_ns() / ORFA_NS_PER_MS;
}

#endif /* ORFA_CLOCK_H */
