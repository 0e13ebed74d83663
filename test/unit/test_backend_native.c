/*
 * test_backend_native.c - unit tests of the native backend
 * (server/backend_native.c): every operation and its common errors, node
 * identity (hard links, stale and crafted ids), containment in the export
 * (names, "..", symlinks, directories moved out, renames racing lookups),
 * per-user credentials when run as root, the sendfile read descriptor,
 * SEEK_DATA/SEEK_HOLE and directory cookies over 10,000 entries.
 * What both backends must answer alike (names, "." and "..", mkdir/rmdir,
 * links, rename) is in test_backend_contract.c; the tests of the same
 * name here keep the native side of it (node counts, open descriptors).
 *
 * Each test gets a fresh mkdtemp() directory holding "export" (the export
 * root) and "outside" (a sibling the backend must never reach).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <linux/capability.h>

#include "check_main.h"
#include "backend.h"
#include "backend_native_impl.h"
#include "log.h"

static char base[PATH_MAX];
static char exp_dir[PATH_MAX];
static char out_dir[PATH_MAX];
static struct orfa_backend *be;
static const struct orfa_backend_ops *ops;
static struct orfa_cred root_cr; /* uid 0 (or the server's user) */

/* ---- helpers ---------------------------------------------------------- */

static void pathf(char *buf, const char *dir, const char *rel)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s", dir, rel);

	ck_assert(n > 0 && n < PATH_MAX);
}

static void put_file(const char *dir, const char *rel, const char *data,
		     mode_t mode)
{
	char p[PATH_MAX];
	int fd;

	pathf(p, dir, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
	ck_assert_int_eq(chmod(p, mode), 0);
}

static void make_dir(const char *dir, const char *rel, mode_t mode)
{
	char p[PATH_MAX];

	pathf(p, dir, rel);
	ck_assert_int_eq(mkdir(p, mode), 0);
	ck_assert_int_eq(chmod(p, mode), 0);
}

static int lk_as(const struct orfa_cred *cr, uint64_t parent, const char *name,
		 struct orfa_entry *e)
{
	return ops->lookup(be, cr, parent, name, (uint32_t)strlen(name), e);
}

static int lk(uint64_t parent, const char *name, struct orfa_entry *e)
{
	return lk_as(&root_cr, parent, name, e);
}

/* Look up a name that must exist; returns its node id. */
static uint64_t must_lk(uint64_t parent, const char *name)
{
	struct orfa_entry e;
	int r = lk(parent, name, &e);

	ck_assert_msg(r == 0, "lookup %s: %s", name, strerror(-r));
	ck_assert_uint_ne(e.nodeid, 0);
	return e.nodeid;
}

static void forget1(uint64_t id)
{
	ops->forget(be, id, 1);
}

static int do_create(const struct orfa_cred *cr, uint64_t parent,
		     const char *name, uint32_t mode, uint32_t flags,
		     struct orfa_entry *e, void **fh)
{
	return ops->create(be, cr, parent, name, (uint32_t)strlen(name), mode,
			   flags, e, fh);
}

static uint64_t write_str(void *fh, uint64_t id, uint64_t off, const char *s,
			  uint32_t flags)
{
	struct iovec iov = {.iov_base = (void *)s, .iov_len = strlen(s)};
	uint64_t written = 0;
	struct orfa_attr a;
	int r =
	    ops->write(be, &root_cr, id, fh, off, &iov, 1, flags, &written, &a);

	ck_assert_msg(r == 0, "write: %s", strerror(-r));
	return written;
}

/* Read through the backend into buf (as a buffer-preferring server does:
 * pread from the descriptor it is given).  Returns the byte count. */
static size_t read_into(uint64_t id, void *fh, uint64_t off, uint32_t size,
			char *buf)
{
	struct orfa_read_out out;
	char scratch[16];
	ssize_t n;
	int r = ops->read(be, id, fh, off, size, scratch, &out);

	ck_assert_msg(r == 0, "read: %s", strerror(-r));
	ck_assert_int_eq(out.iovcnt, 0);
	if (out.len == 0)
		return 0;
	ck_assert_int_ge(out.fd, 0);
	n = pread(out.fd, buf, out.len, out.off);
	ck_assert_int_eq(n, (ssize_t)out.len);
	if (out.release)
		out.release(out.hold);
	return out.len;
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

static void setup(void)
{
	int r;

	umask(0); /* as orfad does; the backend applies cred->umask */
	snprintf(base, sizeof(base), "/tmp/orfa-native-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	pathf(exp_dir, base, "export");
	pathf(out_dir, base, "outside");
	ck_assert_int_eq(mkdir(exp_dir, 0755), 0);
	ck_assert_int_eq(mkdir(out_dir, 0755), 0);
	memset(&root_cr, 0, sizeof(root_cr));
	root_cr.uid = geteuid();
	root_cr.gid = getegid();
	r = backend_native_create(exp_dir, &be);
	ck_assert_msg(r == 0, "create: %s", strerror(-r));
	ops = be->ops;
}

static void teardown(void)
{
	orfa_backend_destroy(be);
	be = NULL;
	nftw(base, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* ---- basics --------------------------------------------------------- */

START_TEST(test_root_getattr)
{
	struct orfa_attr a;
	struct stat st;

	ck_assert_int_eq(stat(exp_dir, &st), 0);
	ck_assert_int_eq(ops->getattr(be, &root_cr, ORFA_ROOT_NODEID, NULL, &a),
			 0);
	ck_assert(S_ISDIR(a.mode));
	ck_assert_uint_eq(a.ino, st.st_ino);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
	ck_assert_str_eq(ops->name, "native");
}
END_TEST

START_TEST(test_create_bad_root)
{
	struct orfa_backend *b2 = (void *)1;
	char p[PATH_MAX];

	ck_assert_int_eq(backend_native_create("/nonexistent/orfa", &b2),
			 -ENOENT);
	ck_assert_ptr_null(b2);
	put_file(exp_dir, "plain", "x", 0644);
	pathf(p, exp_dir, "plain");
	ck_assert_int_eq(backend_native_create(p, &b2), -ENOTDIR);
}
END_TEST

START_TEST(test_lookup_counts)
{
	struct orfa_entry e1, e2;
	struct orfa_attr a;
	struct stat st;
	char p[PATH_MAX];

	put_file(exp_dir, "f", "hello", 0644);
	pathf(p, exp_dir, "f");
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(lk(1, "missing", &e1), -ENOENT);
	ck_assert_int_eq(lk(1, "f", &e1), 0);
	ck_assert_uint_eq(e1.attr.ino, st.st_ino);
	ck_assert_uint_eq(e1.attr.size, 5);
	ck_assert(S_ISREG(e1.attr.mode));
	ck_assert_int_eq(lk(1, "f", &e2), 0);
	ck_assert_uint_eq(e1.nodeid, e2.nodeid);
	ck_assert_uint_eq(backend_native_node_count(be), 2);
	ops->forget(be, e1.nodeid, 1);
	ck_assert_int_eq(ops->getattr(be, &root_cr, e1.nodeid, NULL, &a), 0);
	ops->forget(be, e1.nodeid, 1);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
	ck_assert_int_eq(ops->getattr(be, &root_cr, e1.nodeid, NULL, &a),
			 -ESTALE);
	/* Lookup on a file: not a directory. */
	ck_assert_int_eq(lk(1, "f", &e1), 0);
	ck_assert_int_eq(lk(e1.nodeid, "x", &e2), -ENOTDIR);
	ck_assert_int_eq(lk(e1.nodeid, "..", &e2), -ENOTDIR);
	forget1(e1.nodeid);
}
END_TEST

/* The errno of each refused name is in test_backend_contract.c; here:
 * refused names and "." / ".." leave no node behind. */
START_TEST(test_name_checks)
{
	struct orfa_entry e;
	void *fh = NULL;

	ck_assert_int_eq(lk(1, "../..", &e), -EINVAL);
	ck_assert_int_eq(lk(1, "", &e), -ENOENT);
	ck_assert_int_eq(do_create(&root_cr, 1, "../x", 0644, O_RDWR, &e, &fh),
			 -EINVAL);
	ck_assert_int_eq(ops->rmdir(be, &root_cr, 1, "..", 2), -ENOTEMPTY);
	ck_assert_int_eq(ops->rename(be, &root_cr, 1, "..", 2, 1, "x", 1, 0),
			 -EBUSY);
	ck_assert_int_eq(ops->mkdir(be, &root_cr, 1, "..", 2, 0755, &e),
			 -EEXIST);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
}
END_TEST
/* "." and ".." resolve as in test_backend_contract.c, and the references
 * they hand out are given back like any other. */
START_TEST(test_dot_dotdot)
{
	struct orfa_entry e;
	uint64_t sub, sub2;

	make_dir(exp_dir, "sub", 0755);
	make_dir(exp_dir, "sub/sub2", 0755);
	sub = must_lk(1, "sub");
	sub2 = must_lk(sub, "sub2");
	ck_assert_int_eq(lk(sub2, "..", &e), 0);
	ck_assert_uint_eq(e.nodeid, sub);
	forget1(e.nodeid);
	ck_assert_int_eq(lk(sub2, ".", &e), 0);
	ck_assert_uint_eq(e.nodeid, sub2);
	forget1(sub2);
	forget1(sub2);
	forget1(sub);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
}
END_TEST
/* ---- containment -------------------------------------------------------- */

/* Symlinks pointing out of the export are nodes, never followed. */
START_TEST(test_symlink_escape)
{
	static const char *const targets[][2] = {
	    {"slash", "/"},
	    {"up", "../.."},
	    {"etc", "/etc/passwd"},
	    {"victim", NULL},
	};
	char victim[PATH_MAX], buf[PATH_MAX], p[PATH_MAX];
	struct stat before, after;
	struct orfa_entry e;
	struct orfa_attr a;
	void *fh = NULL;
	size_t len = 0;

	put_file(out_dir, "victim", "secret", 0600);
	pathf(victim, out_dir, "victim");
	ck_assert_int_eq(stat(victim, &before), 0);
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		const char *t = targets[i][1] ? targets[i][1] : victim;
		uint64_t id;

		pathf(p, exp_dir, targets[i][0]);
		ck_assert_int_eq(symlink(t, p), 0);
		ck_assert_int_eq(lk(1, targets[i][0], &e), 0);
		id = e.nodeid;
		ck_assert(S_ISLNK(e.attr.mode));
		ck_assert_int_eq(
		    ops->readlink(be, &root_cr, id, buf, sizeof(buf), &len), 0);
		ck_assert_uint_eq(len, strlen(t));
		ck_assert(memcmp(buf, t, len) == 0);
		for (uint32_t fl = 0; fl < 3; fl++) {
			ck_assert_int_eq(
			    ops->open(be, &root_cr, id, fl, &fh, &a), -ELOOP);
			ck_assert_int_eq(ops->open(be, &root_cr, id,
						   fl | O_TRUNC | O_APPEND, &fh,
						   &a),
					 -ELOOP);
		}
		ck_assert_int_eq(ops->opendir(be, &root_cr, id, 0, &fh),
				 -ENOTDIR);
		ck_assert_int_eq(lk(id, "passwd", &e), -ENOTDIR);
		ck_assert_int_eq(lk(id, "..", &e), -ENOTDIR);
		ck_assert_int_eq(do_create(&root_cr, 1, targets[i][0], 0666,
					   O_WRONLY | O_TRUNC, &e, &fh),
				 -ELOOP);
		ck_assert_int_eq(ops->mkdir(be, &root_cr, 1, targets[i][0],
					    (uint32_t)strlen(targets[i][0]),
					    0755, &e),
				 -EEXIST);
		{
			struct orfa_setattr_req s = {.valid = ORFA_SET_SIZE};

			ck_assert_int_eq(
			    ops->setattr(be, &root_cr, id, NULL, &s, &a),
			    -EINVAL);
			s.valid = ORFA_SET_MODE;
			s.mode = 0777;
			ck_assert_int_eq(
			    ops->setattr(be, &root_cr, id, NULL, &s, &a),
			    -EOPNOTSUPP);
			/* Times and owner apply to the link itself. */
			s.valid = ORFA_SET_MTIME;
			s.mtime = 1000;
			ck_assert_int_eq(
			    ops->setattr(be, &root_cr, id, NULL, &s, &a), 0);
			ck_assert_int_eq(a.mtime, 1000);
			ck_assert(S_ISLNK(a.mode));
		}
		ck_assert_int_eq(
		    ops->setxattr(be, &root_cr, id, "user.x", "v", 1, 0),
		    -EPERM);
		ck_assert_int_eq(ops->getxattr(be, &root_cr, id, "user.x", buf,
					       sizeof(buf), &len),
				 -EOPNOTSUPP);
		forget1(id);
	}
	ck_assert_int_eq(stat(victim, &after), 0);
	ck_assert_int_eq(after.st_mode, before.st_mode);
	ck_assert_int_eq(after.st_size, 6);
	ck_assert_int_eq(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
	ck_assert_int_eq(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	ck_assert_uint_eq(after.st_uid, before.st_uid);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
}
END_TEST

/* A directory moved out of the export by a local process: ".." from it
 * or below it never yields a node outside. */
START_TEST(test_moved_out_dotdot)
{
	char from[PATH_MAX], to[PATH_MAX];
	struct orfa_entry e;
	struct stat ost;
	uint64_t d1, d2;

	make_dir(exp_dir, "d1", 0755);
	make_dir(exp_dir, "d1/d2", 0755);
	ck_assert_int_eq(stat(out_dir, &ost), 0);
	d1 = must_lk(1, "d1");
	d2 = must_lk(d1, "d2");
	ck_assert_int_eq(lk(d2, "..", &e), 0);
	ck_assert_uint_eq(e.nodeid, d1);
	forget1(d1);

	pathf(from, exp_dir, "d1");
	pathf(to, out_dir, "d1");
	ck_assert_int_eq(rename(from, to), 0);
	/* d2's parent is d1, now outside: refused.  d1's parent is the
	 * outside directory itself: refused. */
	ck_assert_int_eq(lk(d2, "..", &e), -ESTALE);
	ck_assert_int_eq(lk(d1, "..", &e), -ESTALE);
	ck_assert_int_eq(lk(1, "d1", &e), -ENOENT);

	ck_assert_int_eq(rename(to, from), 0);
	ck_assert_int_eq(lk(d2, "..", &e), 0);
	ck_assert_uint_eq(e.nodeid, d1);
	forget1(d1);
	ck_assert_int_eq(lk(d1, "..", &e), 0);
	ck_assert_uint_eq(e.nodeid, ORFA_ROOT_NODEID);
	ck_assert_uint_ne(e.attr.ino, ost.st_ino);
	forget1(d2);
	forget1(d1);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
}
END_TEST

START_TEST(test_crafted_ids)
{
	static const uint64_t bad[] = {
	    0,
	    2,
	    3,
	    999999,
	    UINT64_MAX,
	    (1ull << 32) | 1,
	    ((uint64_t)UINT32_MAX << 32) | 1,
	    (1ull << 32) | 2,
	    (uint64_t)UINT32_MAX,
	    1ull << 63,
	};
	struct orfa_entry e;
	struct orfa_attr a;
	struct orfa_statfs_out sf;
	unsigned int seed = 12345;
	void *fh = NULL;
	uint64_t id, id2;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(ops->getattr(be, &root_cr, bad[i], NULL, &a),
				 -ESTALE);
		ck_assert_int_eq(lk(bad[i], "x", &e), -ESTALE);
		ck_assert_int_eq(
		    ops->open(be, &root_cr, bad[i], O_RDONLY, &fh, &a),
		    -ESTALE);
		ck_assert_int_eq(ops->opendir(be, &root_cr, bad[i], 0, &fh),
				 -ESTALE);
		ck_assert_int_eq(ops->statfs(be, bad[i], &sf), -ESTALE);
		ck_assert_int_eq(ops->access(be, &root_cr, bad[i], 0), -ESTALE);
		ops->forget(be, bad[i], 1);
	}
	for (int i = 0; i < 2000; i++) {
		uint64_t r = ((uint64_t)rand_r(&seed) << 33) ^
			     ((uint64_t)rand_r(&seed) << 11) ^
			     (uint64_t)rand_r(&seed);

		if (r == ORFA_ROOT_NODEID)
			continue;
		ck_assert_int_eq(ops->getattr(be, &root_cr, r, NULL, &a),
				 -ESTALE);
		ops->forget(be, r, (uint64_t)rand_r(&seed));
	}
	/* Forgetting the root never frees it. */
	ops->forget(be, ORFA_ROOT_NODEID, UINT64_MAX);
	ck_assert_int_eq(ops->getattr(be, &root_cr, 1, NULL, &a), 0);

	/* Stale after forget. */
	put_file(exp_dir, "f", "x", 0644);
	id = must_lk(1, "f");
	ck_assert_uint_ne(id >> 32, 0); /* not a small integer */
	ops->forget(be, id, 1);
	ck_assert_int_eq(ops->getattr(be, &root_cr, id, NULL, &a), -ESTALE);
	ck_assert_int_eq(ops->open(be, &root_cr, id, O_RDONLY, &fh, &a),
			 -ESTALE);
	ck_assert_int_eq(ops->link(be, &root_cr, id, 1, "g", 1, &e), -ESTALE);
	id2 = must_lk(1, "f");
	ck_assert_uint_eq(id2 >> 32,
			  (uint32_t)((id >> 32) + 1)); /* generation moved on */
	ck_assert_uint_eq(id & 0xffffffffu, id2 & 0xffffffffu);
	ck_assert_int_eq(ops->getattr(be, &root_cr, id, NULL, &a), -ESTALE);
	ck_assert_int_eq(ops->getattr(be, &root_cr, id2, NULL, &a), 0);
	/* An over-large forget clamps, frees, and the id goes stale. */
	ops->forget(be, id2, 1000);
	ck_assert_int_eq(ops->getattr(be, &root_cr, id2, NULL, &a), -ESTALE);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
}
END_TEST

struct race_ctx {
	char inside[PATH_MAX];
	char outside[PATH_MAX];
	int rounds;
	volatile int done;
};

static void *renamer(void *arg)
{
	struct race_ctx *rc = arg;

	for (int i = 0; i < rc->rounds; i++) {
		if (rename(rc->inside, rc->outside) == 0)
			rename(rc->outside, rc->inside);
	}
	__atomic_store_n(&rc->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* A local process moves a/b in and out of the export while ".." and name
 * lookups run: no lookup ever returns a node outside the export. */
START_TEST(test_rename_race)
{
	struct race_ctx rc = {.rounds = 3000};
	struct stat ost, bst, ast, cst;
	char p[PATH_MAX];
	pthread_t t;
	uint64_t a, b, c;
	long ok = 0, refused = 0;

	make_dir(exp_dir, "a", 0755);
	make_dir(exp_dir, "a/b", 0755);
	make_dir(exp_dir, "a/b/c", 0755);
	pathf(rc.inside, exp_dir, "a/b");
	pathf(rc.outside, out_dir, "b");
	ck_assert_int_eq(stat(out_dir, &ost), 0);
	ck_assert_int_eq(stat(base, &bst), 0);
	pathf(p, exp_dir, "a");
	ck_assert_int_eq(stat(p, &ast), 0);
	pathf(p, exp_dir, "a/b/c");
	ck_assert_int_eq(stat(p, &cst), 0);
	a = must_lk(1, "a");
	b = must_lk(a, "b");
	c = must_lk(b, "c");
	ck_assert_int_eq(pthread_create(&t, NULL, renamer, &rc), 0);
	for (long i = 0;
	     i < 200000 && !__atomic_load_n(&rc.done, __ATOMIC_ACQUIRE); i++) {
		static const struct {
			int which;
			const char *name;
		} q[] = {{2, ".."}, {1, ".."}, {0, "b"}, {1, "c"}};
		uint64_t par = q[i % 4].which == 2   ? c
			       : q[i % 4].which == 1 ? b
						     : a;
		struct orfa_entry e;
		int r = lk(par, q[i % 4].name, &e);

		if (r == 0) {
			ck_assert_msg(e.attr.ino != ost.st_ino &&
					  e.attr.ino != bst.st_ino,
				      "lookup returned a node outside");
			/* Each answer is one of a, b, c. */
			ck_assert(e.attr.ino == ast.st_ino ||
				  e.attr.ino == cst.st_ino ||
				  S_ISDIR(e.attr.mode));
			forget1(e.nodeid);
			ok++;
		} else {
			ck_assert_msg(r == -ESTALE || r == -ENOENT,
				      "unexpected %s", strerror(-r));
			refused++;
		}
	}
	pthread_join(t, NULL);
	ck_assert_int_gt(ok, 0);
	forget1(c);
	forget1(b);
	forget1(a);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
	printf("# rename race: %ld lookups answered, %ld refused\n", ok,
	       refused);
}
END_TEST

struct churn_ctx {
	int id;
	int errors;
};

/* Lookups, getattrs and forgets on a few names from several threads while
 * another thread unlinks and recreates them through the backend: every id
 * a lookup returned works until forgotten, and nothing is left over. */
static void *churn_worker(void *arg)
{
	struct churn_ctx *cc = arg;

	for (int i = 0; i < 4000; i++) {
		char name[8];
		struct orfa_entry e;
		struct orfa_attr a;
		int r;

		snprintf(name, sizeof(name), "f%d", (i + cc->id) % 6);
		if (cc->id == 0) {
			void *fh = NULL;

			if (i % 2) {
				r = ops->unlink(be, &root_cr, 1, name, 2);
				if (r && r != -ENOENT)
					cc->errors++;
				continue;
			}
			r = do_create(&root_cr, 1, name, 0644, O_RDWR, &e, &fh);
			if (r) {
				cc->errors++;
				continue;
			}
			ops->release(be, e.nodeid, fh);
			forget1(e.nodeid);
			continue;
		}
		r = lk(1, name, &e);
		if (r == -ENOENT)
			continue;
		if (r || ops->getattr(be, &root_cr, e.nodeid, NULL, &a) ||
		    a.ino != e.attr.ino)
			cc->errors++;
		if (r == 0)
			forget1(e.nodeid);
	}
	return NULL;
}

START_TEST(test_concurrent_lookup_forget)
{
	struct churn_ctx cc[4];
	pthread_t th[4];

	for (int i = 0; i < 4; i++) {
		cc[i].id = i;
		cc[i].errors = 0;
		ck_assert_int_eq(
		    pthread_create(&th[i], NULL, churn_worker, &cc[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(cc[i].errors, 0);
	}
	ck_assert_uint_eq(backend_native_node_count(be), 1);
}
END_TEST

/* ---- node operations ---------------------------------------------------- */

/* Link rules are in test_backend_contract.c; here: a link is the same
 * node, and the node goes once its references are given back. */
START_TEST(test_hardlinks)
{
	struct orfa_entry e, l;
	void *fh = NULL;
	uint64_t d;

	ck_assert_int_eq(do_create(&root_cr, 1, "f", 0644, O_RDWR, &e, &fh), 0);
	ops->release(be, e.nodeid, fh);
	ck_assert_int_eq(ops->mkdir(be, &root_cr, 1, "d", 1, 0755, &l), 0);
	d = l.nodeid;
	ck_assert_int_eq(ops->link(be, &root_cr, e.nodeid, d, "g", 1, &l), 0);
	ck_assert_uint_eq(l.nodeid, e.nodeid);
	forget1(l.nodeid);
	ck_assert_int_eq(lk(d, "g", &l), 0);
	ck_assert_uint_eq(backend_native_node_count(be), 3);
	ck_assert_int_eq(ops->unlink(be, &root_cr, 1, "f", 1), 0);
	ops->forget(be, e.nodeid, 2);
	forget1(d);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
}
END_TEST
/* The common rules are in test_backend_contract.c; here what the native
 * backend shows on its own: a removed directory's ".." (the kernel keeps
 * the old parent) and no node left behind. */
START_TEST(test_mkdir_rmdir_unlink)
{
	struct orfa_entry e, f;
	int r;

	ck_assert_int_eq(ops->mkdir(be, &root_cr, 1, "d", 1, 0777, &e), 0);
	ck_assert_int_eq(ops->rmdir(be, &root_cr, 1, "d", 1), 0);
	r = lk(e.nodeid, "..", &f);
	ck_assert_msg(r == 0 || r == -ENOENT, "%s", strerror(-r));
	if (r == 0) {
		ck_assert_uint_eq(f.nodeid, ORFA_ROOT_NODEID);
		forget1(f.nodeid);
	}
	forget1(e.nodeid);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
}
END_TEST
/* MKNOD, SYMLINK and READLINK rules: test_backend_contract.c; here: the
 * nodes they hand out, and refused ones, leave no node behind. */
START_TEST(test_mknod_symlink_readlink)
{
	struct orfa_entry e;

	ck_assert_int_eq(
	    ops->mknod(be, &root_cr, 1, "fifo", 4, S_IFIFO | 0600, 0, &e), 0);
	forget1(e.nodeid);
	ck_assert_int_eq(
	    ops->mknod(be, &root_cr, 1, "dir", 3, S_IFDIR | 0755, 0, &e),
	    -EPERM);
	ck_assert_int_eq(
	    ops->symlink(be, &root_cr, 1, "sl", 2, "some/where", 10, &e), 0);
	forget1(e.nodeid);
	ck_assert_int_eq(ops->symlink(be, &root_cr, 1, "sl", 2, "x", 1, &e),
			 -EEXIST);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
}
END_TEST

/* Rename rules and flags are in test_backend_contract.c; here: an open
 * file moved keeps its data and its node, and no node is left behind. */
START_TEST(test_rename)
{
	uint64_t a, d;
	char buf[16];
	void *fh = NULL;

	put_file(exp_dir, "a", "AAA", 0644);
	make_dir(exp_dir, "d", 0755);
	a = must_lk(1, "a");
	d = must_lk(1, "d");
	ck_assert_int_eq(ops->rename(be, &root_cr, 1, "a", 1, d, "c", 1, 0), 0);
	ck_assert_uint_eq(must_lk(d, "c"), a);
	forget1(a);
	ck_assert_int_eq(ops->open(be, &root_cr, a, O_RDONLY, &fh, NULL), 0);
	ck_assert_uint_eq(read_into(a, fh, 0, sizeof(buf), buf), 3);
	ck_assert(memcmp(buf, "AAA", 3) == 0);
	ops->release(be, a, fh);
	forget1(a);
	forget1(d);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
}
END_TEST
/* ---- files -------------------------------------------------------------- */

/* The common rules of CREATE, OPEN, READ and WRITE are in
 * test_backend_contract.c; here what is the native backend's own: reads
 * come back as a file range (read_into checks it), open flags the
 * backend sets itself are ignored, a READ needs an open handle. */
START_TEST(test_create_open_write_read)
{
	struct orfa_entry e;
	struct orfa_attr a;
	struct orfa_read_out out;
	void *fh = NULL, *wfh = NULL;
	char buf[64];
	uint64_t id;

	ck_assert_int_eq(
	    do_create(&root_cr, 1, "f", 0640, O_RDWR | O_EXCL, &e, &fh), 0);
	id = e.nodeid;
	ck_assert_uint_eq(write_str(fh, id, 0, "12345", 0), 5);
	ops->release(be, id, fh);
	ck_assert_int_eq(
	    ops->open(be, &root_cr, id,
		      O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW, &wfh,
		      &a),
	    0);
	ck_assert_uint_eq(write_str(wfh, id, 0, "ab", O_APPEND), 2);
	ops->release(be, id, wfh);
	ck_assert_int_eq(ops->open(be, &root_cr, id, O_RDWR, &wfh, &a), 0);
	ck_assert_uint_eq(read_into(id, wfh, 0, sizeof(buf), buf), 7);
	ck_assert(memcmp(buf, "12345ab", 7) == 0);
	ck_assert_int_eq(ops->read(be, id, NULL, 0, 10, buf, &out), -EBADF);
	ops->release(be, id, wfh);
	forget1(id);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
}
END_TEST
/* READ hands out fd/off/len for sendfile; the descriptor outlives RELEASE
 * until out->release. */
START_TEST(test_read_sendfile)
{
	struct orfa_read_out out;
	struct orfa_entry e;
	char data[10000], got[10000], scratch[8];
	void *fh = NULL;
	int sv[2];
	off_t off;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)('a' + i % 23);
	ck_assert_int_eq(do_create(&root_cr, 1, "f", 0644, O_RDWR, &e, &fh), 0);
	{
		struct iovec iov = {data, sizeof(data)};
		uint64_t w;
		struct orfa_attr a;

		ck_assert_int_eq(ops->write(be, &root_cr, e.nodeid, fh, 0, &iov,
					    1, 0, &w, &a),
				 0);
		ck_assert_uint_eq(w, sizeof(data));
		ck_assert_uint_eq(a.size, sizeof(data));
	}
	ck_assert_int_eq(ops->read(be, e.nodeid, fh, 100, 5000, scratch, &out),
			 0);
	ck_assert_int_eq(out.iovcnt, 0);
	ck_assert_int_ge(out.fd, 0);
	ck_assert_int_eq(out.off, 100);
	ck_assert_uint_eq(out.len, 5000);
	ck_assert_ptr_nonnull(out.release);
	/* Release the open first: the data must still be sendable. */
	ops->release(be, e.nodeid, fh);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	off = out.off;
	ck_assert_int_eq(sendfile(sv[0], out.fd, &off, out.len), 5000);
	ck_assert_int_eq(recv(sv[1], got, 5000, MSG_WAITALL), 5000);
	ck_assert(memcmp(got, data + 100, 5000) == 0);
	out.release(out.hold);
	close(sv[0]);
	close(sv[1]);

	ck_assert_int_eq(ops->open(be, &root_cr, e.nodeid, O_RDONLY, &fh, NULL),
			 0);
	ck_assert_int_eq(ops->read(be, e.nodeid, fh, 9000, 5000, scratch, &out),
			 0);
	ck_assert_uint_eq(out.len, 1000); /* clamped to the file size */
	ck_assert_int_eq(pread(out.fd, got, out.len, out.off), 1000);
	ck_assert(memcmp(got, data + 9000, 1000) == 0);
	out.release(out.hold);
	ck_assert_int_eq(
	    ops->read(be, e.nodeid, fh, 10000, 5000, scratch, &out), 0);
	ck_assert_uint_eq(out.len, 0);
	ck_assert_ptr_null(out.release);
	ck_assert_int_eq(
	    ops->read(be, e.nodeid, fh, 1u << 30, 5000, scratch, &out), 0);
	ck_assert_uint_eq(out.len, 0);
	ck_assert_int_eq(
	    ops->read(be, e.nodeid, fh, UINT64_MAX, 10, scratch, &out),
	    -EINVAL);
	ops->release(be, e.nodeid, fh);
	forget1(e.nodeid);
}
END_TEST

/* An unlinked open file works as before (test_backend_contract.c); its
 * node goes once released and forgotten. */
START_TEST(test_unlinked_while_open)
{
	struct orfa_entry e;
	char buf[16];
	void *fh = NULL;

	ck_assert_int_eq(do_create(&root_cr, 1, "tmp", 0600, O_RDWR, &e, &fh),
			 0);
	ck_assert_uint_eq(write_str(fh, e.nodeid, 0, "still here", 0), 10);
	ck_assert_int_eq(ops->unlink(be, &root_cr, 1, "tmp", 3), 0);
	ck_assert_uint_eq(read_into(e.nodeid, fh, 0, sizeof(buf), buf), 10);
	ops->release(be, e.nodeid, fh);
	forget1(e.nodeid);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
}
END_TEST
/* SETATTR rules are in test_backend_contract.c; here: a size set through
 * a read-only handle reaches the file on disk. */
START_TEST(test_setattr)
{
	struct orfa_setattr_req s;
	struct orfa_attr a;
	struct stat st;
	char p[PATH_MAX];
	void *fh = NULL;
	uint64_t id;

	put_file(exp_dir, "f", "0123456789", 0644);
	pathf(p, exp_dir, "f");
	id = must_lk(1, "f");
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(ops->open(be, &root_cr, id, O_RDONLY, &fh, &a), 0);
	s.valid = ORFA_SET_SIZE;
	s.size = 2; /* read-only handle: reopened for writing */
	ck_assert_int_eq(ops->setattr(be, &root_cr, id, fh, &s, &a), 0);
	ck_assert_uint_eq(a.size, 2);
	ops->release(be, id, fh);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_size, 2);
	forget1(id);
}
END_TEST
/* XATTR rules are in test_backend_contract.c; here: they reach the
 * export on disk. */
START_TEST(test_xattr)
{
	char buf[256];
	int r;

	r = ops->setxattr(be, &root_cr, 1, "user.d", "1", 1, 0);
	if (r == -EOPNOTSUPP) {
		printf("# xattr test: file system has no user xattrs\n");
		return;
	}
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(getxattr(exp_dir, "user.d", buf, sizeof(buf)), 1);
}
END_TEST
/* ACCESS and the rest of STATFS: test_backend_contract.c; here: STATFS
 * reports the export's file system. */
START_TEST(test_statfs_access)
{
	struct orfa_statfs_out sf;
	struct statvfs sv;

	ck_assert_int_eq(ops->statfs(be, 1, &sf), 0);
	ck_assert_int_eq(statvfs(exp_dir, &sv), 0);
	ck_assert_uint_eq(sf.bsize, sv.f_bsize);
	ck_assert_uint_eq(sf.blocks, sv.f_blocks);
	ck_assert_uint_eq(sf.namemax, sv.f_namemax);
}
END_TEST
/* SEEK_DATA/SEEK_HOLE and FALLOCATE rules: test_backend_contract.c;
 * here: holes at the export file system's block size, and the calls need
 * an open handle. */
START_TEST(test_fallocate_seek_data_hole)
{
	struct orfa_entry e;
	struct orfa_attr a;
	char blk[4096];
	void *fh = NULL;
	uint64_t res, id;

	memset(blk, 'q', sizeof(blk));
	ck_assert_int_eq(
	    do_create(&root_cr, 1, "sparse", 0644, O_RDWR, &e, &fh), 0);
	id = e.nodeid;
	{
		struct iovec iov = {blk, sizeof(blk)};
		uint64_t w;

		ck_assert_int_eq(
		    ops->write(be, &root_cr, id, fh, 0, &iov, 1, 0, &w, &a), 0);
		ck_assert_int_eq(ops->write(be, &root_cr, id, fh, 1 << 20, &iov,
					    1, 0, &w, &a),
				 0);
	}
	ck_assert_int_eq(ops->lseek(be, id, fh, 8192, SEEK_DATA, &res), 0);
	ck_assert_uint_eq(res, 1 << 20);
	ck_assert_int_eq(ops->lseek(be, id, NULL, 0, SEEK_DATA, &res), -EBADF);
	/* Punch the first block: data now starts at 1 MiB. */
	ck_assert_int_eq(
	    ops->fallocate(be, &root_cr, id, fh,
			   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096,
			   &a),
	    0);
	ck_assert_int_eq(ops->lseek(be, id, fh, 0, SEEK_DATA, &res), 0);
	ck_assert_uint_eq(res, 1 << 20);
	ck_assert_int_eq(ops->fallocate(be, &root_cr, id, NULL, 0, 0, 1, &a),
			 -EBADF);
	ops->release(be, id, fh);
	forget1(id);
}
END_TEST
/* ---- directories ------------------------------------------------------ */

struct dcollect {
	int limit; /* entries to take before saying "full" */
	int taken;
	uint64_t last_cookie;
	char **names; /* names seen, in order */
	int nnames, cap;
	uint64_t dotdot_ino, dot_ino;
	uint64_t dot_nodeid, dotdot_nodeid;
	uint64_t *ids; /* plus: node ids received */
	int nids;
};

static int dfill(void *ctx, const char *name, uint32_t namelen, uint32_t type,
		 uint64_t ino, uint64_t next, const struct orfa_entry *e)
{
	struct dcollect *c = ctx;

	ck_assert_uint_eq(namelen, strlen(name));
	if (c->limit && c->taken >= c->limit) {
		if (e && e->nodeid)
			forget1(e->nodeid); /* give back, as promised */
		return 1;
	}
	c->taken++;
	c->last_cookie = next;
	ck_assert_uint_ne(next, 0);
	if (c->nnames == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->names = realloc(c->names, c->cap * sizeof(char *));
		ck_assert_ptr_nonnull(c->names);
	}
	c->names[c->nnames++] = strdup(name);
	if (strcmp(name, "..") == 0) {
		c->dotdot_ino = ino;
		ck_assert_uint_eq(type, DT_DIR);
		if (e)
			c->dotdot_nodeid = e->nodeid;
	} else if (strcmp(name, ".") == 0) {
		c->dot_ino = ino;
		if (e)
			c->dot_nodeid = e->nodeid;
	} else if (e) {
		ck_assert_uint_ne(e->nodeid, 0);
		ck_assert_uint_eq(e->attr.ino, ino);
		ck_assert_uint_eq(IFTODT(e->attr.mode), type);
		c->ids = realloc(c->ids, (c->nids + 1) * sizeof(uint64_t));
		c->ids[c->nids++] = e->nodeid;
	}
	return 0;
}

static void dcollect_free(struct dcollect *c)
{
	for (int i = 0; i < c->nnames; i++)
		free(c->names[i]);
	free(c->names);
	free(c->ids);
	memset(c, 0, sizeof(*c));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(test_readdir_10000_cookies)
{
	enum { N = 10000, PAGE = 97 };
	struct dcollect c = {0};
	uint64_t d, cookie = 0;
	void *dh = NULL;
	char p[PATH_MAX];
	int dfd, pages = 0;

	make_dir(exp_dir, "big", 0755);
	pathf(p, exp_dir, "big");
	dfd = open(p, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dfd, 0);
	for (int i = 0; i < N; i++) {
		char name[32];

		snprintf(name, sizeof(name), "entry-%05d", i);
		ck_assert_int_eq(mknodat(dfd, name, S_IFREG | 0644, 0), 0);
	}
	close(dfd);
	d = must_lk(1, "big");
	ck_assert_int_eq(ops->opendir(be, &root_cr, d, O_RDONLY, &dh), 0);
	for (;;) {
		int before = c.nnames, r;

		c.limit = PAGE;
		c.taken = 0;
		r = ops->readdir(be, &root_cr, d, dh, cookie, 0, dfill, &c);
		ck_assert_int_eq(r, 0);
		if (c.nnames == before)
			break;
		cookie = c.last_cookie;
		/* Every third page, resume on a fresh handle: cookies are
		 * positions of the directory, not of one stream. */
		if (++pages % 3 == 0) {
			ops->releasedir(be, d, dh);
			ck_assert_int_eq(ops->opendir(be, &root_cr, d, 0, &dh),
					 0);
		}
		ck_assert_int_lt(pages, N); /* bounded */
	}
	ck_assert_int_eq(c.nnames, N + 2);
	qsort(c.names, c.nnames, sizeof(char *), cmp_str);
	ck_assert_str_eq(c.names[0], ".");
	ck_assert_str_eq(c.names[1], "..");
	for (int i = 0; i < N; i++) {
		char name[32];

		snprintf(name, sizeof(name), "entry-%05d", i);
		ck_assert_str_eq(c.names[i + 2], name);
	}
	dcollect_free(&c);
	/* Cookie 0 starts over. */
	ck_assert_int_eq(ops->readdir(be, &root_cr, d, dh, 0, 0, dfill, &c), 0);
	ck_assert_int_eq(c.nnames, N + 2);
	dcollect_free(&c);
	ck_assert_int_eq(ops->fsyncdir(be, d, dh, 0), 0);
	ops->releasedir(be, d, dh);
	ck_assert_int_eq(ops->opendir(be, &root_cr, 1, 0, &dh), 0);
	ck_assert_int_eq(ops->readdir(be, &root_cr, d, NULL, 0, 0, dfill, &c),
			 -EBADF);
	ops->releasedir(be, 1, dh);
	forget1(d);
}
END_TEST

START_TEST(test_readdirplus)
{
	struct dcollect c = {0};
	struct orfa_attr a;
	struct stat st;
	void *dh = NULL;
	char p[PATH_MAX];
	uint64_t sub;

	put_file(exp_dir, "f1", "1", 0644);
	put_file(exp_dir, "f2", "22", 0644);
	make_dir(exp_dir, "sub", 0755);
	put_file(exp_dir, "sub/inner", "x", 0644);
	pathf(p, exp_dir, "ln");
	ck_assert_int_eq(symlink("/etc", p), 0);
	ck_assert_int_eq(stat(exp_dir, &st), 0);

	/* Root, plain: ".." is the root itself. */
	ck_assert_int_eq(ops->opendir(be, &root_cr, 1, 0, &dh), 0);
	ck_assert_int_eq(ops->readdir(be, &root_cr, 1, dh, 0, 0, dfill, &c), 0);
	ck_assert_int_eq(c.nnames, 6);
	ck_assert_uint_eq(c.dotdot_ino, st.st_ino);
	ck_assert_uint_eq(c.dot_ino, st.st_ino);
	dcollect_free(&c);

	/* Root, plus, two entries per reply. */
	for (uint64_t cookie = 0;;) {
		int before = c.nnames;

		c.limit = 2;
		c.taken = 0;
		ck_assert_int_eq(
		    ops->readdir(be, &root_cr, 1, dh, cookie, 1, dfill, &c), 0);
		if (c.nnames == before)
			break;
		cookie = c.last_cookie;
	}
	ck_assert_int_eq(c.nnames, 6);
	ck_assert_int_eq(c.nids, 4);
	ck_assert_uint_eq(c.dotdot_ino, st.st_ino);
	ck_assert_uint_eq(c.dot_nodeid, 0); /* no reference handed out */
	ck_assert_uint_eq(c.dotdot_nodeid, 0);
	/* Each node id is live and carries one reference. */
	ck_assert_uint_eq(backend_native_node_count(be), 5);
	for (int i = 0; i < c.nids; i++) {
		ck_assert_int_eq(ops->getattr(be, &root_cr, c.ids[i], NULL, &a),
				 0);
		forget1(c.ids[i]);
	}
	ck_assert_uint_eq(backend_native_node_count(be), 1);
	dcollect_free(&c);
	ops->releasedir(be, 1, dh);

	/* Below the root, ".." is reported with the real parent's inode. */
	sub = must_lk(1, "sub");
	ck_assert_int_eq(ops->opendir(be, &root_cr, sub, 0, &dh), 0);
	ck_assert_int_eq(ops->readdir(be, &root_cr, sub, dh, 0, 1, dfill, &c),
			 0);
	ck_assert_int_eq(c.nnames, 3);
	ck_assert_int_eq(c.nids, 1);
	ck_assert_uint_eq(c.dotdot_ino, st.st_ino);
	forget1(c.ids[0]);
	dcollect_free(&c);
	ops->releasedir(be, sub, dh);
	forget1(sub);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
}
END_TEST

/* ---- credentials (root only) -------------------------------------------- */

static struct orfa_cred nobody_cr(void)
{
	struct orfa_cred cr;

	memset(&cr, 0, sizeof(cr));
	cr.uid = 65534;
	cr.gid = 65534;
	cr.umask = 022;
	return cr;
}

static void assert_identity_restored(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];

	ck_assert_int_eq((int)syscall(SYS_setfsuid, (uid_t)-1), 0);
	ck_assert_int_eq((int)syscall(SYS_setfsgid, (gid_t)-1), 0);
	ck_assert_int_eq(syscall(SYS_capget, &h, d), 0);
	ck_assert_uint_eq(d[0].effective, d[0].permitted);
	ck_assert_uint_eq(d[1].effective, d[1].permitted);
}

START_TEST(test_cred_create_owner)
{
	struct orfa_cred cr = nobody_cr();
	struct orfa_entry e;
	void *fh = NULL;
	char p[PATH_MAX];
	struct stat st;
	uint64_t pub;

	ck_assert(backend_native_switches_creds(be));
	make_dir(exp_dir, "pub", 0777);
	pub = must_lk(1, "pub");
	ck_assert_int_eq(
	    do_create(&cr, pub, "mine", 0666, O_RDWR | O_EXCL, &e, &fh), 0);
	assert_identity_restored();
	ck_assert_uint_eq(e.attr.uid, 65534);
	ck_assert_uint_eq(e.attr.gid, 65534);
	ck_assert_int_eq(e.attr.mode & 07777, 0644);
	ck_assert_uint_eq(write_str(fh, e.nodeid, 0, "abc", 0), 3);
	ops->release(be, e.nodeid, fh);
	forget1(e.nodeid);
	pathf(p, exp_dir, "pub/mine");
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_uint_eq(st.st_uid, 65534);
	ck_assert_int_eq(ops->mkdir(be, &cr, pub, "dir", 3, 0777, &e), 0);
	ck_assert_uint_eq(e.attr.uid, 65534);
	ck_assert_int_eq(e.attr.mode & 07777, 0755);
	forget1(e.nodeid);
	ck_assert_int_eq(ops->symlink(be, &cr, pub, "sl", 2, "mine", 4, &e), 0);
	ck_assert_uint_eq(e.attr.uid, 65534);
	forget1(e.nodeid);
	/* Root's directory: no write for nobody. */
	ck_assert_int_eq(ops->mkdir(be, &cr, 1, "no", 2, 0777, &e), -EACCES);
	ck_assert_int_eq(do_create(&cr, 1, "no", 0666, O_RDWR, &e, &fh),
			 -EACCES);
	ck_assert_int_eq(ops->mknod(be, &cr, 1, "no", 2, S_IFIFO | 0666, 0, &e),
			 -EACCES);
	ck_assert_int_eq(ops->rename(be, &cr, pub, "mine", 4, 1, "no", 2, 0),
			 -EACCES);
	ck_assert_int_eq(ops->rmdir(be, &cr, 1, "pub", 3), -EACCES);
	forget1(pub);
	assert_identity_restored();
}
END_TEST

/* The permission rules themselves are in test_backend_contract.c (run as
 * root there too); here: the thread gets its identity back after
 * refusals and after an id the kernel cannot take, and no node stays. */
START_TEST(test_cred_permissions)
{
	struct orfa_cred cr = nobody_cr();
	struct orfa_entry e;
	struct orfa_attr a;
	void *fh = NULL;
	uint64_t secret, priv;

	make_dir(exp_dir, "priv", 0700);
	put_file(exp_dir, "priv/inner", "x", 0644);
	put_file(exp_dir, "secret", "s", 0600);
	priv = must_lk(1, "priv");
	ck_assert_int_eq(lk_as(&cr, priv, "inner", &e), -EACCES);
	secret = must_lk(1, "secret");
	ck_assert_int_eq(ops->open(be, &cr, secret, O_RDONLY, &fh, &a),
			 -EACCES);
	assert_identity_restored();
	/* An id the kernel cannot take. */
	cr.uid = UINT32_MAX;
	ck_assert_int_eq(lk_as(&cr, 1, "priv", &e), -EPERM);
	assert_identity_restored();
	forget1(secret);
	forget1(priv);
	ck_assert_uint_eq(backend_native_node_count(be), 1);
}
END_TEST
/* A writer who is not the owner: the kernel asks the server to drop
 * setuid/setgid as that writer (FUSE without handle_killpriv); only
 * dropping is allowed, and only to a writer. */
/* The rule is in test_backend_contract.c; here: the drop runs with the
 * server's identity for a moment, and the thread is the writer again
 * afterwards. */
START_TEST(test_cred_writer_drops_suid)
{
	struct orfa_cred cr = nobody_cr();
	struct orfa_setattr_req s = {0};
	struct orfa_attr a;
	char p[PATH_MAX];
	uint64_t w;

	put_file(exp_dir, "w", "#!/bin/sh\n", 0644);
	pathf(p, exp_dir, "w");
	ck_assert_int_eq(chmod(p, 06777), 0);
	w = must_lk(1, "w");
	s.valid = ORFA_SET_MODE;
	s.mode = 02777; /* drops S_ISUID only */
	ck_assert_int_eq(ops->setattr(be, &cr, w, NULL, &s, &a), 0);
	ck_assert_int_eq(a.mode & 07777, 02777);
	assert_identity_restored();
	forget1(w);
}
END_TEST
/* Many threads, many users: each thread's identity is its own. */
struct cred_thread {
	uint64_t dir;
	uint32_t uid;
	int errors;
};

static void *cred_worker(void *arg)
{
	struct cred_thread *t = arg;
	struct orfa_cred cr;

	memset(&cr, 0, sizeof(cr));
	cr.uid = t->uid;
	cr.gid = t->uid;
	for (int i = 0; i < 200; i++) {
		char name[32];
		struct orfa_entry e;

		snprintf(name, sizeof(name), "u%u-%d", t->uid, i);
		if (ops->mkdir(be, &cr, t->dir, name, (uint32_t)strlen(name),
			       0755, &e) != 0 ||
		    e.attr.uid != t->uid || e.attr.gid != t->uid)
			t->errors++;
		else
			forget1(e.nodeid);
	}
	return NULL;
}

START_TEST(test_cred_threads)
{
	struct cred_thread t[4];
	pthread_t th[4];
	uint64_t pub;

	make_dir(exp_dir, "pub", 0777);
	pub = must_lk(1, "pub");
	for (int i = 0; i < 4; i++) {
		t[i].dir = pub;
		t[i].uid = 1000 + (uint32_t)i;
		t[i].errors = 0;
		ck_assert_int_eq(
		    pthread_create(&th[i], NULL, cred_worker, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(t[i].errors, 0);
	}
	assert_identity_restored();
	forget1(pub);
}
END_TEST

/* ---- resources ---------------------------------------------------------- */

START_TEST(test_no_fd_leak)
{
	struct orfa_entry e;
	struct orfa_read_out out;
	char scratch[8];
	void *fh = NULL, *dh = NULL;
	int before;
	struct dcollect c = {0};

	orfa_backend_destroy(be);
	be = NULL;
	before = count_fds();
	ck_assert_int_eq(backend_native_create(exp_dir, &be), 0);
	ck_assert_int_eq(do_create(&root_cr, 1, "f", 0644, O_RDWR, &e, &fh), 0);
	ck_assert_uint_eq(write_str(fh, e.nodeid, 0, "x", 0), 1);
	ck_assert_int_eq(ops->read(be, e.nodeid, fh, 0, 1, scratch, &out), 0);
	ops->release(be, e.nodeid, fh);
	out.release(out.hold);
	ck_assert_int_eq(ops->opendir(be, &root_cr, 1, 0, &dh), 0);
	ck_assert_int_eq(ops->readdir(be, &root_cr, 1, dh, 0, 1, dfill, &c), 0);
	for (int i = 0; i < c.nids; i++)
		forget1(c.ids[i]);
	dcollect_free(&c);
	ops->releasedir(be, 1, dh);
	/* e's node is left for destroy to drop. */
	orfa_backend_destroy(be);
	be = NULL;
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

static Suite *native_suite(void)
{
	Suite *s = suite_create("backend_native");
	TCase *tc = tcase_create("ops");
	TCase *tk = tcase_create("containment");
	TCase *tu = tcase_create("credentials");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_root_getattr);
	tcase_add_test(tc, test_create_bad_root);
	tcase_add_test(tc, test_lookup_counts);
	tcase_add_test(tc, test_hardlinks);
	tcase_add_test(tc, test_mkdir_rmdir_unlink);
	tcase_add_test(tc, test_mknod_symlink_readlink);
	tcase_add_test(tc, test_rename);
	tcase_add_test(tc, test_create_open_write_read);
	tcase_add_test(tc, test_read_sendfile);
	tcase_add_test(tc, test_unlinked_while_open);
	tcase_add_test(tc, test_setattr);
	tcase_add_test(tc, test_xattr);
	tcase_add_test(tc, test_statfs_access);
	tcase_add_test(tc, test_fallocate_seek_data_hole);
	tcase_add_test(tc, test_readdir_10000_cookies);
	tcase_add_test(tc, test_readdirplus);
	tcase_add_test(tc, test_no_fd_leak);
	tcase_add_test(tc, test_concurrent_lookup_forget);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(tk, setup, teardown);
	tcase_add_test(tk, test_name_checks);
	tcase_add_test(tk, test_dot_dotdot);
	tcase_add_test(tk, test_symlink_escape);
	tcase_add_test(tk, test_moved_out_dotdot);
	tcase_add_test(tk, test_crafted_ids);
	tcase_add_test(tk, test_rename_race);
	suite_add_tcase(s, tk);

	if (geteuid() == 0) {
		tcase_add_checked_fixture(tu, setup, teardown);
		tcase_add_test(tu, test_cred_create_owner);
		tcase_add_test(tu, test_cred_permissions);
		tcase_add_test(tu, test_cred_threads);
		tcase_add_test(tu, test_cred_writer_drops_suid);
		suite_add_tcase(s, tu);
	} else {
		printf("# credential tests skipped: not running as root\n");
	}
	return s;
}

int main(void)
{
	orfa_log_set_level(ORFA_LOG_WARNING);
	return orfa_check_run(native_suite());
}
