/*
 * backend_ramfs_xattr.c - extended attributes of the in-memory backend:
 * the user., trusted. and security. namespaces with Linux's permission
 * rules, stored as a list per node and charged against the size limit.
 * system.* (POSIX ACLs) is not supported (-EOPNOTSUPP).  Locking: fs->ns
 * for reading (the node stays), then node->lock (the list).
 */
#include "backend_ramfs_impl.h"

#include <errno.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

enum xattr_ns { XNS_USER, XNS_TRUSTED, XNS_SECURITY };

static int xattr_ns_of(const char *name, enum xattr_ns *ns)
{
	static const struct {
		const char *prefix;
		size_t len;
		enum xattr_ns ns;
	} tab[] = {
		{ "user.", 5, XNS_USER },
		{ "trusted.", 8, XNS_TRUSTED },
		{ "security.", 9, XNS_SECURITY },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		if (strncmp(name, tab[i].prefix, tab[i].len) == 0) {
			if (name[tab[i].len] == '\0')
				return -EINVAL;
			*ns = tab[i].ns;
			return 0;
		}
	}
	return -EOPNOTSUPP;	/* system.* (ACLs) and unknown namespaces */
}

/* Linux's xattr_permission() for this file system; node->lock held. */
static int xattr_perm(struct ramfs_node *n, const struct orfa_cred *cr,
		      const char *name, int write)
{
	enum xattr_ns ns;
	int r = xattr_ns_of(name, &ns);

	if (r)
		return r;
	switch (ns) {
	case XNS_TRUSTED:
		if (cr->uid != 0)
			return write ? -EPERM : -ENODATA;
		return 0;
	case XNS_SECURITY:
		/* readable by all; writing needs CAP_SYS_ADMIN */
		return (write && cr->uid != 0) ? -EPERM : 0;
	case XNS_USER:
		if (n->type != S_IFREG && n->type != S_IFDIR)
			return write ? -EPERM : -ENODATA;
		if (write && n->type == S_IFDIR && (n->mode & S_ISVTX) &&
		    cr->uid != 0 && cr->uid != n->uid)
			return -EPERM;
		return ramfs_perm_locked(n, cr, write ? W_OK : R_OK);
	}
	return -EOPNOTSUPP;
}

static int xattr_name_ok(const char *name)
{
	size_t len = strnlen(name, ORFA_MAX_XATTR_NAME + 1);

	return (len == 0 || len > ORFA_MAX_XATTR_NAME) ? -ERANGE : 0;
}

static struct ramfs_xattr **xattr_find(struct ramfs_node *n, const char *name)
{
	struct ramfs_xattr **pp;

	for (pp = &n->xattrs; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->data, name) == 0)
			return pp;
	return NULL;
}

static size_t xattr_cost(const struct ramfs_xattr *x)
{
	return sizeof(*x) + x->namelen + 1 + x->vlen;
}

/* Find the node and take fs->ns (read) and node->lock, or -ESTALE. */
static int xattr_node_lock(struct ramfs *fs, uint64_t nodeid,
			   struct ramfs_node **np)
{
	pthread_rwlock_rdlock(&fs->ns);
	*np = ramfs_node_find(fs, nodeid);
	if (!*np) {
		pthread_rwlock_unlock(&fs->ns);
		return -ESTALE;
	}
	pthread_mutex_lock(&(*np)->lock);
	return 0;
}

static void xattr_node_unlock(struct ramfs *fs, struct ramfs_node *n)
{
	pthread_mutex_unlock(&n->lock);
	pthread_rwlock_unlock(&fs->ns);
}

/* An existing attribute the caller may read (write 0) or remove
 * (write 1): 0 with the locks of xattr_node_lock taken, *np the node and
 * *ppp the attribute's link in its list; or an errno with no lock. */
static int xattr_lock_existing(struct ramfs *fs, const struct orfa_cred *cr,
			       uint64_t nodeid, const char *name, int write,
			       struct ramfs_node **np,
			       struct ramfs_xattr ***ppp)
{
	int r = xattr_name_ok(name);

	if (r)
		return r;
	r = xattr_node_lock(fs, nodeid, np);
	if (r)
		return r;
	r = xattr_perm(*np, cr, name, write);
	if (!r) {
		*ppp = xattr_find(*np, name);
		if (!*ppp)
			r = -ENODATA;
	}
	if (r)
		xattr_node_unlock(fs, *np);
	return r;
}

int ramfs_op_setxattr(struct orfa_backend *be, const struct orfa_cred *cr,
		      uint64_t nodeid, const char *name, const void *value,
		      size_t size, uint32_t flags)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_xattr *x, **pp;
	struct ramfs_node *n;
	size_t namelen;
	int r;

	r = xattr_name_ok(name);
	if (r)
		return r;
	if (size > ORFA_MAX_XATTR_VALUE)
		return -E2BIG;
	if (flags & ~(uint32_t)(XATTR_CREATE | XATTR_REPLACE))
		return -EINVAL;
	namelen = strlen(name);
	r = xattr_node_lock(fs, nodeid, &n);
	if (r)
		return r;
	r = xattr_perm(n, cr, name, 1);
	if (r)
		goto out;
	pp = xattr_find(n, name);
	if (pp && (flags & XATTR_CREATE)) {
		r = -EEXIST;
		goto out;
	}
	if (!pp && (flags & XATTR_REPLACE)) {
		r = -ENODATA;
		goto out;
	}
	r = ramfs_zalloc(fs, sizeof(*x) + namelen + 1 + size, &x);
	if (r)
		goto out;
	x->namelen = (uint32_t)namelen;
	x->vlen = (uint32_t)size;
	memcpy(x->data, name, namelen + 1);
	if (size)
		memcpy(x->data + namelen + 1, value, size);
	if (pp) {
		struct ramfs_xattr *old = *pp;

		x->next = old->next;
		*pp = x;
		ramfs_free(fs, old, xattr_cost(old));
	} else {
		x->next = n->xattrs;
		n->xattrs = x;
	}
	ramfs_now(&n->ctime);
out:
	xattr_node_unlock(fs, n);
	return r;
}

int ramfs_op_getxattr(struct orfa_backend *be, const struct orfa_cred *cr,
		      uint64_t nodeid, const char *name, void *buf,
		      size_t size, size_t *len)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_xattr **pp;
	struct ramfs_node *n;
	int r;

	r = xattr_lock_existing(fs, cr, nodeid, name, 0, &n, &pp);
	if (r)
		return r;
	*len = (*pp)->vlen;
	if (size) {
		if (size < (*pp)->vlen)
			r = -ERANGE;
		else
			memcpy(buf, (*pp)->data + (*pp)->namelen + 1,
			       (*pp)->vlen);
	}
	xattr_node_unlock(fs, n);
	return r;
}

/* trusted.* is invisible to the unprivileged */
static int xattr_listable(const struct ramfs_xattr *x,
			  const struct orfa_cred *cr)
{
	return cr->uid == 0 || strncmp(x->data, "trusted.", 8) != 0;
}

int ramfs_op_listxattr(struct orfa_backend *be, const struct orfa_cred *cr,
		       uint64_t nodeid, void *buf, size_t size, size_t *len)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_xattr *x;
	struct ramfs_node *n;
	size_t total = 0;
	int r = 0;

	r = xattr_node_lock(fs, nodeid, &n);
	if (r)
		return r;
	for (x = n->xattrs; x; x = x->next)
		if (xattr_listable(x, cr))
			total += x->namelen + 1;
	*len = total;
	if (size && size < total) {
		r = -ERANGE;
	} else if (size) {
		char *p = buf;

		for (x = n->xattrs; x; x = x->next) {
			if (!xattr_listable(x, cr))
				continue;
			memcpy(p, x->data, x->namelen + 1);
			p += x->namelen + 1;
		}
	}
	xattr_node_unlock(fs, n);
	return r;
}

int ramfs_op_removexattr(struct orfa_backend *be, const struct orfa_cred *cr,
			 uint64_t nodeid, const char *name)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_xattr **pp, *x;
	struct ramfs_node *n;
	int r;

	r = xattr_lock_existing(fs, cr, nodeid, name, 1, &n, &pp);
	if (r)
		return r;
	x = *pp;
	*pp = x->next;
	ramfs_free(fs, x, xattr_cost(x));
	ramfs_now(&n->ctime);
	xattr_node_unlock(fs, n);
	return r;
}
