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
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"

#define ROOT	ORFA_ROOT_NODEID

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

/* ---- suite ------------------------------------------------------------ */

static void add_contract(TCase *tc)
{
	tcase_add_test(tc, test_name_checks);
	tcase_add_test(tc, test_empty_name);
	tcase_add_test(tc, test_dot_names_per_operation);
	tcase_add_test(tc, test_lookup_dot_and_dotdot);
	tcase_add_test(tc, test_mkdir_rmdir_unlink);
	tcase_add_test(tc, test_hard_links);
	tcase_add_test(tc, test_rename_simple_and_across);
	tcase_add_test(tc, test_rename_flags);
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
	SRunner *sr = srunner_create(contract_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
