/*
 * ops.c - FUSE low-level operations on nodes (lookup, attributes, names,
 * links, statfs, access), the shared helpers of ops.h, and the operation
 * table.  Files and directories: ops_io.c; locks: ops_lock.c; extended
 * attributes: ops_xattr.c; reopening files after a reconnect:
 * ops_reopen.c.
 *
 * Each operation validates what it can locally (names longer than NAME_MAX
 * fail with ENAMETOOLONG without a round trip), sends one ORFA call and
 * returns; the call's callback answers the FUSE request.
 */
#include "clock.h"
#include "ops.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "log.h"

/* ---- supplementary groups, cached per process ------------------------- */

/*
 * fuse_req_getgroups reads /proc/PID/task/TID/status: too slow for every
 * request.  Groups rarely change; a process's are reused for up to a second.
 */
#define GCACHE_SIZE	128
#define GCACHE_TTL_NS	1000000000LL

struct gcache_ent {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int64_t when;
	uint32_t n;
	uint32_t groups[ORFA_MAX_GROUPS];
};

struct orfa_gcache {
	pthread_mutex_t lock;
	struct gcache_ent ent[GCACHE_SIZE];
};

static uint32_t groups_get(struct orfa_gcache *gc, fuse_req_t req,
			   const struct fuse_ctx *c, uint32_t *out)
{
	struct gcache_ent *e = &gc->ent[(unsigned)c->pid % GCACHE_SIZE];
	int64_t now = orfa_now_ns();
	gid_t list[ORFA_MAX_GROUPS];
	uint32_t n;
	int rc;

	if (c->pid == 0)
		return 0;
	pthread_mutex_lock(&gc->lock);
	if (e->pid == c->pid && e->uid == c->uid && e->gid == c->gid &&
	    now - e->when < GCACHE_TTL_NS) {
		n = e->n;
		memcpy(out, e->groups, n * sizeof(*out));
		pthread_mutex_unlock(&gc->lock);
		return n;
	}
	pthread_mutex_unlock(&gc->lock);

	rc = fuse_req_getgroups(req, ORFA_MAX_GROUPS, list);
	if (rc < 0)
		return 0;	/* process gone, or no /proc: primary gid only */
	n = rc > (int)ORFA_MAX_GROUPS ? ORFA_MAX_GROUPS : (uint32_t)rc;
	for (uint32_t i = 0; i < n; i++)
		out[i] = list[i];

	pthread_mutex_lock(&gc->lock);
	e->pid = c->pid;
	e->uid = c->uid;
	e->gid = c->gid;
	e->when = now;
	e->n = n;
	memcpy(e->groups, out, n * sizeof(*out));
	pthread_mutex_unlock(&gc->lock);
	return n;
}

int orfa_mount_init(struct orfa_mount *m, unsigned nconns)
{
	m->files = NULL;
	atomic_init(&m->locks_untracked, false);
	m->nodes = nodes_new(nconns);
	m->groups = calloc(1, sizeof(*m->groups));
	if (!m->nodes || !m->groups) {
		orfa_mount_fini(m);
		return -ENOMEM;
	}
	pthread_mutex_init(&m->groups->lock, NULL);
	pthread_mutex_init(&m->files_lock, NULL);
	m->files = NULL;
	return 0;
}

/* Called once the FUSE session and the client are gone (no other thread
 * left).  Files still open then were never released by the kernel (the
 * mount was torn down under them, e.g. after the server died): free them. */
void orfa_mount_fini(struct orfa_mount *m)
{
	while (m->files) {
		struct cfile *cf = m->files;

		m->files = cf->next;
		free(cf);
	}
	nodes_free(m->nodes);
	m->nodes = NULL;
	if (m->groups) {
		pthread_mutex_destroy(&m->groups->lock);
		free(m->groups);
		m->groups = NULL;
	}
}

/* ---- shared helpers ----------------------------------------------------- */

struct orfa_call *op_call(fuse_req_t req, unsigned opcode, size_t sink_len,
			  struct op_ctx **ctxp)
{
	struct orfa_mount *m = req_mount(req);
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;

	call = orfa_call_new(m->cl, opcode, sink_len, sizeof(*ctx));
	if (!call) {
		fuse_reply_err(req, ENOMEM);
		return NULL;
	}
	ctx = orfa_call_ctx(call);
	ctx->req = req;
	ctx->m = m;
	msg = orfa_call_msg(call);
	msg->cred.uid = c->uid;
	msg->cred.gid = c->gid;
	msg->cred.pid = (uint32_t)c->pid;
	msg->cred.umask = c->umask;
	msg->cred.ngroups = groups_get(m->groups, req, c, msg->cred.groups);
	*ctxp = ctx;
	return call;
}

void orfa_attr_to_stat(const struct orfa_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_rdev = a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blksize = a->blksize;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_atim.tv_sec = a->atime;
	st->st_atim.tv_nsec = a->atime_nsec;
	st->st_mtim.tv_sec = a->mtime;
	st->st_mtim.tv_nsec = a->mtime_nsec;
	st->st_ctim.tv_sec = a->ctime;
	st->st_ctim.tv_nsec = a->ctime_nsec;
}

void op_fill_entry_param(struct orfa_mount *m, const struct orfa_entry *e,
			 struct fuse_entry_param *p)
{
	memset(p, 0, sizeof(*p));
	p->ino = orfa_node_to_ino(m, e->nodeid);
	p->generation = e->generation;
	orfa_attr_to_stat(&e->attr, &p->attr);
	p->attr_timeout = m->attr_timeout;
	p->entry_timeout = m->entry_timeout;
}

int op_reply_entry(struct orfa_mount *m, fuse_req_t req, unsigned conn,
		   const struct orfa_entry *e, const struct fuse_file_info *fi)
{
	struct fuse_entry_param p;
	int rc;

	op_fill_entry_param(m, e, &p);
	/* Count the reference before the kernel can forget it. */
	nodes_ref(m->nodes, e->nodeid, &e->attr, conn);
	rc = fi ? fuse_reply_create(req, &p, fi) : fuse_reply_entry(req, &p);
	if (rc < 0) {
		/* The kernel did not take it (request interrupted): it will
		 * never forget this reference nor release this file. */
		op_forget_node(m, e->nodeid, 1);
		if (fi) {
			struct cfile *cf = cfile_of(fi);

			cfile_untrack(m, cf);
			orfa_client_release(m->cl, cf->conn, cf->node,
					    cf->sfh, 0);
			free(cf);
		}
	}
	return rc;
}

void op_forget_node(struct orfa_mount *m, uint64_t node, uint64_t nlookup)
{
	uint64_t per[ORFA_MAX_CONNS];
	unsigned n = orfa_client_nconns(m->cl);

	nodes_forget(m->nodes, node, nlookup, per);
	for (unsigned c = 0; c < n; c++)
		if (per[c])
			orfa_client_forget(m->cl, c, node, per[c]);
}

void op_done_err(struct orfa_call *call, int err, const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);

	fuse_reply_err(ctx->req, -err);
}

void op_done_entry(struct orfa_call *call, int err, const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);

	if (err)
		fuse_reply_err(ctx->req, -err);
	else if (rep->a.entry.nodeid == ORFA_ROOT_ID_NONE)
		fuse_reply_err(ctx->req, EIO);
	else
		op_reply_entry(ctx->m, ctx->req, orfa_call_conn(call),
			       &rep->a.entry, NULL);
}

/* Names the kernel hands us are NUL-terminated; longer than NAME_MAX fails
 * here.  Returns the length or -1 after answering req. */
static long name_ok(fuse_req_t req, const char *name)
{
	size_t len = strlen(name);

	if (len > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return -1;
	}
	return (long)len;
}

/* ---- init / destroy ------------------------------------------------------ */

#define ORFA_MAX_WRITE	(1u << 20)

static void orfa_op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct orfa_mount *m = userdata;
	unsigned want = FUSE_CAP_ASYNC_READ | FUSE_CAP_ATOMIC_O_TRUNC |
			FUSE_CAP_PARALLEL_DIROPS;
	unsigned unwanted = FUSE_CAP_HANDLE_KILLPRIV | FUSE_CAP_DONT_MASK;

	/* Locks live on the server so that every client sees them. */
	if (m->features & ORFA_FEAT_LOCKS)
		want |= FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS;
	else
		unwanted |= FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS;
	if (m->features & ORFA_FEAT_READDIRPLUS)
		want |= FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO;
	else
		unwanted |= FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO;
	if (m->writeback)
		want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		unwanted |= FUSE_CAP_WRITEBACK_CACHE;
	/* auto: the kernel drops cached pages when it sees mtime or size
	 * change in fresh attributes (another client wrote).  none has
	 * zero timeouts, where this would cost a GETATTR per read; always
	 * trusts its cache by definition. */
	if (m->cache == ORFA_CACHE_AUTO)
		want |= FUSE_CAP_AUTO_INVAL_DATA;
	else
		unwanted |= FUSE_CAP_AUTO_INVAL_DATA;

	conn->want &= ~unwanted;
	conn->want |= want & conn->capable;
	if ((want & FUSE_CAP_WRITEBACK_CACHE) &&
	    !(conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		log_warn("kernel lacks the FUSE writeback cache; writeback=1 "
			 "ignored");

	/* Large requests: libfuse raises max_pages from max_write. */
	conn->max_write = ORFA_MAX_WRITE < m->max_data ? ORFA_MAX_WRITE :
							 m->max_data;
	conn->max_readahead = conn->max_write;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->time_gran = 1;
	log_info("FUSE protocol %u.%u, max_write %u, want 0x%x", conn->proto_major,
		 conn->proto_minor, conn->max_write, conn->want);
}

static void orfa_op_destroy(void *userdata)
{
	/* Nothing to send: the connections close after the session, and the
	 * server drops what this client held. */
}

/* ---- lookups and attributes ------------------------------------------- */

static void done_lookup(struct orfa_call *call, int err,
			const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);

	if (err == -ENOENT && ctx->m->negative_timeout > 0) {
		struct fuse_entry_param p;

		memset(&p, 0, sizeof(p));
		p.entry_timeout = ctx->m->negative_timeout;
		fuse_reply_entry(ctx->req, &p);
		return;
	}
	op_done_entry(call, err, rep);
}

static void orfa_op_lookup(fuse_req_t req, fuse_ino_t parent,
			   const char *name)
{
	struct orfa_mount *m = req_mount(req);
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;
	long len = name_ok(req, name);

	if (len < 0 || !(call = op_call(req, ORFA_OP_LOOKUP, 0, &ctx)))
		return;
	msg = orfa_call_msg(call);
	msg->a.lookup.parent = orfa_ino_to_node(m, parent);
	msg->name = name;
	msg->namelen = (uint32_t)len;
	orfa_call_send(call, NULL, 0, 0, done_lookup, NULL);
}

static void forget_one(struct orfa_mount *m, fuse_ino_t ino, uint64_t n)
{
	op_forget_node(m, orfa_ino_to_node(m, ino), n);
}

static void orfa_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(req_mount(req), ino, nlookup);
	fuse_reply_none(req);
}

static void orfa_op_forget_multi(fuse_req_t req, size_t count,
				 struct fuse_forget_data *forgets)
{
	struct orfa_mount *m = req_mount(req);

	for (size_t i = 0; i < count; i++)
		forget_one(m, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* GETATTR, SETATTR: reply with attributes.  ctx->size != 0 marks our own
 * change (setattr). */
static void done_attr(struct orfa_call *call, int err,
		      const struct orfa_msg *rep);

/*
 * With the writeback cache the kernel owns a file's times and writes them
 * back with a SETATTR of MTIME|CTIME under the credentials of whoever
 * closes or syncs the file.  A server that checks ownership refuses that
 * to a writer who does not own the file (EPERM), and close(2) would fail.
 * Such a flush is not the user setting times: answer it with the server's
 * attributes instead.  (A user's utimensat with UTIME_OMIT for atime looks
 * the same and would then succeed without effect; only with writeback=1.)
 */
static bool times_flush_refused(const struct op_ctx *ctx, int err)
{
	return err == -EPERM && ctx->m->writeback &&
	       ctx->fi.flags == (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_CTIME);
}

static void getattr_instead(struct orfa_call *call)
{
	struct op_ctx *ctx = orfa_call_ctx(call), *nctx;
	struct orfa_call *get;

	get = orfa_call_new(ctx->m->cl, ORFA_OP_GETATTR, 0, sizeof(*nctx));
	if (!get) {
		fuse_reply_err(ctx->req, ENOMEM);
		return;
	}
	nctx = orfa_call_ctx(get);
	nctx->req = ctx->req;
	nctx->m = ctx->m;
	nctx->node = ctx->node;
	orfa_call_msg(get)->cred = orfa_call_msg(call)->cred;
	orfa_call_msg(get)->a.getattr.nodeid = ctx->node;
	orfa_call_send(get, NULL, 0, 0, done_attr, NULL);
}

static void done_attr(struct orfa_call *call, int err,
		      const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);
	struct stat st;

	if (ctx->size && times_flush_refused(ctx, err)) {
		getattr_instead(call);
		return;
	}
	if (err) {
		fuse_reply_err(ctx->req, -err);
		return;
	}
	nodes_observe(ctx->m->nodes, ctx->node, &rep->a.attr, ctx->size != 0);
	orfa_attr_to_stat(&rep->a.attr, &st);
	fuse_reply_attr(ctx->req, &st, ctx->m->attr_timeout);
}

static void orfa_op_getattr(fuse_req_t req, fuse_ino_t ino,
			    struct fuse_file_info *fi)
{
	struct orfa_mount *m = req_mount(req);
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;

	if (!(call = op_call(req, ORFA_OP_GETATTR, 0, &ctx)))
		return;
	msg = orfa_call_msg(call);
	ctx->node = orfa_ino_to_node(m, ino);
	msg->a.getattr.nodeid = ctx->node;
	msg->a.getattr.fh = ORFA_FH_NONE;
	if (fi) {
		msg->a.getattr.fh = cfile_of(fi)->sfh;
		orfa_call_set_conn(call, cfile_of(fi)->conn);
	}
	orfa_call_send(call, NULL, 0, 0, done_attr, NULL);
}

static void orfa_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			    int to_set, struct fuse_file_info *fi)
{
	struct orfa_mount *m = req_mount(req);
	struct orfa_setattr_req *s;
	struct orfa_call *call;
	struct op_ctx *ctx;
	uint32_t v = 0;

	if (!(call = op_call(req, ORFA_OP_SETATTR, 0, &ctx)))
		return;
	ctx->node = orfa_ino_to_node(m, ino);
	ctx->size = 1;			/* our own change */
	ctx->fi.flags = to_set;		/* for times_flush_refused */
	s = &orfa_call_msg(call)->a.setattr;
	s->nodeid = ctx->node;
	s->fh = ORFA_FH_NONE;
	if (fi) {
		s->fh = cfile_of(fi)->sfh;
		orfa_call_set_conn(call, cfile_of(fi)->conn);
		if (to_set & FUSE_SET_ATTR_SIZE)
			cfile_mark_written(cfile_of(fi));
	}
	if (to_set & FUSE_SET_ATTR_MODE) {
		v |= ORFA_SET_MODE;
		s->mode = attr->st_mode & 07777;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		v |= ORFA_SET_UID;
		s->uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		v |= ORFA_SET_GID;
		s->gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		v |= ORFA_SET_SIZE;
		s->size = (uint64_t)attr->st_size;
	}
	/* The kernel sets ATIME together with ATIME_NOW; NOW wins. */
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		v |= ORFA_SET_ATIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		v |= ORFA_SET_ATIME;
		s->atime = attr->st_atim.tv_sec;
		s->atime_nsec = (uint32_t)attr->st_atim.tv_nsec;
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		v |= ORFA_SET_MTIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		v |= ORFA_SET_MTIME;
		s->mtime = attr->st_mtim.tv_sec;
		s->mtime_nsec = (uint32_t)attr->st_mtim.tv_nsec;
	}
	if (to_set & FUSE_SET_ATTR_CTIME) {
		v |= ORFA_SET_CTIME;
		s->ctime = attr->st_ctim.tv_sec;
		s->ctime_nsec = (uint32_t)attr->st_ctim.tv_nsec;
	}
	if (to_set & (FUSE_SET_ATTR_KILL_SUID | FUSE_SET_ATTR_KILL_SGID))
		v |= ORFA_SET_KILL_SUIDGID;
	s->valid = v;
	orfa_call_send(call, NULL, 0, 0, done_attr, NULL);
}

static void done_readlink(struct orfa_call *call, int err,
			  const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);
	char *buf = orfa_call_sink(call);

	if (err) {
		fuse_reply_err(ctx->req, -err);
		return;
	}
	if (rep->data_len >= orfa_call_sink_len(call)) {
		fuse_reply_err(ctx->req, EIO);
		return;
	}
	if (rep->data != buf && rep->data_len)
		memcpy(buf, rep->data, rep->data_len);
	buf[rep->data_len] = '\0';
	fuse_reply_readlink(ctx->req, buf);
}

static void orfa_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct orfa_call *call;
	struct op_ctx *ctx;

	if (!(call = op_call(req, ORFA_OP_READLINK, ORFA_MAX_SYMLINK + 1, &ctx)))
		return;
	orfa_call_msg(call)->a.node.nodeid = orfa_ino_to_node(ctx->m, ino);
	orfa_call_send(call, NULL, 0, 0, done_readlink, NULL);
}

/* ---- names -------------------------------------------------------------- */

static void orfa_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
			  mode_t mode, dev_t rdev)
{
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;
	long len = name_ok(req, name);

	if (len < 0 || !(call = op_call(req, ORFA_OP_MKNOD, 0, &ctx)))
		return;
	msg = orfa_call_msg(call);
	msg->a.mknod.parent = orfa_ino_to_node(ctx->m, parent);
	msg->a.mknod.mode = mode;
	msg->a.mknod.rdev = rdev;
	msg->name = name;
	msg->namelen = (uint32_t)len;
	orfa_call_send(call, NULL, 0, 0, op_done_entry, NULL);
}

static void orfa_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
			  mode_t mode)
{
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;
	long len = name_ok(req, name);

	if (len < 0 || !(call = op_call(req, ORFA_OP_MKDIR, 0, &ctx)))
		return;
	msg = orfa_call_msg(call);
	msg->a.mkdir.parent = orfa_ino_to_node(ctx->m, parent);
	msg->a.mkdir.mode = mode;
	msg->name = name;
	msg->namelen = (uint32_t)len;
	orfa_call_send(call, NULL, 0, 0, op_done_entry, NULL);
}

static void remove_name(fuse_req_t req, unsigned opcode, fuse_ino_t parent,
			const char *name)
{
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;
	long len = name_ok(req, name);

	if (len < 0 || !(call = op_call(req, opcode, 0, &ctx)))
		return;
	msg = orfa_call_msg(call);
	msg->a.unlink.parent = orfa_ino_to_node(ctx->m, parent);
	msg->name = name;
	msg->namelen = (uint32_t)len;
	orfa_call_send(call, NULL, 0, 0, op_done_err, NULL);
}

static void orfa_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, ORFA_OP_UNLINK, parent, name);
}

static void orfa_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, ORFA_OP_RMDIR, parent, name);
}

static void orfa_op_symlink(fuse_req_t req, const char *link,
			    fuse_ino_t parent, const char *name)
{
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;
	long len = name_ok(req, name);
	size_t tlen = strlen(link);

	if (len < 0)
		return;
	if (tlen >= ORFA_MAX_SYMLINK) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (!(call = op_call(req, ORFA_OP_SYMLINK, 0, &ctx)))
		return;
	msg = orfa_call_msg(call);
	msg->a.symlink.parent = orfa_ino_to_node(ctx->m, parent);
	msg->name = name;
	msg->namelen = (uint32_t)len;
	msg->name2 = link;
	msg->name2len = (uint32_t)tlen;
	orfa_call_send(call, NULL, 0, 0, op_done_entry, NULL);
}

static void orfa_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			   fuse_ino_t newparent, const char *newname,
			   unsigned int flags)
{
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;
	long len = name_ok(req, name), newlen;

	if (len < 0 || (newlen = name_ok(req, newname)) < 0)
		return;
	if (flags & ~(unsigned)(ORFA_RENAME_NOREPLACE | ORFA_RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);	/* RENAME_WHITEOUT */
		return;
	}
	if (!(call = op_call(req, ORFA_OP_RENAME, 0, &ctx)))
		return;
	msg = orfa_call_msg(call);
	msg->a.rename.parent = orfa_ino_to_node(ctx->m, parent);
	msg->a.rename.newparent = orfa_ino_to_node(ctx->m, newparent);
	msg->a.rename.flags = flags;
	msg->name = name;
	msg->namelen = (uint32_t)len;
	msg->name2 = newname;
	msg->name2len = (uint32_t)newlen;
	orfa_call_send(call, NULL, 0, 0, op_done_err, NULL);
}

static void orfa_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
			 const char *newname)
{
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;
	long len = name_ok(req, newname);

	if (len < 0 || !(call = op_call(req, ORFA_OP_LINK, 0, &ctx)))
		return;
	msg = orfa_call_msg(call);
	msg->a.link.nodeid = orfa_ino_to_node(ctx->m, ino);
	msg->a.link.newparent = orfa_ino_to_node(ctx->m, newparent);
	msg->name = newname;
	msg->namelen = (uint32_t)len;
	orfa_call_send(call, NULL, 0, 0, op_done_entry, NULL);
}

/* ---- statfs, access ---------------------------------------------------- */

static void done_statfs(struct orfa_call *call, int err,
			const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);
	const struct orfa_statfs_out *s;
	struct statvfs sv;

	if (err) {
		fuse_reply_err(ctx->req, -err);
		return;
	}
	s = &rep->a.statfs;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = s->bsize;
	sv.f_frsize = s->frsize;
	sv.f_blocks = s->blocks;
	sv.f_bfree = s->bfree;
	sv.f_bavail = s->bavail;
	sv.f_files = s->files;
	sv.f_ffree = s->ffree;
	sv.f_favail = s->ffree;
	sv.f_namemax = s->namemax;
	fuse_reply_statfs(ctx->req, &sv);
}

static void orfa_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct orfa_call *call;
	struct op_ctx *ctx;

	if (!(call = op_call(req, ORFA_OP_STATFS, 0, &ctx)))
		return;
	orfa_call_msg(call)->a.node.nodeid = orfa_ino_to_node(ctx->m, ino);
	orfa_call_send(call, NULL, 0, 0, done_statfs, NULL);
}

static void orfa_op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct orfa_call *call;
	struct op_ctx *ctx;

	if (!(call = op_call(req, ORFA_OP_ACCESS, 0, &ctx)))
		return;
	orfa_call_msg(call)->a.access.nodeid = orfa_ino_to_node(ctx->m, ino);
	orfa_call_msg(call)->a.access.mask = (uint32_t)mask;
	orfa_call_send(call, NULL, 0, 0, op_done_err, NULL);
}

const struct fuse_lowlevel_ops orfa_ll_ops = {
	.init = orfa_op_init,
	.destroy = orfa_op_destroy,
	.lookup = orfa_op_lookup,
	.forget = orfa_op_forget,
	.forget_multi = orfa_op_forget_multi,
	.getattr = orfa_op_getattr,
	.setattr = orfa_op_setattr,
	.readlink = orfa_op_readlink,
	.mknod = orfa_op_mknod,
	.mkdir = orfa_op_mkdir,
	.unlink = orfa_op_unlink,
	.rmdir = orfa_op_rmdir,
	.symlink = orfa_op_symlink,
	.rename = orfa_op_rename,
	.link = orfa_op_link,
	.open = orfa_op_open,
	.create = orfa_op_create,
	.read = orfa_op_read,
	.write = orfa_op_write,
	.flush = orfa_op_flush,
	.release = orfa_op_release,
	.fsync = orfa_op_fsync,
	.opendir = orfa_op_opendir,
	.readdir = orfa_op_readdir,
	.readdirplus = orfa_op_readdirplus,
	.releasedir = orfa_op_releasedir,
	.fsyncdir = orfa_op_fsyncdir,
	.statfs = orfa_op_statfs,
	.setxattr = orfa_op_setxattr,
	.getxattr = orfa_op_getxattr,
	.listxattr = orfa_op_listxattr,
	.removexattr = orfa_op_removexattr,
	.access = orfa_op_access,
	.getlk = orfa_op_getlk,
	.setlk = orfa_op_setlk,
	.flock = orfa_op_flock,
	.fallocate = orfa_op_fallocate,
	.lseek = orfa_op_lseek,
	.copy_file_range = orfa_op_copy_file_range,
};
