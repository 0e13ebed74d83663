/*
 * test_backend_contract.c - the backend contract (server/backend.h) that
 * both backends keep, tested once and run against each: the native
 * backend (a fresh mkdtemp() export) and ramfs (a fresh file system).
 *
 * Every test here goes through the ops table only and expects the same
 * answer from both: name checks and the errno of each ("." and "..",
 * empty, over-long, '/' inside; see server/backend_util.h), lookup of "."
 * and "..", directories made and removed, hard links, renames and their
 * flags.  What one backend does on its own (ramfs space accounting and
 * zero-copy reads, native containment, sendfile and credentials) stays in
 * test_backend_ramfs.c and test_backend_native.c.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "check_main.h"
#include "backend.h"
#include "log.h"

#define ROOT	ORFA_ROOT_NODEID

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE	0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE	0x02
#endif

static struct orfa_backend *be;
static struct orfa_cred rootc;		/* the server's user, umask 022 */
static char base[PATH_MAX];		/* native only: the temp directory */

/* ---- the two backends ------------------------------------------------ */

static void cred_init(void)
{
	memset(&rootc, 0, sizeof(rootc));
	rootc.uid = geteuid();
	rootc.gid = getegid();
	rootc.umask = 022;
	orfa_log_set_level(ORFA_LOG_ERR);
}

static void setup_ramfs(void)
{
	cred_init();
	base[0] = '\0';
	ck_assert_int_eq(backend_ramfs_create(0, &be), 0);
	ck_assert_str_eq(be->ops->name, "ramfs");
}

static void setup_native(void)
{
	char exp_dir[PATH_MAX + 8];
	int r;

	cred_init();
	umask(0);	/* as orfad does; the backend applies cred->umask */
	snprintf(base, sizeof(base), "/tmp/orfa-contract-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	snprintf(exp_dir, sizeof(exp_dir), "%s/export", base);
	ck_assert_int_eq(mkdir(exp_dir, 0755), 0);
	r = backend_native_create(exp_dir, &be);
	ck_assert_msg(r == 0, "create: %s", strerror(-r));
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

static void teardown(void)
{
	orfa_backend_destroy(be);
	be = NULL;
	if (base[0])
		nftw(base, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

/* ---- helpers ------------------------------------------------------- */

#define OPS (be->ops)

static int do_lookup(uint64_t parent, const char *name, struct orfa_entry *e)
{
	return OPS->lookup(be, &rootc, parent, name, (uint32_t)strlen(name),
			   e);
}

static int do_mkdir(uint64_t parent, const char *name, struct orfa_entry *e)
{
	return OPS->mkdir(be, &rootc, parent, name, (uint32_t)strlen(name),
			  0777, e);
}

static int do_mknod(uint64_t parent, const char *name, uint32_t mode,
		    struct orfa_entry *e)
{
	return OPS->mknod(be, &rootc, parent, name, (uint32_t)strlen(name),
			  mode, 0, e);
}

static int do_create(uint64_t parent, const char *name, uint32_t flags,
		     struct orfa_entry *e, void **fh)
{
	return OPS->create(be, &rootc, parent, name, (uint32_t)strlen(name),
			   0666, flags, e, fh);
}

static int do_symlink(uint64_t parent, const char *name, const char *target,
		      struct orfa_entry *e)
{
	return OPS->symlink(be, &rootc, parent, name, (uint32_t)strlen(name),
			    target, (uint32_t)strlen(target), e);
}

static int do_link(uint64_t node, uint64_t parent, const char *name,
		   struct orfa_entry *e)
{
	return OPS->link(be, &rootc, node, parent, name,
			 (uint32_t)strlen(name), e);
}

static int do_unlink(uint64_t parent, const char *name)
{
	return OPS->unlink(be, &rootc, parent, name, (uint32_t)strlen(name));
}

static int do_rmdir(uint64_t parent, const char *name)
{
	return OPS->rmdir(be, &rootc, parent, name, (uint32_t)strlen(name));
}

static int do_rename(uint64_t p1, const char *n1, uint64_t p2,
		     const char *n2, uint32_t flags)
{
	return OPS->rename(be, &rootc, p1, n1, (uint32_t)strlen(n1), p2, n2,
			   (uint32_t)strlen(n2), flags);
}

static uint64_t mkfile(uint64_t parent, const char *name)
{
	struct orfa_entry e;

	ck_assert_int_eq(do_mknod(parent, name, S_IFREG | 0644, &e), 0);
	return e.nodeid;
}

static uint64_t mkdirid(uint64_t parent, const char *name)
{
	struct orfa_entry e;

	ck_assert_int_eq(do_mkdir(parent, name, &e), 0);
	return e.nodeid;
}

static struct orfa_attr getattr(uint64_t node)
{
	struct orfa_attr a;

	ck_assert_int_eq(OPS->getattr(be, &rootc, node, NULL, &a), 0);
	return a;
}

static uint64_t write_str(uint64_t node, const char *s)
{
	struct iovec iov = {.iov_base = (void *)s, .iov_len = strlen(s)};
	struct orfa_attr a;
	uint64_t written = 0;
	void *fh = NULL;

	ck_assert_int_eq(OPS->open(be, &rootc, node, O_WRONLY, &fh, NULL), 0);
	ck_assert_int_eq(OPS->write(be, &rootc, node, fh, 0, &iov, 1, 0,
				    &written, &a), 0);
	OPS->release(be, node, fh);
	return written;
}

static int64_t do_write(uint64_t node, void *fh, uint64_t off,
			const void *buf, size_t len, uint32_t flags)
{
	struct iovec iov = {(void *)buf, len};
	struct orfa_attr a;
	uint64_t written = 0;
	int r;

	r = OPS->write(be, &rootc, node, fh, off, &iov, 1, flags, &written,
		       &a);
	return r ? r : (int64_t)written;
}

/* Read through the backend as the server does, wherever the backend puts
 * the data (its own memory, the caller's buffer or a file range). */
static int64_t do_read(uint64_t node, void *fh, uint64_t off, uint32_t size,
		       void *dst)
{
	struct orfa_read_out out;
	void *buf = malloc(size ? size : 1);
	size_t pos = 0;
	int r;

	ck_assert_ptr_nonnull(buf);
	r = OPS->read(be, node, fh, off, size, buf, &out);
	if (r) {
		free(buf);
		return r;
	}
	ck_assert_int_le(out.iovcnt, ORFA_READ_MAX_IOV);
	if (out.iovcnt == 0 && out.len) {
		ck_assert_int_ge(out.fd, 0);
		ck_assert_int_eq(pread(out.fd, dst, out.len, out.off),
				 (ssize_t)out.len);
		pos = out.len;
	}
	for (int i = 0; i < out.iovcnt; i++) {
		memcpy((char *)dst + pos, out.iov[i].iov_base,
		       out.iov[i].iov_len);
		pos += out.iov[i].iov_len;
	}
	ck_assert_uint_eq(pos, out.len);
	if (out.release)
		out.release(out.hold);
	free(buf);
	return (int64_t)pos;
}

static void *do_open(uint64_t node, uint32_t flags)
{
	void *fh = NULL;

	ck_assert_int_eq(OPS->open(be, &rootc, node, flags, &fh, NULL), 0);
	return fh;
}

static void fill_pattern(unsigned char *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)((seed + i) * 2654435761u >> 13);
}

/* ---- node ids ------------------------------------------------------- */

START_TEST(test_stale_and_unknown_ids)
{
	struct orfa_attr a;
	struct orfa_entry e;

	ck_assert_int_eq(OPS->getattr(be, &rootc, ROOT, NULL, &a), 0);
	ck_assert(S_ISDIR(a.mode));
	ck_assert_int_eq(OPS->getattr(be, &rootc, 0, NULL, &a), -ESTALE);
	ck_assert_int_eq(OPS->getattr(be, &rootc, 12345, NULL, &a), -ESTALE);
	ck_assert_int_eq(OPS->getattr(be, &rootc, (7ull << 32) | 1, NULL, &a),
			 -ESTALE);
	ck_assert_int_eq(do_lookup(999, "x", &e), -ESTALE);
	ck_assert_int_eq(do_mkdir(999, "x", &e), -ESTALE);
	OPS->forget(be, 999, 1);	/* ignored */
}
END_TEST

/* Every entry handed out is one lookup reference; FORGET takes them back
 * (more than held is clamped); an unlinked node goes with its last. */
START_TEST(test_lookup_counts_and_forget)
{
	struct orfa_entry e;
	struct orfa_attr a;
	uint64_t id = mkfile(ROOT, "f"), g;	/* 1 reference */

	ck_assert_uint_ne(id, ROOT);
	ck_assert_int_eq(do_lookup(ROOT, "f", &e), 0);	/* 2 */
	ck_assert_uint_eq(e.nodeid, id);
	ck_assert_int_eq(do_lookup(ROOT, "f", &e), 0);	/* 3 */
	ck_assert_uint_eq(e.nodeid, id);
	ck_assert_int_eq(do_unlink(ROOT, "f"), 0);
	ck_assert_int_eq(OPS->getattr(be, &rootc, id, NULL, &a), 0);
	ck_assert_uint_eq(a.nlink, 0);
	OPS->forget(be, id, 2);
	ck_assert_int_eq(OPS->getattr(be, &rootc, id, NULL, &a), 0);
	OPS->forget(be, id, 1);
	ck_assert_int_eq(OPS->getattr(be, &rootc, id, NULL, &a), -ESTALE);
	/* forgetting more than held is clamped, not an underflow */
	g = mkfile(ROOT, "g");
	OPS->forget(be, g, 10);
	OPS->forget(be, ROOT, 5);
	ck_assert_int_eq(do_lookup(ROOT, "g", &e), 0);
	ck_assert_int_eq(OPS->getattr(be, &rootc, ROOT, NULL, &a), 0);
	ck_assert(S_ISDIR(a.mode));
}
END_TEST

/* ---- names ------------------------------------------------------------ */

/* One component, at most NAME_MAX bytes, no '/' or NUL, namelen =
 * strlen(name): the same errno from every operation. */
START_TEST(test_name_checks)
{
	struct orfa_entry e;
	char longname[NAME_MAX + 2];
	void *fh = NULL;

	memset(longname, 'x', NAME_MAX + 1);
	longname[NAME_MAX + 1] = '\0';
	ck_assert_int_eq(do_lookup(ROOT, longname, &e), -ENAMETOOLONG);
	ck_assert_int_eq(do_mkdir(ROOT, longname, &e), -ENAMETOOLONG);
	ck_assert_int_eq(do_create(ROOT, longname, O_RDWR, &e, &fh),
			 -ENAMETOOLONG);
	longname[NAME_MAX] = '\0';
	ck_assert_int_eq(do_lookup(ROOT, longname, &e), -ENOENT);
	ck_assert_int_eq(do_mkdir(ROOT, longname, &e), 0);
	ck_assert_int_eq(do_lookup(ROOT, longname, &e), 0);
	ck_assert_int_eq(do_lookup(ROOT, "a/b", &e), -EINVAL);
	ck_assert_int_eq(do_lookup(ROOT, "/etc/passwd", &e), -EINVAL);
	ck_assert_int_eq(do_lookup(ROOT, "../..", &e), -EINVAL);
	ck_assert_int_eq(do_lookup(ROOT, "/", &e), -EINVAL);
	ck_assert_int_eq(do_lookup(ROOT, "missing", &e), -ENOENT);
	/* namelen disagreeing with the string: refused, not trusted */
	ck_assert_int_eq(OPS->lookup(be, &rootc, ROOT, "abc", 2, &e), -EINVAL);
	ck_assert_int_eq(OPS->mknod(be, &rootc, ROOT, "a\0b", 3, S_IFREG, 0,
				    &e), -EINVAL);
	ck_assert_int_eq(do_mkdir(ROOT, "a/b", &e), -EINVAL);
	ck_assert_int_eq(do_create(ROOT, "../x", O_RDWR, &e, &fh), -EINVAL);
	ck_assert_int_eq(do_mknod(ROOT, "../x", S_IFREG | 0644, &e), -EINVAL);
	ck_assert_int_eq(do_symlink(ROOT, "../x", "t", &e), -EINVAL);
	ck_assert_int_eq(do_unlink(ROOT, "../x"), -EINVAL);
	ck_assert_int_eq(do_rmdir(ROOT, "../x"), -EINVAL);
	ck_assert_int_eq(do_rename(ROOT, "x", ROOT, "a/b", 0), -EINVAL);
	mkfile(ROOT, "file");
	ck_assert_int_eq(do_mkdir(ROOT, "file", &e), -EEXIST);
	ck_assert_int_eq(do_lookup(ROOT, "file", &e), 0);
	ck_assert_int_eq(do_lookup(e.nodeid, "x", &e), -ENOTDIR);
}
END_TEST

/* An empty name is no entry: ENOENT (POSIX, and Linux for "" paths). */
START_TEST(test_empty_name)
{
	struct orfa_entry e;
	uint64_t f = mkfile(ROOT, "f");
	void *fh = NULL;

	ck_assert_int_eq(do_lookup(ROOT, "", &e), -ENOENT);
	ck_assert_int_eq(OPS->lookup(be, &rootc, ROOT, "ab", 0, &e), -ENOENT);
	ck_assert_int_eq(do_mkdir(ROOT, "", &e), -ENOENT);
	ck_assert_int_eq(do_mknod(ROOT, "", S_IFREG | 0644, &e), -ENOENT);
	ck_assert_int_eq(do_create(ROOT, "", O_RDWR, &e, &fh), -ENOENT);
	ck_assert_int_eq(do_symlink(ROOT, "", "t", &e), -ENOENT);
	ck_assert_int_eq(do_link(f, ROOT, "", &e), -ENOENT);
	ck_assert_int_eq(do_unlink(ROOT, ""), -ENOENT);
	ck_assert_int_eq(do_rmdir(ROOT, ""), -ENOENT);
	ck_assert_int_eq(do_rename(ROOT, "", ROOT, "x", 0), -ENOENT);
	ck_assert_int_eq(do_rename(ROOT, "f", ROOT, "", 0), -ENOENT);
}
END_TEST

/* "." and "..": the answers Linux gives for each operation. */
START_TEST(test_dot_names_per_operation)
{
	struct orfa_entry e;
	uint64_t f = mkfile(ROOT, "f");
	uint64_t d = mkdirid(ROOT, "d");
	void *fh = NULL;

	ck_assert_int_eq(do_mkdir(ROOT, ".", &e), -EEXIST);
	ck_assert_int_eq(do_mkdir(ROOT, "..", &e), -EEXIST);
	ck_assert_int_eq(do_mknod(d, ".", S_IFREG | 0644, &e), -EEXIST);
	ck_assert_int_eq(do_symlink(d, "..", "t", &e), -EEXIST);
	ck_assert_int_eq(do_link(f, d, ".", &e), -EEXIST);
	ck_assert_int_eq(do_create(d, ".", O_RDWR, &e, &fh), -EISDIR);
	ck_assert_int_eq(do_create(d, "..", O_RDWR | O_EXCL, &e, &fh),
			 -EEXIST);
	ck_assert_int_eq(do_rmdir(d, "."), -EINVAL);
	ck_assert_int_eq(do_rmdir(d, ".."), -ENOTEMPTY);
	ck_assert_int_eq(do_rmdir(ROOT, ".."), -ENOTEMPTY);
	ck_assert_int_eq(do_unlink(d, "."), -EISDIR);
	ck_assert_int_eq(do_unlink(ROOT, ".."), -EISDIR);
	ck_assert_int_eq(do_rename(ROOT, "..", ROOT, "x", 0), -EBUSY);
	ck_assert_int_eq(do_rename(d, ".", ROOT, "x", 0), -EBUSY);
	ck_assert_int_eq(do_rename(ROOT, "f", d, "..", 0), -EBUSY);
}
END_TEST

START_TEST(test_lookup_dot_and_dotdot)
{
	struct orfa_entry e;
	uint64_t d = mkdirid(ROOT, "d");
	uint64_t d2 = mkdirid(d, "d2");
	uint64_t f = mkfile(ROOT, "f");

	ck_assert_int_eq(do_lookup(ROOT, ".", &e), 0);
	ck_assert_uint_eq(e.nodeid, ROOT);
	/* never above the root */
	ck_assert_int_eq(do_lookup(ROOT, "..", &e), 0);
	ck_assert_uint_eq(e.nodeid, ROOT);
	ck_assert_int_eq(do_lookup(d, ".", &e), 0);
	ck_assert_uint_eq(e.nodeid, d);
	ck_assert_int_eq(do_lookup(d, "..", &e), 0);
	ck_assert_uint_eq(e.nodeid, ROOT);
	ck_assert_int_eq(do_lookup(d2, "..", &e), 0);
	ck_assert_uint_eq(e.nodeid, d);
	ck_assert_int_eq(do_lookup(d2, ".", &e), 0);
	ck_assert_uint_eq(e.nodeid, d2);
	/* lookup in a file: not a directory, ".." included */
	ck_assert_int_eq(do_lookup(f, "x", &e), -ENOTDIR);
	ck_assert_int_eq(do_lookup(f, "..", &e), -ENOTDIR);
}
END_TEST

/* ---- directories and links -------------------------------------------- */

START_TEST(test_mkdir_rmdir_unlink)
{
	struct orfa_entry e, f;
	uint64_t d, x;
	void *fh = NULL;

	ck_assert_int_eq(do_mkdir(ROOT, "d", &e), 0);
	d = e.nodeid;
	ck_assert(S_ISDIR(e.attr.mode));
	ck_assert_int_eq(e.attr.mode & 07777, 0755);	/* umask 022 */
	ck_assert_uint_eq(getattr(ROOT).nlink, 3);
	ck_assert_uint_eq(getattr(d).nlink, 2);
	ck_assert_int_eq(do_mkdir(ROOT, "d", &f), -EEXIST);
	ck_assert_int_eq(do_create(d, "x", O_WRONLY, &f, &fh), 0);
	ck_assert_int_eq(f.attr.mode & 07777, 0644);
	OPS->release(be, f.nodeid, fh);
	x = f.nodeid;
	mkdirid(d, "sub");
	ck_assert_uint_eq(getattr(d).nlink, 3);
	ck_assert_int_eq(do_mkdir(x, "y", &f), -ENOTDIR);
	ck_assert_int_eq(do_rmdir(ROOT, "d"), -ENOTEMPTY);
	ck_assert_int_eq(do_rmdir(d, "x"), -ENOTDIR);
	ck_assert_int_eq(do_unlink(d, "sub"), -EISDIR);
	ck_assert_int_eq(do_rmdir(d, "missing"), -ENOENT);
	ck_assert_int_eq(do_unlink(d, "missing"), -ENOENT);
	ck_assert_int_eq(do_unlink(d, "x"), 0);
	ck_assert_int_eq(do_rmdir(d, "sub"), 0);
	ck_assert_uint_eq(getattr(d).nlink, 2);
	ck_assert_int_eq(do_rmdir(ROOT, "d"), 0);
	ck_assert_uint_eq(getattr(ROOT).nlink, 2);
	ck_assert_int_eq(do_lookup(ROOT, "d", &f), -ENOENT);
	/* the removed directory, still referenced, is empty and dead */
	ck_assert_uint_eq(getattr(d).nlink, 0);
	ck_assert_int_eq(do_lookup(d, "x", &f), -ENOENT);
	ck_assert_int_eq(do_create(d, "z", O_WRONLY, &f, &fh), -ENOENT);
	ck_assert_int_eq(do_mkdir(d, "new", &f), -ENOENT);
	OPS->forget(be, d, 1);
}
END_TEST

START_TEST(test_hard_links)
{
	struct orfa_entry e;
	uint64_t f = mkfile(ROOT, "f");
	uint64_t d = mkdirid(ROOT, "d");

	ck_assert_int_eq(do_link(f, d, "l1", &e), 0);
	ck_assert_uint_eq(e.nodeid, f);
	ck_assert_uint_eq(e.attr.nlink, 2);
	ck_assert_int_eq(do_lookup(d, "l1", &e), 0);
	ck_assert_uint_eq(e.nodeid, f);
	ck_assert_int_eq(do_link(f, ROOT, "l2", &e), 0);
	ck_assert_uint_eq(getattr(f).nlink, 3);
	ck_assert_int_eq(do_link(f, ROOT, "l2", &e), -EEXIST);
	ck_assert_int_eq(do_link(f, d, "l1", &e), -EEXIST);
	ck_assert_int_eq(do_link(d, ROOT, "dl", &e), -EPERM);
	ck_assert_int_eq(do_link(f, f, "x", &e), -ENOTDIR);
	ck_assert_int_eq(write_str(f, "shared"), 6);
	ck_assert_int_eq(do_unlink(ROOT, "f"), 0);
	ck_assert_uint_eq(getattr(f).nlink, 2);
	ck_assert_int_eq(do_lookup(d, "l1", &e), 0);
	ck_assert_uint_eq(e.attr.size, 6);
	ck_assert_int_eq(do_unlink(d, "l1"), 0);
	ck_assert_int_eq(do_unlink(ROOT, "l2"), 0);
	ck_assert_uint_eq(getattr(f).nlink, 0);
}
END_TEST

/* ---- special files and symlinks ---------------------------------------- */

START_TEST(test_mknod_types)
{
	struct orfa_entry e;
	char buf[16];
	size_t len;

	ck_assert_int_eq(do_mknod(ROOT, "fifo", S_IFIFO | 0666, &e), 0);
	ck_assert(S_ISFIFO(e.attr.mode));
	ck_assert_uint_eq(e.attr.mode & 0777, 0644);	/* umask 022 */
	ck_assert_int_eq(do_mknod(ROOT, "sock", S_IFSOCK | 0644, &e), 0);
	ck_assert(S_ISSOCK(e.attr.mode));
	ck_assert_int_eq(do_mknod(ROOT, "reg", 0640, &e), 0);
	ck_assert(S_ISREG(e.attr.mode));
	ck_assert_uint_eq(e.attr.mode & 07777, 0640);
	ck_assert_int_eq(OPS->readlink(be, &rootc, e.nodeid, buf, sizeof(buf),
				       &len), -EINVAL);
	ck_assert_int_eq(do_mknod(ROOT, "reg", S_IFREG | 0640, &e), -EEXIST);
	/* Linux's mknod(2): a directory EPERM, other types EINVAL */
	ck_assert_int_eq(do_mknod(ROOT, "dir", S_IFDIR | 0755, &e), -EPERM);
	ck_assert_int_eq(do_mknod(ROOT, "lnk", S_IFLNK | 0777, &e), -EINVAL);
	ck_assert_int_eq(do_mknod(ROOT, "bad", 0170000 | 0755, &e), -EINVAL);
	ck_assert_int_eq(do_lookup(ROOT, "dir", &e), -ENOENT);
}
END_TEST

START_TEST(test_symlink_readlink)
{
	static char target[ORFA_MAX_SYMLINK + 2];
	struct orfa_entry e;
	char buf[5000];
	size_t len;

	ck_assert_int_eq(do_symlink(ROOT, "l", "some/target", &e), 0);
	ck_assert(S_ISLNK(e.attr.mode));
	ck_assert_uint_eq(e.attr.mode & 07777, 0777);
	ck_assert_uint_eq(e.attr.size, 11);
	ck_assert_int_eq(OPS->readlink(be, &rootc, e.nodeid, buf, sizeof(buf),
				       &len), 0);
	ck_assert_uint_eq(len, 11);
	ck_assert_mem_eq(buf, "some/target", 11);
	ck_assert_int_eq(OPS->readlink(be, &rootc, e.nodeid, buf, 4, &len), 0);
	ck_assert_uint_eq(len, 4);
	ck_assert_int_eq(do_symlink(ROOT, "l", "x", &e), -EEXIST);
	ck_assert_int_eq(do_symlink(ROOT, "empty", "", &e), -ENOENT);
	ck_assert_int_eq(OPS->symlink(be, &rootc, ROOT, "nul", 3, "a\0b", 3,
				      &e), -EINVAL);
	memset(target, 'a', sizeof(target) - 1);
	target[ORFA_MAX_SYMLINK + 1] = '\0';
	ck_assert_int_eq(do_symlink(ROOT, "long", target, &e), -ENAMETOOLONG);
	target[ORFA_MAX_SYMLINK] = '\0';
	ck_assert_int_eq(do_symlink(ROOT, "long", target, &e), -ENAMETOOLONG);
	target[ORFA_MAX_SYMLINK - 1] = '\0';
	ck_assert_int_eq(do_symlink(ROOT, "long", target, &e), 0);
	ck_assert_int_eq(OPS->readlink(be, &rootc, e.nodeid, buf, sizeof(buf),
				       &len), 0);
	ck_assert_uint_eq(len, ORFA_MAX_SYMLINK - 1);
}
END_TEST

/* ---- files ------------------------------------------------------------ */

START_TEST(test_create_write_read)
{
	static unsigned char wbuf[200000], rbuf[200000];
	struct orfa_entry e;
	void *fh;

	fill_pattern(wbuf, sizeof(wbuf), 1);
	ck_assert_int_eq(do_create(ROOT, "f", O_RDWR, &e, &fh), 0);
	ck_assert(S_ISREG(e.attr.mode));
	ck_assert_uint_eq(e.attr.size, 0);
	ck_assert_int_eq(do_write(e.nodeid, fh, 0, wbuf, 100, 0), 100);
	ck_assert_int_eq(do_write(e.nodeid, fh, 100, wbuf + 100,
				  sizeof(wbuf) - 100, 0), sizeof(wbuf) - 100);
	ck_assert_uint_eq(getattr(e.nodeid).size, sizeof(wbuf));
	ck_assert_int_eq(do_read(e.nodeid, fh, 0, sizeof(rbuf), rbuf),
			 sizeof(rbuf));
	ck_assert_mem_eq(rbuf, wbuf, sizeof(wbuf));
	/* unaligned read across chunks, short read at the end */
	ck_assert_int_eq(do_read(e.nodeid, fh, 65000, 1000, rbuf), 1000);
	ck_assert_mem_eq(rbuf, wbuf + 65000, 1000);
	ck_assert_int_eq(do_read(e.nodeid, fh, sizeof(wbuf) - 10, 100, rbuf),
			 10);
	ck_assert_int_eq(do_read(e.nodeid, fh, sizeof(wbuf), 100, rbuf), 0);
	ck_assert_int_eq(do_read(e.nodeid, fh, 1ull << 40, 100, rbuf), 0);
	/* overwrite in the middle */
	ck_assert_int_eq(do_write(e.nodeid, fh, 70000, "hello", 5, 0), 5);
	ck_assert_int_eq(do_read(e.nodeid, fh, 69999, 7, rbuf), 7);
	ck_assert_mem_eq(rbuf + 1, "hello", 5);
	ck_assert_int_eq(rbuf[0], wbuf[69999]);
	ck_assert_uint_eq(getattr(e.nodeid).size, sizeof(wbuf));
	/* empty write */
	ck_assert_int_eq(do_write(e.nodeid, fh, 5, wbuf, 0, 0), 0);
	ck_assert_int_eq(OPS->flush(be, e.nodeid, fh), 0);
	ck_assert_int_eq(OPS->fsync(be, e.nodeid, fh, 0), 0);
	ck_assert_int_eq(OPS->fsync(be, e.nodeid, fh, 1), 0);
	OPS->release(be, e.nodeid, fh);
}
END_TEST

START_TEST(test_create_existing)
{
	struct orfa_entry e, e2;
	void *fh, *fh2;

	ck_assert_int_eq(OPS->create(be, &rootc, ROOT, "f", 1, 0640,
				     O_RDWR | O_EXCL, &e, &fh), 0);
	ck_assert_int_eq(e.attr.mode & 07777, 0640);
	ck_assert_int_eq(do_write(e.nodeid, fh, 0, "data", 4, 0), 4);
	ck_assert_int_eq(do_create(ROOT, "f", O_RDWR | O_EXCL, &e2, &fh2),
			 -EEXIST);
	/* without O_EXCL an existing file is opened, its mode kept */
	ck_assert_int_eq(do_create(ROOT, "f", O_RDWR, &e2, &fh2), 0);
	ck_assert_uint_eq(e2.nodeid, e.nodeid);
	ck_assert_uint_eq(e2.attr.size, 4);
	ck_assert_int_eq(e2.attr.mode & 07777, 0640);
	OPS->release(be, e.nodeid, fh2);
	mkdirid(ROOT, "d");
	ck_assert_int_eq(do_create(ROOT, "d", O_RDONLY, &e2, &fh2), -EISDIR);
	/* a creator may write what it creates read-only */
	ck_assert_int_eq(OPS->create(be, &rootc, ROOT, "ro", 2, 0444,
				     O_WRONLY, &e2, &fh2), 0);
	ck_assert_int_eq(do_write(e2.nodeid, fh2, 0, "x", 1, 0), 1);
	OPS->release(be, e2.nodeid, fh2);
	OPS->release(be, e.nodeid, fh);
}
END_TEST

/* What OPEN and CREATE refuse, by file type and flags. */
START_TEST(test_open_refusals)
{
	struct orfa_entry e;
	void *fh;

	ck_assert_int_eq(do_create(ROOT, "n", O_RDONLY | O_DIRECTORY, &e, &fh),
			 -EINVAL);
	ck_assert_int_eq(do_lookup(ROOT, "n", &e), -ENOENT);
	/* special files are opened by the client itself, neither by OPEN
	 * nor by CREATE on an existing name; neither blocks */
	ck_assert_int_eq(do_mknod(ROOT, "fifo", S_IFIFO | 0600, &e), 0);
	ck_assert_int_eq(OPS->open(be, &rootc, e.nodeid, O_RDONLY, &fh, NULL),
			 -ENXIO);
	ck_assert_int_eq(do_create(ROOT, "fifo", O_RDONLY, &e, &fh), -ENXIO);
	ck_assert_int_eq(OPS->open(be, &rootc, e.nodeid,
				   O_RDONLY | O_DIRECTORY, &fh, NULL),
			 -ENOTDIR);
	/* symlinks are never followed */
	ck_assert_int_eq(do_symlink(ROOT, "l", "fifo", &e), 0);
	ck_assert_int_eq(OPS->open(be, &rootc, e.nodeid, O_RDONLY, &fh, NULL),
			 -ELOOP);
	ck_assert_int_eq(do_create(ROOT, "l", O_RDONLY, &e, &fh), -ELOOP);
}
END_TEST

START_TEST(test_open_flags)
{
	uint64_t id = mkfile(ROOT, "f");
	struct orfa_attr a;
	char buf[16];
	void *fh, *ro, *wo;

	ck_assert_int_eq(write_str(id, "0123456789"), 10);
	ro = do_open(id, O_RDONLY);
	wo = do_open(id, O_WRONLY);
	ck_assert_int_eq(do_write(id, ro, 0, "x", 1, 0), -EBADF);
	ck_assert_int_eq(do_read(id, wo, 0, 4, buf), -EBADF);
	/* O_APPEND from the handle or from the write's flags */
	fh = do_open(id, O_WRONLY | O_APPEND);
	ck_assert_int_eq(do_write(id, fh, 0, "ab", 2, 0), 2);
	OPS->release(be, id, fh);
	ck_assert_int_eq(do_write(id, wo, 0, "cd", 2, O_APPEND), 2);
	ck_assert_uint_eq(getattr(id).size, 14);
	ck_assert_int_eq(do_read(id, ro, 0, 16, buf), 14);
	ck_assert_mem_eq(buf, "0123456789abcd", 14);
	ck_assert_int_eq(do_write(id, wo, 0, "Z", 1, 0), 1);
	ck_assert_int_eq(do_read(id, ro, 0, 16, buf), 14);
	ck_assert_mem_eq(buf, "Z123456789abcd", 14);
	/* O_TRUNC */
	ck_assert_int_eq(OPS->open(be, &rootc, id, O_RDWR | O_TRUNC, &fh, &a),
			 0);
	ck_assert_uint_eq(a.size, 0);
	OPS->release(be, id, fh);
	/* directories and O_DIRECTORY */
	ck_assert_int_eq(OPS->open(be, &rootc, ROOT, O_RDONLY, &fh, &a),
			 -EISDIR);
	ck_assert_int_eq(OPS->open(be, &rootc, id, O_RDONLY | O_DIRECTORY,
				   &fh, &a), -ENOTDIR);
	ck_assert_int_eq(OPS->opendir(be, &rootc, id, 0, &fh), -ENOTDIR);
	ck_assert_int_eq(OPS->flush(be, id, ro), 0);
	ck_assert_int_eq(OPS->fsync(be, id, ro, 1), 0);
	OPS->release(be, id, ro);
	OPS->release(be, id, wo);
}
END_TEST

START_TEST(test_unlink_while_open)
{
	uint64_t id = mkfile(ROOT, "f");
	struct orfa_setattr_req s = {.valid = ORFA_SET_SIZE, .size = 5};
	struct orfa_entry e;
	struct orfa_attr a;
	char buf[16];
	void *fh = do_open(id, O_RDWR);

	ck_assert_int_eq(do_write(id, fh, 0, "hello", 5, 0), 5);
	ck_assert_int_eq(do_unlink(ROOT, "f"), 0);
	ck_assert_int_eq(do_lookup(ROOT, "f", &e), -ENOENT);
	/* still readable and writable through the handle */
	ck_assert_int_eq(do_write(id, fh, 5, " world", 6, 0), 6);
	ck_assert_int_eq(do_read(id, fh, 0, 16, buf), 11);
	ck_assert_mem_eq(buf, "hello world", 11);
	ck_assert_int_eq(OPS->getattr(be, &rootc, id, fh, &a), 0);
	ck_assert_uint_eq(a.nlink, 0);
	ck_assert_uint_eq(a.size, 11);
	ck_assert_int_eq(OPS->getattr(be, &rootc, id, NULL, &a), 0);
	ck_assert_uint_eq(a.nlink, 0);
	s.nodeid = id;
	ck_assert_int_eq(OPS->setattr(be, &rootc, id, fh, &s, &a), 0);
	ck_assert_uint_eq(a.size, 5);
	/* cannot be linked back */
	ck_assert_int_eq(do_link(id, ROOT, "back", &e), -ENOENT);
	OPS->release(be, id, fh);
}
END_TEST

/* ---- sparse files and copies ----------------------------------------- */

START_TEST(test_fallocate_seek_data_hole)
{
	uint64_t id = mkfile(ROOT, "sparse"), res;
	struct orfa_attr a;
	char blk[4096];
	void *fh = do_open(id, O_RDWR);

	memset(blk, 'q', sizeof(blk));
	ck_assert_int_eq(do_write(id, fh, 0, blk, sizeof(blk), 0), 4096);
	ck_assert_int_eq(do_write(id, fh, 1 << 20, blk, sizeof(blk), 0), 4096);
	ck_assert_uint_eq(getattr(id).size, (1 << 20) + 4096);
	ck_assert_int_eq(OPS->lseek(be, id, fh, 0, SEEK_DATA, &res), 0);
	ck_assert_uint_eq(res, 0);
	ck_assert_int_eq(OPS->lseek(be, id, fh, 0, SEEK_HOLE, &res), 0);
	ck_assert_uint_ge(res, 4096);
	ck_assert_uint_lt(res, 1 << 20);
	ck_assert_int_eq(OPS->lseek(be, id, fh, 1 << 19, SEEK_DATA, &res), 0);
	ck_assert_uint_eq(res, 1 << 20);
	ck_assert_int_eq(OPS->lseek(be, id, fh, 1 << 20, SEEK_HOLE, &res), 0);
	ck_assert_uint_eq(res, (1 << 20) + 4096);
	ck_assert_int_eq(OPS->lseek(be, id, fh, (1 << 20) + 4096, SEEK_DATA,
				    &res), -ENXIO);
	ck_assert_int_eq(OPS->lseek(be, id, fh, 0, SEEK_SET, &res), -EINVAL);
	/* a punched hole reads as zeros, the size stays */
	ck_assert_int_eq(OPS->fallocate(be, &rootc, id, fh,
					FALLOC_FL_PUNCH_HOLE |
					FALLOC_FL_KEEP_SIZE, 0, 4096, &a), 0);
	ck_assert_uint_eq(a.size, (1 << 20) + 4096);
	ck_assert_int_eq(do_read(id, fh, 0, sizeof(blk), blk), 4096);
	for (size_t i = 0; i < sizeof(blk); i++)
		ck_assert_int_eq(blk[i], 0);
	/* plain preallocation grows the size; KEEP_SIZE does not */
	ck_assert_int_eq(OPS->fallocate(be, &rootc, id, fh, 0, 0, 2 << 20, &a),
			 0);
	ck_assert_uint_eq(a.size, 2 << 20);
	ck_assert_int_eq(OPS->fallocate(be, &rootc, id, fh,
					FALLOC_FL_KEEP_SIZE, 3 << 20, 4096,
					&a), 0);
	ck_assert_uint_eq(getattr(id).size, 2 << 20);
	ck_assert_int_eq(OPS->fallocate(be, &rootc, id, fh,
					FALLOC_FL_PUNCH_HOLE, 0, 10, &a),
			 -EOPNOTSUPP);
	OPS->release(be, id, fh);
}
END_TEST

START_TEST(test_copy_file_range)
{
	static char data[100000], got[60000];
	uint64_t in = mkfile(ROOT, "in"), out = mkfile(ROOT, "out");
	uint64_t copied = 0, total = 0;
	struct orfa_attr a;
	void *fi, *fo, *fro;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 7);
	fi = do_open(in, O_RDWR);
	fo = do_open(out, O_RDWR);
	fro = do_open(out, O_RDONLY);
	ck_assert_int_eq(do_write(in, fi, 0, data, sizeof(data), 0),
			 sizeof(data));
	while (total < 50000) {
		ck_assert_int_eq(OPS->copy_file_range(be, &rootc, in, fi,
						      10 + total, out, fo,
						      total, 50000 - total, 0,
						      &copied, &a), 0);
		ck_assert_uint_gt(copied, 0);
		total += copied;
	}
	ck_assert_uint_eq(a.size, 50000);
	ck_assert_int_eq(do_read(out, fo, 0, sizeof(got), got), 50000);
	ck_assert_mem_eq(got, data + 10, 50000);
	/* at or past the end of the input: nothing */
	ck_assert_int_eq(OPS->copy_file_range(be, &rootc, in, fi,
					      sizeof(data), out, fo, 0, 10, 0,
					      &copied, &a), 0);
	ck_assert_uint_eq(copied, 0);
	ck_assert_int_eq(OPS->copy_file_range(be, &rootc, in, fi, 0, out, fo,
					      0, 10, 1, &copied, &a), -EINVAL);
	ck_assert_int_eq(OPS->copy_file_range(be, &rootc, in, fi, 0, out, fro,
					      0, 10, 0, &copied, &a), -EBADF);
	OPS->release(be, in, fi);
	OPS->release(be, out, fo);
	OPS->release(be, out, fro);
}
END_TEST

/* ---- attributes ------------------------------------------------------- */

static int do_setattr(uint64_t node, void *fh, struct orfa_setattr_req *in,
		      struct orfa_attr *a)
{
	in->nodeid = node;
	return OPS->setattr(be, &rootc, node, fh, in, a);
}

START_TEST(test_setattr)
{
	struct orfa_setattr_req s;
	struct orfa_attr a;
	uint64_t id = mkfile(ROOT, "f"), d = mkdirid(ROOT, "d");
	void *fh;

	ck_assert_int_eq(write_str(id, "0123456789"), 10);
	memset(&s, 0, sizeof(s));
	s.valid = ORFA_SET_MODE;
	s.mode = S_IFREG | 0600;
	ck_assert_int_eq(do_setattr(id, NULL, &s, &a), 0);
	ck_assert_int_eq(a.mode, S_IFREG | 0600);
	/* size, without a handle and through a read-only one */
	s.valid = ORFA_SET_SIZE;
	s.size = 4;
	ck_assert_int_eq(do_setattr(id, NULL, &s, &a), 0);
	ck_assert_uint_eq(a.size, 4);
	s.size = 1 << 20;
	ck_assert_int_eq(do_setattr(id, NULL, &s, &a), 0);
	ck_assert_uint_eq(a.size, 1 << 20);
	fh = do_open(id, O_RDONLY);
	s.size = 2;
	ck_assert_int_eq(do_setattr(id, fh, &s, &a), 0);
	ck_assert_uint_eq(a.size, 2);
	OPS->release(be, id, fh);
	ck_assert_uint_eq(getattr(id).size, 2);
	/* times: explicit, now, omitted, invalid nanoseconds */
	s.valid = ORFA_SET_ATIME | ORFA_SET_MTIME;
	s.atime = 1000000;
	s.atime_nsec = 5;
	s.mtime = 2000000;
	s.mtime_nsec = 7;
	ck_assert_int_eq(do_setattr(id, NULL, &s, &a), 0);
	ck_assert_int_eq(a.atime, 1000000);
	ck_assert_uint_eq(a.atime_nsec, 5);
	ck_assert_int_eq(a.mtime, 2000000);
	ck_assert_uint_eq(a.mtime_nsec, 7);
	s.valid = ORFA_SET_MTIME_NOW;
	ck_assert_int_eq(do_setattr(id, NULL, &s, &a), 0);
	ck_assert_int_eq(a.atime, 1000000);
	ck_assert_int_gt(a.mtime, 2000000);
	s.valid = ORFA_SET_MTIME;
	s.mtime_nsec = 1000000000u;
	ck_assert_int_eq(do_setattr(id, NULL, &s, &a), -EINVAL);
	/* owner and group, by root */
	if (rootc.uid == 0) {
		s.valid = ORFA_SET_UID | ORFA_SET_GID;
		s.uid = 65534;
		s.gid = 65534;
		ck_assert_int_eq(do_setattr(id, NULL, &s, &a), 0);
		ck_assert_uint_eq(a.uid, 65534);
		ck_assert_uint_eq(a.gid, 65534);
		s.valid = ORFA_SET_GID;
		s.gid = 0;
		ck_assert_int_eq(do_setattr(id, NULL, &s, &a), 0);
		ck_assert_uint_eq(a.uid, 65534);
		ck_assert_uint_eq(a.gid, 0);
	}
	/* set-id bits, and their removal as on a write */
	s.valid = ORFA_SET_MODE;
	s.mode = 06755;
	ck_assert_int_eq(do_setattr(id, NULL, &s, &a), 0);
	ck_assert_int_eq(a.mode & 07777, 06755);
	s.valid = ORFA_SET_KILL_SUIDGID | ORFA_SET_CTIME;
	ck_assert_int_eq(do_setattr(id, NULL, &s, &a), 0);
	ck_assert_int_eq(a.mode & 07777, 0755);
	s.valid = 1u << 20;
	ck_assert_int_eq(do_setattr(id, NULL, &s, &a), -EINVAL);
	/* directories */
	s.valid = ORFA_SET_SIZE;
	s.size = 0;
	ck_assert_int_eq(do_setattr(d, NULL, &s, &a), -EISDIR);
	s.valid = ORFA_SET_MODE;
	s.mode = 0700;
	ck_assert_int_eq(do_setattr(d, NULL, &s, &a), 0);
	ck_assert_int_eq(a.mode, S_IFDIR | 0700);
}
END_TEST

START_TEST(test_xattr_flags_and_dirs)
{
	char buf[256];
	size_t len = 0;
	uint64_t id = mkfile(ROOT, "f");
	int r;

	r = OPS->setxattr(be, &rootc, id, "user.orfa", "value", 5, 0);
	if (r == -EOPNOTSUPP) {
		printf("# xattr test: file system has no user xattrs\n");
		return;
	}
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, id, "user.orfa", "v", 1,
				       XATTR_CREATE), -EEXIST);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, id, "user.none", "v", 1,
				       XATTR_REPLACE), -ENODATA);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, id, "user.x", "v", 1,
				       0x100), -EINVAL);
	ck_assert_int_eq(OPS->getxattr(be, &rootc, id, "user.orfa", NULL, 0,
				       &len), 0);
	ck_assert_uint_eq(len, 5);
	ck_assert_int_eq(OPS->getxattr(be, &rootc, id, "user.orfa", buf, 2,
				       &len), -ERANGE);
	ck_assert_int_eq(OPS->getxattr(be, &rootc, id, "user.orfa", buf,
				       sizeof(buf), &len), 0);
	ck_assert_uint_eq(len, 5);
	ck_assert_mem_eq(buf, "value", 5);
	ck_assert_int_eq(OPS->listxattr(be, &rootc, id, NULL, 0, &len), 0);
	ck_assert_uint_ge(len, 10);
	ck_assert_int_eq(OPS->listxattr(be, &rootc, id, buf, sizeof(buf),
					&len), 0);
	ck_assert_ptr_nonnull(memmem(buf, len, "user.orfa", 10));
	ck_assert_int_eq(OPS->removexattr(be, &rootc, id, "user.orfa"), 0);
	ck_assert_int_eq(OPS->getxattr(be, &rootc, id, "user.orfa", buf,
				       sizeof(buf), &len), -ENODATA);
	ck_assert_int_eq(OPS->removexattr(be, &rootc, id, "user.orfa"),
			 -ENODATA);
	/* directories too */
	ck_assert_int_eq(OPS->setxattr(be, &rootc, ROOT, "user.d", "1", 1, 0),
			 0);
	ck_assert_int_eq(OPS->getxattr(be, &rootc, ROOT, "user.d", buf,
				       sizeof(buf), &len), 0);
	ck_assert_uint_eq(len, 1);
}
END_TEST

START_TEST(test_xattr_values_and_list)
{
	uint64_t f = mkfile(ROOT, "f");
	char buf[128];
	size_t len;

	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, "user.a", "v1", 2, 0),
			 0);
	ck_assert_int_eq(OPS->getxattr(be, &rootc, f, "user.a", NULL, 0, &len),
			 0);
	ck_assert_uint_eq(len, 2);
	ck_assert_int_eq(OPS->getxattr(be, &rootc, f, "user.a", buf, 1, &len),
			 -ERANGE);
	ck_assert_int_eq(OPS->getxattr(be, &rootc, f, "user.a", buf,
				       sizeof(buf), &len), 0);
	ck_assert_uint_eq(len, 2);
	ck_assert_mem_eq(buf, "v1", 2);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, "user.a", "v2", 2,
				       XATTR_CREATE), -EEXIST);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, "user.b", "v2", 2,
				       XATTR_REPLACE), -ENODATA);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, "user.a", "value2", 6,
				       XATTR_REPLACE), 0);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, "user.b", "", 0,
				       XATTR_CREATE), 0);
	ck_assert_int_eq(OPS->getxattr(be, &rootc, f, "user.b", buf,
				       sizeof(buf), &len), 0);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(OPS->getxattr(be, &rootc, f, "user.a", buf,
				       sizeof(buf), &len), 0);
	ck_assert_mem_eq(buf, "value2", 6);
	/* list */
	ck_assert_int_eq(OPS->listxattr(be, &rootc, f, NULL, 0, &len), 0);
	ck_assert_uint_eq(len, 14);
	ck_assert_int_eq(OPS->listxattr(be, &rootc, f, buf, 13, &len),
			 -ERANGE);
	ck_assert_int_eq(OPS->listxattr(be, &rootc, f, buf, sizeof(buf), &len),
			 0);
	ck_assert_uint_eq(len, 14);
	ck_assert(memmem(buf, len, "user.a\0", 7) != NULL);
	ck_assert(memmem(buf, len, "user.b\0", 7) != NULL);
	/* remove */
	ck_assert_int_eq(OPS->removexattr(be, &rootc, f, "user.a"), 0);
	ck_assert_int_eq(OPS->removexattr(be, &rootc, f, "user.a"), -ENODATA);
	ck_assert_int_eq(OPS->getxattr(be, &rootc, f, "user.a", buf,
				       sizeof(buf), &len), -ENODATA);
	ck_assert_int_eq(OPS->listxattr(be, &rootc, f, buf, sizeof(buf), &len),
			 0);
	ck_assert_uint_eq(len, 7);
	/* directories have user xattrs too */
	ck_assert_int_eq(OPS->setxattr(be, &rootc, ROOT, "user.d", "x", 1, 0),
			 0);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, 777, "user.d", "x", 1, 0),
			 -ESTALE);
}
END_TEST


START_TEST(test_statfs_access)
{
	struct orfa_statfs_out sf;
	uint64_t id = mkfile(ROOT, "f");

	ck_assert_int_eq(OPS->statfs(be, ROOT, &sf), 0);
	ck_assert_uint_gt(sf.bsize, 0);
	ck_assert_uint_eq(sf.namemax, NAME_MAX);
	ck_assert_int_eq(OPS->statfs(be, id, &sf), 0);
	ck_assert_int_eq(OPS->access(be, &rootc, id, R_OK | W_OK), 0);
	ck_assert_int_eq(OPS->access(be, &rootc, id, F_OK), 0);
	ck_assert_int_eq(OPS->access(be, &rootc, id, X_OK), -EACCES);
	ck_assert_int_eq(OPS->access(be, &rootc, id, 0x40), -EINVAL);
	ck_assert_int_eq(OPS->access(be, &rootc, ROOT, X_OK), 0);
}
END_TEST

/* ---- directory listings ------------------------------------------------ */

struct rd_ent {
	char name[NAME_MAX + 1];
	uint32_t type;
	uint64_t ino, cookie, nodeid;
};

struct rd_ctx {
	struct rd_ent ents[64];
	int n, max, refused;
	uint64_t last;
};

/* Takes at most max entries a call, then says "full" once. */
static int rd_fill(void *vctx, const char *name, uint32_t namelen,
		   uint32_t type, uint64_t ino, uint64_t next_cookie,
		   const struct orfa_entry *e)
{
	struct rd_ctx *c = vctx;
	struct rd_ent *x;

	ck_assert_uint_eq(namelen, strlen(name));
	if (c->max-- <= 0) {
		c->refused++;
		if (e && e->nodeid)
			OPS->forget(be, e->nodeid, 1);	/* as promised */
		return 1;
	}
	ck_assert_int_lt(c->n, 64);
	ck_assert_uint_ne(next_cookie, 0);
	x = &c->ents[c->n++];
	snprintf(x->name, sizeof(x->name), "%s", name);
	x->type = type;
	x->ino = ino;
	x->cookie = next_cookie;
	x->nodeid = e ? e->nodeid : 0;
	if (e && e->nodeid) {
		ck_assert_uint_eq(e->attr.ino, ino);
		ck_assert_uint_eq(IFTODT(e->attr.mode), type);
	}
	c->last = next_cookie;
	return 0;
}

static int rd_call(uint64_t dir, void *dh, uint64_t cookie, int plus, int max,
		   struct rd_ctx *c)
{
	c->max = max;
	return OPS->readdir(be, &rootc, dir, dh, cookie, plus, rd_fill, c);
}

static const struct rd_ent *rd_find(const struct rd_ctx *c, const char *name)
{
	for (int i = 0; i < c->n; i++)
		if (strcmp(c->ents[i].name, name) == 0)
			return &c->ents[i];
	return NULL;
}

START_TEST(test_readdir_names_and_types)
{
	uint64_t d = mkdirid(ROOT, "d"), sub;
	struct orfa_entry e;
	struct rd_ctx c = {0};
	void *dh;

	mkfile(d, "file");
	sub = mkdirid(d, "sub");
	ck_assert_int_eq(do_symlink(d, "link", "file", &e), 0);
	ck_assert_int_eq(do_mknod(d, "fifo", S_IFIFO | 0644, &e), 0);
	ck_assert_int_eq(OPS->opendir(be, &rootc, d, 0, &dh), 0);
	ck_assert_int_eq(rd_call(d, dh, 0, 0, 1000, &c), 0);
	ck_assert_int_eq(c.n, 6);
	ck_assert_int_eq(c.refused, 0);
	ck_assert_uint_eq(rd_find(&c, ".")->type, DT_DIR);
	ck_assert_uint_eq(rd_find(&c, ".")->ino, getattr(d).ino);
	ck_assert_uint_eq(rd_find(&c, "..")->type, DT_DIR);
	ck_assert_uint_eq(rd_find(&c, "..")->ino, getattr(ROOT).ino);
	ck_assert_uint_eq(rd_find(&c, "file")->type, DT_REG);
	ck_assert_uint_eq(rd_find(&c, "sub")->type, DT_DIR);
	ck_assert_uint_eq(rd_find(&c, "sub")->ino, getattr(sub).ino);
	ck_assert_uint_eq(rd_find(&c, "link")->type, DT_LNK);
	ck_assert_uint_eq(rd_find(&c, "fifo")->type, DT_FIFO);
	/* resuming after the last one: end of directory */
	c.n = 0;
	ck_assert_int_eq(rd_call(d, dh, c.last, 0, 1000, &c), 0);
	ck_assert_int_eq(c.n, 0);
	/* one entry a call, resuming at each cookie: the same six */
	for (uint64_t cookie = 0;;) {
		int before = c.n;

		ck_assert_int_eq(rd_call(d, dh, cookie, 0, 1, &c), 0);
		if (c.n == before)
			break;
		cookie = c.last;
	}
	ck_assert_int_eq(c.n, 6);
	ck_assert_ptr_nonnull(rd_find(&c, "fifo"));
	OPS->releasedir(be, d, dh);
}
END_TEST

START_TEST(test_readdirplus_references)
{
	uint64_t d = mkdirid(ROOT, "d");
	struct rd_ctx c = {0};
	struct orfa_attr a;
	char name[16];
	void *dh;
	int got = 0;

	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "e%02d", i);
		OPS->forget(be, mkfile(d, name), 1);	/* now only linked */
	}
	ck_assert_int_eq(OPS->opendir(be, &rootc, d, 0, &dh), 0);
	/* a reply that fills up after 10 entries, then the rest */
	ck_assert_int_eq(rd_call(d, dh, 0, 1, 10, &c), 0);
	ck_assert_int_eq(c.n, 10);
	ck_assert_int_eq(c.refused, 1);
	ck_assert_int_eq(rd_call(d, dh, c.last, 1, 1000, &c), 0);
	ck_assert_int_eq(c.n, 42);
	/* "." and ".." hold no reference; every other entry exactly one:
	 * after the unlink each node lives until that one is forgotten */
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "e%02d", i);
		ck_assert_int_eq(do_unlink(d, name), 0);
	}
	for (int i = 0; i < c.n; i++) {
		if (strcmp(c.ents[i].name, ".") == 0 ||
		    strcmp(c.ents[i].name, "..") == 0) {
			ck_assert_uint_eq(c.ents[i].nodeid, 0);
			continue;
		}
		got++;
		ck_assert_uint_ne(c.ents[i].nodeid, 0);
		ck_assert_int_eq(OPS->getattr(be, &rootc, c.ents[i].nodeid,
					      NULL, &a), 0);
		OPS->forget(be, c.ents[i].nodeid, 1);
		ck_assert_int_eq(OPS->getattr(be, &rootc, c.ents[i].nodeid,
					      NULL, &a), -ESTALE);
	}
	ck_assert_int_eq(got, 40);
	OPS->releasedir(be, d, dh);
}
END_TEST

/* ---- rename ----------------------------------------------------------- */

START_TEST(test_rename_simple_and_across)
{
	uint64_t d1 = mkdirid(ROOT, "d1");
	uint64_t d2 = mkdirid(ROOT, "d2");
	uint64_t f = mkfile(d1, "f");
	uint64_t sub = mkdirid(d1, "sub");
	struct orfa_entry e;

	ck_assert_int_eq(write_str(f, "AAA"), 3);
	ck_assert_int_eq(do_rename(d1, "f", d1, "g", 0), 0);
	ck_assert_int_eq(do_lookup(d1, "f", &e), -ENOENT);
	ck_assert_int_eq(do_lookup(d1, "g", &e), 0);
	ck_assert_uint_eq(e.nodeid, f);
	ck_assert_int_eq(do_rename(d1, "g", d2, "h", 0), 0);
	ck_assert_int_eq(do_lookup(d2, "h", &e), 0);
	ck_assert_uint_eq(e.nodeid, f);	/* the node follows its inode */
	ck_assert_uint_eq(e.attr.size, 3);
	/* a directory moves: link counts and ".." follow */
	ck_assert_uint_eq(getattr(d1).nlink, 3);
	ck_assert_int_eq(do_rename(d1, "sub", d2, "sub2", 0), 0);
	ck_assert_uint_eq(getattr(d1).nlink, 2);
	ck_assert_uint_eq(getattr(d2).nlink, 3);
	ck_assert_int_eq(do_lookup(sub, "..", &e), 0);
	ck_assert_uint_eq(e.nodeid, d2);
	ck_assert_int_eq(do_rename(d1, "missing", d2, "x", 0), -ENOENT);
	ck_assert_int_eq(do_rename(d2, "h", d2, "a/b", 0), -EINVAL);
	ck_assert_int_eq(do_rename(f, "h", d2, "x", 0), -ENOTDIR);
	/* a directory into itself */
	ck_assert_int_eq(do_rename(d2, "sub2", sub, "in", 0), -EINVAL);
	ck_assert_int_eq(do_rename(d2, "h", 0x7777777700000063ull, "x", 0),
			 -ESTALE);
}
END_TEST

START_TEST(test_rename_flags)
{
	uint64_t d = mkdirid(ROOT, "d");
	uint64_t a = mkfile(ROOT, "a");
	uint64_t b = mkfile(ROOT, "b");
	uint64_t sub = mkdirid(d, "sub");
	struct orfa_entry e;

	ck_assert_int_eq(do_rename(ROOT, "a", ROOT, "b",
				   ORFA_RENAME_NOREPLACE), -EEXIST);
	ck_assert_int_eq(do_rename(ROOT, "a", ROOT, "c",
				   ORFA_RENAME_NOREPLACE), 0);
	ck_assert_int_eq(do_rename(ROOT, "c", ROOT, "a", 0), 0);
	ck_assert_int_eq(do_rename(ROOT, "a", ROOT, "b",
				   ORFA_RENAME_NOREPLACE |
				   ORFA_RENAME_EXCHANGE), -EINVAL);
	ck_assert_int_eq(do_rename(ROOT, "a", ROOT, "b", 1u << 5), -EINVAL);
	ck_assert_int_eq(do_rename(ROOT, "a", ROOT, "x", 4), -EINVAL);
	ck_assert_int_eq(do_rename(ROOT, "a", ROOT, "zz",
				   ORFA_RENAME_EXCHANGE), -ENOENT);
	/* exchange two files */
	ck_assert_int_eq(do_rename(ROOT, "a", ROOT, "b",
				   ORFA_RENAME_EXCHANGE), 0);
	ck_assert_int_eq(do_lookup(ROOT, "a", &e), 0);
	ck_assert_uint_eq(e.nodeid, b);
	ck_assert_int_eq(do_lookup(ROOT, "b", &e), 0);
	ck_assert_uint_eq(e.nodeid, a);
	/* exchange a file and a directory across directories */
	ck_assert_uint_eq(getattr(ROOT).nlink, 3);
	ck_assert_uint_eq(getattr(d).nlink, 3);
	ck_assert_int_eq(do_rename(ROOT, "a", d, "sub",
				   ORFA_RENAME_EXCHANGE), 0);
	ck_assert_int_eq(do_lookup(ROOT, "a", &e), 0);
	ck_assert_uint_eq(e.nodeid, sub);
	ck_assert_int_eq(do_lookup(d, "sub", &e), 0);
	ck_assert_uint_eq(e.nodeid, b);
	ck_assert_uint_eq(getattr(ROOT).nlink, 4);
	ck_assert_uint_eq(getattr(d).nlink, 2);
	ck_assert_int_eq(do_lookup(sub, "..", &e), 0);
	ck_assert_uint_eq(e.nodeid, ROOT);
	/* exchanging a directory with its own descendant */
	mkdirid(sub, "inner");
	ck_assert_int_eq(do_rename(ROOT, "a", sub, "inner",
				   ORFA_RENAME_EXCHANGE), -EINVAL);
}
END_TEST

/* ---- permissions (as root: the native backend switches users) ---------- */

static struct orfa_cred user_cred(void)
{
	struct orfa_cred cr;

	memset(&cr, 0, sizeof(cr));
	cr.uid = 65534;
	cr.gid = 65534;
	cr.umask = 022;
	return cr;
}

/* A node made by root with mode (and group gid unless 0). */
static uint64_t mk_owned(uint64_t parent, const char *name, uint32_t mode,
			 uint32_t gid)
{
	struct orfa_setattr_req s = {0};
	struct orfa_entry e;
	struct orfa_attr a;

	if (S_ISDIR(mode))
		ck_assert_int_eq(do_mkdir(parent, name, &e), 0);
	else
		ck_assert_int_eq(do_mknod(parent, name, S_IFREG, &e), 0);
	s.valid = ORFA_SET_MODE | (gid ? ORFA_SET_GID : 0);
	s.mode = mode & 07777;
	s.gid = gid;
	ck_assert_int_eq(do_setattr(e.nodeid, NULL, &s, &a), 0);
	ck_assert_uint_eq(a.mode & 07777, mode & 07777);
	return e.nodeid;
}

START_TEST(test_permissions)
{
	struct orfa_cred cr = user_cred();
	struct orfa_setattr_req s = {0};
	uint64_t priv, secret, grp, pub;
	struct orfa_entry e;
	struct orfa_attr a;
	char buf[16];
	void *fh;
	size_t len;

	/* search permission on a directory */
	priv = mk_owned(ROOT, "priv", S_IFDIR | 0700, 0);
	mkfile(priv, "inner");
	ck_assert_int_eq(OPS->lookup(be, &cr, priv, "inner", 5, &e), -EACCES);
	ck_assert_int_eq(OPS->opendir(be, &cr, priv, 0, &fh), -EACCES);
	/* read permission on a file */
	secret = mk_owned(ROOT, "secret", 0600, 0);
	ck_assert_int_eq(write_str(secret, "s"), 1);
	ck_assert_int_eq(OPS->open(be, &cr, secret, O_RDONLY, &fh, &a),
			 -EACCES);
	ck_assert_int_eq(OPS->access(be, &cr, secret, R_OK), -EACCES);
	ck_assert_int_eq(OPS->access(be, &cr, secret, F_OK), 0);
	s.valid = ORFA_SET_MODE;
	s.mode = 0666;
	ck_assert_int_eq(OPS->setattr(be, &cr, secret, NULL, &s, &a), -EPERM);
	s.valid = ORFA_SET_UID;
	s.uid = 65534;
	ck_assert_int_eq(OPS->setattr(be, &cr, secret, NULL, &s, &a), -EPERM);
	s.valid = ORFA_SET_SIZE;
	s.size = 0;
	ck_assert_int_eq(OPS->setattr(be, &cr, secret, NULL, &s, &a),
			 -EACCES);
	s.valid = ORFA_SET_MTIME_NOW | ORFA_SET_ATIME_NOW;
	ck_assert_int_eq(OPS->setattr(be, &cr, secret, NULL, &s, &a),
			 -EACCES);
	ck_assert_uint_eq(getattr(secret).mode & 07777, 0600);
	ck_assert_uint_eq(getattr(secret).size, 1);
	/* supplementary groups, per request */
	grp = mk_owned(ROOT, "grp", 0640, 4242);
	ck_assert_int_eq(write_str(grp, "g"), 1);
	ck_assert_int_eq(OPS->open(be, &cr, grp, O_RDONLY, &fh, &a), -EACCES);
	cr.ngroups = 2;
	cr.groups[0] = 100;
	cr.groups[1] = 4242;
	ck_assert_int_eq(OPS->open(be, &cr, grp, O_RDONLY, &fh, &a), 0);
	ck_assert_int_eq(do_read(grp, fh, 0, sizeof(buf), buf), 1);
	OPS->release(be, grp, fh);
	ck_assert_int_eq(OPS->open(be, &cr, grp, O_WRONLY, &fh, &a), -EACCES);
	cr.ngroups = 0;
	ck_assert_int_eq(OPS->open(be, &cr, grp, O_RDONLY, &fh, &a), -EACCES);
	/* what only root may do */
	pub = mk_owned(ROOT, "pub", S_IFDIR | 0777, 0);
	ck_assert_int_eq(OPS->mknod(be, &cr, pub, "mem", 3, S_IFCHR | 0666,
				    makedev(1, 1), &e), -EPERM);
	ck_assert_int_eq(OPS->mknod(be, &cr, pub, "fifo", 4, S_IFIFO | 0666,
				    0, &e), 0);
	ck_assert_uint_eq(e.attr.uid, 65534);
	ck_assert_int_eq(OPS->create(be, &cr, pub, "own", 3, 0644, O_RDWR, &e,
				     &fh), 0);
	OPS->release(be, e.nodeid, fh);
	ck_assert_int_eq(OPS->setxattr(be, &cr, e.nodeid, "trusted.orfa", "1",
				       1, 0), -EPERM);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, e.nodeid, "trusted.orfa",
				       "1", 1, 0), 0);
	ck_assert_int_eq(OPS->getxattr(be, &cr, e.nodeid, "trusted.orfa", buf,
				       sizeof(buf), &len), -ENODATA);
	ck_assert_int_eq(OPS->getxattr(be, &rootc, e.nodeid, "trusted.orfa",
				       buf, sizeof(buf), &len), 0);
	/* an owner may chmod its own file, not give it away */
	s.valid = ORFA_SET_MODE;
	s.mode = 0600;
	ck_assert_int_eq(OPS->setattr(be, &cr, e.nodeid, NULL, &s, &a), 0);
	ck_assert_int_eq(a.mode & 07777, 0600);
	s.valid = ORFA_SET_UID;
	s.uid = 0;
	ck_assert_int_eq(OPS->setattr(be, &cr, e.nodeid, NULL, &s, &a),
			 -EPERM);
	ck_assert_int_eq(OPS->link(be, &cr, e.nodeid, pub, "own2", 4, &e), 0);
}
END_TEST

/* A writer who does not own a file may drop its set-id bits and nothing
 * else (FUSE's kill-suid-on-write as a SETATTR). */
START_TEST(test_writer_may_drop_suid_only)
{
	struct orfa_cred cr = user_cred();
	struct orfa_setattr_req s = {0};
	struct orfa_attr a;
	uint64_t w = mk_owned(ROOT, "w", 06777, 0);
	uint64_t ro = mk_owned(ROOT, "ro", 04755, 0);
	void *fh;

	s.valid = ORFA_SET_MODE;
	s.mode = 0666;	/* more than dropping bits */
	ck_assert_int_eq(OPS->setattr(be, &cr, w, NULL, &s, &a), -EPERM);
	s.mode = 02777;	/* drops S_ISUID only */
	ck_assert_int_eq(OPS->setattr(be, &cr, w, NULL, &s, &a), 0);
	ck_assert_int_eq(a.mode & 07777, 02777);
	s.valid = ORFA_SET_KILL_SUIDGID;
	ck_assert_int_eq(OPS->open(be, &cr, w, O_WRONLY, &fh, &a), 0);
	ck_assert_int_eq(OPS->setattr(be, &cr, w, fh, &s, &a), 0);
	ck_assert_int_eq(a.mode & 07777, 0777);
	ck_assert_uint_eq(a.uid, 0);
	OPS->release(be, w, fh);
	s.valid = ORFA_SET_MODE;	/* not a writer: refused */
	s.mode = 0755;
	ck_assert_int_eq(OPS->setattr(be, &cr, ro, NULL, &s, &a), -EPERM);
	ck_assert_int_eq(getattr(ro).mode & 07777, 04755);
}
END_TEST

/* ---- suite ------------------------------------------------------------ */

static void add_contract(TCase *tc)
{
	tcase_add_test(tc, test_stale_and_unknown_ids);
	tcase_add_test(tc, test_lookup_counts_and_forget);
	tcase_add_test(tc, test_name_checks);
	tcase_add_test(tc, test_empty_name);
	tcase_add_test(tc, test_dot_names_per_operation);
	tcase_add_test(tc, test_lookup_dot_and_dotdot);
	tcase_add_test(tc, test_mkdir_rmdir_unlink);
	tcase_add_test(tc, test_hard_links);
	tcase_add_test(tc, test_mknod_types);
	tcase_add_test(tc, test_symlink_readlink);
	tcase_add_test(tc, test_create_write_read);
	tcase_add_test(tc, test_create_existing);
	tcase_add_test(tc, test_open_refusals);
	tcase_add_test(tc, test_open_flags);
	tcase_add_test(tc, test_unlink_while_open);
	tcase_add_test(tc, test_fallocate_seek_data_hole);
	tcase_add_test(tc, test_copy_file_range);
	tcase_add_test(tc, test_setattr);
	tcase_add_test(tc, test_xattr_values_and_list);
	tcase_add_test(tc, test_xattr_flags_and_dirs);
	tcase_add_test(tc, test_statfs_access);
	tcase_add_test(tc, test_readdir_names_and_types);
	tcase_add_test(tc, test_readdirplus_references);
	tcase_add_test(tc, test_rename_simple_and_across);
	tcase_add_test(tc, test_rename_flags);
	if (geteuid() == 0) {
		tcase_add_test(tc, test_permissions);
		tcase_add_test(tc, test_writer_may_drop_suid_only);
	}
}

static Suite *contract_suite(void)
{
	Suite *s = suite_create("backend_contract");
	TCase *ram = tcase_create("ramfs");
	TCase *nat = tcase_create("native");

	tcase_add_checked_fixture(ram, setup_ramfs, teardown);
	add_contract(ram);
	suite_add_tcase(s, ram);
	tcase_add_checked_fixture(nat, setup_native, teardown);
	add_contract(nat);
	suite_add_tcase(s, nat);
	return s;
}

int main(void)
{
	return orfa_check_run(contract_suite());
}
