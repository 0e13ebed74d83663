/*
 * backend_native_io.c - the native backend's operations on open files and
 * directories (open/create/read/write/.../readdir), xattrs, statfs, access,
 * fallocate, lseek and copy_file_range.  Node table and the containment
 * rules are in backend_native.c, whose opening comment describes the
 * whole backend; credentials in backend_native_cred.c; the rules shared
 * with ramfs (names, OPEN by file type) in backend_util.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "backend_native_impl.h"
#include "backend_util.h"
#include "log.h"

/* h if it is a live handle of this kind (both kinds begin with their
 * magic), else NULL; a handle of another kind is logged. */
static void *handle_check(void *h, uint32_t magic, const char *kind)
{
	if (!h || *(uint32_t *)h != magic) {
		if (h)
			log_err("native: bad %s handle %p", kind, h);
		return NULL;
	}
	return h;
}

static struct nat_file *file_of(void *fh)
{
	return handle_check(fh, NAT_FILE_MAGIC, "file");
}

static struct nat_dir *dir_of(void *dh)
{
	return handle_check(dh, NAT_DIR_MAGIC, "directory");
}

static void file_put(struct nat_file *f)
{
	if (atomic_fetch_sub(&f->refs, 1) == 1) {
		f->magic = 0;
		close(f->fd);
		free(f);
	}
}

static void file_release_hold(void *hold)
{
	file_put(hold);
}

static int file_new(int fd, int flags, void **fh)
{
	struct nat_file *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->magic = NAT_FILE_MAGIC;
	f->fd = fd;
	f->flags = flags;
	atomic_init(&f->refs, 1);
	*fh = f;
	return 0;
}

static int fd_attr(int fd, struct orfa_attr *attr)
{
	struct stat st;

	if (!attr)
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	nat_attr_from_stat(attr, &st);
	return 0;
}

/*
 * The open(2) flags a client may pass on: access mode and flags whose
 * effect stays on the opened file.  O_CREAT/O_EXCL are added by create
 * only; O_NOFOLLOW/O_PATH/O_TMPFILE/O_DIRECTORY/O_NOCTTY are ours to set;
 * O_DIRECT would require aligned buffers from the server; O_NONBLOCK and
 * O_ASYNC concern special files, which are never opened here.
 */
static int open_flags(uint32_t flags)
{
	return (int)(flags & (O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC |
			      O_DSYNC | O_NOATIME)) |
	       O_LARGEFILE;
}

/* ------------------------------------------------------------------ */
/* Files                                                                */

int nat_open(struct orfa_backend *be, const struct orfa_cred *cr,
	     uint64_t nodeid, uint32_t flags, void **fh, struct orfa_attr *attr)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_node *n = nat_node_get(nb, nodeid);
	int fd, r, oflags = open_flags(flags);

	if (!n)
		return -ESTALE;
	r = backend_check_open(n->type & S_IFMT, flags);
	if (r)
		goto out_put;
	r = nat_cred_enter(nb, cr, &cs);
	if (r)
		goto out_put;
	fd = nat_node_reopen(nb, n, oflags);
	nat_cred_leave(nb, &cs);
	if (fd < 0) {
		r = fd;
		goto out_put;
	}
	r = fd_attr(fd, attr);
	if (r == 0)
		r = file_new(fd, oflags, fh);
	if (r)
		close(fd);
out_put:
	nat_node_put(nb, &n);
	return r;
}

/* Open fd's inode afresh through /proc/self/fd with oflags: the new
 * descriptor, or a negative errno after closing fd. */
static int proc_reopen_or_close(struct nat_backend *nb, int fd, int oflags)
{
	char pname[NAT_PROC_NAME];
	int nfd, r;

	proc_name(pname, fd);
	nfd = openat(nb->proc_fd, pname, oflags);
	if (nfd < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return nfd;
}

/*
 * Open name in p for CREATE; cred entered.  A new file is created with
 * O_EXCL so that nothing but a regular file we made is ever opened here;
 * an existing name (without O_EXCL from the client) is looked up with
 * O_PATH|O_NOFOLLOW, checked to be a regular file, and reopened through
 * its magic link.  Returns the open fd and *pathfd, an O_PATH fd for the
 * node, or a negative errno.
 */
static int create_open(struct nat_backend *nb, struct nat_node *p,
		       const char *name, mode_t mode, uint32_t flags,
		       int oflags, int *pathfd)
{
	struct stat st;
	int fd, pfd, r;

	for (int tries = 0; tries < 8; tries++) {
		fd = openat(p->fd, name,
			    oflags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    mode);
		if (fd >= 0) {
			pfd = proc_reopen_or_close(nb, fd, O_PATH | O_CLOEXEC);
			if (pfd < 0)
				return pfd;
			*pathfd = pfd;
			return fd;
		}
		if (errno != EEXIST || (flags & O_EXCL))
			return -errno;
		pfd = openat(p->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (pfd < 0) {
			if (errno == ENOENT)
				continue; /* removed meanwhile: retry */
			return -errno;
		}
		if (fstat(pfd, &st) < 0) {
			r = -errno;
			close(pfd);
			return r;
		}
		if (!S_ISREG(st.st_mode)) {
			close(pfd);
			return backend_check_open(st.st_mode & S_IFMT, 0);
		}
		fd = proc_reopen_or_close(nb, pfd, oflags | O_CLOEXEC);
		if (fd < 0)
			return fd;
		*pathfd = pfd;
		return fd;
	}
	return -EAGAIN;
}

int nat_create(struct orfa_backend *be, const struct orfa_cred *cr,
	       uint64_t parent, const char *name, uint32_t namelen,
	       uint32_t mode, uint32_t flags, struct orfa_entry *out, void **fh)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_node *p;
	struct stat st;
	int fd, pfd = -1, oflags = open_flags(flags);
	int r = backend_check_create_name(name, namelen, flags);

	if (r)
		return r;
	r = nat_node_enter(nb, cr, parent, true, &p, &cs);
	if (r)
		return r;
	fd = create_open(nb, p, name, (mode & 07777) & ~cred_umask(cr), flags,
			 oflags, &pfd);
	nat_cred_leave(nb, &cs);
	if (fd < 0) {
		r = fd;
		goto out_put;
	}
	if (fstat(pfd, &st) < 0) {
		r = -errno;
		close(pfd);
		close(fd);
		goto out_put;
	}
	r = file_new(fd, oflags, fh);
	if (r) {
		close(pfd);
		close(fd);
		goto out_put;
	}
	r = nat_node_from_fd(nb, pfd, &st, out);
	if (r) {
		file_put(*fh);
		*fh = NULL;
	}
out_put:
	nat_node_put(nb, &p);
	return r;
}

int nat_read(struct orfa_backend *be, uint64_t nodeid, void *fh,
	     uint64_t offset, uint32_t size, void *buf,
	     struct orfa_read_out *out)
{
	struct nat_file *f = file_of(fh);
	struct stat st;
	uint64_t avail;

	backend_read_out_init(out);
	if (!f)
		return -EBADF;
	if ((f->flags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if (offset > (uint64_t)INT64_MAX)
		return -EINVAL;
	if (fstat(f->fd, &st) < 0)
		return -errno;
	if (offset >= (uint64_t)st.st_size || size == 0)
		return 0;
	avail = (uint64_t)st.st_size - offset;
	atomic_fetch_add(&f->refs, 1);
	out->fd = f->fd;
	out->off = (off_t)offset;
	out->len = avail < size ? (size_t)avail : size;
	out->release = file_release_hold;
	out->hold = f;
	return 0;
}

int nat_write(struct orfa_backend *be, const struct orfa_cred *cr,
	      uint64_t nodeid, void *fh, uint64_t offset,
	      const struct iovec *iov, int iovcnt, uint32_t flags,
	      uint64_t *written, struct orfa_attr *attr)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_file *f = file_of(fh);
	ssize_t n;
	int r;

	*written = 0;
	if (!f)
		return -EBADF;
	if (offset > (uint64_t)INT64_MAX)
		return -EFBIG;
	if (iovcnt < 0 || iovcnt > IOV_MAX)
		return -EINVAL;
	r = nat_cred_enter(nb, cr, &cs);
	if (r)
		return r;
	/* An O_APPEND descriptor appends whatever the offset (pwrite(2)
	 * BUGS); RWF_APPEND does the same for a writer whose flags say
	 * O_APPEND on a descriptor shared without it. */
	n = pwritev2(f->fd, iov, iovcnt, (off_t)offset,
		     (flags & O_APPEND) ? RWF_APPEND : 0);
	if (n < 0)
		r = -errno;
	nat_cred_leave(nb, &cs);
	if (r)
		return r;
	*written = (uint64_t)n;
	return fd_attr(f->fd, attr);
}

/* The data comes straight from the client's connection (server.c:
 * splice); same checks and credentials as nat_write.  Appending writes
 * take the memory path: splice and pwrite ignore the offset there. */
int nat_write_fd(struct orfa_backend *be, const struct orfa_cred *cr,
		 uint64_t nodeid, void *fh, uint64_t offset,
		 struct orfa_wsrc *src, uint32_t flags, uint64_t *written,
		 struct orfa_attr *attr)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_file *f = file_of(fh);
	ssize_t n;
	int r;

	*written = 0;
	if (!f)
		return -EBADF;
	if ((flags & O_APPEND) || (f->flags & O_APPEND))
		return -EOPNOTSUPP;
	if (offset > (uint64_t)INT64_MAX)
		return -EFBIG;
	r = nat_cred_enter(nb, cr, &cs);
	if (r)
		return r;
	n = src->to_fd(src, f->fd, (off_t)offset);
	nat_cred_leave(nb, &cs);
	if (n < 0)
		return (int)n;
	*written = (uint64_t)n;
	return fd_attr(f->fd, attr);
}

int nat_flush(struct orfa_backend *be, uint64_t nodeid, void *fh)
{
	struct nat_file *f = file_of(fh);
	int fd;

	if (!f)
		return -EBADF;
	/* Close a duplicate so that close-time semantics (e.g. of an NFS
	 * export below) apply now, as passthrough_ll does. */
	fd = dup(f->fd);
	if (fd < 0)
		return -errno;
	return close(fd) < 0 ? -errno : 0;
}

void nat_release(struct orfa_backend *be, uint64_t nodeid, void *fh)
{
	struct nat_file *f = file_of(fh);

	if (f)
		file_put(f);
}

int nat_fsync(struct orfa_backend *be, uint64_t nodeid, void *fh, int datasync)
{
	int fd = nat_handle_fd(fh);

	if (fd < 0)
		return -EBADF;
	if ((datasync ? fdatasync(fd) : fsync(fd)) < 0)
		return -errno;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Directories                                                          */

int nat_opendir(struct orfa_backend *be, const struct orfa_cred *cr,
		uint64_t nodeid, uint32_t flags, void **dh)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_node *n = nat_node_get(nb, nodeid);
	struct nat_dir *d = NULL;
	int fd, r;

	if (!n)
		return -ESTALE;
	if (!S_ISDIR(n->type)) {
		r = -ENOTDIR;
		goto out_put;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		r = -ENOMEM;
		goto out_put;
	}
	r = nat_cred_enter(nb, cr, &cs);
	if (r)
		goto out_free;
	fd = nat_node_reopen(nb, n, O_RDONLY | O_DIRECTORY);
	nat_cred_leave(nb, &cs);
	if (fd < 0) {
		r = fd;
		goto out_free;
	}
	d->dp = fdopendir(fd);
	if (!d->dp) {
		r = -errno;
		close(fd);
		goto out_free;
	}
	d->magic = NAT_DIR_MAGIC;
	d->fd = fd;
	d->entry = NULL;
	d->offset = 0;
	pthread_mutex_init(&d->lock, NULL);
	*dh = d;
	nat_node_put(nb, &n);
	return 0;
out_free:
	free(d);
out_put:
	nat_node_put(nb, &n);
	return r;
}

/*
 * Emit one directory entry; returns 0 to go on, 1 when the reply is full,
 * -ENOENT to skip (vanished), another negative errno to stop.
 */
static int readdir_emit(struct nat_backend *nb, struct nat_node *n,
			const struct dirent *de, int plus, orfa_fill_fn fill,
			void *ctx)
{
	const char *name = de->d_name;
	uint32_t namelen = (uint32_t)strlen(name);
	uint64_t ino = de->d_ino, next = (uint64_t)de->d_off;
	struct orfa_entry e;
	int r;

	if (is_dotdot(name) && n == nb->root)
		ino = nb->root_ino; /* nothing above the root shows */
	if (!plus)
		return fill(ctx, name, namelen, de->d_type, ino, next, NULL);
	memset(&e, 0, sizeof(e));
	if (is_dot(name) || is_dotdot(name)) {
		/* No reference: node id 0 (FUSE ignores "." and ".." in
		 * READDIRPLUS and would never forget one). */
		e.attr.ino = ino;
		e.attr.mode = S_IFDIR;
		return fill(ctx, name, namelen, DT_DIR, ino, next, &e);
	}
	r = nat_lookup_name(nb, n, name, &e);
	if (r)
		return r;
	return fill(ctx, name, namelen, IFTODT(e.attr.mode), e.attr.ino, next,
		    &e);
}

int nat_readdir(struct orfa_backend *be, const struct orfa_cred *cr,
		uint64_t nodeid, void *dh, uint64_t cookie, int plus,
		orfa_fill_fn fill, void *ctx)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_dir *d = dir_of(dh);
	struct nat_node *n;
	bool emitted = false;
	int r;

	if (!d)
		return -EBADF;
	if (cookie > (uint64_t)INT64_MAX)
		return -EINVAL;
	r = nat_node_enter(nb, cr, nodeid, false, &n, &cs);
	if (r)
		return r;
	pthread_mutex_lock(&d->lock);
	if ((off_t)cookie != d->offset) {
		seekdir(d->dp, (long)cookie);
		d->entry = NULL;
		d->offset = (off_t)cookie;
	}
	for (;;) {
		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				r = errno ? -errno : 0;
				break;
			}
		}
		r = readdir_emit(nb, n, d->entry, plus, fill, ctx);
		if (r == 1) {
			r = 0; /* full: keep the entry for next time */
			break;
		}
		if (r < 0 && r != -ENOENT)
			break;
		if (r == 0)
			emitted = true;
		d->offset = d->entry->d_off;
		d->entry = NULL;
	}
	/* An error after some entries ends this reply only; the client
	 * resumes from the last cookie and meets it again. */
	if (r < 0 && emitted)
		r = 0;
	pthread_mutex_unlock(&d->lock);
	nat_cred_leave(nb, &cs);
	nat_node_put(nb, &n);
	return r;
}

void nat_releasedir(struct orfa_backend *be, uint64_t nodeid, void *dh)
{
	struct nat_dir *d = dir_of(dh);

	if (!d)
		return;
	d->magic = 0;
	closedir(d->dp);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

int nat_fsyncdir(struct orfa_backend *be, uint64_t nodeid, void *dh,
		 int datasync)
{
	struct nat_dir *d = dir_of(dh);

	if (!d)
		return -EBADF;
	if ((datasync ? fdatasync(d->fd) : fsync(d->fd)) < 0)
		return -errno;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Everything else                                                      */

int nat_statfs(struct orfa_backend *be, uint64_t nodeid,
	       struct orfa_statfs_out *out)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_node *n = nat_node_get(nb, nodeid);
	struct statvfs sv;
	int r = 0;

	if (!n)
		return -ESTALE;
	if (fstatvfs(n->fd, &sv) < 0) {
		r = -errno;
	} else {
		memset(out, 0, sizeof(*out));
		out->blocks = sv.f_blocks;
		out->bfree = sv.f_bfree;
		out->bavail = sv.f_bavail;
		out->files = sv.f_files;
		out->ffree = sv.f_ffree;
		out->bsize = (uint32_t)sv.f_bsize;
		out->frsize = (uint32_t)sv.f_frsize;
		out->namemax = (uint32_t)sv.f_namemax;
	}
	nat_node_put(nb, &n);
	return r;
}

enum xattr_op { XA_SET, XA_GET, XA_LIST, XA_REMOVE };

/*
 * Extended attributes go through the magic link path of the node (there
 * is no *xattrat before Linux 6.13), which is only sound for nodes that
 * are not symlinks.  Symlinks: user.* may not be set on them (-EPERM, as
 * the kernel says), other names and reads -EOPNOTSUPP.
 */
static int do_xattr(struct orfa_backend *be, const struct orfa_cred *cr,
		    uint64_t nodeid, enum xattr_op op, const char *name,
		    void *buf, size_t size, uint32_t flags, size_t *len)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_node *n;
	char path[NAT_PROC_PATH];
	ssize_t got = 0;
	int r;

	if (op != XA_LIST && !name)
		return -EINVAL;
	n = nat_node_get(nb, nodeid);
	if (!n)
		return -ESTALE;
	if (S_ISLNK(n->type)) {
		r = ((op == XA_SET || op == XA_REMOVE) &&
		     strncmp(name, "user.", 5) == 0)
			? -EPERM
			: -EOPNOTSUPP;
		goto out_put;
	}
	proc_path(path, n->fd);
	r = nat_cred_enter(nb, cr, &cs);
	if (r)
		goto out_put;
	switch (op) {
	case XA_SET:
		got = setxattr(path, name, buf, size, (int)flags);
		break;
	case XA_GET:
		got = getxattr(path, name, size ? buf : NULL, size);
		break;
	case XA_LIST:
		got = listxattr(path, size ? buf : NULL, size);
		break;
	case XA_REMOVE:
		got = removexattr(path, name);
		break;
	}
	if (got < 0)
		r = -errno;
	else if (len)
		*len = (size_t)got;
	nat_cred_leave(nb, &cs);
out_put:
	nat_node_put(nb, &n);
	return r;
}

int nat_setxattr(struct orfa_backend *be, const struct orfa_cred *cr,
		 uint64_t nodeid, const char *name, const void *value,
		 size_t size, uint32_t flags)
{
	if (flags & ~(uint32_t)(XATTR_CREATE | XATTR_REPLACE))
		return -EINVAL;
	return do_xattr(be, cr, nodeid, XA_SET, name, (void *)value, size,
			flags, NULL);
}

int nat_getxattr(struct orfa_backend *be, const struct orfa_cred *cr,
		 uint64_t nodeid, const char *name, void *buf, size_t size,
		 size_t *len)
{
	return do_xattr(be, cr, nodeid, XA_GET, name, buf, size, 0, len);
}

int nat_listxattr(struct orfa_backend *be, const struct orfa_cred *cr,
		  uint64_t nodeid, void *buf, size_t size, size_t *len)
{
	return do_xattr(be, cr, nodeid, XA_LIST, NULL, buf, size, 0, len);
}

int nat_removexattr(struct orfa_backend *be, const struct orfa_cred *cr,
		    uint64_t nodeid, const char *name)
{
	return do_xattr(be, cr, nodeid, XA_REMOVE, name, NULL, 0, 0, NULL);
}

int nat_access(struct orfa_backend *be, const struct orfa_cred *cr,
	       uint64_t nodeid, uint32_t mask)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_node *n;
	int r;

	if (mask & ~(uint32_t)(R_OK | W_OK | X_OK))
		return -EINVAL;
	r = nat_node_enter(nb, cr, nodeid, false, &n, &cs);
	if (r)
		return r;
	/* AT_EACCESS: check with fsuid/fsgid (the default would use the
	 * real ids, i.e. the server's). */
	if (faccessat(n->fd, "", (int)mask,
		      AT_EMPTY_PATH | AT_EACCESS | AT_SYMLINK_NOFOLLOW) < 0)
		r = -errno;
	nat_cred_leave(nb, &cs);
	nat_node_put(nb, &n);
	return r;
}

int nat_fallocate(struct orfa_backend *be, const struct orfa_cred *cr,
		  uint64_t nodeid, void *fh, uint32_t mode, uint64_t offset,
		  uint64_t length, struct orfa_attr *attr)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_file *f = file_of(fh);
	int r;

	if (!f)
		return -EBADF;
	if (offset > (uint64_t)INT64_MAX || length > (uint64_t)INT64_MAX)
		return -EFBIG;
	r = nat_cred_enter(nb, cr, &cs);
	if (r)
		return r;
	if (fallocate(f->fd, (int)mode, (off_t)offset, (off_t)length) < 0)
		r = -errno;
	nat_cred_leave(nb, &cs);
	return r ? r : fd_attr(f->fd, attr);
}

int nat_lseek(struct orfa_backend *be, uint64_t nodeid, void *fh,
	      uint64_t offset, uint32_t whence, uint64_t *result)
{
	struct nat_file *f = file_of(fh);
	off_t o;

	if (!f)
		return -EBADF;
	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (offset > (uint64_t)INT64_MAX)
		return -ENXIO;
	/* Moves the shared file position, which no other call here uses
	 * (all I/O is positional). */
	o = lseek(f->fd, (off_t)offset, (int)whence);
	if (o < 0)
		return -errno;
	*result = (uint64_t)o;
	return 0;
}

int nat_copy_file_range(struct orfa_backend *be, const struct orfa_cred *cr,
			uint64_t nodeid_in, void *fh_in, uint64_t off_in,
			uint64_t nodeid_out, void *fh_out, uint64_t off_out,
			uint64_t len, uint32_t flags, uint64_t *copied,
			struct orfa_attr *attr_out)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_file *fi = file_of(fh_in), *fo = file_of(fh_out);
	loff_t oi = (loff_t)off_in, oo = (loff_t)off_out;
	ssize_t n;
	int r;

	*copied = 0;
	if (!fi || !fo)
		return -EBADF;
	if (flags)
		return -EINVAL;
	if (off_in > (uint64_t)INT64_MAX || off_out > (uint64_t)INT64_MAX)
		return -EFBIG;
	if (len > (uint64_t)SSIZE_MAX)
		len = SSIZE_MAX;
	r = nat_cred_enter(nb, cr, &cs);
	if (r)
		return r;
	n = copy_file_range(fi->fd, &oi, fo->fd, &oo, (size_t)len, 0);
	if (n < 0)
		r = -errno;
	nat_cred_leave(nb, &cs);
	if (r)
		return r;
	*copied = (uint64_t)n;
	return fd_attr(fo->fd, attr_out);
}
