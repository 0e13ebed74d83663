/*
 * metrics.h - orfad's counters and the Prometheus endpoint that serves
 * them (orfad --metrics ADDR:PORT, GET /metrics).  The counters are
 * relaxed atomics in one table per export, transport and opcode, so the
 * request path takes no lock; they count only once metrics_init ran (off
 * by default: every hook is one load and a branch).  Not here: what
 * the counters mean to a handler (nothing: handlers are not told).
 */
#ifndef ORFA_METRICS_H
#define ORFA_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct orfa_exports;

/* Transports, as labels. */
enum metrics_tp { METRICS_TCP, METRICS_RDMA, METRICS_NTP };

/* Allocate the counters for the exports table ex (its export names,
 * copied, label the series: export index i of a request is ex->v[i]).
 * 0 or -ENOMEM. */
int metrics_init(const struct orfa_exports *ex);
/* Exports a reload adds beyond the table given to metrics_init get slots
 * of their own up to this many; later ones count under "(none)". */
#define METRICS_SPARE_EXPORTS	64
/* The export index of the export named name: its index in the table given
 * to metrics_init, or a slot named for it now (a reload added it); -1 when
 * not counting or out of slots.  Base thread only (not thread-safe
 * against itself). */
int metrics_export_idx(const char *name);
/* Bind the endpoint "ADDR:PORT", "[V6]:PORT" or "PORT" (then 127.0.0.1)
 * and listen; before daemonizing, so a bad address fails at start.  0 or
 * a negative errno, with the reason in err. */
int metrics_listen(const char *spec, char *err, size_t errlen);
/* Serve GET /metrics on a thread of its own (after daemonizing).  0 or a
 * negative errno. */
int metrics_start(void);
/* Stop the thread, close the endpoint, free the counters. */
void metrics_stop(void);

/* Counting at all (--metrics given)?  Callers skip timing when not. */
int metrics_on(void);
/* One request of opcode op on export index ex (-1: none yet), transport
 * tp, answered with ret (0 or a negative errno) after ns nanoseconds. */
void metrics_request(int ex, enum metrics_tp tp, unsigned op, int ret,
		     uint64_t ns);
/* Data moved for export ex: read (sent to clients) or written. */
void metrics_bytes(int ex, enum metrics_tp tp, int written, uint64_t n);
/* A connection opened (delta 1) or went away (-1). */
void metrics_conn(enum metrics_tp tp, int delta);
/* A limit of bounds.c was hit; text is the limit's log line. */
void metrics_limit(const char *text);

#endif
