/*
 * backend_ramfs.c - the in-memory backend: node table, permissions,
 * attributes, open/release, statfs and the ops table.  Directories and
 * namespace changes live in backend_ramfs_dir.c, file contents in
 * backend_ramfs_data.c, extended attributes in backend_ramfs_xattr.c; the
 * structures and the locking rules shared by them are in
 * backend_ramfs_impl.h.
 *
 * Node ids are (generation << 32) | table slot.  The root is slot 1,
 * generation 0, i.e. id 1; other slots start at a random generation (ids
 * of an earlier orfad are stale here) and a freed node's slot gets a new
 * one, so an old id answers -ESTALE instead of reaching the slot's next
 * node.
 * The inode number reported is the node id.
 *
 * Everything the file system stores (nodes, names, directory tables, data
 * chunks, radix tree nodes, symlink targets, xattrs, the node table) is
 * charged against the size limit; transient objects (open handles, read
 * holds) are not.  The root belongs to the user running orfad.
 */
#include "backend_ramfs_impl.h"
#include "backend_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* ---- accounting ------------------------------------------------------ */

int ramfs_charge(struct ramfs *fs, uint64_t n)
{
	uint64_t cur = __atomic_load_n(&fs->used, __ATOMIC_RELAXED);

	do {
		if (fs->limit && (n > fs->limit || cur > fs->limit - n))
			return -ENOSPC;
	} while (!__atomic_compare_exchange_n(&fs->used, &cur, cur + n, 1,
					      __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return 0;
}

void ramfs_uncharge(struct ramfs *fs, uint64_t n)
{
	__atomic_sub_fetch(&fs->used, n, __ATOMIC_RELAXED);
}

int ramfs_zalloc(struct ramfs *fs, size_t size, void *out)
{
	void *p;
	int r = ramfs_charge(fs, size);

	if (r)
		return r;
	p = calloc(1, size);
	if (!p) {
		ramfs_uncharge(fs, size);
		return -ENOMEM;
	}
	*(void **)out = p;
	return 0;
}

void ramfs_free(struct ramfs *fs, void *p, size_t size)
{
	if (!p)
		return;
	free(p);
	ramfs_uncharge(fs, size);
}

/* ---- credentials and attributes -------------------------------------- */

void ramfs_now(struct ramfs_ts *ts)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	ts->sec = t.tv_sec;
	ts->nsec = (uint32_t)t.tv_nsec;
}

int ramfs_in_group(const struct orfa_cred *cr, uint32_t gid)
{
	uint32_t n = cr->ngroups < ORFA_MAX_GROUPS ? cr->ngroups
						   : ORFA_MAX_GROUPS;

	if (cr->gid == gid)
		return 1;
	for (uint32_t i = 0; i < n; i++)
		if (cr->groups[i] == gid)
			return 1;
	return 0;
}

int ramfs_perm_locked(const struct ramfs_node *n, const struct orfa_cred *cr,
		      int mask)
{
	uint32_t bits;

	mask &= R_OK | W_OK | X_OK;
	if (cr->uid == 0) {
		/* root may read and write anything, and execute what has
		 * an x bit somewhere (search any directory) */
		if ((mask & X_OK) && n->type != S_IFDIR &&
		    !(n->mode & (S_IXUSR | S_IXGRP | S_IXOTH)))
			return -EACCES;
		return 0;
	}
	if (cr->uid == n->uid)
		bits = n->mode >> 6;
	else if (ramfs_in_group(cr, n->gid))
		bits = n->mode >> 3;
	else
		bits = n->mode;
	return ((bits & (uint32_t)mask) == (uint32_t)mask) ? 0 : -EACCES;
}

int ramfs_perm(struct ramfs_node *n, const struct orfa_cred *cr, int mask)
{
	int r;

	pthread_mutex_lock(&n->lock);
	r = ramfs_perm_locked(n, cr, mask);
	pthread_mutex_unlock(&n->lock);
	return r;
}

void ramfs_kill_suid_locked(struct ramfs_node *n, const struct orfa_cred *cr)
{
	if (cr && cr->uid == 0)
		return;
	n->mode &= ~(uint32_t)S_ISUID;
	if ((n->mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		n->mode &= ~(uint32_t)S_ISGID;
}

static int ts_le(const struct ramfs_ts *a, const struct ramfs_ts *b)
{
	return a->sec < b->sec || (a->sec == b->sec && a->nsec <= b->nsec);
}

void ramfs_atime_locked(struct ramfs_node *n)
{
	struct ramfs_ts now;

	ramfs_now(&now);
	if (ts_le(&n->atime, &n->mtime) || ts_le(&n->atime, &n->ctime) ||
	    now.sec - n->atime.sec >= 86400)
		n->atime = now;
}

uint64_t ramfs_capacity(const struct ramfs *fs)
{
	long pages, psize;

	if (fs->limit)
		return fs->limit;
	pages = sysconf(_SC_PHYS_PAGES);
	psize = sysconf(_SC_PAGESIZE);
	return (pages > 0 && psize > 0) ? (uint64_t)pages * (uint64_t)psize
					: (1ull << 40);
}

void ramfs_fill_attr_locked(const struct ramfs_node *n, struct orfa_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = n->nodeid;
	a->size = n->size;
	a->blocks = n->type == S_IFREG ? n->u.file.alloc / 512 : 0;
	a->atime = n->atime.sec;
	a->atime_nsec = n->atime.nsec;
	a->mtime = n->mtime.sec;
	a->mtime_nsec = n->mtime.nsec;
	a->ctime = n->ctime.sec;
	a->ctime_nsec = n->ctime.nsec;
	a->mode = n->mode;
	a->nlink = n->nlink;
	a->uid = n->uid;
	a->gid = n->gid;
	a->blksize = RAMFS_BSIZE;
	a->rdev = n->rdev;
}

void ramfs_fill_entry(struct ramfs_node *n, struct orfa_entry *e)
{
	__atomic_add_fetch(&n->nlookup, 1, __ATOMIC_RELAXED);
	e->nodeid = n->nodeid;
	e->generation = n->nodeid >> 32;
	pthread_mutex_lock(&n->lock);
	ramfs_fill_attr_locked(n, &e->attr);
	pthread_mutex_unlock(&n->lock);
}

/* ---- node table ------------------------------------------------------ */

struct ramfs_node *ramfs_node_find(struct ramfs *fs, uint64_t nodeid)
{
	uint32_t idx = (uint32_t)nodeid;
	uint32_t gen = (uint32_t)(nodeid >> 32);

	if (idx == 0 || idx >= fs->nslots)
		return NULL;
	if (!fs->slots[idx].node || fs->slots[idx].gen != gen)
		return NULL;
	return fs->slots[idx].node;
}

/* Some entropy when getrandom has none (early boot). */
static uint64_t gen_fallback(uint32_t idx)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
	       ((uint64_t)getpid() << 40) ^ (idx * 2654435761u);
}

/* ns held for writing. */
static int slot_alloc(struct ramfs *fs, uint32_t *idx)
{
	if (fs->free_head) {
		*idx = fs->free_head;
		fs->free_head = fs->slots[*idx].next_free;
		return 0;
	}
	if (fs->nslots == fs->slots_cap) {
		uint32_t ncap = fs->slots_cap * 2;
		size_t delta = (size_t)(ncap - fs->slots_cap) *
			       sizeof(struct ramfs_slot);
		struct ramfs_slot *ns;
		int r;

		if (fs->slots_cap >= UINT32_MAX / 2)
			return -ENOSPC;
		r = ramfs_charge(fs, delta);
		if (r)
			return r;
		ns = realloc(fs->slots, (size_t)ncap * sizeof(*ns));
		if (!ns) {
			ramfs_uncharge(fs, delta);
			return -ENOMEM;
		}
		memset(ns + fs->slots_cap, 0, delta);
		fs->slots = ns;
		fs->slots_cap = ncap;
	}
	*idx = fs->nslots++;
	/* A fresh slot (but the root's) starts at a random generation, so
	 * the ids a client kept from an earlier orfad answer -ESTALE here
	 * rather than naming whatever this instance put in their slot
	 * (issue 6: a restarted RAM file system is empty). */
	if (*idx > ORFA_ROOT_NODEID) {
		uint32_t g = 0;

		if (getrandom(&g, sizeof(g), GRND_NONBLOCK) != sizeof(g))
			g = (uint32_t)gen_fallback(*idx);
		fs->slots[*idx].gen = g;
	}
	return 0;
}

int ramfs_node_new(struct ramfs *fs, const struct orfa_cred *cr,
		   struct ramfs_node *dir, uint32_t type, uint32_t perm,
		   uint64_t rdev, struct ramfs_node **out)
{
	struct ramfs_node *n;
	uint32_t idx;
	int r;

	r = ramfs_zalloc(fs, sizeof(*n), &n);
	if (r)
		return r;
	r = slot_alloc(fs, &idx);
	if (r) {
		ramfs_free(fs, n, sizeof(*n));
		return r;
	}
	pthread_mutex_init(&n->lock, NULL);
	n->nodeid = ((uint64_t)fs->slots[idx].gen << 32) | idx;
	n->type = type;
	n->mode = type | (perm & 07777);
	n->uid = cr->uid;
	n->gid = cr->gid;
	if (dir) {
		pthread_mutex_lock(&dir->lock);
		if (dir->mode & S_ISGID) {
			n->gid = dir->gid;
			if (type == S_IFDIR)
				n->mode |= S_ISGID;
		}
		pthread_mutex_unlock(&dir->lock);
	}
	/* a non-member may not create set-group-ID executables */
	if (type != S_IFDIR &&
	    (n->mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) &&
	    cr->uid != 0 && !ramfs_in_group(cr, n->gid))
		n->mode &= ~(uint32_t)S_ISGID;
	n->nlink = type == S_IFDIR ? 2 : 1;
	if (type == S_IFCHR || type == S_IFBLK)
		n->rdev = rdev;
	ramfs_now(&n->atime);
	n->mtime = n->ctime = n->atime;
	if (type == S_IFDIR) {
		ramfs_dir_init(&n->u.dir, dir ? dir : n);
		n->size = 2 * RAMFS_BOGO_DIRENT;
	}
	fs->slots[idx].node = n;
	fs->nnodes++;
	*out = n;
	return 0;
}

void ramfs_node_free(struct ramfs *fs, struct ramfs_node *n)
{
	uint32_t idx = (uint32_t)n->nodeid;
	struct ramfs_xattr *x, *next;

	switch (n->type) {
	case S_IFREG:
		ramfs_file_free(fs, n);
		break;
	case S_IFDIR:
		ramfs_dir_free(fs, &n->u.dir);
		break;
	case S_IFLNK:
		ramfs_free(fs, n->u.target, n->size + 1);
		break;
	}
	for (x = n->xattrs; x; x = next) {
		next = x->next;
		ramfs_free(fs, x, sizeof(*x) + x->namelen + 1 + x->vlen);
	}
	pthread_mutex_destroy(&n->lock);
	fs->slots[idx].node = NULL;
	fs->slots[idx].gen++;
	fs->slots[idx].next_free = fs->free_head;
	fs->free_head = idx;
	fs->nnodes--;
	ramfs_free(fs, n, sizeof(*n));
}

void ramfs_node_maybe_free(struct ramfs *fs, struct ramfs_node *n)
{
	if (n == fs->root || n->nlink != 0 ||
	    __atomic_load_n(&n->nlookup, __ATOMIC_RELAXED) != 0 ||
	    __atomic_load_n(&n->nopen, __ATOMIC_RELAXED) != 0)
		return;
	ramfs_node_free(fs, n);
}

int ramfs_node_use(struct ramfs *fs, uint64_t nodeid, void *fh,
		   struct ramfs_node **np, int *ns_held)
{
	struct ramfs_fh *f = fh;

	if (f) {
		if (f->node->nodeid != nodeid)
			return -EBADF;
		*np = f->node;
		*ns_held = 0;
		return 0;
	}
	pthread_rwlock_rdlock(&fs->ns);
	*np = ramfs_node_find(fs, nodeid);
	if (!*np) {
		pthread_rwlock_unlock(&fs->ns);
		return -ESTALE;
	}
	*ns_held = 1;
	return 0;
}

void ramfs_node_unuse(struct ramfs *fs, int ns_held)
{
	if (ns_held)
		pthread_rwlock_unlock(&fs->ns);
}

/* ---- node operations ------------------------------------------------- */

static void ramfs_forget(struct orfa_backend *be, uint64_t nodeid,
			 uint64_t nlookup)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_node *n;

	pthread_rwlock_wrlock(&fs->ns);
	n = ramfs_node_find(fs, nodeid);
	if (n) {
		uint64_t cur = __atomic_load_n(&n->nlookup, __ATOMIC_RELAXED);

		if (nlookup > cur) {
			if (n != fs->root)
				log_warn("ramfs: forget %llu of node %llu "
					 "holding %llu",
					 (unsigned long long)nlookup,
					 (unsigned long long)nodeid,
					 (unsigned long long)cur);
			nlookup = cur;
		}
		__atomic_store_n(&n->nlookup, cur - nlookup,
				 __ATOMIC_RELAXED);
		ramfs_node_maybe_free(fs, n);
	}
	pthread_rwlock_unlock(&fs->ns);
}

static int ramfs_getattr(struct orfa_backend *be, const struct orfa_cred *cr,
			 uint64_t nodeid, void *fh, struct orfa_attr *out)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_node *n;
	int held, r;

	r = ramfs_node_use(fs, nodeid, fh, &n, &held);
	if (r)
		return r;
	pthread_mutex_lock(&n->lock);
	ramfs_fill_attr_locked(n, out);
	pthread_mutex_unlock(&n->lock);
	ramfs_node_unuse(fs, held);
	return 0;
}

static int fh_writable(const struct ramfs_fh *f)
{
	return f && (f->flags & O_ACCMODE) != O_RDONLY;
}

/* All permission checks of a setattr, before anything changes;
 * node->lock held. */
static int setattr_check(struct ramfs_node *n, const struct orfa_cred *cr,
			 const struct ramfs_fh *f,
			 const struct orfa_setattr_req *in)
{
	uint32_t v = in->valid;
	int root = cr->uid == 0;
	int owner = root || cr->uid == n->uid;
	int anow = (v & ORFA_SET_ATIME_NOW) != 0;
	int mnow = (v & ORFA_SET_MTIME_NOW) != 0;
	int aset = (v & ORFA_SET_ATIME) && !anow;
	int mset = (v & ORFA_SET_MTIME) && !mnow;

	if (v & ~ORFA_SET_ALL)
		return -EINVAL;
	/* A writer who is not the owner may drop setuid/setgid: FUSE clients
	 * without handle_killpriv send the kernel's "kill suid on write" as a
	 * SETATTR of the mode from the writer (as backend_native does). */
	if ((v & ORFA_SET_MODE) && !owner &&
	    !(n->type == S_IFREG &&
	      backend_only_drops_suidgid(n->mode & 07777, in->mode & 07777) &&
	      (fh_writable(f) || ramfs_perm_locked(n, cr, W_OK) == 0)))
		return -EPERM;
	if ((v & ORFA_SET_UID) && !root &&
	    !(cr->uid == n->uid && in->uid == n->uid))
		return -EPERM;
	if ((v & ORFA_SET_GID) && !root &&
	    !(cr->uid == n->uid &&
	      (in->gid == n->gid || ramfs_in_group(cr, in->gid))))
		return -EPERM;
	if (v & ORFA_SET_SIZE) {
		if (n->type == S_IFDIR)
			return -EISDIR;
		if (n->type != S_IFREG)
			return -EINVAL;
		if (in->size > RAMFS_MAX_FILESIZE)
			return -EFBIG;
		if (!fh_writable(f) && ramfs_perm_locked(n, cr, W_OK))
			return -EACCES;
	}
	if ((aset && in->atime_nsec >= 1000000000u) ||
	    (mset && in->mtime_nsec >= 1000000000u) ||
	    ((v & ORFA_SET_CTIME) && in->ctime_nsec >= 1000000000u))
		return -EINVAL;
	if ((aset || mset) && !owner)
		return -EPERM;
	if ((anow || mnow) && !owner && ramfs_perm_locked(n, cr, W_OK))
		return -EACCES;
	return 0;
}

static int ramfs_setattr(struct orfa_backend *be, const struct orfa_cred *cr,
			 uint64_t nodeid, void *fh,
			 const struct orfa_setattr_req *in,
			 struct orfa_attr *out)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_node *n;
	struct ramfs_ts now;
	uint32_t v = in->valid;
	int held, r;

	r = ramfs_node_use(fs, nodeid, fh, &n, &held);
	if (r)
		return r;
	ramfs_now(&now);
	pthread_mutex_lock(&n->lock);
	r = setattr_check(n, cr, fh, in);
	if (r)
		goto out_unlock;
	if (v & ORFA_SET_SIZE) {
		/* the only step that can fail, so it goes first */
		r = ramfs_file_truncate(fs, n, in->size);
		if (r)
			goto out_unlock;
		ramfs_kill_suid_locked(n, cr);
		if (!(v & (ORFA_SET_MTIME | ORFA_SET_MTIME_NOW)))
			n->mtime = now;
	}
	if (v & (ORFA_SET_UID | ORFA_SET_GID)) {
		if (v & ORFA_SET_UID)
			n->uid = in->uid;
		if (v & ORFA_SET_GID)
			n->gid = in->gid;
		if (n->type != S_IFDIR)
			ramfs_kill_suid_locked(n, NULL);
	}
	if (v & ORFA_SET_MODE) {
		/* chmod by an owner outside the file's group drops
		 * S_ISGID (Linux); a writer's drop of set-id bits (the only
		 * mode change a non-owner gets past setattr_check) leaves
		 * the mode it asked for, as in backend_native. */
		n->mode = n->type | (in->mode & 07777);
		if (cr->uid != 0 && cr->uid == n->uid &&
		    !ramfs_in_group(cr, n->gid))
			n->mode &= ~(uint32_t)S_ISGID;
	}
	if (v & ORFA_SET_KILL_SUIDGID)
		ramfs_kill_suid_locked(n, NULL);
	if (v & ORFA_SET_ATIME_NOW) {
		n->atime = now;
	} else if (v & ORFA_SET_ATIME) {
		n->atime.sec = in->atime;
		n->atime.nsec = in->atime_nsec;
	}
	if (v & ORFA_SET_MTIME_NOW) {
		n->mtime = now;
	} else if (v & ORFA_SET_MTIME) {
		n->mtime.sec = in->mtime;
		n->mtime.nsec = in->mtime_nsec;
	}
	if (v & ORFA_SET_CTIME) {
		n->ctime.sec = in->ctime;
		n->ctime.nsec = in->ctime_nsec;
	} else if (v) {
		n->ctime = now;
	}
	ramfs_fill_attr_locked(n, out);
out_unlock:
	pthread_mutex_unlock(&n->lock);
	ramfs_node_unuse(fs, held);
	return r;
}

static int ramfs_readlink(struct orfa_backend *be, const struct orfa_cred *cr,
			  uint64_t nodeid, char *buf, size_t bufsize,
			  size_t *len)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_node *n;
	int r = 0;

	pthread_rwlock_rdlock(&fs->ns);
	n = ramfs_node_find(fs, nodeid);
	if (!n) {
		r = -ESTALE;
	} else if (n->type != S_IFLNK) {
		r = -EINVAL;
	} else {
		/* target and size never change after symlink() */
		*len = n->size < bufsize ? n->size : bufsize;
		memcpy(buf, n->u.target, *len);
	}
	pthread_rwlock_unlock(&fs->ns);
	return r;
}

/* ---- open files -------------------------------------------------------- */

int ramfs_open_node(struct ramfs *fs, const struct orfa_cred *cr,
		    struct ramfs_node *n, uint32_t flags, int check,
		    void **fh, struct orfa_attr *attr)
{
	uint32_t acc = flags & O_ACCMODE;
	struct ramfs_fh *f;
	int mask = 0, r;

	if (n->type == S_IFDIR) {	/* OPENDIR */
		if (acc != O_RDONLY || (flags & O_TRUNC))
			return -EISDIR;
	} else {
		r = backend_check_open(n->type, flags);
		if (r)
			return r;
	}
	if (acc == O_RDONLY || acc == O_RDWR)
		mask |= R_OK;
	if (acc == O_WRONLY || acc == O_RDWR || (flags & O_TRUNC))
		mask |= W_OK;
	if (acc == O_ACCMODE)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->node = n;
	f->flags = flags;
	pthread_mutex_lock(&n->lock);
	r = check ? ramfs_perm_locked(n, cr, mask) : 0;
	if (r) {
		pthread_mutex_unlock(&n->lock);
		free(f);
		return r;
	}
	if ((flags & O_TRUNC) && n->type == S_IFREG) {
		/* to size 0: frees only, cannot fail */
		ramfs_file_truncate(fs, n, 0);
		ramfs_kill_suid_locked(n, cr);
		ramfs_now(&n->mtime);
		n->ctime = n->mtime;
	}
	if (attr)
		ramfs_fill_attr_locked(n, attr);
	pthread_mutex_unlock(&n->lock);
	__atomic_add_fetch(&n->nopen, 1, __ATOMIC_RELAXED);
	*fh = f;
	return 0;
}

/* OPEN (dir false: directories go through opendir) and OPENDIR. */
static int open_by_id(struct ramfs *fs, const struct orfa_cred *cr,
		      uint64_t nodeid, bool dir, uint32_t flags, void **fh,
		      struct orfa_attr *attr)
{
	struct ramfs_node *n;
	int r;

	pthread_rwlock_rdlock(&fs->ns);
	n = ramfs_node_find(fs, nodeid);
	if (!n)
		r = -ESTALE;
	else if (!dir && n->type == S_IFDIR)
		r = -EISDIR;
	else if (dir && n->type != S_IFDIR)
		r = -ENOTDIR;
	else
		r = ramfs_open_node(fs, cr, n, flags, 1, fh, attr);
	pthread_rwlock_unlock(&fs->ns);
	return r;
}

static int ramfs_open(struct orfa_backend *be, const struct orfa_cred *cr,
		      uint64_t nodeid, uint32_t flags, void **fh,
		      struct orfa_attr *attr)
{
	return open_by_id(to_fs(be), cr, nodeid, false, flags, fh, attr);
}

/* release and releasedir: the handle is freed here; the node too if it
 * was the last reference to an unlinked node. */
static void ramfs_release(struct orfa_backend *be, uint64_t nodeid, void *fh)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_fh *f = fh;

	if (!f)
		return;
	pthread_rwlock_wrlock(&fs->ns);
	__atomic_sub_fetch(&f->node->nopen, 1, __ATOMIC_RELAXED);
	ramfs_node_maybe_free(fs, f->node);
	pthread_rwlock_unlock(&fs->ns);
	free(f);
}

static int ramfs_flush(struct orfa_backend *be, uint64_t nodeid, void *fh)
{
	return 0;
}

static int ramfs_fsync(struct orfa_backend *be, uint64_t nodeid, void *fh,
		       int datasync)
{
	return 0;
}

static int ramfs_opendir(struct orfa_backend *be, const struct orfa_cred *cr,
			 uint64_t nodeid, uint32_t flags, void **dh)
{
	return open_by_id(to_fs(be), cr, nodeid, true, O_RDONLY | O_DIRECTORY,
			  dh, NULL);
}

/* ---- statfs and access ----------------------------------------------- */

static int ramfs_statfs(struct orfa_backend *be, uint64_t nodeid,
			struct orfa_statfs_out *out)
{
	struct ramfs *fs = to_fs(be);
	uint64_t limit = ramfs_capacity(fs), used, avail, nnodes;

	pthread_rwlock_rdlock(&fs->ns);
	if (!ramfs_node_find(fs, nodeid)) {
		pthread_rwlock_unlock(&fs->ns);
		return -ESTALE;
	}
	nnodes = fs->nnodes;
	pthread_rwlock_unlock(&fs->ns);
	used = __atomic_load_n(&fs->used, __ATOMIC_RELAXED);
	avail = limit > used ? limit - used : 0;
	memset(out, 0, sizeof(*out));
	out->bsize = out->frsize = RAMFS_BSIZE;
	out->blocks = limit / RAMFS_BSIZE;
	out->bfree = out->bavail = avail / RAMFS_BSIZE;
	/* a new file costs a node and a name */
	out->ffree = avail / (sizeof(struct ramfs_node) +
			      sizeof(struct ramfs_dentry) + 16);
	out->files = nnodes + out->ffree;
	out->namemax = RAMFS_NAME_MAX;
	return 0;
}

static int ramfs_access(struct orfa_backend *be, const struct orfa_cred *cr,
			uint64_t nodeid, uint32_t mask)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_node *n;
	int r;

	if (mask & ~(uint32_t)(R_OK | W_OK | X_OK))
		return -EINVAL;
	pthread_rwlock_rdlock(&fs->ns);
	n = ramfs_node_find(fs, nodeid);
	if (!n)
		r = -ESTALE;
	else
		r = mask ? ramfs_perm(n, cr, (int)mask) : 0;
	pthread_rwlock_unlock(&fs->ns);
	return r;
}

/* ---- life cycle ------------------------------------------------------ */

static void ramfs_destroy(struct orfa_backend *be)
{
	struct ramfs *fs = to_fs(be);

	for (uint32_t i = 1; i < fs->nslots; i++)
		if (fs->slots[i].node)
			ramfs_node_free(fs, fs->slots[i].node);
	free(fs->slots);
	pthread_rwlock_destroy(&fs->ns);
	free(fs);
}

static const struct orfa_backend_ops ramfs_ops = {
	.name = "ramfs",
	.destroy = ramfs_destroy,
	.lookup = ramfs_op_lookup,
	.forget = ramfs_forget,
	.getattr = ramfs_getattr,
	.setattr = ramfs_setattr,
	.readlink = ramfs_readlink,
	.mknod = ramfs_op_mknod,
	.mkdir = ramfs_op_mkdir,
	.unlink = ramfs_op_unlink,
	.rmdir = ramfs_op_rmdir,
	.symlink = ramfs_op_symlink,
	.rename = ramfs_op_rename,
	.link = ramfs_op_link,
	.open = ramfs_open,
	.create = ramfs_op_create,
	.read = ramfs_op_read,
	.write = ramfs_op_write,
	.flush = ramfs_flush,
	.release = ramfs_release,
	.fsync = ramfs_fsync,
	.opendir = ramfs_opendir,
	.readdir = ramfs_op_readdir,
	.releasedir = ramfs_release,
	.fsyncdir = ramfs_fsync,
	.statfs = ramfs_statfs,
	.setxattr = ramfs_op_setxattr,
	.getxattr = ramfs_op_getxattr,
	.listxattr = ramfs_op_listxattr,
	.removexattr = ramfs_op_removexattr,
	.access = ramfs_access,
	.fallocate = ramfs_op_fallocate,
	.lseek = ramfs_op_lseek,
	.copy_file_range = ramfs_op_copy_file_range,
};

int backend_ramfs_create(uint64_t size_limit, struct orfa_backend **out)
{
	static const struct orfa_cred owner_tmpl;
	struct orfa_cred owner = owner_tmpl;
	pthread_rwlockattr_t attr;
	struct ramfs *fs;
	uint32_t idx;
	int r;

	fs = calloc(1, sizeof(*fs));
	if (!fs) {
		log_err("ramfs: out of memory");
		return -ENOMEM;
	}
	fs->base.ops = &ramfs_ops;
	fs->limit = size_limit;
	/* writers first: a stream of lookups must not starve renames (no
	 * thread ever takes ns for reading twice, so this cannot deadlock) */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr,
			PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&fs->ns, &attr);
	pthread_rwlockattr_destroy(&attr);
	fs->slots_cap = 64;
	fs->slots = calloc(fs->slots_cap, sizeof(*fs->slots));
	if (!fs->slots) {
		r = -ENOMEM;
		goto out_free;
	}
	fs->used = fs->slots_cap * sizeof(*fs->slots);
	fs->nslots = 1;		/* slot 0: id 0 is never valid */
	owner.uid = (uint32_t)geteuid();
	owner.gid = (uint32_t)getegid();
	r = ramfs_node_new(fs, &owner, NULL, S_IFDIR, 0755, 0, &fs->root);
	if (r)
		goto out_free;
	idx = (uint32_t)fs->root->nodeid;
	if (fs->root->nodeid != ORFA_ROOT_NODEID || idx != 1) {
		r = -EINVAL;	/* cannot happen: slot 1, generation 0 */
		goto out_free;
	}
	*out = &fs->base;
	return 0;

out_free:
	log_err("ramfs: cannot create the file system (limit %llu bytes): %s",
		(unsigned long long)size_limit, strerror(-r));
	if (fs->root)
		ramfs_node_free(fs, fs->root);
	free(fs->slots);
	pthread_rwlock_destroy(&fs->ns);
	free(fs);
	return r;
}
