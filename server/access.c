/*
 * access.c - export binding and per-request access checks of orfad
 * (access.h): which export a session reaches, which of its node ids, as
 * whom, and whether it may change anything; the session's start and end.
 * The policy itself (networks, squashing rules, what modifies) is
 * exports.c's; this file applies it to sessions and requests.  It knows a
 * connection only through the request API (request.h).
 */
#include "access.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "locks.h"
#include "log.h"
#include "request.h"

/* ---- exports ------------------------------------------------------------- */

static void count_drop(uint64_t nodeid, uint64_t count, void *arg)
{
}

static void count_restored(uint64_t nodeid, void *arg)
{
	struct sexport *x = arg;

	/* Held for the life of the server, like the backend's reference. */
	if (nmap_add(&x->root_view.nodes, nodeid, 1))
		log_warn("export %s: out of memory: restored node id %llu "
			 "will be stale", sexport_cfg(x)->name,
			 (unsigned long long)nodeid);
}

int sexport_init(struct sexport *x, const struct orfa_export *e)
{
	int ret;

	memset(x, 0, sizeof(*x));
	x->cfg = e;
	x->be = e->backend;
	ret = nmap_init(&x->root_view.nodes);
	if (ret)
		return -ENOMEM;
	ret = orfa_locks_create(&x->locks);
	if (ret) {
		nmap_destroy(&x->root_view.nodes, count_drop, NULL);
		return ret;
	}
	x->root_view.root = ORFA_ROOT_NODEID;
	pthread_mutex_init(&x->vlock, NULL);
	if (x->be->ops->restored)	/* persistent ids only */
		x->be->ops->restored(x->be, count_restored, x);
	return 0;
}

void sexport_fini(struct sexport *x)
{
	if (!x->locks)
		return;
	/* Every connection left its view before the server went away. */
	while (x->views) {
		struct sview *v = x->views;

		x->views = v->next;
		nmap_destroy(&v->nodes, count_drop, NULL);
		free(v);
	}
	pthread_mutex_destroy(&x->vlock);
	nmap_destroy(&x->root_view.nodes, count_drop, NULL);
	orfa_locks_destroy(x->locks);
	x->locks = NULL;
}

struct sexport *access_find(const struct orfa_exports *tab,
			    struct sexport *const *x, const char *path,
			    const char **subdir)
{
	const struct orfa_export *e = orfa_exports_find(tab, path, subdir);

	return e ? x[e - tab->v] : NULL;
}

/* ---- peers --------------------------------------------------------------- */

static int open_to_anyone(const struct orfa_export *e)
{
	for (int i = 0; i < e->nnets; i++)
		if (e->nets[i].family == 0)
			return 1;
	return 0;
}

/* The address part of a peer name ("a.b.c.d:port", "[v6]:port"). */
static void peer_host_of_name(const char *peer, char *host, size_t hsz)
{
	const char *colon = strrchr(peer, ':');
	size_t len = colon ? (size_t)(colon - peer) : strlen(peer);

	if (len >= 2 && peer[0] == '[' && peer[len - 1] == ']') {
		peer++;
		len -= 2;
	}
	snprintf(host, hsz, "%.*s", (int)len, peer);
}

/* The source port of an AF_INET/AF_INET6 address (host order), or -1. */
static int peer_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return -1;
}

int access_peer_allowed(struct sreq *r, const struct sexport *x, char *host,
			size_t hsz)
{
	const struct orfa_export *e = sexport_cfg(x);
	const char *peer = sreq_session(r)->peer;
	int secure = !(e->flags & ORFA_EXPORT_INSECURE);
	struct sockaddr_storage ss;
	int ret, port;

	peer_host_of_name(peer, host, hsz);
	if (open_to_anyone(e) && !secure)
		return 1;
	ret = sreq_peer_addr(r, &ss);
	if (ret) {
		log_warn("%s: cannot tell the peer's address (%s): export %s "
			 "is %s, refusing", peer, strerror(-ret), e->name,
			 secure ? "secure" : "open to some networks only");
		return 0;
	}
	if (!orfa_export_allows(e, (const struct sockaddr *)&ss))
		return 0;
	port = peer_port(&ss);
	if (port < 0 || !orfa_export_port_ok(e, (unsigned)port)) {
		log_warn("%s: source port %d is not privileged (below %d) and "
			 "export %s is secure: refusing (a client that is not "
			 "root needs an export with the option insecure)",
			 peer, port, ORFA_PRIVILEGED_PORT, e->name);
		return 0;
	}
	return 1;
}

/* ---- views --------------------------------------------------------------- */

static struct sview *view_get(struct sexport *x, uint64_t root)
{
	struct sview *v;

	pthread_mutex_lock(&x->vlock);
	for (v = x->views; v; v = v->next)
		if (v->root == root)
			break;
	if (!v) {
		v = calloc(1, sizeof(*v));
		if (v && nmap_init(&v->nodes)) {
			free(v);
			v = NULL;
		}
		if (v) {
			v->root = root;
			v->next = x->views;
			x->views = v;
		}
	}
	if (v)
		v->nconns++;
	pthread_mutex_unlock(&x->vlock);
	return v;
}

static void view_put(struct sexport *x, struct sview **vp)
{
	struct sview *v = *vp, **pp;

	*vp = NULL;
	if (!v)
		return;
	pthread_mutex_lock(&x->vlock);
	if (--v->nconns > 0) {
		pthread_mutex_unlock(&x->vlock);
		return;
	}
	for (pp = &x->views; *pp; pp = &(*pp)->next) {
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	}
	pthread_mutex_unlock(&x->vlock);
	nmap_destroy(&v->nodes, count_drop, NULL);
	free(v);
}

/* The view whose node ids s may use (see Confinement in access.h); NULL
 * before HELLO. */
static struct sview *ids_view(const struct ssession *s)
{
	return s->view ? s->view : s->ex ? &s->ex->root_view : NULL;
}

static int view_holds(const struct ssession *s, uint64_t nodeid)
{
	return nodeid == s->root_nodeid ||
	       nmap_get(&ids_view(s)->nodes, nodeid) > 0;
}

/* ---- lookup references --------------------------------------------------- */

int access_ref_add(struct ssession *s, uint64_t nodeid, uint64_t n)
{
	struct sview *v = ids_view(s);
	int ret = nmap_add(&s->nodes, nodeid, n);

	if (ret || !v)
		return ret;
	ret = nmap_add(&v->nodes, nodeid, n);
	if (ret)
		nmap_sub(&s->nodes, nodeid, n);
	return ret;
}

uint64_t access_ref_sub(struct ssession *s, uint64_t nodeid, uint64_t n)
{
	struct sview *v = ids_view(s);
	uint64_t took = nmap_sub(&s->nodes, nodeid, n);

	if (took && v)
		nmap_sub(&v->nodes, nodeid, took);
	return took;
}

/* ---- session start ------------------------------------------------------- */

int access_session_init(struct ssession *s)
{
	memset(s, 0, sizeof(*s));
	if (ftab_init(&s->files))
		return -ENOMEM;
	if (nmap_init(&s->nodes)) {
		ftab_destroy(&s->files, NULL, NULL);
		return -ENOMEM;
	}
	return 0;
}

static const struct orfa_cred as_root = { 0 };

/*
 * Walk subdir from the export root of be, as root: ".." refused, every
 * component a directory.  0 and *node, with *root the entry of the last
 * component and its lookup reference held (*node ORFA_ROOT_NODEID and
 * *root zeroed when subdir names the root itself), or a negative errno
 * with a reason in why.
 */
static int subdir_resolve(struct orfa_backend *be, const char *path,
			  const char *subdir, uint64_t *node,
			  struct orfa_entry *root, char *why, size_t whysz)
{
	char *copy = strdup(subdir), *save = NULL, *comp;
	uint64_t cur = ORFA_ROOT_NODEID;
	int ret = 0;

	*node = cur;
	if (!copy) {
		snprintf(why, whysz, "out of memory");
		return -ENOMEM;
	}
	memset(root, 0, sizeof(*root));
	for (comp = strtok_r(copy, "/", &save); comp;
	     comp = strtok_r(NULL, "/", &save)) {
		struct orfa_entry next;

		if (strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0) {
			snprintf(why, whysz, "export path %s: '..' not allowed",
				 path);
			ret = -EINVAL;
			break;
		}
		ret = be->ops->lookup(be, &as_root, cur, comp,
				      (uint32_t)strlen(comp), &next);
		if (ret == 0 && !S_ISDIR(next.attr.mode)) {
			be->ops->forget(be, next.nodeid, 1);
			ret = -ENOTDIR;
		}
		if (ret) {
			snprintf(why, whysz, "export path %s: %s", path,
				 strerror(-ret));
			break;
		}
		if (cur != ORFA_ROOT_NODEID)
			be->ops->forget(be, cur, 1);	/* intermediate */
		cur = next.nodeid;
		*root = next;
	}
	free(copy);
	if (ret) {
		if (cur != ORFA_ROOT_NODEID)
			be->ops->forget(be, cur, 1);
		return ret;
	}
	*node = cur;
	return 0;
}

int access_session_start(struct ssession *s, const char *path,
			 const char *subdir, struct orfa_entry *root,
			 char *why, size_t whysz)
{
	struct orfa_backend *be = s->ex->be;
	uint64_t cur;
	int ret;

	ret = subdir_resolve(be, path, subdir, &cur, root, why, whysz);
	if (ret)
		return ret;
	if (cur == ORFA_ROOT_NODEID) {
		root->nodeid = ORFA_ROOT_NODEID;
		ret = be->ops->getattr(be, &as_root, cur, NULL, &root->attr);
		if (ret) {
			snprintf(why, whysz, "export root: %s", strerror(-ret));
			return ret;
		}
	} else {
		s->view = view_get(s->ex, cur);
		if (!s->view) {
			be->ops->forget(be, cur, 1);
			snprintf(why, whysz, "out of memory");
			return -ENOMEM;
		}
	}
	s->root_nodeid = cur;
	s->root_ino = root->attr.ino;
	if (cur != ORFA_ROOT_NODEID) {
		ret = access_ref_add(s, cur, 1);
		if (ret) {
			be->ops->forget(be, cur, 1);
			view_put(s->ex, &s->view);
			snprintf(why, whysz, "out of memory");
			return ret;
		}
	}
	return 0;
}

/* ---- per-request checks -------------------------------------------------- */

/* The node ids a request names directly (not through a file id, whose
 * node was checked when it was opened).  Returns how many (0..2). */
static int req_nodes(const struct orfa_msg *m, uint64_t id[2])
{
	const union orfa_args *a = &m->a;

	switch (m->hdr.opcode) {
	case ORFA_OP_LOOKUP:	id[0] = a->lookup.parent; return 1;
	case ORFA_OP_GETATTR:	id[0] = a->getattr.nodeid; return 1;
	case ORFA_OP_SETATTR:	id[0] = a->setattr.nodeid; return 1;
	case ORFA_OP_READLINK:
	case ORFA_OP_STATFS:	id[0] = a->node.nodeid; return 1;
	case ORFA_OP_MKNOD:	id[0] = a->mknod.parent; return 1;
	case ORFA_OP_MKDIR:	id[0] = a->mkdir.parent; return 1;
	case ORFA_OP_UNLINK:
	case ORFA_OP_RMDIR:	id[0] = a->unlink.parent; return 1;
	case ORFA_OP_SYMLINK:	id[0] = a->symlink.parent; return 1;
	case ORFA_OP_RENAME:
		id[0] = a->rename.parent;
		id[1] = a->rename.newparent;
		return 2;
	case ORFA_OP_LINK:
		id[0] = a->link.nodeid;
		id[1] = a->link.newparent;
		return 2;
	case ORFA_OP_OPEN:
	case ORFA_OP_OPENDIR:	id[0] = a->open.nodeid; return 1;
	case ORFA_OP_CREATE:	id[0] = a->create.parent; return 1;
	case ORFA_OP_SETXATTR:	id[0] = a->setxattr.nodeid; return 1;
	case ORFA_OP_GETXATTR:
	case ORFA_OP_LISTXATTR:	id[0] = a->getxattr.nodeid; return 1;
	case ORFA_OP_REMOVEXATTR: id[0] = a->removexattr.nodeid; return 1;
	case ORFA_OP_ACCESS:	id[0] = a->access.nodeid; return 1;
	case ORFA_OP_GETLK:
	case ORFA_OP_SETLK:	id[0] = a->lk.nodeid; return 1;
	default:		return 0;
	}
}

/* 1 for ".", 2 for "..", else 0. */
static int dot_kind(const char *name, uint32_t len)
{
	if (!name || len == 0 || len > 2 || name[0] != '.')
		return 0;
	if (len == 1)
		return 1;
	return name[1] == '.' ? 2 : 0;
}

/*
 * "." and ".." name the directory itself or its parent: creating,
 * removing or renaming them is refused here, whatever a backend would do,
 * with the errors Linux gives for mkdir, unlinkat, rmdir and rename.
 */
static int dot_names_check(const struct orfa_msg *m)
{
	int k1 = dot_kind(m->name, m->namelen);
	int k2 = dot_kind(m->name2, m->name2len);

	switch (m->hdr.opcode) {
	case ORFA_OP_MKNOD:
	case ORFA_OP_MKDIR:
	case ORFA_OP_SYMLINK:	/* name2 is the target: any text */
	case ORFA_OP_LINK:
	case ORFA_OP_CREATE:
		return k1 ? -EEXIST : 0;
	case ORFA_OP_UNLINK:
		return k1 ? -EISDIR : 0;
	case ORFA_OP_RMDIR:
		return k1 == 1 ? -EINVAL : k1 == 2 ? -ENOTEMPTY : 0;
	case ORFA_OP_RENAME:
		return k1 || k2 ? -EBUSY : 0;
	default:
		return 0;
	}
}

/*
 * nosuid and nodev (exports.h, orfa_export_mode_ok): a request that would
 * give a file set-uid or set-gid bits, or make a device node, is refused
 * with EPERM whoever asks, root included.  A SETATTR mode without its
 * type bits asks the backend for the type (set-gid stays allowed on
 * directories).  0 or -EPERM.
 */
static int mode_check(struct ssession *s, const struct orfa_msg *m)
{
	const struct orfa_export *e = sexport_cfg(s->ex);
	const union orfa_args *a = &m->a;
	struct orfa_backend *be = s->ex->be;
	struct orfa_attr attr;
	uint32_t mode;

	if ((e->flags & ORFA_EXPORT_SUID) && (e->flags & ORFA_EXPORT_DEV))
		return 0;
	switch (m->hdr.opcode) {
	case ORFA_OP_CREATE:
		return orfa_export_mode_ok(e, S_IFREG | (a->create.mode &
					   07777), 0);
	case ORFA_OP_MKNOD:
		return orfa_export_mode_ok(e, a->mknod.mode, 1);
	case ORFA_OP_SETATTR:
		if (!(a->setattr.valid & ORFA_SET_MODE))
			return 0;
		mode = a->setattr.mode;
		if (!(mode & (S_ISUID | S_ISGID)) || (e->flags & ORFA_EXPORT_SUID))
			return 0;
		if (!(mode & S_IFMT)) {
			if (be->ops->getattr(be, &as_root, a->setattr.nodeid,
					     NULL, &attr))
				return -EPERM;
			mode |= attr.mode & S_IFMT;
		}
		return orfa_export_mode_ok(e, mode, 0);
	default:		/* MKDIR: set-gid on a directory is fine */
		return 0;
	}
}

int access_check(struct ssession *s, struct orfa_msg *m)
{
	const struct orfa_export *e = sexport_cfg(s->ex);
	unsigned op = m->hdr.opcode;
	uint64_t id[2];
	int n, ret;

	if (e->flags & (ORFA_EXPORT_ROOT_SQUASH | ORFA_EXPORT_ALL_SQUASH))
		orfa_export_squash(e, &m->cred);
	if (e->flags & ORFA_EXPORT_RO) {
		if (orfa_op_modifies(op, op == ORFA_OP_OPEN ?
				     m->a.open.flags : 0))
			return -EROFS;
		if (op == ORFA_OP_ACCESS && (m->a.access.mask & W_OK))
			return -EROFS;
	}
	ret = dot_names_check(m);
	if (ret)
		return ret;
	n = req_nodes(m, id);
	for (int i = 0; i < n; i++)
		if (!view_holds(s, id[i]))
			return -ESTALE;
	return mode_check(s, m);
}

/* ---- ".." in a subdirectory session -------------------------------------- */

int access_is_dotdot_lookup(const struct ssession *s, const struct orfa_msg *m)
{
	return s->view && m->hdr.opcode == ORFA_OP_LOOKUP &&
	       dot_kind(m->name, m->namelen) == 2;
}

int access_lookup_dotdot(struct ssession *s, const struct orfa_cred *cr,
			 uint64_t parent, struct orfa_entry *e)
{
	struct orfa_backend *be = s->ex->be;
	int ret;

	/* The session root is the client's "/": its ".." is itself. */
	if (parent == s->root_nodeid)
		return be->ops->lookup(be, cr, parent, ".", 1, e);
	ret = be->ops->lookup(be, cr, parent, "..", 2, e);
	if (ret)
		return ret;
	if (!view_holds(s, e->nodeid)) {
		/* A parent this view never reached: the directory was moved
		 * out of the subtree; do not follow it. */
		log_info("%s: '..' of node %llu leads out of the mounted "
			 "subdirectory: refused", s->peer,
			 (unsigned long long)parent);
		be->ops->forget(be, e->nodeid, 1);
		return -EACCES;
	}
	return 0;
}

/* ---- teardown ------------------------------------------------------------ */

static void cleanup_node(uint64_t nodeid, uint64_t count, void *arg)
{
	struct ssession *s = arg;

	s->ex->be->ops->forget(s->ex->be, nodeid, count);
	nmap_sub(&ids_view(s)->nodes, nodeid, count);
}

static void cleanup_file(uint64_t id, struct sfile *f, void *arg)
{
	sfile_put(&f);
}

void access_session_end(struct ssession *s)
{
	uint32_t nfiles = ftab_count(&s->files);

	if (nfiles)
		log_debug("%s: releasing %u open files", s->peer, nfiles);
	ftab_destroy(&s->files, cleanup_file, NULL);
	/* No HELLO took: no reference can have been handed out. */
	nmap_destroy(&s->nodes, s->ex ? cleanup_node : count_drop, s);
	if (s->ex)
		view_put(s->ex, &s->view);
	free(s->export_path);
	s->export_path = NULL;
}
