/*
 * transport_rdma_impl.h - private declarations shared by the RDMA transport
 * files (transport_rdma.c: connection setup, teardown, the ops table;
 * transport_rdma_io.c: the data path; rdma_regcache.c: protection domains
 * and registered memory) and by test/rdma.  Nothing outside common/ and
 * test/rdma includes this; callers use transport.h.
 *
 * The wire format and the flow-control rules are in rdma_wire.h.
 */
#ifndef ORFA_TRANSPORT_RDMA_IMPL_H
#define ORFA_TRANSPORT_RDMA_IMPL_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "rdma_wire.h"
#include "transport.h"
#include "transport_impl.h"

/* ---- devices and registered memory (rdma_regcache.c) ------------------- */

/*
 * One per verbs device in use, shared by every connection and listener
 * of the process on that device: the protection domain and the cache of
 * registered transport buffers.  Found or created by rdma_dev_get from an
 * rdma_cm id's context; the last rdma_dev_put frees it.
 */
struct rdma_rbuf;
struct rdma_dev {
	struct rdma_dev *next;		/* registry list (registry lock) */
	int refs;			/* registry lock */
	struct ibv_context *verbs;	/* librdmacm's, or ours if own_ctx */
	int own_ctx;			/* we opened verbs (after fork) */
	pid_t pid;			/* own_ctx: the process that did */
	struct ibv_pd *pd;		/* one PD for all users of the device */
	struct ibv_device_attr attr;	/* limits, read once */
	pthread_mutex_t lock;		/* guards the cache fields below */
	struct rdma_rbuf *lru_first;	/* idle buffers, most recent first */
	struct rdma_rbuf *lru_last;
	size_t idle_bytes;		/* sum of idle buffer sizes */
	size_t idle_max;		/* bound on idle_bytes */
};

/*
 * A buffer owned by the transport, registered once for local write and
 * remote read/write, reused through the device's LRU cache: bounce
 * buffers for file data, landing buffers for rendezvous data.
 */
struct rdma_rbuf {
	struct rdma_rbuf *prev, *next;	/* LRU links while idle */
	void *addr;			/* page aligned */
	size_t size;			/* a size class (power of two) */
	struct ibv_mr *mr;		/* registration of [addr, addr+size) */
};

/* Find or open the shared state of a device; NULL with errno set. */
struct rdma_dev *rdma_dev_get(struct ibv_context *verbs);
/* The same with a context of our own on verbs->device (after fork()). */
struct rdma_dev *rdma_dev_get_own(struct ibv_context *verbs);
/* Drop a reference; frees the PD and cached buffers with the last one. */
void rdma_dev_put(struct rdma_dev *dev);

/* A registered buffer of at least size bytes (cached, or new); NULL with
 * errno set.  Give it back with rdma_rbuf_put. */
struct rdma_rbuf *rdma_rbuf_get(struct rdma_dev *dev, size_t size);
void rdma_rbuf_put(struct rdma_dev *dev, struct rdma_rbuf *rb);

/* Register caller memory for one transfer (not cached: see
 * rdma_regcache.c for why); NULL with errno set. */
struct ibv_mr *rdma_mr_pin(struct rdma_dev *dev, void *addr, size_t len,
			   int access);
void rdma_mr_unpin(struct ibv_mr *mr);

/* Allocate and register len bytes for the life of a connection (send and
 * receive pools); NULL with errno set. */
struct ibv_mr *rdma_pool_alloc(struct rdma_dev *dev, size_t len);
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
	struct rdma_dev *dev;		/* (I) shared PD and buffer cache */
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
};

static inline struct rdma_conn *rdma_c(struct orfa_conn *c)
{
	return (struct rdma_conn *)c;
}

/* transport_rdma_io.c: the data path. */
int rdma_io_init(struct rdma_conn *c);	/* pools, post receives; 0/-errno */
void rdma_io_fini(struct rdma_conn *c);	/* after the QP is destroyed */
/* One progress pass (progress thread, lock held). */
int rdma_io_progress(struct rdma_conn *c);
/* Fail the connection (lock held); done() runs in rdma_io_reap. */
void rdma_io_fail(struct rdma_conn *c, int err, const char *why);
/* Release finished messages and call their done() (lock not held). */
void rdma_io_reap(struct rdma_conn *c);
/* The progress thread.  On its way out it fails the connection and
 * destroys the QP, CQ and CM id (rdma_conn_release_verbs). */
void *rdma_io_thread(void *arg);
/* transport_rdma.c: disconnect, destroy QP, CQ, completion channel and
 * CM id (progress thread; lock not held).  Idempotent. */
void rdma_conn_release_verbs(struct rdma_conn *c);
int rdma_send(struct orfa_conn *oc, const struct orfa_txmsg *m);
int rdma_recv(struct orfa_conn *oc, struct orfa_rxmsg *m);
void rdma_recv_done(struct orfa_conn *oc, struct orfa_rxmsg *m);
int rdma_flush(struct orfa_conn *oc);
int rdma_want_write(struct orfa_conn *oc);
size_t rdma_queued_bytes(struct orfa_conn *oc);
void rdma_handle_cm_event(struct rdma_conn *c, enum rdma_cm_event_type ev,
			  int status);

/* Debug counters of one connection (tests). */
void rdma_conn_counters(struct orfa_conn *oc, unsigned long out[6]);

#endif /* ORFA_TRANSPORT_RDMA_IMPL_H */
