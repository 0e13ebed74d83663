/*
 * client.h - the RPC layer of the orfa FUSE client.
 *
 * Holds N transport connections to one orfad (blocking transport mode) and
 * runs ORFA requests over them asynchronously: a caller builds a call,
 * sends it from any thread and gets its completion callback later, from
 * the connection's receiver thread (or from the timer thread on timeout and
 * interrupt, or from the sending thread when the send itself fails).  This
 * layer knows nothing about FUSE; ops.c answers FUSE requests from the
 * callbacks.
 *
 * Guarantees:
 *  - every call sent gets exactly one completion callback: the reply, or
 *    -ETIMEDOUT after the request timeout, or -EIO when its connection
 *    dies or its reply cannot be decoded, or -EINTR after
 *    orfa_client_interrupt();
 *  - reply data for calls made with a sink (READ, READDIR, READLINK,
 *    GETXATTR, LISTXATTR) lands straight in the call's sink buffer;
 *  - a reply that comes back after its call was completed otherwise (late
 *    after a timeout or an interrupt) is not lost: the server-side state it
 *    created is given back (FORGET for entries, RELEASE for open files,
 *    the call's orphan hook for anything else).
 *
 * Reconnecting (cfg.reconnect; issue 6): when a connection dies, its
 * receiver thread connects again with backoff (100 ms doubling to 2 s)
 * until it succeeds or the client stops, redoes HELLO (+AUTH), runs the
 * reconnect hook (the caller opens its files again there) and takes calls
 * again.  Meanwhile calls pinned to it (or all, when none is alive) wait
 * for it up to the request timeout, then fail with -EIO.  Server file ids
 * sent after a reconnect are translated from the old connection's to the
 * new one's (orfa_client_remap_fh).  Calls in flight at the loss: the
 * idempotent ones (reads, lookups, attributes, opens, releases, fsync,
 * WRITE without O_APPEND...) are kept (with copies of their names and
 * data) and sent again once reconnected; name-creating ones (CREATE,
 * MKDIR, MKNOD, SYMLINK, LINK) are resolved by a LOOKUP of the name
 * (found with the right type: applied, the entry is the answer; ENOENT:
 * sent again); UNLINK, RMDIR and RENAME are sent again and ENOENT counts
 * as done; the rest (SETXATTR, locks, ...) get -EIO.  Kept calls still
 * fail with -ETIMEDOUT at their deadline.  Limit: a name another client
 * created or removed meanwhile is taken for our own doing.  Without
 * cfg.reconnect a dead connection stays dead and its calls get -EIO;
 * once all are dead every call fails at once with -EIO.
 */
#ifndef ORFA_CLIENT_H
#define ORFA_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "auth.h"
#include "codec.h"

struct orfa_client;
struct orfa_call;

/*
 * Completion callback.  err is 0 on success (rep is then the decoded
 * reply, whose data pointer and names live until the callback returns),
 * or a negative errno: the server's status (-status) or a local failure
 * (-EIO, -ETIMEDOUT, -EINTR); rep is NULL whenever err != 0.  The callback
 * must not block for long: it runs on a receiver thread that no other reply
 * of its connection can pass.  The call is freed after the callback
 * returns; do not keep it.
 */
typedef void (*orfa_call_fn)(struct orfa_call *call, int err,
			     const struct orfa_msg *rep);

/*
 * Orphan hook: called instead of nothing when a successful reply arrives
 * for a call that was already completed by orfa_client_interrupt().  Gives
 * the caller a chance to undo what the server did (e.g. unlock a lock that
 * was granted after the waiter gave up).  Runs on the receiver thread.
 */
typedef void (*orfa_orphan_fn)(struct orfa_call *call,
			       const struct orfa_msg *rep);

/* Connection parameters. */
struct orfa_client_cfg {
	const char *transport;		/* "tcp", "rdma" */
	const char *host;
	const char *port;
	const char *export_path;	/* "/" or "/sub/dir" */
	unsigned nconns;		/* >= 1 */
	int timeout_ms;			/* request timeout; 0: none */
	uint32_t max_data;		/* data segment offered in HELLO */
	const struct orfa_key *key;	/* shared key (-o key=FILE) or NULL;
					 * copied when reconnect is set */
	int integrity_only;		/* with a key: ask for frames
					 * authenticated, not encrypted */
	int reconnect;			/* reconnect dead connections */
	size_t rdma_buf_size;		/* RDMA receive buffers (0: default) */
	unsigned rdma_credits;		/* RDMA receives per connection (0:
					 * default) */
};

/* What the HELLO exchange established (same on every connection). */
struct orfa_session_info {
	uint64_t root_nodeid;		/* server node of the export root */
	uint64_t root_generation;
	struct orfa_attr root_attr;
	uint64_t features;		/* granted ORFA_FEAT_* */
	uint32_t max_data;		/* negotiated */
	uint32_t server_version;
};

/*
 * Connect cfg->nconns connections and do HELLO on each, synchronously and
 * without starting any thread (so the caller may still fork).  On failure
 * returns a negative errno and writes a message for the user into
 * err (errsz bytes), e.g. "cannot connect to 127.0.0.1:7207: Connection
 * refused"; nothing is left open.  On success *out owns the connections.
 */
int orfa_client_connect(const struct orfa_client_cfg *cfg,
			struct orfa_client **out, char *err, size_t errsz);

const struct orfa_session_info *orfa_client_info(const struct orfa_client *cl);

/* Start the receiver threads (one per connection) and the timer thread.
 * Returns 0 or a negative errno (then call orfa_client_destroy). */
int orfa_client_start(struct orfa_client *cl);

/*
 * Stop: shut every connection down, answer every pending call with -EIO,
 * join the threads.  After this, orfa_call_send completes calls with -EIO
 * at once.  Idempotent.  orfa_client_destroy stops and frees; NULL is
 * fine.
 */
void orfa_client_stop(struct orfa_client *cl);
void orfa_client_destroy(struct orfa_client *cl);

/*
 * Calls.
 *
 * orfa_call_new allocates a call for opcode with a sink buffer of sink_len
 * bytes (0: none) and ctx_size bytes of zeroed caller context
 * (orfa_call_ctx).  Returns NULL when out of memory.  The caller fills
 * orfa_call_msg(call): credentials, arguments, names (the names are
 * encoded during orfa_call_send and need only live until it returns).
 * A call that is never sent is freed with orfa_call_free.
 */
struct orfa_call *orfa_call_new(struct orfa_client *cl, unsigned opcode,
				size_t sink_len, size_t ctx_size);
void orfa_call_free(struct orfa_call *call);
struct orfa_msg *orfa_call_msg(struct orfa_call *call);
void *orfa_call_ctx(struct orfa_call *call);
void *orfa_call_sink(struct orfa_call *call);
size_t orfa_call_sink_len(const struct orfa_call *call);
struct orfa_client *orfa_call_client(const struct orfa_call *call);

/*
 * Connections.  The server keeps open file ids, lookup references and lock
 * owners per connection, so a call about an open file must go where the
 * file was opened, and references are given back where they were handed
 * out.  orfa_call_set_conn pins a call to connection conn (0 <= conn <
 * orfa_client_nconns); unpinned calls go to the live connection with the
 * fewest calls in flight.  orfa_call_conn tells, in the callback, where a
 * call went.
 */
#define ORFA_MAX_CONNS	64u
unsigned orfa_client_nconns(const struct orfa_client *cl);
void orfa_call_set_conn(struct orfa_call *call, unsigned conn);
unsigned orfa_call_conn(const struct orfa_call *call);

/* orfa_call_send flags. */
#define ORFA_CALL_NO_TIMEOUT	(1u << 0)	/* may wait forever (SETLK wait) */

/*
 * Send the call; fn(call, ...) is called exactly once, possibly before
 * this returns (e.g. at once with -EIO when no connection is alive).
 * iov/iovcnt (may be NULL/0) is the data segment, sent without copying:
 * orfa_call_send returns only once the transport is done with it (its
 * done() callback ran), so memory the caller lends for the duration of the
 * send (a FUSE request's write buffer) is fine.
 * orphan may be NULL.  Takes ownership of call.
 */
void orfa_call_send(struct orfa_call *call, const struct iovec *iov,
		    int iovcnt, unsigned flags, orfa_call_fn fn,
		    orfa_orphan_fn orphan);

/*
 * A sent call's identity, by value: FUSE interrupt callbacks may run after
 * the call was freed, so they name it by (connection, req_id) and
 * orfa_client_interrupt looks it up.  Packs into a pointer-sized value
 * (req_id < 2^44, conn < 256) for fuse_req_interrupt_func's data.
 */
struct orfa_call_ref {
	uint64_t req_id;
	unsigned conn;
};
static inline void *orfa_call_ref_pack(struct orfa_call_ref r)
{
	return (void *)(uintptr_t)((r.req_id << 8) | (r.conn & 0xff));
}
static inline struct orfa_call_ref orfa_call_ref_unpack(void *p)
{
	struct orfa_call_ref r = {
		.req_id = (uint64_t)(uintptr_t)p >> 8,
		.conn = (unsigned)((uintptr_t)p & 0xff),
	};
	return r;
}

/*
 * Registration hook: run by orfa_call_send on the sending thread once the
 * call has its req_id and before any byte is sent, so no reply can have
 * completed it yet (the caller's request handle is still valid).  Used to
 * register FUSE interrupt callbacks.  Set before orfa_call_send.
 */
typedef void (*orfa_reg_hook)(struct orfa_call *call, struct orfa_call_ref ref,
			      void *arg);
void orfa_call_set_hook(struct orfa_call *call, orfa_reg_hook fn, void *arg);

/*
 * Complete a pending call with -EINTR without waiting for its reply (from
 * any thread; the callback runs on the timer thread).  The call stays
 * registered so that a later successful reply reaches its orphan hook.
 * Unknown or already completed calls are ignored.
 */
void orfa_client_interrupt(struct orfa_client *cl, struct orfa_call_ref ref);

/*
 * Give back lookup references that connection conn handed out.  Batched
 * per connection: sent when a batch is full, on the timer tick (within
 * ~100 ms) or on orfa_client_flush_forgets.  nodeid is a server node id.
 * Never fails (a dead connection makes the references moot: the server
 * drops them with the connection).
 */
void orfa_client_forget(struct orfa_client *cl, unsigned conn,
			uint64_t nodeid, uint64_t nlookup);
void orfa_client_flush_forgets(struct orfa_client *cl);

/* Close server file id fh, opened on connection conn, of which the kernel
 * never learnt (fire and forget).  dir: RELEASEDIR instead of RELEASE. */
void orfa_client_release(struct orfa_client *cl, unsigned conn,
			 uint64_t nodeid, uint64_t fh, int dir);

/*
 * Reconnect hook: runs on connection conn's receiver thread once the
 * connection was made again and its handshake done, before any call flows
 * on it.  It may use orfa_client_sync_call on conn (only there) and
 * orfa_client_remap_fh.  Set before orfa_client_start.
 */
typedef void (*orfa_reconnect_fn)(struct orfa_client *cl, unsigned conn,
				  void *arg);
void orfa_client_set_reconnect_hook(struct orfa_client *cl,
				    orfa_reconnect_fn fn, void *arg);

/*
 * From the reconnect hook only: send request m (no data; the caller fills
 * everything but req_id) on the connection being re-established and wait
 * for its reply (at most the request timeout) into *rep (no data kept).
 * Returns 0, the server's status as a negative errno, or a local error.
 */
int orfa_client_sync_call(struct orfa_client *cl, unsigned conn,
			  struct orfa_msg *m, struct orfa_msg *rep);

/* From the reconnect hook: server file id old_fh of connection conn is
 * new_fh on the new connection; calls built before the reconnect that
 * carry old_fh are sent with new_fh.  0 or -ENOMEM. */
int orfa_client_remap_fh(struct orfa_client *cl, unsigned conn,
			 uint64_t old_fh, uint64_t new_fh);

#endif /* ORFA_CLIENT_H */
