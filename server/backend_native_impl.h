/*
 * backend_native_impl.h - private declarations shared by the native
 * backend's sources (backend_native.c: node table, lookups, attributes,
 * life cycle; backend_native_cred.c: per-operation credentials;
 * backend_native_dir.c: namespace changes; backend_native_io.c: open
 * files, directories, xattrs and the rest; backend_native_ids.c:
 * persistent ids) and its unit test.  The server uses backend.h only.
 */
#ifndef ORFA_BACKEND_NATIVE_IMPL_H
#define ORFA_BACKEND_NATIVE_IMPL_H

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <linux/capability.h>

#include "backend.h"

#define NAT_MAX_UP_DEPTH 4096 /* ".." check: levels walked */
#define NAT_MAX_SLOTS (1u << 31)
#define NAT_FILE_MAGIC 0x4e415446u /* "NATF" */
#define NAT_DIR_MAGIC 0x4e415444u  /* "NATD" */
#define NAT_PROC_NAME 16	   /* decimal fd + NUL */
#define NAT_PROC_PATH 40	   /* "/proc/self/fd/" fd NUL */

struct nat_node {
	int fd;	   /* O_PATH|O_NOFOLLOW; immutable, owned */
	dev_t dev; /* hash key; immutable */
	ino_t ino;
	mode_t type;		/* S_IFMT bits; immutable */
	uint32_t slot;		/* index in nb->slots; immutable */
	bool restored;		/* restored from the state file; immutable */
	uint64_t nlookup;	/* nb->lock: client references */
	uint64_t refs;		/* nb->lock: operations in flight */
	struct nat_node *hnext; /* nb->lock: hash chain */
};

struct nat_slot {
	struct nat_node *node; /* NULL when free */
	uint32_t gen;	       /* bumped each time the slot is freed */
	uint32_t next_free;    /* free list link, 0 = end */
};

struct nat_backend {
	struct orfa_backend base;
	int proc_fd;	   /* "/proc/self/fd", O_PATH; immutable */
	bool switch_creds; /* immutable */
	uid_t srv_uid;	   /* fsuid/fsgid to return to; immutable */
	gid_t srv_gid;
	dev_t root_dev; /* immutable */
	ino_t root_ino;
	struct nat_node *root; /* immutable, never freed */

	pthread_mutex_t lock; /* protects the fields below and counts */
	struct nat_slot *slots;
	uint32_t nslots; /* slots in use or on the free list */
	uint32_t slots_cap;
	uint32_t free_head; /* 0 = none (slot 0 is never used) */
	uint64_t rng;	    /* xorshift state for first generations */
	struct nat_node **buckets;
	size_t nbuckets; /* power of two */
	size_t nnodes;
	int ids_fd; /* state file of persistent ids, or -1 (immutable once
		     * set, see backend_native_ids.c) */
};

/* Per-open state of a file.  refs: one for the open itself (dropped by
 * release) and one per READ whose data is still to be sent. */
struct nat_file {
	uint32_t magic;
	int fd;	   /* immutable until freed */
	int flags; /* open flags actually used; immutable */
	atomic_uint refs;
};

struct nat_dir {
	uint32_t magic;
	int fd;		      /* dirfd(dp); immutable */
	pthread_mutex_t lock; /* protects dp, entry, offset */
	DIR *dp;
	struct dirent *entry; /* read but not yet handed out, or NULL */
	off_t offset;	      /* cookie of the position of dp (+entry) */
};

struct nat_cred_state {
	bool switched; /* fsuid/fsgid changed */
	bool caps_dropped;
};

static inline struct nat_backend *to_nb(struct orfa_backend *be)
{
	return (struct nat_backend *)be;
}

static inline bool is_dot(const char *name)
{
	return name[0] == '.' && name[1] == '\0';
}

static inline bool is_dotdot(const char *name)
{
	return name[0] == '.' && name[1] == '.' && name[2] == '\0';
}

static inline void proc_name(char buf[NAT_PROC_NAME], int fd)
{
	snprintf(buf, NAT_PROC_NAME, "%d", fd);
}

static inline void proc_path(char buf[NAT_PROC_PATH], int fd)
{
	snprintf(buf, NAT_PROC_PATH, "/proc/self/fd/%d", fd);
}

static inline mode_t cred_umask(const struct orfa_cred *cr)
{
	return cr ? (mode_t)(cr->umask & 0777) : 0;
}

/* Resolve a client-supplied node id and take an operation reference, or
 * NULL (answer -ESTALE): free slot, wrong generation, forgotten node. */
struct nat_node *nat_node_get(struct nat_backend *nb, uint64_t id);
/* Drop a reference taken by nat_node_get; clears *np.  May free the
 * node (and close its descriptor) if the client forgot it meanwhile. */
void nat_node_put(struct nat_backend *nb, struct nat_node **np);
/* Hand out one lookup reference on the node of fd's inode (st: its
 * stat), creating the node if needed; takes ownership of fd always. */
int nat_node_from_fd(struct nat_backend *nb, int fd, const struct stat *st,
		     struct orfa_entry *out);
void nat_attr_from_stat(struct orfa_attr *a, const struct stat *st);
/* Become cr on this thread for one operation (backend_native_cred.c);
 * NULL cr keeps the server's identity.  0 or a negative errno (identity
 * then unchanged).  Pair with nat_cred_leave. */
int nat_cred_enter(struct nat_backend *nb, const struct orfa_cred *cr,
		   struct nat_cred_state *cs);
void nat_cred_leave(struct nat_backend *nb, struct nat_cred_state *cs);
/* Resolve node id and enter cr: 0 with *np held (nat_cred_leave, then
 * nat_node_put it), or -ESTALE, -ENOTDIR (dir set and not a directory)
 * or nat_cred_enter's error, with nothing held or entered. */
int nat_node_enter(struct nat_backend *nb, const struct orfa_cred *cr,
		   uint64_t nodeid, bool dir, struct nat_node **np,
		   struct nat_cred_state *cs);
/* Open the inode of a node that is not a symlink through its
 * /proc/self/fd magic link; returns a descriptor or a negative errno. */
int nat_node_reopen(struct nat_backend *nb, const struct nat_node *n,
		    int flags);
/* Look a checked name up in directory node p ("." and ".." included,
 * confined to the export); cred already entered.  Fills out with one
 * lookup reference. */
int nat_lookup_name(struct nat_backend *nb, struct nat_node *p,
		    const char *name, struct orfa_entry *out);
/* Descriptor of an open file or directory handle, or -1 (NULL). */
int nat_handle_fd(void *fh);
/* stat of the node itself (never follows a symlink). */
int nat_stat_node(const struct nat_node *n, struct stat *st);

/* The node of st's inode, or NULL; nb->lock held. */
struct nat_node *nat_find_node(struct nat_backend *nb, const struct stat *st);
/* Put a new node in the inode hash; nb->lock held. */
void nat_insert_node(struct nat_backend *nb, struct nat_node *n);
/* 0 when directory fd (stat st) lies below the export root (walking
 * "..", bounded), -ESTALE when outside, or the error met. */
int nat_check_below_root(struct nat_backend *nb, int fd,
			 const struct stat *st);
/* Persistent ids (backend_native_ids.c), nb->lock held, no-ops when ids
 * are not persistent: record the handle of a node that just got its slot;
 * mark slot free (after its generation was bumped). */
void nat_ids_save(struct nat_backend *nb, const struct nat_node *n);
void nat_ids_clear(struct nat_backend *nb, uint32_t slot);

/* One more lookup reference on a node the caller holds (refs); fills
 * out. */
int nat_node_addref(struct nat_backend *nb, struct nat_node *n,
		    struct orfa_entry *out);

/* Operations implemented in backend_native_dir.c (see backend.h). */
orfa_be_mknod_fn nat_mknod;
orfa_be_mkdir_fn nat_mkdir;
orfa_be_symlink_fn nat_symlink;
orfa_be_unlink_fn nat_unlink;
orfa_be_rmdir_fn nat_rmdir;
orfa_be_rename_fn nat_rename;
orfa_be_link_fn nat_link;

/* Operations implemented in backend_native_io.c (see backend.h). */
orfa_be_open_fn nat_open;
orfa_be_create_fn nat_create;
orfa_be_read_fn nat_read;
orfa_be_write_fn nat_write;
orfa_be_write_fd_fn nat_write_fd;
orfa_be_flush_fn nat_flush;
orfa_be_release_fn nat_release;
orfa_be_fsync_fn nat_fsync;
orfa_be_opendir_fn nat_opendir;
orfa_be_readdir_fn nat_readdir;
orfa_be_releasedir_fn nat_releasedir;
orfa_be_fsyncdir_fn nat_fsyncdir;
orfa_be_statfs_fn nat_statfs;
orfa_be_setxattr_fn nat_setxattr;
orfa_be_getxattr_fn nat_getxattr;
orfa_be_listxattr_fn nat_listxattr;
orfa_be_removexattr_fn nat_removexattr;
orfa_be_access_fn nat_access;
orfa_be_fallocate_fn nat_fallocate;
orfa_be_lseek_fn nat_lseek;
orfa_be_copy_file_range_fn nat_copy_file_range;

/* For the unit test: nodes in the table, the root included (>= 1). */
size_t backend_native_node_count(struct orfa_backend *be);
/* For the unit test: nonzero when requests run with the caller's
 * fsuid/fsgid/groups (the backend was created with effective uid 0). */
int backend_native_switches_creds(struct orfa_backend *be);

#endif /* ORFA_BACKEND_NATIVE_IMPL_H */
