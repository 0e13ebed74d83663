/*
 * transport.h - the one transport interface of ORFA.
 *
 * A transport moves ORFA messages (frame header + body, then a data
 * segment) between two peers.  Client and server use only the wrappers
 * below and never know whether TCP (transport_tcp.c) or RDMA verbs
 * (transport_rdma.c) is underneath.  The transport does not interpret the
 * body; it reads the 24-byte frame header to know how much follows, and
 * checks the lengths against the limits it was given before allocating.
 *
 * Two modes, chosen when the connection is made:
 *  - blocking (client): orfa_conn_send blocks until the message is handed
 *    to the kernel/NIC (or the send timeout expires); orfa_conn_recv
 *    blocks until a whole message arrived.  Any number of threads may
 *    send at once (the transport serialises them); one thread receives.
 *  - non-blocking (server, ORFA_TP_NONBLOCK): orfa_conn_send never blocks:
 *    what the socket does not take is queued inside the transport and
 *    written by orfa_conn_flush when orfa_conn_fd() is writable;
 *    orfa_conn_recv returns -EAGAIN until a whole message is there.  The
 *    event loop polls orfa_conn_fd() for reading, and for writing while
 *    orfa_conn_want_write() is true.  Send may still be called from any
 *    thread; recv and flush belong to the loop thread.  The transport
 *    reads ahead, so once the fd is readable the loop must call
 *    orfa_conn_recv until it returns -EAGAIN (or an error): messages may
 *    be buffered that the fd no longer signals.
 *
 * orfa_conn_send calls the message's done() exactly once, also when it
 * fails.  Received messages may stay on loan (several at once) and
 * orfa_conn_recv_done may be called from any thread, but all of them must
 * be returned before the last orfa_conn_put.
 *
 * Errors are negative errno values: -EAGAIN (non-blocking, nothing yet),
 * -ECONNRESET (peer closed or died; also returned for an orderly EOF),
 * -ETIMEDOUT (send timeout), -EMSGSIZE / -EBADMSG / -EPROTO (the peer sent
 * a frame that breaks the limits; the connection is then unusable and
 * orfa_conn_last_error() says why), -ENOTCONN after shutdown.
 */
#ifndef ORFA_TRANSPORT_H
#define ORFA_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "orfa_proto.h"

struct orfa_conn;
struct orfa_listener;

/* Options for connect / listen. */
#define ORFA_TP_NONBLOCK	(1u << 0)

struct orfa_tp_opts {
	unsigned flags;			/* ORFA_TP_* */
	uint32_t max_body;		/* refuse larger bodies (<= ORFA_MAX_BODY) */
	uint32_t max_data;		/* refuse larger data segments */
	int connect_timeout_ms;		/* 0: default (10 s) */
	int send_timeout_ms;		/* blocking mode; 0: no timeout */
	size_t rdma_buf_size;		/* RDMA: pre-posted receive size (64 KiB) */
	unsigned rdma_credits;		/* RDMA: receives pre-posted per side */
};
/* What the RDMA transport accepts of rdma_buf_size / rdma_credits (others
 * are clamped; a buffer always holds the largest header segment, so it is
 * a little over 64 KiB at least). */
#define ORFA_RDMA_MIN_BUF_SIZE	(64u * 1024)
#define ORFA_RDMA_MAX_BUF_SIZE	(16u << 20)
#define ORFA_RDMA_MIN_CREDITS	4u
#define ORFA_RDMA_MAX_CREDITS	4096u
void orfa_tp_opts_default(struct orfa_tp_opts *o);

/*
 * A message to send: the header segment (24-byte frame header followed by
 * the body, already encoded) and an optional data segment, either memory
 * (iov) or a file range (fd, off, len: TCP uses sendfile).  hdr/body are
 * copied if the transport must queue them; the data segment is not: the
 * transport calls done(done_arg) once it no longer needs the data memory
 * or fd (possibly before orfa_conn_send returns, possibly from the loop
 * thread later; also on error and on close).  done may be NULL.
 */
struct orfa_txmsg {
	const uint8_t *head;		/* frame header + body */
	size_t head_len;
	const struct iovec *iov;	/* data from memory, or NULL */
	int iovcnt;
	int fd;				/* data from a file when iov == NULL and fd >= 0 */
	off_t fd_off;
	size_t fd_len;
	void (*done)(void *done_arg);
	void *done_arg;
	/* Client requests that expect a reply data segment (READ, READDIR,
	 * ...): where that data should land.  RDMA advertises it to the peer
	 * (address + rkey) so the server can RDMA-WRITE straight into it; TCP
	 * ignores it (it uses the sink resolver).  NULL when unused.  It must
	 * stay valid until the reply with this req_id has been received or
	 * the connection destroyed: the peer may write into it at any time
	 * before replying (so a call that timed out must keep its buffer). */
	void *reply_buf;
	size_t reply_buf_len;
};

/*
 * A received message.  body (hdr.body_len bytes) is lent by the transport;
 * data (hdr.data_len bytes) is lent by the transport or is the caller's
 * sink (see orfa_sink_fn).  Both stay valid until orfa_conn_recv_done(),
 * which every successful orfa_conn_recv must be paired with.  body and
 * data are writable (the codec NUL-checks names in place).
 */
struct orfa_rxmsg {
	struct orfa_hdr hdr;		/* decoded frame header */
	uint8_t *head;			/* raw frame header + body (head_len bytes) */
	size_t head_len;
	uint8_t *body;			/* = head + ORFA_HDR_SIZE */
	void *data;			/* NULL when data_len == 0 or deferred */
	int data_in_sink;		/* 1 when data was written into the sink */
	int data_deferred;		/* 1: the data segment is still in the
					 * connection (orfa_defer_fn) */
	void *tp_priv;			/* transport bookkeeping */
};

/*
 * Sink resolver (client side): called by the receiving thread once a frame
 * header with data_len > 0 has arrived, to ask where the data segment
 * should land.  Return a buffer of at least hdr->data_len bytes to receive
 * straight into it (no copy), or NULL to let the transport lend one.  The
 * buffer must stay valid until orfa_conn_recv_done for that message.
 */
typedef void *(*orfa_sink_fn)(void *arg, const struct orfa_hdr *hdr);

/*
 * Two-phase receive (server side; optional: a transport may leave its
 * slots NULL, RDMA does, and the wrappers then answer -ENOTSUP).  The
 * defer resolver is called by the receiving thread once a frame header
 * with data_len > 0 has arrived.  Returning 1 leaves that frame's data
 * segment in the connection: orfa_conn_recv returns the message with head
 * and body, data NULL and data_deferred 1.  Before the connection is read
 * again, the segment must be taken with orfa_conn_recv_data, by any one
 * thread (the caller stops polling orfa_conn_fd for reading meanwhile;
 * orfa_conn_recv answers -EBUSY until then).  So a WRITE can go from the
 * socket straight into its file (the "recvfile" of the ORFA report).
 */
typedef int (*orfa_defer_fn)(void *arg, const struct orfa_hdr *hdr);

/* Where orfa_conn_recv_data puts a deferred data segment. */
struct orfa_rxdest {
	int fd;			/* >= 0: write the data into fd at off (TCP:
				 * splice socket -> pipe -> file; read +
				 * pwrite where the file refuses splice, or
				 * for an O_APPEND fd, which ignores off) */
	off_t off;
	void *buf;		/* fd < 0: into buf (data_len bytes), or when
				 * NULL into memory lent as m->data until
				 * orfa_conn_recv_done */
	int timeout_ms;		/* longest wait for more data from the peer
				 * (<= 0: 30 s) */
	/* Results for fd >= 0: */
	size_t written;		/* bytes the file took, from off on */
	int werr;		/* 0, or the negative errno that stopped the
				 * file taking more (-ENOSPC...): the rest of
				 * the segment was read and dropped */
};

/* The table every transport fills in with designated initializers. */
struct orfa_transport_ops {
	const char *name;		/* "tcp", "rdma" */
	int (*connect)(const char *host, const char *port,
		       const struct orfa_tp_opts *o, struct orfa_conn **out);
	int (*listen)(const char *host, const char *port,
		      const struct orfa_tp_opts *o, struct orfa_listener **out);
	int (*accept)(struct orfa_listener *l, struct orfa_conn **out);
	int (*listener_fd)(struct orfa_listener *l);
	/* Bound address as "host:port" (port 0 resolved), for --port-file. */
	int (*listener_addr)(struct orfa_listener *l, char *buf, size_t size);
	void (*listener_close)(struct orfa_listener *l);

	int (*send)(struct orfa_conn *c, const struct orfa_txmsg *m);
	int (*recv)(struct orfa_conn *c, struct orfa_rxmsg *m);
	void (*recv_done)(struct orfa_conn *c, struct orfa_rxmsg *m);
	int (*flush)(struct orfa_conn *c);
	/* Bytes queued to send; with want_write, whether the loop should
	 * poll for writable (orfa_conn_want_write). */
	size_t (*queued)(struct orfa_conn *c, int *want_write);
	int (*fd)(struct orfa_conn *c);
	void (*set_sink)(struct orfa_conn *c, orfa_sink_fn fn, void *arg);
	void (*set_limits)(struct orfa_conn *c, uint32_t max_body, uint32_t max_data);
	void (*shutdown)(struct orfa_conn *c);
	void (*destroy)(struct orfa_conn *c);
	/* The peer's address (for export access checks); may be NULL. */
	int (*peer_addr)(struct orfa_conn *c, struct sockaddr_storage *ss);
	/* Batching replies (orfa_conn_cork); may be NULL. */
	int (*cork)(struct orfa_conn *c, int on);
	/* Two-phase receive (orfa_defer_fn); both may be NULL. */
	void (*set_defer)(struct orfa_conn *c, orfa_defer_fn fn, void *arg);
	int (*recv_data)(struct orfa_conn *c, struct orfa_rxmsg *m,
			 struct orfa_rxdest *d);
};

/* The connection object every transport embeds as its first member
 * (zeroed at allocation: the last three fields are transport.c's). */
struct orfa_conn {
	const struct orfa_transport_ops *ops;
	int refs;			/* atomic; see orfa_conn_get/put */
	int last_err;			/* negative errno of the first failure */
	char why[128];			/* human-readable reason for last_err */
	char peer[64];			/* "addr:port" for logs */
	struct orfa_conn_seal *seal;	/* NULL: plain frames (orfa_conn_seal) */
	orfa_defer_fn defer_fn;		/* the caller's defer resolver, called */
	void *defer_arg;		/* by transport.c's while not sealed */
};

/* The listener object every transport embeds as its first member. */
struct orfa_listener {
	const struct orfa_transport_ops *ops;
};

/* Transports by name ("tcp", "rdma"); NULL when not built in. */
const struct orfa_transport_ops *orfa_transport_find(const char *name);
extern const struct orfa_transport_ops orfa_tcp_transport;

/*
 * Split "HOST:PORT", "[V6]:PORT", "HOST" (port = defport) and an optional
 * "tcp://" or "rdma://" prefix.  Writes the transport name ("tcp" unless a
 * prefix says otherwise), host and port.  A bare IPv6 literal without
 * brackets ("::1") is taken whole as the host with the default port: a
 * port can only follow a bracketed one.  Returns 0 or -EINVAL.
 */
int orfa_parse_address(const char *spec, const char *defport,
		       char *tp, size_t tpsz, char *host, size_t hostsz,
		       char *port, size_t portsz);

/*
 * A size from a command line or the exports file: "65536", "64K", "4M",
 * "1G", "2T" (binary units, any case, optional "i" and "B": "64KiB").
 * Returns 0, or -EINVAL for anything else or a value that does not fit in
 * 64 bits.  Zero is a size: callers that refuse it check.
 */
int orfa_parse_size(const char *s, uint64_t *out);

/*
 * Code that changes the calling thread's credentials (setfsuid, setgroups,
 * capset: the native backend serving a user) calls orfa_thread_creds_changing
 * first.  The kernel refuses verbs and rdma_cm commands made through write()
 * by a thread whose credentials changed since the device was opened
 * ("changed security contexts after opening file descriptor"), so the RDMA
 * transport leaves such calls of a marked thread to threads of its own.
 */
void orfa_thread_creds_changing(void);
bool orfa_thread_creds_changed(void);

/* Wrappers: see the contracts at the top of this file. */
int orfa_conn_connect(const char *transport, const char *host,
		      const char *port, const struct orfa_tp_opts *o,
		      struct orfa_conn **out);
int orfa_listener_open(const char *transport, const char *host,
		       const char *port, const struct orfa_tp_opts *o,
		       struct orfa_listener **out,
		       const struct orfa_transport_ops **ops_out);
/* Accept one pending connection: 0, or -EAGAIN when none is pending. */
int orfa_listener_accept(struct orfa_listener *l, struct orfa_conn **out);
int orfa_listener_fd(struct orfa_listener *l);
int orfa_listener_addr(struct orfa_listener *l, char *buf, size_t size);
void orfa_listener_close(struct orfa_listener *l);
int orfa_conn_send(struct orfa_conn *c, const struct orfa_txmsg *m);
int orfa_conn_recv(struct orfa_conn *c, struct orfa_rxmsg *m);
void orfa_conn_recv_done(struct orfa_conn *c, struct orfa_rxmsg *m);
int orfa_conn_flush(struct orfa_conn *c);
int orfa_conn_want_write(struct orfa_conn *c);
size_t orfa_conn_queued_bytes(struct orfa_conn *c);
int orfa_conn_fd(struct orfa_conn *c);
void orfa_conn_set_sink(struct orfa_conn *c, orfa_sink_fn fn, void *arg);
void orfa_conn_set_limits(struct orfa_conn *c, uint32_t max_body,
			  uint32_t max_data);
/* Wake a blocked receiver and fail further sends with -ENOTCONN. */
void orfa_conn_shutdown(struct orfa_conn *c);
/* The peer's socket address (AF_INET or AF_INET6; IPv4 peers of a
 * dual-stack socket may show as v4-mapped AF_INET6): 0, -ENOTSUP when the
 * transport cannot tell, or another negative errno (-ENOTCONN...). */
int orfa_conn_peer_addr(struct orfa_conn *c, struct sockaddr_storage *ss);
/*
 * Non-blocking mode, loop thread: while corked, orfa_conn_send queues
 * (head copied, data referenced, as when the socket is full) instead of
 * writing, so replies produced in one burst leave in one sendmsg: fewer
 * system calls and segments, and fewer wake-ups of the peer.  Uncorking
 * writes what was queued and returns like orfa_conn_flush.  Corking
 * returns 0.  A transport without it (NULL slot) ignores it: 0.
 */
int orfa_conn_cork(struct orfa_conn *c, int on);
/* Install (fn NULL: remove) the defer resolver, on the receiving thread
 * before the first recv or between recvs: 0 or -ENOTSUP. */
int orfa_conn_set_defer(struct orfa_conn *c, orfa_defer_fn fn, void *arg);
/*
 * Take the deferred data segment of m (m->data_deferred) to d.  May block
 * up to d->timeout_ms per wait for the peer, in either mode.  0: the
 * segment left the connection (m->data_deferred is 0, m->data is set for
 * memory destinations, file results are in d); -ENOTSUP; -EINVAL when m
 * has nothing deferred; -ENOMEM (nothing taken); or the connection's
 * error (-ECONNRESET, -ETIMEDOUT...: it is unusable).
 */
int orfa_conn_recv_data(struct orfa_conn *c, struct orfa_rxmsg *m,
			struct orfa_rxdest *d);
/*
 * Protect the connection (PROTOCOL.md section 6.1): every frame sent or
 * received from now on is sealed with keys (seal.h: ChaCha20-Poly1305,
 * a counter per direction), transparently for the caller.  Call it right
 * after the plain AUTH reply was sent (server) or received (client),
 * between two receives and with no send running.  While sealed,
 * orfa_conn_send copies the data segment (memory or file) to encrypt it,
 * and the defer resolver is not consulted (no two-phase receive: data is
 * verified before use).  A frame that fails verification makes
 * orfa_conn_recv return -EBADMSG, now and after (the connection is done;
 * orfa_conn_last_error says which frame).  keys is copied: the caller
 * wipes its own.  0, -EALREADY, or -ENOMEM.
 */
struct orfa_seal_keys;
int orfa_conn_seal(struct orfa_conn *c, const struct orfa_seal_keys *keys);
bool orfa_conn_sealed(const struct orfa_conn *c);

/* References: the creator holds one; the last put destroys the connection
 * and clears *cp. */
void orfa_conn_get(struct orfa_conn *c);
void orfa_conn_put(struct orfa_conn **cp);
const char *orfa_conn_last_error(const struct orfa_conn *c);
/* Record the first failure on c (keeps an earlier one); returns err. */
int orfa_conn_fail(struct orfa_conn *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* ORFA_TRANSPORT_H */
