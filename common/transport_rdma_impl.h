/*
 * transport_rdma_impl.h - private declarations shared by the RDMA transport
 * files (listed with their jobs below the connection struct;
 * rdma_regcache.c: per-connection protection domains and registered
 * memory) and by
 * test/rdma.  Nothing outside common/ and
 * test/rdma includes this; callers use transport.h.
 *
 * The wire format and the flow-control rules are in rdma_wire.h.
 */
#ifndef ORFA_TRANSPORT_RDMA_IMPL_H
#define ORFA_TRANSPORT_RDMA_IMPL_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>
#include <stdint.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "rdma_wire.h"
#include "transport.h"
#include "transport_impl.h"

/* ---- devices and registered memory (rdma_regcache.c) ------------------- */

/*
 * One per verbs device in use, shared by every connection and listener
 * of the process on that device: the verbs context and its limits.  It
 * holds no protection domain and no memory (those are per connection,
 * struct rdma_mem).  Found or created by rdma_dev_get from an rdma_cm
 * id's context; the last rdma_dev_put frees it.
 */
struct rdma_rbuf;
struct rdma_dev {
	struct rdma_dev *next;		/* registry list (registry lock) */
	int refs;			/* registry lock */
	struct ibv_context *verbs;	/* librdmacm's, or ours if own_ctx */
	int own_ctx;			/* we opened verbs (after fork) */
	pid_t pid;			/* own_ctx: the process that did */
	struct ibv_device_attr attr;	/* limits, read once */
};

/*
 * The memory side of one connection: its own protection domain (an rkey
 * of this connection is refused on any other QP) and its cache of
 * registered transport buffers.  Everything registered here for longer
 * than one transfer has local access only (issue 12).
 */
struct rdma_mem {
	struct ibv_pd *pd;		/* this connection's PD, NULL before
					 * rdma_mem_init succeeded */
	pthread_mutex_t lock;		/* guards the cache fields below */
	struct rdma_rbuf *lru_first;	/* idle buffers, most recent first */
	struct rdma_rbuf *lru_last;
	size_t idle_bytes;		/* sum of idle buffer sizes */
	size_t idle_max;		/* bound on idle_bytes, and on the
					 * idle bytes of all connections */
};

/*
 * A buffer owned by the transport, registered once for local access only
 * and reused through its connection's LRU cache: bounce buffers for file
 * data, landing buffers for rendezvous data.  A bounce buffer the peer
 * must READ gets a second, per-transfer registration (rdma_mr_pin).
 */
struct rdma_rbuf {
	struct rdma_rbuf *prev, *next;	/* LRU links while idle */
	void *addr;			/* page aligned */
	size_t size;			/* a size class (power of two) */
	struct ibv_mr *mr;		/* local registration of the buffer */
};

/* Find or open the shared state of a device; NULL with errno set. */
struct rdma_dev *rdma_dev_get(struct ibv_context *verbs);
/* The same with a context of our own on verbs->device (after fork()). */
struct rdma_dev *rdma_dev_get_own(struct ibv_context *verbs);
/* Drop a reference; closes our own context with the last one. */
void rdma_dev_put(struct rdma_dev *dev);

/* Allocate a connection's PD on dev; 0 or -errno.  rdma_mem_fini frees
 * the cached buffers and the PD (after every other MR and the QP of the
 * PD are gone); it is a no-op on a zeroed struct or a failed init. */
int rdma_mem_init(struct rdma_mem *m, struct rdma_dev *dev);
void rdma_mem_fini(struct rdma_mem *m);

/* A registered (local access) buffer of at least size bytes (cached, or
 * new); NULL with errno set.  Give it back with rdma_rbuf_put. */
struct rdma_rbuf *rdma_rbuf_get(struct rdma_mem *mem, size_t size);
void rdma_rbuf_put(struct rdma_mem *mem, struct rdma_rbuf *rb);

/* Register memory for one transfer (caller memory is not cached: see
 * rdma_regcache.c for why; remote access is only ever granted this way);
 * NULL with errno set. */
struct ibv_mr *rdma_mr_pin(struct rdma_mem *mem, void *addr, size_t len,
			   int access);
void rdma_mr_unpin(struct ibv_mr *mr);

/* Allocate and register len bytes (local access) for the life of a
 * connection (send and receive pools); NULL with errno set. */
struct ibv_mr *rdma_pool_alloc(struct rdma_mem *mem, size_t len);
void rdma_pool_free(struct ibv_mr *mr);

/* Statistics for tests: registrations made and cache hits. */
struct rdma_cache_stats {
	unsigned long rbuf_hits, rbuf_misses, rbuf_evictions, pins;
};
void rdma_cache_stats(struct rdma_cache_stats *st);

/* ---- connection ------------------------------------------------------- */

struct rdma_tx;
struct rdma_rx;

/* One receive buffer of a connection's pool. */
struct rdma_rslot {
	struct rdma_rslot *next;	/* spare list link */
	uint8_t *buf;			/* buf_size bytes in the pool MR */
	uint32_t idx;			/* index in rslots[] */
};

/* One send buffer of a connection's pool. */
struct rdma_sslot {
	struct rdma_sslot *next;	/* free list link */
	uint8_t *buf;			/* buf_size bytes in the pool MR */
	struct rdma_tx *tx;		/* TX_WRITE message, until completion */
	unsigned wrs;			/* send queue entries it holds */
};

#define RDMA_CTRL_SLOTS		8u	/* control messages in flight */

/* A reply buffer this side advertised (client), by request id. */
struct rdma_adv_mine {
	struct rdma_adv_mine *next;	/* hash chain */
	uint64_t req_id;
	void *buf;
	size_t len;
	struct ibv_mr *mr;		/* pinned for remote write */
};

/* A reply buffer the peer advertised (server), by request id. */
struct rdma_adv_peer {
	struct rdma_adv_peer *next;	/* hash chain */
	uint64_t req_id;
	struct rdma_seg seg;
};

#define RDMA_ADV_BUCKETS	256u
#define RDMA_ADV_MAX		4096u	/* peer adverts kept; more are ignored */

enum rdma_cstate {
	RC_CONNECTED = 1,	/* normal operation */
	RC_FAILED,		/* error or disconnect: last_err says why */
};

/*
 * The control struct of one RDMA connection.  Locking: `lock` guards
 * everything marked (L); fields marked (I) are set up before the
 * connection is handed out and then only read.  Lock order: lock before
 * the device cache lock and the registry lock.  Never held while calling
 * done() or the sink resolver.  Completions and CM events are processed
 * by the connection's progress thread only; it also destroys the QP, CQ
 * and CM id (rdma_io_thread).
 */
/*
 * Which threads may call into verbs and rdma_cm.  The kernel refuses the
 * commands librdmacm and some providers (rxe) write() to their fds from a
 * thread whose credentials changed since the fd was opened (transport.h).
 * Such a thread only queues work and wakes the connection's progress
 * thread; the listener has a thread of its own that accepts and starts
 * the progress threads, so those never inherit changed credentials; and
 * a connection's QP, CQ and CM id are destroyed by its progress thread.
 * Memory registration, CQ creation and destruction go through ioctl(),
 * which the kernel does not check that way (Linux 6.1, rdma-core 44):
 * they stay on the caller.
 */
static inline int rdma_thread_may_verbs(void)
{
	return !orfa_thread_creds_changed();
}

struct rdma_conn {
	struct orfa_conn base;		/* must stay first */

	/* Verbs objects, created in this order and destroyed in reverse. */
	struct rdma_event_channel *cm_ch; /* (I) this connection's CM events */
	struct rdma_cm_id *id;		/* (I) its connection identifier */
	struct rdma_dev *dev;		/* (I) shared verbs context */
	struct rdma_mem mem;		/* (I) own PD; buffer cache (own lock) */
	struct ibv_mr *rpool_mr;	/* (I) receive buffers, one region */
	struct ibv_mr *spool_mr;	/* (I) send buffers, one region */
	struct ibv_comp_channel *comp_ch; /* (I) CQ event channel */
	struct ibv_cq *cq;		/* (I) send and receive completions */
	struct ibv_qp *qp;		/* (I) RC queue pair (id->qp, or ours
					 * when manual_qp) */
	int manual_qp;			/* (I) QP on our own device context,
					 * moved through its states by us
					 * (accepted after fork(), see
					 * lst_reopen) */
	int qp_err;			/* (L) QP moved to the error state */

	/* Event integration. */
	int epfd;			/* (I) epoll set of comp_ch, cm_ch and
					 * wake_efd: the progress thread's */
	int wake_efd;			/* (I) eventfd waking the thread */
	int ufd[2];			/* (I) socketpair; ufd[0] is what
					 * orfa_conn_fd returns: readable while
					 * a message waits or the connection
					 * failed, writable unless messages
					 * are queued; ufd[1] drives it */
	int ufd_readable;		/* (L) a byte waits in ufd[0] */
	int ufd_full;			/* (L) ufd[0]'s send buffer is full */
	pthread_t thread;		/* (I) progress thread */
	int have_thread;		/* (I) thread was started */
	int stop;			/* (L) destroy asks the thread to end */
	int disc_wanted;		/* (L) shutdown asks for a disconnect */
	int disc_sent;			/* (L) rdma_disconnect was called */
	int progress_busy;		/* (L) a progress pass is running */
	struct rdma_conn *lnext;	/* listener's pending/ready list */

	/* Configuration. */
	int nonblock;			/* (I) ORFA_TP_NONBLOCK */
	int send_timeout_ms;		/* (I) blocking send wait, 0: forever */
	uint32_t max_body, max_data;	/* (L) receive limits (set_limits) */
	uint32_t buf_size;		/* (I) our receive buffer size */
	uint32_t credits;		/* (I) receives we keep posted */
	uint32_t nspare;		/* (I) extra buffers lent to the caller */
	uint32_t peer_buf_size;		/* (I) peer's receive buffer size */
	uint32_t peer_credits_max;	/* (I) receives the peer keeps posted */
	uint32_t sq_depth;		/* (I) send queue size */

	pthread_mutex_t lock;		/* guards (L) */
	pthread_cond_t tx_cond;		/* blocking senders wait for posting */
	pthread_cond_t rx_cond;		/* blocking receiver waits for a message */
	enum rdma_cstate state;		/* (L) */
	int shut;			/* (L) shutdown was called */

	/* Receive side. */
	struct rdma_rslot *rslots;	/* (I) credits + nspare slots */
	struct rdma_rslot *spare;	/* (L) slots neither posted nor lent */
	uint32_t unreported;		/* (L) receives posted, not yet reported */
	uint32_t rdv_ack_pending;	/* (L) peer rendezvous READ, not yet acked */
	struct rdma_rx *rxq_first;	/* (L) received, in arrival order */
	struct rdma_rx *rxq_last;	/* (L) its tail */
	struct rdma_rx *rx_free;	/* (L) recycled rx items */
	orfa_sink_fn sink;		/* (L) client sink resolver */
	void *sink_arg;			/* (L) its argument */
	struct rdma_adv_mine *adv_mine[RDMA_ADV_BUCKETS]; /* (L) */
	struct rdma_adv_peer *adv_peer[RDMA_ADV_BUCKETS]; /* (L) */
	unsigned n_adv_peer;		/* (L) entries in adv_peer */
	int lent;			/* (L) messages out on loan */

	/* Send side. */
	struct rdma_sslot *sslots;	/* (I) nsslots slots */
	uint32_t nsslots;		/* (I) */
	struct rdma_sslot *sfree;	/* (L) free send slots */
	int peer_credits;		/* (L) SENDs the peer can take now */
	uint32_t sq_free;		/* (L) free send queue entries */
	struct rdma_tx *txq_first;	/* (L) accepted, not yet posted */
	struct rdma_tx *txq_last;	/* (L) its tail */
	size_t txq_bytes;		/* (L) their head + data bytes */
	struct rdma_tx *rdv_first;	/* (L) posted RDV, awaiting peer ack */
	struct rdma_tx *rdv_last;	/* (L) its tail */
	struct rdma_tx *reap_first;	/* (L) finished: release and done() */
	struct rdma_tx *reap_last;	/*     outside the lock (rdma_io_reap) */
	uint8_t *ctrl_buf;		/* (I) RDMA_CTRL_SLOTS wire headers in
					 * the send pool, after the slots */
	uint32_t ctrl_free;		/* (L) bitmask of free control slots */

	/* Counters for tests and logs (L), see rdma_conn_counters. */
	unsigned long n_sent;		/* ORFA messages posted */
	unsigned long n_recv;		/* ORFA messages received */
	unsigned long n_ctrl_sent;	/* control messages posted */
	unsigned long n_rdv_sent;	/* of n_sent: by rendezvous */
	unsigned long n_write_sent;	/* of n_sent: RDMA-written replies */
	unsigned long n_copied_rx;	/* received, copied out (no spare) */
	struct rdma_seg last_peer_rdv;	/* (L) first segment of the last
					 * rendezvous the peer sent (tests) */
	struct rdma_seg last_peer_adv;	/* (L) the last reply buffer the peer
					 * advertised (tests) */
};

/* Append x to the singly linked queue first..last (through x->next). */
#define RDMA_QUEUE_PUSH(first, last, x) do {				\
	(x)->next = NULL;						\
	if (last)							\
		(last)->next = (x);					\
	else								\
		(first) = (x);						\
	(last) = (x);							\
} while (0)

/* *dl = now + ms on CLOCK_MONOTONIC (what the waits here use). */
static inline void rdma_deadline(struct timespec *dl, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, dl);
	dl->tv_sec += ms / 1000;
	dl->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl->tv_nsec >= 1000000000L) {
		dl->tv_sec++;
		dl->tv_nsec -= 1000000000L;
	}
}

static inline struct rdma_conn *rdma_c(struct orfa_conn *c)
{
	return (struct rdma_conn *)c;
}

/* ---- data path objects (transport_rdma_tx.c, _rx.c) -------------------- */

/* Work request ids: an object pointer (8-byte aligned) or'ed with a tag. */
#define WR_RECV		1u	/* struct rdma_rslot */
#define WR_SEND		2u	/* struct rdma_sslot */
#define WR_CTRL		3u	/* control slot index << 3 */
#define WR_READ		4u	/* struct rdma_rx */
#define WR_PROBE	5u	/* struct rdma_probe (test hook) */
#define WR_TAG_MASK	7u

enum tx_kind {
	TX_INLINE,		/* everything in one SEND */
	TX_RDV,			/* SEND with segments; peer READs; ack frees */
	TX_WRITE,		/* WRITE into the peer's reply buffer + SEND */
};

/* A blocking sender waits on this until its message is posted or fails. */
struct send_ticket {
	int done;
	int err;
};

/* Local description of one data segment of a rendezvous or WRITE. */
struct tx_seg {
	uint8_t *addr;
	uint32_t len;
	uint32_t lkey;
	uint32_t rkey;
};

/* One message accepted by rdma_send. */
struct rdma_tx {
	struct rdma_tx *next;		/* txq, rdv list or reap list */
	enum tx_kind kind;
	uint8_t *head;			/* copy of frame header + body */
	uint32_t head_len;
	uint64_t req_id;		/* from the frame header */
	size_t data_len;
	/* inline data: caller memory (copied when posted) or file data */
	struct iovec *iov;		/* copy of the caller's iovec array */
	int iovcnt;
	uint8_t *inl;			/* file data read ahead (malloc) */
	/* rendezvous / write data */
	unsigned nseg;
	struct tx_seg seg[RDMA_MAX_SEG];
	struct ibv_mr *mr[RDMA_MAX_SEG]; /* per-transfer registrations */
	unsigned nmr;
	struct rdma_rbuf *bounce;	/* bounce buffer instead of mr[] */
	struct rdma_seg target;		/* TX_WRITE: the peer's reply buffer */
	struct rdma_adv_mine *adv;	/* reply buffer to advertise, or NULL */
	void (*done)(void *);		/* NULL once called */
	void *done_arg;
	struct send_ticket *ticket;	/* blocking sender, or NULL */
	int err;			/* why it was reaped unsent */
};

enum rx_state {
	RX_NEED_DEST,		/* rendezvous: destination not chosen yet */
	RX_RESOLVING,		/* destination being chosen (lock dropped) */
	RX_NEED_READ,		/* destination chosen, READs not posted */
	RX_READING,		/* READs posted */
	RX_READY,		/* can be handed to the caller */
	RX_DEAD,		/* READ failed (connection failed) */
};

/* One received message, from arrival until recv_done. */
struct rdma_rx {
	struct rdma_rx *next;		/* rxq or free list */
	enum rx_state state;
	struct rdma_rslot *slot;	/* lent receive buffer, or NULL */
	uint8_t *copy;			/* heap copy of it, or NULL */
	uint8_t *head;			/* frame header + body in slot/copy */
	uint32_t head_len;
	struct orfa_hdr hdr;
	uint8_t flags;			/* RWF_* */
	uint8_t *inl;			/* inline data in slot/copy */
	void *data;			/* where the data is: advert buffer,
					 * sink or landing buffer */
	unsigned nseg;
	struct rdma_seg seg[RDMA_MAX_SEG];
	void *sink;			/* caller's sink for RDV data */
	struct ibv_mr *sink_mr;		/* its per-transfer registration */
	struct rdma_rbuf *landing;	/* transport buffer for RDV data */
	unsigned read_wrs;		/* send queue entries of the READs */
};

/*
 * The files of the transport, and who calls whom (downwards only):
 *   transport_rdma.c           connect, small ops, the ops table
 *   transport_rdma_listen.c    the listener and its thread
 *   transport_rdma_setup.c     a connection's object, verbs, teardown
 *   transport_rdma_progress.c  the progress thread, completions, pools
 *   transport_rdma_tx.c        the send path
 *   transport_rdma_rx.c        the receive path
 *   transport_rdma_state.c     failure, ufd, reaping, adverts, slots
 *   rdma_wire.c, rdma_regcache.c
 */

extern const struct orfa_transport_ops orfa_rdma_transport;

/* ---- transport_rdma_setup.c ---- */
int rdma_set_nonblock(int fd);				/* 0 or -errno */
/* A CM event channel (non-blocking) and an id on it whose context is
 * ctx; logs when there is no RDMA CM.  0, or -errno with what was made
 * left in *ch and *id for the caller's teardown. */
int rdma_cm_open(struct rdma_event_channel **ch, struct rdma_cm_id **id,
		 void *ctx);
/* "addr:port" / "[v6]:port" of sa, or "?". */
void rdma_addr_str(const struct sockaddr *sa, char *buf, size_t size);
/* A connection object with o's limits and sizes; NULL without memory. */
struct rdma_conn *rdma_conn_alloc(const struct orfa_tp_opts *o);
/* Manual QP: move it to state st (rd: RDMA READ depth); 0 or -errno. */
int rdma_qp_modify(struct rdma_conn *c, enum ibv_qp_state st, int rd);
/* Verbs resources of a connection whose id has a device (route resolved
 * or connect request received).  Receives are posted on return. */
int rdma_conn_setup_verbs(struct rdma_conn *c);
/* The pollable fd, the epoll set and the progress thread. */
int rdma_conn_start(struct rdma_conn *c);
/* Undo whatever alloc/setup/start built, in reverse order; frees c. */
void rdma_conn_teardown(struct rdma_conn *c);
void rdma_conn_priv_fill(const struct rdma_conn *c, struct rdma_priv *p);
/* Take the peer's private data: peer_credits, peer_buf_size; -EPROTO. */
int rdma_conn_priv_take(struct rdma_conn *c, const void *data, size_t len);
/* RDMA READ depth both ends of c may use. */
int rdma_rd_atomic(const struct rdma_conn *c);

/* ---- transport_rdma_listen.c ---- */
int rdma_listen_(const char *host, const char *port,
		 const struct orfa_tp_opts *o, struct orfa_listener **out);
int rdma_accept_(struct orfa_listener *ol, struct orfa_conn **out);
int rdma_listener_fd(struct orfa_listener *ol);
int rdma_listener_addr(struct orfa_listener *ol, char *buf, size_t size);
void rdma_listener_close(struct orfa_listener *ol);

/* ---- transport_rdma_progress.c ---- */
int rdma_io_init(struct rdma_conn *c);	/* pools, post receives; 0/-errno */
void rdma_io_fini(struct rdma_conn *c);	/* after the QP is destroyed */
/* One progress pass (progress thread, lock held). */
int rdma_io_progress(struct rdma_conn *c);
/* The progress thread.  On its way out it fails the connection and
 * destroys the QP, CQ and CM id (rdma_conn_release_verbs). */
void *rdma_io_thread(void *arg);
/* Disconnect, destroy QP, CQ, completion channel and CM id (progress
 * thread, or a connection that never had one; lock not held).
 * Idempotent. */
void rdma_conn_release_verbs(struct rdma_conn *c);

/* ---- transport_rdma_tx.c (lock held unless said) ---- */
/* Post queued messages while credits, send slots and entries allow. */
void rdma_tx_progress(struct rdma_conn *c);
/* A control message when credits or acks wait and nothing carries them. */
void rdma_ctrl_maybe(struct rdma_conn *c);
int rdma_send(struct orfa_conn *oc, const struct orfa_txmsg *m);	/* ops */
int rdma_flush(struct orfa_conn *oc);				/* ops */
size_t rdma_queued(struct orfa_conn *oc, int *want_write);	/* ops */

/* ---- transport_rdma_rx.c (lock held unless said) ---- */
/* A receive completed into slot s with len bytes. 0 or the error that
 * failed the connection. */
int rdma_on_recv(struct rdma_conn *c, struct rdma_rslot *s, uint32_t len);
/* Post READs of queued rendezvous messages (may drop the lock). */
void rdma_rx_advance(struct rdma_conn *c);
/* The READs of rx completed. */
void rdma_on_read_done(struct rdma_conn *c, struct rdma_rx *rx);
int rdma_recv(struct orfa_conn *oc, struct orfa_rxmsg *m);	/* ops */
void rdma_recv_done(struct orfa_conn *oc, struct orfa_rxmsg *m); /* ops */

/* ---- transport_rdma_state.c (lock held, except rdma_io_reap) ---- */
/* Fail the connection; done() runs in rdma_io_reap. */
void rdma_io_fail(struct rdma_conn *c, int err, const char *why);
/* The same with a formatted reason; returns err. */
int rdma_fail(struct rdma_conn *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The error a failed connection reports (-ENOTCONN after shutdown). */
int rdma_conn_err(struct rdma_conn *c);
/* Bring ufd and the blocked receiver in line with the queues. */
void rdma_ufd_update(struct rdma_conn *c);
/* The receiver has something to do (a message, or a sink to ask). */
int rdma_rx_actionable(const struct rdma_conn *c);
/* Wake tx's blocking sender, if any: its send returns err. */
void rdma_tx_wake(struct rdma_conn *c, struct rdma_tx *tx, int err);
/* Finished message: to the reap list (wakes its blocking sender). */
void rdma_tx_reap(struct rdma_conn *c, struct rdma_tx *tx, int err);
/* Deregister tx's per-transfer MRs: the rkeys the peer was given stop
 * working (called when the peer acknowledges a rendezvous; lock held). */
void rdma_tx_revoke(struct rdma_tx *tx);
/* Unpin, give back buffers, call done(), free (lock not held). */
void rdma_tx_release(struct rdma_conn *c, struct rdma_tx *tx);
/* Release finished messages and call their done() (lock not held). */
void rdma_io_reap(struct rdma_conn *c);
struct rdma_adv_mine *rdma_adv_mine_take(struct rdma_conn *c,
					 uint64_t req_id);
void rdma_adv_mine_add(struct rdma_conn *c, struct rdma_adv_mine *a);
int rdma_adv_peer_take(struct rdma_conn *c, uint64_t req_id,
		       struct rdma_seg *seg);
void rdma_adv_peer_add(struct rdma_conn *c, uint64_t req_id,
		       const struct rdma_seg *seg);
/* Post slot s for a receive; 0 or the error that failed c. */
int rdma_post_recv(struct rdma_conn *c, struct rdma_rslot *s);
/* Give back what a received message holds and recycle it. */
void rdma_rx_free(struct rdma_conn *c, struct rdma_rx *rx);

/* Debug counters of one connection (tests; transport_rdma.c). */
void rdma_conn_counters(struct orfa_conn *oc, unsigned long out[6]);

/* ---- test hooks (transport_rdma.c; test/rdma only) ---- */

/* A probe's work request, completed by the progress thread. */
struct rdma_probe {
	int done;			/* (L) completion seen */
	enum ibv_wc_status status;	/* (L) its status */
};
/* The last rendezvous segment and reply buffer advert the peer of oc
 * sent (zeros before any): the rkeys a hostile peer would keep. */
void rdma_test_peer_segs(struct orfa_conn *oc, struct rdma_seg *rdv,
			 struct rdma_seg *adv);
/* Issue one RDMA READ (write == 0: seg's bytes into buf) or RDMA WRITE
 * (buf's bytes to seg) on oc's QP with seg's address and rkey, as a
 * peer that kept an rkey would, and wait up to ms for its completion.
 * Returns 0 (the access worked), -EACCES (remote access error: the
 * connection has failed, as with any failed work request), -ETIMEDOUT,
 * or another -errno.  buf holds seg->len bytes. */
int rdma_test_remote_access(struct orfa_conn *oc, const struct rdma_seg *seg,
			    void *buf, int write, int ms);

#endif /* ORFA_TRANSPORT_RDMA_IMPL_H */
