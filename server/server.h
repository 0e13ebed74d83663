/*
 * server.h - the orfad server: accepts connections on a transport listener
 * and serves ORFA requests from a backend.
 *
 * Three threading modes, after the ORFA design:
 *  - queue (default): event-loop threads (one per CPU) receive, run the
 *    short requests and send, a pool of worker threads runs the others
 *    (receive / process / send pipeline);
 *  - sequential: the loop thread runs every request itself;
 *  - connection: one thread per connection doing blocking receive, run and
 *    send; the loop thread only accepts.
 * The listener must be opened with the options orfa_server_listen_opts
 * gives for the chosen mode (non-blocking, or blocking accepted
 * connections for the connection mode).
 */
#ifndef ORFA_SERVER_H
#define ORFA_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct orfa_backend;
struct orfa_exports;
struct orfa_key;
struct orfa_listener;
struct orfa_tp_opts;
struct orfa_server;

enum orfa_threading {
	ORFA_THREADING_QUEUE,
	ORFA_THREADING_SEQUENTIAL,
	ORFA_THREADING_CONNECTION,
};

struct orfa_server_cfg {
	enum orfa_threading threading;
	unsigned threads;		/* queue mode workers (>= 1) */
	unsigned loops;			/* queue mode receiving event loops
					 * (0: one per CPU, at most 8) */
	unsigned max_inflight;		/* per connection: stop reading above */
	size_t max_outq;		/* per connection queued reply bytes:
					 * stop reading above */
	uint32_t max_data;		/* largest data segment offered in HELLO */
	size_t rdma_buf_size;		/* RDMA receive buffer size (0: default) */
	unsigned rdma_credits;		/* RDMA receives per connection (0:
					 * default) */
	/* Bounds on every peer (docs/limits.md); 0 picks the default. */
	unsigned hello_timeout;		/* s from accept to a finished
					 * handshake (HELLO, AUTH): 10 */
	unsigned idle_timeout;		/* s without a request on a
					 * connection holding no open file
					 * and no lookup reference: 300;
					 * UINT_MAX: never */
	unsigned msg_timeout;		/* s for one message (header, body,
					 * data) once its first byte came: 30 */
	unsigned max_conns;		/* connections at once: from
					 * RLIMIT_NOFILE, see limits.md */
	unsigned max_conns_per_addr;	/* from one peer address: a quarter
					 * of max_conns (at least 8) */
	unsigned max_files;		/* open file ids per connection */
	unsigned max_nodes;		/* nodes with lookup references per
					 * connection */
	size_t max_queued;		/* all connections: bytes of received
					 * data and expected replies held by
					 * unfinished requests: 1 GiB */
	const struct orfa_key *key;	/* shared key: clients must
					 * authenticate (PROTOCOL.md section
					 * 6); NULL: no authentication.
					 * Borrowed: lives as long as the
					 * server */
	bool allow_integrity_only;	/* grant clients that ask for it
					 * frames authenticated but not
					 * encrypted (default: no) */
};

/* Defaults: queue mode, 2 workers per CPU (at least 4), 256 requests and
 * 64 MiB of output per connection, ORFA_DEFAULT_MAX_DATA, no key; the
 * bounds 0 (orfa_server_create_exports resolves them, limits.md). */
void orfa_server_cfg_default(struct orfa_server_cfg *cfg);
/* "queue", "sequential", "connection" -> enum value, or -1. */
int orfa_threading_parse(const char *s);
const char *orfa_threading_name(enum orfa_threading t);
/* Transport options to open the listener with for cfg. */
void orfa_server_listen_opts(const struct orfa_server_cfg *cfg,
			     struct orfa_tp_opts *o);

/*
 * Create a server for the exports of ex on listener lst.  Every export's
 * backend field holds its struct orfa_backend.  ex, the backends and lst
 * are borrowed: the caller frees them after orfa_server_destroy.  Creates
 * the event base, so call it in the process that will run the server
 * (after any fork).  Returns 0 or a negative errno.
 */
int orfa_server_create_exports(const struct orfa_server_cfg *cfg,
			       const struct orfa_exports *ex,
			       struct orfa_listener *lst,
			       struct orfa_server **out);
/* The same for a one-line table: backend be as the root export "/", for
 * anyone, rw, no_root_squash, insecure, dev, suid (an in-process server
 * for tests, trusting its peer; orfad's shortcuts have safe defaults). */
int orfa_server_create(const struct orfa_server_cfg *cfg,
		       struct orfa_backend *be, struct orfa_listener *lst,
		       struct orfa_server **out);
/* Stop the server on SIGINT and SIGTERM, and on SIGHUP call the reload
 * function (orfa_server_on_reload) or log that there is none (signal
 * events of the loop). */
int orfa_server_catch_signals(struct orfa_server *srv);
/* On SIGHUP, call fn(arg) on the thread running orfa_server_run. */
void orfa_server_on_reload(struct orfa_server *srv, void (*fn)(void *),
			   void *arg);
/*
 * Serve the exports of tab from now on (table borrowed until destroy, as
 * orfa_server_create_exports's; every entry has its backend).  An entry
 * whose backend an export served so far has keeps that export: its
 * sessions, ids and locks, with tab's options for every session from now
 * on.  An export tab no longer has takes no new session; its sessions go
 * on until they end.  Call it from fn of orfa_server_on_reload.  0 or
 * -ENOMEM (nothing changed).
 */
int orfa_server_exports_update(struct orfa_server *srv,
			       const struct orfa_exports *tab);
/*
 * Serve until orfa_server_stop or a caught signal, then close every
 * connection (releasing its files, lookup references and locks) and stop
 * the workers.  Returns 0 or a negative errno.
 */
int orfa_server_run(struct orfa_server *srv);
/* Make orfa_server_run return; callable from any thread. */
void orfa_server_stop(struct orfa_server *srv);
void orfa_server_destroy(struct orfa_server *srv);

#endif /* ORFA_SERVER_H */
