/*
 * dispatch_io.c - the handlers of orfad for open files and their data:
 * OPEN, OPENDIR, CREATE (a file id per open), READ (memory, a copy of a
 * small file range, or a file range for sendfile), WRITE (from memory, or
 * straight from the connection into the file), FLUSH, RELEASE(DIR),
 * FSYNC(DIR), READDIR(PLUS), FALLOCATE, LSEEK, COPY_FILE_RANGE.  The
 * data segment of a reply leaves as a separate segment: memory through
 * writev, a file range through sendfile.  Not here: the table and the
 * node handlers (dispatch.c), locks (dispatch_lock.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dispatch_impl.h"
#include "log.h"

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
	if (ret == -EMFILE)
		sreq_limit_hit(r, "open files (--max-files)", ret);
	return ret;
}

int h_open(struct sreq *r)
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

int h_opendir(struct sreq *r)
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

int h_create(struct sreq *r)
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
	if (ret == 0) {
		ret = access_ref_add(sreq_session(r),
				     rep.a.create_rep.entry.nodeid, 1);
		if (ret == -ENFILE)
			sreq_limit_hit(r, "nodes (--max-nodes)", ret);
	}
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
static int read_call(struct sreq *r, struct sfile *f,
		     struct orfa_read_out *out, struct read_ctx **rcp)
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
static int read_copy_small(struct read_ctx **rcp,
			   const struct orfa_read_out *out, size_t *len)
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

int h_read(struct sreq *r)
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

int h_write(struct sreq *r)
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

int h_flush(struct sreq *r)
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
int h_release(struct sreq *r)
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
int h_fsync(struct sreq *r)
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
int h_readdir(struct sreq *r)
{
	const struct orfa_readdir_req *a = &r->m.a.readdir;
	struct ssession *s = sreq_session(r);
	struct orfa_txmsg tx = { .fd = -1 };
	struct dir_fill df;
	struct dir_ctx *dc;
	struct sfile *f;
	size_t cap;
	int ret;

	if (a->size == 0)
		return -EINVAL;
	cap = a->size < s->max_data ? a->size : s->max_data;
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
	df.at_view_root = s->view && f->nodeid == s->root_nodeid;
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

/* ---- ranges ------------------------------------------------------------------ */

int h_fallocate(struct sreq *r)
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

int h_lseek(struct sreq *r)
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

int h_copy_file_range(struct sreq *r)
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
