/*
 * backend_native_dir.c - the native backend's namespace changes: MKNOD,
 * MKDIR, SYMLINK, UNLINK, RMDIR, RENAME and LINK, each one *at() call on
 * the parent node's descriptor as the caller's user, after the shared
 * name rules of backend_util.h.  Node table, lookups, credentials and the
 * containment rules are in backend_native.c (whose opening comment
 * describes the whole backend); open files in backend_native_io.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend_native_impl.h"
#include "backend_util.h"

/*
 * Common frame of the operations creating a name in a directory: checks
 * the name (. and .. exist already), gets the parent, enters cred, runs
 * make(), looks the new name up into out.
 */
struct nat_mk {
	uint32_t mode;
	uint64_t rdev;
	const char *target;
};

static int do_make(struct nat_backend *nb, struct nat_node *p, const char *name,
		   int kind, const struct nat_mk *mk)
{
	int r;

	switch (kind) {
	case S_IFDIR:
		r = mkdirat(p->fd, name, mk->mode);
		break;
	case S_IFLNK:
		r = symlinkat(mk->target, p->fd, name);
		break;
	default:
		r = mknodat(p->fd, name, mk->mode, (dev_t)mk->rdev);
		break;
	}
	return r < 0 ? -errno : 0;
}

static int make_node(struct orfa_backend *be, const struct orfa_cred *cr,
		     uint64_t parent, const char *name, uint32_t namelen,
		     int kind, const struct nat_mk *mk, struct orfa_entry *out)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_node *p;
	int r = backend_check_new_name(name, namelen);

	if (r)
		return r;
	r = nat_node_enter(nb, cr, parent, true, &p, &cs);
	if (r)
		return r;
	r = do_make(nb, p, name, kind, mk);
	if (r == 0)
		r = nat_lookup_name(nb, p, name, out);
	nat_cred_leave(nb, &cs);
	nat_node_put(nb, &p);
	return r;
}

int nat_mknod(struct orfa_backend *be, const struct orfa_cred *cr,
	      uint64_t parent, const char *name, uint32_t namelen,
	      uint32_t mode, uint64_t rdev, struct orfa_entry *out)
{
	struct nat_mk mk = {.rdev = rdev};
	uint32_t type;
	int r = backend_mknod_type(mode, &type);

	if (r)
		return r;
	mk.mode = type | ((mode & 07777) & ~cred_umask(cr));
	return make_node(be, cr, parent, name, namelen, 0, &mk, out);
}

int nat_mkdir(struct orfa_backend *be, const struct orfa_cred *cr,
	      uint64_t parent, const char *name, uint32_t namelen,
	      uint32_t mode, struct orfa_entry *out)
{
	struct nat_mk mk = {.mode = (mode & 07777) & ~cred_umask(cr)};

	return make_node(be, cr, parent, name, namelen, S_IFDIR, &mk, out);
}

int nat_symlink(struct orfa_backend *be, const struct orfa_cred *cr,
		uint64_t parent, const char *name, uint32_t namelen,
		const char *target, uint32_t targetlen,
		struct orfa_entry *out)
{
	struct nat_mk mk = {0};
	char *t;
	int r;

	r = backend_check_symlink_target(target, targetlen);
	if (r)
		return r;
	t = malloc(targetlen + 1);
	if (!t)
		return -ENOMEM;
	memcpy(t, target, targetlen);
	t[targetlen] = '\0';
	mk.target = t;
	r = make_node(be, cr, parent, name, namelen, S_IFLNK, &mk, out);
	free(t);
	return r;
}

/* UNLINK and RMDIR. */
static int remove_name(struct orfa_backend *be, const struct orfa_cred *cr,
		       uint64_t parent, const char *name, uint32_t namelen,
		       int flags)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_node *p;
	int r = backend_check_remove_name(name, namelen, flags != 0);

	if (r)
		return r;
	p = nat_node_get(nb, parent);
	if (!p)
		return -ESTALE;
	r = nat_cred_enter(nb, cr, &cs);
	if (r == 0) {
		if (unlinkat(p->fd, name, flags) < 0)
			r = -errno;
		nat_cred_leave(nb, &cs);
	}
	nat_node_put(nb, &p);
	return r;
}

int nat_unlink(struct orfa_backend *be, const struct orfa_cred *cr,
	       uint64_t parent, const char *name, uint32_t namelen)
{
	return remove_name(be, cr, parent, name, namelen, 0);
}

int nat_rmdir(struct orfa_backend *be, const struct orfa_cred *cr,
	      uint64_t parent, const char *name, uint32_t namelen)
{
	return remove_name(be, cr, parent, name, namelen, AT_REMOVEDIR);
}

int nat_rename(struct orfa_backend *be, const struct orfa_cred *cr,
	       uint64_t parent, const char *name, uint32_t namelen,
	       uint64_t newparent, const char *newname,
	       uint32_t newnamelen, uint32_t flags)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_node *p, *np;
	unsigned int kflags = 0;
	int r;

	r = backend_check_rename(name, namelen, newname, newnamelen, flags);
	if (r)
		return r;
	if (flags & ORFA_RENAME_NOREPLACE)
		kflags |= RENAME_NOREPLACE;
	if (flags & ORFA_RENAME_EXCHANGE)
		kflags |= RENAME_EXCHANGE;
	p = nat_node_get(nb, parent);
	if (!p)
		return -ESTALE;
	np = nat_node_get(nb, newparent);
	if (!np) {
		nat_node_put(nb, &p);
		return -ESTALE;
	}
	r = nat_cred_enter(nb, cr, &cs);
	if (r == 0) {
		if (renameat2(p->fd, name, np->fd, newname, kflags) < 0)
			r = -errno;
		nat_cred_leave(nb, &cs);
	}
	nat_node_put(nb, &np);
	nat_node_put(nb, &p);
	return r;
}

int nat_link(struct orfa_backend *be, const struct orfa_cred *cr,
	     uint64_t nodeid, uint64_t newparent, const char *newname,
	     uint32_t newnamelen, struct orfa_entry *out)
{
	struct nat_backend *nb = to_nb(be);
	struct nat_cred_state cs;
	struct nat_node *n, *np;
	char name[NAT_PROC_NAME];
	struct stat st;
	int r = backend_check_new_name(newname, newnamelen);

	if (r)
		return r;
	n = nat_node_get(nb, nodeid);
	if (!n)
		return -ESTALE;
	np = nat_node_get(nb, newparent);
	if (!np) {
		nat_node_put(nb, &n);
		return -ESTALE;
	}
	if (S_ISDIR(n->type)) {
		r = -EPERM;
		goto out_put;
	}
	r = nat_cred_enter(nb, cr, &cs);
	if (r)
		goto out_put;
	if (S_ISLNK(n->type)) {
		/* No magic link for symlinks: AT_EMPTY_PATH needs
		 * CAP_DAC_READ_SEARCH and says ENOENT without it. */
		if (linkat(n->fd, "", np->fd, newname, AT_EMPTY_PATH) < 0) {
			r = -errno;
			if (r == -ENOENT && nat_stat_node(n, &st) == 0 &&
			    st.st_nlink > 0)
				r = -EPERM;
		}
	} else {
		/* The magic link names this very inode (passthrough_ll). */
		proc_name(name, n->fd);
		if (linkat(nb->proc_fd, name, np->fd, newname,
			   AT_SYMLINK_FOLLOW) < 0)
			r = -errno;
	}
	nat_cred_leave(nb, &cs);
	if (r == 0)
		r = nat_node_addref(nb, n, out);
out_put:
	nat_node_put(nb, &np);
	nat_node_put(nb, &n);
	return r;
}
