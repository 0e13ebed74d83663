/*
 * session.c - per-connection file id table and lookup-reference map of
 * orfad (session.h).  Pure bookkeeping: the only backend call made here is
 * the release of a file object when its last reference goes.
 */
#include "session.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>
#include <string.h>

#include "backend.h"

#define FTAB_MAX	(1u << 20)

/* ---- file objects ---------------------------------------------------- */

struct sfile *sfile_new(struct orfa_backend *be, uint64_t nodeid, void *fh,
			int is_dir, uint32_t flags)
{
	struct sfile *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->be = be;
	f->nodeid = nodeid;
	f->fh = fh;
	f->is_dir = is_dir;
	f->flags = flags;
	f->refs = 1;
	return f;
}

void sfile_get(struct sfile *f)
{
	__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
}

void sfile_put(struct sfile **fp)
{
	struct sfile *f = *fp;
	int left;

	if (!f)
		return;
	*fp = NULL;
	left = __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL);
	if (left > 0)
		return;
	if (f->is_dir)
		f->be->ops->releasedir(f->be, f->nodeid, f->fh);
	else
		f->be->ops->release(f->be, f->nodeid, f->fh);
	free(f);
}

/* ---- file id table ----------------------------------------------------- */

int ftab_init(struct ftab *t)
{
	memset(t, 0, sizeof(*t));
	return -pthread_mutex_init(&t->lock, NULL);
}

int ftab_add(struct ftab *t, struct sfile *f, uint64_t *id)
{
	struct fslot *s;
	uint32_t idx;
	int ret = 0;

	pthread_mutex_lock(&t->lock);
	if (t->max && t->count >= t->max) {
		ret = -EMFILE;		/* the connection's cap (limits.md) */
		goto out;
	}
	if (t->free_head) {
		idx = t->free_head - 1;
		t->free_head = t->slot[idx].next_free;
	} else {
		if (t->nslot == FTAB_MAX) {
			ret = -EMFILE;
			goto out;
		}
		if (t->nslot == t->cap) {
			uint32_t cap = t->cap ? t->cap * 2 : 16;
			struct fslot *ns = realloc(t->slot, cap * sizeof(*ns));

			if (!ns) {
				ret = -ENOMEM;
				goto out;
			}
			t->slot = ns;
			t->cap = cap;
		}
		idx = t->nslot++;
		/* A random first generation: ids of another (earlier)
		 * connection answer EBADF here instead of naming one of this
		 * connection's files (issue 6: a reconnecting client may
		 * still send one). */
		if (getrandom(&t->slot[idx].gen, sizeof(t->slot[idx].gen),
			      GRND_NONBLOCK) != sizeof(t->slot[idx].gen))
			t->slot[idx].gen = (uint32_t)(uintptr_t)t * 2654435761u ^ idx;
	}
	s = &t->slot[idx];
	s->gen++;
	if (s->gen == 0)		/* keep ids of a wrapped slot non-zero */
		s->gen = 1;
	s->f = f;
	s->next_free = 0;
	sfile_get(f);
	t->count++;
	*id = ((uint64_t)s->gen << 32) | (idx + 1);
out:
	pthread_mutex_unlock(&t->lock);
	return ret;
}

/* Slot of id, or NULL.  Caller holds t->lock. */
static struct fslot *slot_of(struct ftab *t, uint64_t id)
{
	uint32_t idx = (uint32_t)id, gen = (uint32_t)(id >> 32);

	if (idx == 0 || idx > t->nslot)
		return NULL;
	if (!t->slot[idx - 1].f || t->slot[idx - 1].gen != gen)
		return NULL;
	return &t->slot[idx - 1];
}

/* The object behind id, or NULL: with a new reference for the caller,
 * or (remove) taken out of the table with the table's reference. */
static struct sfile *ftab_lookup(struct ftab *t, uint64_t id, int remove)
{
	struct fslot *s;
	struct sfile *f = NULL;

	pthread_mutex_lock(&t->lock);
	s = slot_of(t, id);
	if (s && !remove) {
		f = s->f;
		sfile_get(f);
	} else if (s) {
		f = s->f;
		s->f = NULL;
		s->next_free = t->free_head;
		t->free_head = (uint32_t)(s - t->slot) + 1;
		t->count--;
	}
	pthread_mutex_unlock(&t->lock);
	return f;
}

struct sfile *ftab_get(struct ftab *t, uint64_t id)
{
	return ftab_lookup(t, id, 0);
}

struct sfile *ftab_remove(struct ftab *t, uint64_t id)
{
	return ftab_lookup(t, id, 1);
}

uint32_t ftab_count(struct ftab *t)
{
	uint32_t n;

	pthread_mutex_lock(&t->lock);
	n = t->count;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void ftab_destroy(struct ftab *t,
		  void (*fn)(uint64_t id, struct sfile *f, void *arg),
		  void *arg)
{
	for (uint32_t i = 0; i < t->nslot; i++) {
		struct fslot *s = &t->slot[i];
		struct sfile *f = s->f;

		if (!f)
			continue;
		s->f = NULL;
		fn(((uint64_t)s->gen << 32) | (i + 1), f, arg);
	}
	free(t->slot);
	pthread_mutex_destroy(&t->lock);
	memset(t, 0, sizeof(*t));
}

/* ---- lookup reference map ------------------------------------------------ */

static uint32_t nhash(uint64_t id)
{
	id ^= id >> 31;
	id *= 0x7fb5d329728ea185ull;
	id ^= id >> 27;
	return (uint32_t)id;
}

int nmap_init(struct nmap *m)
{
	memset(m, 0, sizeof(*m));
	return -pthread_mutex_init(&m->lock, NULL);
}

/* Slot holding nodeid, or the empty slot where it would go.  Caller holds
 * m->lock and m->cap != 0. */
static struct nmap_ent *nmap_slot(struct nmap *m, uint64_t nodeid)
{
	uint32_t mask = m->cap - 1, i = nhash(nodeid) & mask;

	while (m->ent[i].nodeid && m->ent[i].nodeid != nodeid)
		i = (i + 1) & mask;
	return &m->ent[i];
}

static int nmap_grow(struct nmap *m)
{
	uint32_t ocap = m->cap, cap = ocap ? ocap * 2 : 64;
	struct nmap_ent *old = m->ent, *ne = calloc(cap, sizeof(*ne));

	if (!ne)
		return -ENOMEM;
	m->ent = ne;
	m->cap = cap;
	for (uint32_t i = 0; i < ocap; i++)
		if (old[i].nodeid)
			*nmap_slot(m, old[i].nodeid) = old[i];
	free(old);
	return 0;
}

int nmap_add(struct nmap *m, uint64_t nodeid, uint64_t n)
{
	struct nmap_ent *e;
	int ret = 0;

	if (nodeid == 0 || n == 0)
		return 0;
	pthread_mutex_lock(&m->lock);
	if ((m->used + 1) * 4 > m->cap * 3) {	/* load factor 3/4 */
		ret = nmap_grow(m);
		if (ret)
			goto out;
	}
	e = nmap_slot(m, nodeid);
	if (!e->nodeid && m->max && m->used >= m->max) {
		ret = -ENFILE;		/* the connection's cap (limits.md) */
		goto out;
	}
	if (!e->nodeid) {
		e->nodeid = nodeid;
		e->count = 0;
		m->used++;
	}
	e->count += n;
out:
	pthread_mutex_unlock(&m->lock);
	return ret;
}

uint32_t nmap_count(struct nmap *m)
{
	uint32_t n;

	pthread_mutex_lock(&m->lock);
	n = m->used;
	pthread_mutex_unlock(&m->lock);
	return n;
}

/* Remove the entry at e and re-place the probe chain after it (linear
 * probing deletion without tombstones).  Caller holds m->lock. */
static void nmap_erase(struct nmap *m, struct nmap_ent *e)
{
	uint32_t mask = m->cap - 1, i = (uint32_t)(e - m->ent), j = i;

	m->ent[i].nodeid = 0;
	m->used--;
	for (;;) {
		struct nmap_ent moved;

		j = (j + 1) & mask;
		if (!m->ent[j].nodeid)
			break;
		moved = m->ent[j];
		m->ent[j].nodeid = 0;
		*nmap_slot(m, moved.nodeid) = moved;
	}
}

uint64_t nmap_sub(struct nmap *m, uint64_t nodeid, uint64_t n)
{
	struct nmap_ent *e;
	uint64_t took = 0;

	pthread_mutex_lock(&m->lock);
	if (m->cap == 0 || nodeid == 0)
		goto out;
	e = nmap_slot(m, nodeid);
	if (!e->nodeid)
		goto out;
	took = n < e->count ? n : e->count;
	e->count -= took;
	if (e->count == 0)
		nmap_erase(m, e);
out:
	pthread_mutex_unlock(&m->lock);
	return took;
}

uint64_t nmap_get(struct nmap *m, uint64_t nodeid)
{
	uint64_t c = 0;

	pthread_mutex_lock(&m->lock);
	if (m->cap && nodeid) {
		struct nmap_ent *e = nmap_slot(m, nodeid);

		if (e->nodeid)
			c = e->count;
	}
	pthread_mutex_unlock(&m->lock);
	return c;
}

void nmap_destroy(struct nmap *m,
		  void (*fn)(uint64_t nodeid, uint64_t count, void *arg),
		  void *arg)
{
	for (uint32_t i = 0; i < m->cap; i++)
		if (m->ent[i].nodeid && m->ent[i].count)
			fn(m->ent[i].nodeid, m->ent[i].count, arg);
	free(m->ent);
	pthread_mutex_destroy(&m->lock);
	memset(m, 0, sizeof(*m));
}
