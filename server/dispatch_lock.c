/*
 * dispatch_lock.c - the lock handlers of orfad: GETLK, SETLK and FLOCK
 * against the export's lock table (locks.h).  A SETLK or FLOCK that must
 * wait is parked through the request API (sreq_park_begin/_end,
 * request.c), which answers it when the lock manager grants or cancels
 * it.  Not here: dropping locks on FLUSH and RELEASE (dispatch_io.c) and
 * on connection teardown (conn.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>

#include "dispatch_impl.h"

int h_getlk(struct sreq *r)
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

int h_setlk(struct sreq *r)
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

int h_flock(struct sreq *r)
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
