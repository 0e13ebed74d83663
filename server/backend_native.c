/*
 * backend_native.c - the native backend: serves a real directory (the
 * export) through the node interface of backend.h, in the manner of
 * libfuse's example/passthrough_ll.c, confined to the export root.
 *
 * Nodes.  Each node holds an O_PATH|O_NOFOLLOW descriptor and is keyed by
 * (st_dev, st_ino) in a hash table, so hard links share one node.  Node ids
 * are (slot generation << 32 | slot index) in a slot table, never pointers
 * (a fresh slot's generation is random, then counts up on each reuse):
 * an id whose slot is free, whose generation differs or whose lookup count
 * dropped to zero gives -ESTALE.  The root is slot 1, generation 0, i.e.
 * ORFA_ROOT_NODEID, and is never freed.  Lookup counts work as in FUSE.
 * Operations in flight hold a reference (refs) so that a concurrent forget
 * never closes a descriptor under them; a node is freed, its descriptor
 * closed and its slot generation bumped when both counts reach zero.
 *
 * Containment.  The server never builds a path from client names: every
 * name is a single component (no '/', at most NAME_MAX) used with *at()
 * calls relative to the parent node's descriptor, with O_NOFOLLOW or
 * AT_SYMLINK_NOFOLLOW, so symlinks are returned as nodes and never
 * followed.  "." is the node itself, ".." of the root is the root, and any
 * other ".." result is accepted only if walking up from it (bounded depth)
 * meets the export root: a directory moved out of the export by a local
 * process cannot be used to climb out.  Files are opened for I/O by
 * reopening "/proc/self/fd/N" of a node that is not a symlink (the magic
 * link names the very inode of the node; nothing is resolved again).
 * Device nodes, FIFOs and sockets are never opened by the server (FUSE
 * clients open them locally): OPEN and CREATE on them give -ENXIO.  In
 * READDIRPLUS, "." and ".." come with node id 0 and no reference (FUSE
 * ignores them there and would never forget one).
 * Limits: mount points below the export are crossed (a file system
 * mounted inside the export is served, and st_ino values of different
 * file systems may collide in attributes); a node a client already holds
 * stays usable after a local process moves it out of the export, as with
 * passthrough_ll and virtiofsd -- a client keeps access to the subtree it
 * held, but can never climb from it to its new parents.
 *
 * Reads.  READ never copies: it returns the open descriptor, offset and
 * length (clamped to the file size at the time) for sendfile(2), and a
 * reference on the open file in out->hold that out->release drops, so the
 * descriptor stays valid until the data is sent even if RELEASE comes
 * first.  A server that prefers a buffer (small reads, RDMA) preads
 * out->len bytes from out->fd at out->off into its own buffer and then
 * calls out->release; if the file shrank meanwhile it gets fewer bytes and
 * must cope (pad or fail the request), as it must with a short sendfile.
 *
 * Credentials.  When created by a process with effective uid 0, each
 * operation taking a cred runs with the caller's fsuid, fsgid and
 * supplementary groups on the calling thread only (raw setfsuid, setfsgid
 * and setgroups system calls; glibc's setgroups() would change every
 * thread), and for callers other than uid 0 the thread's effective
 * capability set is emptied for the duration (the kernel drops only the
 * file-system capabilities on setfsuid; CAP_SYS_ADMIN would still expose
 * trusted.* xattrs and CAP_SETFCAP file capabilities).  fsuid, fsgid and
 * capabilities are restored after each operation; the supplementary group
 * list is cached per thread and left in place between operations (it has
 * no effect while fsuid is 0 with full capabilities), so a run of requests
 * from one user calls setgroups once; the thread's own capabilities are
 * read once, before its first switch.  One exception to "the kernel
 * decides": a writer who does not own a file may drop its setuid/setgid
 * bits (FUSE clients without handle_killpriv ask for this as a SETATTR
 * from the writer; a local write would do it).  Client uid 0 is served as
 * root (no root squashing).  Otherwise everything runs as the server's
 * user, as with sshfs.  The server runs with umask 0; creation modes get
 * cred->umask applied here (default ACLs are not taken into account).
 *
 * Files: this one holds the node table, lookups, attributes and the life
 * cycle; backend_native_cred.c the switch of credentials;
 * backend_native_dir.c the namespace changes (mknod, mkdir, symlink,
 * unlink, rmdir, rename, link); backend_native_io.c the operations on
 * open files and directories, xattrs, statfs, access;
 * backend_native_ids.c persistent node ids; shared declarations are in
 * backend_native_impl.h.
 *
 * Locking: nb->lock protects the node table and the counts of every node;
 * a node's fd, key, type, slot and generation are immutable.  An open
 * directory's stream is protected by its own lock.  Never both at once
 * except node table calls made while a directory lock is held
 * (directory lock first).
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "backend_native_impl.h"
#include "backend_util.h"
#include "log.h"

/* ------------------------------------------------------------------ */
/* Node table                                                           */

static inline uint64_t node_id(const struct nat_backend *nb,
			       const struct nat_node *n)
{
	return ((uint64_t)nb->slots[n->slot].gen << 32) | n->slot;
}

static size_t key_hash(dev_t dev, ino_t ino, size_t nbuckets)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull;

	h ^= (uint64_t)dev * 0xc2b2ae3d27d4eb4full;
	h ^= h >> 29;
	return (size_t)h & (nbuckets - 1);
}

/* nb->lock held. */
static struct nat_node *hash_find(struct nat_backend *nb, dev_t dev, ino_t ino)
{
	struct nat_node *n = nb->buckets[key_hash(dev, ino, nb->nbuckets)];

	while (n && !(n->dev == dev && n->ino == ino))
		n = n->hnext;
	return n;
}

/* nb->lock held.  Growth failure is harmless: chains get longer. */
static void hash_insert(struct nat_backend *nb, struct nat_node *n)
{
	size_t b;

	if (nb->nnodes >= nb->nbuckets && nb->nbuckets < ((size_t)1 << 30)) {
		size_t nsz = nb->nbuckets * 2;
		struct nat_node **nbk = calloc(nsz, sizeof(*nbk));

		if (nbk) {
			for (size_t i = 0; i < nb->nbuckets; i++) {
				struct nat_node *c = nb->buckets[i], *next;

				for (; c; c = next) {
					next = c->hnext;
					b = key_hash(c->dev, c->ino, nsz);
					c->hnext = nbk[b];
					nbk[b] = c;
				}
			}
			free(nb->buckets);
			nb->buckets = nbk;
			nb->nbuckets = nsz;
		}
	}
	b = key_hash(n->dev, n->ino, nb->nbuckets);
	n->hnext = nb->buckets[b];
	nb->buckets[b] = n;
	nb->nnodes++;
}

/* nb->lock held. */
static void hash_remove(struct nat_backend *nb, struct nat_node *n)
{
	struct nat_node **pp =
	    &nb->buckets[key_hash(n->dev, n->ino, nb->nbuckets)];

	while (*pp && *pp != n)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = n->hnext;
		nb->nnodes--;
	}
}

/* nb->lock held.  Returns a free slot index, or 0 when out of memory. */
static uint32_t slot_alloc(struct nat_backend *nb)
{
	uint32_t idx = nb->free_head;

	if (idx) {
		nb->free_head = nb->slots[idx].next_free;
		nb->slots[idx].next_free = 0;
		return idx;
	}
	if (nb->nslots == nb->slots_cap) {
		uint32_t ncap = nb->slots_cap * 2;
		struct nat_slot *ns;

		if (ncap > NAT_MAX_SLOTS || ncap <= nb->slots_cap)
			return 0;
		ns = realloc(nb->slots, (size_t)ncap * sizeof(*ns));
		if (!ns)
			return 0;
		memset(ns + nb->slots_cap, 0,
		       (size_t)(ncap - nb->slots_cap) * sizeof(*ns));
		nb->slots = ns;
		nb->slots_cap = ncap;
	}
	/* A fresh slot starts at a random nonzero generation, so ids are
	 * not small sequential numbers one client could guess to use nodes
	 * another client looked up (hardening only: any id stays inside the
	 * export). */
	nb->rng ^= nb->rng << 13;
	nb->rng ^= nb->rng >> 7;
	nb->rng ^= nb->rng << 17;
	nb->slots[nb->nslots].gen = (uint32_t)(nb->rng >> 32) | 1u;
	return nb->nslots++;
}

/* nb->lock held.  Unhooks n if nothing refers to it any more; returns it
 * for the caller to destroy after unlocking, else NULL. */
static struct nat_node *node_unhook_if_unused(struct nat_backend *nb,
					      struct nat_node *n)
{
	struct nat_slot *s;

	if (n == nb->root || n->nlookup || n->refs)
		return NULL;
	hash_remove(nb, n);
	s = &nb->slots[n->slot];
	s->node = NULL;
	s->gen++;
	s->next_free = nb->free_head;
	nb->free_head = n->slot;
	nat_ids_clear(nb, n->slot);
	return n;
}

static void node_destroy(struct nat_node *n)
{
	if (!n)
		return;
	close(n->fd);
	free(n);
}

/*
 * Resolve a client-supplied node id and take an operation reference, or
 * return NULL (the caller answers -ESTALE).  Ids are checked against the
 * slot table, never trusted.
 */
struct nat_node *nat_node_get(struct nat_backend *nb, uint64_t id)
{
	uint32_t idx = (uint32_t)id, gen = (uint32_t)(id >> 32);
	struct nat_node *n = NULL;

	pthread_mutex_lock(&nb->lock);
	if (idx != 0 && idx < nb->nslots && nb->slots[idx].gen == gen) {
		n = nb->slots[idx].node;
		if (n && (n->nlookup || n == nb->root))
			n->refs++;
		else
			n = NULL;
	}
	pthread_mutex_unlock(&nb->lock);
	return n;
}

/* Drop an operation reference taken by node_get; clears *np. */
void nat_node_put(struct nat_backend *nb, struct nat_node **np)
{
	struct nat_node *n = *np, *dead;

	if (!n)
		return;
	*np = NULL;
	pthread_mutex_lock(&nb->lock);
	if (n->refs == 0) {
		pthread_mutex_unlock(&nb->lock);
		log_err("native: node refcount underflow (slot %u)", n->slot);
		abort();
	}
	n->refs--;
	dead = node_unhook_if_unused(nb, n);
	pthread_mutex_unlock(&nb->lock);
	node_destroy(dead);
}

void nat_attr_from_stat(struct orfa_attr *a, const struct stat *st)
{
	memset(a, 0, sizeof(*a));
	a->ino = st->st_ino;
	a->size = (uint64_t)st->st_size;
	a->blocks = (uint64_t)st->st_blocks;
	a->atime = st->st_atim.tv_sec;
	a->mtime = st->st_mtim.tv_sec;
	a->ctime = st->st_ctim.tv_sec;
	a->atime_nsec = (uint32_t)st->st_atim.tv_nsec;
	a->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	a->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
	a->mode = st->st_mode;
	a->nlink = (uint32_t)st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->blksize = (uint32_t)st->st_blksize;
	a->rdev = st->st_rdev;
}

int nat_stat_node(const struct nat_node *n, struct stat *st)
{
	if (fstatat(n->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

/*
 * Hand out one lookup reference on the node for fd's inode (st is fd's
 * stat), creating the node if needed.  Takes ownership of fd in every
 * case.  Fills out (id read under the lock: once unlocked, a forget could
 * free the node).
 */
int nat_node_from_fd(struct nat_backend *nb, int fd, const struct stat *st,
		     struct orfa_entry *out)
{
	struct nat_node *n, *fresh = NULL;
	uint32_t idx;

	memset(out, 0, sizeof(*out));
	nat_attr_from_stat(&out->attr, st);
	pthread_mutex_lock(&nb->lock);
	n = hash_find(nb, st->st_dev, st->st_ino);
	if (n) {
		n->nlookup++;
		out->nodeid = node_id(nb, n);
		out->generation = nb->slots[n->slot].gen;
		pthread_mutex_unlock(&nb->lock);
		close(fd);
		return 0;
	}
	fresh = calloc(1, sizeof(*fresh));
	idx = fresh ? slot_alloc(nb) : 0;
	if (!idx) {
		pthread_mutex_unlock(&nb->lock);
		free(fresh);
		close(fd);
		log_err("native: out of memory for node table");
		return -ENOMEM;
	}
	fresh->fd = fd;
	fresh->dev = st->st_dev;
	fresh->ino = st->st_ino;
	fresh->type = st->st_mode & S_IFMT;
	fresh->slot = idx;
	fresh->nlookup = 1;
	nb->slots[idx].node = fresh;
	hash_insert(nb, fresh);
	nat_ids_save(nb, fresh);
	out->nodeid = node_id(nb, fresh);
	out->generation = nb->slots[idx].gen;
	pthread_mutex_unlock(&nb->lock);
	return 0;
}

struct nat_node *nat_find_node(struct nat_backend *nb, const struct stat *st)
{
	return hash_find(nb, st->st_dev, st->st_ino);
}

void nat_insert_node(struct nat_backend *nb, struct nat_node *n)
{
	hash_insert(nb, n);
}

/* One more lookup reference on a node the caller holds (refs). */
int nat_node_addref(struct nat_backend *nb, struct nat_node *n,
		       struct orfa_entry *out)
{
	struct stat st;
	int r = nat_stat_node(n, &st);

	if (r)
		return r;
	memset(out, 0, sizeof(*out));
	nat_attr_from_stat(&out->attr, &st);
	pthread_mutex_lock(&nb->lock);
	n->nlookup++;
	out->nodeid = node_id(nb, n);
	out->generation = nb->slots[n->slot].gen;
	pthread_mutex_unlock(&nb->lock);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Names and helpers                                                    */

/* Open the node's inode afresh with flags.  Never for symlinks: the magic
 * link would then name the symlink, which open() refuses anyway. */
int nat_node_reopen(struct nat_backend *nb, const struct nat_node *n, int flags)
{
	char name[NAT_PROC_NAME];
	int fd;

	if (S_ISLNK(n->type))
		return -ELOOP;
	proc_name(name, n->fd);
	fd = openat(nb->proc_fd, name, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/*
 * Accept the directory fd (stat st), the result of a ".." lookup, only if
 * it is the export root or walking up from it reaches the root within
 * NAT_MAX_UP_DEPTH levels.  Returns 0, -ESTALE if it lies outside the
 * export, or the error met while walking (e.g. -EACCES, -ENOENT).
 */
static int check_below_root(struct nat_backend *nb, int fd,
			    const struct stat *st)
{
	struct stat prev = *st, up_st;
	int cur = fd, r = -ESTALE;

	if (st->st_dev == nb->root_dev && st->st_ino == nb->root_ino)
		return 0;
	for (int depth = 0; depth < NAT_MAX_UP_DEPTH; depth++) {
		int up = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (up < 0) {
			r = -errno;
			break;
		}
		if (cur != fd)
			close(cur);
		cur = up;
		if (fstat(up, &up_st) < 0) {
			r = -errno;
			break;
		}
		if (up_st.st_dev == nb->root_dev &&
		    up_st.st_ino == nb->root_ino) {
			r = 0;
			break;
		}
		if (up_st.st_dev == prev.st_dev && up_st.st_ino == prev.st_ino)
			break; /* reached "/" without meeting the root */
		prev = up_st;
	}
	if (cur != fd)
		close(cur);
	return r;
}

int nat_check_below_root(struct nat_backend *nb, int fd,
			 const struct stat *st)
{
	return check_below_root(nb, fd, st);
}

/* Look name up in directory node p; cred already entered; name checked. */
int nat_lookup_name(struct nat_backend *nb, struct nat_node *p,
		    const char *name, struct orfa_entry *out)
{
	struct stat st;
	int fd, r;

	if (!S_ISDIR(p->type))
		return -ENOTDIR;
	if (is_dot(name) || (is_dotdot(name) && p == nb->root))
		return nat_node_addref(nb, p, out);
	if (is_dotdot(name))
		fd = openat(p->fd, "..",
			    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	else
		fd = openat(p->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (is_dotdot(name)) {
		r = check_below_root(nb, fd, &st);
		if (r) {
			close(fd);
			return r;
		}
	}
	return nat_node_from_fd(nb, fd, &st, out);
}

int nat_node_enter(struct nat_backend *nb, const struct orfa_cred *cr,
		   uint64_t nodeid, bool dir, struct nat_node **np,
		   struct nat_cred_state *cs)
{
	struct nat_node *n = nat_node_get(nb, nodeid);
	int r;

	if (!n)
		return -ESTALE;
	r = (dir && !S_ISDIR(n->type)) ? -ENOTDIR : nat_cred_enter(nb, cr, cs);
	if (r)
		nat_node_put(nb, &n);
	*np = n;
	return r;
}

/* Descriptor of an open file or directory handle, or -1. */
int nat_handle_fd(void *fh)
{
	const uint32_t *magic = fh;

	if (!fh)
		return -1;
	if (*magic == NAT_FILE_MAGIC)
		return ((struct nat_file *)fh)->fd;
	if (*magic == NAT_DIR_MAGIC)
		return ((struct nat_dir *)fh)->fd;
	log_err("native: bad handle %p", fh);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Node operations                                                      */

static int nat_lookup(struct orfa_backend *be, const struct orfa_cred *cr,
		      uint64_t parent, const char *name, uint32_t namelen,
		      struct orfa_entry *out)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_node *p;
	int r = backend_check_name(name, namelen);

	if (r)
		return r;
	r = nat_node_enter(nb, cr, parent, true, &p, &cs);
	if (r)
		return r;
	r = nat_lookup_name(nb, p, name, out);
	nat_cred_leave(nb, &cs);
	nat_node_put(nb, &p);
	return r;
}

static void nat_forget(struct orfa_backend *be, uint64_t nodeid,
		       uint64_t nlookup)
{
	struct nat_backend *nb = to_nb(be);
	uint32_t idx = (uint32_t)nodeid, gen = (uint32_t)(nodeid >> 32);
	struct nat_node *n, *dead = NULL;

	pthread_mutex_lock(&nb->lock);
	if (idx == 0 || idx >= nb->nslots || nb->slots[idx].gen != gen)
		goto out_unlock;
	n = nb->slots[idx].node;
	if (!n)
		goto out_unlock;
	if (nlookup > n->nlookup) {
		if (n != nb->root)
			log_debug(
			    "native: forget %llu of node %#llx holding %llu",
			    (unsigned long long)nlookup,
			    (unsigned long long)nodeid,
			    (unsigned long long)n->nlookup);
		nlookup = n->nlookup;
	}
	n->nlookup -= nlookup;
	dead = node_unhook_if_unused(nb, n);
out_unlock:
	pthread_mutex_unlock(&nb->lock);
	node_destroy(dead);
}

static int nat_getattr(struct orfa_backend *be, const struct orfa_cred *cr,
		       uint64_t nodeid, void *fh, struct orfa_attr *out)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_node *n = nat_node_get(nb, nodeid);
	struct stat st;
	int fd, r = 0;

	if (!n)
		return -ESTALE;
	fd = nat_handle_fd(fh);
	if (fd >= 0)
		r = fstat(fd, &st) < 0 ? -errno : 0;
	else
		r = nat_stat_node(n, &st);
	if (r == 0)
		nat_attr_from_stat(out, &st);
	nat_node_put(nb, &n);
	return r;
}

static int chmod_node(struct nat_backend *nb, struct nat_node *n, int hfd,
		      mode_t mode)
{
	char name[NAT_PROC_NAME];
	int r;

	if (hfd >= 0) {
		r = fchmod(hfd, mode);
	} else {
		proc_name(name, n->fd);
		r = fchmodat(nb->proc_fd, name, mode, 0);
	}
	return r < 0 ? -errno : 0;
}

/*
 * Clear set-user-ID/set-group-ID bits for a caller who may write the file
 * but does not own it, as the kernel does on a local write.  A FUSE
 * client without handle_killpriv asks for this as a SETATTR of the mode
 * on behalf of the writer (fuse_setattr, ATTR_KILL_SUID), which a plain
 * chmod as the writer would refuse.  Only bits are dropped, only for a
 * writer; cred is entered on entry and on return.
 */
static int drop_suidgid_for_writer(struct nat_backend *nb,
				   const struct orfa_cred *cr,
				   struct nat_cred_state *cs,
				   struct nat_node *n, int hfd, mode_t want)
{
	int r, r2;

	if (!S_ISREG(n->type) ||
	    faccessat(n->fd, "", W_OK, AT_EMPTY_PATH | AT_EACCESS) < 0)
		return -EPERM;
	nat_cred_leave(nb, cs);
	r = chmod_node(nb, n, hfd, want);
	r2 = nat_cred_enter(nb, cr, cs);
	return r ? r : r2;
}

/* SETATTR of the mode; cred entered (cs). */
static int set_mode(struct nat_backend *nb, const struct orfa_cred *cr,
		    struct nat_cred_state *cs, struct nat_node *n, int hfd,
		    mode_t want)
{
	struct stat st;
	int r;

	if (S_ISLNK(n->type))
		return -EOPNOTSUPP; /* Linux has no lchmod */
	r = chmod_node(nb, n, hfd, want);
	if (r == -EPERM && nat_stat_node(n, &st) == 0 &&
	    backend_only_drops_suidgid(st.st_mode & 07777, want))
		r = drop_suidgid_for_writer(nb, cr, cs, n, hfd, want);
	return r;
}

/* SETATTR of the size: through the open handle if it may write, else a
 * fresh write-only descriptor. */
static int set_size(struct nat_backend *nb, struct nat_node *n, int hfd,
		    uint64_t size)
{
	int fd = -1, r;

	if (size > (uint64_t)INT64_MAX)
		return -EFBIG;
	if (S_ISDIR(n->type))
		return -EISDIR;
	if (!S_ISREG(n->type))
		return -EINVAL;
	if (hfd >= 0) {
		int acc = fcntl(hfd, F_GETFL);

		if (acc >= 0 && (acc & O_ACCMODE) != O_RDONLY)
			fd = hfd;
	}
	if (fd < 0) {
		fd = nat_node_reopen(nb, n, O_WRONLY | O_LARGEFILE);
		if (fd < 0)
			return fd;
	}
	r = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
	if (fd != hfd)
		close(fd);
	return r;
}

/* One timestamp of a SETATTR: UTIME_NOW, the given time or UTIME_OMIT. */
static int set_time_spec(struct timespec *ts, uint32_t v, uint32_t now_bit,
			 uint32_t set_bit, uint64_t sec, uint32_t nsec)
{
	if (v & now_bit) {
		ts->tv_nsec = UTIME_NOW;
	} else if (v & set_bit) {
		if (nsec >= 1000000000u)
			return -EINVAL;
		ts->tv_sec = (time_t)sec;
		ts->tv_nsec = nsec;
	}
	return 0;
}

/* SETATTR of atime and/or mtime. */
static int set_times(struct nat_backend *nb, struct nat_node *n, int hfd,
		     const struct orfa_setattr_req *in)
{
	struct timespec tv[2] = {
	    {.tv_nsec = UTIME_OMIT},
	    {.tv_nsec = UTIME_OMIT},
	};
	char name[NAT_PROC_NAME];
	int r;

	r = set_time_spec(&tv[0], in->valid, ORFA_SET_ATIME_NOW,
			  ORFA_SET_ATIME, in->atime, in->atime_nsec);
	if (!r)
		r = set_time_spec(&tv[1], in->valid, ORFA_SET_MTIME_NOW,
				  ORFA_SET_MTIME, in->mtime, in->mtime_nsec);
	if (r)
		return r;
	proc_name(name, n->fd);
	if (hfd >= 0)
		r = futimens(hfd, tv);
	else if (S_ISLNK(n->type))
		r = utimensat(n->fd, "", tv,
			      AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
	else
		r = utimensat(nb->proc_fd, name, tv, 0);
	return r < 0 ? -errno : 0;
}

/* Clear set-user-ID, and set-group-ID if group-executable, as the kernel
 * does on write or truncate.  Best effort: when the caller may not, the
 * kernel has already done it for the write itself. */
static void kill_suidgid(struct nat_backend *nb, const struct orfa_cred *cr,
			 struct nat_cred_state *cs, struct nat_node *n,
			 int hfd)
{
	struct stat st;
	mode_t have, want;

	if (!S_ISREG(n->type) || nat_stat_node(n, &st) != 0)
		return;
	have = st.st_mode & 07777;
	want = have & ~S_ISUID;
	if (want & S_IXGRP)
		want &= ~S_ISGID;
	if (want != have && chmod_node(nb, n, hfd, want) == -EPERM)
		(void)drop_suidgid_for_writer(nb, cr, cs, n, hfd, want);
}

static int do_setattr(struct nat_backend *nb, const struct orfa_cred *cr,
		      struct nat_cred_state *cs, struct nat_node *n, int hfd,
		      const struct orfa_setattr_req *in)
{
	uint32_t v = in->valid;
	int r;

	if (v & ORFA_SET_MODE) {
		r = set_mode(nb, cr, cs, n, hfd, in->mode & 07777);
		if (r)
			return r;
	}
	if (v & (ORFA_SET_UID | ORFA_SET_GID)) {
		uid_t uid = (v & ORFA_SET_UID) ? (uid_t)in->uid : (uid_t)-1;
		gid_t gid = (v & ORFA_SET_GID) ? (gid_t)in->gid : (gid_t)-1;

		if (fchownat(n->fd, "", uid, gid,
			     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	if (v & ORFA_SET_SIZE) {
		r = set_size(nb, n, hfd, in->size);
		if (r)
			return r;
	}
	if (v & (ORFA_SET_ATIME | ORFA_SET_MTIME | ORFA_SET_ATIME_NOW |
		 ORFA_SET_MTIME_NOW)) {
		r = set_times(nb, n, hfd, in);
		if (r)
			return r;
	}
	/* ORFA_SET_CTIME: the kernel sets ctime itself; nothing to do. */
	if ((v & ORFA_SET_KILL_SUIDGID) && !(v & ORFA_SET_MODE))
		kill_suidgid(nb, cr, cs, n, hfd);
	return 0;
}

static int nat_setattr(struct orfa_backend *be, const struct orfa_cred *cr,
		       uint64_t nodeid, void *fh,
		       const struct orfa_setattr_req *in, struct orfa_attr *out)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_node *n;
	struct stat st;
	int r;

	if (in->valid & ~ORFA_SET_ALL)
		return -EINVAL;
	r = nat_node_enter(nb, cr, nodeid, false, &n, &cs);
	if (r)
		return r;
	r = do_setattr(nb, cr, &cs, n, nat_handle_fd(fh), in);
	nat_cred_leave(nb, &cs);
	if (r == 0 && (r = nat_stat_node(n, &st)) == 0 && out)
		nat_attr_from_stat(out, &st);
	nat_node_put(nb, &n);
	return r;
}

static int nat_readlink(struct orfa_backend *be, const struct orfa_cred *cr,
			uint64_t nodeid, char *buf, size_t bufsize, size_t *len)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_node *n = nat_node_get(nb, nodeid);
	ssize_t got;
	int r = 0;

	if (!n)
		return -ESTALE;
	if (!S_ISLNK(n->type)) {
		r = -EINVAL;
	} else {
		got = readlinkat(n->fd, "", buf, bufsize);
		if (got < 0)
			r = -errno;
		else
			*len = (size_t)got;
	}
	nat_node_put(nb, &n);
	return r;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                           */

/* Open handles must have been released by the caller; nodes still held by
 * clients are dropped here. */
static void nat_destroy(struct orfa_backend *be)
{
	struct nat_backend *nb = to_nb(be);

	if (!nb)
		return;
	for (uint32_t i = 1; i < nb->nslots; i++)
		node_destroy(nb->slots[i].node);
	free(nb->slots);
	free(nb->buckets);
	if (nb->proc_fd >= 0)
		close(nb->proc_fd);
	if (nb->ids_fd >= 0)
		close(nb->ids_fd);
	pthread_mutex_destroy(&nb->lock);
	free(nb);
}

/* The ids restored from the state file (backend.h, orfa_be_restored_fn). */
static void nat_restored(struct orfa_backend *be,
			 void (*fn)(uint64_t nodeid, void *arg), void *arg)
{
	struct nat_backend *nb = to_nb(be);

	pthread_mutex_lock(&nb->lock);
	for (uint32_t i = ORFA_ROOT_NODEID + 1; i < nb->nslots; i++) {
		const struct nat_node *n = nb->slots[i].node;

		if (n && n->restored)
			fn(node_id(nb, n), arg);
	}
	pthread_mutex_unlock(&nb->lock);
}

static const struct orfa_backend_ops native_ops = {
    .name = "native",
    .restored = nat_restored,
    .destroy = nat_destroy,
    .lookup = nat_lookup,
    .forget = nat_forget,
    .getattr = nat_getattr,
    .setattr = nat_setattr,
    .readlink = nat_readlink,
    .mknod = nat_mknod,
    .mkdir = nat_mkdir,
    .unlink = nat_unlink,
    .rmdir = nat_rmdir,
    .symlink = nat_symlink,
    .rename = nat_rename,
    .link = nat_link,
    .open = nat_open,
    .create = nat_create,
    .read = nat_read,
    .write = nat_write,
    .write_fd = nat_write_fd,
    .flush = nat_flush,
    .release = nat_release,
    .fsync = nat_fsync,
    .opendir = nat_opendir,
    .readdir = nat_readdir,
    .releasedir = nat_releasedir,
    .fsyncdir = nat_fsyncdir,
    .statfs = nat_statfs,
    .setxattr = nat_setxattr,
    .getxattr = nat_getxattr,
    .listxattr = nat_listxattr,
    .removexattr = nat_removexattr,
    .access = nat_access,
    .fallocate = nat_fallocate,
    .lseek = nat_lseek,
    .copy_file_range = nat_copy_file_range,
};

/* A backend with empty tables (and a seeded generator), or NULL. */
static struct nat_backend *nb_alloc(void)
{
	struct nat_backend *nb = calloc(1, sizeof(*nb));

	if (!nb)
		return NULL;
	nb->base.ops = &native_ops;
	nb->proc_fd = -1;
	nb->ids_fd = -1;
	pthread_mutex_init(&nb->lock, NULL);
	nb->slots_cap = 1024;
	nb->slots = calloc(nb->slots_cap, sizeof(*nb->slots));
	nb->nbuckets = 1024;
	nb->buckets = calloc(nb->nbuckets, sizeof(*nb->buckets));
	if (getrandom(&nb->rng, sizeof(nb->rng), GRND_NONBLOCK) !=
	    sizeof(nb->rng))
		nb->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	nb->rng |= 1; /* xorshift needs a nonzero state */
	if (!nb->slots || !nb->buckets) {
		nat_destroy(&nb->base);
		return NULL;
	}
	return nb;
}

/* Open the export root and /proc/self/fd, and make rn the root node;
 * a message for the user is logged on failure (rn is then left alone). */
static int root_open(struct nat_backend *nb, const char *root,
		     struct nat_node *rn)
{
	struct stat st;
	int fd, r;

	/* The root path is resolved once, by the administrator's choice
	 * (symlinks in it are followed); from here on only descriptors. */
	fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		log_err("native: cannot open export %s: %s", root,
			strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	nb->proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (nb->proc_fd < 0) {
		r = -errno;
		log_err("native: /proc/self/fd: %s (is /proc mounted?)",
			strerror(-r));
		close(fd);
		return r;
	}
	rn->fd = fd;
	rn->dev = st.st_dev;
	rn->ino = st.st_ino;
	rn->type = S_IFDIR;
	rn->slot = ORFA_ROOT_NODEID;
	nb->root = rn;
	nb->root_dev = st.st_dev;
	nb->root_ino = st.st_ino;
	nb->slots[ORFA_ROOT_NODEID].node = rn;
	nb->nslots = ORFA_ROOT_NODEID + 1; /* slot 0 is never used */
	hash_insert(nb, rn);
	return 0;
}

int backend_native_create(const char *root, struct orfa_backend **out)
{
	struct nat_backend *nb;
	struct nat_node *rn;
	int r;

	*out = NULL;
	if (!root || !*root) {
		log_err("native: no export directory given");
		return -EINVAL;
	}
	nb = nb_alloc();
	rn = calloc(1, sizeof(*rn));
	if (!nb || !rn) {
		if (nb)
			nat_destroy(&nb->base);
		free(rn);
		return -ENOMEM;
	}
	r = root_open(nb, root, rn);
	if (r) {
		free(rn);
		nat_destroy(&nb->base);
		return r;
	}
	nb->srv_uid = geteuid();
	nb->srv_gid = getegid();
	nb->switch_creds = nb->srv_uid == 0;
	log_info("native: exporting %s%s", root,
		 nb->switch_creds ? " (per-user credentials)"
				  : " (as the server's user)");
	*out = &nb->base;
	return 0;
}

size_t backend_native_node_count(struct orfa_backend *be)
{
	struct nat_backend *nb = to_nb(be);
	size_t n;

	pthread_mutex_lock(&nb->lock);
	n = nb->nnodes;
	pthread_mutex_unlock(&nb->lock);
	return n;
}

int backend_native_switches_creds(struct orfa_backend *be)
{
	return to_nb(be)->switch_creds;
}
