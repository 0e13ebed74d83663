/*
 * access.h - what one orfad session may reach and do: the exports a server
 * serves at run time (a backend and a lock table each), binding a
 * connection to one of them, and the checks every request passes before
 * its handler runs (squashing, read-only exports, confinement to the
 * mounted subdirectory).  Not here: parsing the exports file (exports.h),
 * the handshake itself (hello.c), authentication (auth.h).
 *
 * Export binding.  HELLO picks the export from the first component of the
 * path the client asks for (orfa_exports_find); the rest is a subdirectory
 * resolved from the export root.  A connection reaches only its export's
 * backend, so node and file ids of another export mean nothing to it.
 *
 * Confinement (issue 12).  Every session may use only node ids that were
 * handed out to a connection of its view and not yet forgotten, plus its
 * root: a crafted or guessed id gives ESTALE, so an id cannot skip the
 * search permission of the directories above it.  A view is the export
 * root (one per export, for as long as the server runs) or a subdirectory
 * (export + root node, while a connection uses it).  The export root view
 * also holds the ids a previous run of the server handed out and the
 * backend restored (persistent ids, --state-dir): a client whose server
 * was restarted goes on with them.  Node ids are shared by the
 * connections of a view because a client with several connections uses
 * any of them for a node (the fuse client does), and an id a connection
 * got stays usable on the others, and after that connection drops, while
 * any connection of the view holds it.  The backends never resolve ".."
 * above their root; in a subdirectory view, ".." of the session root is
 * the session root, and a ".." elsewhere whose result the view never saw
 * (a directory moved out of the subtree by someone else) gives EACCES.
 *
 * Threads: sexport and sview are shared by all connections and workers;
 * their tables have their own locks (lock order: view list lock, then a
 * node map's lock).  A session's binding fields are written by its
 * connection's receiving thread during the handshake, before any other
 * request of the connection runs, and are read-only afterwards.
 */
#ifndef ORFA_ACCESS_H
#define ORFA_ACCESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "codec.h"
#include "exports.h"
#include "session.h"

struct orfa_backend;
struct orfa_locks;
struct sreq;

/* A subdirectory view: the node ids its connections hold, summed. */
struct sview {
	struct sview *next;		/* sexport.views, under vlock */
	uint64_t root;			/* the subdirectory's node id */
	unsigned nconns;		/* under vlock */
	struct nmap nodes;		/* own lock */
};

/* One export being served. */
struct sexport {
	const struct orfa_export *cfg;	/* borrowed: the exports table's;
					 * a reload swaps it (sexport_cfg) */
	struct sexport *all_next;	/* orfa_server.sx_all */
	struct orfa_backend *be;	/* borrowed (cfg->backend) */
	struct orfa_locks *locks;	/* owned: locks are per export */
	struct sview root_view;		/* the export root's; nodes has its
					 * own lock, the rest is unused */
	pthread_mutex_t vlock;		/* guards views */
	struct sview *views;		/* subdirectory views */
	int metrics_idx;		/* metrics_export_idx, set once */
};

/*
 * One connection's session: what the handshake bound it to and what its
 * client holds.  A request reaches it through sreq_session (request.h).
 */
struct ssession {
	uint64_t id;			/* the connection's: lock owner part,
					 * never reused */
	char peer[64];			/* the peer's address, for messages */

	/* Written by the receiving thread during the handshake (hello.c,
	 * access_session_start), before any other request runs; then
	 * read-only until teardown. */
	struct sexport *ex;		/* the export; NULL before HELLO */
	struct sview *view;		/* subdirectory sessions, else NULL
					 * (then ex->root_view applies) */
	uint64_t root_nodeid;		/* the client's root */
	uint64_t root_ino;
	uint32_t max_data;		/* negotiated in HELLO (0 before) */
	uint64_t features;
	uint8_t cnonce[ORFA_NONCE_SIZE], snonce[ORFA_NONCE_SIZE];
	bool integrity_only;		/* HELLO granted ORFA_HELLO_INTEGRITY */
	char *export_path;		/* as sent in HELLO (AUTH proof
					 * input), with a key only */

	/* Own locks. */
	struct ftab files;
	struct nmap nodes;
};

/* x's options now: a reload (SIGHUP) may replace them while sessions
 * run; the old ones stay readable until the server is destroyed. */
static inline const struct orfa_export *sexport_cfg(const struct sexport *x)
{
	return __atomic_load_n(&x->cfg, __ATOMIC_ACQUIRE);
}

/* Set up x for export e (whose backend is e->backend, before it serves:
 * the ids it restored join the export root view): 0 or -ENOMEM.
 * sexport_fini releases what sexport_init made (never the backend). */
int sexport_init(struct sexport *x, const struct orfa_export *e);
void sexport_fini(struct sexport *x);

/*
 * The export that path names, and the subdirectory part in *subdir (points
 * into path, "" for the export root); NULL when none does.  x[i] serves
 * tab->v[i].
 */
struct sexport *access_find(const struct orfa_exports *tab,
			    struct sexport *const *x, const char *path,
			    const char **subdir);

/*
 * May the peer of r's connection mount x?  1 or 0; host (hsz bytes) gets
 * the peer's address without port for messages.  An export open to anyone
 * does not ask the transport; otherwise a transport that cannot tell the
 * peer's address (sreq_peer_addr fails) is refused.
 */
int access_peer_allowed(struct sreq *r, const struct sexport *x, char *host,
			size_t hsz);

/* A fresh session (zeroed but for its tables): 0 or -ENOMEM. */
int access_session_init(struct ssession *s);

/*
 * Start session s on export x (s->ex must be x): resolve subdir from the
 * export root (".." refused, a directory required) and bind s to it.
 * *root gets the root entry; the client holds one lookup reference on it
 * unless it is the export root.  0, or a negative errno with a reason in
 * why ("export path ...").  Receiving thread.
 */
int access_session_start(struct ssession *s, const char *path,
			 const char *subdir, struct orfa_entry *root,
			 char *why, size_t whysz);

/*
 * Before the handler of a decoded request of c runs (any thread): squash
 * m's credentials as the export says, refuse modifying requests on a
 * read-only export (-EROFS), "." and ".." as names to create, remove or
 * rename (-EEXIST, -EINVAL, -ENOTEMPTY, -EBUSY as Linux answers), node ids
 * the session's view does not hold (-ESTALE), and set-id bits or device
 * nodes the export does not allow (-EPERM, nosuid/nodev).
 * 0 or the negative errno to answer.
 */
int access_check(struct ssession *s, struct orfa_msg *m);

/*
 * Lookup references handed to s's client: counted in s->nodes and in its
 * view (access_ref_add: 0 or -ENOMEM, nothing counted on failure; the
 * caller gives the backend reference back).  access_ref_sub takes back up
 * to n and returns how many were held (see nmap_sub).
 */
int access_ref_add(struct ssession *s, uint64_t nodeid, uint64_t n);
uint64_t access_ref_sub(struct ssession *s, uint64_t nodeid, uint64_t n);

/* Is m a LOOKUP of ".." that the session must answer itself (subdirectory
 * sessions)?  Then access_lookup_dotdot answers it: 0 and *e (with one
 * backend reference), or a negative errno. */
int access_is_dotdot_lookup(const struct ssession *s,
			    const struct orfa_msg *m);
int access_lookup_dotdot(struct ssession *s, const struct orfa_cred *cr,
			 uint64_t parent, struct orfa_entry *e);

/* Connection teardown: release every open file, give every lookup
 * reference back (backend and view), leave the view, free what the
 * handshake kept.  Owning thread, once no request of s is left. */
void access_session_end(struct ssession *s);

#endif /* ORFA_ACCESS_H */
