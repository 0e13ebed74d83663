/*
 * probe_lib.h - the synchronous ORFA test client of the server tests
 * (probe_lib.c), shared by orfa_probe (every operation of a healthy
 * session) and orfa_contain (a hostile client).
 *
 * TAP: ok() and skip() print numbered lines without a plan (the calling
 * script adds its own checks and prints the plan); g_n counts them,
 * g_failed the failures.  Every wait on the server is bounded (WAIT_MS).
 */
#ifndef ORFA_PROBE_LIB_H
#define ORFA_PROBE_LIB_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "orfa_proto.h"
#include "transport.h"

#define WAIT_MS		10000		/* bound on waits for the server */

extern char g_host[256], g_port[16];	/* the server, from --addr */
extern const char *g_log;		/* the server's log file, or NULL */
extern const char *g_export;		/* pc_open and raw_hello mount it
					 * ("/" unless changed) */
extern int g_n, g_failed;
/* Called with every reply that decoded (its data segment too), when set. */
extern void (*g_reply_watch)(const struct orfa_msg *rep, const void *data,
			     size_t len);

/* ---- TAP ---- */
int ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void skip(const char *why, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
double now_s(void);

/* ---- a synchronous client ---- */
struct pc {
	struct orfa_conn *c;
	uint64_t next_id;
	uint64_t root;
	uint32_t max_data;
	struct orfa_attr root_attr;
};

/* Credentials of this process (uid, gid, pid, umask 022). */
void cred_fill(struct orfa_cred *cr);
/* orfa_msg_init with the next request id and, where due, credentials. */
void req_init(struct pc *p, struct orfa_msg *m, unsigned op);
int pc_connect(struct pc *p);
void pc_close(struct pc *p);
/* Local address of socket fd as the server logs it ("127.0.0.1:N"). */
void sock_name(int fd, char *buf, size_t sz);
int pc_send(struct pc *p, struct orfa_msg *m, const void *data, size_t dlen);
/* One reply: 0, or a negative errno of the transport/decoder.  Up to rcap
 * bytes of its data land in rdata, the whole length in *rlen. */
int pc_recv(struct pc *p, struct orfa_msg *rep, void *rdata, size_t rcap,
	    size_t *rlen);
/* One request, one reply: the reply status (0 or a positive errno), or a
 * negative errno when no valid reply came. */
int pc_call(struct pc *p, struct orfa_msg *m, const void *data, size_t dlen,
	    struct orfa_msg *rep, void *rdata, size_t rcap, size_t *rlen);
/* HELLO with a version and an export path; the refusal reason (if any)
 * goes to reason.  Sets p->root, max_data, root_attr on success. */
int pc_hello_v(struct pc *p, uint32_t version, const char *export,
	       struct orfa_msg *rep, char *reason, size_t rsz);
/* Connect and say HELLO for g_export: 0 or non-zero. */
int pc_open(struct pc *p);

/* ---- operations: the reply status, or a negative errno ---- */
int op_ping(struct pc *p);
int op_lookup(struct pc *p, uint64_t parent, const char *name,
	      struct orfa_entry *e);
/* FORGET has no reply: the send's result. */
int op_forget(struct pc *p, const uint64_t *nodes, const uint64_t *counts,
	      unsigned n);
int op_getattr(struct pc *p, uint64_t node, uint64_t fh, struct orfa_attr *a);
int op_mkdir(struct pc *p, uint64_t parent, const char *name, uint32_t mode,
	     struct orfa_entry *e);
int op_create(struct pc *p, uint64_t parent, const char *name, uint32_t mode,
	      uint32_t flags, struct orfa_entry *e, uint64_t *fh);
int op_open(struct pc *p, unsigned op, uint64_t node, uint32_t flags,
	    uint64_t *fh, struct orfa_attr *a);
/* FLUSH, RELEASE, RELEASEDIR, FSYNC, FSYNCDIR. */
int op_fh(struct pc *p, unsigned op, uint64_t node, uint64_t fh,
	  uint64_t owner);
int op_write(struct pc *p, uint64_t node, uint64_t fh, uint64_t off,
	     const void *buf, size_t len, uint64_t *written,
	     struct orfa_attr *a);
void read_req(struct pc *p, struct orfa_msg *m, uint64_t node, uint64_t fh,
	      uint64_t off, uint32_t size);
int op_read(struct pc *p, uint64_t node, uint64_t fh, uint64_t off,
	    uint32_t size, void *buf, size_t *len);
/* UNLINK or RMDIR. */
int op_unlink(struct pc *p, unsigned op, uint64_t parent, const char *name);
void lk_req(struct pc *p, struct orfa_msg *m, unsigned op, uint64_t node,
	    uint64_t fh, uint64_t owner, uint32_t type, uint64_t start,
	    uint64_t end, uint32_t flags);
int op_setlk(struct pc *p, uint64_t node, uint64_t fh, uint64_t owner,
	     uint32_t type, uint64_t start, uint64_t end);
int op_getlk(struct pc *p, uint64_t node, uint64_t fh, uint64_t owner,
	     uint32_t type, uint64_t start, uint64_t end,
	     struct orfa_lock *out);
void flock_req(struct pc *p, struct orfa_msg *m, uint64_t node, uint64_t fh,
	       uint32_t op);
/* Nothing arrives on p within ms milliseconds. */
int pc_quiet(struct pc *p, int ms);
/* The reply to a request sent earlier (bounded wait). */
int pc_wait_reply(struct pc *p, struct orfa_msg *rep);
/* READDIR/READDIRPLUS through every cookie with replies of sz bytes;
 * names NUL-separated into names, their number in *count; READDIRPLUS
 * references handed out counted into *refs (may be NULL). */
int read_dir(struct pc *p, unsigned op, uint64_t node, uint64_t fh,
	     uint32_t sz, char *names, size_t ncap, int *count,
	     uint64_t *refs);
int has_name(const char *names, int count, const char *name);
uint8_t pattern(uint64_t off, unsigned seed);
void fill(uint8_t *b, size_t len, uint64_t off, unsigned seed);
int check(const uint8_t *b, size_t len, uint64_t off, unsigned seed);

/* ---- the server's log ---- */
/* Wait (bounded) for a line of g_log containing a and b (b may be NULL). */
int log_has(const char *a, const char *b);

/* ---- raw sockets ---- */
/* A plain TCP connection to the server; its local address goes to me. */
int raw_connect(char *me, size_t sz);
int raw_write(int fd, const void *buf, size_t len);
/* Encode request m (with dlen bytes of zero data) into buf: the frame
 * length. */
size_t raw_frame(uint8_t *buf, size_t cap, struct orfa_msg *m, size_t dlen);
/* Read exactly len bytes (bounded wait): 0 or -1. */
int raw_read(int fd, void *buf, size_t len);
/* One reply frame: header decoded, body and data discarded. */
int raw_reply(int fd, struct orfa_hdr *h);
/* HELLO for g_export on a raw connection: 0 when accepted. */
int raw_hello(int fd);
/* The server closed fd (EOF or reset) within the bound. */
int raw_closed(int fd);

#endif /* ORFA_PROBE_LIB_H */
