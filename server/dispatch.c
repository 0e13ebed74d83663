/*
 * dispatch.c - what orfad does with each request: a table indexed by
 * opcode of handlers that take the decoded arguments, check the file ids
 * and node references of the connection, call the backend or the lock
 * manager, and send the reply (header + body, then the data segment as a
 * separate segment: memory through writev, a file range through
 * sendfile).  Every request first passes the session's access checks
 * (access.h: squashing, read-only exports, subdirectory confinement).
 *
 * Handlers run on any thread (workers, loop thread, connection threads)
 * and return a negative errno to be answered as an error, 0 once they have
 * answered themselves, or SREQ_PARKED when the request waits for a lock.
 * Not here: reading, queueing and connection lifetimes (server.c), the
 * handshake (hello.c).
 */
#include "dispatch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access.h"
#include "backend.h"
#include "log.h"
#include "request.h"

/* The connection's export: its backend and its lock table. */
#define BE(r)		(sreq_session(r)->ex->be)
#define LOCKS(r)	(sreq_session(r)->ex->locks)
#define OPS(r)		(BE(r)->ops)

/* ---- helpers ------------------------------------------------------------ */

static void rep_init(struct orfa_msg *rep)
{
	memset(rep, 0, sizeof(*rep));
}

/* Reply with an entry: the connection now holds one more lookup
 * reference on e->nodeid. */
static int reply_entry(struct sreq *r, const struct orfa_entry *e)
{
	struct orfa_msg rep;

	if (access_ref_add(sreq_session(r), e->nodeid, 1) < 0) {
		OPS(r)->forget(BE(r), e->nodeid, 1);
		return -ENOMEM;
	}
	rep_init(&rep);
	rep.a.entry = *e;
	sreq_reply(r, &rep, NULL);
	return 0;
}

static int reply_attr(struct sreq *r, const struct orfa_attr *a)
{
	struct orfa_msg rep;

	rep_init(&rep);
	rep.a.attr = *a;
	sreq_reply(r, &rep, NULL);
	return 0;
}

static int reply_empty(struct sreq *r)
{
	sreq_reply(r, NULL, NULL);
	return 0;
}

enum { F_FILE, F_DIR, F_ANY };

/*
 * The open file behind id, with a reference for the caller.  -EBADF when
 * the id is unknown, of the wrong kind, or was opened on another node
 * (nodeid 0 skips that check).
 */
static int file_get(struct sreq *r, uint64_t nodeid, uint64_t id, int kind,
		    struct sfile **out)
{
	struct sfile *f = ftab_get(&sreq_session(r)->files, id);

	*out = NULL;
	if (!f)
		return -EBADF;
	if ((kind == F_FILE && f->is_dir) || (kind == F_DIR && !f->is_dir) ||
	    (nodeid && nodeid != f->nodeid)) {
		sfile_put(&f);
		return -EBADF;
	}
	*out = f;
	return 0;
}

/* Optional file id (GETATTR, SETATTR): the backend's per-open state of a
 * regular file, or NULL. */
static int file_opt(struct sreq *r, uint64_t nodeid, uint64_t id,
		    struct sfile **out)
{
	*out = NULL;
	if (id == ORFA_FH_NONE)
		return 0;
	return file_get(r, nodeid, id, F_ANY, out);
}

static void *fh_of(const struct sfile *f)
{
	return f && !f->is_dir ? f->fh : NULL;
}

static struct orfa_lk_owner lk_owner(struct sreq *r, uint64_t id)
{
	struct orfa_lk_owner o = { sreq_session(r)->id, id };

	return o;
}

/* ---- nodes --------------------------------------------------------------- */

static int h_lookup(struct sreq *r)
{
	const struct orfa_lookup_req *a = &r->m.a.lookup;
	struct orfa_entry e;
	int ret;

	if (access_is_dotdot_lookup(sreq_session(r), &r->m))
		ret = access_lookup_dotdot(sreq_session(r), &r->m.cred, a->parent, &e);
	else
		ret = OPS(r)->lookup(BE(r), &r->m.cred, a->parent, r->m.name,
				     r->m.namelen, &e);
	return ret ? ret : reply_entry(r, &e);
}

static int h_forget(struct sreq *r)
{
	const uint8_t *d = r->m.data;

	for (uint32_t i = 0; i < r->m.a.forget.count; i++) {
		struct orfa_forget_one f;
		uint64_t took;

		orfa_forget_get(d, i, &f);
		took = access_ref_sub(sreq_session(r), f.nodeid, f.nlookup);
		if (took)
			OPS(r)->forget(BE(r), f.nodeid, took);
		if (took < f.nlookup)
			log_debug("%s: FORGET node %llu: %llu references "
				  "asked, %llu held", sreq_session(r)->peer,
				  (unsigned long long)f.nodeid,
				  (unsigned long long)f.nlookup,
				  (unsigned long long)took);
	}
	return 0;
}

static int h_getattr(struct sreq *r)
{
	const struct orfa_getattr_req *a = &r->m.a.getattr;
	struct orfa_attr attr;
	struct sfile *f;
	int ret;

	ret = file_opt(r, a->nodeid, a->fh, &f);
	if (ret)
		return ret;
	ret = OPS(r)->getattr(BE(r), &r->m.cred, a->nodeid, fh_of(f), &attr);
	sfile_put(&f);
	return ret ? ret : reply_attr(r, &attr);
}

static int h_setattr(struct sreq *r)
{
	const struct orfa_setattr_req *a = &r->m.a.setattr;
	struct orfa_attr attr;
	struct sfile *f;
	int ret;

	if (a->valid & ~ORFA_SET_ALL)
		return -EINVAL;
	ret = file_opt(r, a->nodeid, a->fh, &f);
	if (ret)
		return ret;
	ret = OPS(r)->setattr(BE(r), &r->m.cred, a->nodeid, fh_of(f), a,
			      &attr);
	sfile_put(&f);
	return ret ? ret : reply_attr(r, &attr);
}

static int h_readlink(struct sreq *r)
{
	struct sreq_buf *b = sreq_buf_new(ORFA_MAX_SYMLINK);
	size_t len = 0;
	int ret;

	if (!b)
		return -ENOMEM;
	ret = OPS(r)->readlink(BE(r), &r->m.cred, r->m.a.node.nodeid,
			       (char *)b->data, ORFA_MAX_SYMLINK, &len);
	if (ret == 0 && len > ORFA_MAX_SYMLINK)
		ret = -EIO;
	if (ret) {
		free(b);
		return ret;
	}
	sreq_reply_buf(r, NULL, b, len);
	return 0;
}

static int h_mknod(struct sreq *r)
{
	const struct orfa_mknod_req *a = &r->m.a.mknod;
	struct orfa_entry e;
	int ret;

	ret = OPS(r)->mknod(BE(r), &r->m.cred, a->parent, r->m.name,
			    r->m.namelen, a->mode, a->rdev, &e);
	return ret ? ret : reply_entry(r, &e);
}

static int h_mkdir(struct sreq *r)
{
	const struct orfa_mkdir_req *a = &r->m.a.mkdir;
	struct orfa_entry e;
	int ret;

	ret = OPS(r)->mkdir(BE(r), &r->m.cred, a->parent, r->m.name,
			    r->m.namelen, a->mode, &e);
	return ret ? ret : reply_entry(r, &e);
}

static int h_unlink(struct sreq *r)
{
	const struct orfa_unlink_req *a = &r->m.a.unlink;
	int ret;

	if (r->m.hdr.opcode == ORFA_OP_RMDIR)
		ret = OPS(r)->rmdir(BE(r), &r->m.cred, a->parent, r->m.name,
				    r->m.namelen);
	else
		ret = OPS(r)->unlink(BE(r), &r->m.cred, a->parent, r->m.name,
				     r->m.namelen);
	return ret ? ret : reply_empty(r);
}

static int h_symlink(struct sreq *r)
{
	const struct orfa_symlink_req *a = &r->m.a.symlink;
	struct orfa_entry e;
	int ret;

	ret = OPS(r)->symlink(BE(r), &r->m.cred, a->parent, r->m.name,
			      r->m.namelen, r->m.name2, r->m.name2len, &e);
	return ret ? ret : reply_entry(r, &e);
}

static int h_rename(struct sreq *r)
{
	const struct orfa_rename_req *a = &r->m.a.rename;
	int ret;

	if (a->flags & ~(ORFA_RENAME_NOREPLACE | ORFA_RENAME_EXCHANGE))
		return -EINVAL;
	ret = OPS(r)->rename(BE(r), &r->m.cred, a->parent, r->m.name,
			     r->m.namelen, a->newparent, r->m.name2,
			     r->m.name2len, a->flags);
	return ret ? ret : reply_empty(r);
}

static int h_link(struct sreq *r)
{
	const struct orfa_link_req *a = &r->m.a.link;
	struct orfa_entry e;
	int ret;

	ret = OPS(r)->link(BE(r), &r->m.cred, a->nodeid, a->newparent,
			   r->m.name, r->m.namelen, &e);
	return ret ? ret : reply_entry(r, &e);
}

/* ---- open files ----------------------------------------------------------- */

/* Give the backend state fh of nodeid a file id.  On failure the state is
 * released.  0 and *id, or a negative errno. */
static int file_install(struct sreq *r, uint64_t nodeid, void *fh, int is_dir,
			uint32_t flags, uint64_t *id)
{
	struct sfile *f = sfile_new(BE(r), nodeid, fh, is_dir, flags);
	int ret;

	if (!f) {
		if (is_dir)
			OPS(r)->releasedir(BE(r), nodeid, fh);
		else
			OPS(r)->release(BE(r), nodeid, fh);
		return -ENOMEM;
	}
	ret = ftab_add(&sreq_session(r)->files, f, id);
	sfile_put(&f);		/* the table holds it now, or nobody */
	return ret;
}

static int h_open(struct sreq *r)
{
	const struct orfa_open_req *a = &r->m.a.open;
	struct orfa_msg rep;
	void *fh = NULL;
	int ret;

	rep_init(&rep);
	ret = OPS(r)->open(BE(r), &r->m.cred, a->nodeid, a->flags, &fh,
			   &rep.a.open_rep.attr);
	if (ret)
		return ret;
	ret = file_install(r, a->nodeid, fh, 0, a->flags, &rep.a.open_rep.fh);
	if (ret)
		return ret;
	sreq_reply(r, &rep, NULL);
	return 0;
}

static int h_opendir(struct sreq *r)
{
	const struct orfa_open_req *a = &r->m.a.open;
	struct orfa_msg rep;
	void *dh = NULL;
	int ret;

	rep_init(&rep);
	ret = OPS(r)->opendir(BE(r), &r->m.cred, a->nodeid, a->flags, &dh);
	if (ret)
		return ret;
	/* Attributes for close-to-open; a failure here is not the
	 * opendir's. */
	if (OPS(r)->getattr(BE(r), &r->m.cred, a->nodeid, NULL,
			    &rep.a.open_rep.attr))
		memset(&rep.a.open_rep.attr, 0, sizeof(rep.a.open_rep.attr));
	ret = file_install(r, a->nodeid, dh, 1, a->flags, &rep.a.open_rep.fh);
	if (ret)
		return ret;
	sreq_reply(r, &rep, NULL);
	return 0;
}

static int h_create(struct sreq *r)
{
	const struct orfa_create_req *a = &r->m.a.create;
	struct orfa_msg rep;
	void *fh = NULL;
	int ret;

	rep_init(&rep);
	ret = OPS(r)->create(BE(r), &r->m.cred, a->parent, r->m.name,
			     r->m.namelen, a->mode, a->flags,
			     &rep.a.create_rep.entry, &fh);
	if (ret)
		return ret;
	ret = file_install(r, rep.a.create_rep.entry.nodeid, fh, 0, a->flags,
			   &rep.a.create_rep.fh);
	if (ret == 0)
		ret = access_ref_add(sreq_session(r), rep.a.create_rep.entry.nodeid,
				     1);
	if (ret) {
		struct sfile *f = ftab_remove(&sreq_session(r)->files,
					      rep.a.create_rep.fh);

		sfile_put(&f);
		OPS(r)->forget(BE(r), rep.a.create_rep.entry.nodeid, 1);
		return ret;
	}
	sreq_reply(r, &rep, NULL);
	return 0;
}

/* Read data in flight: freed by the transport's done callback.  buf is
 * only there when the backend had to copy (backend.h: it says so with
 * -ENOBUFS when first asked without one). */
struct read_ctx {
	struct sfile *f;
	void (*release)(void *hold);
	void *hold;
	struct iovec iov[ORFA_READ_MAX_IOV];
	uint8_t buf[];
};

static void read_done(void *arg)
{
	struct read_ctx *rc = arg;

	if (rc->release)
		rc->release(rc->hold);
	sfile_put(&rc->f);
	free(rc);
}

/* One backend read into a fresh context of cap buffer bytes (buf NULL
 * when cap is 0).  0, -ENOMEM, or the backend's result with *rcp set. */
static int read_try(struct sreq *r, struct sfile *f, size_t cap,
		    struct orfa_read_out *out, struct read_ctx **rcp)
{
	const struct orfa_read_req *a = &r->m.a.read;
	struct read_ctx *rc = malloc(sizeof(*rc) + cap);

	*rcp = rc;
	if (!rc)
		return -ENOMEM;
	rc->f = NULL;
	memset(out, 0, sizeof(*out));
	out->fd = -1;
	return OPS(r)->read(BE(r), f->nodeid, f->fh, a->offset, a->size,
			    cap ? rc->buf : NULL, out);
}

/* Ask the backend without a copy buffer first; allocate one only when it
 * says it needs it.  Returns the result with *rcp owning f, or a
 * negative errno with f put and *rcp NULL. */
static int read_call(struct sreq *r, struct sfile *f, struct orfa_read_out *out,
		     struct read_ctx **rcp)
{
	struct read_ctx *rc;
	int ret = read_try(r, f, 0, out, &rc);

	if (ret == -ENOBUFS) {
		free(rc);
		ret = read_try(r, f, r->m.a.read.size, out, &rc);
	}
	*rcp = rc;
	if (!rc) {
		sfile_put(&f);
		return ret;
	}
	rc->f = f;
	rc->release = out->release;
	rc->hold = out->hold;
	return ret;
}

/*
 * A file range of at most READ_COPY_MAX bytes is read into memory here
 * rather than sent with sendfile: a small reply then leaves in the same
 * sendmsg as its header and as the other replies of its burst (corked),
 * where sendfile costs a system call of its own.  From about twice this
 * size sendfile does as well with less CPU, so larger ranges go by
 * sendfile, straight from the page cache.
 */
#define READ_COPY_MAX	(16u * 1024)

/* Replace *rcp (whose backend handed out an fd range) by a context that
 * holds a copy of the range.  0 and *len (maybe short: the file shrank),
 * or a negative errno with *rcp untouched. */
static int read_copy_small(struct read_ctx **rcp, const struct orfa_read_out *out,
			   size_t *len)
{
	struct read_ctx *rc = *rcp, *n = malloc(sizeof(*n) + out->len);
	size_t got = 0;

	if (!n)
		return -ENOMEM;
	while (got < out->len) {
		ssize_t k = pread(out->fd, n->buf + got, out->len - got,
				  out->off + (off_t)got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			free(n);
			return -errno;
		}
		if (k == 0)
			break;
		got += (size_t)k;
	}
	n->f = rc->f;			/* the file reference moves over */
	n->release = NULL;
	n->hold = NULL;
	n->iov[0].iov_base = n->buf;
	n->iov[0].iov_len = got;
	if (rc->release)
		rc->release(rc->hold);
	free(rc);
	*rcp = n;
	*len = got;
	return 0;
}

static int h_read(struct sreq *r)
{
	const struct orfa_read_req *a = &r->m.a.read;
	struct orfa_txmsg tx = { .fd = -1 };
	struct orfa_read_out out;
	struct read_ctx *rc;
	struct sfile *f;
	size_t len = 0;
	int ret;

	if (a->size > sreq_session(r)->max_data)
		return -EINVAL;
	ret = file_get(r, a->nodeid, a->fh, F_FILE, &f);
	if (ret)
		return ret;
	if ((f->flags & O_ACCMODE) == O_WRONLY) {
		sfile_put(&f);
		return -EBADF;
	}
	ret = read_call(r, f, &out, &rc);
	if (!rc)
		return ret;
	if (ret == 0) {
		if (out.iovcnt > 0 && out.iovcnt <= ORFA_READ_MAX_IOV) {
			for (int i = 0; i < out.iovcnt; i++) {
				rc->iov[i] = out.iov[i];
				len += out.iov[i].iov_len;
			}
			tx.iov = rc->iov;
			tx.iovcnt = out.iovcnt;
		} else if (out.iovcnt == 0 && out.fd >= 0 &&
			   out.len <= READ_COPY_MAX && out.len <= a->size &&
			   read_copy_small(&rc, &out, &len) == 0) {
			tx.iov = rc->iov;
			tx.iovcnt = 1;
		} else if (out.iovcnt == 0 && out.fd >= 0) {
			len = out.len;
			tx.fd = out.fd;
			tx.fd_off = out.off;
			tx.fd_len = out.len;
		} else if (out.iovcnt != 0 || out.len != 0) {
			ret = -EIO;
		}
		if (len > a->size) {
			log_err("%s: backend read returned %zu bytes for %u",
				sreq_session(r)->peer, len, a->size);
			ret = -EIO;
		}
	}
	if (ret) {
		read_done(rc);
		return ret;
	}
	if (len == 0) {
		read_done(rc);
		return reply_empty(r);
	}
	tx.done = read_done;
	tx.done_arg = rc;
	sreq_reply(r, NULL, &tx);
	return 0;
}

/* The data source write_fd gets for a WRITE whose data is still in the
 * connection. */
struct wsrc {
	struct orfa_wsrc base;
	struct sreq *r;
	int taken;
};

static ssize_t wsrc_to_fd(struct orfa_wsrc *s, int fd, off_t off)
{
	struct wsrc *w = (struct wsrc *)s;
	struct orfa_rxdest d = { .fd = fd, .off = off };
	int ret;

	if (w->taken)
		return -EINVAL;
	w->taken = 1;
	ret = sreq_take_data(w->r, &d);
	if (ret)
		return ret;
	if (d.written == 0 && d.werr)
		return d.werr;
	return (ssize_t)d.written;	/* short after a write error */
}

/* WRITE with its data still in the connection: straight into the file
 * when the backend has write_fd; -EOPNOTSUPP when the data must come into
 * memory first (nothing taken yet). */
static int write_deferred(struct sreq *r, struct sfile *f,
			  struct orfa_msg *rep)
{
	const struct orfa_write_req *a = &r->m.a.write;
	struct wsrc w = { .base = { .len = r->m.data_len,
				    .to_fd = wsrc_to_fd },
			  .r = r };
	int ret;

	if (!OPS(r)->write_fd) {
		/* No such backend: stop deferring on this connection. */
		sreq_no_defer(r);
		return -EOPNOTSUPP;
	}
	ret = OPS(r)->write_fd(BE(r), &r->m.cred, f->nodeid, f->fh,
			       a->offset, &w.base, a->flags,
			       &rep->a.write_rep.written,
			       &rep->a.write_rep.attr);
	if (ret == -EOPNOTSUPP || ret == -ENOSYS)
		return w.taken ? -EIO : -EOPNOTSUPP;
	return ret;
}

static int h_write(struct sreq *r)
{
	const struct orfa_write_req *a = &r->m.a.write;
	struct orfa_msg rep;
	struct iovec iov;
	struct sfile *f;
	int ret;

	ret = file_get(r, a->nodeid, a->fh, F_FILE, &f);
	if (ret)
		return ret;
	if ((f->flags & O_ACCMODE) == O_RDONLY) {
		sfile_put(&f);
		return -EBADF;
	}
	rep_init(&rep);
	if (sreq_data_deferred(r)) {
		ret = write_deferred(r, f, &rep);
		if (ret == -EOPNOTSUPP)
			ret = sreq_take_data(r, NULL);
		else
			goto out;
		if (ret) {
			sfile_put(&f);
			return ret;
		}
	}
	iov.iov_base = (void *)r->m.data;
	iov.iov_len = r->m.data_len;
	ret = OPS(r)->write(BE(r), &r->m.cred, f->nodeid, f->fh, a->offset,
			    &iov, r->m.data_len ? 1 : 0, a->flags,
			    &rep.a.write_rep.written, &rep.a.write_rep.attr);
out:
	sfile_put(&f);
	if (ret)
		return ret;
	sreq_reply(r, &rep, NULL);
	return 0;
}

static int h_flush(struct sreq *r)
{
	const struct orfa_fh_req *a = &r->m.a.fh;
	struct orfa_lk_owner o = lk_owner(r, a->lock_owner);
	struct sfile *f;
	int ret;

	ret = file_get(r, a->nodeid, a->fh, F_FILE, &f);
	if (ret)
		return ret;
	/* close(2) drops the POSIX locks of the closing owner. */
	orfa_locks_drop_posix(LOCKS(r), f->nodeid, &o);
	ret = OPS(r)->flush(BE(r), f->nodeid, f->fh);
	sfile_put(&f);
	return ret ? ret : reply_empty(r);
}

/* RELEASE and RELEASEDIR. */
static int h_release(struct sreq *r)
{
	const struct orfa_fh_req *a = &r->m.a.fh;
	int dir = r->m.hdr.opcode == ORFA_OP_RELEASEDIR;
	struct orfa_lk_owner po = lk_owner(r, a->lock_owner);
	struct orfa_lk_owner fo = lk_owner(r, a->fh);
	struct sfile *f;
	int ret;

	ret = file_get(r, a->nodeid, a->fh, dir ? F_DIR : F_FILE, &f);
	if (ret)
		return ret;
	sfile_put(&f);
	f = ftab_remove(&sreq_session(r)->files, a->fh);
	if (!f)
		return -EBADF;		/* released twice at once */
	if (!dir)
		orfa_locks_drop_posix(LOCKS(r), f->nodeid, &po);
	orfa_locks_drop_flock(LOCKS(r), f->nodeid, &fo);
	/* The backend's release runs once reads still in flight are sent. */
	sfile_put(&f);
	return reply_empty(r);
}

/* FSYNC and FSYNCDIR. */
static int h_fsync(struct sreq *r)
{
	const struct orfa_fh_req *a = &r->m.a.fh;
	int dir = r->m.hdr.opcode == ORFA_OP_FSYNCDIR;
	struct sfile *f;
	int ret;

	ret = file_get(r, a->nodeid, a->fh, dir ? F_DIR : F_FILE, &f);
	if (ret)
		return ret;
	if (dir)
		ret = OPS(r)->fsyncdir(BE(r), f->nodeid, f->fh, a->flags & 1);
	else
		ret = OPS(r)->fsync(BE(r), f->nodeid, f->fh, a->flags & 1);
	sfile_put(&f);
	return ret ? ret : reply_empty(r);
}

/* ---- directories ----------------------------------------------------------- */

struct dir_fill {
	struct sreq *r;
	uint8_t *buf;
	size_t cap, off;
	int plus;
	int full;
	int at_view_root;	/* listing a subdirectory session's root */
};

struct dir_ctx {
	struct sfile *f;
	struct iovec iov;
	uint8_t buf[];
};

static void dir_done(void *arg)
{
	struct dir_ctx *dc = arg;

	sfile_put(&dc->f);
	free(dc);
}

static int dir_fill_cb(void *ctx, const char *name, uint32_t namelen,
		       uint32_t type, uint64_t ino, uint64_t next_cookie,
		       const struct orfa_entry *e)
{
	struct dir_fill *df = ctx;
	struct sreq *r = df->r;
	struct orfa_dirent d = { .ino = ino, .cookie = next_cookie,
				 .type = type, .namelen = namelen };
	struct orfa_entry up;
	int ret;

	/* The parent of a subdirectory session's root is outside the
	 * session: its ".." shows the root itself, as LOOKUP ".." does. */
	if (df->at_view_root && namelen == 2 && name[0] == '.' &&
	    name[1] == '.') {
		if (df->plus && e && e->nodeid)
			OPS(r)->forget(BE(r), e->nodeid, 1);
		d.ino = sreq_session(r)->root_ino;
		memset(&up, 0, sizeof(up));
		up.attr.ino = sreq_session(r)->root_ino;
		up.attr.mode = S_IFDIR;
		e = df->plus ? &up : NULL;
	}

	ret = orfa_dirent_put(df->buf, df->cap, &df->off, df->plus, &d,
			      df->plus ? e : NULL, name);
	if (ret == -ENOSPC) {
		if (df->plus && e)
			OPS(r)->forget(BE(r), e->nodeid, 1);
		df->full = 1;
		return 1;
	}
	if (ret < 0) {
		/* A name the wire cannot carry: skip it. */
		if (df->plus && e)
			OPS(r)->forget(BE(r), e->nodeid, 1);
		return 0;
	}
	if (df->plus && e && e->nodeid &&
	    access_ref_add(sreq_session(r), e->nodeid, 1) < 0)
		OPS(r)->forget(BE(r), e->nodeid, 1);
	return 0;
}

/* READDIR and READDIRPLUS. */
static int h_readdir(struct sreq *r)
{
	const struct orfa_readdir_req *a = &r->m.a.readdir;
	struct orfa_txmsg tx = { .fd = -1 };
	struct dir_fill df;
	struct dir_ctx *dc;
	struct sfile *f;
	size_t cap;
	int ret;

	if (a->size == 0)
		return -EINVAL;
	cap = a->size < sreq_session(r)->max_data ? a->size : sreq_session(r)->max_data;
	ret = file_get(r, a->nodeid, a->fh, F_DIR, &f);
	if (ret)
		return ret;
	dc = malloc(sizeof(*dc) + cap);
	if (!dc) {
		sfile_put(&f);
		return -ENOMEM;
	}
	dc->f = f;
	memset(&df, 0, sizeof(df));
	df.r = r;
	df.buf = dc->buf;
	df.cap = cap;
	df.plus = r->m.hdr.opcode == ORFA_OP_READDIRPLUS;
	df.at_view_root = sreq_session(r)->view && f->nodeid == sreq_session(r)->root_nodeid;
	ret = OPS(r)->readdir(BE(r), &r->m.cred, f->nodeid, f->fh, a->cookie,
			      df.plus, dir_fill_cb, &df);
	if (df.off == 0 && (ret < 0 || df.full)) {
		/* Nothing to show: an error, or the first entry alone does
		 * not fit (an empty reply would mean end of directory). */
		dir_done(dc);
		return ret < 0 ? ret : -EINVAL;
	}
	/* Entries already taken (and their references) are sent even when
	 * the backend failed further on. */
	if (df.off == 0) {
		dir_done(dc);
		return reply_empty(r);
	}
	dc->iov.iov_base = dc->buf;
	dc->iov.iov_len = df.off;
	tx.iov = &dc->iov;
	tx.iovcnt = 1;
	tx.done = dir_done;
	tx.done_arg = dc;
	sreq_reply(r, NULL, &tx);
	return 0;
}

/* ---- file system, xattrs, access ------------------------------------------ */

static int h_statfs(struct sreq *r)
{
	struct orfa_msg rep;
	int ret;

	rep_init(&rep);
	ret = OPS(r)->statfs(BE(r), r->m.a.node.nodeid, &rep.a.statfs);
	if (ret)
		return ret;
	sreq_reply(r, &rep, NULL);
	return 0;
}

static int h_setxattr(struct sreq *r)
{
	const struct orfa_setxattr_req *a = &r->m.a.setxattr;
	int ret;

	ret = OPS(r)->setxattr(BE(r), &r->m.cred, a->nodeid, r->m.name,
			       r->m.data, r->m.data_len, a->flags);
	return ret ? ret : reply_empty(r);
}

/* GETXATTR and LISTXATTR. */
static int h_getxattr(struct sreq *r)
{
	const struct orfa_getxattr_req *a = &r->m.a.getxattr;
	int list = r->m.hdr.opcode == ORFA_OP_LISTXATTR;
	struct orfa_msg rep;
	size_t cap = a->size, len = 0;
	struct sreq_buf *b;
	void *buf = NULL;
	int ret;

	if (cap > sreq_session(r)->max_data)
		cap = sreq_session(r)->max_data;
	b = sreq_buf_new(cap);
	if (!b)
		return -ENOMEM;
	if (cap)
		buf = b->data;
	if (list)
		ret = OPS(r)->listxattr(BE(r), &r->m.cred, a->nodeid, buf, cap,
					&len);
	else
		ret = OPS(r)->getxattr(BE(r), &r->m.cred, a->nodeid,
				       r->m.name, buf, cap, &len);
	if (ret == 0 && cap && len > cap)
		ret = -ERANGE;
	if (ret) {
		free(b);
		return ret;
	}
	rep_init(&rep);
	rep.a.xattr_rep.size = len;
	sreq_reply_buf(r, &rep, b, cap ? len : 0);
	return 0;
}

static int h_removexattr(struct sreq *r)
{
	const struct orfa_removexattr_req *a = &r->m.a.removexattr;
	int ret;

	ret = OPS(r)->removexattr(BE(r), &r->m.cred, a->nodeid, r->m.name);
	return ret ? ret : reply_empty(r);
}

static int h_access(struct sreq *r)
{
	const struct orfa_access_req *a = &r->m.a.access;
	int ret;

	ret = OPS(r)->access(BE(r), &r->m.cred, a->nodeid, a->mask);
	return ret ? ret : reply_empty(r);
}

/* ---- locks ----------------------------------------------------------------- */

static int h_getlk(struct sreq *r)
{
	const struct orfa_lk_req *a = &r->m.a.lk;
	struct orfa_lk_owner o = lk_owner(r, a->owner);
	struct orfa_msg rep;
	int ret;

	rep_init(&rep);
	rep.a.lock = a->lock;
	ret = orfa_locks_getlk(LOCKS(r), a->nodeid, &o,
			       &rep.a.lock);
	if (ret)
		return ret;
	sreq_reply(r, &rep, NULL);
	return 0;
}

static int h_setlk(struct sreq *r)
{
	const struct orfa_lk_req *a = &r->m.a.lk;
	struct orfa_lk_owner o = lk_owner(r, a->owner);
	struct orfa_locks *lt = LOCKS(r);
	struct orfa_lk_waiter *w;
	int ret;

	if (a->flags & ~ORFA_LK_WAIT)
		return -EINVAL;
	if (!(a->flags & ORFA_LK_WAIT) || a->lock.type == F_UNLCK) {
		ret = orfa_locks_setlk(lt, a->nodeid, &o, &a->lock, NULL);
		return ret ? ret : reply_empty(r);
	}
	w = sreq_park_begin(r);
	if (!w)
		return -ENOLCK;
	ret = sreq_park_end(r, orfa_locks_setlk(lt, a->nodeid, &o, &a->lock,
						 w));
	return ret ? ret : reply_empty(r);
}

static int h_flock(struct sreq *r)
{
	const struct orfa_flock_req *a = &r->m.a.flock;
	struct orfa_lk_owner o = lk_owner(r, a->fh);
	struct orfa_locks *lt = LOCKS(r);
	uint32_t op = a->op & ~(uint32_t)LOCK_NB;
	struct orfa_lk_waiter *w;
	struct sfile *f;
	uint64_t nodeid;
	int ret;

	if ((a->op & ~(uint32_t)(LOCK_SH | LOCK_EX | LOCK_UN | LOCK_NB)) ||
	    (op != LOCK_SH && op != LOCK_EX && op != LOCK_UN))
		return -EINVAL;
	ret = file_get(r, a->nodeid, a->fh, F_ANY, &f);
	if (ret)
		return ret;
	nodeid = f->nodeid;
	sfile_put(&f);
	if ((a->op & LOCK_NB) || op == LOCK_UN) {
		ret = orfa_locks_flock(lt, nodeid, &o, op, NULL);
		return ret ? ret : reply_empty(r);
	}
	w = sreq_park_begin(r);
	if (!w)
		return -ENOLCK;
	ret = sreq_park_end(r, orfa_locks_flock(lt, nodeid, &o, op, w));
	return ret ? ret : reply_empty(r);
}

/* ---- ranges ------------------------------------------------------------------ */

static int h_fallocate(struct sreq *r)
{
	const struct orfa_fallocate_req *a = &r->m.a.fallocate;
	struct orfa_attr attr;
	struct sfile *f;
	int ret;

	ret = file_get(r, a->nodeid, a->fh, F_FILE, &f);
	if (ret)
		return ret;
	ret = OPS(r)->fallocate(BE(r), &r->m.cred, f->nodeid, f->fh, a->mode,
				a->offset, a->length, &attr);
	sfile_put(&f);
	return ret ? ret : reply_attr(r, &attr);
}

static int h_lseek(struct sreq *r)
{
	const struct orfa_lseek_req *a = &r->m.a.lseek;
	struct orfa_msg rep;
	struct sfile *f;
	int ret;

	ret = file_get(r, a->nodeid, a->fh, F_FILE, &f);
	if (ret)
		return ret;
	rep_init(&rep);
	ret = OPS(r)->lseek(BE(r), f->nodeid, f->fh, a->offset, a->whence,
			    &rep.a.lseek_rep.offset);
	sfile_put(&f);
	if (ret)
		return ret;
	sreq_reply(r, &rep, NULL);
	return 0;
}

static int h_copy_file_range(struct sreq *r)
{
	const struct orfa_copy_range_req *a = &r->m.a.copy;
	struct sfile *fin, *fout;
	struct orfa_msg rep;
	int ret;

	ret = file_get(r, a->nodeid_in, a->fh_in, F_FILE, &fin);
	if (ret)
		return ret;
	ret = file_get(r, a->nodeid_out, a->fh_out, F_FILE, &fout);
	if (ret) {
		sfile_put(&fin);
		return ret;
	}
	if ((fin->flags & O_ACCMODE) == O_WRONLY ||
	    (fout->flags & O_ACCMODE) == O_RDONLY) {
		ret = -EBADF;
		goto out;
	}
	rep_init(&rep);
	ret = OPS(r)->copy_file_range(BE(r), &r->m.cred, fin->nodeid,
				      fin->fh, a->off_in, fout->nodeid,
				      fout->fh, a->off_out, a->len, a->flags,
				      &rep.a.copy_rep.copied,
				      &rep.a.copy_rep.attr);
	if (ret == 0)
		sreq_reply(r, &rep, NULL);
out:
	sfile_put(&fin);
	sfile_put(&fout);
	return ret;
}

static int h_ping(struct sreq *r)
{
	return reply_empty(r);
}

/* ---- the table ------------------------------------------------------------- */

struct op_entry {
	int (*fn)(struct sreq *r);
	const char *name;
};

#define OP(id, fn) [ORFA_OP_##id] = { fn, #id }
static const struct op_entry op_table[ORFA_OP_MAX] = {
	/* HELLO and AUTH are hello.c's, on the receiving thread. */
	OP(LOOKUP, h_lookup),
	OP(FORGET, h_forget),
	OP(GETATTR, h_getattr),
	OP(SETATTR, h_setattr),
	OP(READLINK, h_readlink),
	OP(MKNOD, h_mknod),
	OP(MKDIR, h_mkdir),
	OP(UNLINK, h_unlink),
	OP(RMDIR, h_unlink),
	OP(SYMLINK, h_symlink),
	OP(RENAME, h_rename),
	OP(LINK, h_link),
	OP(OPEN, h_open),
	OP(CREATE, h_create),
	OP(READ, h_read),
	OP(WRITE, h_write),
	OP(FLUSH, h_flush),
	OP(RELEASE, h_release),
	OP(FSYNC, h_fsync),
	OP(OPENDIR, h_opendir),
	OP(READDIR, h_readdir),
	OP(READDIRPLUS, h_readdir),
	OP(RELEASEDIR, h_release),
	OP(FSYNCDIR, h_fsync),
	OP(STATFS, h_statfs),
	OP(SETXATTR, h_setxattr),
	OP(GETXATTR, h_getxattr),
	OP(LISTXATTR, h_getxattr),
	OP(REMOVEXATTR, h_removexattr),
	OP(ACCESS, h_access),
	OP(GETLK, h_getlk),
	OP(SETLK, h_setlk),
	OP(FLOCK, h_flock),
	OP(FALLOCATE, h_fallocate),
	OP(LSEEK, h_lseek),
	OP(COPY_FILE_RANGE, h_copy_file_range),
	OP(PING, h_ping),
};
#undef OP

const char *dispatch_op_name(unsigned opcode)
{
	if (opcode >= ORFA_OP_MAX || !op_table[opcode].fn)
		return NULL;
	return op_table[opcode].name;
}

/* Errors clients cause in normal use: not worth a log line. */
static int routine_error(int err)
{
	switch (err) {
	case ENOENT: case EEXIST: case ENOTEMPTY: case EACCES: case EPERM:
	case ENOTDIR: case EISDIR: case ENODATA: case ERANGE: case EAGAIN:
	case EBADF: case ESTALE: case EINVAL: case ENAMETOOLONG: case ENOSPC:
	case EXDEV: case ENOSYS: case EOPNOTSUPP: case ELOOP: case EROFS:
	case EFBIG: case EDQUOT: case EMLINK: case ETXTBSY: case EINTR:
	case E2BIG: case EOVERFLOW: case ENXIO: case ENOTTY: case ENOLCK:
	case ECANCELED:
		return 1;
	default:
		return 0;
	}
}

void dispatch_request(struct sreq *r)
{
	unsigned op = r->m.hdr.opcode;
	const struct op_entry *e = op < ORFA_OP_MAX ? &op_table[op] : NULL;
	int ret;

	log_debug("%s: %s #%llu", sreq_session(r)->peer, e && e->fn ? e->name : "?",
		  (unsigned long long)r->m.hdr.req_id);
	ret = access_check(sreq_session(r), &r->m);
	if (ret == 0)
		ret = e && e->fn ? e->fn(r) : -ENOSYS;
	if (ret == SREQ_PARKED)
		return;
	if (ret < 0) {
		if (!routine_error(-ret))
			log_warn("%s: %s on node %llu failed: %s",
				 sreq_session(r)->peer, e && e->fn ? e->name : "?",
				 (unsigned long long)r->m.a.getattr.nodeid,
				 strerror(-ret));
		else
			log_debug("%s: %s #%llu: %s", sreq_session(r)->peer,
				  e && e->fn ? e->name : "?",
				  (unsigned long long)r->m.hdr.req_id,
				  strerror(-ret));
		if (!(r->m.hdr.flags & ORFA_F_NOREPLY) && ret != -ECANCELED)
			sreq_reply_err(r, -ret);
	}
	sreq_finish(r);
}
