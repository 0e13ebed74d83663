/*
 * backend_ramfs_dir.c - directories of the in-memory backend and every
 * operation that changes the namespace (lookup, create, mknod, mkdir,
 * symlink, link, unlink, rmdir, rename) plus readdir.
 *
 * A directory is a hash table (chained, power-of-two buckets, load <= 1)
 * for O(1) lookup by name, and a cookie vector: every entry gets a cookie
 * from a per-directory counter that only grows, and the vector holds the
 * entries in cookie order.  Removing an entry leaves a hole (its cookie
 * stays for the binary search) that a later compaction squeezes out, so
 * resuming a listing after cookie C is a binary search for the first
 * cookie > C followed by a walk: an entry removed meanwhile does not
 * disturb the others, and an entry added meanwhile comes after all
 * existing ones.  "." and ".." have cookies 1 and 2.
 *
 * Not here: node table, permissions, attributes (backend_ramfs.c), file
 * contents (backend_ramfs_data.c), the name rules both backends share
 * (backend_util.c).  Locking: backend_ramfs_impl.h; every
 * change below runs with fs->ns held for writing.
 */
#include "backend_ramfs_impl.h"
#include "backend_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the directory structure ------------------------------------------ */

static uint64_t name_hash(const char *name, uint32_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a */

	for (uint32_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static size_t dentry_cost(uint32_t namelen)
{
	return sizeof(struct ramfs_dentry) + namelen + 1;
}

void ramfs_dir_init(struct ramfs_dir *d, struct ramfs_node *parent)
{
	memset(d, 0, sizeof(*d));
	d->next_cookie = RAMFS_COOKIE_FIRST;
	d->parent = parent;
}

void ramfs_dir_free(struct ramfs *fs, struct ramfs_dir *d)
{
	for (size_t i = 0; i < d->vlen; i++)
		if (d->vec[i].d)
			ramfs_free(fs, d->vec[i].d,
				   dentry_cost(d->vec[i].d->namelen));
	ramfs_free(fs, d->buckets, d->nbuckets * sizeof(*d->buckets));
	ramfs_free(fs, d->vec, d->vcap * sizeof(*d->vec));
	d->buckets = NULL;
	d->vec = NULL;
	d->nbuckets = 0;
	d->vlen = d->vcap = d->vdead = 0;
	d->nentries = 0;
}

struct ramfs_dentry *ramfs_dir_lookup(struct ramfs_dir *d, const char *name,
				      uint32_t namelen)
{
	uint64_t h;

	if (!d->nbuckets)
		return NULL;
	h = name_hash(name, namelen);
	for (struct ramfs_dentry *e = d->buckets[h & (d->nbuckets - 1)]; e;
	     e = e->hnext)
		if (e->hash == h && e->namelen == namelen &&
		    memcmp(e->name, name, namelen) == 0)
			return e;
	return NULL;
}

static void dir_compact(struct ramfs_dir *d)
{
	size_t j = 0;

	for (size_t i = 0; i < d->vlen; i++) {
		if (!d->vec[i].d)
			continue;
		d->vec[j] = d->vec[i];
		d->vec[j].d->vpos = j;
		j++;
	}
	d->vlen = j;
	d->vdead = 0;
}

/* Make room for one more entry (buckets and vector). */
static int dir_reserve(struct ramfs *fs, struct ramfs_dir *d)
{
	int r;

	if (d->nentries + 1 > d->nbuckets) {
		uint32_t nb = d->nbuckets ? d->nbuckets * 2 : 16;
		struct ramfs_dentry **b;

		if (d->nbuckets >= (1u << 30))
			return -ENOSPC;
		r = ramfs_zalloc(fs, nb * sizeof(*b), &b);
		if (r)
			return r;
		for (size_t i = 0; i < d->vlen; i++) {
			struct ramfs_dentry *e = d->vec[i].d;

			if (!e)
				continue;
			e->hnext = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
		ramfs_free(fs, d->buckets, d->nbuckets * sizeof(*b));
		d->buckets = b;
		d->nbuckets = nb;
	}
	if (d->vlen == d->vcap && d->vdead > d->vlen / 4)
		dir_compact(d);
	if (d->vlen == d->vcap) {
		size_t nc = d->vcap ? d->vcap * 2 : 16;
		size_t delta = (nc - d->vcap) * sizeof(*d->vec);
		struct ramfs_dslot *v;

		r = ramfs_charge(fs, delta);
		if (r)
			return r;
		v = realloc(d->vec, nc * sizeof(*v));
		if (!v) {
			ramfs_uncharge(fs, delta);
			return -ENOMEM;
		}
		d->vec = v;
		d->vcap = nc;
	}
	return 0;
}

static int dir_insert(struct ramfs *fs, struct ramfs_dir *d, const char *name,
		      uint32_t namelen, struct ramfs_node *n)
{
	struct ramfs_dentry *e;
	uint32_t b;
	int r;

	r = dir_reserve(fs, d);
	if (r)
		return r;
	r = ramfs_zalloc(fs, dentry_cost(namelen), &e);
	if (r)
		return r;
	memcpy(e->name, name, namelen);
	e->namelen = namelen;
	e->node = n;
	e->hash = name_hash(name, namelen);
	e->cookie = d->next_cookie++;
	e->vpos = d->vlen;
	d->vec[d->vlen].cookie = e->cookie;
	d->vec[d->vlen].d = e;
	d->vlen++;
	b = (uint32_t)(e->hash & (d->nbuckets - 1));
	e->hnext = d->buckets[b];
	d->buckets[b] = e;
	d->nentries++;
	return 0;
}

static void dir_remove(struct ramfs *fs, struct ramfs_dir *d,
		       struct ramfs_dentry *e)
{
	struct ramfs_dentry **pp = &d->buckets[e->hash & (d->nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	d->vec[e->vpos].d = NULL;
	d->vdead++;
	d->nentries--;
	ramfs_free(fs, e, dentry_cost(e->namelen));
	if (d->nentries == 0)
		ramfs_dir_free(fs, d);	/* empty: give the tables back */
	else if (d->vdead > 32 && d->vdead * 2 > d->vlen)
		dir_compact(d);
}

/* First vector index whose cookie is > cookie. */
static size_t dir_search(const struct ramfs_dir *d, uint64_t cookie)
{
	size_t lo = 0, hi = d->vlen;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (d->vec[mid].cookie <= cookie)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The directory's entries changed: size, mtime, ctime. */
static void dir_changed(struct ramfs_node *dn, const struct ramfs_ts *now)
{
	pthread_mutex_lock(&dn->lock);
	dn->size = (uint64_t)(dn->u.dir.nentries + 2) * RAMFS_BOGO_DIRENT;
	dn->mtime = dn->ctime = *now;
	pthread_mutex_unlock(&dn->lock);
}

static void node_ctime(struct ramfs_node *n, const struct ramfs_ts *now)
{
	pthread_mutex_lock(&n->lock);
	n->ctime = *now;
	pthread_mutex_unlock(&n->lock);
}

/* ns held for writing. */
static void node_nlink_add(struct ramfs_node *n, int delta)
{
	pthread_mutex_lock(&n->lock);
	n->nlink = (uint32_t)((int64_t)n->nlink + delta);
	pthread_mutex_unlock(&n->lock);
}

/* A removed directory: empty, no parent, no links. */
static void dir_kill(struct ramfs_node *n, const struct ramfs_ts *now)
{
	n->u.dir.dead = 1;
	n->u.dir.parent = NULL;
	pthread_mutex_lock(&n->lock);
	n->nlink = 0;
	n->ctime = *now;
	pthread_mutex_unlock(&n->lock);
}

/* ---- shared checks -------------------------------------------------- */

/* ns held: the directory parent, searchable by cr and still alive. */
static int dir_get(struct ramfs *fs, const struct orfa_cred *cr,
		   uint64_t parent, struct ramfs_node **dnp)
{
	struct ramfs_node *dn = ramfs_node_find(fs, parent);
	int r;

	if (!dn)
		return -ESTALE;
	if (dn->type != S_IFDIR)
		return -ENOTDIR;
	r = ramfs_perm(dn, cr, X_OK);
	if (r)
		return r;
	if (dn->u.dir.dead)
		return -ENOENT;
	*dnp = dn;
	return 0;
}

/* May cr remove n's entry from dn?  Write and search permission on dn,
 * and, in a sticky directory, ownership of dn or n. */
static int may_delete(struct ramfs_node *dn, struct ramfs_node *n,
		      const struct orfa_cred *cr)
{
	uint32_t dmode, duid, nuid;
	int r = ramfs_perm(dn, cr, W_OK | X_OK);

	if (r || cr->uid == 0)
		return r;
	pthread_mutex_lock(&dn->lock);
	dmode = dn->mode;
	duid = dn->uid;
	pthread_mutex_unlock(&dn->lock);
	if (!(dmode & S_ISVTX) || duid == cr->uid)
		return 0;
	pthread_mutex_lock(&n->lock);
	nuid = n->uid;
	pthread_mutex_unlock(&n->lock);
	return nuid == cr->uid ? 0 : -EPERM;
}

/* Is a (a directory) b itself or one of b's ancestors? */
static int is_ancestor(struct ramfs *fs, struct ramfs_node *a,
		       struct ramfs_node *b)
{
	for (struct ramfs_node *n = b; n; n = n->u.dir.parent) {
		if (n == a)
			return 1;
		if (n == fs->root)
			break;
	}
	return 0;
}

/* ---- lookup ---------------------------------------------------------- */

int ramfs_op_lookup(struct orfa_backend *be, const struct orfa_cred *cr,
		    uint64_t parent, const char *name, uint32_t namelen,
		    struct orfa_entry *out)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_node *dn, *n;
	struct ramfs_dentry *e;
	int r;

	r = backend_check_name(name, namelen);
	if (r)
		return r;
	pthread_rwlock_rdlock(&fs->ns);
	r = dir_get(fs, cr, parent, &dn);
	if (r)
		goto out;
	switch (backend_name_dot(name, namelen)) {
	case BACKEND_NAME_DOT:
		n = dn;
		break;
	case BACKEND_NAME_DOTDOT:
		n = dn->u.dir.parent;	/* the root is its own parent */
		break;
	default:
		e = ramfs_dir_lookup(&dn->u.dir, name, namelen);
		if (!e) {
			r = -ENOENT;
			goto out;
		}
		n = e->node;
	}
	ramfs_fill_entry(n, out);
out:
	pthread_rwlock_unlock(&fs->ns);
	return r;
}

/* ---- creation -------------------------------------------------------- */

/* ns held for writing: the directory in which cr may create name. */
static int create_prepare(struct ramfs *fs, const struct orfa_cred *cr,
			  uint64_t parent, const char *name, uint32_t namelen,
			  struct ramfs_node **dnp)
{
	int r = dir_get(fs, cr, parent, dnp);

	if (r)
		return r;
	if (ramfs_dir_lookup(&(*dnp)->u.dir, name, namelen))
		return -EEXIST;
	return ramfs_perm(*dnp, cr, W_OK | X_OK);
}

/* ns held for writing: create and link a node; *np holds no lookup
 * reference yet. */
static int make_node(struct ramfs *fs, const struct orfa_cred *cr,
		     struct ramfs_node *dn, const char *name, uint32_t namelen,
		     uint32_t type, uint32_t perm, uint64_t rdev,
		     const char *target, uint32_t targetlen,
		     struct ramfs_node **np)
{
	struct ramfs_node *n;
	struct ramfs_ts now;
	int r;

	r = ramfs_node_new(fs, cr, dn, type, perm, rdev, &n);
	if (r)
		return r;
	if (type == S_IFLNK) {
		r = ramfs_zalloc(fs, (size_t)targetlen + 1, &n->u.target);
		if (r)
			goto out_free;
		memcpy(n->u.target, target, targetlen);
		n->size = targetlen;
	}
	r = dir_insert(fs, &dn->u.dir, name, namelen, n);
	if (r)
		goto out_free;
	if (type == S_IFDIR)
		node_nlink_add(dn, 1);
	ramfs_now(&now);
	dir_changed(dn, &now);
	*np = n;
	return 0;

out_free:
	ramfs_node_free(fs, n);
	return r;
}

static int create_entry(struct ramfs *fs, const struct orfa_cred *cr,
			uint64_t parent, const char *name, uint32_t namelen,
			uint32_t type, uint32_t perm, uint64_t rdev,
			const char *target, uint32_t targetlen,
			struct orfa_entry *out)
{
	struct ramfs_node *dn, *n;
	int r;

	r = backend_check_new_name(name, namelen);
	if (r)
		return r;
	pthread_rwlock_wrlock(&fs->ns);
	r = create_prepare(fs, cr, parent, name, namelen, &dn);
	if (!r)
		r = make_node(fs, cr, dn, name, namelen, type, perm, rdev,
			      target, targetlen, &n);
	if (!r)
		ramfs_fill_entry(n, out);
	pthread_rwlock_unlock(&fs->ns);
	return r;
}

int ramfs_op_mknod(struct orfa_backend *be, const struct orfa_cred *cr,
		   uint64_t parent, const char *name, uint32_t namelen,
		   uint32_t mode, uint64_t rdev, struct orfa_entry *out)
{
	uint32_t type;
	int r = backend_mknod_type(mode, &type);

	if (r)
		return r;
	/* devices need CAP_MKNOD, which only root has here */
	if ((type == S_IFCHR || type == S_IFBLK) && cr->uid != 0)
		return -EPERM;
	return create_entry(to_fs(be), cr, parent, name, namelen, type,
			    mode & 07777 & ~cr->umask, rdev, NULL, 0, out);
}

int ramfs_op_mkdir(struct orfa_backend *be, const struct orfa_cred *cr,
		   uint64_t parent, const char *name, uint32_t namelen,
		   uint32_t mode, struct orfa_entry *out)
{
	return create_entry(to_fs(be), cr, parent, name, namelen, S_IFDIR,
			    mode & (0777 | S_ISVTX) & ~cr->umask, 0, NULL, 0,
			    out);
}

int ramfs_op_symlink(struct orfa_backend *be, const struct orfa_cred *cr,
		     uint64_t parent, const char *name, uint32_t namelen,
		     const char *target, uint32_t targetlen,
		     struct orfa_entry *out)
{
	int r = backend_check_symlink_target(target, targetlen);

	if (r)
		return r;
	return create_entry(to_fs(be), cr, parent, name, namelen, S_IFLNK,
			    0777, 0, target, targetlen, out);
}

int ramfs_op_create(struct orfa_backend *be, const struct orfa_cred *cr,
		    uint64_t parent, const char *name, uint32_t namelen,
		    uint32_t mode, uint32_t flags, struct orfa_entry *out,
		    void **fh)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_node *dn, *n;
	struct ramfs_dentry *e;
	int r;

	r = backend_check_create_name(name, namelen, flags);
	if (r)
		return r;
	/* refuse what open would refuse before creating anything */
	if ((flags & O_ACCMODE) == O_ACCMODE)
		return -EINVAL;
	pthread_rwlock_wrlock(&fs->ns);
	r = dir_get(fs, cr, parent, &dn);
	if (r)
		goto out;
	e = ramfs_dir_lookup(&dn->u.dir, name, namelen);
	if (e) {
		/* lost a race with another creator: open(2) semantics */
		if (flags & O_EXCL) {
			r = -EEXIST;
			goto out;
		}
		n = e->node;
		if (n->type == S_IFDIR) {
			r = -EISDIR;
			goto out;
		}
		r = ramfs_open_node(fs, cr, n, flags, 1, fh, NULL);
		if (!r)
			ramfs_fill_entry(n, out);
		goto out;
	}
	r = ramfs_perm(dn, cr, W_OK | X_OK);
	if (r)
		goto out;
	r = make_node(fs, cr, dn, name, namelen, S_IFREG,
		      mode & 07777 & ~cr->umask, 0, NULL, 0, &n);
	if (r)
		goto out;
	/* the creator may open what it created, whatever the mode */
	r = ramfs_open_node(fs, cr, n, flags, 0, fh, NULL);
	if (r) {
		/* out of memory for the handle: undo (nobody has seen n) */
		struct ramfs_ts now;

		e = ramfs_dir_lookup(&dn->u.dir, name, namelen);
		dir_remove(fs, &dn->u.dir, e);
		ramfs_now(&now);
		dir_changed(dn, &now);
		n->nlink = 0;
		ramfs_node_maybe_free(fs, n);
		goto out;
	}
	ramfs_fill_entry(n, out);
out:
	pthread_rwlock_unlock(&fs->ns);
	return r;
}

/* ---- link, unlink, rmdir ------------------------------------------- */

int ramfs_op_link(struct orfa_backend *be, const struct orfa_cred *cr,
		  uint64_t nodeid, uint64_t newparent, const char *newname,
		  uint32_t newnamelen, struct orfa_entry *out)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_node *dn, *n;
	struct ramfs_ts now;
	uint32_t nlink;
	int r;

	r = backend_check_new_name(newname, newnamelen);
	if (r)
		return r;
	pthread_rwlock_wrlock(&fs->ns);
	n = ramfs_node_find(fs, nodeid);
	if (!n) {
		r = -ESTALE;
		goto out;
	}
	if (n->type == S_IFDIR) {
		r = -EPERM;
		goto out;
	}
	r = create_prepare(fs, cr, newparent, newname, newnamelen, &dn);
	if (r)
		goto out;
	pthread_mutex_lock(&n->lock);
	nlink = n->nlink;
	pthread_mutex_unlock(&n->lock);
	if (nlink == 0) {
		r = -ENOENT;	/* unlinked (but still open) file */
		goto out;
	}
	r = dir_insert(fs, &dn->u.dir, newname, newnamelen, n);
	if (r)
		goto out;
	ramfs_now(&now);
	pthread_mutex_lock(&n->lock);
	n->nlink++;
	n->ctime = now;
	pthread_mutex_unlock(&n->lock);
	dir_changed(dn, &now);
	ramfs_fill_entry(n, out);
out:
	pthread_rwlock_unlock(&fs->ns);
	return r;
}

/* A non-directory loses one name: nlink and ctime, under its lock. */
static void node_drop_link(struct ramfs_node *n, const struct ramfs_ts *now)
{
	pthread_mutex_lock(&n->lock);
	n->nlink--;
	n->ctime = *now;
	pthread_mutex_unlock(&n->lock);
}

/* UNLINK (rmdir false) and RMDIR (rmdir true): find the entry, check it
 * may go and is of the right kind, remove it. */
static int remove_entry(struct ramfs *fs, const struct orfa_cred *cr,
			uint64_t parent, const char *name, uint32_t namelen,
			bool rmdir)
{
	struct ramfs_node *dn, *n;
	struct ramfs_dentry *e;
	struct ramfs_ts now;
	int r;

	r = backend_check_remove_name(name, namelen, rmdir);
	if (r)
		return r;
	pthread_rwlock_wrlock(&fs->ns);
	r = dir_get(fs, cr, parent, &dn);
	if (r)
		goto out;
	e = ramfs_dir_lookup(&dn->u.dir, name, namelen);
	if (!e) {
		r = -ENOENT;
		goto out;
	}
	n = e->node;
	r = may_delete(dn, n, cr);
	if (r)
		goto out;
	if (rmdir)
		r = n->type != S_IFDIR ? -ENOTDIR :
		    n->u.dir.nentries ? -ENOTEMPTY : 0;
	else
		r = n->type == S_IFDIR ? -EISDIR : 0;
	if (r)
		goto out;
	dir_remove(fs, &dn->u.dir, e);
	ramfs_now(&now);
	if (rmdir) {
		dir_kill(n, &now);
		node_nlink_add(dn, -1);
	} else {
		node_drop_link(n, &now);
	}
	dir_changed(dn, &now);
	ramfs_node_maybe_free(fs, n);
out:
	pthread_rwlock_unlock(&fs->ns);
	return r;
}

int ramfs_op_unlink(struct orfa_backend *be, const struct orfa_cred *cr,
		    uint64_t parent, const char *name, uint32_t namelen)
{
	return remove_entry(to_fs(be), cr, parent, name, namelen, false);
}

int ramfs_op_rmdir(struct orfa_backend *be, const struct orfa_cred *cr,
		   uint64_t parent, const char *name, uint32_t namelen)
{
	return remove_entry(to_fs(be), cr, parent, name, namelen, true);
}

/* ---- rename ---------------------------------------------------------- */

/* A directory moves from sd to td: its ".." and both link counts. */
static void dir_move(struct ramfs_node *n, struct ramfs_node *sd,
		     struct ramfs_node *td)
{
	if (n->type != S_IFDIR || sd == td)
		return;
	n->u.dir.parent = td;
	node_nlink_add(sd, -1);
	node_nlink_add(td, 1);
}

/* Checks of a rename once both entries are known (ns held for writing);
 * 1 when there is nothing to do (same inode). */
static int rename_check(struct ramfs *fs, const struct orfa_cred *cr,
			struct ramfs_node *sd, struct ramfs_node *sn,
			struct ramfs_node *td, struct ramfs_node *tn,
			uint32_t flags)
{
	int exchange = (flags & ORFA_RENAME_EXCHANGE) != 0;
	int r;

	/* a directory may not move below itself */
	if (sn->type == S_IFDIR && is_ancestor(fs, sn, td))
		return -EINVAL;
	if (exchange && tn->type == S_IFDIR && is_ancestor(fs, tn, sd))
		return -EINVAL;
	if (tn == sn)
		return 1;
	r = may_delete(sd, sn, cr);
	if (r)
		return r;
	r = tn ? may_delete(td, tn, cr) : ramfs_perm(td, cr, W_OK | X_OK);
	if (r)
		return r;
	if (!exchange && tn) {
		if (sn->type == S_IFDIR && tn->type != S_IFDIR)
			return -ENOTDIR;
		if (sn->type != S_IFDIR && tn->type == S_IFDIR)
			return -EISDIR;
		if (tn->type == S_IFDIR && tn->u.dir.nentries)
			return -ENOTEMPTY;
	}
	if (sd != td) {
		/* moving a directory rewrites its ".." */
		if (sn->type == S_IFDIR) {
			r = ramfs_perm(sn, cr, W_OK);
			if (r)
				return r;
		}
		if (exchange && tn->type == S_IFDIR) {
			r = ramfs_perm(tn, cr, W_OK);
			if (r)
				return r;
		}
	}
	return 0;
}

/* Both ends of a rename, found and checked (ns held for writing). */
struct rename_ends {
	struct ramfs_node *sd, *sn, *td, *tn;	/* dirs, nodes (tn may be NULL) */
	struct ramfs_dentry *se, *te;		/* entries (te may be NULL) */
};

/* Carry out a checked rename (ns held for writing); fails only when a new
 * entry cannot be allocated, and then nothing has changed. */
static int rename_apply(struct ramfs *fs, struct rename_ends *x,
			const char *newname, uint32_t newnamelen,
			uint32_t flags)
{
	struct ramfs_node *sd = x->sd, *sn = x->sn, *td = x->td, *tn = x->tn;
	struct ramfs_ts now;
	int r;

	ramfs_now(&now);
	if (flags & ORFA_RENAME_EXCHANGE) {
		/* the entries stay (with their cookies), the nodes swap */
		x->se->node = tn;
		x->te->node = sn;
		if (sn->type == S_IFDIR && tn->type == S_IFDIR) {
			if (sd != td) {
				sn->u.dir.parent = td;
				tn->u.dir.parent = sd;
			}
		} else {
			dir_move(sn, sd, td);
			dir_move(tn, td, sd);
		}
		node_ctime(tn, &now);
	} else if (x->te) {
		/* reuse the victim's entry: nothing to allocate */
		x->te->node = sn;
		dir_remove(fs, &sd->u.dir, x->se);
		dir_move(sn, sd, td);
		if (tn->type == S_IFDIR) {
			dir_kill(tn, &now);
			node_nlink_add(td, -1);
		} else {
			node_drop_link(tn, &now);
		}
	} else {
		/* insert first: if that fails nothing has changed */
		r = dir_insert(fs, &td->u.dir, newname, newnamelen, sn);
		if (r)
			return r;
		dir_remove(fs, &sd->u.dir, x->se);
		dir_move(sn, sd, td);
	}
	node_ctime(sn, &now);
	dir_changed(sd, &now);
	if (td != sd)
		dir_changed(td, &now);
	if (tn && !(flags & ORFA_RENAME_EXCHANGE))
		ramfs_node_maybe_free(fs, tn);
	return 0;
}

int ramfs_op_rename(struct orfa_backend *be, const struct orfa_cred *cr,
		    uint64_t parent, const char *name, uint32_t namelen,
		    uint64_t newparent, const char *newname,
		    uint32_t newnamelen, uint32_t flags)
{
	struct ramfs *fs = to_fs(be);
	struct rename_ends x;
	int r;

	r = backend_check_rename(name, namelen, newname, newnamelen, flags);
	if (r)
		return r;
	pthread_rwlock_wrlock(&fs->ns);
	r = dir_get(fs, cr, parent, &x.sd);
	if (!r)
		r = dir_get(fs, cr, newparent, &x.td);
	if (r)
		goto out;
	x.se = ramfs_dir_lookup(&x.sd->u.dir, name, namelen);
	if (!x.se) {
		r = -ENOENT;
		goto out;
	}
	x.te = ramfs_dir_lookup(&x.td->u.dir, newname, newnamelen);
	if (x.te && (flags & ORFA_RENAME_NOREPLACE)) {
		r = -EEXIST;
		goto out;
	}
	if (!x.te && (flags & ORFA_RENAME_EXCHANGE)) {
		r = -ENOENT;
		goto out;
	}
	x.sn = x.se->node;
	x.tn = x.te ? x.te->node : NULL;
	r = rename_check(fs, cr, x.sd, x.sn, x.td, x.tn, flags);
	if (r == 0)
		r = rename_apply(fs, &x, newname, newnamelen, flags);
	else if (r > 0)
		r = 0;	/* same inode: nothing to do */
out:
	pthread_rwlock_unlock(&fs->ns);
	return r;
}

/* ---- readdir --------------------------------------------------------- */

/* Entries are gathered under fs->ns in batches and handed to fill with
 * no lock held (fill may call back into the backend, e.g. forget). */
#define RD_BATCH 32

struct rd_item {
	uint64_t ino;
	uint64_t cookie;
	uint32_t type;
	uint32_t namelen;
	struct orfa_entry e;
	char name[RAMFS_NAME_MAX + 1];
};

static uint32_t dt_of(uint32_t type)
{
	return type >> 12;	/* S_IFREG >> 12 == DT_REG, and so on */
}

/* "." and "..": listed with their inode numbers; for READDIRPLUS their
 * entry has node id 0 and carries no lookup reference, as in libfuse's
 * passthrough_ll (the FUSE kernel ignores these two entries). */
static void rd_dot(struct rd_item *it, struct ramfs_node *n, const char *name,
		   uint64_t cookie, int plus)
{
	it->ino = n->nodeid;
	it->cookie = cookie;
	it->type = DT_DIR;
	it->namelen = (uint32_t)strlen(name);
	memcpy(it->name, name, it->namelen + 1);
	if (plus) {
		memset(&it->e, 0, sizeof(it->e));
		pthread_mutex_lock(&n->lock);
		ramfs_fill_attr_locked(n, &it->e.attr);
		pthread_mutex_unlock(&n->lock);
	}
}

/* ns held for reading: up to RD_BATCH entries after cookie; *more is
 * cleared when the directory has nothing after the last one. */
static int rd_gather(struct ramfs *fs, struct ramfs_node *dn, uint64_t cookie,
		     int plus, struct rd_item *items, int *more)
{
	struct ramfs_dir *d = &dn->u.dir;
	int cnt = 0;
	size_t i;

	if (cookie < RAMFS_COOKIE_DOT)
		rd_dot(&items[cnt++], dn, ".", RAMFS_COOKIE_DOT, plus);
	if (cookie < RAMFS_COOKIE_DOTDOT)
		rd_dot(&items[cnt++], d->parent, "..", RAMFS_COOKIE_DOTDOT,
		       plus);
	for (i = dir_search(d, cookie); i < d->vlen && cnt < RD_BATCH; i++) {
		struct ramfs_dentry *e = d->vec[i].d;
		struct rd_item *it = &items[cnt];

		if (!e)
			continue;
		it->ino = e->node->nodeid;
		it->cookie = e->cookie;
		it->type = dt_of(e->node->type);
		it->namelen = e->namelen;
		memcpy(it->name, e->name, e->namelen + 1);
		if (plus)
			ramfs_fill_entry(e->node, &it->e);
		cnt++;
	}
	while (i < d->vlen && !d->vec[i].d)
		i++;
	*more = i < d->vlen;
	return cnt;
}

int ramfs_op_readdir(struct orfa_backend *be, const struct orfa_cred *cr,
		     uint64_t nodeid, void *dh, uint64_t cookie, int plus,
		     orfa_fill_fn fill, void *ctx)
{
	struct ramfs *fs = to_fs(be);
	struct rd_item *items;
	struct ramfs_node *dn;
	int first = 1, more = 1, cnt, r = 0;

	items = malloc(RD_BATCH * sizeof(*items));
	if (!items)
		return -ENOMEM;
	while (more) {
		pthread_rwlock_rdlock(&fs->ns);
		dn = ramfs_node_find(fs, nodeid);
		if (!dn)
			r = -ESTALE;
		else if (dn->type != S_IFDIR)
			r = -ENOTDIR;
		else if (dn->u.dir.dead)
			r = first ? -ENOENT : 0;
		else if (first && !dh)
			r = ramfs_perm(dn, cr, R_OK);
		if (r || (dn && dn->u.dir.dead)) {
			pthread_rwlock_unlock(&fs->ns);
			break;
		}
		if (first) {
			pthread_mutex_lock(&dn->lock);
			ramfs_atime_locked(dn);
			pthread_mutex_unlock(&dn->lock);
		}
		first = 0;
		cnt = rd_gather(fs, dn, cookie, plus, items, &more);
		pthread_rwlock_unlock(&fs->ns);
		for (int k = 0; k < cnt; k++) {
			struct rd_item *it = &items[k];

			if (fill(ctx, it->name, it->namelen, it->type, it->ino,
				 it->cookie, plus ? &it->e : NULL)) {
				/* fill gave back it's reference; the rest of
				 * the batch is ours to give back */
				for (int j = k + 1; plus && j < cnt; j++)
					if (items[j].e.nodeid)
						be->ops->forget(be,
							items[j].e.nodeid, 1);
				goto out;
			}
			cookie = it->cookie;
		}
	}
out:
	free(items);
	return r;
}
