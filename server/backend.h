/*
 * backend.h - the one storage backend interface of orfad.
 *
 * A backend is a node-based file system, shaped like FUSE's low-level API:
 * nodes are named by 64-bit ids the backend hands out (lookup counts as in
 * FUSE: every call that returns a struct orfa_entry adds one reference,
 * forget takes them back), open files and directories by an opaque
 * per-open pointer the backend allocates in open/create/opendir and frees
 * in release/releasedir.  Two implementations: backend_native.c (a real
 * directory, confined to its root with *at() calls on O_PATH descriptors)
 * and backend_ramfs.c (an in-memory POSIX file system).
 *
 * Contract for every operation:
 *  - returns 0 or a negative errno (never sets errno for the caller);
 *  - cred is the caller's identity; the backend enforces permissions as the
 *    file system would for that user (native: by switching the thread's
 *    fsuid/fsgid/groups when orfad runs as root; ramfs: by its own checks),
 *    and applies cred->umask to the mode of anything it creates;
 *  - names are NUL-terminated, namelen = strlen(name); a name containing
 *    '/' or NUL, or not ending at namelen, is refused with -EINVAL, one
 *    longer than NAME_MAX with -ENAMETOOLONG, an empty one with -ENOENT;
 *    "." and ".." resolve within the export and never above its root,
 *    and each operation answers them as Linux does (backend_util.h has
 *    these rules, written once for both backends;
 *    test/unit/test_backend_contract.c checks them on both);
 *  - an unknown or stale node id gives -ESTALE;
 *  - operations may be called from several threads at once; the backend
 *    does its own locking.
 * Locks (GETLK/SETLK/FLOCK) are not backend operations: the server keeps
 * them in server/locks.c so both backends share one implementation.
 * Every slot is filled: orfa_backend_fill_defaults() puts an -ENOSYS
 * stub into each NULL slot, so callers never test for NULL -- except
 * write_fd, an optional fast path that may stay NULL.
 */
#ifndef ORFA_BACKEND_H
#define ORFA_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "orfa_proto.h"

#define ORFA_ROOT_NODEID	1u	/* every backend's root node */
#define ORFA_READ_MAX_IOV	64

struct orfa_backend;

/*
 * Where read data is.  The caller passes a buffer of at least size bytes in
 * buf.  The backend either fills buf and points iov[0] at it, or points
 * iov[] at its own memory and sets release/hold so the caller can return it
 * once sent, or (native backend) sets fd/off for sendfile, leaving iovcnt 0.
 * len is the byte count (0 at or beyond end of file).
 * buf may be NULL (the server tries that first, to avoid allocating a
 * buffer that is rarely used): a backend that would have to copy into buf
 * then returns -ENOBUFS, having released anything it took, and the caller
 * asks again with a buffer.
 */
struct orfa_read_out {
	struct iovec iov[ORFA_READ_MAX_IOV];
	int iovcnt;
	int fd;				/* -1 unless data is a file range */
	off_t off;
	size_t len;
	void (*release)(void *hold);	/* NULL if nothing to release */
	void *hold;
};

/*
 * The data of a WRITE still in the client's connection (see write_fd).
 * to_fd moves all len bytes into fd at off (the backend's descriptor,
 * not opened with O_APPEND) and returns how many the file took, from off
 * on: fewer than len only when a write failed, the rest being dropped;
 * or a negative errno when it took none.  Call it at most once; it may
 * wait for the client to send the data.  Valid during write_fd only.
 */
struct orfa_wsrc {
	size_t len;
	ssize_t (*to_fd)(struct orfa_wsrc *src, int fd, off_t off);
};

/*
 * Directory listing callback.  Called once per entry, in cookie order,
 * starting after the given cookie; e is non-NULL for READDIRPLUS (and then
 * carries one lookup reference).  Returns 0 to continue, 1 when the reply
 * is full: the entry was not taken, and the callback itself has already
 * given back e's reference, so the backend just stops.
 */
typedef int (*orfa_fill_fn)(void *ctx, const char *name, uint32_t namelen,
			    uint32_t type, uint64_t ino, uint64_t next_cookie,
			    const struct orfa_entry *e);

/*
 * The type of each operation, so that an implementation can declare its
 * functions as "orfa_be_lookup_fn ramfs_op_lookup;" (the slots below are
 * pointers to these; their contracts are written beside the slots).
 */
typedef void orfa_be_destroy_fn(struct orfa_backend *be);
typedef int orfa_be_lookup_fn(struct orfa_backend *be,
			      const struct orfa_cred *cr, uint64_t parent,
			      const char *name, uint32_t namelen,
			      struct orfa_entry *out);
typedef void orfa_be_forget_fn(struct orfa_backend *be, uint64_t nodeid,
			       uint64_t nlookup);
typedef int orfa_be_getattr_fn(struct orfa_backend *be,
			       const struct orfa_cred *cr, uint64_t nodeid,
			       void *fh, struct orfa_attr *out);
typedef int orfa_be_setattr_fn(struct orfa_backend *be,
			       const struct orfa_cred *cr, uint64_t nodeid,
			       void *fh, const struct orfa_setattr_req *in,
			       struct orfa_attr *out);
typedef int orfa_be_readlink_fn(struct orfa_backend *be,
				const struct orfa_cred *cr, uint64_t nodeid,
				char *buf, size_t bufsize, size_t *len);
typedef int orfa_be_mknod_fn(struct orfa_backend *be,
			     const struct orfa_cred *cr, uint64_t parent,
			     const char *name, uint32_t namelen, uint32_t mode,
			     uint64_t rdev, struct orfa_entry *out);
typedef int orfa_be_mkdir_fn(struct orfa_backend *be,
			     const struct orfa_cred *cr, uint64_t parent,
			     const char *name, uint32_t namelen, uint32_t mode,
			     struct orfa_entry *out);
typedef int orfa_be_unlink_fn(struct orfa_backend *be,
			      const struct orfa_cred *cr, uint64_t parent,
			      const char *name, uint32_t namelen);
typedef int orfa_be_rmdir_fn(struct orfa_backend *be,
			     const struct orfa_cred *cr, uint64_t parent,
			     const char *name, uint32_t namelen);
typedef int orfa_be_symlink_fn(struct orfa_backend *be,
			       const struct orfa_cred *cr, uint64_t parent,
			       const char *name, uint32_t namelen,
			       const char *target, uint32_t targetlen,
			       struct orfa_entry *out);
typedef int orfa_be_rename_fn(struct orfa_backend *be,
			      const struct orfa_cred *cr, uint64_t parent,
			      const char *name, uint32_t namelen,
			      uint64_t newparent, const char *newname,
			      uint32_t newnamelen, uint32_t flags);
typedef int orfa_be_link_fn(struct orfa_backend *be, const struct orfa_cred *cr,
			    uint64_t nodeid, uint64_t newparent,
			    const char *newname, uint32_t newnamelen,
			    struct orfa_entry *out);
typedef int orfa_be_open_fn(struct orfa_backend *be, const struct orfa_cred *cr,
			    uint64_t nodeid, uint32_t flags, void **fh,
			    struct orfa_attr *attr);
typedef int orfa_be_create_fn(struct orfa_backend *be,
			      const struct orfa_cred *cr, uint64_t parent,
			      const char *name, uint32_t namelen, uint32_t mode,
			      uint32_t flags, struct orfa_entry *out,
			      void **fh);
typedef int orfa_be_read_fn(struct orfa_backend *be, uint64_t nodeid, void *fh,
			    uint64_t offset, uint32_t size, void *buf,
			    struct orfa_read_out *out);
typedef int orfa_be_write_fn(struct orfa_backend *be,
			     const struct orfa_cred *cr, uint64_t nodeid,
			     void *fh, uint64_t offset, const struct iovec *iov,
			     int iovcnt, uint32_t flags, uint64_t *written,
			     struct orfa_attr *attr);
typedef int orfa_be_write_fd_fn(struct orfa_backend *be,
				const struct orfa_cred *cr, uint64_t nodeid,
				void *fh, uint64_t offset,
				struct orfa_wsrc *src, uint32_t flags,
				uint64_t *written, struct orfa_attr *attr);
typedef int orfa_be_flush_fn(struct orfa_backend *be, uint64_t nodeid,
			     void *fh);
typedef void orfa_be_release_fn(struct orfa_backend *be, uint64_t nodeid,
				void *fh);
typedef int orfa_be_fsync_fn(struct orfa_backend *be, uint64_t nodeid, void *fh,
			     int datasync);
typedef int orfa_be_opendir_fn(struct orfa_backend *be,
			       const struct orfa_cred *cr, uint64_t nodeid,
			       uint32_t flags, void **dh);
typedef int orfa_be_readdir_fn(struct orfa_backend *be,
			       const struct orfa_cred *cr, uint64_t nodeid,
			       void *dh, uint64_t cookie, int plus,
			       orfa_fill_fn fill, void *ctx);
typedef void orfa_be_releasedir_fn(struct orfa_backend *be, uint64_t nodeid,
				   void *dh);
typedef int orfa_be_fsyncdir_fn(struct orfa_backend *be, uint64_t nodeid,
				void *dh, int datasync);
typedef int orfa_be_statfs_fn(struct orfa_backend *be, uint64_t nodeid,
			      struct orfa_statfs_out *out);
typedef int orfa_be_setxattr_fn(struct orfa_backend *be,
				const struct orfa_cred *cr, uint64_t nodeid,
				const char *name, const void *value,
				size_t size, uint32_t flags);
typedef int orfa_be_getxattr_fn(struct orfa_backend *be,
				const struct orfa_cred *cr, uint64_t nodeid,
				const char *name, void *buf, size_t size,
				size_t *len);
typedef int orfa_be_listxattr_fn(struct orfa_backend *be,
				 const struct orfa_cred *cr, uint64_t nodeid,
				 void *buf, size_t size, size_t *len);
typedef int orfa_be_removexattr_fn(struct orfa_backend *be,
				   const struct orfa_cred *cr, uint64_t nodeid,
				   const char *name);
typedef int orfa_be_access_fn(struct orfa_backend *be,
			      const struct orfa_cred *cr, uint64_t nodeid,
			      uint32_t mask);
typedef int orfa_be_fallocate_fn(struct orfa_backend *be,
				 const struct orfa_cred *cr, uint64_t nodeid,
				 void *fh, uint32_t mode, uint64_t offset,
				 uint64_t length, struct orfa_attr *attr);
typedef int orfa_be_lseek_fn(struct orfa_backend *be, uint64_t nodeid, void *fh,
			     uint64_t offset, uint32_t whence,
			     uint64_t *result);
typedef int orfa_be_copy_file_range_fn(struct orfa_backend *be,
				       const struct orfa_cred *cr,
				       uint64_t nodeid_in, void *fh_in,
				       uint64_t off_in, uint64_t nodeid_out,
				       void *fh_out, uint64_t off_out,
				       uint64_t len, uint32_t flags,
				       uint64_t *copied,
				       struct orfa_attr *attr_out);

/*
 * The node ids a previous run handed out that this backend honours again
 * (persistent ids restored at start, backend_native_set_state): fn(nodeid,
 * arg) for each, under the backend's lock (fn must not call the backend).
 * Optional, the one slot callers test for NULL: only a backend with
 * persistent ids has it (orfa_backend_fill_defaults gives a stub that
 * reports none).
 */
typedef void orfa_be_restored_fn(struct orfa_backend *be,
				 void (*fn)(uint64_t nodeid, void *arg),
				 void *arg);

struct orfa_backend_ops {
	const char *name;
	orfa_be_destroy_fn *destroy;

	orfa_be_lookup_fn *lookup;
	orfa_be_forget_fn *forget;
	orfa_be_getattr_fn *getattr;
	orfa_be_setattr_fn *setattr;
	/* Writes the target, not NUL-terminated, and its length to *len. */
	orfa_be_readlink_fn *readlink;
	orfa_be_mknod_fn *mknod;
	orfa_be_mkdir_fn *mkdir;
	orfa_be_unlink_fn *unlink;
	orfa_be_rmdir_fn *rmdir;
	orfa_be_symlink_fn *symlink;
	orfa_be_rename_fn *rename;
	orfa_be_link_fn *link;

	/* open/create: *fh receives the backend's per-open state (may be
	 * NULL-valued but is always passed back to release). */
	orfa_be_open_fn *open;
	orfa_be_create_fn *create;
	orfa_be_read_fn *read;
	orfa_be_write_fn *write;
	/*
	 * write, with the data still in the connection: a backend whose
	 * open files are descriptors lets src move it straight into the
	 * file (TCP: splice from the socket).  Returning -EOPNOTSUPP without
	 * calling src->to_fd (say for an O_APPEND write) makes the server
	 * read the data into memory and call write instead.  Optional: a
	 * NULL slot means the same (fill_defaults leaves NULL here).
	 */
	orfa_be_write_fd_fn *write_fd;
	orfa_be_flush_fn *flush;
	orfa_be_release_fn *release;
	orfa_be_fsync_fn *fsync;

	orfa_be_opendir_fn *opendir;
	/* plus != 0: READDIRPLUS (fill gets an entry with a reference). */
	orfa_be_readdir_fn *readdir;
	orfa_be_releasedir_fn *releasedir;
	orfa_be_fsyncdir_fn *fsyncdir;

	orfa_be_statfs_fn *statfs;
	orfa_be_setxattr_fn *setxattr;
	/* size 0: only *len (the value's size) is returned; a buffer that is
	 * too small gives -ERANGE. */
	orfa_be_getxattr_fn *getxattr;
	orfa_be_listxattr_fn *listxattr;
	orfa_be_removexattr_fn *removexattr;
	orfa_be_access_fn *access;
	orfa_be_fallocate_fn *fallocate;
	orfa_be_lseek_fn *lseek;
	orfa_be_copy_file_range_fn *copy_file_range;
	orfa_be_restored_fn *restored;
};

/* Every backend instance begins with this. */
struct orfa_backend {
	const struct orfa_backend_ops *ops;
};

/* Fill NULL slots of ops with -ENOSYS stubs (call once at start-up on a
 * writable copy, or use a table that is already complete). */
void orfa_backend_fill_defaults(struct orfa_backend_ops *ops);

/* Constructors.  Return 0 and *out, or a negative errno; a message for
 * the user is logged. */
int backend_native_create(const char *root, struct orfa_backend **out);
int backend_ramfs_create(uint64_t size_limit, struct orfa_backend **out);
/*
 * Native backend only, before it serves: keep node ids across restarts in
 * state file path (created 0600 if missing; see backend_native_ids.c).
 * Ids recorded by a previous run on the same export are restored now.
 * Without root or file handles this logs a warning and returns 0 (ids
 * then do not persist); a state file that cannot be opened gives a
 * negative errno.
 */
int backend_native_set_state(struct orfa_backend *be, const char *path);

/* Destroy any backend (NULL is fine). */
static inline void orfa_backend_destroy(struct orfa_backend *be)
{
	if (be)
		be->ops->destroy(be);
}

#endif /* ORFA_BACKEND_H */
