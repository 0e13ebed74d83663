/*
 * backend_util.c - rules both backends apply the same way (see
 * backend_util.h): name checks, "." and ".." per operation, the setuid
 * drop test, the reset of a read's result.  No state, no locks, no I/O.
 */
#include "backend_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "backend.h"

int backend_check_name(const char *name, uint32_t namelen)
{
	if (!name)
		return -EINVAL;
	if (namelen > NAME_MAX)
		return -ENAMETOOLONG;
	if (namelen == 0)
		return -ENOENT;
	if (memchr(name, '/', namelen) || memchr(name, '\0', namelen) ||
	    name[namelen] != '\0')
		return -EINVAL;
	return 0;
}

enum backend_dot backend_name_dot(const char *name, uint32_t namelen)
{
	if (namelen == 1 && name[0] == '.')
		return BACKEND_NAME_DOT;
	if (namelen == 2 && name[0] == '.' && name[1] == '.')
		return BACKEND_NAME_DOTDOT;
	return BACKEND_NAME_PLAIN;
}

int backend_check_new_name(const char *name, uint32_t namelen)
{
	int r = backend_check_name(name, namelen);

	if (r)
		return r;
	return backend_name_dot(name, namelen) ? -EEXIST : 0;
}

int backend_check_create_name(const char *name, uint32_t namelen,
			      uint32_t flags)
{
	int r = backend_check_name(name, namelen);

	if (r)
		return r;
	if (backend_name_dot(name, namelen))
		return (flags & O_EXCL) ? -EEXIST : -EISDIR;
	return (flags & O_DIRECTORY) ? -EINVAL : 0;
}

int backend_check_open(uint32_t type, uint32_t flags)
{
	if ((flags & O_DIRECTORY) && type != S_IFDIR)
		return -ENOTDIR;
	switch (type) {
	case S_IFREG:
		return 0;
	case S_IFDIR:
		return -EISDIR;
	case S_IFLNK:
		return -ELOOP;
	default:
		return -ENXIO;
	}
}

int backend_check_remove_name(const char *name, uint32_t namelen,
			      bool rmdir)
{
	int r = backend_check_name(name, namelen);

	if (r)
		return r;
	switch (backend_name_dot(name, namelen)) {
	case BACKEND_NAME_DOT:
		return rmdir ? -EINVAL : -EISDIR;
	case BACKEND_NAME_DOTDOT:
		return rmdir ? -ENOTEMPTY : -EISDIR;
	default:
		return 0;
	}
}

int backend_check_rename(const char *name, uint32_t namelen,
			 const char *newname, uint32_t newnamelen,
			 uint32_t flags)
{
	int r;

	if ((flags & ~(uint32_t)(ORFA_RENAME_NOREPLACE |
				 ORFA_RENAME_EXCHANGE)) ||
	    ((flags & ORFA_RENAME_NOREPLACE) &&
	     (flags & ORFA_RENAME_EXCHANGE)))
		return -EINVAL;
	r = backend_check_name(name, namelen);
	if (!r)
		r = backend_check_name(newname, newnamelen);
	if (r)
		return r;
	if (backend_name_dot(name, namelen) ||
	    backend_name_dot(newname, newnamelen))
		return -EBUSY;
	return 0;
}

int backend_mknod_type(uint32_t mode, uint32_t *type)
{
	switch (mode & S_IFMT) {
	case 0:
		*type = S_IFREG;
		return 0;
	case S_IFREG:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		*type = mode & S_IFMT;
		return 0;
	case S_IFDIR:
		return -EPERM;
	default:
		return -EINVAL;
	}
}

int backend_check_symlink_target(const char *target, uint32_t targetlen)
{
	if (!target)
		return -EINVAL;
	if (targetlen == 0)
		return -ENOENT;
	if (targetlen >= ORFA_MAX_SYMLINK)
		return -ENAMETOOLONG;
	if (memchr(target, '\0', targetlen))
		return -EINVAL;
	return 0;
}

bool backend_only_drops_suidgid(uint32_t have, uint32_t want)
{
	uint32_t dropped = have & ~want;

	return (want & ~have) == 0 && dropped != 0 &&
	       (dropped & ~(uint32_t)(S_ISUID | S_ISGID)) == 0;
}

void backend_read_out_init(struct orfa_read_out *out)
{
	out->iovcnt = 0;
	out->fd = -1;
	out->off = 0;
	out->len = 0;
	out->release = NULL;
	out->hold = NULL;
}
