/*
 * ops.h - the FUSE side of the orfa client: the per-mount state shared by
 * main.c and the fuse_lowlevel_ops in ops.c (node operations), ops_io.c
 * (files, directories), ops_lock.c (locks) and ops_xattr.c, and the
 * helpers they share.
 *
 * Every operation turns one FUSE request into one ORFA call (client.h)
 * and answers the FUSE request from the call's completion callback, so FUSE
 * worker threads never wait for the network.  Node ids: the server's root
 * node and FUSE_ROOT_ID are swapped both ways (orfa_ino_to_node,
 * orfa_node_to_ino); every other id is the server's.
 */
#ifndef ORFA_OPS_H
#define ORFA_OPS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "nodes.h"

enum orfa_cache_mode {
	ORFA_CACHE_NONE,	/* timeouts 0, page cache dropped at every open */
	ORFA_CACHE_AUTO,	/* close-to-open (default) */
	ORFA_CACHE_ALWAYS,	/* long timeouts, page cache always kept */
};

/* Per-mount state; fuse_req_userdata() of every request. */
struct orfa_mount {
	struct orfa_client *cl;
	struct fuse_session *se;
	struct orfa_nodes *nodes;
	uint64_t root;			/* server node id of the export root */
	uint64_t features;		/* granted ORFA_FEAT_* */
	uint32_t max_data;		/* negotiated data segment limit */
	enum orfa_cache_mode cache;
	double attr_timeout;
	double entry_timeout;
	double negative_timeout;
	bool writeback;			/* FUSE writeback cache */
	struct orfa_gcache *groups;	/* supplementary groups per pid */
	/* Open files, for reopening them after a reconnect (ops_reopen.c). */
	pthread_mutex_t files_lock;
	struct cfile *files;		/* list head */
	/* A POSIX lock was asked for on a node nodes.c did not track: every
	 * FLUSH goes to the server from then on (ops_io.c). */
	atomic_bool locks_untracked;
};

extern const struct fuse_lowlevel_ops orfa_ll_ops;

/* Set up / tear down what orfa_ll_ops need besides cl and the options
 * (node table for nconns connections, groups cache).  0 or -ENOMEM. */
int orfa_mount_init(struct orfa_mount *m, unsigned nconns);
void orfa_mount_fini(struct orfa_mount *m);

/* ---- helpers shared by ops.c and ops_io.c ------------------------------ */

/*
 * An open file or directory: fi->fh points to one (the kernel is the only
 * peer that hands this value back, so a pointer is safe here).  Server
 * file ids are only valid on the connection that opened them.
 */
struct cfile {
	uint64_t sfh;			/* server file id (replaced when the
					 * file is reopened after a reconnect) */
	uint64_t node;			/* server node id */
	unsigned conn;			/* connection the id belongs to */
	/* For reopening (ops_reopen.c); m->files_lock guards the links. */
	bool dir;
	uint32_t flags;			/* as sent in OPEN/OPENDIR/CREATE */
	struct orfa_cred cred;		/* of the opener */
	/* Data or size changed through this open file: its FLUSH goes to the
	 * server, whose backend may report errors at close (ops_io.c). */
	atomic_bool written;
	struct cfile *prev, *next;
};

/*
 * Open files are tracked so a reconnect can open them again (issue 6):
 * cfile_track once cf is filled in (flags, cred from the opening call's
 * msg), cfile_untrack before freeing it.  orfa_reopen_hook is the client's
 * reconnect hook (arg: the mount): it resets the connection's lookup
 * accounting and reopens its files, remapping their server file ids.
 */
void cfile_track(struct orfa_mount *m, struct cfile *cf, bool dir,
		 const struct orfa_msg *open_msg);
void cfile_untrack(struct orfa_mount *m, struct cfile *cf);
void orfa_reopen_hook(struct orfa_client *cl, unsigned conn, void *arg);

static inline struct cfile *cfile_of(const struct fuse_file_info *fi)
{
	return (struct cfile *)(uintptr_t)fi->fh;
}

/* Before sending a call that changes data or size through cf. */
static inline void cfile_mark_written(struct cfile *cf)
{
	atomic_store_explicit(&cf->written, true, memory_order_release);
}

/*
 * The connection for calls about node that carry no file id: opens and
 * POSIX locks.  One per node, so that every open of a node, and the lock
 * owners the server keys by (connection, lock_owner), meet on one
 * connection.
 */
static inline unsigned orfa_node_conn(const struct orfa_mount *m,
				      uint64_t node)
{
	unsigned n = orfa_client_nconns(m->cl);

	return n > 1 ? (unsigned)((node * 0x9e3779b97f4a7c15ull) >> 40) % n : 0;
}

/* Forget nlookup kernel references of server node: per connection. */
void op_forget_node(struct orfa_mount *m, uint64_t node, uint64_t nlookup);

/* Context every call of an operation carries (orfa_call_ctx). */
struct op_ctx {
	fuse_req_t req;
	struct orfa_mount *m;
	uint64_t node;			/* server node id the op is about */
	uint32_t size;			/* bytes the kernel asked for */
	int plus;			/* READDIRPLUS */
	bool caps;			/* GETXATTR of security.capability */
	struct fuse_file_info fi;	/* open/create/opendir */
	/* SETLK/FLOCK that may wait: what to undo if granted too late. */
	uint64_t fh, owner;
	struct orfa_lock lock;
	uint32_t flock_op;
};

static inline struct orfa_mount *req_mount(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static inline uint64_t orfa_ino_to_node(const struct orfa_mount *m,
					fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return m->root;
	if (ino == m->root)
		return FUSE_ROOT_ID;
	return ino;
}

static inline fuse_ino_t orfa_node_to_ino(const struct orfa_mount *m,
					  uint64_t node)
{
	if (node == m->root)
		return FUSE_ROOT_ID;
	if (node == FUSE_ROOT_ID)
		return m->root;
	return node;
}

/*
 * Allocate a call for req with an op_ctx (ctx->req, ctx->m set) and fill
 * its credentials from the request.  On failure answers req with ENOMEM
 * and returns NULL.
 */
struct orfa_call *op_call(fuse_req_t req, unsigned opcode, size_t sink_len,
			  struct op_ctx **ctx);

void orfa_attr_to_stat(const struct orfa_attr *a, struct stat *st);

/* Completion callbacks shared by several operations. */
void op_done_err(struct orfa_call *call, int err, const struct orfa_msg *rep);
void op_done_entry(struct orfa_call *call, int err,
		   const struct orfa_msg *rep);

/* Hand an entry that connection conn returned to the kernel
 * (fuse_reply_entry, or fuse_reply_create when fi != NULL: fi->fh is then
 * a struct cfile, freed here if the kernel refuses it), keeping the
 * lookup counts balanced if the kernel refuses it.  Returns fuse_reply_*'s
 * result. */
int op_reply_entry(struct orfa_mount *m, fuse_req_t req, unsigned conn,
		   const struct orfa_entry *e, const struct fuse_file_info *fi);
void op_fill_entry_param(struct orfa_mount *m, const struct orfa_entry *e,
			 struct fuse_entry_param *p);

/* Callback of an unlock nobody waits for (logs a failure). */
void op_unlock_done(struct orfa_call *call, int err,
		    const struct orfa_msg *rep);

/* fuse_lowlevel_ops of ops_xattr.c. */
void orfa_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		      const char *value, size_t size, int flags);
void orfa_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		      size_t size);
void orfa_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void orfa_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* fuse_lowlevel_ops of ops_io.c and ops_lock.c. */
void orfa_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void orfa_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		    mode_t mode, struct fuse_file_info *fi);
void orfa_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		  struct fuse_file_info *fi);
void orfa_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		   size_t size, off_t off, struct fuse_file_info *fi);
void orfa_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void orfa_op_release(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi);
void orfa_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		   struct fuse_file_info *fi);
void orfa_op_opendir(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi);
void orfa_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi);
void orfa_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			 off_t off, struct fuse_file_info *fi);
void orfa_op_releasedir(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi);
void orfa_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi);
void orfa_op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		   struct flock *lock);
void orfa_op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		   struct flock *lock, int sleep);
void orfa_op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		   int op);
void orfa_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
		       off_t length, struct fuse_file_info *fi);
void orfa_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		   struct fuse_file_info *fi);
void orfa_op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			     struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			     off_t off_out, struct fuse_file_info *fi_out,
			     size_t len, int flags);

#endif /* ORFA_OPS_H */
