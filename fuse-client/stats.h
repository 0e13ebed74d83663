/*
 * stats.h - the orfa client's own counters (orfa stats MOUNTPOINT): per
 * opcode round trips, errors, timeouts and a log2 latency histogram, bytes
 * moved, reconnects, and the hits of the one cache the client keeps (the
 * absence of security.capability).  One mount per orfa process, so the
 * counters are process-wide: relaxed atomics, no lock.
 *
 * How `orfa stats` reaches them: the virtual extended attribute
 * ORFA_STATS_XATTR of the mount root, answered by this process without a
 * round trip (ops_xattr.c); the kernel applies the root directory's
 * permissions to reading it.  Setting or removing it is EPERM.
 */
#ifndef ORFA_STATS_H
#define ORFA_STATS_H

#include <stddef.h>
#include <stdint.h>

#define ORFA_STATS_XATTR	"user.orfa.stats"
#define ORFA_STATS_MAX		65536	/* longest text */

/* A call of opcode op ended with err (0 or a negative errno) after ns
 * nanoseconds on the wire (ns < 0: never sent); rbytes of READ data came
 * back, wbytes of WRITE data went out. */
void stats_call(unsigned op, int err, int64_t ns, uint64_t rbytes,
		uint64_t wbytes);
/* A connection came back after a failure. */
void stats_reconnect(void);
/* The capability-absence cache answered (hit 1) or did not (0). */
void stats_caps(int hit);
/* The mount's source ("host:/export"), for the heading (borrowed: must
 * outlive the mount). */
void stats_set_source(const char *source);
/* Write the text (see stats.c) into buf; returns its length, at most
 * len - 1 (cut at a line when it does not fit). */
size_t stats_format(char *buf, size_t len);
/* orfa stats MOUNTPOINT: print the text of the mount; exit status. */
int stats_main(int argc, char **argv);

#endif
