/*
 * test_backend_ramfs.c - unit tests of the in-memory backend
 * (server/backend_ramfs*.c) and of the -ENOSYS defaults (backend.c),
 * driven through the backend interface only, as the dispatcher drives it.
 * What both backends must answer alike (names, "." and "..", mkdir/rmdir,
 * links, rename) is in test_backend_contract.c; this file keeps what is
 * ramfs's own or not yet moved there.
 * Each test gets a fresh file system (Check fixture); timestamps are
 * compared for change, never for duration.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <dirent.h>

#include "check_main.h"
#include "backend.h"
#include "log.h"

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE	0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE	0x02
#endif
#ifndef FALLOC_FL_ZERO_RANGE
#define FALLOC_FL_ZERO_RANGE	0x10
#endif

#define CH	65536u
#define GiB	(1ull << 30)
#define ROOT	ORFA_ROOT_NODEID

static struct orfa_backend *be;
static struct orfa_cred rootc, userc, otherc, groupc;

static struct orfa_cred mkcred(uint32_t uid, uint32_t gid, uint32_t umask)
{
	struct orfa_cred c;

	memset(&c, 0, sizeof(c));
	c.uid = uid;
	c.gid = gid;
	c.umask = umask;
	return c;
}

static void setup_limit(uint64_t limit)
{
	rootc = mkcred(0, 0, 022);
	userc = mkcred(1000, 1000, 022);
	otherc = mkcred(2000, 2000, 022);
	/* uid 3000, primary group 3000, member of 1000 and 500 */
	groupc = mkcred(3000, 3000, 022);
	groupc.ngroups = 2;
	groupc.groups[0] = 1000;
	groupc.groups[1] = 500;
	orfa_log_set_level(ORFA_LOG_ERR);	/* over-forget warnings */
	ck_assert_int_eq(backend_ramfs_create(limit, &be), 0);
	ck_assert_ptr_nonnull(be);
	ck_assert_str_eq(be->ops->name, "ramfs");
}

static void setup(void)
{
	setup_limit(0);
}

static void teardown(void)
{
	orfa_backend_destroy(be);
	be = NULL;
}

/* ---- helpers ------------------------------------------------------- */

#define OPS (be->ops)

static int do_lookup(const struct orfa_cred *cr, uint64_t parent,
		     const char *name, struct orfa_entry *e)
{
	return OPS->lookup(be, cr, parent, name, (uint32_t)strlen(name), e);
}

static int do_mknod(const struct orfa_cred *cr, uint64_t parent,
		    const char *name, uint32_t mode, uint64_t rdev,
		    struct orfa_entry *e)
{
	return OPS->mknod(be, cr, parent, name, (uint32_t)strlen(name), mode,
			  rdev, e);
}

static int do_mkdir(const struct orfa_cred *cr, uint64_t parent,
		    const char *name, uint32_t mode, struct orfa_entry *e)
{
	return OPS->mkdir(be, cr, parent, name, (uint32_t)strlen(name), mode,
			  e);
}

static int do_unlink(const struct orfa_cred *cr, uint64_t parent,
		     const char *name)
{
	return OPS->unlink(be, cr, parent, name, (uint32_t)strlen(name));
}

static int do_rmdir(const struct orfa_cred *cr, uint64_t parent,
		    const char *name)
{
	return OPS->rmdir(be, cr, parent, name, (uint32_t)strlen(name));
}

static int do_rename(const struct orfa_cred *cr, uint64_t p1, const char *n1,
		     uint64_t p2, const char *n2, uint32_t flags)
{
	return OPS->rename(be, cr, p1, n1, (uint32_t)strlen(n1), p2, n2,
			   (uint32_t)strlen(n2), flags);
}

static int do_link(const struct orfa_cred *cr, uint64_t node, uint64_t parent,
		   const char *name, struct orfa_entry *e)
{
	return OPS->link(be, cr, node, parent, name, (uint32_t)strlen(name),
			 e);
}

static int do_symlink(const struct orfa_cred *cr, uint64_t parent,
		      const char *name, const char *target,
		      struct orfa_entry *e)
{
	return OPS->symlink(be, cr, parent, name, (uint32_t)strlen(name),
			    target, (uint32_t)strlen(target), e);
}

static int do_create(const struct orfa_cred *cr, uint64_t parent,
		     const char *name, uint32_t mode, uint32_t flags,
		     struct orfa_entry *e, void **fh)
{
	return OPS->create(be, cr, parent, name, (uint32_t)strlen(name),
			   mode, flags, e, fh);
}

/* A regular file (mode as given, before umask), returns its node id. */
static uint64_t mkfile(const struct orfa_cred *cr, uint64_t parent,
		       const char *name, uint32_t mode)
{
	struct orfa_entry e;

	ck_assert_int_eq(do_mknod(cr, parent, name, S_IFREG | mode, 0, &e), 0);
	return e.nodeid;
}

static uint64_t mkdirid(const struct orfa_cred *cr, uint64_t parent,
			const char *name, uint32_t mode)
{
	struct orfa_entry e;

	ck_assert_int_eq(do_mkdir(cr, parent, name, mode, &e), 0);
	return e.nodeid;
}

static void *do_open(const struct orfa_cred *cr, uint64_t node, uint32_t flags)
{
	void *fh = NULL;

	ck_assert_int_eq(OPS->open(be, cr, node, flags, &fh, NULL), 0);
	return fh;
}

static int64_t do_write(const struct orfa_cred *cr, uint64_t node, void *fh,
			uint64_t off, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };
	struct orfa_attr a;
	uint64_t written = 0;
	int r;

	r = OPS->write(be, cr, node, fh, off, &iov, 1, 0, &written, &a);
	return r ? r : (int64_t)written;
}

/* Read and gather into dst, giving back any hold; returns bytes read or
 * a negative errno.  *zc is set when the data was not in buf. */
static int64_t do_read_zc(uint64_t node, void *fh, uint64_t off,
			  uint32_t size, void *dst, int *zc)
{
	struct orfa_read_out out;
	void *buf = malloc(size ? size : 1);
	size_t pos = 0;
	int r;

	ck_assert_ptr_nonnull(buf);
	memset(&out, 0x5a, sizeof(out));
	r = OPS->read(be, node, fh, off, size, buf, &out);
	if (r) {
		free(buf);
		return r;
	}
	ck_assert_int_eq(out.fd, -1);
	ck_assert_int_le(out.iovcnt, ORFA_READ_MAX_IOV);
	for (int i = 0; i < out.iovcnt; i++) {
		memcpy((char *)dst + pos, out.iov[i].iov_base,
		       out.iov[i].iov_len);
		pos += out.iov[i].iov_len;
		if (zc && out.iov[i].iov_base != buf)
			*zc = 1;
	}
	ck_assert_uint_eq(pos, out.len);
	if (out.release)
		out.release(out.hold);
	free(buf);
	return (int64_t)pos;
}

static int64_t do_read(uint64_t node, void *fh, uint64_t off, uint32_t size,
		       void *dst)
{
	return do_read_zc(node, fh, off, size, dst, NULL);
}

static struct orfa_attr getattr(uint64_t node)
{
	struct orfa_attr a;

	ck_assert_int_eq(OPS->getattr(be, &rootc, node, NULL, &a), 0);
	return a;
}

static int do_setattr(const struct orfa_cred *cr, uint64_t node,
		      struct orfa_setattr_req *in, struct orfa_attr *a)
{
	struct orfa_attr tmp;

	in->nodeid = node;
	return OPS->setattr(be, cr, node, NULL, in, a ? a : &tmp);
}

static int do_chmod(const struct orfa_cred *cr, uint64_t node, uint32_t mode)
{
	struct orfa_setattr_req in = { .valid = ORFA_SET_MODE, .mode = mode };

	return do_setattr(cr, node, &in, NULL);
}

static int do_chown(const struct orfa_cred *cr, uint64_t node, int64_t uid,
		    int64_t gid)
{
	struct orfa_setattr_req in = { 0 };

	if (uid >= 0) {
		in.valid |= ORFA_SET_UID;
		in.uid = (uint32_t)uid;
	}
	if (gid >= 0) {
		in.valid |= ORFA_SET_GID;
		in.gid = (uint32_t)gid;
	}
	return do_setattr(cr, node, &in, NULL);
}

static int do_truncate(const struct orfa_cred *cr, uint64_t node,
		       uint64_t size)
{
	struct orfa_setattr_req in = { .valid = ORFA_SET_SIZE, .size = size };

	return do_setattr(cr, node, &in, NULL);
}

/* Set all three times to a fixed old value, so a change is visible. */
static void set_old_times(uint64_t node)
{
	struct orfa_setattr_req in = {
		.valid = ORFA_SET_ATIME | ORFA_SET_MTIME | ORFA_SET_CTIME,
		.atime = 1000, .mtime = 1000, .ctime = 1000,
		.atime_nsec = 1, .mtime_nsec = 1, .ctime_nsec = 1,
	};

	ck_assert_int_eq(do_setattr(&rootc, node, &in, NULL), 0);
}

static int is_old(int64_t sec, uint32_t nsec)
{
	return sec == 1000 && nsec == 1;
}

static int do_fallocate(uint64_t node, void *fh, uint32_t mode, uint64_t off,
			uint64_t len)
{
	struct orfa_attr a;

	return OPS->fallocate(be, &rootc, node, fh, mode, off, len, &a);
}

static int do_lseek(uint64_t node, uint64_t off, uint32_t whence,
		    uint64_t *res)
{
	return OPS->lseek(be, node, NULL, off, whence, res);
}

static void fill_pattern(unsigned char *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)((seed + i) * 2654435761u >> 13);
}

static int all_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

static uint64_t bfree(void)
{
	struct orfa_statfs_out s;

	ck_assert_int_eq(OPS->statfs(be, ROOT, &s), 0);
	return s.bfree;
}

/* Collect readdir results. */
struct rd_ent {
	char name[256];
	uint64_t ino, cookie, nodeid;
	uint32_t type;
};

struct rd_ctx {
	int max;		/* accept this many, then refuse */
	int n;			/* accepted in this call */
	int refused;
	uint64_t last;		/* cookie of the last accepted entry */
	struct rd_ent *ents;
	int count, cap;
};

static int rd_fill(void *vctx, const char *name, uint32_t namelen,
		   uint32_t type, uint64_t ino, uint64_t next_cookie,
		   const struct orfa_entry *e)
{
	struct rd_ctx *c = vctx;
	struct rd_ent *d;

	if (c->n >= c->max) {
		/* what the dispatcher does with an entry that did not fit */
		if (e && e->nodeid)
			be->ops->forget(be, e->nodeid, 1);
		c->refused++;
		return 1;
	}
	if (c->count == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->ents = realloc(c->ents, c->cap * sizeof(*c->ents));
		ck_assert_ptr_nonnull(c->ents);
	}
	d = &c->ents[c->count++];
	ck_assert_uint_lt(namelen, sizeof(d->name));
	memcpy(d->name, name, namelen);
	d->name[namelen] = '\0';
	d->ino = ino;
	d->cookie = next_cookie;
	d->type = type;
	d->nodeid = e ? e->nodeid : 0;
	if (e)
		ck_assert_uint_eq(e->attr.ino, ino);
	c->n++;
	c->last = next_cookie;
	return 0;
}

/* One readdir call accepting at most max entries from cookie. */
static int rd_call(uint64_t dir, void *dh, uint64_t cookie, int plus, int max,
		   struct rd_ctx *c)
{
	c->max = max;
	c->n = 0;
	return OPS->readdir(be, &rootc, dir, dh, cookie, plus, rd_fill, c);
}

/* ---- defaults (backend.c) ------------------------------------------ */

START_TEST(test_defaults_enosys)
{
	struct orfa_backend_ops ops;
	struct orfa_backend dummy = { &ops };
	struct orfa_entry e;
	struct orfa_attr a;
	struct orfa_statfs_out s;
	struct orfa_read_out out;
	struct orfa_setattr_req in = { 0 };
	void *fh = NULL;
	char buf[8];
	size_t len;
	uint64_t u;

	memset(&ops, 0, sizeof(ops));
	orfa_backend_fill_defaults(&ops);
	ck_assert_ptr_nonnull(ops.name);
	ck_assert_int_eq(ops.lookup(&dummy, &rootc, 1, "a", 1, &e), -ENOSYS);
	ck_assert_int_eq(ops.getattr(&dummy, &rootc, 1, NULL, &a), -ENOSYS);
	ck_assert_int_eq(ops.setattr(&dummy, &rootc, 1, NULL, &in, &a),
			 -ENOSYS);
	ck_assert_int_eq(ops.readlink(&dummy, &rootc, 1, buf, 8, &len),
			 -ENOSYS);
	ck_assert_int_eq(ops.mknod(&dummy, &rootc, 1, "a", 1, 0, 0, &e),
			 -ENOSYS);
	ck_assert_int_eq(ops.mkdir(&dummy, &rootc, 1, "a", 1, 0, &e), -ENOSYS);
	ck_assert_int_eq(ops.unlink(&dummy, &rootc, 1, "a", 1), -ENOSYS);
	ck_assert_int_eq(ops.rmdir(&dummy, &rootc, 1, "a", 1), -ENOSYS);
	ck_assert_int_eq(ops.symlink(&dummy, &rootc, 1, "a", 1, "b", 1, &e),
			 -ENOSYS);
	ck_assert_int_eq(ops.rename(&dummy, &rootc, 1, "a", 1, 1, "b", 1, 0),
			 -ENOSYS);
	ck_assert_int_eq(ops.link(&dummy, &rootc, 2, 1, "b", 1, &e), -ENOSYS);
	ck_assert_int_eq(ops.open(&dummy, &rootc, 1, 0, &fh, &a), -ENOSYS);
	ck_assert_int_eq(ops.create(&dummy, &rootc, 1, "a", 1, 0, 0, &e, &fh),
			 -ENOSYS);
	ck_assert_int_eq(ops.read(&dummy, 1, NULL, 0, 8, buf, &out), -ENOSYS);
	ck_assert_int_eq(ops.write(&dummy, &rootc, 1, NULL, 0, NULL, 0, 0, &u,
				   &a), -ENOSYS);
	ck_assert_int_eq(ops.flush(&dummy, 1, NULL), -ENOSYS);
	ck_assert_int_eq(ops.fsync(&dummy, 1, NULL, 0), -ENOSYS);
	ck_assert_int_eq(ops.opendir(&dummy, &rootc, 1, 0, &fh), -ENOSYS);
	ck_assert_int_eq(ops.readdir(&dummy, &rootc, 1, NULL, 0, 0, rd_fill,
				     NULL), -ENOSYS);
	ck_assert_int_eq(ops.fsyncdir(&dummy, 1, NULL, 0), -ENOSYS);
	ck_assert_int_eq(ops.statfs(&dummy, 1, &s), -ENOSYS);
	ck_assert_int_eq(ops.setxattr(&dummy, &rootc, 1, "user.a", "", 0, 0),
			 -ENOSYS);
	ck_assert_int_eq(ops.getxattr(&dummy, &rootc, 1, "user.a", buf, 8,
				      &len), -ENOSYS);
	ck_assert_int_eq(ops.listxattr(&dummy, &rootc, 1, buf, 8, &len),
			 -ENOSYS);
	ck_assert_int_eq(ops.removexattr(&dummy, &rootc, 1, "user.a"),
			 -ENOSYS);
	ck_assert_int_eq(ops.access(&dummy, &rootc, 1, 0), -ENOSYS);
	ck_assert_int_eq(ops.fallocate(&dummy, &rootc, 1, NULL, 0, 0, 1, &a),
			 -ENOSYS);
	ck_assert_int_eq(ops.lseek(&dummy, 1, NULL, 0, SEEK_DATA, &u),
			 -ENOSYS);
	ck_assert_int_eq(ops.copy_file_range(&dummy, &rootc, 1, NULL, 0, 2,
					     NULL, 0, 1, 0, &u, &a), -ENOSYS);
	/* void slots are harmless no-ops */
	ops.forget(&dummy, 1, 1);
	ops.release(&dummy, 1, NULL);
	ops.releasedir(&dummy, 1, NULL);
	ops.destroy(&dummy);
}
END_TEST

START_TEST(test_defaults_keep_filled_slots)
{
	struct orfa_backend_ops ops = *be->ops;

	orfa_backend_fill_defaults(&ops);
	ck_assert_ptr_eq(ops.lookup, be->ops->lookup);
	ck_assert_ptr_eq(ops.readdir, be->ops->readdir);
	ck_assert_str_eq(ops.name, "ramfs");
}
END_TEST

/* ---- nodes ------------------------------------------------------------- */

START_TEST(test_root_attributes)
{
	struct orfa_attr a = getattr(ROOT);

	ck_assert_uint_eq(a.ino, ROOT);
	ck_assert(S_ISDIR(a.mode));
	ck_assert_uint_eq(a.mode & 07777, 0755);
	ck_assert_uint_eq(a.nlink, 2);
	ck_assert_uint_eq(a.uid, geteuid());
	ck_assert_uint_eq(a.blksize, 4096);
}
END_TEST

/* Lookup counts and FORGET: test_backend_contract.c; here: a freed
 * node's slot is reused with a new generation, so the old id stays
 * stale and never reaches the new node. */
START_TEST(test_lookup_counts_and_forget)
{
	struct orfa_entry e, e2;
	struct orfa_attr a;
	uint64_t id = mkfile(&rootc, ROOT, "f", 0644);	/* 1 reference */

	ck_assert_uint_ge(id, 2);
	ck_assert_int_eq(do_lookup(&rootc, ROOT, "f", &e), 0);	/* 2 */
	ck_assert_int_eq(do_unlink(&rootc, ROOT, "f"), 0);
	OPS->forget(be, id, 2);
	ck_assert_int_eq(OPS->getattr(be, &rootc, id, NULL, &a), -ESTALE);
	ck_assert_int_eq(do_mknod(&rootc, ROOT, "g", S_IFREG | 0644, 0, &e2),
			 0);
	ck_assert_uint_eq(e2.nodeid & 0xffffffffu, id & 0xffffffffu);
	ck_assert_uint_ne(e2.nodeid, id);
	ck_assert_uint_ne(e2.generation, e.generation);
	ck_assert_uint_eq(e2.attr.ino, e2.nodeid);
	ck_assert_int_eq(OPS->getattr(be, &rootc, id, NULL, &a), -ESTALE);
	ck_assert_int_eq(OPS->getattr(be, &rootc, e2.nodeid, NULL, &a), 0);
}
END_TEST

/* A node that is still linked outlives its lookup references (ramfs's
 * own choice; native frees it and finds the inode again). */
START_TEST(test_forget_linked_node_stays)
{
	struct orfa_entry e;
	uint64_t id = mkfile(&rootc, ROOT, "f", 0644);

	OPS->forget(be, id, 1);
	ck_assert_int_eq(do_lookup(&rootc, ROOT, "f", &e), 0);
	ck_assert_uint_eq(e.nodeid, id);
	ck_assert_uint_eq(getattr(ROOT).nlink, 2);
}
END_TEST

/* ---- file data ------------------------------------------------------- */

/* Writing and reading back: test_backend_contract.c; here the permission
 * ramfs checks itself. */
START_TEST(test_create_write_read)
{
	struct orfa_entry e;
	void *fh;

	ck_assert_int_eq(do_create(&userc, ROOT, "f", 0644, O_RDWR, &e, &fh),
			 -EACCES);	/* root dir is 0755 root's */
}
END_TEST

START_TEST(test_write_gathers_iovecs)
{
	struct iovec iov[3] = { { "abc", 3 }, { "", 0 }, { "defgh", 5 } };
	struct orfa_attr a;
	uint64_t id = mkfile(&rootc, ROOT, "f", 0644), w;
	void *fh = do_open(&rootc, id, O_WRONLY);
	char buf[16];

	ck_assert_int_eq(OPS->write(be, &rootc, id, fh, 65533, iov, 3, 0, &w,
				    &a), 0);
	ck_assert_uint_eq(w, 8);
	ck_assert_uint_eq(a.size, 65541);
	ck_assert_int_eq(do_read(id, NULL, 65533, 16, buf), 8);
	ck_assert_mem_eq(buf, "abcdefgh", 8);
	OPS->release(be, id, fh);
}
END_TEST

START_TEST(test_truncate_grow_shrink)
{
	unsigned char wbuf[150000], rbuf[300000];
	uint64_t id = mkfile(&rootc, ROOT, "f", 0644);
	struct orfa_attr a;

	fill_pattern(wbuf, sizeof(wbuf), 7);
	ck_assert_int_eq(do_write(&rootc, id, NULL, 0, wbuf, sizeof(wbuf)),
			 sizeof(wbuf));
	a = getattr(id);
	ck_assert_uint_ge(a.blocks * 512, sizeof(wbuf));
	/* shrink into the middle of a chunk, then grow again: the cut
	 * part must read back as zeros */
	ck_assert_int_eq(do_truncate(&rootc, id, 70000), 0);
	ck_assert_uint_eq(getattr(id).size, 70000);
	ck_assert_uint_lt(getattr(id).blocks, a.blocks);
	ck_assert_int_eq(do_truncate(&rootc, id, 300000), 0);
	ck_assert_int_eq(do_read(id, NULL, 0, sizeof(rbuf), rbuf), 300000);
	ck_assert_mem_eq(rbuf, wbuf, 70000);
	ck_assert(all_zero(rbuf + 70000, 300000 - 70000));
	/* growing allocates nothing */
	ck_assert_uint_le(getattr(id).blocks * 512, 2 * CH);
	ck_assert_int_eq(do_truncate(&rootc, id, 0), 0);
	a = getattr(id);
	ck_assert_uint_eq(a.size, 0);
	ck_assert_uint_eq(a.blocks, 0);
	ck_assert_int_eq(do_truncate(&rootc, ROOT, 0), -EISDIR);
	ck_assert_int_eq(do_truncate(&rootc, id, 1ull << 63), -EFBIG);
}
END_TEST

START_TEST(test_small_files_are_small)
{
	uint64_t id = mkfile(&rootc, ROOT, "f", 0644);

	ck_assert_int_eq(do_write(&rootc, id, NULL, 0, "x", 1), 1);
	ck_assert_uint_eq(getattr(id).blocks, 1);	/* 512 bytes */
	ck_assert_int_eq(do_write(&rootc, id, NULL, 3000, "y", 1), 1);
	ck_assert_uint_eq(getattr(id).blocks, 8);	/* grown to 4 KiB */
}
END_TEST

START_TEST(test_sparse_5gib)
{
	uint64_t id = mkfile(&rootc, ROOT, "sparse", 0644);
	uint64_t big = 5 * GiB, res;
	unsigned char rbuf[CH * 2], w1[100], w2[100];
	struct orfa_attr a;

	fill_pattern(w1, sizeof(w1), 3);
	fill_pattern(w2, sizeof(w2), 4);
	ck_assert_int_eq(do_write(&rootc, id, NULL, 1 << 20, w1, 100), 100);
	ck_assert_int_eq(do_write(&rootc, id, NULL, big - 100, w2, 100), 100);
	ck_assert_int_eq(do_write(&rootc, id, NULL, 4 * GiB + 5, "x", 1), 1);
	a = getattr(id);
	ck_assert_uint_eq(a.size, big);
	/* three chunks of data at most, not 5 GiB */
	ck_assert_uint_le(a.blocks * 512, 3 * CH);
	ck_assert_uint_gt(a.blocks, 0);
	/* holes read as zeros, data where written */
	ck_assert_int_eq(do_read(id, NULL, 2 * GiB, sizeof(rbuf), rbuf),
			 sizeof(rbuf));
	ck_assert(all_zero(rbuf, sizeof(rbuf)));
	ck_assert_int_eq(do_read(id, NULL, big - 1000, 2000, rbuf), 1000);
	ck_assert(all_zero(rbuf, 900));
	ck_assert_mem_eq(rbuf + 900, w2, 100);
	ck_assert_int_eq(do_read(id, NULL, 4 * GiB, 10, rbuf), 10);
	ck_assert_int_eq(rbuf[5], 'x');
	ck_assert(all_zero(rbuf, 5));
	/* SEEK_DATA / SEEK_HOLE at chunk granularity */
	ck_assert_int_eq(do_lseek(id, 0, SEEK_DATA, &res), 0);
	ck_assert_uint_eq(res, 1 << 20);
	ck_assert_int_eq(do_lseek(id, 0, SEEK_HOLE, &res), 0);
	ck_assert_uint_eq(res, 0);
	ck_assert_int_eq(do_lseek(id, (1 << 20) + 10, SEEK_DATA, &res), 0);
	ck_assert_uint_eq(res, (1 << 20) + 10);
	ck_assert_int_eq(do_lseek(id, (1 << 20) + 10, SEEK_HOLE, &res), 0);
	ck_assert_uint_eq(res, (1 << 20) + CH);
	ck_assert_int_eq(do_lseek(id, (1 << 20) + CH, SEEK_DATA, &res), 0);
	ck_assert_uint_eq(res, 4 * GiB);
	ck_assert_int_eq(do_lseek(id, 4 * GiB + CH, SEEK_DATA, &res), 0);
	ck_assert_uint_eq(res, big - CH);	/* 5 GiB is chunk-aligned */
	ck_assert_int_eq(do_lseek(id, big - 1, SEEK_HOLE, &res), 0);
	ck_assert_uint_eq(res, big);		/* the virtual hole at EOF */
	ck_assert_int_eq(do_lseek(id, big, SEEK_DATA, &res), -ENXIO);
	ck_assert_int_eq(do_lseek(id, big, SEEK_HOLE, &res), -ENXIO);
	ck_assert_int_eq(do_lseek(id, 0, SEEK_SET, &res), -EINVAL);
	ck_assert_int_eq(do_lseek(ROOT, 0, SEEK_DATA, &res), -EINVAL);
	/* shrinking back below 4 GiB frees the high chunks */
	ck_assert_int_eq(do_truncate(&rootc, id, 2 * GiB), 0);
	ck_assert_uint_le(getattr(id).blocks * 512, CH);
	ck_assert_int_eq(do_lseek(id, (1 << 20) + CH, SEEK_DATA, &res),
			 -ENXIO);
}
END_TEST

START_TEST(test_huge_offsets)
{
	uint64_t id = mkfile(&rootc, ROOT, "f", 0644), res;
	uint64_t off = (1ull << 62) + 12345;
	char buf[8];

	ck_assert_int_eq(do_write(&rootc, id, NULL, off, "abc", 3), 3);
	ck_assert_uint_eq(getattr(id).size, off + 3);
	ck_assert_int_eq(do_read(id, NULL, off - 1, 8, buf), 4);
	ck_assert_mem_eq(buf, "\0abc", 4);
	ck_assert_int_eq(do_lseek(id, 0, SEEK_DATA, &res), 0);
	ck_assert_uint_eq(res, off & ~(uint64_t)(CH - 1));
	ck_assert_int_eq(do_write(&rootc, id, NULL, (1ull << 63) - 2, "abc",
				  3), -EFBIG);
	ck_assert_int_eq(do_write(&rootc, id, NULL, 0, "z", 1), 1);
	ck_assert_int_eq(do_truncate(&rootc, id, 1), 0);
	ck_assert_uint_le(getattr(id).blocks, 1);
}
END_TEST

START_TEST(test_fallocate_modes)
{
	uint64_t id = mkfile(&rootc, ROOT, "f", 0644), res;
	unsigned char buf[4 * CH];
	struct orfa_attr a;
	void *fh = do_open(&rootc, id, O_RDWR);
	void *rfh = do_open(&rootc, id, O_RDONLY);

	/* mode 0: allocate and extend */
	ck_assert_int_eq(do_fallocate(id, fh, 0, 100, 3 * CH), 0);
	a = getattr(id);
	ck_assert_uint_eq(a.size, 100 + 3 * CH);
	ck_assert_uint_eq(a.blocks * 512, 4 * CH);
	ck_assert_int_eq(do_read(id, fh, 0, sizeof(buf), buf), 100 + 3 * CH);
	ck_assert(all_zero(buf, 100 + 3 * CH));
	/* KEEP_SIZE beyond the end: space, no size */
	ck_assert_int_eq(do_fallocate(id, fh, FALLOC_FL_KEEP_SIZE, 10 * CH,
				      2 * CH), 0);
	a = getattr(id);
	ck_assert_uint_eq(a.size, 100 + 3 * CH);
	ck_assert_uint_eq(a.blocks * 512, 6 * CH);
	/* a later truncate up exposes zeros there */
	ck_assert_int_eq(do_truncate(&rootc, id, 12 * CH), 0);
	ck_assert_int_eq(do_read(id, fh, 10 * CH, CH, buf), CH);
	ck_assert(all_zero(buf, CH));
	/* refused modes */
	ck_assert_int_eq(do_fallocate(id, fh, FALLOC_FL_PUNCH_HOLE, 0, 10),
			 -EOPNOTSUPP);
	ck_assert_int_eq(do_fallocate(id, fh, FALLOC_FL_ZERO_RANGE, 0, 10),
			 -EOPNOTSUPP);
	ck_assert_int_eq(do_fallocate(id, fh, 0, 0, 0), -EINVAL);
	ck_assert_int_eq(do_fallocate(id, rfh, 0, 0, 10), -EBADF);
	ck_assert_int_eq(do_fallocate(ROOT, NULL, 0, 0, 10), -EISDIR);
	ck_assert_int_eq(do_fallocate(id, fh, 0, 1ull << 62, 1ull << 62),
			 -EFBIG);
	ck_assert_int_eq(do_lseek(id, 0, SEEK_DATA, &res), 0);
	ck_assert_uint_eq(res, 0);
	OPS->release(be, id, fh);
	OPS->release(be, id, rfh);
}
END_TEST

START_TEST(test_punch_hole)
{
	uint64_t id = mkfile(&rootc, ROOT, "f", 0644), res;
	unsigned char wbuf[4 * CH], rbuf[4 * CH];
	uint32_t ph = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	struct orfa_attr a;

	fill_pattern(wbuf, sizeof(wbuf), 9);
	ck_assert_int_eq(do_write(&rootc, id, NULL, 0, wbuf, sizeof(wbuf)),
			 sizeof(wbuf));
	ck_assert_uint_eq(getattr(id).blocks * 512, 4 * CH);
	/* from inside chunk 0 to inside chunk 2: chunk 1 is freed, the
	 * partial ones zeroed */
	ck_assert_int_eq(do_fallocate(id, NULL, ph, 1000, 2 * CH), 0);
	a = getattr(id);
	ck_assert_uint_eq(a.size, 4 * CH);
	ck_assert_uint_eq(a.blocks * 512, 3 * CH);
	ck_assert_int_eq(do_read(id, NULL, 0, sizeof(rbuf), rbuf),
			 sizeof(rbuf));
	ck_assert_mem_eq(rbuf, wbuf, 1000);
	ck_assert(all_zero(rbuf + 1000, 2 * CH));
	ck_assert_mem_eq(rbuf + 1000 + 2 * CH, wbuf + 1000 + 2 * CH,
			 sizeof(wbuf) - 1000 - 2 * CH);
	ck_assert_int_eq(do_lseek(id, 0, SEEK_HOLE, &res), 0);
	ck_assert_uint_eq(res, CH);
	ck_assert_int_eq(do_lseek(id, CH, SEEK_DATA, &res), 0);
	ck_assert_uint_eq(res, 2 * CH);
	/* a whole chunk within one call */
	ck_assert_int_eq(do_fallocate(id, NULL, ph, 3 * CH, CH), 0);
	ck_assert_uint_eq(getattr(id).blocks * 512, 2 * CH);
	ck_assert_uint_eq(getattr(id).size, 4 * CH);
	/* beyond the end: nothing to do, size unchanged */
	ck_assert_int_eq(do_fallocate(id, NULL, ph, 100 * CH, CH), 0);
	ck_assert_uint_eq(getattr(id).size, 4 * CH);
	/* a small punch inside one chunk */
	ck_assert_int_eq(do_fallocate(id, NULL, ph, 10, 20), 0);
	ck_assert_int_eq(do_read(id, NULL, 0, 40, rbuf), 40);
	ck_assert_mem_eq(rbuf, wbuf, 10);
	ck_assert(all_zero(rbuf + 10, 20));
	ck_assert_mem_eq(rbuf + 30, wbuf + 30, 10);
}
END_TEST

START_TEST(test_read_is_zero_copy_and_stable)
{
	uint64_t id = mkfile(&rootc, ROOT, "f", 0644);
	unsigned char wbuf[3 * CH], snap[3 * CH], other[3 * CH];
	struct orfa_read_out out;
	void *buf = malloc(3 * CH);
	size_t pos = 0;

	fill_pattern(wbuf, sizeof(wbuf), 11);
	fill_pattern(other, sizeof(other), 12);
	ck_assert_int_eq(do_write(&rootc, id, NULL, 0, wbuf, 2 * CH), 2 * CH);
	/* chunk 2 stays a hole: file size 3 chunks */
	ck_assert_int_eq(do_truncate(&rootc, id, 3 * CH), 0);
	ck_assert_int_eq(OPS->read(be, id, NULL, 100, 3 * CH, buf, &out), 0);
	ck_assert_uint_eq(out.len, 3 * CH - 100);
	ck_assert_ptr_nonnull(out.release);
	for (int i = 0; i < out.iovcnt; i++)
		ck_assert_ptr_ne(out.iov[i].iov_base, buf);
	/* the file changes under the pending reply: overwrite, shrink */
	ck_assert_int_eq(do_write(&rootc, id, NULL, 0, other, 3 * CH), 3 * CH);
	ck_assert_int_eq(do_truncate(&rootc, id, 10), 0);
	ck_assert_int_eq(do_unlink(&rootc, ROOT, "f"), 0);
	OPS->forget(be, id, 1);	/* the node is gone now */
	for (int i = 0; i < out.iovcnt; i++) {
		memcpy(snap + pos, out.iov[i].iov_base, out.iov[i].iov_len);
		pos += out.iov[i].iov_len;
	}
	ck_assert_uint_eq(pos, 3 * CH - 100);
	ck_assert_mem_eq(snap, wbuf + 100, 2 * CH - 100);
	ck_assert(all_zero(snap + 2 * CH - 100, CH));
	out.release(out.hold);
	free(buf);
}
END_TEST

START_TEST(test_read_many_segments_falls_back_to_copy)
{
	uint64_t id = mkfile(&rootc, ROOT, "f", 0644);
	size_t n = 100 * CH;
	unsigned char *wbuf = malloc(n), *rbuf = malloc(n);
	int zc = 0;

	fill_pattern(wbuf, n, 13);
	/* every other chunk is data: 100 segments > ORFA_READ_MAX_IOV */
	for (unsigned i = 0; i < 100; i += 2)
		ck_assert_int_eq(do_write(&rootc, id, NULL, (uint64_t)i * CH,
					  wbuf + (size_t)i * CH, CH), CH);
	ck_assert_int_eq(do_truncate(&rootc, id, n), 0);
	ck_assert_int_eq(do_read_zc(id, NULL, 0, (uint32_t)n, rbuf, &zc), n);
	ck_assert_int_eq(zc, 0);	/* copied into the caller's buffer */
	for (unsigned i = 0; i < 100; i++) {
		if (i % 2 == 0)
			ck_assert_mem_eq(rbuf + (size_t)i * CH,
					 wbuf + (size_t)i * CH, CH);
		else
			ck_assert(all_zero(rbuf + (size_t)i * CH, CH));
	}
	/* a smaller read of the same file is zero-copy */
	ck_assert_int_eq(do_read_zc(id, NULL, 0, 8 * CH, rbuf, &zc), 8 * CH);
	ck_assert_int_eq(zc, 1);
	free(wbuf);
	free(rbuf);
}
END_TEST

START_TEST(test_copy_file_range_between_files)
{
	uint64_t a = mkfile(&rootc, ROOT, "a", 0644);
	uint64_t b = mkfile(&rootc, ROOT, "b", 0644), copied;
	size_t n = 5 * CH + 777;
	unsigned char *src = malloc(n), *dst = malloc(3 * n), *ref;
	struct orfa_attr at;
	void *fa = do_open(&rootc, a, O_RDONLY), *fb = do_open(&rootc, b,
							       O_RDWR);
	void *fbr = do_open(&rootc, b, O_RDONLY);

	ref = calloc(1, 3 * n);
	fill_pattern(src, n, 21);
	ck_assert_int_eq(do_write(&rootc, a, NULL, 0, src, n), n);
	/* aligned: whole chunks are shared */
	ck_assert_int_eq(OPS->copy_file_range(be, &rootc, a, fa, 0, b, fb, 0,
					      n, 0, &copied, &at), 0);
	ck_assert_uint_eq(copied, n);
	ck_assert_uint_eq(at.size, n);
	memcpy(ref, src, n);
	/* unaligned, and past the end of the input: short */
	ck_assert_int_eq(OPS->copy_file_range(be, &rootc, a, fa, 1234, b, fb,
					      n + 4321, 10 * n, 0, &copied,
					      &at), 0);
	ck_assert_uint_eq(copied, n - 1234);
	memcpy(ref + n + 4321, src + 1234, n - 1234);
	ck_assert_uint_eq(getattr(b).size, n + 4321 + n - 1234);
	ck_assert_int_eq(do_read(b, NULL, 0, 3 * n, dst), 2 * n + 4321 - 1234);
	ck_assert_mem_eq(dst, ref, 2 * n + 4321 - 1234);
	/* writing the copy leaves the source alone (shared chunks) */
	ck_assert_int_eq(do_write(&rootc, b, fb, 10, "XYZ", 3), 3);
	ck_assert_int_eq(do_read(a, NULL, 0, n, dst), n);
	ck_assert_mem_eq(dst, src, n);
	/* errors (end of input, flags, read-only output: contract suite) */
	ck_assert_int_eq(OPS->copy_file_range(be, &rootc, ROOT, NULL, 0, b,
					      fb, 0, 10, 0, &copied, &at),
			 -EISDIR);
	ck_assert_int_eq(OPS->copy_file_range(be, &otherc, a, NULL, 0, b,
					      NULL, 0, 10, 0, &copied, &at),
			 -EACCES);
	OPS->release(be, a, fa);
	OPS->release(be, b, fb);
	OPS->release(be, b, fbr);
	free(src);
	free(dst);
	free(ref);
}
END_TEST

/* Same file, overlapping ranges: as if the input were read first. */
static void overlap_case(uint64_t off_in, uint64_t off_out, uint64_t len)
{
	size_t n = 6 * CH + 99;
	unsigned char *data = malloc(n), *ref = malloc(2 * n),
		      *got = malloc(2 * n);
	uint64_t id, copied, newsize;
	struct orfa_attr at;
	void *fh;

	id = mkfile(&rootc, ROOT, "ov", 0644);
	fh = do_open(&rootc, id, O_RDWR);
	fill_pattern(data, n, off_in * 7 + off_out);
	ck_assert_int_eq(do_write(&rootc, id, fh, 0, data, n), n);
	memset(ref, 0, 2 * n);
	memcpy(ref, data, n);
	memmove(ref + off_out, data + off_in, len);
	newsize = off_out + len > n ? off_out + len : n;
	ck_assert_int_eq(OPS->copy_file_range(be, &rootc, id, fh, off_in, id,
					      fh, off_out, len, 0, &copied,
					      &at), 0);
	ck_assert_uint_eq(copied, len);
	ck_assert_uint_eq(at.size, newsize);
	ck_assert_int_eq(do_read(id, fh, 0, (uint32_t)(2 * n), got), newsize);
	ck_assert_mem_eq(got, ref, newsize);
	OPS->release(be, id, fh);
	ck_assert_int_eq(do_unlink(&rootc, ROOT, "ov"), 0);
	free(data);
	free(ref);
	free(got);
}

START_TEST(test_copy_file_range_overlapping)
{
	overlap_case(0, 1000, 4 * CH);		/* forward, unaligned */
	overlap_case(1000, 0, 4 * CH);		/* backward, unaligned */
	overlap_case(0, CH, 4 * CH);		/* forward, aligned */
	overlap_case(2 * CH, CH, 4 * CH);	/* backward, aligned */
	overlap_case(100, 3 * CH + 5, 5 * CH);	/* past the end */
}
END_TEST

/* Reading and writing an unlinked open file: test_backend_contract.c;
 * here: the node lives while open, with no lookup reference left. */
START_TEST(test_unlink_while_open)
{
	uint64_t id = mkfile(&rootc, ROOT, "f", 0644);
	struct orfa_attr a;
	void *fh = do_open(&rootc, id, O_RDWR);

	ck_assert_int_eq(do_unlink(&rootc, ROOT, "f"), 0);
	OPS->forget(be, id, 1);
	ck_assert_int_eq(do_write(&rootc, id, fh, 0, "hello", 5), 5);
	ck_assert_int_eq(OPS->getattr(be, &rootc, id, fh, &a), 0);
	ck_assert_uint_eq(a.size, 5);
	OPS->release(be, id, fh);
	ck_assert_int_eq(OPS->getattr(be, &rootc, id, NULL, &a), -ESTALE);
}
END_TEST

/* ---- readdir ----------------------------------------------------------- */

START_TEST(test_readdir_dots_and_types)
{
	uint64_t d = mkdirid(&rootc, ROOT, "d", 0755);
	struct orfa_entry e;
	struct rd_ctx c = { 0 };
	void *dh;

	mkfile(&rootc, d, "file", 0644);
	mkdirid(&rootc, d, "sub", 0755);
	ck_assert_int_eq(do_symlink(&rootc, d, "link", "file", &e), 0);
	ck_assert_int_eq(do_mknod(&rootc, d, "fifo", S_IFIFO | 0644, 0, &e),
			 0);
	ck_assert_int_eq(OPS->opendir(be, &rootc, d, 0, &dh), 0);
	ck_assert_int_eq(rd_call(d, dh, 0, 0, 1000, &c), 0);
	ck_assert_int_eq(c.count, 6);
	ck_assert_str_eq(c.ents[0].name, ".");
	ck_assert_uint_eq(c.ents[0].ino, d);
	ck_assert_uint_eq(c.ents[0].cookie, 1);
	ck_assert_uint_eq(c.ents[0].type, DT_DIR);
	ck_assert_str_eq(c.ents[1].name, "..");
	ck_assert_uint_eq(c.ents[1].ino, ROOT);
	ck_assert_uint_eq(c.ents[1].cookie, 2);
	/* insertion order, increasing cookies */
	ck_assert_str_eq(c.ents[2].name, "file");
	ck_assert_uint_eq(c.ents[2].type, DT_REG);
	ck_assert_str_eq(c.ents[3].name, "sub");
	ck_assert_uint_eq(c.ents[3].type, DT_DIR);
	ck_assert_str_eq(c.ents[4].name, "link");
	ck_assert_uint_eq(c.ents[4].type, DT_LNK);
	ck_assert_str_eq(c.ents[5].name, "fifo");
	ck_assert_uint_eq(c.ents[5].type, DT_FIFO);
	for (int i = 1; i < c.count; i++)
		ck_assert_uint_gt(c.ents[i].cookie, c.ents[i - 1].cookie);
	/* resuming after the last one: end of directory */
	c.count = 0;
	ck_assert_int_eq(rd_call(d, dh, c.last, 0, 1000, &c), 0);
	ck_assert_int_eq(c.count, 0);
	/* resuming after "..": the entries only */
	ck_assert_int_eq(rd_call(d, dh, 2, 0, 1, &c), 0);
	ck_assert_int_eq(c.count, 1);
	ck_assert_str_eq(c.ents[0].name, "file");
	ck_assert_int_eq(c.refused, 1);
	OPS->releasedir(be, d, dh);
	/* readdir of a file, of an unreadable directory */
	ck_assert_int_eq(rd_call(e.nodeid, NULL, 0, 0, 10, &c), -ENOTDIR);
	free(c.ents);
}
END_TEST

START_TEST(test_readdir_removed_directory)
{
	uint64_t d = mkdirid(&rootc, ROOT, "d", 0755);
	struct rd_ctx c = { 0 };
	void *dh;

	ck_assert_int_eq(OPS->opendir(be, &rootc, d, 0, &dh), 0);
	ck_assert_int_eq(do_rmdir(&rootc, ROOT, "d"), 0);
	ck_assert_int_eq(rd_call(d, dh, 0, 0, 10, &c), -ENOENT);
	OPS->releasedir(be, d, dh);
	free(c.ents);
}
END_TEST

static uint32_t rng_state = 12345;

static uint32_t rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

START_TEST(test_readdir_10000_resume_under_changes)
{
	enum { N = 10000 };
	uint64_t d = mkdirid(&rootc, ROOT, "big", 0755);
	static char deleted[N];
	static int seen[N];
	int seen_new[4000] = { 0 }, nnew = 0, calls = 0;
	struct rd_ctx c = { 0 };
	uint64_t cookie = 0;
	struct orfa_entry e;
	char name[32];

	memset(deleted, 0, sizeof(deleted));
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "f%05d", i);
		ck_assert_int_eq(do_mknod(&rootc, d, name, S_IFREG | 0644, 0,
					  &e), 0);
	}
	ck_assert_uint_eq(getattr(d).size, (N + 2) * 20);
	for (;;) {
		int start = c.count;

		ck_assert_int_eq(rd_call(d, NULL, cookie, 0, 97, &c), 0);
		calls++;
		if (c.count == start)
			break;
		for (int i = start; i < c.count; i++) {
			const char *nm = c.ents[i].name;

			if (nm[0] == 'f')
				seen[atoi(nm + 1)]++;
			else if (nm[0] == 'n')
				seen_new[atoi(nm + 1)]++;
		}
		cookie = c.last;
		/* the entry we resume after disappears */
		if (c.ents[c.count - 1].name[0] == 'f') {
			const char *last = c.ents[c.count - 1].name;
			int k = atoi(last + 1);

			ck_assert_int_eq(do_unlink(&rootc, d, last), 0);
			deleted[k] = 1;
		}
		/* and others, listed or not, vanish or appear */
		for (int j = 0; j < 20; j++) {
			int k = (int)(rng() % N);

			if (deleted[k])
				continue;
			snprintf(name, sizeof(name), "f%05d", k);
			ck_assert_int_eq(do_unlink(&rootc, d, name), 0);
			deleted[k] = 1;
		}
		for (int j = 0; j < 15 && nnew < 4000; j++) {
			snprintf(name, sizeof(name), "n%d", nnew++);
			ck_assert_int_eq(do_mknod(&rootc, d, name,
						  S_IFREG | 0644, 0, &e), 0);
		}
		ck_assert_int_lt(calls, 1000);
	}
	for (int i = 0; i < N; i++) {
		if (deleted[i])
			ck_assert_int_le(seen[i], 1);
		else
			ck_assert_msg(seen[i] == 1, "f%05d seen %d times", i,
				      seen[i]);
	}
	/* entries created during the listing come after the cursor: each
	 * seen once at most (here: all, since they go to the end) */
	for (int i = 0; i < nnew; i++)
		ck_assert_int_eq(seen_new[i], 1);
	/* and a fresh listing from 0 with a handle agrees with lookups */
	{
		struct rd_ctx all = { 0 };
		void *dh;
		int live = 0;

		for (int i = 0; i < N; i++)
			live += !deleted[i];
		ck_assert_int_eq(OPS->opendir(be, &rootc, d, 0, &dh), 0);
		cookie = 0;
		for (;;) {
			int start = all.count;

			ck_assert_int_eq(rd_call(d, dh, cookie, 0, 1000, &all),
					 0);
			if (all.count == start)
				break;
			cookie = all.last;
		}
		OPS->releasedir(be, d, dh);
		ck_assert_int_eq(all.count, 2 + live + nnew);
		free(all.ents);
	}
	free(c.ents);
}
END_TEST

/* fill refuses the first entry of the second batch: the backend must give
 * back the references of the rest of that batch itself */
START_TEST(test_readdirplus_refused_mid_batch)
{
	uint64_t d = mkdirid(&rootc, ROOT, "d", 0755);
	uint64_t ids[100];
	struct rd_ctx c = { 0 };
	struct orfa_attr a;
	char name[16];

	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "e%02d", i);
		ids[i] = mkfile(&rootc, d, name, 0644);
		OPS->forget(be, ids[i], 1);
	}
	ck_assert_int_eq(rd_call(d, NULL, 0, 1, 45, &c), 0);
	ck_assert_int_eq(c.count, 45);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "e%02d", i);
		ck_assert_int_eq(do_unlink(&rootc, d, name), 0);
	}
	for (int i = 2; i < 45; i++)
		OPS->forget(be, c.ents[i].nodeid, 1);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(OPS->getattr(be, &rootc, ids[i], NULL, &a),
				 -ESTALE);
	free(c.ents);
}
END_TEST

/* ---- rename ------------------------------------------------------------ */

START_TEST(test_rename_replace_rules)
{
	uint64_t d = mkdirid(&rootc, ROOT, "d", 0755);
	uint64_t victim, f, g;
	struct orfa_entry e;
	struct orfa_attr a;

	mkdirid(&rootc, ROOT, "full", 0755);
	mkfile(&rootc, ROOT, "x", 0644);
	ck_assert_int_eq(do_lookup(&rootc, ROOT, "full", &e), 0);
	mkfile(&rootc, e.nodeid, "inside", 0644);
	victim = mkdirid(&rootc, ROOT, "empty", 0755);
	f = mkfile(&rootc, ROOT, "f", 0644);
	g = mkfile(&rootc, ROOT, "g", 0644);
	/* dir over non-empty dir, file over dir, dir over file */
	ck_assert_int_eq(do_rename(&rootc, ROOT, "d", ROOT, "full", 0),
			 -ENOTEMPTY);
	ck_assert_int_eq(do_rename(&rootc, ROOT, "f", ROOT, "empty", 0),
			 -EISDIR);
	ck_assert_int_eq(do_rename(&rootc, ROOT, "d", ROOT, "f", 0), -ENOTDIR);
	/* into its own subtree, onto itself */
	ck_assert_int_eq(do_rename(&rootc, ROOT, "d", d, "x", 0), -EINVAL);
	ck_assert_int_eq(do_rename(&rootc, ROOT, "full", e.nodeid, "y", 0),
			 -EINVAL);
	/* dir over empty dir: the victim is gone */
	ck_assert_uint_eq(getattr(ROOT).nlink, 5);
	ck_assert_int_eq(do_rename(&rootc, ROOT, "d", ROOT, "empty", 0), 0);
	ck_assert_uint_eq(getattr(ROOT).nlink, 4);
	ck_assert_int_eq(do_lookup(&rootc, ROOT, "empty", &e), 0);
	ck_assert_uint_eq(e.nodeid, d);
	ck_assert_int_eq(do_lookup(&rootc, ROOT, "d", &e), -ENOENT);
	ck_assert_int_eq(OPS->getattr(be, &rootc, victim, NULL, &a), 0);
	ck_assert_uint_eq(a.nlink, 0);
	OPS->forget(be, victim, 1);
	ck_assert_int_eq(OPS->getattr(be, &rootc, victim, NULL, &a), -ESTALE);
	/* file over file */
	ck_assert_int_eq(do_rename(&rootc, ROOT, "f", ROOT, "g", 0), 0);
	ck_assert_int_eq(do_lookup(&rootc, ROOT, "g", &e), 0);
	ck_assert_uint_eq(e.nodeid, f);
	ck_assert_uint_eq(getattr(g).nlink, 0);
	/* same inode under two names: nothing happens */
	ck_assert_int_eq(do_link(&rootc, f, ROOT, "f2", &e), 0);
	ck_assert_int_eq(do_rename(&rootc, ROOT, "g", ROOT, "f2", 0), 0);
	ck_assert_int_eq(do_lookup(&rootc, ROOT, "g", &e), 0);
	ck_assert_int_eq(do_lookup(&rootc, ROOT, "f2", &e), 0);
	ck_assert_uint_eq(getattr(f).nlink, 2);
	ck_assert_int_eq(do_rename(&rootc, ROOT, "g", ROOT, "g", 0), 0);
	ck_assert_int_eq(do_rename(&rootc, ROOT, "g", ROOT, "f2",
				   ORFA_RENAME_NOREPLACE), -EEXIST);
}
END_TEST

START_TEST(test_rename_permissions)
{
	uint64_t ud = mkdirid(&rootc, ROOT, "ud", 0777);
	uint64_t od, sub;
	struct orfa_entry e;

	/* user's directory, other's directory inside a shared one */
	ck_assert_int_eq(do_chown(&rootc, ud, 1000, 1000), 0);
	ck_assert_int_eq(do_chmod(&rootc, ud, 0777), 0);
	od = mkdirid(&otherc, ud, "od", 0755);
	sub = mkdirid(&userc, ud, "sub", 0755);
	mkfile(&userc, ud, "f", 0644);
	/* no write permission on the target directory */
	ck_assert_int_eq(do_rename(&userc, ud, "f", od, "f", 0), -EACCES);
	/* moving a directory elsewhere needs write permission on it */
	ck_assert_int_eq(do_chmod(&userc, sub, 0555), 0);
	ck_assert_int_eq(do_mkdir(&userc, ud, "dest", 0755, &e), 0);
	ck_assert_int_eq(do_rename(&userc, ud, "sub", e.nodeid, "sub", 0),
			 -EACCES);
	ck_assert_int_eq(do_rename(&userc, ud, "sub", ud, "sub3", 0), 0);
	/* a sticky directory protects the others' entries */
	ck_assert_int_eq(do_chmod(&userc, ud, 01777), 0);
	ck_assert_int_eq(do_rename(&groupc, ud, "f", ud, "stolen", 0), -EPERM);
	ck_assert_int_eq(do_rename(&userc, ud, "f", ud, "mine", 0), 0);
}
END_TEST

/* ---- links, symlinks, special files --------------------------------- */

/* Link, unlink, EEXIST, EPERM and link counts: test_backend_contract.c. */
START_TEST(test_hard_links)
{
	uint64_t f = mkfile(&rootc, ROOT, "f", 0644);
	uint64_t d = mkdirid(&rootc, ROOT, "d", 0755);
	struct orfa_entry e;

	set_old_times(f);
	ck_assert_int_eq(do_link(&rootc, f, d, "l1", &e), 0);
	ck_assert(!is_old(e.attr.ctime, e.attr.ctime_nsec));
	ck_assert_int_eq(do_link(&userc, f, d, "x", &e), -EACCES);
}
END_TEST

/* SYMLINK and READLINK rules: test_backend_contract.c; here the
 * permission ramfs checks itself. */
START_TEST(test_symlink_readlink)
{
	struct orfa_entry e;

	ck_assert_int_eq(do_symlink(&userc, ROOT, "l", "x", &e), -EACCES);
}
END_TEST

START_TEST(test_mknod_types)
{
	struct orfa_entry e;

	ck_assert_int_eq(do_mknod(&userc, ROOT, "x", S_IFIFO | 0644, 0, &e),
			 -EACCES);
	ck_assert_int_eq(do_chmod(&rootc, ROOT, 0777), 0);
	ck_assert_int_eq(do_mknod(&userc, ROOT, "fifo", S_IFIFO | 0666, 0, &e),
			 0);
	ck_assert(S_ISFIFO(e.attr.mode));
	ck_assert_uint_eq(e.attr.mode & 0777, 0644);	/* umask 022 */
	ck_assert_uint_eq(e.attr.uid, 1000);
	ck_assert_int_eq(do_mknod(&userc, ROOT, "chr", S_IFCHR | 0644,
				  makedev(1, 3), &e), -EPERM);
	ck_assert_int_eq(do_mknod(&userc, ROOT, "blk", S_IFBLK | 0644,
				  makedev(8, 0), &e), -EPERM);
	ck_assert_int_eq(do_mknod(&rootc, ROOT, "chr", S_IFCHR | 0644,
				  makedev(1, 3), &e), 0);
	ck_assert(S_ISCHR(e.attr.mode));
	ck_assert_uint_eq(e.attr.rdev, makedev(1, 3));
	ck_assert_int_eq(do_mknod(&rootc, ROOT, "blk", S_IFBLK | 0600,
				  makedev(8, 1), &e), 0);
	ck_assert(S_ISBLK(e.attr.mode));
	ck_assert_uint_eq(e.attr.rdev, makedev(8, 1));
	/* special files are opened by the client itself */
	{
		void *fh;

		ck_assert_int_eq(OPS->open(be, &rootc, e.nodeid, O_RDONLY,
					   &fh, NULL), -ENXIO);
	}
}
END_TEST

/* The common rules are in test_backend_contract.c; here what ramfs
 * shows on its own: directory size, a dead directory's "..". */
START_TEST(test_mkdir_rmdir_unlink)
{
	uint64_t d = mkdirid(&rootc, ROOT, "d", 0755);
	struct orfa_entry e;
	struct orfa_attr a;

	ck_assert_uint_eq(getattr(d).size, 40);
	ck_assert_int_eq(do_rmdir(&rootc, ROOT, "d"), 0);
	ck_assert_int_eq(do_lookup(&rootc, d, "..", &e), -ENOENT);
	OPS->forget(be, d, 1);
	ck_assert_int_eq(OPS->getattr(be, &rootc, d, NULL, &a), -ESTALE);
}
END_TEST

/* ---- permissions ------------------------------------------------------ */

START_TEST(test_permission_checks)
{
	uint64_t priv, f, shared;
	struct orfa_entry e;
	char buf[8];
	void *fh;

	ck_assert_int_eq(do_chmod(&rootc, ROOT, 0777), 0);
	priv = mkdirid(&userc, ROOT, "priv", 0700);
	f = mkfile(&userc, priv, "f", 0600);
	shared = mkfile(&userc, ROOT, "shared", 0640);
	/* no search permission on priv */
	ck_assert_int_eq(do_lookup(&otherc, priv, "f", &e), -EACCES);
	ck_assert_int_eq(do_mknod(&otherc, priv, "g", S_IFREG | 0644, 0, &e),
			 -EACCES);
	ck_assert_int_eq(do_lookup(&userc, priv, "f", &e), 0);
	/* search but no write */
	ck_assert_int_eq(do_chmod(&userc, priv, 0755), 0);
	ck_assert_int_eq(do_lookup(&otherc, priv, "f", &e), 0);
	ck_assert_int_eq(do_mknod(&otherc, priv, "g", S_IFREG | 0644, 0, &e),
			 -EACCES);
	ck_assert_int_eq(do_unlink(&otherc, priv, "f"), -EACCES);
	/* file modes: other has nothing, group reads via supplementary
	 * groups */
	ck_assert_int_eq(OPS->open(be, &otherc, f, O_RDONLY, &fh, NULL),
			 -EACCES);
	ck_assert_int_eq(OPS->open(be, &otherc, shared, O_RDONLY, &fh, NULL),
			 -EACCES);
	ck_assert_int_eq(OPS->open(be, &groupc, shared, O_RDONLY, &fh, NULL),
			 0);
	OPS->release(be, shared, fh);
	ck_assert_int_eq(OPS->open(be, &groupc, shared, O_RDWR, &fh, NULL),
			 -EACCES);
	ck_assert_int_eq(OPS->open(be, &groupc, shared, O_RDONLY | O_TRUNC,
				   &fh, NULL), -EACCES);
	/* the owner class is used even if it grants less */
	ck_assert_int_eq(do_chmod(&userc, shared, 0066), 0);
	ck_assert_int_eq(OPS->open(be, &userc, shared, O_RDONLY, &fh, NULL),
			 -EACCES);
	/* root: anything but executing what nobody may execute */
	ck_assert_int_eq(OPS->open(be, &rootc, shared, O_RDWR, &fh, NULL), 0);
	OPS->release(be, shared, fh);
	ck_assert_int_eq(OPS->access(be, &rootc, shared, X_OK), -EACCES);
	ck_assert_int_eq(do_chmod(&userc, shared, 0010), 0);
	ck_assert_int_eq(OPS->access(be, &rootc, shared, X_OK), 0);
	ck_assert_int_eq(OPS->access(be, &rootc, priv, X_OK | W_OK | R_OK), 0);
	/* access() */
	ck_assert_int_eq(OPS->access(be, &otherc, priv, R_OK | X_OK), 0);
	ck_assert_int_eq(OPS->access(be, &otherc, priv, W_OK), -EACCES);
	ck_assert_int_eq(OPS->access(be, &otherc, f, F_OK), 0);
	ck_assert_int_eq(OPS->access(be, &otherc, f, 8), -EINVAL);
	ck_assert_int_eq(OPS->access(be, &otherc, 999, F_OK), -ESTALE);
	/* setattr size without a handle needs write permission */
	ck_assert_int_eq(do_truncate(&otherc, f, 0), -EACCES);
	/* readdir of an unreadable directory without a handle */
	{
		struct rd_ctx c = { 0 };

		ck_assert_int_eq(do_chmod(&userc, priv, 0311), 0);
		c.max = 10;
		ck_assert_int_eq(OPS->readdir(be, &otherc, priv, NULL, 0, 0,
					      rd_fill, &c), -EACCES);
		ck_assert_int_eq(OPS->opendir(be, &otherc, priv, 0, &fh),
				 -EACCES);
		free(c.ents);
	}
	(void)buf;
}
END_TEST

START_TEST(test_sticky_directory)
{
	uint64_t tmp = mkdirid(&rootc, ROOT, "tmp", 01777);
	uint64_t mine;
	struct orfa_entry e;

	ck_assert_uint_eq(getattr(tmp).mode & 07777, 01755); /* umask 022 */
	ck_assert_int_eq(do_chmod(&rootc, tmp, 01777), 0);
	mine = mkfile(&userc, tmp, "mine", 0666);
	ck_assert_int_eq(do_unlink(&otherc, tmp, "mine"), -EPERM);
	ck_assert_int_eq(do_rename(&otherc, tmp, "mine", tmp, "x", 0), -EPERM);
	mkfile(&otherc, tmp, "theirs", 0666);
	ck_assert_int_eq(do_rename(&userc, tmp, "theirs", tmp, "mine", 0),
			 -EPERM);
	ck_assert_int_eq(do_rename(&otherc, tmp, "theirs", tmp, "mine", 0),
			 -EPERM);
	ck_assert_int_eq(do_mkdir(&userc, tmp, "mydir", 0777, &e), 0);
	ck_assert_int_eq(do_rmdir(&otherc, tmp, "mydir"), -EPERM);
	/* the owner of the file, the owner of the directory, root */
	ck_assert_int_eq(do_unlink(&userc, tmp, "mine"), 0);
	ck_assert_int_eq(do_unlink(&rootc, tmp, "theirs"), 0);
	ck_assert_int_eq(do_rmdir(&userc, tmp, "mydir"), 0);
	ck_assert_int_eq(do_chown(&rootc, tmp, 1000, -1), 0);
	mkfile(&otherc, tmp, "o2", 0644);
	ck_assert_int_eq(do_unlink(&userc, tmp, "o2"), 0);
	(void)mine;
}
END_TEST

START_TEST(test_setgid_directory)
{
	uint64_t d = mkdirid(&rootc, ROOT, "proj", 0777);
	struct orfa_entry e;

	ck_assert_int_eq(do_chown(&rootc, d, 0, 500), 0);
	ck_assert_int_eq(do_chmod(&rootc, d, 02777), 0);
	/* groupc is in group 500, userc is not: both inherit the group */
	ck_assert_int_eq(do_mknod(&groupc, d, "f", S_IFREG | 0664, 0, &e), 0);
	ck_assert_uint_eq(e.attr.gid, 500);
	ck_assert_uint_eq(e.attr.uid, 3000);
	ck_assert_int_eq(do_mknod(&userc, d, "g", S_IFREG | 0664, 0, &e), 0);
	ck_assert_uint_eq(e.attr.gid, 500);
	/* subdirectories inherit group and set-group-ID */
	ck_assert_int_eq(do_mkdir(&userc, d, "sub", 0755, &e), 0);
	ck_assert_uint_eq(e.attr.gid, 500);
	ck_assert(e.attr.mode & S_ISGID);
	ck_assert_int_eq(do_mkdir(&userc, e.nodeid, "subsub", 0755, &e), 0);
	ck_assert_uint_eq(e.attr.gid, 500);
	ck_assert(e.attr.mode & S_ISGID);
	/* a non-member cannot create a set-group-ID executable there */
	ck_assert_int_eq(do_mknod(&userc, d, "x", S_IFREG | 02755, 0, &e), 0);
	ck_assert(!(e.attr.mode & S_ISGID));
	ck_assert_int_eq(do_mknod(&groupc, d, "y", S_IFREG | 02755, 0, &e), 0);
	ck_assert(e.attr.mode & S_ISGID);
	/* outside: the creator's group */
	ck_assert_int_eq(do_chmod(&rootc, ROOT, 0777), 0);
	ck_assert_int_eq(do_mknod(&groupc, ROOT, "z", S_IFREG | 0644, 0, &e),
			 0);
	ck_assert_uint_eq(e.attr.gid, 3000);
}
END_TEST

START_TEST(test_umask_applied)
{
	struct orfa_cred c = rootc;
	struct orfa_entry e;
	void *fh;

	c.umask = 027;
	ck_assert_int_eq(do_create(&c, ROOT, "f", 0666, O_RDWR, &e, &fh), 0);
	ck_assert_uint_eq(e.attr.mode & 07777, 0640);
	OPS->release(be, e.nodeid, fh);
	ck_assert_int_eq(do_mkdir(&c, ROOT, "d", 0777, &e), 0);
	ck_assert_uint_eq(e.attr.mode & 07777, 0750);
	ck_assert_int_eq(do_mknod(&c, ROOT, "p", S_IFIFO | 0666, 0, &e), 0);
	ck_assert_uint_eq(e.attr.mode & 07777, 0640);
	c.umask = 0;
	ck_assert_int_eq(do_mkdir(&c, ROOT, "d2", 01777, &e), 0);
	ck_assert_uint_eq(e.attr.mode & 07777, 01777);
	/* symlinks ignore the umask */
	c.umask = 0777;
	ck_assert_int_eq(do_symlink(&c, ROOT, "l", "t", &e), 0);
	ck_assert_uint_eq(e.attr.mode & 07777, 0777);
}
END_TEST

START_TEST(test_chmod_rules)
{
	uint64_t f;
	struct orfa_attr a;

	ck_assert_int_eq(do_chmod(&rootc, ROOT, 0777), 0);
	f = mkfile(&userc, ROOT, "f", 0644);
	ck_assert_int_eq(do_chmod(&otherc, f, 0777), -EPERM);
	ck_assert_int_eq(do_chmod(&userc, f, 04751), 0);
	a = getattr(f);
	ck_assert_uint_eq(a.mode, S_IFREG | 04751);
	/* set-group-ID by an owner outside the file's group is dropped */
	ck_assert_int_eq(do_chown(&rootc, f, -1, 4242), 0);
	ck_assert_int_eq(do_chmod(&userc, f, 02755), 0);
	ck_assert_uint_eq(getattr(f).mode & 07777, 0755);
	ck_assert_int_eq(do_chmod(&rootc, f, 02755), 0);
	ck_assert_uint_eq(getattr(f).mode & 07777, 02755);
	/* the type bits cannot be changed */
	ck_assert_int_eq(do_chmod(&rootc, f, S_IFDIR | 0700), 0);
	ck_assert(S_ISREG(getattr(f).mode));
}
END_TEST

/* A FUSE client without handle_killpriv sends "kill suid on write" as a
 * SETATTR of the mode from the writer, who need not own the file. */
START_TEST(test_writer_may_drop_suid_only)
{
	uint64_t f;

	ck_assert_int_eq(do_chmod(&rootc, ROOT, 0777), 0);
	f = mkfile(&userc, ROOT, "f", 0644);
	ck_assert_int_eq(do_chmod(&userc, f, 06777), 0);
	/* a writer (mode o+w) may drop the bits, and nothing else */
	ck_assert_int_eq(do_chmod(&otherc, f, 00777), 0);
	ck_assert_uint_eq(getattr(f).mode & 07777, 0777);
	ck_assert_int_eq(do_chmod(&userc, f, 04777), 0);
	ck_assert_int_eq(do_chmod(&otherc, f, 04775), -EPERM);	/* also o-w */
	ck_assert_int_eq(do_chmod(&otherc, f, 06777), -EPERM);	/* adds */
	ck_assert_int_eq(do_chmod(&otherc, f, 04777), -EPERM);	/* no change */
	/* a non-writer may not */
	ck_assert_int_eq(do_chmod(&userc, f, 04755), 0);
	ck_assert_int_eq(do_chmod(&otherc, f, 00755), -EPERM);
	ck_assert_uint_eq(getattr(f).mode & 07777, 04755);
}
END_TEST

START_TEST(test_chown_rules)
{
	uint64_t f, d;

	ck_assert_int_eq(do_chmod(&rootc, ROOT, 0777), 0);
	f = mkfile(&groupc, ROOT, "f", 0644);
	d = mkdirid(&groupc, ROOT, "d", 0755);
	ck_assert_int_eq(do_chmod(&groupc, d, 02755), 0);
	/* only root gives files away */
	ck_assert_int_eq(do_chown(&groupc, f, 1000, -1), -EPERM);
	ck_assert_int_eq(do_chown(&otherc, f, 3000, -1), -EPERM);
	ck_assert_int_eq(do_chown(&groupc, f, 3000, -1), 0);	/* no-op */
	/* the owner may pick one of his groups, not another */
	ck_assert_int_eq(do_chown(&groupc, f, -1, 500), 0);
	ck_assert_uint_eq(getattr(f).gid, 500);
	ck_assert_int_eq(do_chown(&groupc, f, -1, 1000), 0);
	ck_assert_int_eq(do_chown(&groupc, f, -1, 4242), -EPERM);
	ck_assert_int_eq(do_chown(&otherc, f, -1, 2000), -EPERM);
	ck_assert_int_eq(do_chown(&rootc, f, 1000, 4242), 0);
	ck_assert_uint_eq(getattr(f).uid, 1000);
	ck_assert_uint_eq(getattr(f).gid, 4242);
	/* chown clears set-user-ID, and set-group-ID of group executables,
	 * even when done by root */
	ck_assert_int_eq(do_chmod(&rootc, f, 06755), 0);
	ck_assert_int_eq(do_chown(&rootc, f, 2000, -1), 0);
	ck_assert_uint_eq(getattr(f).mode & 07777, 0755);
	ck_assert_int_eq(do_chmod(&rootc, f, 06745), 0);	/* no g+x */
	ck_assert_int_eq(do_chown(&rootc, f, -1, 2000), 0);
	ck_assert_uint_eq(getattr(f).mode & 07777, 02745);
	/* but not on directories */
	ck_assert_int_eq(do_chown(&rootc, d, 0, 0), 0);
	ck_assert(getattr(d).mode & S_ISGID);
}
END_TEST

START_TEST(test_suid_cleared_on_write_and_truncate)
{
	uint64_t f;
	struct orfa_setattr_req in = { .valid = ORFA_SET_KILL_SUIDGID };
	void *fh;

	ck_assert_int_eq(do_chmod(&rootc, ROOT, 0777), 0);
	f = mkfile(&userc, ROOT, "f", 0777);
	ck_assert_int_eq(do_chmod(&userc, f, 06777), 0);
	/* root writes keep them */
	ck_assert_int_eq(do_write(&rootc, f, NULL, 0, "x", 1), 1);
	ck_assert_uint_eq(getattr(f).mode & 07777, 06777);
	/* a non-root write clears both (g+x set) */
	fh = do_open(&otherc, f, O_WRONLY);
	ck_assert_int_eq(do_write(&otherc, f, fh, 0, "x", 1), 1);
	ck_assert_uint_eq(getattr(f).mode & 07777, 0777);
	OPS->release(be, f, fh);
	/* without g+x set-group-ID stays (mandatory locking marker) */
	ck_assert_int_eq(do_chmod(&userc, f, 06767), 0);
	ck_assert_int_eq(do_truncate(&otherc, f, 0), 0);
	ck_assert_uint_eq(getattr(f).mode & 07777, 02767);
	/* explicit kill request */
	ck_assert_int_eq(do_chmod(&userc, f, 06777), 0);
	ck_assert_int_eq(do_setattr(&userc, f, &in, NULL), 0);
	ck_assert_uint_eq(getattr(f).mode & 07777, 0777);
	/* fallocate by non-root too */
	ck_assert_int_eq(do_chmod(&userc, f, 04777), 0);
	fh = do_open(&userc, f, O_RDWR);
	ck_assert_int_eq(OPS->fallocate(be, &userc, f, fh, 0, 0, 10, NULL), 0);
	ck_assert_uint_eq(getattr(f).mode & 07777, 0777);
	OPS->release(be, f, fh);
}
END_TEST

/* ---- timestamps ------------------------------------------------------- */

START_TEST(test_timestamps_change)
{
	uint64_t d = mkdirid(&rootc, ROOT, "d", 0755);
	uint64_t f = mkfile(&rootc, d, "f", 0644);
	struct orfa_entry e;
	struct orfa_attr a;
	char buf[4];

	/* chmod, chown: ctime only */
	set_old_times(f);
	ck_assert_int_eq(do_chmod(&rootc, f, 0600), 0);
	a = getattr(f);
	ck_assert(!is_old(a.ctime, a.ctime_nsec));
	ck_assert(is_old(a.mtime, a.mtime_nsec));
	set_old_times(f);
	ck_assert_int_eq(do_chown(&rootc, f, 5, 5), 0);
	a = getattr(f);
	ck_assert(!is_old(a.ctime, a.ctime_nsec));
	ck_assert(is_old(a.mtime, a.mtime_nsec));
	/* write: mtime and ctime, not atime */
	set_old_times(f);
	ck_assert_int_eq(do_write(&rootc, f, NULL, 0, "abcd", 4), 4);
	a = getattr(f);
	ck_assert(!is_old(a.ctime, a.ctime_nsec));
	ck_assert(!is_old(a.mtime, a.mtime_nsec));
	ck_assert(is_old(a.atime, a.atime_nsec));
	/* read: atime */
	set_old_times(f);
	ck_assert_int_eq(do_read(f, NULL, 0, 4, buf), 4);
	a = getattr(f);
	ck_assert(!is_old(a.atime, a.atime_nsec));
	ck_assert(is_old(a.mtime, a.mtime_nsec));
	/* truncate */
	set_old_times(f);
	ck_assert_int_eq(do_truncate(&rootc, f, 1), 0);
	a = getattr(f);
	ck_assert(!is_old(a.mtime, a.mtime_nsec));
	ck_assert(!is_old(a.ctime, a.ctime_nsec));
	/* link and rename: ctime of the file, mtime+ctime of the dirs */
	set_old_times(f);
	set_old_times(d);
	ck_assert_int_eq(do_link(&rootc, f, d, "f2", &e), 0);
	a = getattr(f);
	ck_assert(!is_old(a.ctime, a.ctime_nsec));
	a = getattr(d);
	ck_assert(!is_old(a.mtime, a.mtime_nsec));
	ck_assert(!is_old(a.ctime, a.ctime_nsec));
	set_old_times(f);
	set_old_times(d);
	ck_assert_int_eq(do_rename(&rootc, d, "f", d, "g", 0), 0);
	ck_assert(!is_old(getattr(f).ctime, getattr(f).ctime_nsec));
	ck_assert(!is_old(getattr(d).mtime, getattr(d).mtime_nsec));
	/* create and unlink in a directory */
	set_old_times(d);
	mkfile(&rootc, d, "h", 0644);
	ck_assert(!is_old(getattr(d).mtime, getattr(d).mtime_nsec));
	set_old_times(d);
	ck_assert_int_eq(do_unlink(&rootc, d, "h"), 0);
	ck_assert(!is_old(getattr(d).mtime, getattr(d).mtime_nsec));
	ck_assert(!is_old(getattr(d).ctime, getattr(d).ctime_nsec));
	/* xattr change */
	set_old_times(f);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, "user.x", "1", 1, 0), 0);
	a = getattr(f);
	ck_assert(!is_old(a.ctime, a.ctime_nsec));
	ck_assert(is_old(a.mtime, a.mtime_nsec));
}
END_TEST

START_TEST(test_timestamps_explicit_and_now)
{
	uint64_t f;
	struct orfa_setattr_req in;
	struct orfa_attr a;

	ck_assert_int_eq(do_chmod(&rootc, ROOT, 0777), 0);
	f = mkfile(&userc, ROOT, "f", 0644);
	/* nanoseconds and 64-bit seconds are kept */
	memset(&in, 0, sizeof(in));
	in.valid = ORFA_SET_ATIME | ORFA_SET_MTIME;
	in.atime = -5;
	in.atime_nsec = 1;
	in.mtime = (int64_t)1 << 40;
	in.mtime_nsec = 999999999;
	ck_assert_int_eq(do_setattr(&userc, f, &in, &a), 0);
	ck_assert_int_eq(a.atime, -5);
	ck_assert_uint_eq(a.atime_nsec, 1);
	ck_assert_int_eq(a.mtime, (int64_t)1 << 40);
	ck_assert_uint_eq(a.mtime_nsec, 999999999);
	a = getattr(f);
	ck_assert_uint_eq(a.mtime_nsec, 999999999);
	in.mtime_nsec = 1000000000;
	ck_assert_int_eq(do_setattr(&userc, f, &in, NULL), -EINVAL);
	/* explicit times: owner or root only */
	in.mtime_nsec = 5;
	ck_assert_int_eq(do_setattr(&otherc, f, &in, NULL), -EPERM);
	ck_assert_int_eq(do_setattr(&rootc, f, &in, NULL), 0);
	/* NOW: write permission suffices */
	memset(&in, 0, sizeof(in));
	in.valid = ORFA_SET_ATIME | ORFA_SET_MTIME | ORFA_SET_ATIME_NOW |
		   ORFA_SET_MTIME_NOW;
	ck_assert_int_eq(do_setattr(&otherc, f, &in, NULL), -EACCES);
	ck_assert_int_eq(do_setattr(&userc, f, &in, &a), 0);
	ck_assert_int_ne(a.mtime, (int64_t)1 << 40);
	ck_assert_int_gt(a.atime, 0);
	ck_assert_int_eq(do_chmod(&userc, f, 0666), 0);
	ck_assert_int_eq(do_setattr(&otherc, f, &in, NULL), 0);
	/* one explicit, one NOW: ownership needed */
	in.valid = ORFA_SET_ATIME | ORFA_SET_MTIME | ORFA_SET_MTIME_NOW;
	ck_assert_int_eq(do_setattr(&otherc, f, &in, NULL), -EPERM);
	/* explicit ctime */
	memset(&in, 0, sizeof(in));
	in.valid = ORFA_SET_CTIME;
	in.ctime = 77;
	in.ctime_nsec = 88;
	ck_assert_int_eq(do_setattr(&rootc, f, &in, &a), 0);
	ck_assert_int_eq(a.ctime, 77);
	ck_assert_uint_eq(a.ctime_nsec, 88);
	in.valid = 1u << 20;
	ck_assert_int_eq(do_setattr(&rootc, f, &in, NULL), -EINVAL);
}
END_TEST

/* ---- xattrs ---------------------------------------------------------- */

START_TEST(test_xattr_limits_and_namespaces)
{
	uint64_t f = mkfile(&rootc, ROOT, "f", 0644);
	static char big[ORFA_MAX_XATTR_VALUE + 1];
	char name[300], buf[64];
	struct orfa_entry e;
	size_t len;

	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, "user.big", big,
				       ORFA_MAX_XATTR_VALUE, 0), 0);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, "user.big", big,
				       ORFA_MAX_XATTR_VALUE + 1, 0), -E2BIG);
	memset(name, 'n', sizeof(name));
	memcpy(name, "user.", 5);
	name[256] = '\0';
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, name, "x", 1, 0),
			 -ERANGE);
	name[255] = '\0';
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, name, "x", 1, 0), 0);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, "", "x", 1, 0), -ERANGE);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, "user.", "x", 1, 0),
			 -EINVAL);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, "user.x", "x", 1, 4),
			 -EINVAL);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f,
				       "system.posix_acl_access", "x", 1, 0),
			 -EOPNOTSUPP);
	ck_assert_int_eq(OPS->getxattr(be, &rootc, f,
				       "system.posix_acl_access", buf,
				       sizeof(buf), &len), -EOPNOTSUPP);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, "other.x", "x", 1, 0),
			 -EOPNOTSUPP);
	/* trusted.*: root only, invisible to others */
	ck_assert_int_eq(OPS->setxattr(be, &userc, f, "trusted.t", "x", 1, 0),
			 -EPERM);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, "trusted.t", "x", 1, 0),
			 0);
	ck_assert_int_eq(OPS->getxattr(be, &userc, f, "trusted.t", buf,
				       sizeof(buf), &len), -ENODATA);
	ck_assert_int_eq(OPS->getxattr(be, &rootc, f, "trusted.t", buf,
				       sizeof(buf), &len), 0);
	ck_assert_int_eq(OPS->removexattr(be, &userc, f, "trusted.t"), -EPERM);
	{
		char list[1024];
		size_t rl, ul;

		ck_assert_int_eq(OPS->listxattr(be, &rootc, f, list,
						sizeof(list), &rl), 0);
		ck_assert(memmem(list, rl, "trusted.t", 10) != NULL);
		ck_assert_int_eq(OPS->listxattr(be, &userc, f, list,
						sizeof(list), &ul), 0);
		ck_assert(memmem(list, ul, "trusted.t", 10) == NULL);
		ck_assert_uint_eq(rl, ul + 10);
	}
	/* security.*: anyone reads, root writes */
	ck_assert_int_eq(OPS->setxattr(be, &userc, f, "security.s", "x", 1, 0),
			 -EPERM);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, "security.s", "y", 1, 0),
			 0);
	ck_assert_int_eq(OPS->getxattr(be, &otherc, f, "security.s", buf,
				       sizeof(buf), &len), 0);
	ck_assert_mem_eq(buf, "y", 1);
	/* user.*: permission bits; regular files and directories only */
	ck_assert_int_eq(OPS->setxattr(be, &otherc, f, "user.o", "x", 1, 0),
			 -EACCES);
	ck_assert_int_eq(OPS->getxattr(be, &otherc, f, "user.big", NULL, 0,
				       &len), 0);
	ck_assert_int_eq(do_chmod(&rootc, f, 0600), 0);
	ck_assert_int_eq(OPS->getxattr(be, &otherc, f, "user.big", NULL, 0,
				       &len), -EACCES);
	ck_assert_int_eq(do_symlink(&rootc, ROOT, "l", "f", &e), 0);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, e.nodeid, "user.x", "x", 1,
				       0), -EPERM);
	ck_assert_int_eq(OPS->getxattr(be, &rootc, e.nodeid, "user.x", buf,
				       sizeof(buf), &len), -ENODATA);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, e.nodeid, "trusted.x", "x",
				       1, 0), 0);
	ck_assert_int_eq(do_mknod(&rootc, ROOT, "p", S_IFIFO | 0666, 0, &e),
			 0);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, e.nodeid, "user.x", "x", 1,
				       0), -EPERM);
	/* sticky directory: only the owner writes user xattrs */
	{
		uint64_t t = mkdirid(&rootc, ROOT, "t", 0777);

		ck_assert_int_eq(do_chmod(&rootc, t, 01777), 0);
		ck_assert_int_eq(OPS->setxattr(be, &userc, t, "user.x", "x", 1,
					       0), -EPERM);
		ck_assert_int_eq(do_chmod(&rootc, t, 0777), 0);
		ck_assert_int_eq(OPS->setxattr(be, &userc, t, "user.x", "x", 1,
					       0), 0);
	}
}
END_TEST

/* ---- statfs and space ------------------------------------------------ */

START_TEST(test_statfs_limit)
{
	struct orfa_statfs_out s, s2;
	uint64_t f = mkfile(&rootc, ROOT, "f", 0644);
	static unsigned char buf[1 << 20];

	ck_assert_int_eq(OPS->statfs(be, ROOT, &s), 0);
	ck_assert_uint_eq(s.bsize, 4096);
	ck_assert_uint_eq(s.frsize, 4096);
	ck_assert_uint_eq(s.blocks, (16u << 20) / 4096);
	ck_assert_uint_eq(s.namemax, 255);
	ck_assert_uint_le(s.bfree, s.blocks);
	ck_assert_uint_eq(s.bavail, s.bfree);
	ck_assert_uint_gt(s.ffree, 0);
	ck_assert_uint_ge(s.files, s.ffree + 2);
	ck_assert_int_eq(do_write(&rootc, f, NULL, 0, buf, sizeof(buf)),
			 sizeof(buf));
	ck_assert_int_eq(OPS->statfs(be, f, &s2), 0);
	ck_assert_uint_le(s2.bfree + 256, s.bfree);
	ck_assert_uint_lt(s2.ffree, s.ffree);
	ck_assert_int_eq(do_truncate(&rootc, f, 0), 0);
	ck_assert_int_eq(OPS->statfs(be, f, &s2), 0);
	ck_assert_uint_eq(s2.bfree, s.bfree);
	ck_assert_int_eq(OPS->statfs(be, 4242, &s2), -ESTALE);
}
END_TEST

START_TEST(test_statfs_unlimited)
{
	struct orfa_statfs_out s;

	ck_assert_int_eq(OPS->statfs(be, ROOT, &s), 0);
	ck_assert_uint_gt(s.blocks, 0);
	ck_assert_uint_gt(s.bfree, 0);
	ck_assert_uint_eq(s.namemax, 255);
}
END_TEST

/* Fill the file system with data, then with names, check that nothing
 * was half done, delete everything; returns bfree afterwards. */
static uint64_t enospc_round(void)
{
	static unsigned char buf[CH];
	uint64_t f, g, total = 0, before;
	struct orfa_entry e;
	int64_t w;
	int nfiles = 0;
	char name[32];

	fill_pattern(buf, sizeof(buf), 5);
	f = mkfile(&rootc, ROOT, "big", 0644);
	/* fill up with data: full writes, maybe one short, then ENOSPC */
	for (int i = 0; i < 100; i++) {
		w = do_write(&rootc, f, NULL, total, buf, sizeof(buf));
		if (w < 0) {
			ck_assert_int_eq(w, -ENOSPC);
			break;
		}
		total += (uint64_t)w;
		ck_assert_uint_eq(getattr(f).size, total);
	}
	ck_assert_uint_gt(total, 512 * 1024);
	ck_assert_uint_lt(total, 1 << 20);
	ck_assert_uint_eq(getattr(f).size, total);
	/* no new chunk fits any more: sizes stay */
	ck_assert_int_eq(do_write(&rootc, f, NULL, 10 << 20, buf, CH),
			 -ENOSPC);
	ck_assert_uint_eq(getattr(f).size, total);
	before = bfree();
	ck_assert_int_eq(do_fallocate(f, NULL, 0, 0, 4 << 20), -ENOSPC);
	ck_assert_uint_eq(getattr(f).size, total);
	ck_assert_uint_eq(bfree(), before);
	/* the data written is intact */
	{
		static unsigned char rbuf[CH];

		ck_assert_int_eq(do_read(f, NULL, 0, CH, rbuf), CH);
		ck_assert_mem_eq(rbuf, buf, CH);
	}
	/* metadata: create until ENOSPC; the failed name is absent */
	for (;;) {
		int r;

		snprintf(name, sizeof(name), "small%d", nfiles);
		r = do_mknod(&rootc, ROOT, name, S_IFREG | 0644, 0, &e);
		if (r) {
			ck_assert_int_eq(r, -ENOSPC);
			break;
		}
		nfiles++;
		ck_assert_int_lt(nfiles, 100000);
	}
	ck_assert_int_gt(nfiles, 10);
	ck_assert_int_eq(do_lookup(&rootc, ROOT, name, &e), -ENOENT);
	ck_assert_int_eq(OPS->setxattr(be, &rootc, f, "user.v", buf, 60000, 0),
			 -ENOSPC);
	ck_assert_int_eq(do_symlink(&rootc, ROOT, "sl", "target", &e),
			 -ENOSPC);
	/* deleting gives the space back: writes succeed again */
	ck_assert_int_eq(do_unlink(&rootc, ROOT, "big"), 0);
	OPS->forget(be, f, 1);
	g = mkfile(&rootc, ROOT, "again", 0644);
	ck_assert_int_eq(do_write(&rootc, g, NULL, 0, buf, sizeof(buf)),
			 sizeof(buf));
	ck_assert_int_eq(do_unlink(&rootc, ROOT, "again"), 0);
	OPS->forget(be, g, 1);
	for (int i = 0; i < nfiles; i++) {
		snprintf(name, sizeof(name), "small%d", i);
		ck_assert_int_eq(do_lookup(&rootc, ROOT, name, &e), 0);
		ck_assert_int_eq(do_unlink(&rootc, ROOT, name), 0);
		OPS->forget(be, e.nodeid, 2);
	}
	return bfree();
}

START_TEST(test_enospc_consistent)
{
	uint64_t b0 = bfree(), b1, b2;

	b1 = enospc_round();
	/* only the node table keeps its grown size (a few blocks) */
	ck_assert_uint_le(b1, b0);
	ck_assert_uint_ge(b1 + 4, b0);
	/* and a second round ends exactly where the first did: no leak */
	b2 = enospc_round();
	ck_assert_uint_eq(b2, b1);
}
END_TEST

START_TEST(test_enospc_copy_and_cow)
{
	static unsigned char buf[4 * CH];
	uint64_t a = mkfile(&rootc, ROOT, "a", 0644);
	uint64_t b = mkfile(&rootc, ROOT, "b", 0644), copied;
	struct orfa_attr at;
	int64_t w;

	fill_pattern(buf, sizeof(buf), 77);
	/* 1 MiB limit: 8 chunks of data fit, not 16 */
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(do_write(&rootc, a, NULL, (uint64_t)i * 4 * CH,
					  buf, sizeof(buf)), sizeof(buf));
	/* shared chunks are charged per file: the copy stops short */
	ck_assert_int_eq(OPS->copy_file_range(be, &rootc, a, NULL, 0, b, NULL,
					      0, 8 * CH, 0, &copied, &at), 0);
	ck_assert_uint_gt(copied, 0);
	ck_assert_uint_lt(copied, 8 * CH);
	ck_assert_uint_eq(at.size, copied);
	/* an unaligned copy that cannot even start */
	w = OPS->copy_file_range(be, &rootc, a, NULL, 1, b, NULL,
				 copied + 7, 2 * CH, 0, &copied, &at);
	ck_assert_int_eq(w, -ENOSPC);
	ck_assert_uint_eq(copied, 0);
}
END_TEST

/* ---- model-based random operations ----------------------------------- */

START_TEST(test_random_ops_match_model)
{
	enum { SPAN = 6 * CH + 4321 };
	static unsigned char model[2 * SPAN], got[2 * SPAN], tmp[SPAN];
	uint64_t id = mkfile(&rootc, ROOT, "m", 0644), size = 0, copied;
	uint32_t ph = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	void *fh = do_open(&rootc, id, O_RDWR);
	struct orfa_attr at;

	rng_state = 777;
	memset(model, 0, sizeof(model));
	for (int step = 0; step < 3000; step++) {
		uint64_t off = rng() % SPAN, len = 1 + rng() % (2 * CH);
		uint32_t op = rng() % 10;

		if (off + len > SPAN)
			len = SPAN - off;
		if (len == 0)
			continue;
		if (op < 4) {
			fill_pattern(tmp, len, step);
			ck_assert_int_eq(do_write(&rootc, id, fh, off, tmp,
						  len), len);
			memcpy(model + off, tmp, len);
			if (off + len > size)
				size = off + len;
		} else if (op < 6) {
			ck_assert_int_eq(do_fallocate(id, fh, ph, off, len), 0);
			memset(model + off, 0, len);
		} else if (op < 7) {
			uint64_t ns = rng() % SPAN;

			ck_assert_int_eq(do_truncate(&rootc, id, ns), 0);
			if (ns < size)
				memset(model + ns, 0, size - ns);
			size = ns;
		} else if (op < 8) {
			ck_assert_int_eq(do_fallocate(id, fh,
						      FALLOC_FL_KEEP_SIZE,
						      off, len), 0);
		} else {
			uint64_t dst = rng() % SPAN;
			uint64_t n = 0;

			if (off < size)
				n = len < size - off ? len : size - off;
			ck_assert_int_eq(OPS->copy_file_range(be, &rootc, id,
					 fh, off, id, fh, dst, len, 0,
					 &copied, &at), 0);
			ck_assert_uint_eq(copied, n);
			memmove(model + dst, model + off, n);
			if (n && dst + n > size)
				size = dst + n;
		}
		if (step % 100 == 99 || step == 2999) {
			ck_assert_uint_eq(getattr(id).size, size);
			ck_assert_int_eq(do_read(id, fh, 0, sizeof(got), got),
					 size);
			ck_assert_msg(memcmp(got, model, size) == 0,
				      "content differs after step %d", step);
		}
	}
	OPS->release(be, id, fh);
}
END_TEST

/* ---- threads ------------------------------------------------------------ */

#define TBLK	16384u
#define TNBLK	64u

struct tctx {
	uint64_t file, dir;
	void *fh;
	int id;
	int errors;
};

static void *t_writer(void *arg)
{
	struct tctx *t = arg;
	unsigned char blk[TBLK];

	for (int it = 0; it < 150; it++) {
		for (unsigned b = (unsigned)t->id; b < TNBLK; b += 4) {
			struct iovec iov = { blk, TBLK };
			uint64_t w, off = (uint64_t)b * TBLK;
			struct orfa_attr a;

			memset(blk, (t->id * 64 + it) & 0xff, TBLK);
			if (OPS->write(be, &rootc, t->file, t->fh, off, &iov,
				       1, 0, &w, &a) || w != TBLK)
				t->errors++;
		}
	}
	return NULL;
}

/* Every block is written whole, so any read of a block (zero-copy, held
 * while the writers go on) must see one byte value throughout. */
static void *t_reader(void *arg)
{
	struct tctx *t = arg;
	static __thread unsigned char buf[TBLK];

	for (int it = 0; it < 3000; it++) {
		struct orfa_read_out out;
		uint64_t b = (uint64_t)(it * 7 + t->id) % TNBLK;
		unsigned char first = 0;
		size_t pos = 0;

		if (OPS->read(be, t->file, (it & 1) ? t->fh : NULL, b * TBLK,
			      TBLK, buf, &out)) {
			t->errors++;
			continue;
		}
		sched_yield();
		for (int i = 0; i < out.iovcnt; i++) {
			const unsigned char *p = out.iov[i].iov_base;

			for (size_t k = 0; k < out.iov[i].iov_len; k++) {
				if (pos == 0 && k == 0)
					first = p[0];
				if (p[k] != first)
					t->errors++;
			}
			pos += out.iov[i].iov_len;
		}
		if (pos != TBLK)
			t->errors++;
		if (out.release)
			out.release(out.hold);
	}
	return NULL;
}

static void *t_namer(void *arg)
{
	struct tctx *t = arg;
	struct orfa_entry e;
	char name[32];

	for (int i = 0; i < 600; i++) {
		snprintf(name, sizeof(name), "t%d-%d", t->id, i);
		if (do_mknod(&rootc, t->dir, name, S_IFREG | 0644, 0, &e))
			t->errors++;
		else
			OPS->forget(be, e.nodeid, 1);
		if (i >= 10) {
			snprintf(name, sizeof(name), "t%d-%d", t->id, i - 10);
			if (i % 3 == 0) {
				char to[32];

				snprintf(to, sizeof(to), "r%d-%d", t->id, i);
				if (do_rename(&rootc, t->dir, name, t->dir, to,
					      0) ||
				    do_unlink(&rootc, t->dir, to))
					t->errors++;
			} else if (do_unlink(&rootc, t->dir, name)) {
				t->errors++;
			}
		}
		/* lookups racing with the other namer's unlinks */
		snprintf(name, sizeof(name), "t%d-%d", 1 - t->id, i);
		if (do_lookup(&rootc, t->dir, name, &e) == 0)
			OPS->forget(be, e.nodeid, 1);
	}
	return NULL;
}

static void *t_lister(void *arg)
{
	struct tctx *t = arg;

	for (int i = 0; i < 60; i++) {
		struct rd_ctx c = { 0 };
		uint64_t cookie = 0;

		for (;;) {
			int start = c.count;

			if (rd_call(t->dir, NULL, cookie, i & 1, 50, &c)) {
				t->errors++;
				break;
			}
			if (c.count == start)
				break;
			cookie = c.last;
		}
		/* cookies strictly increase: no entry listed twice */
		for (int k = 1; k < c.count; k++)
			if (c.ents[k].cookie <= c.ents[k - 1].cookie)
				t->errors++;
		if (i & 1)
			for (int k = 2; k < c.count; k++)
				OPS->forget(be, c.ents[k].nodeid, 1);
		free(c.ents);
	}
	return NULL;
}

START_TEST(test_concurrent_readers_writers_and_names)
{
	struct tctx t[10];
	pthread_t th[10];
	uint64_t file = mkfile(&rootc, ROOT, "shared", 0644);
	uint64_t dir = mkdirid(&rootc, ROOT, "dir", 0755);
	static unsigned char zero[TBLK * TNBLK];
	struct rd_ctx c = { 0 };
	void *fh = do_open(&rootc, file, O_RDWR);

	ck_assert_int_eq(do_write(&rootc, file, fh, 0, zero, sizeof(zero)),
			 sizeof(zero));
	for (int i = 0; i < 10; i++) {
		t[i].file = file;
		t[i].dir = dir;
		t[i].fh = fh;
		t[i].errors = 0;
	}
	for (int i = 0; i < 4; i++) {
		t[i].id = i;
		ck_assert_int_eq(pthread_create(&th[i], NULL, t_writer, &t[i]),
				 0);
	}
	for (int i = 4; i < 6; i++) {
		t[i].id = i;
		ck_assert_int_eq(pthread_create(&th[i], NULL, t_reader, &t[i]),
				 0);
	}
	for (int i = 6; i < 8; i++) {
		t[i].id = i - 6;
		ck_assert_int_eq(pthread_create(&th[i], NULL, t_namer, &t[i]),
				 0);
	}
	for (int i = 8; i < 10; i++) {
		t[i].id = i;
		ck_assert_int_eq(pthread_create(&th[i], NULL, t_lister, &t[i]),
				 0);
	}
	for (int i = 0; i < 10; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(t[i].errors == 0, "thread %d: %d errors", i,
			      t[i].errors);
	}
	ck_assert_uint_eq(getattr(file).size, sizeof(zero));
	/* the final content: each block holds its writer's last value */
	{
		static unsigned char got[TBLK * TNBLK];

		ck_assert_int_eq(do_read(file, fh, 0, sizeof(got), got),
				 sizeof(got));
		for (unsigned b = 0; b < TNBLK; b++)
			ck_assert_uint_eq(got[b * TBLK],
					  ((b % 4) * 64 + 149) & 0xff);
	}
	/* each namer leaves its last 10 names */
	ck_assert_int_eq(rd_call(dir, NULL, 0, 0, 1000, &c), 0);
	ck_assert_int_eq(c.count, 2 + 20);
	ck_assert_uint_eq(getattr(dir).size, 22 * 20);
	free(c.ents);
	OPS->release(be, file, fh);
}
END_TEST

/* ---- suite ------------------------------------------------------------ */

static void setup_16m(void)
{
	setup_limit(16u << 20);
}

static void setup_1m(void)
{
	setup_limit(1u << 20);
}

static Suite *ramfs_suite(void)
{
	Suite *s = suite_create("backend_ramfs");
	TCase *tc = tcase_create("core");
	TCase *lim = tcase_create("limit16m");
	TCase *tiny = tcase_create("limit1m");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_defaults_enosys);
	tcase_add_test(tc, test_defaults_keep_filled_slots);
	tcase_add_test(tc, test_root_attributes);
	tcase_add_test(tc, test_lookup_counts_and_forget);
	tcase_add_test(tc, test_forget_linked_node_stays);
	tcase_add_test(tc, test_create_write_read);
	tcase_add_test(tc, test_write_gathers_iovecs);
	tcase_add_test(tc, test_truncate_grow_shrink);
	tcase_add_test(tc, test_small_files_are_small);
	tcase_add_test(tc, test_sparse_5gib);
	tcase_add_test(tc, test_huge_offsets);
	tcase_add_test(tc, test_fallocate_modes);
	tcase_add_test(tc, test_punch_hole);
	tcase_add_test(tc, test_read_is_zero_copy_and_stable);
	tcase_add_test(tc, test_read_many_segments_falls_back_to_copy);
	tcase_add_test(tc, test_copy_file_range_between_files);
	tcase_add_test(tc, test_copy_file_range_overlapping);
	tcase_add_test(tc, test_unlink_while_open);
	tcase_add_test(tc, test_readdir_dots_and_types);
	tcase_add_test(tc, test_readdir_removed_directory);
	tcase_add_test(tc, test_readdir_10000_resume_under_changes);
	tcase_add_test(tc, test_readdirplus_refused_mid_batch);
	tcase_add_test(tc, test_rename_replace_rules);
	tcase_add_test(tc, test_rename_permissions);
	tcase_add_test(tc, test_hard_links);
	tcase_add_test(tc, test_symlink_readlink);
	tcase_add_test(tc, test_mknod_types);
	tcase_add_test(tc, test_mkdir_rmdir_unlink);
	tcase_add_test(tc, test_permission_checks);
	tcase_add_test(tc, test_sticky_directory);
	tcase_add_test(tc, test_setgid_directory);
	tcase_add_test(tc, test_umask_applied);
	tcase_add_test(tc, test_chmod_rules);
	tcase_add_test(tc, test_writer_may_drop_suid_only);
	tcase_add_test(tc, test_chown_rules);
	tcase_add_test(tc, test_suid_cleared_on_write_and_truncate);
	tcase_add_test(tc, test_timestamps_change);
	tcase_add_test(tc, test_timestamps_explicit_and_now);
	tcase_add_test(tc, test_xattr_limits_and_namespaces);
	tcase_add_test(tc, test_statfs_unlimited);
	tcase_add_test(tc, test_random_ops_match_model);
	tcase_add_test(tc, test_concurrent_readers_writers_and_names);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(lim, setup_16m, teardown);
	tcase_add_test(lim, test_statfs_limit);
	suite_add_tcase(s, lim);

	tcase_add_checked_fixture(tiny, setup_1m, teardown);
	tcase_add_test(tiny, test_enospc_consistent);
	tcase_add_test(tiny, test_enospc_copy_and_cow);
	suite_add_tcase(s, tiny);
	return s;
}

int main(void)
{
	return orfa_check_run(ramfs_suite());
}
