/*
 * ops_lock.c - FUSE lock operations: GETLK, SETLK (POSIX) and FLOCK,
 * forwarded to the server so that every client of an export sees every
 * lock.  A lock request that may wait has no timeout and can be
 * interrupted: the waiter is answered EINTR at once, and if the server
 * grants the lock afterwards the grant is undone (lock_orphan).
 *
 * Connections: POSIX lock owners are (connection, lock_owner) on the
 * server, so GETLK/SETLK go to the node's connection (orfa_node_conn);
 * flock owners are open files, so FLOCK goes with the file id.
 */
#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "log.h"

static void flock_to_wire(const struct flock *l, struct orfa_lock *w)
{
	w->start = (uint64_t)l->l_start;
	w->end = l->l_len == 0 ? UINT64_MAX :
		(uint64_t)l->l_start + (uint64_t)l->l_len - 1;
	w->type = (uint32_t)l->l_type;
	w->pid = (uint32_t)l->l_pid;
}

static void done_getlk(struct orfa_call *call, int err,
		       const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);
	const struct orfa_lock *w;
	struct flock l;

	if (err) {
		fuse_reply_err(ctx->req, -err);
		return;
	}
	w = &rep->a.lock;
	memset(&l, 0, sizeof(l));
	l.l_type = (short)w->type;
	l.l_whence = SEEK_SET;
	l.l_start = (off_t)w->start;
	l.l_len = w->end == UINT64_MAX ? 0 : (off_t)(w->end - w->start + 1);
	l.l_pid = (pid_t)w->pid;
	fuse_reply_lock(ctx->req, &l);
}

void orfa_op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		   struct flock *lock)
{
	struct orfa_call *call;
	struct orfa_lk_req *a;
	struct op_ctx *ctx;

	if (!(call = op_call(req, ORFA_OP_GETLK, 0, &ctx)))
		return;
	a = &orfa_call_msg(call)->a.lk;
	a->nodeid = orfa_ino_to_node(ctx->m, ino);
	a->owner = fi->lock_owner;
	flock_to_wire(lock, &a->lock);
	orfa_call_set_conn(call, orfa_node_conn(ctx->m, a->nodeid));
	orfa_call_send(call, NULL, 0, 0, done_getlk, NULL);
}

/* FUSE interrupt for a waiting lock.  Runs on a libfuse thread, maybe
 * after the call was answered; it names the call by value. */
static void lock_interrupted(fuse_req_t req, void *data)
{
	orfa_client_interrupt(req_mount(req)->cl, orfa_call_ref_unpack(data));
}

static void lock_registered(struct orfa_call *call, struct orfa_call_ref ref,
			    void *arg)
{
	struct op_ctx *ctx = orfa_call_ctx(call);

	fuse_req_interrupt_func(ctx->req, lock_interrupted,
				orfa_call_ref_pack(ref));
}

void op_unlock_done(struct orfa_call *call, int err,
		    const struct orfa_msg *rep)
{
	if (err)
		log_warn("cannot drop a lock granted after its waiter gave "
			 "up: %s", strerror(-err));
}

/* A waiting SETLK/FLOCK was interrupted, then granted: undo the grant. */
static void lock_orphan(struct orfa_call *call, const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);
	const struct orfa_msg *req_msg = orfa_call_msg(call);
	struct orfa_call *undo;
	struct orfa_msg *msg;

	undo = orfa_call_new(ctx->m->cl, req_msg->hdr.opcode, 0, 0);
	if (!undo) {
		log_err("out of memory: a lock granted too late stays held");
		return;
	}
	msg = orfa_call_msg(undo);
	msg->cred = req_msg->cred;
	if (req_msg->hdr.opcode == ORFA_OP_SETLK) {
		msg->a.lk = req_msg->a.lk;
		msg->a.lk.lock.type = F_UNLCK;
		msg->a.lk.flags = 0;
	} else {
		msg->a.flock = req_msg->a.flock;
		msg->a.flock.op = LOCK_UN;
	}
	orfa_call_set_conn(undo, orfa_call_conn(call));
	orfa_call_send(undo, NULL, 0, 0, op_unlock_done, NULL);
}

void orfa_op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		   struct flock *lock, int sleep)
{
	struct orfa_call *call;
	struct orfa_lk_req *a;
	struct op_ctx *ctx;
	unsigned flags = 0;
	bool wait = sleep && lock->l_type != F_UNLCK;

	if (!(call = op_call(req, ORFA_OP_SETLK, 0, &ctx)))
		return;
	a = &orfa_call_msg(call)->a.lk;
	a->nodeid = orfa_ino_to_node(ctx->m, ino);
	a->owner = fi->lock_owner;
	/* From now on close(2) must reach the server to drop the lock
	 * (orfa_op_flush); marked before the server can grant it. */
	if (lock->l_type != F_UNLCK &&
	    !nodes_set_locked(ctx->m->nodes, a->nodeid))
		atomic_store(&ctx->m->locks_untracked, true);
	orfa_call_set_conn(call, orfa_node_conn(ctx->m, a->nodeid));
	flock_to_wire(lock, &a->lock);
	a->flags = wait ? ORFA_LK_WAIT : 0;
	if (wait) {
		flags |= ORFA_CALL_NO_TIMEOUT;
		orfa_call_set_hook(call, lock_registered, NULL);
	}
	orfa_call_send(call, NULL, 0, flags, op_done_err,
		       wait ? lock_orphan : NULL);
}

void orfa_op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		   int op)
{
	struct orfa_call *call;
	struct orfa_flock_req *a;
	struct op_ctx *ctx;
	unsigned flags = 0;
	bool wait = !(op & LOCK_NB) && (op & ~LOCK_NB) != LOCK_UN;

	if (!(call = op_call(req, ORFA_OP_FLOCK, 0, &ctx)))
		return;
	a = &orfa_call_msg(call)->a.flock;
	a->nodeid = orfa_ino_to_node(ctx->m, ino);
	/* flock owners are open files: the server keys them by file id. */
	a->fh = cfile_of(fi)->sfh;
	orfa_call_set_conn(call, cfile_of(fi)->conn);
	a->owner = fi->lock_owner;
	a->op = (uint32_t)op;
	if (wait) {
		flags |= ORFA_CALL_NO_TIMEOUT;
		orfa_call_set_hook(call, lock_registered, NULL);
	}
	orfa_call_send(call, NULL, 0, flags, op_done_err,
		       wait ? lock_orphan : NULL);
}

