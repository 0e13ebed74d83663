/*
 * rdma_regcache.c - protection domains and registered memory for the RDMA
 * transport: the shared verbs context of a device, and per connection a
 * protection domain of its own, a cache of registered transport buffers,
 * its send/receive pools, and one-shot registrations for remote access.
 *
 * Isolation (issue 12).  Every connection allocates its own protection
 * domain (rdma_mem_init), so an rkey of one connection is refused by the
 * QP of any other (the responder checks that MR and QP share a PD): a
 * peer cannot reach another client's buffers with a key it once held.
 * Nothing that is cached is remotely accessible: pools and cached
 * buffers are registered for local access only.  A buffer is exposed to
 * the peer (IBV_ACCESS_REMOTE_READ/WRITE) only through a registration
 * made for one transfer (rdma_mr_pin) and deregistered when that
 * transfer completes (the peer's rendezvous ack, the reply to an
 * advertised buffer) or the connection ends; a later access with its
 * rkey gets a remote access error and moves the peer's QP to the error
 * state.  Memory windows would avoid the registration but need a bind and
 * an invalidation on the send queue per transfer; a registration of the
 * transfer's pages costs tens of microseconds per MiB and keeps the send
 * queue accounting as it is.
 *
 * What is cached, and why only that.  Registering memory (ibv_reg_mr)
 * pins its pages and is expensive, so it is done once and reused for the
 * transport's own buffers: the send/receive pools of a connection (for
 * its lifetime) and the bounce/landing buffers of rendezvous transfers
 * (rdma_rbuf: power-of-two size classes, idle ones kept in the
 * connection's LRU list; ORFA_RDMA_CACHE_MB, default 64 MiB, bounds the
 * idle buffers of all connections of the process together, so many
 * connections cannot pin more; older ones are deregistered and freed).  The transport
 * allocates and frees these itself, so a cached registration can never
 * outlive its memory.
 *
 * Caller memory (data segments sent by rendezvous, reply buffers, sink
 * buffers) is registered per transfer and deregistered when the transfer
 * ends.  Caching it by (addr, len), as MPI libraries do, is only safe
 * with memory hooks (UCX/Open MPI patch munmap/madvise/brk; libfabric
 * uses userfaultfd or a kernel module): once the caller frees a buffer,
 * glibc may munmap it (large blocks) or MADV_DONTNEED it (trimmed thread
 * arenas), and a later allocation at the same address gets new pages.  A
 * cached MR still pins, and the NIC still uses, the old pages: no crash
 * and no use-after-free in the kernel, but data sent from or received
 * into the new buffer silently goes to the wrong pages.  Without hooks
 * there is no cheap way to notice (page frame numbers in
 * /proc/self/pagemap need CAP_SYS_ADMIN), so we do not cache what we do
 * not own.  The price is one ibv_reg_mr/ibv_dereg_mr pair per rendezvous
 * transfer (tens of microseconds per MiB), small next to the transfer.
 */
#include "transport_rdma_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define RBUF_MIN_SIZE	(64u * 1024)
#define CACHE_DEFAULT_MB 64u

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rdma_dev *registry;	/* devices in use (registry_lock) */
static struct rdma_cache_stats stats;	/* registry_lock */
static size_t idle_total;		/* idle bytes of all connections
					 * (atomic), bounded by cache_limit */

static size_t cache_limit(void)
{
	const char *s = getenv("ORFA_RDMA_CACHE_MB");
	char *end;
	unsigned long v;

	if (!s || !*s)
		return (size_t)CACHE_DEFAULT_MB << 20;
	v = strtoul(s, &end, 10);
	if (*end || v > (1ul << 20))
		return (size_t)CACHE_DEFAULT_MB << 20;
	return (size_t)v << 20;
}

/*
 * Find or create the shared state of a device.  With own == 0, verbs is
 * librdmacm's context of the device; with own != 0 we open (and later
 * close) a context of our own on verbs->device, used after fork(): the
 * kernel refuses write() commands on a context opened by another process
 * (see lst_reopen in transport_rdma.c).
 */
static struct rdma_dev *dev_get(struct ibv_context *verbs, int own)
{
	struct rdma_dev *d;
	int err;

	if (!verbs) {
		errno = ENODEV;
		return NULL;
	}
	pthread_mutex_lock(&registry_lock);
	for (d = registry; d; d = d->next)
		if (own ? (d->own_ctx && d->verbs->device == verbs->device &&
			   d->pid == getpid()) : d->verbs == verbs)
			break;
	if (d) {
		d->refs++;
		pthread_mutex_unlock(&registry_lock);
		return d;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		err = ENOMEM;
		goto out_unlock;
	}
	if (own) {
		d->verbs = ibv_open_device(verbs->device);
		if (!d->verbs) {
			err = errno ? errno : ENODEV;
			log_err("rdma: ibv_open_device: %s", strerror(err));
			free(d);
			goto out_unlock;
		}
		d->own_ctx = 1;
		d->pid = getpid();
	} else {
		d->verbs = verbs;
	}
	if (ibv_query_device(d->verbs, &d->attr)) {
		err = errno ? errno : EIO;
		log_err("rdma: ibv_query_device: %s", strerror(err));
		goto out_free;
	}
	d->refs = 1;
	d->next = registry;
	registry = d;
	pthread_mutex_unlock(&registry_lock);
	return d;

out_free:
	if (d->own_ctx)
		ibv_close_device(d->verbs);
	free(d);
out_unlock:
	pthread_mutex_unlock(&registry_lock);
	errno = err;
	return NULL;
}

struct rdma_dev *rdma_dev_get(struct ibv_context *verbs)
{
	return dev_get(verbs, 0);
}

struct rdma_dev *rdma_dev_get_own(struct ibv_context *verbs)
{
	return dev_get(verbs, 1);
}

static void rbuf_destroy(struct rdma_rbuf *rb)
{
	if (ibv_dereg_mr(rb->mr))
		log_warn("rdma: ibv_dereg_mr of a %zu byte buffer failed",
			 rb->size);
	free(rb->addr);
	free(rb);
}

void rdma_dev_put(struct rdma_dev *dev)
{
	struct rdma_dev **pp;

	if (!dev)
		return;
	pthread_mutex_lock(&registry_lock);
	if (--dev->refs > 0) {
		pthread_mutex_unlock(&registry_lock);
		return;
	}
	for (pp = &registry; *pp; pp = &(*pp)->next)
		if (*pp == dev) {
			*pp = dev->next;
			break;
		}
	pthread_mutex_unlock(&registry_lock);

	if (dev->own_ctx && ibv_close_device(dev->verbs))
		log_warn("rdma: ibv_close_device failed");
	free(dev);
}

int rdma_mem_init(struct rdma_mem *m, struct rdma_dev *dev)
{
	int err;

	memset(m, 0, sizeof(*m));
	m->pd = ibv_alloc_pd(dev->verbs);
	if (!m->pd) {
		err = errno ? errno : ENOMEM;
		log_err("rdma: ibv_alloc_pd: %s", strerror(err));
		return -err;
	}
	pthread_mutex_init(&m->lock, NULL);
	m->idle_max = cache_limit();
	return 0;
}

void rdma_mem_fini(struct rdma_mem *m)
{
	struct rdma_rbuf *rb, *next;

	if (!m->pd)
		return;
	/* Mirror of rdma_mem_init: cached MRs, then the PD. */
	for (rb = m->lru_first; rb; rb = next) {
		next = rb->next;
		__atomic_sub_fetch(&idle_total, rb->size, __ATOMIC_RELAXED);
		rbuf_destroy(rb);
	}
	if (ibv_dealloc_pd(m->pd))
		log_warn("rdma: ibv_dealloc_pd failed (resources still in use?)");
	m->pd = NULL;
	pthread_mutex_destroy(&m->lock);
}

static size_t size_class(size_t size)
{
	size_t s = RBUF_MIN_SIZE;

	while (s < size && s < ((size_t)1 << 40))
		s <<= 1;
	return s;
}

static void lru_unlink(struct rdma_mem *d, struct rdma_rbuf *rb)
{
	if (rb->prev)
		rb->prev->next = rb->next;
	else
		d->lru_first = rb->next;
	if (rb->next)
		rb->next->prev = rb->prev;
	else
		d->lru_last = rb->prev;
	rb->prev = rb->next = NULL;
	d->idle_bytes -= rb->size;
	__atomic_sub_fetch(&idle_total, rb->size, __ATOMIC_RELAXED);
}

struct rdma_rbuf *rdma_rbuf_get(struct rdma_mem *mem, size_t size)
{
	size_t want = size_class(size);
	struct rdma_rbuf *rb;
	int err;

	pthread_mutex_lock(&mem->lock);
	for (rb = mem->lru_first; rb; rb = rb->next)
		if (rb->size == want)
			break;
	if (rb)
		lru_unlink(mem, rb);
	pthread_mutex_unlock(&mem->lock);
	pthread_mutex_lock(&registry_lock);
	if (rb)
		stats.rbuf_hits++;
	else
		stats.rbuf_misses++;
	pthread_mutex_unlock(&registry_lock);
	if (rb)
		return rb;

	rb = calloc(1, sizeof(*rb));
	if (!rb)
		return NULL;
	rb->size = want;
	err = posix_memalign(&rb->addr, (size_t)sysconf(_SC_PAGESIZE), want);
	if (err) {
		free(rb);
		errno = err;
		return NULL;
	}
	/* Local access only: what stays cached is never reachable by a
	 * peer (rdma_mr_pin exposes it for one transfer). */
	rb->mr = ibv_reg_mr(mem->pd, rb->addr, want, IBV_ACCESS_LOCAL_WRITE);
	if (!rb->mr) {
		err = errno ? errno : ENOMEM;
		log_warn("rdma: cannot register %zu bytes: %s%s", want,
			 strerror(err), err == ENOMEM ?
			 " (check ulimit -l)" : "");
		free(rb->addr);
		free(rb);
		errno = err;
		return NULL;
	}
	return rb;
}

void rdma_rbuf_put(struct rdma_mem *mem, struct rdma_rbuf *rb)
{
	struct rdma_rbuf *victims = NULL, *v;

	if (!rb)
		return;
	pthread_mutex_lock(&mem->lock);
	rb->prev = NULL;
	rb->next = mem->lru_first;
	if (mem->lru_first)
		mem->lru_first->prev = rb;
	else
		mem->lru_last = rb;
	mem->lru_first = rb;
	mem->idle_bytes += rb->size;
	__atomic_add_fetch(&idle_total, rb->size, __ATOMIC_RELAXED);
	/* Evict this connection's least recently used buffers while it or
	 * the process is beyond the bound (the one just returned goes too
	 * if need be, so the process total never stays above it). */
	while ((mem->idle_bytes > mem->idle_max ||
		__atomic_load_n(&idle_total, __ATOMIC_RELAXED) > mem->idle_max) &&
	       mem->lru_last) {
		v = mem->lru_last;
		lru_unlink(mem, v);
		v->next = victims;
		victims = v;
	}
	pthread_mutex_unlock(&mem->lock);
	while (victims) {
		v = victims;
		victims = v->next;
		rbuf_destroy(v);
		pthread_mutex_lock(&registry_lock);
		stats.rbuf_evictions++;
		pthread_mutex_unlock(&registry_lock);
	}
}

struct ibv_mr *rdma_mr_pin(struct rdma_mem *mem, void *addr, size_t len,
			   int access)
{
	struct ibv_mr *mr = ibv_reg_mr(mem->pd, addr, len, access);

	if (mr) {
		pthread_mutex_lock(&registry_lock);
		stats.pins++;
		pthread_mutex_unlock(&registry_lock);
	} else {
		int err = errno ? errno : ENOMEM;

		log_warn("rdma: cannot register %zu bytes at %p: %s%s", len,
			 addr, strerror(err), err == ENOMEM ?
			 " (check ulimit -l)" : "");
		errno = err;
	}
	return mr;
}

void rdma_mr_unpin(struct ibv_mr *mr)
{
	if (mr && ibv_dereg_mr(mr))
		log_warn("rdma: ibv_dereg_mr failed");
}

struct ibv_mr *rdma_pool_alloc(struct rdma_mem *mem, size_t len)
{
	void *buf;
	struct ibv_mr *mr;
	int err;

	err = posix_memalign(&buf, (size_t)sysconf(_SC_PAGESIZE), len);
	if (err) {
		errno = err;
		return NULL;
	}
	memset(buf, 0, len);
	mr = ibv_reg_mr(mem->pd, buf, len, IBV_ACCESS_LOCAL_WRITE);
	if (!mr) {
		err = errno ? errno : ENOMEM;
		log_err("rdma: cannot register a %zu byte buffer pool: %s%s",
			len, strerror(err),
			err == ENOMEM ? " (check ulimit -l)" : "");
		free(buf);
		errno = err;
		return NULL;
	}
	return mr;
}

void rdma_pool_free(struct ibv_mr *mr)
{
	void *mem;

	if (!mr)
		return;
	mem = mr->addr;
	if (ibv_dereg_mr(mr))
		log_warn("rdma: ibv_dereg_mr of a buffer pool failed");
	free(mem);
}

void rdma_cache_stats(struct rdma_cache_stats *st)
{
	pthread_mutex_lock(&registry_lock);
	*st = stats;
	pthread_mutex_unlock(&registry_lock);
}
