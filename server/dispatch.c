/*
 * dispatch.c - what orfad does with each request: dispatch_request, the
 * entry point the pipeline calls, passes the session's access checks
 * (access.h: squashing, read-only exports, subdirectory confinement) and
 * runs the handler of the table indexed by opcode; handlers take the
 * decoded arguments, check the file ids and node references of the
 * session, call the backend or the lock manager, and answer through the
 * request API (request.h).  This file holds the table, the entry point,
 * the shared helpers (dispatch_impl.h) and the handlers of nodes (LOOKUP
 * to LINK), of the file system (STATFS), xattrs and ACCESS.
 *
 * Not here: open files, data and directories (dispatch_io.c), locks
 * (dispatch_lock.c), the handshake (hello.c), reading, queueing and
 * connection lifetimes (conn.c, loop.c, workers.c).
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

#include "dispatch_impl.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

/* ---- helpers ------------------------------------------------------------ */

int reply_entry(struct sreq *r, const struct orfa_entry *e)
{
	struct orfa_msg rep;
	int ret = access_ref_add(sreq_session(r), e->nodeid, 1);

	if (ret < 0) {
		OPS(r)->forget(BE(r), e->nodeid, 1);
		if (ret == -ENFILE)
			sreq_limit_hit(r, "nodes (--max-nodes)", ret);
		return ret;
	}
	rep_init(&rep);
	rep.a.entry = *e;
	sreq_reply(r, &rep, NULL);
	return 0;
}

int file_get(struct sreq *r, uint64_t nodeid, uint64_t id, int kind,
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

/* ---- nodes --------------------------------------------------------------- */

static int h_lookup(struct sreq *r)
{
	const struct orfa_lookup_req *a = &r->m.a.lookup;
	struct ssession *s = sreq_session(r);
	struct orfa_entry e;
	int ret;

	if (access_is_dotdot_lookup(s, &r->m))
		ret = access_lookup_dotdot(s, &r->m.cred, a->parent, &e);
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
	const char *name = e && e->fn ? e->name : "?";
	struct ssession *s = sreq_session(r);
	int64_t t0 = metrics_on() ? orfa_now_ns() : 0;
	uint32_t dlen = r->m.hdr.data_len;
	int ret, mex, mtp;

	log_debug("%s: %s #%llu", s->peer, name,
		  (unsigned long long)r->m.hdr.req_id);
	sreq_metrics_labels(r, &mex, &mtp);
	ret = access_check(s, &r->m);
	if (ret == 0)
		ret = e && e->fn ? e->fn(r) : -ENOSYS;
	/* r may be gone once parked: count from the copies. */
	if (t0) {
		metrics_request(mex, (enum metrics_tp)mtp, op,
				ret == SREQ_PARKED ? 0 : ret,
				(uint64_t)(orfa_now_ns() - t0));
		if (op == ORFA_OP_WRITE && ret >= 0 && ret != SREQ_PARKED)
			metrics_bytes(mex, (enum metrics_tp)mtp, 1, dlen);
	}
	if (ret == SREQ_PARKED)
		return;
	if (ret < 0) {
		if (!routine_error(-ret))
			log_warn("%s: %s on node %llu failed: %s", s->peer,
				 name,
				 (unsigned long long)r->m.a.getattr.nodeid,
				 strerror(-ret));
		else
			log_debug("%s: %s #%llu: %s", s->peer, name,
				  (unsigned long long)r->m.hdr.req_id,
				  strerror(-ret));
		if (!(r->m.hdr.flags & ORFA_F_NOREPLY) && ret != -ECANCELED)
			sreq_reply_err(r, -ret);
	}
	sreq_finish(r);
}
