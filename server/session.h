/*
 * session.h - per-connection state of orfad that outlives single requests:
 * the table of open file ids and the lookup references handed to the
 * client.
 *
 * File ids are what the client sees of an open file: a u64 made of a slot
 * index (low 32 bits, plus one so 0 is never valid) and the slot's
 * generation (high 32 bits), looked up and checked, never cast to a
 * pointer.  The object behind an id is refcounted: the table holds one
 * reference until RELEASE removes the id, each request working on the file
 * holds one, and the last put calls the backend's release/releasedir.
 *
 * The node map counts, per node id, the lookup references this connection
 * was handed (every reply carrying a struct orfa_entry adds one; FORGET
 * takes them back); whatever is left when the connection closes is
 * forgotten in the backend.
 *
 * Both tables have their own mutex; functions may be called from any
 * thread.
 */
#ifndef ORFA_SESSION_H
#define ORFA_SESSION_H

#include <pthread.h>
#include <stdint.h>

struct orfa_backend;

struct sfile {
	uint64_t nodeid;
	void *fh;			/* backend's per-open state */
	int is_dir;			/* from OPENDIR: releasedir */
	uint32_t flags;			/* open(2) flags */
	int refs;			/* atomic */
	struct orfa_backend *be;
};

struct fslot {
	struct sfile *f;		/* NULL when free */
	uint32_t gen;
	uint32_t next_free;		/* index + 1 of next free slot, or 0 */
};

struct ftab {
	pthread_mutex_t lock;		/* guards everything below */
	struct fslot *slot;
	uint32_t nslot, cap;
	uint32_t free_head;		/* index + 1, or 0 */
	uint32_t count;			/* ids in use */
	uint32_t max;			/* cap on count (0: 1<<20 slots) */
};

struct nmap_ent {
	uint64_t nodeid;		/* 0: empty */
	uint64_t count;
};

struct nmap {
	pthread_mutex_t lock;		/* guards everything below */
	struct nmap_ent *ent;		/* open addressing, linear probing */
	uint32_t cap;			/* power of two, or 0 */
	uint32_t used;
	uint32_t max;			/* cap on used (0: none) */
};

/*
 * Open files.  sfile_new: a file object with one reference (the caller's),
 * or NULL on ENOMEM.  ftab_add: the table takes its own reference and
 * returns the id in *id: 0 or -ENOMEM, or -EMFILE at t->max files (or
 * 1<<20 slots).
 * ftab_get: the object for id with a new reference for the caller, or NULL
 * (unknown or stale id).  ftab_remove: take id out of the table and hand
 * the table's reference to the caller, or NULL.  sfile_put drops one
 * reference, calls the backend's release on the last one and clears *fp.
 */
struct sfile *sfile_new(struct orfa_backend *be, uint64_t nodeid, void *fh,
			int is_dir, uint32_t flags);
void sfile_get(struct sfile *f);
void sfile_put(struct sfile **fp);

int ftab_init(struct ftab *t);
int ftab_add(struct ftab *t, struct sfile *f, uint64_t *id);
struct sfile *ftab_get(struct ftab *t, uint64_t id);
struct sfile *ftab_remove(struct ftab *t, uint64_t id);
uint32_t ftab_count(struct ftab *t);
/* Remove every id, calling fn(id, f, arg) on each with the table's
 * reference, which fn must put.  Then free the table. */
void ftab_destroy(struct ftab *t,
		  void (*fn)(uint64_t id, struct sfile *f, void *arg),
		  void *arg);

/*
 * Lookup references.  nmap_add: count n more references of nodeid: 0,
 * -ENOMEM, or -ENFILE when nodeid is new and m->max nodes are held
 * already (the caller must then give them back to the backend itself).
 * nmap_count: how many nodes are held.
 * nmap_sub: take back up to n, returns how many were held and are now
 * taken (less than n when the client forgets more than it was given).
 * nmap_destroy: call fn for every node still referenced, then free.
 */
int nmap_init(struct nmap *m);
int nmap_add(struct nmap *m, uint64_t nodeid, uint64_t n);
uint64_t nmap_sub(struct nmap *m, uint64_t nodeid, uint64_t n);
uint64_t nmap_get(struct nmap *m, uint64_t nodeid);
uint32_t nmap_count(struct nmap *m);
void nmap_destroy(struct nmap *m,
		  void (*fn)(uint64_t nodeid, uint64_t count, void *arg),
		  void *arg);

#endif /* ORFA_SESSION_H */
