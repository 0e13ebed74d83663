/*
 * transport_tcp_impl.h - what the pieces of the TCP transport share:
 * transport_tcp.c (connections, listener, waiting, shutdown, the ops
 * table), transport_tcp_rx.c (framing, lent buffers) and
 * transport_tcp_tx.c (sending and its queue).  Not for use outside
 * common/.
 */
#ifndef ORFA_TRANSPORT_TCP_IMPL_H
#define ORFA_TRANSPORT_TCP_IMPL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "transport.h"
#include "transport_impl.h"

#define RX_STAGE_SIZE	(64u * 1024)	/* read-ahead staging buffer */
#define RX_DIRECT_MIN	(16u * 1024)	/* bigger remainders bypass staging */
#define RX_SMALL_CAP	8192u		/* pooled buffer for small messages */
#define RX_SMALL_KEEP	64		/* small buffers kept per connection */
#define RX_BIG_KEEP	8		/* large buffers kept per connection */
#define RX_BIG_KEEP_BYTES (32u << 20)	/* ... and their total size */
#define RX_BIG_ROUND	4096u		/* large buffers round up to this */
#define RX_DATA_ALIGN	64u		/* data offset inside a buffer */
#define RX_BOUNCE_SIZE	(64u * 1024)	/* deferred data without splice */
#define RX_PIPE_SIZE	(1u << 20)	/* splice pipe, if the kernel allows */
#define RX_DEFER_WAIT_MS 30000		/* default wait for deferred data */
#define TX_IOV_MAX	64		/* iovecs per sendmsg */
#define TX_ZERO_SIZE	(64u * 1024)	/* zero padding block */
#define TX_BOUNCE_SIZE	(64u * 1024)	/* pread fallback buffer */
#define TX_FILE_CHUNK	(1u << 30)	/* largest single sendfile */

/* A lent receive buffer: frame header + body, then (unless the data went to
 * a sink or was deferred) the data segment at an aligned offset.  While
 * lent, next chains the separate buffer of a deferred segment taken into
 * memory. */
struct rxbuf {
	struct rxbuf *next;		/* pool link (pool_lock) */
	size_t cap;			/* bytes in mem[] */
	uint8_t mem[];
};

/* One message being sent.  Memory parts (head, iov) go first, then the
 * file range, then zero padding if the file ended early. */
struct txent {
	struct txent *next;
	const uint8_t *head;		/* head[head_off..head_len) left to send */
	size_t head_len, head_off;
	const struct iovec *iov;	/* data memory, caller-owned */
	int iovcnt, iov_idx;
	size_t iov_off;			/* bytes of iov[iov_idx] already sent */
	size_t mem_rem;			/* head + iov bytes left */
	int fd;				/* file data, caller-owned */
	off_t fd_off;
	size_t fd_rem;
	int use_pread;			/* sendfile refused this fd */
	size_t pad_rem;			/* zeros owed after a short file */
	size_t total, left;		/* whole message, still to send */
	void (*done)(void *);
	void *done_arg;
	int heap;			/* allocated by txent_clone */
};

struct txq {
	struct txent *head, **tail;
	size_t bytes;			/* sum of left over entries */
};

/* RX_DEFERRED: a message was lent whose data segment is still to be
 * taken with recv_data (rx_def_left bytes, staged ones first). */
enum rx_state { RX_HDR, RX_BODY, RX_DATA, RX_DEFERRED };

struct tcp_conn {
	struct orfa_conn base;		/* must stay first */
	int fd;				/* closed only by destroy */
	int nonblock;			/* ORFA_TP_NONBLOCK */
	int closed;			/* atomic: set by shutdown */
	int send_timeout_ms;
	uint32_t max_body, max_data;	/* atomic: set_limits vs receiver */

	/* Receive side: owned by the receiving thread. */
	orfa_sink_fn sink;
	void *sink_arg;
	uint8_t *stage;			/* RX_STAGE_SIZE bytes */
	size_t s_start, s_end;		/* unread bytes are [s_start, s_end) */
	enum rx_state rx_state;
	struct orfa_hdr rx_hdr;
	struct rxbuf *rx_buf;		/* message being assembled */
	uint8_t *rx_data;		/* its data destination */
	int rx_in_sink;
	uint8_t *rx_dst;		/* where the next bytes go */
	size_t rx_need;			/* bytes missing at rx_dst */
	size_t rx_got, rx_total;	/* frame progress, for messages */
	int rx_err;			/* sticky receive failure */
	int rx_drained;			/* last read was short: the socket
					 * was empty */
	orfa_defer_fn defer;		/* two-phase receive resolver */
	void *defer_arg;
	int rx_defer;			/* frame being read leaves its data */
	size_t rx_def_left;		/* RX_DEFERRED: data bytes not taken */
	int pipefd[2];			/* splice pipe, -1 until first used */
	size_t pipe_cap;		/* its capacity */
	uint8_t *rx_bounce;		/* RX_BOUNCE_SIZE, allocated on demand */

	/* Buffer pool: pool_lock (recv_done may run on any thread). */
	pthread_mutex_t pool_lock;
	struct rxbuf *pool_small, *pool_big;
	unsigned n_small, n_big;
	size_t big_bytes;

	/* Send side: tx_lock.  Never held while calling done(). */
	pthread_mutex_t tx_lock;
	struct txq txq;			/* non-blocking mode backlog */
	int corked;			/* queue, do not write (tcp_cork) */
	int tx_err;			/* sticky send failure */
	uint8_t *bounce;		/* TX_BOUNCE_SIZE, for pread fallback */
};

static inline struct tcp_conn *tcp(struct orfa_conn *c)
{
	return (struct tcp_conn *)c;
}

static inline size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

static inline int tcp_is_closed(struct tcp_conn *c)
{
	return __atomic_load_n(&c->closed, __ATOMIC_ACQUIRE);
}

/* transport_tcp.c: wait until c's socket is ready for events (POLLIN /
 * POLLOUT) or timeout_ms passes (<= 0: forever).  0 when ready (errors
 * and hangups count as ready: the next I/O call reports them),
 * -ETIMEDOUT, or -ENOTCONN after shutdown. */
int tcp_wait_fd(struct tcp_conn *c, short events, int timeout_ms);

/* transport_tcp_rx.c */
int tcp_recv(struct orfa_conn *oc, struct orfa_rxmsg *m);
void tcp_recv_done(struct orfa_conn *oc, struct orfa_rxmsg *m);
void tcp_set_defer(struct orfa_conn *oc, orfa_defer_fn fn, void *arg);
int tcp_recv_data(struct orfa_conn *oc, struct orfa_rxmsg *m,
		  struct orfa_rxdest *d);
void tcp_rxbuf_free_list(struct rxbuf *b);

/* transport_tcp_tx.c */
int tcp_send(struct orfa_conn *oc, const struct orfa_txmsg *m);
int tcp_flush(struct orfa_conn *oc);
int tcp_cork(struct orfa_conn *oc, int on);
size_t tcp_queued(struct orfa_conn *oc, int *want_write);
void tcp_txq_init(struct txq *q);
/* Move every entry of from to the end of to. */
void tcp_txq_splice(struct txq *to, struct txq *from);
/* Call done() once per entry, in order, then free heap entries.  Called
 * without tx_lock so done() may send, shut down or drop a reference. */
void tcp_txq_run_done(struct txq *q);

#endif /* ORFA_TRANSPORT_TCP_IMPL_H */
