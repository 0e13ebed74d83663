/*
 * nodes.c - per-node client state (see nodes.h): a chained hash table
 * under one mutex.  Small and boring on purpose: one lookup per reply that
 * carries attributes.
 */
#include "nodes.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define NBUCKETS 4096u

struct node {
	struct node *next;
	uint64_t nodeid;
	uint64_t nlookup;
	bool seen;		/* attributes below are valid */
	bool stale;		/* changed by someone else since last open */
	bool locked;		/* a POSIX lock was asked for through us */
	int64_t mtime, ctime;
	uint32_t mtime_nsec, ctime_nsec;
	uint64_t size;
	int64_t nocaps_until;	/* security.capability absent until then */
	uint64_t lost;		/* references of connections since lost */
	uint64_t per[];		/* references per connection */
};

struct orfa_nodes {
	pthread_mutex_t lock;
	unsigned nconns;
	uint64_t count, refs;
	struct node *buckets[NBUCKETS];
};

static unsigned bucket(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	return (unsigned)(id & (NBUCKETS - 1));
}

struct orfa_nodes *nodes_new(unsigned nconns)
{
	struct orfa_nodes *n = calloc(1, sizeof(*n));

	if (n) {
		pthread_mutex_init(&n->lock, NULL);
		n->nconns = nconns ? nconns : 1;
	}
	return n;
}

void nodes_free(struct orfa_nodes *n)
{
	if (!n)
		return;
	for (unsigned b = 0; b < NBUCKETS; b++) {
		struct node *e = n->buckets[b];

		while (e) {
			struct node *next = e->next;

			free(e);
			e = next;
		}
	}
	pthread_mutex_destroy(&n->lock);
	free(n);
}

/* n->lock held. */
static struct node **find(struct orfa_nodes *n, uint64_t nodeid)
{
	struct node **pp = &n->buckets[bucket(nodeid)];

	while (*pp && (*pp)->nodeid != nodeid)
		pp = &(*pp)->next;
	return pp;
}

static bool same(const struct node *e, const struct orfa_attr *a)
{
	return e->mtime == a->mtime && e->mtime_nsec == a->mtime_nsec &&
	       e->ctime == a->ctime && e->ctime_nsec == a->ctime_nsec &&
	       e->size == a->size;
}

static void record(struct node *e, const struct orfa_attr *a)
{
	e->mtime = a->mtime;
	e->mtime_nsec = a->mtime_nsec;
	e->ctime = a->ctime;
	e->ctime_nsec = a->ctime_nsec;
	e->size = a->size;
	e->seen = true;
}

/* Attributes seen from the server, not of our own making.  lock held. */
static void observe_foreign(struct node *e, const struct orfa_attr *a)
{
	if (e->seen && !same(e, a))
		e->stale = true;
	record(e, a);
}

int nodes_ref(struct orfa_nodes *n, uint64_t nodeid,
	      const struct orfa_attr *a, unsigned conn)
{
	struct node **pp, *e;

	pthread_mutex_lock(&n->lock);
	pp = find(n, nodeid);
	e = *pp;
	if (!e) {
		e = calloc(1, sizeof(*e) + n->nconns * sizeof(e->per[0]));
		if (!e) {
			pthread_mutex_unlock(&n->lock);
			return -ENOMEM;
		}
		e->nodeid = nodeid;
		*pp = e;
		n->count++;
	}
	e->nlookup++;
	e->per[conn < n->nconns ? conn : 0]++;
	n->refs++;
	if (a)
		observe_foreign(e, a);
	pthread_mutex_unlock(&n->lock);
	return 0;
}

void nodes_forget(struct orfa_nodes *n, uint64_t nodeid, uint64_t nlookup,
		  uint64_t *per_conn)
{
	struct node **pp, *e;
	uint64_t left = nlookup;

	for (unsigned c = 0; c < n->nconns; c++)
		per_conn[c] = 0;
	pthread_mutex_lock(&n->lock);
	pp = find(n, nodeid);
	e = *pp;
	/* References a lost connection handed out are forgotten first and
	 * sent nowhere: giving the new server more than it handed out could
	 * free a node the kernel still holds. */
	if (e && e->lost) {
		uint64_t take = left < e->lost ? left : e->lost;

		e->lost -= take;
		e->nlookup -= take;
		n->refs -= take;
		left -= take;
	}
	for (unsigned c = 0; e && c < n->nconns && left; c++) {
		uint64_t take = left < e->per[c] ? left : e->per[c];

		e->per[c] -= take;
		e->nlookup -= take;
		n->refs -= take;
		per_conn[c] += take;
		left -= take;
	}
	if (e && e->nlookup == 0) {
		*pp = e->next;
		free(e);
		n->count--;
	}
	pthread_mutex_unlock(&n->lock);
	per_conn[0] += left;
}

void nodes_conn_reset(struct orfa_nodes *n, unsigned conn)
{
	if (conn >= n->nconns)
		return;
	pthread_mutex_lock(&n->lock);
	for (unsigned b = 0; b < NBUCKETS; b++) {
		for (struct node *e = n->buckets[b]; e; e = e->next) {
			e->lost += e->per[conn];
			e->per[conn] = 0;
		}
	}
	pthread_mutex_unlock(&n->lock);
}

void nodes_observe(struct orfa_nodes *n, uint64_t nodeid,
		   const struct orfa_attr *a, bool own)
{
	struct node *e;

	pthread_mutex_lock(&n->lock);
	e = *find(n, nodeid);
	if (e) {
		if (own)
			record(e, a);
		else
			observe_foreign(e, a);
	}
	pthread_mutex_unlock(&n->lock);
}

bool nodes_open_keep(struct orfa_nodes *n, uint64_t nodeid,
		     const struct orfa_attr *a)
{
	struct node *e;
	bool keep = false;

	pthread_mutex_lock(&n->lock);
	e = *find(n, nodeid);
	if (e) {
		keep = e->seen && !e->stale && same(e, a);
		record(e, a);
		e->stale = false;
	}
	pthread_mutex_unlock(&n->lock);
	return keep;
}

void nodes_set_nocaps(struct orfa_nodes *n, uint64_t nodeid, int64_t until)
{
	struct node *e;

	pthread_mutex_lock(&n->lock);
	e = *find(n, nodeid);
	if (e)
		e->nocaps_until = until;
	pthread_mutex_unlock(&n->lock);
}

bool nodes_set_locked(struct orfa_nodes *n, uint64_t nodeid)
{
	struct node *e;

	pthread_mutex_lock(&n->lock);
	e = *find(n, nodeid);
	if (e)
		e->locked = true;
	pthread_mutex_unlock(&n->lock);
	return e != NULL;
}

bool nodes_locked(struct orfa_nodes *n, uint64_t nodeid)
{
	struct node *e;
	bool locked = true;

	pthread_mutex_lock(&n->lock);
	e = *find(n, nodeid);
	if (e)
		locked = e->locked;
	pthread_mutex_unlock(&n->lock);
	return locked;
}

bool nodes_nocaps(struct orfa_nodes *n, uint64_t nodeid, int64_t now)
{
	struct node *e;
	bool absent = false;

	pthread_mutex_lock(&n->lock);
	e = *find(n, nodeid);
	if (e)
		absent = now < e->nocaps_until;
	pthread_mutex_unlock(&n->lock);
	return absent;
}

void nodes_stats(struct orfa_nodes *n, uint64_t *count, uint64_t *refs)
{
	pthread_mutex_lock(&n->lock);
	*count = n->count;
	*refs = n->refs;
	pthread_mutex_unlock(&n->lock);
}
