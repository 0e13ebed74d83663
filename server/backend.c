/*
 * backend.c - default operations for the backend interface (backend.h).
 *
 * orfa_backend_fill_defaults() puts a stub into every NULL slot of an ops
 * table: operations answer -ENOSYS, operations without a result (destroy,
 * forget, release, releasedir, restored) do nothing.  Callers then never test for
 * NULL.  Nothing here knows about any particular backend.
 */
#include "backend.h"

#include <errno.h>

static void dflt_destroy(struct orfa_backend *be) { (void)be; }

static void dflt_restored(struct orfa_backend *be,
			  void (*fn)(uint64_t nodeid, void *arg), void *arg)
{
}

static int dflt_lookup(struct orfa_backend *be, const struct orfa_cred *cr,
		       uint64_t parent, const char *name, uint32_t namelen,
		       struct orfa_entry *out)
{
	return -ENOSYS;
}

static void dflt_forget(struct orfa_backend *be, uint64_t nodeid,
			uint64_t nlookup)
{
}

static int dflt_getattr(struct orfa_backend *be, const struct orfa_cred *cr,
			uint64_t nodeid, void *fh, struct orfa_attr *out)
{
	return -ENOSYS;
}

static int dflt_setattr(struct orfa_backend *be, const struct orfa_cred *cr,
			uint64_t nodeid, void *fh,
			const struct orfa_setattr_req *in,
			struct orfa_attr *out)
{
	return -ENOSYS;
}

static int dflt_readlink(struct orfa_backend *be, const struct orfa_cred *cr,
			 uint64_t nodeid, char *buf, size_t bufsize,
			 size_t *len)
{
	return -ENOSYS;
}

static int dflt_mknod(struct orfa_backend *be, const struct orfa_cred *cr,
		      uint64_t parent, const char *name, uint32_t namelen,
		      uint32_t mode, uint64_t rdev, struct orfa_entry *out)
{
	return -ENOSYS;
}

static int dflt_mkdir(struct orfa_backend *be, const struct orfa_cred *cr,
		      uint64_t parent, const char *name, uint32_t namelen,
		      uint32_t mode, struct orfa_entry *out)
{
	return -ENOSYS;
}

static int dflt_unlink(struct orfa_backend *be, const struct orfa_cred *cr,
		       uint64_t parent, const char *name, uint32_t namelen)
{
	return -ENOSYS;
}

static int dflt_symlink(struct orfa_backend *be, const struct orfa_cred *cr,
			uint64_t parent, const char *name, uint32_t namelen,
			const char *target, uint32_t targetlen,
			struct orfa_entry *out)
{
	return -ENOSYS;
}

static int dflt_rename(struct orfa_backend *be, const struct orfa_cred *cr,
		       uint64_t parent, const char *name, uint32_t namelen,
		       uint64_t newparent, const char *newname,
		       uint32_t newnamelen, uint32_t flags)
{
	return -ENOSYS;
}

static int dflt_link(struct orfa_backend *be, const struct orfa_cred *cr,
		     uint64_t nodeid, uint64_t newparent, const char *newname,
		     uint32_t newnamelen, struct orfa_entry *out)
{
	return -ENOSYS;
}

static int dflt_open(struct orfa_backend *be, const struct orfa_cred *cr,
		     uint64_t nodeid, uint32_t flags, void **fh,
		     struct orfa_attr *attr)
{
	return -ENOSYS;
}

static int dflt_create(struct orfa_backend *be, const struct orfa_cred *cr,
		       uint64_t parent, const char *name, uint32_t namelen,
		       uint32_t mode, uint32_t flags, struct orfa_entry *out,
		       void **fh)
{
	return -ENOSYS;
}

static int dflt_read(struct orfa_backend *be, uint64_t nodeid, void *fh,
		     uint64_t offset, uint32_t size, void *buf,
		     struct orfa_read_out *out)
{
	return -ENOSYS;
}

static int dflt_write(struct orfa_backend *be, const struct orfa_cred *cr,
		      uint64_t nodeid, void *fh, uint64_t offset,
		      const struct iovec *iov, int iovcnt, uint32_t flags,
		      uint64_t *written, struct orfa_attr *attr)
{
	return -ENOSYS;
}

static int dflt_fh(struct orfa_backend *be, uint64_t nodeid, void *fh)
{
	return -ENOSYS;
}

static void dflt_release(struct orfa_backend *be, uint64_t nodeid, void *fh)
{
}

static int dflt_fsync(struct orfa_backend *be, uint64_t nodeid, void *fh,
		      int datasync)
{
	return -ENOSYS;
}

static int dflt_opendir(struct orfa_backend *be, const struct orfa_cred *cr,
			uint64_t nodeid, uint32_t flags, void **dh)
{
	return -ENOSYS;
}

static int dflt_readdir(struct orfa_backend *be, const struct orfa_cred *cr,
			uint64_t nodeid, void *dh, uint64_t cookie, int plus,
			orfa_fill_fn fill, void *ctx)
{
	return -ENOSYS;
}

static int dflt_statfs(struct orfa_backend *be, uint64_t nodeid,
		       struct orfa_statfs_out *out)
{
	return -ENOSYS;
}

static int dflt_setxattr(struct orfa_backend *be, const struct orfa_cred *cr,
			 uint64_t nodeid, const char *name, const void *value,
			 size_t size, uint32_t flags)
{
	return -ENOSYS;
}

static int dflt_getxattr(struct orfa_backend *be, const struct orfa_cred *cr,
			 uint64_t nodeid, const char *name, void *buf,
			 size_t size, size_t *len)
{
	return -ENOSYS;
}

static int dflt_listxattr(struct orfa_backend *be, const struct orfa_cred *cr,
			  uint64_t nodeid, void *buf, size_t size, size_t *len)
{
	return -ENOSYS;
}

static int dflt_removexattr(struct orfa_backend *be,
			    const struct orfa_cred *cr, uint64_t nodeid,
			    const char *name)
{
	return -ENOSYS;
}

static int dflt_access(struct orfa_backend *be, const struct orfa_cred *cr,
		       uint64_t nodeid, uint32_t mask)
{
	return -ENOSYS;
}

static int dflt_fallocate(struct orfa_backend *be, const struct orfa_cred *cr,
			  uint64_t nodeid, void *fh, uint32_t mode,
			  uint64_t offset, uint64_t length,
			  struct orfa_attr *attr)
{
	return -ENOSYS;
}

static int dflt_lseek(struct orfa_backend *be, uint64_t nodeid, void *fh,
		      uint64_t offset, uint32_t whence, uint64_t *result)
{
	return -ENOSYS;
}

static int dflt_copy_file_range(struct orfa_backend *be,
				const struct orfa_cred *cr,
				uint64_t nodeid_in, void *fh_in,
				uint64_t off_in, uint64_t nodeid_out,
				void *fh_out, uint64_t off_out, uint64_t len,
				uint32_t flags, uint64_t *copied,
				struct orfa_attr *attr_out)
{
	return -ENOSYS;
}

#define DFLT(slot, fn)			\
	do {				\
		if (!ops->slot)		\
			ops->slot = fn;	\
	} while (0)

void orfa_backend_fill_defaults(struct orfa_backend_ops *ops)
{
	if (!ops->name)
		ops->name = "unnamed";
	DFLT(destroy, dflt_destroy);
	DFLT(restored, dflt_restored);
	DFLT(lookup, dflt_lookup);
	DFLT(forget, dflt_forget);
	DFLT(getattr, dflt_getattr);
	DFLT(setattr, dflt_setattr);
	DFLT(readlink, dflt_readlink);
	DFLT(mknod, dflt_mknod);
	DFLT(mkdir, dflt_mkdir);
	DFLT(unlink, dflt_unlink);
	DFLT(rmdir, dflt_unlink);	/* same signature */
	DFLT(symlink, dflt_symlink);
	DFLT(rename, dflt_rename);
	DFLT(link, dflt_link);
	DFLT(open, dflt_open);
	DFLT(create, dflt_create);
	DFLT(read, dflt_read);
	DFLT(write, dflt_write);
	DFLT(flush, dflt_fh);
	DFLT(release, dflt_release);
	DFLT(fsync, dflt_fsync);
	DFLT(opendir, dflt_opendir);
	DFLT(readdir, dflt_readdir);
	DFLT(releasedir, dflt_release);
	DFLT(fsyncdir, dflt_fsync);
	DFLT(statfs, dflt_statfs);
	DFLT(setxattr, dflt_setxattr);
	DFLT(getxattr, dflt_getxattr);
	DFLT(listxattr, dflt_listxattr);
	DFLT(removexattr, dflt_removexattr);
	DFLT(access, dflt_access);
	DFLT(fallocate, dflt_fallocate);
	DFLT(lseek, dflt_lseek);
	DFLT(copy_file_range, dflt_copy_file_range);
}
