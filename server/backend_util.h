/*
 * backend_util.h - rules both backends apply the same way.
 *
 * The checks of a name argument and the answers for "." and ".." per
 * operation, the "only drops setuid/setgid" test of a SETATTR mode, and
 * the reset of a read's result.  Each rule is written here once so the
 * native and the ramfs backend give the same errno for the same request.
 * Nothing here touches a backend's nodes, locks or files: callers check
 * first, then do their own work.  All functions return 0 or a negative
 * errno, except where a comment says otherwise.
 */
#ifndef ORFA_BACKEND_UTIL_H
#define ORFA_BACKEND_UTIL_H

#include <stdbool.h>
#include <stdint.h>

struct orfa_read_out;

/* What backend_name_dot() finds. */
enum backend_dot {
	BACKEND_NAME_PLAIN = 0,
	BACKEND_NAME_DOT = 1,		/* "." */
	BACKEND_NAME_DOTDOT = 2,	/* ".." */
};

/*
 * A single path component as backend.h requires it: NULL or one with '/'
 * or NUL inside, or not NUL-terminated at namelen, gives -EINVAL; one over
 * NAME_MAX bytes -ENAMETOOLONG; an empty one -ENOENT (POSIX and Linux
 * answer ENOENT for an empty path, e.g. openat(dirfd, "", 0)).
 */
int backend_check_name(const char *name, uint32_t namelen);

/* Is name (already checked) ".", ".." or neither? */
enum backend_dot backend_name_dot(const char *name, uint32_t namelen);

/*
 * A name for a new entry (MKNOD, MKDIR, SYMLINK, LINK): backend_check_name,
 * then "." and ".." give -EEXIST (they always exist; Linux mkdir(".")).
 */
int backend_check_new_name(const char *name, uint32_t namelen);

/*
 * The name and flags of a CREATE: "." and ".." give -EEXIST with O_EXCL,
 * else -EISDIR, as open(".", O_CREAT[|O_EXCL]) does on Linux; then
 * O_DIRECTORY gives -EINVAL (Linux since 6.4 refuses O_CREAT|O_DIRECTORY
 * so; nothing is created).
 */
int backend_check_create_name(const char *name, uint32_t namelen,
			      uint32_t flags);

/*
 * OPEN of a node of file type type (S_IFREG, S_IFDIR, ...; not a
 * directory being opened by OPENDIR): O_DIRECTORY on anything but a
 * directory gives -ENOTDIR (open(2)); a directory -EISDIR (directories
 * go through OPENDIR), a symlink -ELOOP (never followed), a device, FIFO
 * or socket -ENXIO (the client opens those itself); a regular file 0.
 */
int backend_check_open(uint32_t type, uint32_t flags);

/*
 * The name of an UNLINK (rmdir false) or RMDIR (rmdir true): unlink of
 * "." or ".." gives -EISDIR; rmdir of "." -EINVAL and of ".." -ENOTEMPTY,
 * as Linux answers (POSIX allows EBUSY/EINVAL; Linux is what clients see
 * locally).
 */
int backend_check_remove_name(const char *name, uint32_t namelen,
			      bool rmdir);

/*
 * The arguments of a RENAME: flags other than ORFA_RENAME_NOREPLACE and
 * ORFA_RENAME_EXCHANGE, or both of them, give -EINVAL (renameat2 checks
 * flags first); then both names are checked; "." or ".." on either side
 * gives -EBUSY (Linux rename of a dot entry).
 */
int backend_check_rename(const char *name, uint32_t namelen,
			 const char *newname, uint32_t newnamelen,
			 uint32_t flags);

/*
 * The file type a MKNOD of mode creates, in *type: none means S_IFREG;
 * S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR and S_IFBLK are taken (whether the
 * caller may make a device is the backend's check); S_IFDIR gives -EPERM
 * and any other type -EINVAL, as Linux's mknod(2) (may_mknod) answers.
 */
int backend_mknod_type(uint32_t mode, uint32_t *type);

/*
 * A SYMLINK's target: NULL or one with a NUL inside gives -EINVAL, an
 * empty one -ENOENT (as symlink(2)), one of ORFA_MAX_SYMLINK bytes or
 * more -ENAMETOOLONG (PATH_MAX counts the terminating NUL).
 */
int backend_check_symlink_target(const char *target, uint32_t targetlen);

/*
 * True if want is have with some of S_ISUID/S_ISGID cleared and nothing
 * else changed (permission bits, 07777).  A writer who does not own a
 * file may make that change: FUSE clients without handle_killpriv send
 * the kernel's "kill suid on write" as a SETATTR of the mode from the
 * writer.
 */
bool backend_only_drops_suidgid(uint32_t have, uint32_t want);

/* Set *out to "no data, nothing to release" before a read fills it. */
void backend_read_out_init(struct orfa_read_out *out);

#endif /* ORFA_BACKEND_UTIL_H */
