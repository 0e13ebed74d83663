/*
 * backend_ramfs_rtree.c - the sparse radix tree that maps a regular
 * file's chunk index to its chunk in the in-memory backend: 64 slots a
 * level, height growing with the largest index stored, interior nodes
 * charged against the file system's size limit.  It stores opaque
 * pointers and knows nothing of chunks, sizes or locks (the data code in
 * backend_ramfs_data.c holds node->lock around every call).
 */
#include "backend_ramfs_impl.h"

#include <errno.h>

static uint64_t rt_max(unsigned height)
{
	unsigned bits = height * RAMFS_RT_SHIFT;

	return bits >= 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
}

static unsigned rt_digit(uint64_t idx, unsigned level)
{
	unsigned shift = (level - 1) * RAMFS_RT_SHIFT;

	return shift >= 64 ? 0 : (unsigned)(idx >> shift) & (RAMFS_RT_FAN - 1);
}

static int rt_node_new(struct ramfs *fs, struct ramfs_rt_node **out)
{
	return ramfs_zalloc(fs, sizeof(**out), out);
}

static void rt_node_free(struct ramfs *fs, struct ramfs_rt_node *n)
{
	ramfs_free(fs, n, sizeof(*n));
}

/* The leaf node that holds idx's slot, or NULL if there is none. */
static struct ramfs_rt_node *rt_leaf(const struct ramfs_rtree *t,
				     uint64_t idx)
{
	struct ramfs_rt_node *n = t->root;

	if (!n || idx > rt_max(t->height))
		return NULL;
	for (unsigned h = t->height; h > 1; h--) {
		n = n->slot[rt_digit(idx, h)];
		if (!n)
			return NULL;
	}
	return n;
}

void *ramfs_rt_get(const struct ramfs_rtree *t, uint64_t idx)
{
	struct ramfs_rt_node *n = rt_leaf(t, idx);

	return n ? n->slot[rt_digit(idx, 1)] : NULL;
}

void **ramfs_rt_slot(struct ramfs_rtree *t, uint64_t idx)
{
	struct ramfs_rt_node *n = rt_leaf(t, idx);

	return n ? &n->slot[rt_digit(idx, 1)] : NULL;
}

/* Drop an empty root and top levels that only hold slot 0. */
static void rt_shrink(struct ramfs *fs, struct ramfs_rtree *t)
{
	while (t->root) {
		struct ramfs_rt_node *r = t->root;

		if (r->count == 0) {
			rt_node_free(fs, r);
			t->root = NULL;
			t->height = 0;
		} else if (t->height > 1 && r->count == 1 && r->slot[0]) {
			t->root = r->slot[0];
			t->height--;
			rt_node_free(fs, r);
		} else {
			break;
		}
	}
}

int ramfs_rt_insert(struct ramfs *fs, struct ramfs_rtree *t, uint64_t idx,
		    void *p)
{
	struct ramfs_rt_node *spare[RAMFS_RT_MAXH], *n;
	unsigned need = 0, got, h, d;
	int r;

	if (!t->root) {
		for (h = 1; idx > rt_max(h); h++)
			;
		r = rt_node_new(fs, &t->root);
		if (r)
			return r;
		t->height = h;
	}
	while (idx > rt_max(t->height)) {
		struct ramfs_rt_node *top;

		r = rt_node_new(fs, &top);
		if (r) {
			rt_shrink(fs, t);
			return r;
		}
		top->slot[0] = t->root;
		top->count = 1;
		t->root = top;
		t->height++;
	}
	n = t->root;
	for (h = t->height; h > 1; h--) {
		struct ramfs_rt_node *child = n->slot[rt_digit(idx, h)];

		if (!child) {
			need = h - 1;
			break;
		}
		n = child;
	}
	for (got = 0; got < need; got++) {
		r = rt_node_new(fs, &spare[got]);
		if (r) {
			while (got--)
				rt_node_free(fs, spare[got]);
			rt_shrink(fs, t);
			return r;
		}
	}
	n = t->root;
	for (h = t->height; h > 1; h--) {
		d = rt_digit(idx, h);
		if (!n->slot[d]) {
			n->slot[d] = spare[--need];
			n->count++;
		}
		n = n->slot[d];
	}
	d = rt_digit(idx, 1);
	n->slot[d] = p;
	n->count++;
	return 0;
}

void *ramfs_rt_remove(struct ramfs *fs, struct ramfs_rtree *t, uint64_t idx)
{
	struct ramfs_rt_node *path[RAMFS_RT_MAXH + 1], *n = t->root;
	unsigned dig[RAMFS_RT_MAXH + 1], h;
	void *p;

	if (!n || idx > rt_max(t->height))
		return NULL;
	for (h = t->height;; h--) {
		path[h] = n;
		dig[h] = rt_digit(idx, h);
		if (h == 1)
			break;
		n = n->slot[dig[h]];
		if (!n)
			return NULL;
	}
	p = path[1]->slot[dig[1]];
	if (!p)
		return NULL;
	path[1]->slot[dig[1]] = NULL;
	path[1]->count--;
	for (h = 1; h < t->height && path[h]->count == 0; h++) {
		rt_node_free(fs, path[h]);
		path[h + 1]->slot[dig[h + 1]] = NULL;
		path[h + 1]->count--;
	}
	rt_shrink(fs, t);
	return p;
}

static int rt_next_rec(const struct ramfs_rt_node *n, unsigned level,
		       uint64_t base, uint64_t from, uint64_t *found)
{
	unsigned shift = (level - 1) * RAMFS_RT_SHIFT;
	unsigned i = 0;

	if (from > base) {
		uint64_t off = (from - base) >> shift;

		if (off >= RAMFS_RT_FAN)
			return 0;
		i = (unsigned)off;
	}
	for (; i < RAMFS_RT_FAN; i++) {
		uint64_t cbase;

		if (!n->slot[i])
			continue;
		cbase = base + ((uint64_t)i << shift);
		if (level == 1) {
			*found = cbase;
			return 1;
		}
		if (rt_next_rec(n->slot[i], level - 1, cbase, from, found))
			return 1;
	}
	return 0;
}

int ramfs_rt_next(const struct ramfs_rtree *t, uint64_t from, uint64_t *idx)
{
	if (!t->root || from > rt_max(t->height))
		return 0;
	return rt_next_rec(t->root, t->height, 0, from, idx);
}

static void rt_free_rec(struct ramfs *fs, struct ramfs_rt_node *n,
			unsigned level,
			void (*leaf)(struct ramfs *, void *, void *),
			void *arg)
{
	for (unsigned i = 0; i < RAMFS_RT_FAN; i++) {
		if (!n->slot[i])
			continue;
		if (level == 1)
			leaf(fs, arg, n->slot[i]);
		else
			rt_free_rec(fs, n->slot[i], level - 1, leaf, arg);
	}
	rt_node_free(fs, n);
}

void ramfs_rt_destroy(struct ramfs *fs, struct ramfs_rtree *t,
		      void (*leaf)(struct ramfs *fs, void *arg, void *p),
		      void *arg)
{
	if (t->root)
		rt_free_rec(fs, t->root, t->height, leaf, arg);
	t->root = NULL;
	t->height = 0;
}
