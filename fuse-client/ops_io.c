/*
 * ops_io.c - FUSE low-level operations on open files and directories:
 * open/create/read/write/flush/release/fsync, directory listing,
 * fallocate, lseek, copy_file_range.  Locks are in ops_lock.c, extended
 * attributes in ops_xattr.c, reopening files after a reconnect in
 * ops_reopen.c.
 *
 * Data paths: READ replies land in the call's sink buffer (no copy in
 * user space) and go to the kernel with fuse_reply_buf; WRITE data goes to
 * the transport straight from libfuse's request buffer, which stays valid
 * because orfa_call_send does not return before the transport is done with
 * it.  fi->fh is a struct cfile: the server's file id and the connection it
 * belongs to.
 *
 * Connections (conns=N): calls carrying a file id go where the file was
 * opened; OPEN goes to the node's own connection (orfa_node_conn), where
 * POSIX locks go too (ops_lock.c: the server keys lock owners by
 * connection), so a process's locks on one file all meet there.  A file made by CREATE lives
 * on whichever connection created it; closing it also drops the owner's
 * POSIX locks on the node's connection (flush).
 */
#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* ---- open, create ---------------------------------------------------- */

/* Flags the server sees: with the writeback cache the kernel may read
 * from a file opened write-only and does O_APPEND itself. */
static uint32_t open_flags(const struct orfa_mount *m, int flags)
{
	if (m->writeback) {
		if ((flags & O_ACCMODE) == O_WRONLY)
			flags = (flags & ~O_ACCMODE) | O_RDWR;
		flags &= ~O_APPEND;
	}
	/* O_DIRECT is the kernel's business (no page cache on this
	 * client); the server need not honour alignment for it. */
	flags &= ~O_DIRECT;
	return (uint32_t)flags;
}

static void done_open(struct orfa_call *call, int err,
		      const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);
	struct orfa_mount *m = ctx->m;
	struct fuse_file_info fi = ctx->fi;
	struct cfile *cf;
	bool keep;

	if (err) {
		fuse_reply_err(ctx->req, -err);
		return;
	}
	cf = malloc(sizeof(*cf));
	if (!cf) {
		orfa_client_release(m->cl, orfa_call_conn(call), ctx->node,
				    rep->a.open_rep.fh, 0);
		fuse_reply_err(ctx->req, ENOMEM);
		return;
	}
	cf->sfh = rep->a.open_rep.fh;
	cf->node = ctx->node;
	cf->conn = orfa_call_conn(call);
	cfile_track(m, cf, false, orfa_call_msg(call));
	keep = nodes_open_keep(m->nodes, ctx->node, &rep->a.open_rep.attr);
	switch (m->cache) {
	case ORFA_CACHE_NONE:
		keep = false;
		break;
	case ORFA_CACHE_ALWAYS:
		keep = true;
		break;
	case ORFA_CACHE_AUTO:
		/* Close-to-open: the file changed since we last saw it, so
		 * the kernel's cached size and times are stale too. */
		if (!keep && m->se)
			fuse_lowlevel_notify_inval_inode(m->se,
				orfa_node_to_ino(m, ctx->node), -1, 0);
		break;
	}
	fi.fh = (uint64_t)(uintptr_t)cf;
	fi.keep_cache = keep;
	fi.direct_io = 0;
	if (fuse_reply_open(ctx->req, &fi) < 0) {
		cfile_untrack(m, cf);
		orfa_client_release(m->cl, cf->conn, cf->node, cf->sfh, 0);
		free(cf);
	}
}

void orfa_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;

	if (!(call = op_call(req, ORFA_OP_OPEN, 0, &ctx)))
		return;
	ctx->node = orfa_ino_to_node(ctx->m, ino);
	ctx->fi = *fi;
	msg = orfa_call_msg(call);
	msg->a.open.nodeid = ctx->node;
	msg->a.open.flags = open_flags(ctx->m, fi->flags);
	orfa_call_set_conn(call, orfa_node_conn(ctx->m, ctx->node));
	orfa_call_send(call, NULL, 0, 0, done_open, NULL);
}

static void done_create(struct orfa_call *call, int err,
			const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);
	struct fuse_file_info fi = ctx->fi;
	unsigned conn = orfa_call_conn(call);
	const struct orfa_entry *e;
	struct cfile *cf;

	if (err) {
		fuse_reply_err(ctx->req, -err);
		return;
	}
	e = &rep->a.create_rep.entry;
	cf = malloc(sizeof(*cf));
	if (!cf) {
		orfa_client_release(ctx->m->cl, conn, e->nodeid,
				    rep->a.create_rep.fh, 0);
		orfa_client_forget(ctx->m->cl, conn, e->nodeid, 1);
		fuse_reply_err(ctx->req, ENOMEM);
		return;
	}
	cf->sfh = rep->a.create_rep.fh;
	cf->node = e->nodeid;
	cf->conn = conn;
	cfile_track(ctx->m, cf, false, orfa_call_msg(call));
	fi.fh = (uint64_t)(uintptr_t)cf;
	fi.keep_cache = 0;
	fi.direct_io = 0;
	op_reply_entry(ctx->m, ctx->req, conn, e, &fi);
}

void orfa_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		    mode_t mode, struct fuse_file_info *fi)
{
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;
	size_t len = strlen(name);

	if (len > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (!(call = op_call(req, ORFA_OP_CREATE, 0, &ctx)))
		return;
	ctx->fi = *fi;
	msg = orfa_call_msg(call);
	msg->a.create.parent = orfa_ino_to_node(ctx->m, parent);
	msg->a.create.mode = mode;
	msg->a.create.flags = open_flags(ctx->m, fi->flags);
	msg->name = name;
	msg->namelen = (uint32_t)len;
	orfa_call_send(call, NULL, 0, 0, done_create, NULL);
}

/* ---- read, write -------------------------------------------------------- */

static void done_read(struct orfa_call *call, int err,
		      const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);

	if (err)
		fuse_reply_err(ctx->req, -err);
	else
		fuse_reply_buf(ctx->req, rep->data, rep->data_len);
}

void orfa_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		  struct fuse_file_info *fi)
{
	struct orfa_mount *m = req_mount(req);
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;

	if (size > m->max_data)
		size = m->max_data;	/* a short read; the kernel retries */
	if (!(call = op_call(req, ORFA_OP_READ, size, &ctx)))
		return;
	msg = orfa_call_msg(call);
	msg->a.read.nodeid = orfa_ino_to_node(m, ino);
	msg->a.read.fh = cfile_of(fi)->sfh;
	orfa_call_set_conn(call, cfile_of(fi)->conn);
	msg->a.read.offset = (uint64_t)off;
	msg->a.read.size = (uint32_t)size;
	orfa_call_send(call, NULL, 0, 0, done_read, NULL);
}

static void done_write(struct orfa_call *call, int err,
		       const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);

	if (err) {
		fuse_reply_err(ctx->req, -err);
		return;
	}
	if (rep->a.write_rep.written > ctx->size) {
		fuse_reply_err(ctx->req, EIO);
		return;
	}
	nodes_observe(ctx->m->nodes, ctx->node, &rep->a.write_rep.attr, true);
	fuse_reply_write(ctx->req, (size_t)rep->a.write_rep.written);
}

void orfa_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		   size_t size, off_t off, struct fuse_file_info *fi)
{
	struct orfa_mount *m = req_mount(req);
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = size };
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;

	if (size > m->max_data) {
		/* Cannot happen: max_write <= max_data (init). */
		fuse_reply_err(req, EIO);
		return;
	}
	if (!(call = op_call(req, ORFA_OP_WRITE, 0, &ctx)))
		return;
	ctx->node = orfa_ino_to_node(m, ino);
	ctx->size = (uint32_t)size;
	msg = orfa_call_msg(call);
	msg->a.write.nodeid = ctx->node;
	msg->a.write.fh = cfile_of(fi)->sfh;
	orfa_call_set_conn(call, cfile_of(fi)->conn);
	cfile_mark_written(cfile_of(fi));
	msg->a.write.offset = (uint64_t)off;
	msg->a.write.flags = open_flags(m, fi->flags);
	/* buf lives in libfuse's per-thread buffer until we return; the
	 * transport has sent it by the time orfa_call_send returns. */
	orfa_call_send(call, &iov, 1, 0, done_write, NULL);
}

/* ---- flush, release, fsync ------------------------------------------- */

/* FLUSH, RELEASE(DIR), FSYNC(DIR) on the file's connection. */
static void send_fh(fuse_req_t req, unsigned opcode, fuse_ino_t ino,
		    const struct cfile *cf, uint64_t owner, uint32_t flags)
{
	struct orfa_call *call;
	struct orfa_fh_req *a;
	struct op_ctx *ctx;

	if (!(call = op_call(req, opcode, 0, &ctx)))
		return;
	a = &orfa_call_msg(call)->a.fh;
	a->nodeid = orfa_ino_to_node(ctx->m, ino);
	a->fh = cf->sfh;
	a->lock_owner = owner;
	a->flags = flags;
	orfa_call_set_conn(call, cf->conn);
	orfa_call_send(call, NULL, 0, 0, op_done_err, NULL);
}

/*
 * Whether a FLUSH has work on the server.  It drops the closing owner's
 * POSIX locks, which exist only on nodes this client asked to lock
 * (orfa_op_setlk marks them before sending), and runs the backend's flush
 * (native: close of a duplicate descriptor, where a file system below such
 * as NFS reports errors of writes it buffered), which matters only after
 * data or size changed through this open file.  Otherwise close(2) is
 * answered here, one round trip fewer.  With the writeback cache the
 * kernel writes dirty pages through any open file of the node, so every
 * FLUSH goes.
 */
static bool flush_needed(struct orfa_mount *m, const struct cfile *cf)
{
	if (m->writeback ||
	    atomic_load_explicit(&cf->written, memory_order_acquire))
		return true;
	if (!(m->features & ORFA_FEAT_LOCKS))
		return false;	/* the kernel keeps the locks itself */
	return atomic_load(&m->locks_untracked) ||
	       nodes_locked(m->nodes, cf->node);
}

void orfa_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct orfa_mount *m = req_mount(req);
	struct cfile *cf = cfile_of(fi);
	unsigned lk_conn = orfa_node_conn(m, cf->node);

	if (!flush_needed(m, cf)) {
		fuse_reply_err(req, 0);
		return;
	}

	/* close(2) drops the owner's POSIX locks, which live on the node's
	 * connection; FLUSH drops them only on its own. */
	if (cf->conn != lk_conn && (m->features & ORFA_FEAT_LOCKS)) {
		struct orfa_call *undo;
		struct op_ctx *ctx;

		undo = op_call(req, ORFA_OP_SETLK, 0, &ctx);
		if (!undo)
			return;		/* answered ENOMEM */
		orfa_call_msg(undo)->a.lk.nodeid = cf->node;
		orfa_call_msg(undo)->a.lk.owner = fi->lock_owner;
		orfa_call_msg(undo)->a.lk.lock.start = 0;
		orfa_call_msg(undo)->a.lk.lock.end = UINT64_MAX;
		orfa_call_msg(undo)->a.lk.lock.type = F_UNLCK;
		orfa_call_set_conn(undo, lk_conn);
		orfa_call_send(undo, NULL, 0, 0, op_unlock_done, NULL);
	}
	send_fh(req, ORFA_OP_FLUSH, ino, cf, fi->lock_owner, 0);
}

void orfa_op_release(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi)
{
	struct cfile *cf = cfile_of(fi);

	cfile_untrack(req_mount(req), cf);
	send_fh(req, ORFA_OP_RELEASE, ino, cf,
		fi->flock_release ? fi->lock_owner : 0, 0);
	free(cf);
}

void orfa_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		   struct fuse_file_info *fi)
{
	send_fh(req, ORFA_OP_FSYNC, ino, cfile_of(fi), 0, datasync ? 1 : 0);
}

void orfa_op_releasedir(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct cfile *cf = cfile_of(fi);

	cfile_untrack(req_mount(req), cf);
	send_fh(req, ORFA_OP_RELEASEDIR, ino, cf, 0, 0);
	free(cf);
}

void orfa_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi)
{
	send_fh(req, ORFA_OP_FSYNCDIR, ino, cfile_of(fi), 0, datasync ? 1 : 0);
}

/* ---- directories -------------------------------------------------------- */

static void done_opendir(struct orfa_call *call, int err,
			 const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);
	struct fuse_file_info fi = ctx->fi;
	struct cfile *cf;

	if (err) {
		fuse_reply_err(ctx->req, -err);
		return;
	}
	cf = malloc(sizeof(*cf));
	if (!cf) {
		orfa_client_release(ctx->m->cl, orfa_call_conn(call), ctx->node,
				    rep->a.open_rep.fh, 1);
		fuse_reply_err(ctx->req, ENOMEM);
		return;
	}
	cf->sfh = rep->a.open_rep.fh;
	cf->node = ctx->node;
	cf->conn = orfa_call_conn(call);
	cfile_track(ctx->m, cf, true, orfa_call_msg(call));
	fi.fh = (uint64_t)(uintptr_t)cf;
	if (fuse_reply_open(ctx->req, &fi) < 0) {
		cfile_untrack(ctx->m, cf);
		orfa_client_release(ctx->m->cl, cf->conn, cf->node, cf->sfh, 1);
		free(cf);
	}
}

void orfa_op_opendir(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi)
{
	struct orfa_call *call;
	struct op_ctx *ctx;

	if (!(call = op_call(req, ORFA_OP_OPENDIR, 0, &ctx)))
		return;
	ctx->node = orfa_ino_to_node(ctx->m, ino);
	ctx->fi = *fi;
	orfa_call_msg(call)->a.open.nodeid = ctx->node;
	orfa_call_msg(call)->a.open.flags = (uint32_t)fi->flags;
	orfa_call_send(call, NULL, 0, 0, done_opendir, NULL);
}

static bool is_dot(const char *name, uint32_t len)
{
	return (len == 1 && name[0] == '.') ||
	       (len == 2 && name[0] == '.' && name[1] == '.');
}

/* Give back the reference of a READDIRPLUS entry the kernel did not take. */
static void entry_giveback(struct orfa_mount *m, unsigned conn,
			   const struct orfa_entry *e)
{
	orfa_client_forget(m->cl, conn, e->nodeid, 1);
}

/* A READDIR(PLUS) reply being turned into the kernel's buffer. */
struct dirbuf {
	struct orfa_mount *m;
	fuse_req_t req;
	unsigned conn;			/* where the entries' references live */
	int plus;
	char *out;			/* size bytes */
	size_t size, pos;
	bool full;			/* an entry did not fit: skip the rest */
	uint64_t *added;		/* plus: nodes referenced for the kernel */
	size_t nadded;
};

/* Out of memory: give back the reference of every READDIRPLUS record. */
static void readdir_giveback_all(struct orfa_mount *m, unsigned conn,
				 const struct orfa_msg *rep)
{
	size_t off = 0;

	for (;;) {
		struct orfa_dirent d;
		struct orfa_entry e;
		const char *nm;

		if (orfa_dirent_next(rep->data, rep->data_len, &off, 1, &d, &e,
				     &nm) != 1)
			break;
		entry_giveback(m, conn, &e);
	}
}

/* Add one READDIRPLUS entry; one the kernel does not take a reference
 * for, or that does not fit, gives its reference back. */
static void dirbuf_add_plus(struct dirbuf *b, const struct orfa_dirent *d,
			    const struct orfa_entry *e, const char *name)
{
	struct fuse_entry_param p;
	bool counted = !is_dot(name, d->namelen) && e->nodeid;
	size_t need;

	if (counted) {
		op_fill_entry_param(b->m, e, &p);
	} else {
		/* The kernel takes no reference for "." and "..", nor for
		 * node 0. */
		memset(&p, 0, sizeof(p));
		p.attr.st_ino = d->ino;
		p.attr.st_mode = (mode_t)(d->type << 12);
		entry_giveback(b->m, b->conn, e);
	}
	need = fuse_add_direntry_plus(b->req, b->out + b->pos,
				      b->size - b->pos, name, &p,
				      (off_t)d->cookie);
	if (need > b->size - b->pos) {
		b->full = true;
		if (counted)
			entry_giveback(b->m, b->conn, e);
		return;
	}
	if (counted) {
		nodes_ref(b->m->nodes, e->nodeid, &e->attr, b->conn);
		b->added[b->nadded++] = e->nodeid;
	}
	b->pos += need;
}

/* Add one plain READDIR entry. */
static void dirbuf_add(struct dirbuf *b, const struct orfa_dirent *d,
		       const char *name)
{
	struct stat st;
	size_t need;

	memset(&st, 0, sizeof(st));
	st.st_ino = d->ino;
	st.st_mode = (mode_t)(d->type << 12);
	need = fuse_add_direntry(b->req, b->out + b->pos, b->size - b->pos,
				 name, &st, (off_t)d->cookie);
	if (need > b->size - b->pos) {
		b->full = true;
		return;
	}
	b->pos += need;
}

/* Fill b from the reply's records.  Returns 0, or -1 when a record was
 * malformed (the records after it are lost, and with them any lookup
 * references they carried). */
static int dirbuf_fill(struct dirbuf *b, const struct orfa_msg *rep)
{
	size_t off = 0;

	for (;;) {
		struct orfa_dirent d;
		struct orfa_entry e;
		const char *nm;
		char name[NAME_MAX + 1];
		int rc;

		rc = orfa_dirent_next(rep->data, rep->data_len, &off, b->plus,
				      &d, &e, &nm);
		if (rc == 0)
			return 0;
		if (rc < 0) {
			log_err("malformed directory record from the server");
			return -1;
		}
		if (b->full || d.namelen == 0 || d.namelen > NAME_MAX) {
			if (b->plus)
				entry_giveback(b->m, b->conn, &e);
			continue;
		}
		memcpy(name, nm, d.namelen);
		name[d.namelen] = '\0';
		if (b->plus)
			dirbuf_add_plus(b, &d, &e, name);
		else
			dirbuf_add(b, &d, name);
	}
}

static void done_readdir(struct orfa_call *call, int err,
			 const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);
	struct dirbuf b = {
		.m = ctx->m, .req = ctx->req, .conn = orfa_call_conn(call),
		.plus = ctx->plus, .size = ctx->size,
	};
	int rc;

	if (err) {
		fuse_reply_err(b.req, -err);
		return;
	}
	b.out = malloc(b.size ? b.size : 1);
	/* At most one counted entry per 152 bytes of FUSE buffer. */
	if (b.plus)
		b.added = malloc((b.size / 152 + 1) * sizeof(*b.added));
	if (!b.out || (b.plus && !b.added)) {
		free(b.out);
		free(b.added);
		if (b.plus && rep->data_len)
			readdir_giveback_all(b.m, b.conn, rep);
		fuse_reply_err(b.req, ENOMEM);
		return;
	}

	if (dirbuf_fill(&b, rep) < 0 && b.pos == 0) {
		fuse_reply_err(b.req, EIO);
		rc = -1;
	} else {
		rc = fuse_reply_buf(b.req, b.out, b.pos);
	}
	if (rc < 0) {
		/* The kernel took none of the entries. */
		for (size_t i = 0; i < b.nadded; i++)
			op_forget_node(b.m, b.added[i], 1);
	}
	free(b.added);
	free(b.out);
}

static void send_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			 off_t off, struct fuse_file_info *fi, int plus)
{
	struct orfa_mount *m = req_mount(req);
	struct orfa_readdir_req *a;
	struct orfa_call *call;
	struct op_ctx *ctx;
	size_t ask;

	if (size > m->max_data)
		size = m->max_data;
	/*
	 * A READDIRPLUS record is 128 bytes + name on the wire and 152 +
	 * name in the FUSE buffer: ask for 128/152 of the space so that
	 * whatever the server sends fits and no reference is handed back.
	 */
	ask = plus ? size * 128 / 152 : size;
	if (!(call = op_call(req, plus ? ORFA_OP_READDIRPLUS : ORFA_OP_READDIR,
			     ask, &ctx)))
		return;
	ctx->size = (uint32_t)size;
	ctx->plus = plus;
	ctx->node = orfa_ino_to_node(m, ino);
	a = &orfa_call_msg(call)->a.readdir;
	a->nodeid = ctx->node;
	a->fh = cfile_of(fi)->sfh;
	a->cookie = (uint64_t)off;
	orfa_call_set_conn(call, cfile_of(fi)->conn);
	a->size = (uint32_t)ask;
	orfa_call_send(call, NULL, 0, 0, done_readdir, NULL);
}

void orfa_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	send_readdir(req, ino, size, off, fi, 0);
}

void orfa_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			 off_t off, struct fuse_file_info *fi)
{
	send_readdir(req, ino, size, off, fi, 1);
}

/* ---- space and ranges ---------------------------------------------------- */

static void done_fallocate(struct orfa_call *call, int err,
			   const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);

	if (!err)
		nodes_observe(ctx->m->nodes, ctx->node, &rep->a.attr, true);
	fuse_reply_err(ctx->req, -err);
}

void orfa_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
		       off_t length, struct fuse_file_info *fi)
{
	struct orfa_fallocate_req *a;
	struct orfa_call *call;
	struct op_ctx *ctx;

	if (!(call = op_call(req, ORFA_OP_FALLOCATE, 0, &ctx)))
		return;
	ctx->node = orfa_ino_to_node(ctx->m, ino);
	a = &orfa_call_msg(call)->a.fallocate;
	a->nodeid = ctx->node;
	a->fh = cfile_of(fi)->sfh;
	a->offset = (uint64_t)offset;
	a->length = (uint64_t)length;
	cfile_mark_written(cfile_of(fi));
	orfa_call_set_conn(call, cfile_of(fi)->conn);
	a->mode = (uint32_t)mode;
	orfa_call_send(call, NULL, 0, 0, done_fallocate, NULL);
}

static void done_lseek(struct orfa_call *call, int err,
		       const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);

	if (err)
		fuse_reply_err(ctx->req, -err);
	else if (rep->a.lseek_rep.offset > (uint64_t)INT64_MAX)
		fuse_reply_err(ctx->req, EIO);
	else
		fuse_reply_lseek(ctx->req, (off_t)rep->a.lseek_rep.offset);
}

void orfa_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		   struct fuse_file_info *fi)
{
	struct orfa_lseek_req *a;
	struct orfa_call *call;
	struct op_ctx *ctx;

	/* SEEK_SET/CUR/END never come here: the kernel handles them. */
	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!(call = op_call(req, ORFA_OP_LSEEK, 0, &ctx)))
		return;
	a = &orfa_call_msg(call)->a.lseek;
	a->nodeid = orfa_ino_to_node(ctx->m, ino);
	a->fh = cfile_of(fi)->sfh;
	a->offset = (uint64_t)off;
	a->whence = (uint32_t)whence;
	orfa_call_set_conn(call, cfile_of(fi)->conn);
	orfa_call_send(call, NULL, 0, 0, done_lseek, NULL);
}

static void done_copy(struct orfa_call *call, int err,
		      const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);

	if (err) {
		fuse_reply_err(ctx->req, -err);
		return;
	}
	nodes_observe(ctx->m->nodes, ctx->node, &rep->a.copy_rep.attr, true);
	fuse_reply_write(ctx->req, (size_t)rep->a.copy_rep.copied);
}

void orfa_op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			     struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			     off_t off_out, struct fuse_file_info *fi_out,
			     size_t len, int flags)
{
	struct orfa_copy_range_req *a;
	struct orfa_call *call;
	struct op_ctx *ctx;

	/* ENOSYS makes the kernel fall back to read + write for good, EXDEV
	 * just this once (the two files live on different connections, so
	 * no single server call can name both). */
	if (!(req_mount(req)->features & ORFA_FEAT_COPY_RANGE)) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (cfile_of(fi_in)->conn != cfile_of(fi_out)->conn) {
		fuse_reply_err(req, EXDEV);
		return;
	}
	if (!(call = op_call(req, ORFA_OP_COPY_FILE_RANGE, 0, &ctx)))
		return;
	ctx->node = orfa_ino_to_node(ctx->m, ino_out);
	a = &orfa_call_msg(call)->a.copy;
	a->nodeid_in = orfa_ino_to_node(ctx->m, ino_in);
	a->fh_in = cfile_of(fi_in)->sfh;
	a->off_in = (uint64_t)off_in;
	a->nodeid_out = ctx->node;
	a->fh_out = cfile_of(fi_out)->sfh;
	cfile_mark_written(cfile_of(fi_out));
	orfa_call_set_conn(call, cfile_of(fi_out)->conn);
	a->off_out = (uint64_t)off_out;
	a->len = len;
	a->flags = (uint32_t)flags;
	orfa_call_send(call, NULL, 0, 0, done_copy, NULL);
}
