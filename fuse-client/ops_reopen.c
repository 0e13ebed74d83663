/*
 * ops_reopen.c - what the FUSE side does when a connection was made again
 * after it died (issue 6; client.h, "Reconnecting"): the kernel's open
 * files on that connection are opened again by node id with their
 * recorded flags and opener's credentials, and their new server file ids
 * replace the old ones; lookup references the old connection handed out
 * are no longer counted on it (nodes_conn_reset), so FORGETs never take
 * from the new server more than it handed out.
 *
 * A file that cannot be opened again (its node id is stale: a RAM export,
 * or a directory export without persistent ids; or it is gone) keeps file
 * id 0, which the server refuses (EBADF) on every later request, so the
 * application gets an error instead of a hang.
 *
 * Here also the record that makes this possible: every open file the
 * kernel holds is tracked (cfile_track/cfile_untrack) with its open call.
 * Not here: reconnecting itself, the handshake and resending calls that
 * were in flight (conn.c), which runs orfa_reopen_hook.
 */
#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "log.h"

void cfile_track(struct orfa_mount *m, struct cfile *cf, bool dir,
		 const struct orfa_msg *open_msg)
{
	cf->dir = dir;
	cf->flags = open_msg->hdr.opcode == ORFA_OP_CREATE ?
		    open_msg->a.create.flags : open_msg->a.open.flags;
	cf->cred = open_msg->cred;
	atomic_init(&cf->written, false);
	pthread_mutex_lock(&m->files_lock);
	cf->prev = NULL;
	cf->next = m->files;
	if (m->files)
		m->files->prev = cf;
	m->files = cf;
	pthread_mutex_unlock(&m->files_lock);
}

void cfile_untrack(struct orfa_mount *m, struct cfile *cf)
{
	pthread_mutex_lock(&m->files_lock);
	if (cf->prev)
		cf->prev->next = cf->next;
	else if (m->files == cf)
		m->files = cf->next;
	if (cf->next)
		cf->next->prev = cf->prev;
	cf->prev = cf->next = NULL;
	pthread_mutex_unlock(&m->files_lock);
}

/* Open cf again on the fresh connection: its new file id, or 0. */
static uint64_t reopen_one(struct orfa_mount *m, struct cfile *cf)
{
	struct orfa_msg msg, rep;
	int rc;

	orfa_msg_init(&msg, cf->dir ? ORFA_OP_OPENDIR : ORFA_OP_OPEN, 0);
	msg.cred = cf->cred;
	msg.a.open.nodeid = cf->node;
	/* Creating or truncating again would be wrong: the file exists and
	 * holds what was written. */
	msg.a.open.flags = cf->flags & ~(uint32_t)(O_CREAT | O_EXCL | O_TRUNC);
	rc = orfa_client_sync_call(m->cl, cf->conn, &msg, &rep);
	if (rc < 0) {
		log_warn("reconnect: cannot reopen node %llu: %s",
			 (unsigned long long)cf->node, strerror(-rc));
		return ORFA_FH_NONE;
	}
	return rep.a.open_rep.fh;
}

void orfa_reopen_hook(struct orfa_client *cl, unsigned conn, void *arg)
{
	struct orfa_mount *m = arg;
	unsigned done = 0, failed = 0;

	nodes_conn_reset(m->nodes, conn);
	/* Held throughout: a RELEASE racing with this waits, then sends the
	 * new id (or, if it came first, the file is no longer listed). */
	pthread_mutex_lock(&m->files_lock);
	for (struct cfile *cf = m->files; cf; cf = cf->next) {
		uint64_t fh;

		if (cf->conn != conn)
			continue;
		fh = reopen_one(m, cf);
		if (fh != ORFA_FH_NONE &&
		    orfa_client_remap_fh(cl, conn, cf->sfh, fh) == 0)
			done++;
		else
			failed++;
		__atomic_store_n(&cf->sfh, fh, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&m->files_lock);
	if (done || failed)
		log_warn("reconnect: %u open files reopened, %u could not be",
			 done, failed);
}
