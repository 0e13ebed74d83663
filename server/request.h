/*
 * request.h - what a request handler of orfad sees of its request: the
 * decoded message, the session it belongs to (export, view, open files,
 * negotiated limits), and the calls that answer and finish it.  Handlers
 * (dispatch*.c), the handshake (hello.c) and the access checks (access.c)
 * work through this header only; the connection behind a request (struct
 * sconn, server_impl.h) is the pipeline's.
 *
 * The way of a request: the pipeline (conn.c, loop.c, workers.c) reads a
 * frame, makes a struct sreq of it and calls an entry point (dispatch.h:
 * dispatch_request, hello_handle, auth_handle); the handler answers
 * through the calls below (request.c), which talk to the connection.
 * Nothing here calls back into the handlers.
 *
 * Lifetime: a request counts in its connection from the moment it is read
 * until sreq_finish, so its session and the connection stay valid until
 * then.  It keeps its received frame on loan from the transport; the
 * decoded message (m) points into it.
 */
#ifndef ORFA_REQUEST_H
#define ORFA_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "codec.h"
#include "locks.h"
#include "transport.h"

struct orfa_server_cfg;
struct sconn;
struct sexport;
struct ssession;

/*
 * One request.  Handlers use m (the decoded request; HELLO and AUTH
 * decode it themselves from head); the other fields belong to the
 * pipeline (request.c, conn.c, workers.c).
 */
struct sreq {
	struct orfa_msg m;		/* decoded request; points into head
					 * and data */
	uint8_t *head;			/* frame header + body (rx.head) */
	size_t head_len;
	void *data;			/* data segment (rx.data) or NULL */

	struct sreq *next;		/* worker queue */
	struct sconn *conn;
	struct orfa_rxmsg rx;		/* the frame, on loan */
	size_t cost;			/* counted in the connection's
					 * inflight_bytes */
	struct orfa_lk_waiter waiter;	/* parked SETLK / FLOCK */
	/* Parking, under the connection's lock: the handler that parked r
	 * has not returned yet (in_dispatch); a wake-up that came meanwhile
	 * is left to it (woken, wake_status). */
	int in_dispatch, woken, wake_status;
};

/* Handler result meaning "parked: do not finish the request now". */
#define SREQ_PARKED 1

/* ---- what the request belongs to ---------------------------------------- */

/* r's session (access.h): its export once HELLO bound it, its view, open
 * files, lookup references and negotiated limits. */
struct ssession *sreq_session(struct sreq *r);
/* The server's configuration (limits offered, key). */
const struct orfa_server_cfg *sreq_server_cfg(struct sreq *r);
/* The export path names on r's server, as access_find. */
struct sexport *sreq_find_export(struct sreq *r, const char *path,
				 const char **subdir);
/* The peer's socket address: 0 or a negative errno (orfa_conn_peer_addr). */
int sreq_peer_addr(struct sreq *r, struct sockaddr_storage *ss);
/* Protect r's connection with keys (orfa_conn_seal) after its AUTH reply
 * was sent, on the receiving thread; on failure (-ENOMEM) the connection
 * is shut down.  0 or a negative errno. */
struct orfa_seal_keys;
int sreq_seal(struct sreq *r, const struct orfa_seal_keys *keys);

/* ---- answering ------------------------------------------------------------ */

/*
 * Send the reply to r.  rep (may be NULL for an empty body) holds the
 * status (hdr.status, positive errno or 0) and reply arguments; opcode,
 * req_id and lengths are filled in here.  tx (may be NULL) carries the
 * data segment and its done callback, which the transport calls (also on
 * failure).  Returns 0 or the negative errno of the send; failures are
 * also noted on the connection, which the owning thread then closes.
 */
int sreq_reply(struct sreq *r, struct orfa_msg *rep, struct orfa_txmsg *tx);
/* Empty error reply with status err (positive errno). */
void sreq_reply_err(struct sreq *r, int err);

/*
 * Reply data the transport may keep after sreq_reply returns (it copies
 * header and body, not the data segment nor its iovec array): both live
 * in one heap block, freed once sent.  sreq_buf_new: NULL on ENOMEM.
 * sreq_reply_buf sends rep (may be NULL) with the first len bytes of b
 * and consumes b (freed at once when len is 0).
 */
struct sreq_buf {
	struct iovec iov;
	uint8_t data[];
};

struct sreq_buf *sreq_buf_new(size_t cap);
void sreq_reply_buf(struct sreq *r, struct orfa_msg *rep, struct sreq_buf *b,
		    size_t len);

/* ---- the data segment of a WRITE -------------------------------------------- */

/* Is r's data segment still in the connection (a WRITE of at least
 * SPLICE_MIN_DATA bytes in queue or connection mode)? */
int sreq_data_deferred(const struct sreq *r);
/*
 * Take r's deferred data segment to d, a file range, or into memory when
 * d is NULL (r->data and r->m.data then point at it).  Any thread, once;
 * the connection is read again afterwards.  0, or a negative errno after
 * which the connection is closed (its owner is told).  A request finished
 * without taking its data has it read and dropped by sreq_finish.
 */
int sreq_take_data(struct sreq *r, struct orfa_rxdest *d);
/* The backend cannot take data from the connection (no write_fd): stop
 * deferring WRITE data on r's connection. */
void sreq_no_defer(struct sreq *r);

/* ---- limits ---------------------------------------------------------------- */

/* r hit a per-connection limit (open files, nodes; ret the negative errno
 * it answers): log it, at most once a minute per peer address. */
void sreq_limit_hit(struct sreq *r, const char *what, int ret);
/* r's labels in the metrics (metrics.h): its export's index (-1 before
 * HELLO) and transport.  Taken before the handler runs: a parked r may
 * be gone by the time the handler returns. */
void sreq_metrics_labels(const struct sreq *r, int *ex, int *tp);

/* ---- finishing ---------------------------------------------------------------- */

/* The request is over: free it and let the connection progress. */
void sreq_finish(struct sreq *r);

/*
 * Parking a SETLK or FLOCK that must wait.  sreq_park_begin gives the
 * waiter to pass to the lock manager, or NULL when too many requests of
 * the connection are parked already (answer ENOLCK).  sreq_park_end
 * takes the lock manager's result: 0 (granted: answer), a negative errno
 * to answer as the handler's (-ECANCELED: no answer), or SREQ_PARKED
 * when r now waits.  A parked request is answered and finished by
 * request.c when the lock manager wakes it.
 */
struct orfa_lk_waiter *sreq_park_begin(struct sreq *r);
int sreq_park_end(struct sreq *r, int ret);

/* ---- the handshake (hello.c) ---------------------------------------------------- */

/* HELLO asked for AUTH: nothing but AUTH may come next. */
void sreq_hello_wait_auth(struct sreq *r);
/* The session is set up: other requests may come, and the limits
 * negotiated in the session (max_data) hold from now on. */
void sreq_session_open(struct sreq *r);
/* Refused: close the connection once this reply is sent. */
void sreq_close_after_reply(struct sreq *r);

#endif /* ORFA_REQUEST_H */
