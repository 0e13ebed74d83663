/*
 * dispatch_impl.h - what the handler files of orfad share (dispatch.c,
 * dispatch_io.c, dispatch_lock.c): the handlers the table in dispatch.c
 * names, and small helpers to reach the export and to answer.  Handlers
 * see their request through request.h only.  Not for use outside them.
 *
 * Handlers run on any thread (workers, loop thread, connection threads)
 * and return a negative errno to be answered as an error, 0 once they have
 * answered themselves, or SREQ_PARKED when the request waits for a lock.
 */
#ifndef ORFA_DISPATCH_IMPL_H
#define ORFA_DISPATCH_IMPL_H

#include <stdint.h>
#include <string.h>

#include "access.h"
#include "backend.h"
#include "request.h"

/* The session's export: its backend and its lock table. */
#define BE(r)		(sreq_session(r)->ex->be)
#define LOCKS(r)	(sreq_session(r)->ex->locks)
#define OPS(r)		(BE(r)->ops)

static inline void rep_init(struct orfa_msg *rep)
{
	memset(rep, 0, sizeof(*rep));
}

/* Reply with an entry: the session now holds one more lookup reference
 * on e->nodeid.  0, or -ENOMEM (the backend's reference given back). */
int reply_entry(struct sreq *r, const struct orfa_entry *e);

static inline int reply_attr(struct sreq *r, const struct orfa_attr *a)
{
	struct orfa_msg rep;

	rep_init(&rep);
	rep.a.attr = *a;
	sreq_reply(r, &rep, NULL);
	return 0;
}

static inline int reply_empty(struct sreq *r)
{
	sreq_reply(r, NULL, NULL);
	return 0;
}

enum { F_FILE, F_DIR, F_ANY };

/*
 * The open file behind id, with a reference for the caller.  -EBADF when
 * the id is unknown, of the wrong kind (F_FILE, F_DIR, or F_ANY), or was
 * opened on another node (nodeid 0 skips that check).
 */
int file_get(struct sreq *r, uint64_t nodeid, uint64_t id, int kind,
	     struct sfile **out);

/* The lock owner of a request: its connection and the client's owner. */
static inline struct orfa_lk_owner lk_owner(struct sreq *r, uint64_t id)
{
	struct orfa_lk_owner o = { sreq_session(r)->id, id };

	return o;
}

/* dispatch_io.c: open files, data, directories, ranges. */
int h_open(struct sreq *r);
int h_opendir(struct sreq *r);
int h_create(struct sreq *r);
int h_read(struct sreq *r);
int h_write(struct sreq *r);
int h_flush(struct sreq *r);
int h_release(struct sreq *r);
int h_fsync(struct sreq *r);
int h_readdir(struct sreq *r);
int h_fallocate(struct sreq *r);
int h_lseek(struct sreq *r);
int h_copy_file_range(struct sreq *r);

/* dispatch_lock.c */
int h_getlk(struct sreq *r);
int h_setlk(struct sreq *r);
int h_flock(struct sreq *r);

#endif /* ORFA_DISPATCH_IMPL_H */
