/*
 * locks.c - POSIX byte-range and BSD flock locks held by orfad (locks.h).
 *
 * One mutex guards a hash table of per-node records.  A record holds the
 * node's POSIX ranges (an array kept sorted by start; one owner's ranges
 * never overlap each other and adjacent ranges of one owner and type are
 * merged), its flock holders, and its parked waiters in arrival order.  A
 * record is freed as soon as it holds nothing.  Nothing here knows about
 * connections or the wire beyond the owner pair; the server maps requests
 * onto these calls.
 */
#include "locks.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#define LK_BUCKETS	1024u

struct plock {
	struct orfa_lk_owner owner;
	uint64_t start, end;		/* inclusive */
	uint32_t type;			/* F_RDLCK, F_WRLCK */
	uint32_t pid;
};

struct flk {
	struct orfa_lk_owner owner;
	uint32_t type;			/* LOCK_SH, LOCK_EX */
};

struct lk_node {
	struct lk_node *hnext;
	uint64_t nodeid;
	struct plock *pl;		/* sorted by start */
	unsigned npl, capl;
	struct flk *fl;
	unsigned nfl, capfl;
	struct orfa_lk_waiter *wait_head;
	struct orfa_lk_waiter **wait_tail;
};

struct orfa_locks {
	pthread_mutex_t lock;		/* guards everything below */
	struct lk_node *bucket[LK_BUCKETS];
};

static unsigned hash_node(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	return (unsigned)(id % LK_BUCKETS);
}

static int owner_eq(const struct orfa_lk_owner *a, const struct orfa_lk_owner *b)
{
	return a->conn == b->conn && a->id == b->id;
}

int orfa_locks_create(struct orfa_locks **out)
{
	struct orfa_locks *lt = calloc(1, sizeof(*lt));

	if (!lt)
		return -ENOMEM;
	pthread_mutex_init(&lt->lock, NULL);
	*out = lt;
	return 0;
}

static void node_free(struct lk_node *n)
{
	free(n->pl);
	free(n->fl);
	free(n);
}

void orfa_locks_destroy(struct orfa_locks *lt)
{
	if (!lt)
		return;
	for (unsigned i = 0; i < LK_BUCKETS; i++) {
		struct lk_node *n = lt->bucket[i], *next;

		for (; n; n = next) {
			next = n->hnext;
			node_free(n);
		}
	}
	pthread_mutex_destroy(&lt->lock);
	free(lt);
}

/* Caller holds lt->lock. */
static struct lk_node *node_find(struct orfa_locks *lt, uint64_t nodeid,
				 int create)
{
	unsigned h = hash_node(nodeid);
	struct lk_node *n;

	for (n = lt->bucket[h]; n; n = n->hnext)
		if (n->nodeid == nodeid)
			return n;
	if (!create)
		return NULL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->nodeid = nodeid;
	n->wait_tail = &n->wait_head;
	n->hnext = lt->bucket[h];
	lt->bucket[h] = n;
	return n;
}

/* Free n if it holds nothing.  Caller holds lt->lock. */
static void node_gc(struct orfa_locks *lt, struct lk_node *n)
{
	struct lk_node **pp;

	if (n->npl || n->nfl || n->wait_head)
		return;
	for (pp = &lt->bucket[hash_node(n->nodeid)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == n) {
			*pp = n->hnext;
			break;
		}
	}
	node_free(n);
}

/* ---- POSIX ranges ---------------------------------------------------- */

static int lock_valid(const struct orfa_lock *lk)
{
	if (lk->type != F_RDLCK && lk->type != F_WRLCK && lk->type != F_UNLCK)
		return 0;
	return lk->start <= lk->end;
}

static int overlap(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2)
{
	return s1 <= e2 && s2 <= e1;
}

/* Ranges that touch without overlapping ([0,4] and [5,9]). */
static int adjacent(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2)
{
	return (e1 != UINT64_MAX && e1 + 1 == s2) ||
	       (e2 != UINT64_MAX && e2 + 1 == s1);
}

static const struct plock *posix_conflict(const struct lk_node *n,
					  const struct orfa_lk_owner *owner,
					  const struct orfa_lock *lk)
{
	for (unsigned i = 0; i < n->npl; i++) {
		const struct plock *p = &n->pl[i];

		if (owner_eq(&p->owner, owner))
			continue;
		if (!overlap(p->start, p->end, lk->start, lk->end))
			continue;
		if (lk->type == F_WRLCK || p->type == F_WRLCK)
			return p;
	}
	return NULL;
}

static int plock_cmp(const void *a, const void *b)
{
	const struct plock *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return 0;
}

/*
 * Apply owner's lock (or unlock) to n with no conflict check.  The new
 * array is built aside, so on -ENOMEM nothing has changed.
 */
static int posix_apply(struct lk_node *n, const struct orfa_lk_owner *owner,
		       const struct orfa_lock *lk)
{
	uint64_t s = lk->start, e = lk->end;
	unsigned cap = n->npl + 2, k = 0;
	struct plock *out = malloc(cap * sizeof(*out));

	if (!out)
		return -ENOMEM;
	for (unsigned i = 0; i < n->npl; i++) {
		const struct plock *p = &n->pl[i];

		if (!owner_eq(&p->owner, owner)) {
			out[k++] = *p;
			continue;
		}
		if (lk->type != F_UNLCK && p->type == lk->type &&
		    (overlap(p->start, p->end, s, e) ||
		     adjacent(p->start, p->end, s, e))) {
			/* Same type: absorb it.  The owner's ranges do not
			 * overlap each other, so growing [s,e] by p never
			 * swallows a range already copied to out. */
			if (p->start < s)
				s = p->start;
			if (p->end > e)
				e = p->end;
			continue;
		}
		if (!overlap(p->start, p->end, lk->start, lk->end)) {
			out[k++] = *p;
			continue;
		}
		/* Overlaps the new range: keep what sticks out. */
		if (p->start < lk->start) {
			out[k] = *p;
			out[k].end = lk->start - 1;
			k++;
		}
		if (p->end > lk->end) {
			out[k] = *p;
			out[k].start = lk->end + 1;
			k++;
		}
	}
	if (lk->type != F_UNLCK) {
		out[k].owner = *owner;
		out[k].start = s;
		out[k].end = e;
		out[k].type = lk->type;
		out[k].pid = lk->pid;
		k++;
	}
	qsort(out, k, sizeof(*out), plock_cmp);
	free(n->pl);
	n->pl = out;
	n->npl = k;
	n->capl = cap;
	return 0;
}

/* ---- flock ------------------------------------------------------------ */

static int flock_find(const struct lk_node *n, const struct orfa_lk_owner *o)
{
	for (unsigned i = 0; i < n->nfl; i++)
		if (owner_eq(&n->fl[i].owner, o))
			return (int)i;
	return -1;
}

static void flock_remove(struct lk_node *n, int i)
{
	n->fl[i] = n->fl[n->nfl - 1];
	n->nfl--;
}

static int flock_conflict(const struct lk_node *n,
			  const struct orfa_lk_owner *o, uint32_t type)
{
	for (unsigned i = 0; i < n->nfl; i++) {
		if (owner_eq(&n->fl[i].owner, o))
			continue;
		if (type == LOCK_EX || n->fl[i].type == LOCK_EX)
			return 1;
	}
	return 0;
}

static int flock_add(struct lk_node *n, const struct orfa_lk_owner *o,
		     uint32_t type)
{
	if (n->nfl == n->capfl) {
		unsigned cap = n->capfl ? n->capfl * 2 : 4;
		struct flk *fl = realloc(n->fl, cap * sizeof(*fl));

		if (!fl)
			return -ENOMEM;
		n->fl = fl;
		n->capfl = cap;
	}
	n->fl[n->nfl].owner = *o;
	n->fl[n->nfl].type = type;
	n->nfl++;
	return 0;
}

/* ---- waiters ---------------------------------------------------------- */

static void waiter_append(struct lk_node *n, struct orfa_lk_waiter *w)
{
	w->next = NULL;
	*n->wait_tail = w;
	n->wait_tail = &w->next;
}

/* Try to grant w now.  1 when granted (lock taken), 0 otherwise. */
static int waiter_try(struct lk_node *n, struct orfa_lk_waiter *w)
{
	if (w->kind == ORFA_LK_POSIX) {
		if (posix_conflict(n, &w->owner, &w->lock))
			return 0;
		return posix_apply(n, &w->owner, &w->lock) == 0;
	}
	if (flock_conflict(n, &w->owner, w->flock_op))
		return 0;
	return flock_add(n, &w->owner, w->flock_op) == 0;
}

/*
 * Retry n's waiters in arrival order; move the granted ones (and, when
 * cancel_conn is non-zero, the waiters of connection cancel_conn) to the
 * given lists.  Caller holds lt->lock.
 */
static void waiters_retry(struct lk_node *n, struct orfa_lk_waiter **granted,
			  struct orfa_lk_waiter **cancelled, uint64_t cancel_conn)
{
	struct orfa_lk_waiter **pp = &n->wait_head, *w;

	while ((w = *pp) != NULL) {
		int cancel = cancelled && w->owner.conn == cancel_conn;

		if (cancel || waiter_try(n, w)) {
			*pp = w->next;
			if (cancel) {
				w->next = *cancelled;
				*cancelled = w;
			} else {
				w->next = *granted;
				*granted = w;
			}
			continue;
		}
		pp = &w->next;
	}
	n->wait_tail = pp;
}

/* Call wake on a list built by waiters_retry, with no lock held.  The
 * lists are LIFO; reverse first so wake-ups follow arrival order. */
static void waiters_wake(struct orfa_lk_waiter *list, int status)
{
	struct orfa_lk_waiter *rev = NULL, *w, *next;

	for (w = list; w; w = next) {
		next = w->next;
		w->next = rev;
		rev = w;
	}
	for (w = rev; w; w = next) {
		next = w->next;
		w->next = NULL;
		w->wake(w, status);
	}
}

/* ---- public calls ----------------------------------------------------- */

int orfa_locks_getlk(struct orfa_locks *lt, uint64_t nodeid,
		     const struct orfa_lk_owner *owner, struct orfa_lock *lk)
{
	const struct plock *p;
	struct lk_node *n;

	if (!lock_valid(lk) || lk->type == F_UNLCK)
		return -EINVAL;
	pthread_mutex_lock(&lt->lock);
	n = node_find(lt, nodeid, 0);
	p = n ? posix_conflict(n, owner, lk) : NULL;
	if (p) {
		lk->type = p->type;
		lk->start = p->start;
		lk->end = p->end;
		lk->pid = p->pid;
	} else {
		lk->type = F_UNLCK;
	}
	pthread_mutex_unlock(&lt->lock);
	return 0;
}

int orfa_locks_setlk(struct orfa_locks *lt, uint64_t nodeid,
		     const struct orfa_lk_owner *owner,
		     const struct orfa_lock *lk, struct orfa_lk_waiter *w)
{
	struct orfa_lk_waiter *granted = NULL;
	struct lk_node *n;
	int ret;

	if (!lock_valid(lk))
		return -EINVAL;
	pthread_mutex_lock(&lt->lock);
	n = node_find(lt, nodeid, lk->type != F_UNLCK);
	if (!n) {
		ret = lk->type == F_UNLCK ? 0 : -ENOMEM;
		goto out_unlock;
	}
	if (lk->type != F_UNLCK && posix_conflict(n, owner, lk)) {
		if (!w) {
			ret = -EAGAIN;
		} else {
			w->kind = ORFA_LK_POSIX;
			w->nodeid = nodeid;
			w->owner = *owner;
			w->lock = *lk;
			waiter_append(n, w);
			ret = -EINPROGRESS;
		}
		goto out_gc;
	}
	ret = posix_apply(n, owner, lk);
	if (ret == 0)
		waiters_retry(n, &granted, NULL, 0);
out_gc:
	node_gc(lt, n);
out_unlock:
	pthread_mutex_unlock(&lt->lock);
	waiters_wake(granted, 0);
	return ret;
}

int orfa_locks_flock(struct orfa_locks *lt, uint64_t nodeid,
		     const struct orfa_lk_owner *owner, uint32_t op,
		     struct orfa_lk_waiter *w)
{
	struct orfa_lk_waiter *granted = NULL;
	struct lk_node *n;
	int ret = 0, i;

	op &= ~(uint32_t)LOCK_NB;
	if (op != LOCK_SH && op != LOCK_EX && op != LOCK_UN)
		return -EINVAL;
	pthread_mutex_lock(&lt->lock);
	n = node_find(lt, nodeid, op != LOCK_UN);
	if (!n) {
		ret = op == LOCK_UN ? 0 : -ENOMEM;
		goto out_unlock;
	}
	i = flock_find(n, owner);
	if (i >= 0 && n->fl[i].type == op)
		goto out_gc;		/* already held in that mode */
	if (i >= 0)
		flock_remove(n, i);	/* unlock or convert: drop first */
	if (op != LOCK_UN) {
		if (flock_conflict(n, owner, op)) {
			if (!w) {
				ret = -EAGAIN;
			} else {
				w->kind = ORFA_LK_FLOCK;
				w->nodeid = nodeid;
				w->owner = *owner;
				w->flock_op = op;
				waiter_append(n, w);
				ret = -EINPROGRESS;
			}
		} else {
			ret = flock_add(n, owner, op);
		}
	}
	if (i >= 0 || op == LOCK_UN)
		waiters_retry(n, &granted, NULL, 0);
out_gc:
	node_gc(lt, n);
out_unlock:
	pthread_mutex_unlock(&lt->lock);
	waiters_wake(granted, 0);
	return ret;
}

void orfa_locks_drop_posix(struct orfa_locks *lt, uint64_t nodeid,
			   const struct orfa_lk_owner *owner)
{
	struct orfa_lock all = { .start = 0, .end = UINT64_MAX,
				 .type = F_UNLCK };

	orfa_locks_setlk(lt, nodeid, owner, &all, NULL);
}

/* Unlink owner's parked flock waiters on n into *out (LIFO).  Caller
 * holds lt->lock. */
static void flock_waiters_take(struct lk_node *n,
			       const struct orfa_lk_owner *owner,
			       struct orfa_lk_waiter **out)
{
	struct orfa_lk_waiter **pp = &n->wait_head, *w;

	while ((w = *pp) != NULL) {
		if (w->kind == ORFA_LK_FLOCK && owner_eq(&w->owner, owner)) {
			*pp = w->next;
			w->next = *out;
			*out = w;
			continue;
		}
		pp = &w->next;
	}
	n->wait_tail = pp;
}

void orfa_locks_drop_flock(struct orfa_locks *lt, uint64_t nodeid,
			   const struct orfa_lk_owner *owner)
{
	struct orfa_lk_waiter *gone = NULL;
	struct lk_node *n;

	/* A waiter of a released file id (its FLOCK was interrupted by the
	 * client) must not be granted later: nobody could ever unlock it
	 * until the connection closes. */
	pthread_mutex_lock(&lt->lock);
	n = node_find(lt, nodeid, 0);
	if (n) {
		flock_waiters_take(n, owner, &gone);
		node_gc(lt, n);
	}
	pthread_mutex_unlock(&lt->lock);
	waiters_wake(gone, -EBADF);
	orfa_locks_flock(lt, nodeid, owner, LOCK_UN, NULL);
}

void orfa_locks_drop_conn(struct orfa_locks *lt, uint64_t conn)
{
	struct orfa_lk_waiter *granted = NULL, *cancelled = NULL;

	pthread_mutex_lock(&lt->lock);
	for (unsigned b = 0; b < LK_BUCKETS; b++) {
		struct lk_node *n = lt->bucket[b], *next;

		for (; n; n = next) {
			unsigned k = 0;

			next = n->hnext;
			for (unsigned i = 0; i < n->npl; i++)
				if (n->pl[i].owner.conn != conn)
					n->pl[k++] = n->pl[i];
			n->npl = k;
			for (unsigned i = 0; i < n->nfl;) {
				if (n->fl[i].owner.conn == conn)
					flock_remove(n, (int)i);
				else
					i++;
			}
			waiters_retry(n, &granted, &cancelled, conn);
			node_gc(lt, n);
		}
	}
	pthread_mutex_unlock(&lt->lock);
	waiters_wake(cancelled, -ECANCELED);
	waiters_wake(granted, 0);
}

unsigned orfa_locks_count(struct orfa_locks *lt, uint64_t nodeid)
{
	struct lk_node *n;
	unsigned c = 0;

	pthread_mutex_lock(&lt->lock);
	n = node_find(lt, nodeid, 0);
	if (n)
		c = n->npl + n->nfl;
	pthread_mutex_unlock(&lt->lock);
	return c;
}
