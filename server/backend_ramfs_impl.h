/*
 * backend_ramfs_impl.h - private structures of the in-memory backend, shared
 * by its files (and readable by its unit test):
 *   backend_ramfs.c       node table, permissions, attributes,
 *                         open/release, statfs, the ops table;
 *   backend_ramfs_dir.c   directories (hash + cookie vector), readdir and
 *                         every namespace change (create, unlink, rename..);
 *   backend_ramfs_data.c  file contents: refcounted chunks, read
 *                         (zero-copy), write, truncate, fallocate,
 *                         SEEK_DATA/HOLE, copy_file_range;
 *   backend_ramfs_rtree.c the radix tree mapping chunk index to chunk;
 *   backend_ramfs_xattr.c extended attributes.
 * Rules shared with the native backend (names, OPEN by file type, MKNOD
 * types, symlink targets) are in backend_util.c.
 * Not a public interface: the server only sees backend.h.
 *
 * Locking (one rule per object; lock order ns -> node locks, and two node
 * locks only in copy_file_range, lower address first):
 *  - fs->ns (rwlock): the node table, every directory's contents (entries,
 *    hash, cookie vector, parent, dead) and the decision to free a node.
 *    Held for writing by anything that changes a directory or frees a
 *    node (create, unlink, rename, forget, release...), for reading by
 *    lookups, readdir and operations that resolve a node id.
 *  - node->lock (mutex): the node's attributes (mode, uid, gid, nlink,
 *    size, times), file data and xattrs.  nlink is changed only with ns
 *    held for writing as well.  Operations on an open file handle (read,
 *    write, getattr/setattr with fh, fallocate, lseek, copy_file_range)
 *    take only node->lock: an open handle keeps its node alive, and the
 *    caller never releases a handle while another call on it runs.
 *  - node->nlookup and node->nopen are atomics, changed with ns held
 *    (read or write); a node is freed under ns held for writing once
 *    nlookup == 0, nlink == 0 and nopen == 0.
 *  - chunks are immutable while shared: refs > 1 means a read reply (or a
 *    copy_file_range snapshot, or another file) still points at it, so a
 *    writer copies it first (copy-on-write).  refs only grow under the
 *    owning node's lock, so a writer holding that lock that sees refs == 1
 *    may write in place.
 *  - fs->used is an atomic byte counter checked against fs->limit.
 * No lock is held across a callback into the caller (readdir batches).
 */
#ifndef ORFA_BACKEND_RAMFS_IMPL_H
#define ORFA_BACKEND_RAMFS_IMPL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include "backend.h"

/* File data is kept in chunks of 64 KiB indexed by offset >> 16.  A chunk
 * may be smaller (cap 512 B .. 64 KiB, a power of two) when only its start
 * was ever written, so small files stay small; bytes of a chunk beyond cap
 * read as zeros.  SEEK_DATA/SEEK_HOLE and st_blocks work at this
 * granularity: a present chunk is data over its whole 64 KiB. */
#define RAMFS_CHUNK_SHIFT	16
#define RAMFS_CHUNK_SIZE	(1u << RAMFS_CHUNK_SHIFT)
#define RAMFS_CHUNK_MASK	((uint64_t)RAMFS_CHUNK_SIZE - 1)
#define RAMFS_CHUNK_MIN		512u
#define RAMFS_MAX_FILESIZE	((uint64_t)INT64_MAX)
#define RAMFS_BSIZE		4096u
#define RAMFS_NAME_MAX		255u
#define RAMFS_BOGO_DIRENT	20u	/* st_size per directory entry */

/* Radix tree: 64 slots a level, height grows with the largest index. */
#define RAMFS_RT_SHIFT		6
#define RAMFS_RT_FAN		(1u << RAMFS_RT_SHIFT)
#define RAMFS_RT_MAXH		11	/* ceil(64 / 6) */

struct ramfs_chunk {
	uint32_t refs;			/* atomic; see locking above */
	uint32_t cap;			/* bytes of data[] */
	unsigned char data[];
};

struct ramfs_rt_node {
	uint32_t count;			/* non-NULL slots */
	void *slot[RAMFS_RT_FAN];
};

struct ramfs_rtree {
	unsigned height;		/* 0: empty */
	struct ramfs_rt_node *root;
};

struct ramfs_ts {
	int64_t sec;
	uint32_t nsec;
};

/* A directory entry.  cookie is unique in its directory and never
 * reused; vpos is the entry's index in the directory's cookie vector. */
struct ramfs_dentry {
	struct ramfs_dentry *hnext;
	struct ramfs_node *node;
	uint64_t cookie;
	uint64_t hash;
	size_t vpos;
	uint32_t namelen;
	char name[];			/* NUL-terminated */
};

/* Cookie vector slot: cookies increase along the vector; a removed
 * entry leaves d == NULL (its cookie kept for binary search) until the
 * vector is compacted. */
struct ramfs_dslot {
	uint64_t cookie;
	struct ramfs_dentry *d;
};

/* Cookies 1 and 2 are "." and ".."; entries start at 3. */
#define RAMFS_COOKIE_DOT	1u
#define RAMFS_COOKIE_DOTDOT	2u
#define RAMFS_COOKIE_FIRST	3u

struct ramfs_dir {			/* all fields: fs->ns */
	struct ramfs_dentry **buckets;
	uint32_t nbuckets;		/* 0 or a power of two */
	uint32_t nentries;
	struct ramfs_dslot *vec;
	size_t vlen, vcap, vdead;
	uint64_t next_cookie;
	struct ramfs_node *parent;	/* NULL once removed */
	int dead;			/* removed (rmdir or renamed over) */
};

struct ramfs_xattr {
	struct ramfs_xattr *next;
	uint32_t namelen;
	uint32_t vlen;
	char data[];			/* name, NUL, value */
};

struct ramfs_node {
	uint64_t nodeid;		/* immutable: (gen << 32) | slot */
	uint32_t type;			/* immutable: mode & S_IFMT */
	uint64_t nlookup;		/* atomic */
	uint64_t nopen;			/* atomic */
	pthread_mutex_t lock;
	/* node->lock: */
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint32_t nlink;			/* also needs ns held for writing */
	uint64_t rdev;
	uint64_t size;			/* file bytes, symlink target length */
	struct ramfs_ts atime, mtime, ctime;
	struct ramfs_xattr *xattrs;
	union {
		struct {
			struct ramfs_rtree rt;
			uint64_t alloc;		/* sum of chunk caps */
		} file;
		struct ramfs_dir dir;	/* fs->ns, not node->lock */
		char *target;		/* symlink, immutable */
	} u;
};

struct ramfs_slot {
	struct ramfs_node *node;	/* NULL: free */
	uint32_t gen;			/* bumped when the node is freed */
	uint32_t next_free;
};

struct ramfs {
	struct orfa_backend base;
	pthread_rwlock_t ns;
	uint64_t limit;			/* bytes, 0 = unlimited; immutable */
	uint64_t used;			/* atomic: bytes charged */
	/* fs->ns: */
	struct ramfs_slot *slots;
	uint32_t nslots, slots_cap;
	uint32_t free_head;		/* 0: none */
	uint64_t nnodes;
	struct ramfs_node *root;
};

/* The ramfs behind a backend handle (base is the first member). */
static inline struct ramfs *to_fs(struct orfa_backend *be)
{
	return (struct ramfs *)be;
}

/* Per-open state for files and directories (handed out as void *fh). */
struct ramfs_fh {
	struct ramfs_node *node;
	uint32_t flags;			/* open(2) flags */
};

/* ---- backend_ramfs.c: shared helpers ------------------------------- */

/* Charge / give back n bytes against the size limit; -ENOSPC if over. */
int ramfs_charge(struct ramfs *fs, uint64_t n);
void ramfs_uncharge(struct ramfs *fs, uint64_t n);
/* Zeroed allocation charged to the fs: 0, -ENOSPC or -ENOMEM. */
int ramfs_zalloc(struct ramfs *fs, size_t size, void *out);
void ramfs_free(struct ramfs *fs, void *p, size_t size);

void ramfs_now(struct ramfs_ts *ts);
int ramfs_in_group(const struct orfa_cred *cr, uint32_t gid);
/* POSIX permission check of mask (R_OK|W_OK|X_OK); node->lock held. */
int ramfs_perm_locked(const struct ramfs_node *n, const struct orfa_cred *cr,
		      int mask);
/* Same, taking node->lock itself. */
int ramfs_perm(struct ramfs_node *n, const struct orfa_cred *cr, int mask);
/* Clear set-user-ID, and set-group-ID if group-executable, as a write by
 * cr does (nothing for root); node->lock held. */
void ramfs_kill_suid_locked(struct ramfs_node *n, const struct orfa_cred *cr);
/* relatime: set atime to now if older than mtime/ctime or a day;
 * node->lock held. */
void ramfs_atime_locked(struct ramfs_node *n);
/* Bytes the file system may hold: the limit, or physical memory. */
uint64_t ramfs_capacity(const struct ramfs *fs);
void ramfs_fill_attr_locked(const struct ramfs_node *n, struct orfa_attr *a);
/* Fill *e from n and add one lookup reference; ns held. */
void ramfs_fill_entry(struct ramfs_node *n, struct orfa_entry *e);

/* ns held: node for an id, or NULL if unknown or stale. */
struct ramfs_node *ramfs_node_find(struct ramfs *fs, uint64_t nodeid);
/* ns held for writing: a new node of the given type, owned by cr, with
 * group and set-group-ID inherited from dir; nlookup 0, not yet linked. */
int ramfs_node_new(struct ramfs *fs, const struct orfa_cred *cr,
		   struct ramfs_node *dir, uint32_t type, uint32_t perm,
		   uint64_t rdev, struct ramfs_node **out);
/* ns held for writing: free n if nothing refers to it any more. */
void ramfs_node_maybe_free(struct ramfs *fs, struct ramfs_node *n);
void ramfs_node_free(struct ramfs *fs, struct ramfs_node *n);

/* The node an operation on (nodeid, fh) works on.  With fh, its node (no
 * lock taken, *ns_held = 0); else nodeid is resolved with ns held for
 * reading, which the caller drops with ramfs_node_unuse(). */
int ramfs_node_use(struct ramfs *fs, uint64_t nodeid, void *fh,
		   struct ramfs_node **np, int *ns_held);
void ramfs_node_unuse(struct ramfs *fs, int ns_held);

/* Name checks: 0, -EINVAL ('/' or NUL inside, empty), -ENAMETOOLONG. */

/* ---- backend_ramfs_dir.c ------------------------------------------- */

void ramfs_dir_init(struct ramfs_dir *d, struct ramfs_node *parent);
/* Free the entries (not their nodes) and arrays; used at destroy. */
void ramfs_dir_free(struct ramfs *fs, struct ramfs_dir *d);
struct ramfs_dentry *ramfs_dir_lookup(struct ramfs_dir *d, const char *name,
				      uint32_t namelen);

orfa_be_lookup_fn ramfs_op_lookup;
orfa_be_mknod_fn ramfs_op_mknod;
orfa_be_mkdir_fn ramfs_op_mkdir;
orfa_be_unlink_fn ramfs_op_unlink;
orfa_be_rmdir_fn ramfs_op_rmdir;
orfa_be_symlink_fn ramfs_op_symlink;
orfa_be_rename_fn ramfs_op_rename;
orfa_be_link_fn ramfs_op_link;
orfa_be_create_fn ramfs_op_create;
orfa_be_readdir_fn ramfs_op_readdir;

/* backend_ramfs.c: open a node with ns held (read or write); check 0
 * skips the permission check (the creator opening a new file). */
int ramfs_open_node(struct ramfs *fs, const struct orfa_cred *cr,
		    struct ramfs_node *n, uint32_t flags, int check,
		    void **fh, struct orfa_attr *attr);

/* ---- backend_ramfs_data.c ------------------------------------------ */

void ramfs_chunk_put(struct ramfs_chunk *c);
/* Drop all data of a file (node being freed). */
void ramfs_file_free(struct ramfs *fs, struct ramfs_node *n);
/* node->lock held: set the size, freeing data beyond it. */
int ramfs_file_truncate(struct ramfs *fs, struct ramfs_node *n,
			uint64_t size);

/* ---- backend_ramfs_rtree.c: the radix tree of a file's chunks ------ */

/* The value at idx, or NULL. */
void *ramfs_rt_get(const struct ramfs_rtree *t, uint64_t idx);
/* The leaf slot for idx if its leaf node exists (the slot may be NULL). */
void **ramfs_rt_slot(struct ramfs_rtree *t, uint64_t idx);
/* First index >= from holding a value: 1 and *idx, or 0. */
int ramfs_rt_next(const struct ramfs_rtree *t, uint64_t from, uint64_t *idx);
/* Store p at idx (whose slot is empty).  The interior nodes are all
 * allocated before anything is linked, so a failure leaves the tree as
 * it was: 0, -ENOSPC or -ENOMEM. */
int ramfs_rt_insert(struct ramfs *fs, struct ramfs_rtree *t, uint64_t idx,
		    void *p);
/* Unlink and return the value at idx (NULL if none), freeing emptied
 * interior nodes. */
void *ramfs_rt_remove(struct ramfs *fs, struct ramfs_rtree *t, uint64_t idx);
/* Free the whole tree, calling leaf(fs, arg, value) for each value
 * first; the tree is empty afterwards. */
void ramfs_rt_destroy(struct ramfs *fs, struct ramfs_rtree *t,
		      void (*leaf)(struct ramfs *fs, void *arg, void *p),
		      void *arg);

/* backend_ramfs_xattr.c (see backend.h). */
orfa_be_setxattr_fn ramfs_op_setxattr;
orfa_be_getxattr_fn ramfs_op_getxattr;
orfa_be_listxattr_fn ramfs_op_listxattr;
orfa_be_removexattr_fn ramfs_op_removexattr;

orfa_be_read_fn ramfs_op_read;
orfa_be_write_fn ramfs_op_write;
orfa_be_fallocate_fn ramfs_op_fallocate;
orfa_be_lseek_fn ramfs_op_lseek;
orfa_be_copy_file_range_fn ramfs_op_copy_file_range;

#endif /* ORFA_BACKEND_RAMFS_IMPL_H */
