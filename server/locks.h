/*
 * locks.h - the lock manager of orfad: POSIX byte-range locks and BSD
 * flock locks, shared by every connection and every backend.
 *
 * Locks live only in the server (the backends know nothing of them), keyed
 * by node id.  POSIX locks belong to an owner (connection id, lock_owner
 * sent by the client); flock locks to an open file (connection id, file
 * id).  The two families are independent, as on Linux.
 *
 * Waiting (SETLK with ORFA_LK_WAIT, FLOCK without LOCK_NB) never blocks a
 * thread: the caller hands in a waiter, which is parked on the node when
 * the lock cannot be granted at once.  Whenever locks on that node change,
 * the parked waiters are retried in arrival order; a granted or cancelled
 * waiter is removed from the table and its wake callback runs once, with
 * no lock of this module held, in the thread that caused the change.
 *
 * Thread safety: every function may be called from any thread; one mutex
 * protects the whole table.  Deadlock detection (EDEADLK) is not done.
 */
#ifndef ORFA_LOCKS_H
#define ORFA_LOCKS_H

#include <stdint.h>

#include "orfa_proto.h"

struct orfa_locks;

/* Who holds a lock: POSIX: (connection, lock_owner); flock: (connection,
 * file id). */
struct orfa_lk_owner {
	uint64_t conn;
	uint64_t id;
};

enum orfa_lk_kind {
	ORFA_LK_POSIX,
	ORFA_LK_FLOCK,
};

/*
 * A parked request.  The caller owns the memory and fills kind, nodeid,
 * owner, lock (POSIX) or flock_op (LOCK_SH/LOCK_EX), wake and arg before
 * passing it in; the module uses next.  wake(w, status) is called exactly
 * once after the waiter was parked: status 0 when the lock was granted
 * (and is now held), -ECANCELED when the waiter was cancelled by
 * orfa_locks_drop_conn, -EBADF when a flock waiter was cancelled by
 * orfa_locks_drop_flock (its file id was released).  After wake the module
 * no longer touches w.
 */
struct orfa_lk_waiter {
	struct orfa_lk_waiter *next;		/* module: node's waiter list */
	enum orfa_lk_kind kind;
	uint64_t nodeid;
	struct orfa_lk_owner owner;
	struct orfa_lock lock;			/* POSIX request */
	uint32_t flock_op;			/* LOCK_SH or LOCK_EX */
	void (*wake)(struct orfa_lk_waiter *w, int status);
	void *arg;				/* caller's */
};

/* Create an empty table: 0 or -ENOMEM. */
int orfa_locks_create(struct orfa_locks **out);
/* Free the table and every lock in it.  No waiter may be parked. */
void orfa_locks_destroy(struct orfa_locks *lt);

/*
 * GETLK: *lk holds the lock the owner would like (type F_RDLCK/F_WRLCK,
 * start, end).  If another owner holds a conflicting lock, *lk is
 * overwritten with it (type, start, end, pid); otherwise lk->type becomes
 * F_UNLCK and the rest is left alone.  Returns 0, or -EINVAL for a bad
 * type or start > end.
 */
int orfa_locks_getlk(struct orfa_locks *lt, uint64_t nodeid,
		     const struct orfa_lk_owner *owner, struct orfa_lock *lk);

/*
 * SETLK: set (F_RDLCK, F_WRLCK) or remove (F_UNLCK) the owner's lock on
 * [lk->start, lk->end], splitting and merging the owner's existing locks.
 * Returns 0 when done, -EINVAL for bad arguments, and on a conflict:
 * -EAGAIN when w is NULL, or -EINPROGRESS when w was parked (w->wake will
 * be called later).  w's kind, nodeid, owner and lock are filled in here.
 */
int orfa_locks_setlk(struct orfa_locks *lt, uint64_t nodeid,
		     const struct orfa_lk_owner *owner,
		     const struct orfa_lock *lk, struct orfa_lk_waiter *w);

/*
 * FLOCK: op is LOCK_SH, LOCK_EX or LOCK_UN (LOCK_NB is ignored here: pass
 * w = NULL for a non-blocking request).  Converting an existing lock first
 * drops it, as Linux does.  Returns 0, -EINVAL, and on a conflict -EAGAIN
 * (w NULL; = EWOULDBLOCK) or -EINPROGRESS (w parked).
 */
int orfa_locks_flock(struct orfa_locks *lt, uint64_t nodeid,
		     const struct orfa_lk_owner *owner, uint32_t op,
		     struct orfa_lk_waiter *w);

/* Drop every POSIX lock of owner on nodeid (FLUSH, RELEASE). */
void orfa_locks_drop_posix(struct orfa_locks *lt, uint64_t nodeid,
			   const struct orfa_lk_owner *owner);
/* Drop the flock lock of owner (connection, file id) on nodeid and cancel
 * its parked flock waiters (wake status -EBADF) (RELEASE). */
void orfa_locks_drop_flock(struct orfa_locks *lt, uint64_t nodeid,
			   const struct orfa_lk_owner *owner);
/*
 * Connection closed: drop every lock whose owner.conn is conn and cancel
 * its parked waiters (their wake gets -ECANCELED).
 */
void orfa_locks_drop_conn(struct orfa_locks *lt, uint64_t conn);

/* Number of locks (POSIX ranges + flocks) held on nodeid; for tests. */
unsigned orfa_locks_count(struct orfa_locks *lt, uint64_t nodeid);

#endif /* ORFA_LOCKS_H */
