/*
 * orfa_probe.c - end-to-end tests of a running orfad over real TCP.
 *
 * A small synchronous ORFA client (probe_lib.h: the TCP transport's
 * blocking mode and the codec) plus raw sockets for input no real client
 * would send.  It
 * exercises every operation, locks across connections (a parked SETLK
 * being granted), concurrent client processes, 1,000 pipelined requests on
 * one connection, HELLO version mismatch, and malformed input -- checking
 * after each bad connection that the server logged a reason, dropped only
 * that connection, and still serves an old and a new one.
 *
 * Output is TAP without the plan line (the calling script adds its own
 * checks and prints the plan); the number of tests run is written to
 * --count-file.  Figures (requests/s) are printed as TAP comments.
 *
 *   orfa_probe --addr HOST:PORT --log ORFAD_LOG [--backend ramfs|native]
 *              [--count-file F] [--bench N]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "orfa_proto.h"
#include "probe_lib.h"
#include "transport.h"

static const char *g_backend = "ramfs";

/* ---- tests: operations -------------------------------------------------------- */

struct env {
	struct pc p;
	uint64_t dir;		/* the test's directory */
	char dname[64];
};

static void t_hello(struct pc *p)
{
	struct orfa_msg rep;
	int st;

	ok(pc_connect(p) == 0, "connect to %s:%s", g_host, g_port);
	st = pc_hello_v(p, ORFA_PROTO_VERSION, "/", &rep, NULL, 0);
	ok(st == 0, "HELLO accepted (status %d)", st);
	ok(p->root != 0 && S_ISDIR(p->root_attr.mode),
	   "HELLO gives a root directory node (%llu)",
	   (unsigned long long)p->root);
	ok(p->max_data > 0 && p->max_data <= ORFA_DEFAULT_MAX_DATA,
	   "HELLO negotiates max_data (%u)", p->max_data);
	ok(rep.a.hello_rep.version == ORFA_PROTO_VERSION &&
	   rep.a.hello_rep.features != 0,
	   "HELLO reply carries version %u and features %#llx",
	   rep.a.hello_rep.version,
	   (unsigned long long)rep.a.hello_rep.features);
	ok(op_ping(p) == 0, "PING");
}

static void t_nodes(struct env *t)
{
	struct pc *p = &t->p;
	struct orfa_entry e, e2, d;
	struct orfa_msg m, rep;
	char target[64];
	size_t len;
	int st;

	snprintf(t->dname, sizeof(t->dname), "probe.%d", (int)getpid());
	st = op_mkdir(p, p->root, t->dname, 0755, &d);
	ok(st == 0 && S_ISDIR(d.attr.mode) && d.nodeid,
	   "MKDIR %s (status %d)", t->dname, st);
	t->dir = d.nodeid;
	st = op_lookup(p, p->root, t->dname, &e);
	ok(st == 0 && e.nodeid == t->dir, "LOOKUP finds it again");

	/* HELLO for a subdirectory export maps the client's root to it. */
	{
		struct pc sub;
		char path[128], reason[256];

		snprintf(path, sizeof(path), "/%s/", t->dname);
		st = pc_connect(&sub);
		st = st ? st : pc_hello_v(&sub, ORFA_PROTO_VERSION, path, &rep,
					  NULL, 0);
		ok(st == 0 && sub.root == t->dir && S_ISDIR(sub.root_attr.mode),
		   "HELLO for export %s: its root is that directory (%d)",
		   path, st);
		ok(st == 0 && op_mkdir(&sub, sub.root, "via-sub", 0755, &e) == 0 &&
		   op_lookup(p, t->dir, "via-sub", &e2) == 0 &&
		   e2.nodeid == e.nodeid &&
		   op_unlink(&sub, ORFA_OP_RMDIR, sub.root, "via-sub") == 0,
		   "a client of the subdirectory export works inside it");
		pc_close(&sub);
		snprintf(path, sizeof(path), "/%s/../x", t->dname);
		st = pc_connect(&sub);
		st = st ? st : pc_hello_v(&sub, ORFA_PROTO_VERSION, path, &rep,
					  reason, sizeof(reason));
		ok(st == EINVAL && strstr(reason, "..") != NULL,
		   "HELLO for an export path with '..': EINVAL (\"%s\")",
		   reason);
		pc_close(&sub);
	}
	st = op_lookup(p, t->dir, "missing", &e);
	ok(st == ENOENT, "LOOKUP of a missing name: ENOENT (%d)", st);
	st = op_mkdir(p, p->root, t->dname, 0755, &e);
	ok(st == EEXIST, "MKDIR of an existing name: EEXIST (%d)", st);
	st = op_getattr(p, t->dir, 0, &e.attr);
	ok(st == 0 && S_ISDIR(e.attr.mode) && (e.attr.mode & 07777) == 0755,
	   "GETATTR of the directory (mode %o)", e.attr.mode);

	/* symlink + readlink */
	req_init(p, &m, ORFA_OP_SYMLINK);
	m.a.symlink.parent = t->dir;
	m.name = "sym";
	m.namelen = 3;
	m.name2 = "some/target";
	m.name2len = 11;
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	ok(st == 0 && S_ISLNK(rep.a.entry.attr.mode), "SYMLINK (%d)", st);
	req_init(p, &m, ORFA_OP_READLINK);
	m.a.node.nodeid = rep.a.entry.nodeid;
	memset(target, 0, sizeof(target));
	st = pc_call(p, &m, NULL, 0, NULL, target, sizeof(target) - 1, &len);
	ok(st == 0 && len == 11 && strcmp(target, "some/target") == 0,
	   "READLINK gives the target back");

	/* mknod */
	req_init(p, &m, ORFA_OP_MKNOD);
	m.a.mknod.parent = t->dir;
	m.a.mknod.mode = S_IFIFO | 0644;
	m.name = "fifo";
	m.namelen = 4;
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	ok(st == 0 && S_ISFIFO(rep.a.entry.attr.mode), "MKNOD of a FIFO (%d)",
	   st);

	/* access */
	req_init(p, &m, ORFA_OP_ACCESS);
	m.a.access.nodeid = t->dir;
	m.a.access.mask = F_OK;
	st = pc_call(p, &m, NULL, 0, NULL, NULL, 0, NULL);
	ok(st == 0, "ACCESS F_OK (%d)", st);

	/* statfs */
	req_init(p, &m, ORFA_OP_STATFS);
	m.a.node.nodeid = p->root;
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	ok(st == 0 && rep.a.statfs.bsize > 0 && rep.a.statfs.namemax > 0,
	   "STATFS (bsize %u, namemax %u)", rep.a.statfs.bsize,
	   rep.a.statfs.namemax);

	/* a name that is too long for the backend */
	{
		char big[300];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		st = op_lookup(p, t->dir, big, &e2);
		ok(st == ENAMETOOLONG, "LOOKUP of a 299-byte name: "
		   "ENAMETOOLONG (%d)", st);
	}
}

static void t_files(struct env *t)
{
	struct pc *p = &t->p;
	enum { BIG = 300 * 1024 };
	uint8_t *buf = malloc(BIG), *back = malloc(BIG);
	struct orfa_entry e, f, l;
	struct orfa_attr a;
	struct orfa_msg m, rep;
	uint64_t fh, fh2, written;
	size_t len;
	int st;

	if (!buf || !back)
		abort();
	st = op_create(p, t->dir, "f", 0640, O_RDWR | O_CREAT | O_EXCL, &f,
		       &fh);
	ok(st == 0 && S_ISREG(f.attr.mode) && fh != 0,
	   "CREATE gives an entry and a file id (%d)", st);
	fill(buf, BIG, 0, 1);
	st = op_write(p, f.nodeid, fh, 0, buf, BIG, &written, &a);
	ok(st == 0 && written == BIG && a.size == BIG,
	   "WRITE of %d bytes (written %llu, size %llu)", BIG,
	   (unsigned long long)written, (unsigned long long)a.size);
	memset(back, 0, BIG);
	st = op_read(p, f.nodeid, fh, 0, BIG, back, &len);
	ok(st == 0 && len == BIG && check(back, BIG, 0, 1),
	   "READ gives the same bytes back (%zu)", len);
	st = op_read(p, f.nodeid, fh, BIG - 100, 4096, back, &len);
	ok(st == 0 && len == 100 && check(back, 100, BIG - 100, 1),
	   "READ across the end of file is short (%zu)", len);
	st = op_read(p, f.nodeid, fh, BIG + 5000, 4096, back, &len);
	ok(st == 0 && len == 0, "READ beyond the end gives no data");
	st = op_read(p, f.nodeid, fh, 0, p->max_data + 1, back, &len);
	ok(st == EINVAL, "READ above max_data: EINVAL (%d)", st);
	st = op_getattr(p, f.nodeid, fh, &a);
	ok(st == 0 && a.size == BIG && (a.mode & 0777) == 0640,
	   "GETATTR with the file id (mode %o)", a.mode);

	req_init(p, &m, ORFA_OP_SETATTR);
	m.a.setattr.nodeid = f.nodeid;
	m.a.setattr.fh = fh;
	m.a.setattr.valid = ORFA_SET_SIZE | ORFA_SET_MODE;
	m.a.setattr.size = 1000;
	m.a.setattr.mode = 0600;
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	ok(st == 0 && rep.a.attr.size == 1000 &&
	   (rep.a.attr.mode & 0777) == 0600,
	   "SETATTR truncates and chmods (size %llu mode %o)",
	   (unsigned long long)rep.a.attr.size, rep.a.attr.mode);
	req_init(p, &m, ORFA_OP_SETATTR);
	m.a.setattr.nodeid = f.nodeid;
	m.a.setattr.valid = ORFA_SET_MTIME;
	m.a.setattr.mtime = 1000000000;
	m.a.setattr.mtime_nsec = 5;
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	ok(st == 0 && rep.a.attr.mtime == 1000000000,
	   "SETATTR of mtime without a file id (%d)", st);

	ok(op_fh(p, ORFA_OP_FSYNC, f.nodeid, fh, 0) == 0, "FSYNC");
	ok(op_fh(p, ORFA_OP_FLUSH, f.nodeid, fh, 0) == 0, "FLUSH");

	/* fallocate, lseek */
	req_init(p, &m, ORFA_OP_FALLOCATE);
	m.a.fallocate.nodeid = f.nodeid;
	m.a.fallocate.fh = fh;
	m.a.fallocate.offset = 0;
	m.a.fallocate.length = 8192;
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	if (st == EOPNOTSUPP || st == ENOSYS)
		skip(strerror(st), "FALLOCATE");
	else
		ok(st == 0 && rep.a.attr.size == 8192,
		   "FALLOCATE extends to 8192 (%d, size %llu)", st,
		   (unsigned long long)rep.a.attr.size);
	req_init(p, &m, ORFA_OP_LSEEK);
	m.a.lseek.nodeid = f.nodeid;
	m.a.lseek.fh = fh;
	m.a.lseek.offset = 0;
	m.a.lseek.whence = SEEK_DATA;
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	ok(st == 0 && rep.a.lseek_rep.offset == 0,
	   "LSEEK SEEK_DATA from 0 (%d)", st);
	req_init(p, &m, ORFA_OP_LSEEK);
	m.a.lseek.nodeid = f.nodeid;
	m.a.lseek.fh = fh;
	m.a.lseek.whence = 9;
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	ok(st == EINVAL, "LSEEK with a bad whence: EINVAL (%d)", st);

	/* a second open, read-only */
	st = op_open(p, ORFA_OP_OPEN, f.nodeid, O_RDONLY, &fh2, &a);
	ok(st == 0 && fh2 != fh && a.size >= 1000, "OPEN read-only (%d)",
	   st);
	st = op_write(p, f.nodeid, fh2, 0, buf, 10, NULL, NULL);
	ok(st == EBADF, "WRITE through a read-only file id: EBADF (%d)", st);
	st = op_read(p, f.nodeid, fh2, 0, 1000, back, &len);
	ok(st == 0 && len == 1000 && check(back, 1000, 0, 1),
	   "READ through the second file id");
	ok(op_fh(p, ORFA_OP_RELEASE, f.nodeid, fh2, 0) == 0, "RELEASE");
	st = op_fh(p, ORFA_OP_RELEASE, f.nodeid, fh2, 0);
	ok(st == EBADF, "RELEASE of a released file id: EBADF (%d)", st);
	st = op_read(p, f.nodeid, fh2, 0, 10, back, &len);
	ok(st == EBADF, "READ through a released file id: EBADF (%d)", st);

	/* copy_file_range into a new file */
	{
		struct orfa_entry g = { 0 };
		uint64_t gfh = 0;

		st = op_create(p, t->dir, "copy", 0644, O_RDWR | O_CREAT, &g,
			       &gfh);
		req_init(p, &m, ORFA_OP_COPY_FILE_RANGE);
		m.a.copy.nodeid_in = f.nodeid;
		m.a.copy.fh_in = fh;
		m.a.copy.off_in = 0;
		m.a.copy.nodeid_out = g.nodeid;
		m.a.copy.fh_out = gfh;
		m.a.copy.off_out = 100;
		m.a.copy.len = 900;
		st = st ? st : pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
		ok(st == 0 && rep.a.copy_rep.copied == 900 &&
		   rep.a.copy_rep.attr.size == 1000,
		   "COPY_FILE_RANGE of 900 bytes (%d, copied %llu)", st,
		   (unsigned long long)rep.a.copy_rep.copied);
		memset(back, 0, 1000);
		st = op_read(p, g.nodeid, gfh, 100, 900, back, &len);
		ok(st == 0 && len == 900 && check(back, 900, 0, 1),
		   "copied bytes read back");
		op_fh(p, ORFA_OP_RELEASE, g.nodeid, gfh, 0);
	}

	/* link, rename */
	req_init(p, &m, ORFA_OP_LINK);
	m.a.link.nodeid = f.nodeid;
	m.a.link.newparent = t->dir;
	m.name = "hard";
	m.namelen = 4;
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	l = rep.a.entry;
	ok(st == 0 && l.nodeid == f.nodeid && l.attr.nlink == 2,
	   "LINK (%d, nlink %u)", st, l.attr.nlink);
	req_init(p, &m, ORFA_OP_RENAME);
	m.a.rename.parent = t->dir;
	m.a.rename.newparent = t->dir;
	m.name = "hard";
	m.namelen = 4;
	m.name2 = "moved";
	m.name2len = 5;
	st = pc_call(p, &m, NULL, 0, NULL, NULL, 0, NULL);
	ok(st == 0 && op_lookup(p, t->dir, "hard", &e) == ENOENT &&
	   op_lookup(p, t->dir, "moved", &e) == 0 && e.nodeid == f.nodeid,
	   "RENAME moves the name (%d)", st);
	req_init(p, &m, ORFA_OP_RENAME);
	m.a.rename.parent = t->dir;
	m.a.rename.newparent = t->dir;
	m.a.rename.flags = ORFA_RENAME_NOREPLACE;
	m.name = "moved";
	m.namelen = 5;
	m.name2 = "f";
	m.name2len = 1;
	st = pc_call(p, &m, NULL, 0, NULL, NULL, 0, NULL);
	ok(st == EEXIST, "RENAME_NOREPLACE onto a name: EEXIST (%d)", st);

	/* xattrs */
	req_init(p, &m, ORFA_OP_SETXATTR);
	m.a.setxattr.nodeid = f.nodeid;
	m.name = "user.probe";
	m.namelen = 10;
	st = pc_call(p, &m, "value", 5, NULL, NULL, 0, NULL);
	if (st == EOPNOTSUPP || st == ENOSYS) {
		skip(strerror(st), "xattrs (SETXATTR, GETXATTR, LISTXATTR, "
		     "REMOVEXATTR)");
	} else {
		char v[64];

		ok(st == 0, "SETXATTR user.probe (%d)", st);
		req_init(p, &m, ORFA_OP_GETXATTR);
		m.a.getxattr.nodeid = f.nodeid;
		m.a.getxattr.size = 0;
		m.name = "user.probe";
		m.namelen = 10;
		st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
		ok(st == 0 && rep.a.xattr_rep.size == 5,
		   "GETXATTR size query (%d, %llu)", st,
		   (unsigned long long)rep.a.xattr_rep.size);
		req_init(p, &m, ORFA_OP_GETXATTR);
		m.a.getxattr.nodeid = f.nodeid;
		m.a.getxattr.size = sizeof(v);
		m.name = "user.probe";
		m.namelen = 10;
		memset(v, 0, sizeof(v));
		st = pc_call(p, &m, NULL, 0, &rep, v, sizeof(v) - 1, &len);
		ok(st == 0 && len == 5 && memcmp(v, "value", 5) == 0,
		   "GETXATTR gives the value");
		req_init(p, &m, ORFA_OP_LISTXATTR);
		m.a.getxattr.nodeid = f.nodeid;
		m.a.getxattr.size = sizeof(v);
		memset(v, 0, sizeof(v));
		st = pc_call(p, &m, NULL, 0, &rep, v, sizeof(v) - 1, &len);
		ok(st == 0 && memmem(v, len, "user.probe", 11) != NULL,
		   "LISTXATTR lists it (%d)", st);
		req_init(p, &m, ORFA_OP_REMOVEXATTR);
		m.a.removexattr.nodeid = f.nodeid;
		m.name = "user.probe";
		m.namelen = 10;
		st = pc_call(p, &m, NULL, 0, NULL, NULL, 0, NULL);
		ok(st == 0, "REMOVEXATTR (%d)", st);
		req_init(p, &m, ORFA_OP_GETXATTR);
		m.a.getxattr.nodeid = f.nodeid;
		m.name = "user.probe";
		m.namelen = 10;
		st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
		ok(st == ENODATA, "GETXATTR after removal: ENODATA (%d)", st);
	}

	ok(op_fh(p, ORFA_OP_RELEASE, f.nodeid, fh, 0) == 0,
	   "RELEASE of the created file id");
	free(buf);
	free(back);
}

static void t_dirs(struct env *t)
{
	struct pc *p = &t->p;
	char names[8192];
	struct orfa_msg m, rep;
	struct orfa_entry e;
	uint64_t dh, refs = 0;
	int count, count2, st;

	/* 40 more files so paging has work to do */
	for (int i = 0; i < 40; i++) {
		char n[32];
		uint64_t fh;

		snprintf(n, sizeof(n), "file-with-a-longer-name-%02d", i);
		if (op_create(p, t->dir, n, 0644, O_WRONLY | O_CREAT, NULL,
			      &fh) == 0)
			op_fh(p, ORFA_OP_RELEASE, 0, fh, 0);
	}
	st = op_open(p, ORFA_OP_OPENDIR, t->dir, O_RDONLY, &dh, NULL);
	ok(st == 0 && dh != 0, "OPENDIR (%d)", st);
	st = read_dir(p, ORFA_OP_READDIR, t->dir, dh, 65536, names,
		      sizeof(names), &count, NULL);
	ok(st == 0 && has_name(names, count, "f") &&
	   has_name(names, count, "sym") && has_name(names, count, "moved") &&
	   has_name(names, count, "file-with-a-longer-name-39"),
	   "READDIR lists the entries (%d, %d names)", st, count);
	st = read_dir(p, ORFA_OP_READDIR, t->dir, dh, 100, names,
		      sizeof(names), &count2, NULL);
	ok(st == 0 && count2 == count,
	   "READDIR in 100-byte replies resumes from cookies (%d names)",
	   count2);
	st = read_dir(p, ORFA_OP_READDIRPLUS, t->dir, dh, 2000, names,
		      sizeof(names), &count2, &refs);
	ok(st == 0 && count2 == count && refs > 0,
	   "READDIRPLUS lists the same entries with nodes (%d, %llu refs)",
	   count2, (unsigned long long)refs);
	req_init(p, &m, ORFA_OP_READDIR);
	m.a.readdir.nodeid = t->dir;
	m.a.readdir.fh = dh;
	m.a.readdir.size = 8;
	st = pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
	ok(st == EINVAL, "READDIR with room for no entry: EINVAL (%d)", st);
	ok(op_fh(p, ORFA_OP_FSYNCDIR, t->dir, dh, 0) == 0, "FSYNCDIR");
	st = op_read(p, t->dir, dh, 0, 10, names, NULL);
	ok(st == EBADF, "READ through a directory id: EBADF (%d)", st);
	ok(op_fh(p, ORFA_OP_RELEASEDIR, t->dir, dh, 0) == 0, "RELEASEDIR");

	/* Forget what READDIRPLUS handed out (the node stays usable
	 * through the references LOOKUP/CREATE gave). */
	st = op_lookup(p, t->dir, "f", &e);
	if (st == 0) {
		uint64_t n[1] = { e.nodeid }, c[1] = { 1 };

		op_forget(p, n, c, 1);
	}
	ok(op_ping(p) == 0, "FORGET gets no reply, the connection goes on");

	st = op_unlink(p, ORFA_OP_RMDIR, p->root, t->dname);
	ok(st == ENOTEMPTY, "RMDIR of a non-empty directory: ENOTEMPTY (%d)",
	   st);
	st = op_unlink(p, ORFA_OP_UNLINK, t->dir, "moved");
	ok(st == 0 && op_lookup(p, t->dir, "moved", &e) == ENOENT,
	   "UNLINK (%d)", st);
	st = op_mkdir(p, t->dir, "sub", 0700, &e);
	ok(st == 0 && op_unlink(p, ORFA_OP_RMDIR, t->dir, "sub") == 0,
	   "RMDIR of an empty directory");
}

static void t_bad_ids(struct env *t)
{
	struct pc *p = &t->p;
	struct orfa_attr a;
	uint8_t buf[16];
	size_t len;
	int st;

	st = op_getattr(p, 0x7fffffff00001234ull, 0, &a);
	ok(st == ESTALE, "GETATTR of an unknown node id: ESTALE (%d)", st);
	st = op_lookup(p, 0x7fffffff00001234ull, "x", NULL);
	ok(st == ESTALE, "LOOKUP under an unknown node id: ESTALE (%d)", st);
	st = op_read(p, t->dir, 0xdeadbeefull, 0, 10, buf, &len);
	ok(st == EBADF, "READ with an unknown file id: EBADF (%d)", st);
	st = op_read(p, t->dir, ((uint64_t)77 << 32) | 1, 0, 10, buf, &len);
	ok(st == EBADF, "READ with a stale generation: EBADF (%d)", st);
	st = op_fh(p, ORFA_OP_RELEASE, t->dir, 0, 0);
	ok(st == EBADF, "RELEASE of file id 0: EBADF (%d)", st);
	st = op_getattr(p, t->dir, 0x1234567ull, &a);
	ok(st == EBADF, "GETATTR with an unknown file id: EBADF (%d)", st);
	ok(op_ping(p) == 0, "the connection survives bad ids");
}

/* ---- tests: locks ------------------------------------------------------------- */

static void t_locks(struct env *t)
{
	struct pc a, b, c;
	struct orfa_entry f;
	struct orfa_lock lk;
	struct orfa_msg m, rep;
	uint64_t fa = 0, fb = 0, fc = 0;
	int st;

	if (!ok(pc_open(&a) == 0 && pc_open(&b) == 0,
		"two more connections for lock tests"))
		return;
	st = op_create(&a, t->dir, "locked", 0644, O_RDWR | O_CREAT, &f, &fa);
	ok(st == 0 && op_lookup(&b, t->dir, "locked", NULL) == 0 &&
	   op_open(&b, ORFA_OP_OPEN, f.nodeid, O_RDWR, &fb, NULL) == 0,
	   "both open the same file");

	st = op_setlk(&a, f.nodeid, fa, 1, F_WRLCK, 0, 99);
	ok(st == 0, "SETLK write lock [0,99] (%d)", st);
	st = op_getlk(&b, f.nodeid, fb, 2, F_RDLCK, 50, 60, &lk);
	ok(st == 0 && lk.type == F_WRLCK && lk.start == 0 && lk.end == 99 &&
	   lk.pid == 1001,
	   "GETLK from another connection reports it (type %u [%llu,%llu] "
	   "pid %u)", lk.type, (unsigned long long)lk.start,
	   (unsigned long long)lk.end, lk.pid);
	st = op_getlk(&a, f.nodeid, fa, 1, F_WRLCK, 0, 99, &lk);
	ok(st == 0 && lk.type == F_UNLCK, "GETLK by the holder: F_UNLCK");
	st = op_setlk(&b, f.nodeid, fb, 2, F_RDLCK, 50, 60);
	ok(st == EAGAIN, "conflicting SETLK without wait: EAGAIN (%d)", st);
	st = op_setlk(&a, f.nodeid, fa, 3, F_RDLCK, 50, 60);
	ok(st == EAGAIN, "another owner on the same connection conflicts "
	   "too (%d)", st);

	/* A waiting SETLK is parked, the connection keeps serving, and the
	 * lock is granted when the holder unlocks. */
	lk_req(&b, &m, ORFA_OP_SETLK, f.nodeid, fb, 2, F_WRLCK, 10, 20,
	       ORFA_LK_WAIT);
	st = pc_send(&b, &m, NULL, 0);
	ok(st == 0 && pc_quiet(&b, 300), "SETLK with wait is not answered "
	   "while the conflict lasts");
	ok(op_ping(&a) == 0, "the holder's connection still serves");
	st = op_setlk(&a, f.nodeid, fa, 1, F_UNLCK, 0, 49);
	ok(st == 0, "the holder unlocks [0,49]");
	st = pc_wait_reply(&b, &rep);
	ok(st == 0 && rep.hdr.req_id == m.hdr.req_id && rep.hdr.status == 0,
	   "the parked SETLK is granted (status %u)", rep.hdr.status);
	st = op_getlk(&a, f.nodeid, fa, 1, F_RDLCK, 0, 200, &lk);
	ok(st == 0 && lk.type == F_WRLCK && lk.start == 10 && lk.end == 20,
	   "GETLK sees the granted lock [%llu,%llu]",
	   (unsigned long long)lk.start, (unsigned long long)lk.end);
	st = op_getlk(&b, f.nodeid, fb, 2, F_WRLCK, 50, 99, &lk);
	ok(st == 0 && lk.type == F_WRLCK && lk.start == 50 && lk.end == 99,
	   "the holder's lock was split: [50,99] remains");
	/* FLUSH drops the POSIX locks of its owner. */
	ok(op_fh(&a, ORFA_OP_FLUSH, f.nodeid, fa, 1) == 0 &&
	   op_getlk(&b, f.nodeid, fb, 2, F_WRLCK, 0, 200, &lk) == 0 &&
	   lk.type == F_UNLCK, "FLUSH drops the owner's POSIX locks");

	/* More parked requests than the per-connection request limit (256),
	 * all on the holder's own connection: the server must keep reading
	 * it, or the unlock that frees them would never be seen. */
	{
		enum { NW = 300 };
		uint64_t first;
		int granted = 0, sent = 0;

		st = op_setlk(&a, f.nodeid, fa, 1, F_WRLCK, 1000, 1999);
		first = a.next_id + 1;
		for (int i = 0; i < NW && st == 0; i++) {
			lk_req(&a, &m, ORFA_OP_SETLK, f.nodeid, fa, 100 + i,
			       F_RDLCK, 1500, 1500, ORFA_LK_WAIT);
			if (pc_send(&a, &m, NULL, 0) == 0)
				sent++;
		}
		ok(st == 0 && sent == NW && pc_quiet(&a, 200),
		   "%d SETLK waits parked on the holder's connection", NW);
		lk_req(&a, &m, ORFA_OP_SETLK, f.nodeid, fa, 1, F_UNLCK, 1000,
		       1999, 0);
		alarm(60);	/* a lost unlock would hang the receives */
		st = pc_send(&a, &m, NULL, 0);
		for (int i = 0; i < NW + 1 && st == 0; i++) {
			st = pc_recv(&a, &rep, NULL, 0, NULL);
			if (st == 0 && rep.hdr.status == 0 &&
			    rep.hdr.req_id >= first &&
			    rep.hdr.req_id <= m.hdr.req_id)
				granted++;
		}
		alarm(0);
		ok(granted == NW + 1, "the unlock behind them is still read: "
		   "all %d granted (%d replies)", NW, granted);
		for (int i = 0; i < NW; i++)
			op_setlk(&a, f.nodeid, fa, 100 + i, F_UNLCK, 0,
				 UINT64_MAX);
	}

	/* flock */
	flock_req(&a, &m, f.nodeid, fa, LOCK_EX);
	st = pc_call(&a, &m, NULL, 0, NULL, NULL, 0, NULL);
	ok(st == 0, "FLOCK LOCK_EX (%d)", st);
	flock_req(&b, &m, f.nodeid, fb, LOCK_SH | LOCK_NB);
	st = pc_call(&b, &m, NULL, 0, NULL, NULL, 0, NULL);
	ok(st == EWOULDBLOCK, "FLOCK LOCK_SH|LOCK_NB on it: EWOULDBLOCK (%d)",
	   st);
	flock_req(&b, &m, f.nodeid, fb, LOCK_SH);
	st = pc_send(&b, &m, NULL, 0);
	ok(st == 0 && pc_quiet(&b, 300), "a blocking FLOCK waits");
	ok(op_fh(&a, ORFA_OP_RELEASE, f.nodeid, fa, 0) == 0,
	   "RELEASE of the holder's file id");
	st = pc_wait_reply(&b, &rep);
	ok(st == 0 && rep.hdr.req_id == m.hdr.req_id && rep.hdr.status == 0,
	   "the waiting FLOCK is granted by the RELEASE");
	flock_req(&b, &m, f.nodeid, 0x999, LOCK_SH);
	st = pc_call(&b, &m, NULL, 0, NULL, NULL, 0, NULL);
	ok(st == EBADF, "FLOCK with an unknown file id: EBADF (%d)", st);

	/* A FLOCK wait whose file id is released (the client gave up on it)
	 * is answered with EBADF and never granted afterwards. */
	{
		uint64_t fb2 = 0, wait_id;
		int got_flock = 0, got_rel = 0, fl_st = -1, rel_st = -1;

		st = op_open(&b, ORFA_OP_OPEN, f.nodeid, O_RDWR, &fb2, NULL);
		ok(st == 0, "b opens a second file id (%d)", st);
		flock_req(&b, &m, f.nodeid, fb2, LOCK_EX);
		wait_id = m.hdr.req_id;
		st = pc_send(&b, &m, NULL, 0);
		ok(st == 0 && pc_quiet(&b, 200),
		   "its LOCK_EX waits behind b's own LOCK_SH");
		req_init(&b, &m, ORFA_OP_RELEASE);
		m.a.fh.nodeid = f.nodeid;
		m.a.fh.fh = fb2;
		st = pc_send(&b, &m, NULL, 0);
		alarm(30);
		for (int i = 0; i < 2 && st == 0; i++) {
			st = pc_recv(&b, &rep, NULL, 0, NULL);
			if (st == 0 && rep.hdr.req_id == wait_id) {
				got_flock++;
				fl_st = (int)rep.hdr.status;
			} else if (st == 0 && rep.hdr.req_id == m.hdr.req_id) {
				got_rel++;
				rel_st = (int)rep.hdr.status;
			}
		}
		alarm(0);
		ok(got_rel == 1 && rel_st == 0, "RELEASE of the waiting file id");
		ok(got_flock == 1 && fl_st == EBADF,
		   "the waiting FLOCK is answered EBADF (%d)", fl_st);
		flock_req(&b, &m, f.nodeid, fb, LOCK_UN);
		st = pc_call(&b, &m, NULL, 0, NULL, NULL, 0, NULL);
		ok(st == 0 && pc_quiet(&b, 200),
		   "unlocking the holder grants nothing more (%d)", st);
		flock_req(&b, &m, f.nodeid, fb, LOCK_EX | LOCK_NB);
		st = pc_call(&b, &m, NULL, 0, NULL, NULL, 0, NULL);
		ok(st == 0, "no flock left behind by the released waiter (%d)",
		   st);
	}

	/* Closing a connection drops its locks and cancels its waiters. */
	st = op_setlk(&b, f.nodeid, fb, 2, F_WRLCK, 0, 0);
	ok(st == 0, "b takes a write lock on byte 0");
	if (pc_open(&c) == 0) {
		op_lookup(&c, t->dir, "locked", NULL);
		op_open(&c, ORFA_OP_OPEN, f.nodeid, O_RDWR, &fc, NULL);
		/* c parks a waiter behind b... */
		lk_req(&c, &m, ORFA_OP_SETLK, f.nodeid, fc, 5, F_RDLCK, 0, 0,
		       ORFA_LK_WAIT);
		st = pc_send(&c, &m, NULL, 0);
		ok(st == 0 && pc_quiet(&c, 200), "c waits behind b");
		/* ...and b goes away with its locks. */
		pc_close(&b);
		st = pc_wait_reply(&c, &rep);
		ok(st == 0 && rep.hdr.status == 0 &&
		   rep.hdr.req_id == m.hdr.req_id,
		   "closing b's connection grants c's waiting lock");
		flock_req(&c, &m, f.nodeid, fc, LOCK_EX | LOCK_NB);
		st = pc_call(&c, &m, NULL, 0, NULL, NULL, 0, NULL);
		ok(st == 0, "and b's flock is gone too (%d)", st);
		/* A waiter whose connection closes is dropped (or, if its
		 * grant came first, its lock goes with the connection): the
		 * range ends up free either way. */
		lk_req(&a, &m, ORFA_OP_SETLK, f.nodeid, 0, 9, F_WRLCK, 0, 0,
		       ORFA_LK_WAIT);
		pc_send(&a, &m, NULL, 0);
		pc_close(&a);
		st = op_setlk(&c, f.nodeid, fc, 5, F_UNLCK, 0, 0);
		lk_req(&c, &m, ORFA_OP_SETLK, f.nodeid, fc, 6, F_WRLCK, 0, 0,
		       ORFA_LK_WAIT);
		if (st == 0)
			st = pc_send(&c, &m, NULL, 0);
		if (st == 0)
			st = pc_wait_reply(&c, &rep);
		ok(st == 0 && rep.hdr.status == 0,
		   "a waiter of a closed connection leaves nothing behind "
		   "(%d)", st);
		pc_close(&c);
	} else {
		ok(0, "third connection");
		pc_close(&b);
		pc_close(&a);
	}
}

/* ---- tests: concurrency and pipelining ----------------------------------------- */

static int child_work(uint64_t dir, int i)
{
	struct pc p;
	struct orfa_entry f;
	struct orfa_attr a;
	uint8_t buf[4096], back[4096];
	uint64_t fh, w;
	size_t len;
	char name[32];

	if (pc_open(&p))
		return 1;
	snprintf(name, sizeof(name), "conc-%d", i);
	if (op_create(&p, dir, name, 0644, O_RDWR | O_CREAT, &f, &fh))
		return 2;
	for (int k = 0; k < 50; k++) {
		fill(buf, sizeof(buf), (uint64_t)k * 4096, (unsigned)i);
		if (op_write(&p, f.nodeid, fh, (uint64_t)k * 4096, buf,
			     sizeof(buf), &w, &a) || w != sizeof(buf))
			return 3;
		if (op_read(&p, f.nodeid, fh, (uint64_t)k * 4096, sizeof(back),
			    back, &len) || len != sizeof(back) ||
		    !check(back, len, (uint64_t)k * 4096, (unsigned)i))
			return 4;
		if (op_getattr(&p, f.nodeid, fh, &a) ||
		    a.size != (uint64_t)(k + 1) * 4096)
			return 5;
	}
	if (op_fh(&p, ORFA_OP_RELEASE, f.nodeid, fh, 0) ||
	    op_unlink(&p, ORFA_OP_UNLINK, dir, name))
		return 6;
	pc_close(&p);
	return 0;
}

static void t_concurrent(struct env *t)
{
	enum { NCHILD = 8 };
	pid_t pids[NCHILD];
	int good = 0, started = 0;

	fflush(stdout);
	for (int i = 0; i < NCHILD; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(child_work(t->dir, i));
		if (pids[i] > 0)
			started++;
	}
	for (int i = 0; i < NCHILD; i++) {
		int status;

		if (pids[i] <= 0)
			continue;
		if (waitpid(pids[i], &status, 0) == pids[i] &&
		    WIFEXITED(status) && WEXITSTATUS(status) == 0)
			good++;
		else
			diag("client %d failed (status %#x)", i, status);
	}
	ok(started == NCHILD && good == NCHILD,
	   "%d concurrent client processes, 50 write/read/getattr rounds "
	   "each (%d succeeded)", NCHILD, good);
}

struct pipe_job {
	struct pc *p;
	struct orfa_msg *reqs;
	unsigned n;
	int err;
};

static void *pipe_sender(void *arg)
{
	struct pipe_job *j = arg;

	for (unsigned i = 0; i < j->n && !j->err; i++)
		j->err = pc_send(j->p, &j->reqs[i], NULL, 0);
	return NULL;
}

static void t_pipeline(struct env *t)
{
	enum { N = 1000, FSIZE = 256 * 1024 };
	struct pc p;
	struct orfa_entry f = { 0 };
	struct orfa_msg *reqs = calloc(N, sizeof(*reqs)), rep;
	uint8_t *buf = malloc(FSIZE), *seen = calloc(N, 1);
	uint64_t fh = 0, base, nlookups = 0;
	struct pipe_job job;
	pthread_t th;
	int bad = 0, got = 0, st;

	if (!reqs || !buf || !seen)
		abort();
	if (!ok(pc_open(&p) == 0, "a connection for pipelining"))
		goto out;
	fill(buf, FSIZE, 0, 3);
	st = op_create(&p, t->dir, "pipe", 0644, O_RDWR | O_CREAT, &f, &fh);
	st = st ? st : op_write(&p, f.nodeid, fh, 0, buf, FSIZE, NULL, NULL);
	ok(st == 0, "a 256 KiB file to read from");
	base = p.next_id + 1;
	for (unsigned i = 0; i < N; i++) {
		struct orfa_msg *m = &reqs[i];

		switch (i % 3) {
		case 0:
			read_req(&p, m, f.nodeid, fh,
				 (uint64_t)(i * 4093) % (FSIZE - 4096), 4096);
			break;
		case 1:
			req_init(&p, m, ORFA_OP_GETATTR);
			m->a.getattr.nodeid = f.nodeid;
			break;
		default:
			req_init(&p, m, ORFA_OP_LOOKUP);
			m->a.lookup.parent = t->dir;
			m->name = "pipe";
			m->namelen = 4;
			nlookups++;
			break;
		}
	}
	job.p = &p;
	job.reqs = reqs;
	job.n = N;
	job.err = 0;
	pthread_create(&th, NULL, pipe_sender, &job);
	for (got = 0; got < N; got++) {
		size_t len = 0;
		uint64_t i;

		st = pc_recv(&p, &rep, buf, 4096, &len);
		if (st) {
			diag("receive failed after %d replies: %s", got,
			     strerror(-st));
			break;
		}
		i = rep.hdr.req_id - base;
		if (i >= N || seen[i] || rep.hdr.status ||
		    rep.hdr.opcode != reqs[i].hdr.opcode) {
			bad++;
			continue;
		}
		seen[i] = 1;
		if (rep.hdr.opcode == ORFA_OP_READ &&
		    (len != 4096 ||
		     !check(buf, 4096, reqs[i].a.read.offset, 3)))
			bad++;
		if (rep.hdr.opcode == ORFA_OP_GETATTR &&
		    rep.a.attr.size != FSIZE)
			bad++;
		if (rep.hdr.opcode == ORFA_OP_LOOKUP &&
		    rep.a.entry.nodeid != f.nodeid)
			bad++;
	}
	pthread_join(th, NULL);
	ok(job.err == 0 && got == N && bad == 0,
	   "%d pipelined READ/GETATTR/LOOKUP on one connection: every reply "
	   "once, matched by req_id, right data (%d received, %d bad)", N,
	   got, bad);
	{
		uint64_t n[1] = { f.nodeid }, c[1] = { nlookups };

		op_forget(&p, n, c, 1);
		ok(op_ping(&p) == 0, "one FORGET gives back %llu references",
		   (unsigned long long)nlookups);
	}
	op_fh(&p, ORFA_OP_RELEASE, f.nodeid, fh, 0);
	pc_close(&p);
out:
	free(reqs);
	free(buf);
	free(seen);
}

/*
 * A client that asks for 200 MiB of READ replies and reads none of them
 * must not stall anyone else (the server stops reading it instead), and
 * gets everything once it reads again.
 */
static void t_backpressure(struct env *t)
{
	enum { N = 200, SZ = 1 << 20 };
	struct pc slow, other;
	struct orfa_entry f = { 0 };
	struct orfa_msg m, rep;
	uint8_t *buf = malloc(SZ), *seen = calloc(N, 1);
	uint64_t fh = 0, fh2 = 0, base;
	int good = 0, bad = 0, st, sent = 0, pings = 0;
	size_t len;

	if (!buf || !seen)
		abort();
	memset(&slow, 0, sizeof(slow));
	memset(&other, 0, sizeof(other));
	if (!ok(pc_open(&slow) == 0 && pc_open(&other) == 0,
		"two connections for back-pressure"))
		goto out;
	fill(buf, SZ, 0, 5);
	st = op_create(&slow, t->dir, "bp", 0644, O_RDWR | O_CREAT, &f, &fh);
	st = st ? st : op_write(&slow, f.nodeid, fh, 0, buf, SZ, NULL, NULL);
	ok(st == 0, "a 1 MiB file (%d)", st);
	base = slow.next_id + 1;
	for (int i = 0; i < N; i++) {
		read_req(&slow, &m, f.nodeid, fh, 0, SZ);
		if (pc_send(&slow, &m, NULL, 0))
			break;
		sent++;
	}
	for (int i = 0; i < 50; i++)
		pings += op_ping(&other) == 0;
	st = op_lookup(&other, t->dir, "bp", NULL);
	st = st ? st : op_open(&other, ORFA_OP_OPEN, f.nodeid, O_RDONLY, &fh2,
			       NULL);
	memset(buf, 0, SZ);
	st = st ? st : op_read(&other, f.nodeid, fh2, 0, SZ, buf, &len);
	ok(sent == N && pings == 50 && st == 0 && len == SZ &&
	   check(buf, SZ, 0, 5),
	   "while a client leaves %d MiB of replies unread, another one is "
	   "served (%d pings, read %d)", N, pings, st);
	for (int i = 0; i < sent; i++) {
		uint64_t k;

		st = pc_recv(&slow, &rep, buf, SZ, &len);
		if (st)
			break;
		k = rep.hdr.req_id - base;
		if (k >= N || seen[k] || rep.hdr.status || len != SZ ||
		    ((k % 50) == 0 && !check(buf, SZ, 0, 5))) {
			bad++;
			continue;
		}
		seen[k] = 1;
		good++;
	}
	ok(good == N && bad == 0, "the slow client then gets all %d replies "
	   "(%d good, %d bad)", N, good, bad);
	op_fh(&other, ORFA_OP_RELEASE, f.nodeid, fh2, 0);
	op_fh(&slow, ORFA_OP_RELEASE, f.nodeid, fh, 0);
	op_unlink(&slow, ORFA_OP_UNLINK, t->dir, "bp");
out:
	pc_close(&slow);
	pc_close(&other);
	free(buf);
	free(seen);
}

/* Figures: pipelined and synchronous GETATTR rates (no assertion). */
static void t_bench(struct env *t, unsigned n)
{
	struct pc p;
	struct orfa_msg *reqs = calloc(n, sizeof(*reqs)), rep;
	struct pipe_job job;
	pthread_t th;
	unsigned got;
	double t0, t1;

	if (!reqs || pc_open(&p)) {
		free(reqs);
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		req_init(&p, &reqs[i], ORFA_OP_GETATTR);
		reqs[i].a.getattr.nodeid = t->dir;
	}
	job.p = &p;
	job.reqs = reqs;
	job.n = n;
	job.err = 0;
	t0 = now_s();
	pthread_create(&th, NULL, pipe_sender, &job);
	for (got = 0; got < n; got++)
		if (pc_recv(&p, &rep, NULL, 0, NULL) || rep.hdr.status)
			break;
	t1 = now_s();
	pthread_join(th, NULL);
	diag("pipelined GETATTR: %u replies in %.3f s = %.0f requests/s", got,
	     t1 - t0, got / (t1 - t0));
	t0 = now_s();
	for (got = 0; got < n / 10; got++)
		if (op_getattr(&p, t->dir, 0, NULL))
			break;
	t1 = now_s();
	diag("synchronous GETATTR: %u round trips in %.3f s = %.1f us each",
	     got, t1 - t0, (t1 - t0) * 1e6 / (got ? got : 1));
	pc_close(&p);
	free(reqs);
}

/* ---- tests: HELLO refusal and malformed input ------------------------------------ */

static void t_version_mismatch(void)
{
	struct pc p;
	struct orfa_msg rep;
	char reason[256], me[64];
	int st;

	if (!ok(pc_connect(&p) == 0, "connect for a version mismatch"))
		return;
	sock_name(orfa_conn_fd(p.c), me, sizeof(me));
	st = pc_hello_v(&p, 99, "/", &rep, reason, sizeof(reason));
	ok(st == EPROTONOSUPPORT, "HELLO version 99: EPROTONOSUPPORT (%d)",
	   st);
	ok(st > 0 && rep.a.hello_rep.version == ORFA_PROTO_VERSION &&
	   strstr(reason, "version") != NULL,
	   "the refusal carries the server's version (%u) and a reason "
	   "(\"%s\")", rep.a.hello_rep.version, reason);
	ok(log_has(me, "HELLO refused") && log_has(me, "version 99"),
	   "the server logs the refusal with the peer (%s)", me);
	st = pc_recv(&p, &rep, NULL, 0, NULL);
	ok(st == -ECONNRESET || st == -ENOTCONN,
	   "the server closes the refused connection (%d)", st);
	pc_close(&p);

	if (ok(pc_connect(&p) == 0, "connect for an unknown export")) {
		st = pc_hello_v(&p, ORFA_PROTO_VERSION, "/no/such/dir", &rep,
				reason, sizeof(reason));
		ok(st == ENOENT && strstr(reason, "no/such") != NULL,
		   "HELLO for a missing export subdirectory: ENOENT (\"%s\")",
		   reason);
		pc_close(&p);
	}
}

/* After a bad connection: the reason is logged with the peer, and both an
 * old connection and a new one still work. */
static void after_bad(struct pc *keeper, const char *me, const char *reason,
		      const char *what)
{
	struct pc fresh;

	ok(log_has(me, reason), "%s: the server logs \"%s\" for %s", what,
	   reason, me);
	ok(op_ping(keeper) == 0, "%s: an older connection still works", what);
	ok(pc_open(&fresh) == 0 && op_ping(&fresh) == 0,
	   "%s: a new connection works", what);
	pc_close(&fresh);
}

static void t_malformed(struct env *t)
{
	struct pc keeper;
	uint8_t buf[1024];
	char me[64];
	struct orfa_msg m;
	struct orfa_hdr h;
	size_t n;
	int fd;

	if (!ok(pc_open(&keeper) == 0, "a connection kept open meanwhile"))
		return;

	/* 1. garbage bytes */
	fd = raw_connect(me, sizeof(me));
	memset(buf, 0xa5, 64);
	ok(fd >= 0 && raw_write(fd, buf, 64) == 0 && raw_closed(fd),
	   "garbage bytes: the server drops the connection");
	close(fd);
	after_bad(&keeper, me, "exceeds max_body", "garbage");

	/* 2. a truncated frame, then close */
	fd = raw_connect(me, sizeof(me));
	orfa_msg_init(&m, ORFA_OP_HELLO, 1);
	m.a.hello.magic = ORFA_MAGIC;
	m.a.hello.version = ORFA_PROTO_VERSION;
	m.name = "/";
	m.namelen = 1;
	n = raw_frame(buf, sizeof(buf), &m, 0);
	ok(fd >= 0 && raw_write(fd, buf, n - 10) == 0 &&
	   shutdown(fd, SHUT_WR) == 0 && raw_closed(fd),
	   "truncated frame then close: the connection ends");
	close(fd);
	after_bad(&keeper, me, "truncated frame", "truncated frame");

	/* 3. huge length fields */
	fd = raw_connect(me, sizeof(me));
	orfa_msg_init(&m, ORFA_OP_PING, 1);
	m.hdr.body_len = 0x7fffffff;
	orfa_hdr_encode(buf, &m.hdr);
	ok(fd >= 0 && raw_write(fd, buf, ORFA_HDR_SIZE) == 0 &&
	   raw_closed(fd), "body_len 2 GiB: dropped before allocating");
	close(fd);
	after_bad(&keeper, me, "exceeds max_body", "huge body_len");

	fd = raw_connect(me, sizeof(me));
	orfa_msg_init(&m, ORFA_OP_WRITE, 7);
	m.hdr.data_len = 0xffffffffu;
	orfa_hdr_encode(buf, &m.hdr);
	ok(fd >= 0 && raw_hello(fd) == 0 &&
	   raw_write(fd, buf, ORFA_HDR_SIZE) == 0 && raw_closed(fd),
	   "data_len 4 GiB after HELLO: dropped");
	close(fd);
	after_bad(&keeper, me, "exceeds max_data", "huge data_len");

	/* 4. a request before HELLO */
	fd = raw_connect(me, sizeof(me));
	orfa_msg_init(&m, ORFA_OP_GETATTR, 1);
	m.a.getattr.nodeid = 1;
	n = raw_frame(buf, sizeof(buf), &m, 0);
	ok(fd >= 0 && raw_write(fd, buf, n) == 0 && raw_closed(fd),
	   "GETATTR before HELLO: dropped");
	close(fd);
	after_bad(&keeper, me, "before HELLO", "request before HELLO");

	/* 5. a malformed body: namelen says 10, 3 bytes follow */
	fd = raw_connect(me, sizeof(me));
	orfa_msg_init(&m, ORFA_OP_LOOKUP, 2);
	m.a.lookup.parent = 1;
	m.name = "abc";
	m.namelen = 3;
	n = raw_frame(buf, sizeof(buf), &m, 0);
	orfa_put_le32(buf + ORFA_HDR_SIZE + ORFA_CRED_FIXED_SIZE + 8, 10);
	ok(fd >= 0 && raw_hello(fd) == 0 && raw_write(fd, buf, n) == 0 &&
	   raw_closed(fd), "LOOKUP whose name length lies: dropped");
	close(fd);
	after_bad(&keeper, me, "malformed LOOKUP", "malformed body");

	/* 6. the reply flag on a request */
	fd = raw_connect(me, sizeof(me));
	orfa_msg_init(&m, ORFA_OP_GETATTR, 3);
	m.a.getattr.nodeid = 1;
	n = raw_frame(buf, sizeof(buf), &m, 0);
	orfa_put_le16(buf + 10, ORFA_F_REPLY);
	ok(fd >= 0 && raw_hello(fd) == 0 && raw_write(fd, buf, n) == 0 &&
	   raw_closed(fd), "a request flagged as a reply: dropped");
	close(fd);
	after_bad(&keeper, me, "reply flag", "reply flag");

	/* 7. a second HELLO */
	fd = raw_connect(me, sizeof(me));
	ok(fd >= 0 && raw_hello(fd) == 0 && raw_hello(fd) < 0 &&
	   raw_closed(fd), "a second HELLO: dropped");
	close(fd);
	after_bad(&keeper, me, "second HELLO", "second HELLO");

	/* 8. unknown opcodes: answered ENOSYS, the connection lives on */
	fd = raw_connect(me, sizeof(me));
	ok(fd >= 0 && raw_hello(fd) == 0, "raw connection with HELLO");
	{
		static const uint16_t ops[] = { 0, ORFA_OP_MAX, 200, 0xffff };
		int good = 0;

		for (unsigned i = 0; i < 4; i++) {
			orfa_msg_init(&m, ORFA_OP_PING, 100 + i);
			n = raw_frame(buf, sizeof(buf), &m, 0);
			orfa_put_le16(buf + 8, ops[i]);
			if (raw_write(fd, buf, n) == 0 &&
			    raw_reply(fd, &h) == 0 && h.status == ENOSYS &&
			    h.req_id == 100 + i && h.opcode == ops[i])
				good++;
		}
		ok(good == 4, "unknown opcodes 0, %u, 200, 65535: ENOSYS "
		   "replies (%d of 4)", ORFA_OP_MAX, good);
		orfa_msg_init(&m, ORFA_OP_PING, 200);
		n = raw_frame(buf, sizeof(buf), &m, 0);
		ok(raw_write(fd, buf, n) == 0 && raw_reply(fd, &h) == 0 &&
		   h.status == 0 && h.req_id == 200,
		   "the same connection then answers PING");
	}
	close(fd);
	ok(op_ping(&keeper) == 0, "the kept connection survived everything");
	pc_close(&keeper);
}

/*
 * --park: leave the server with work in every state -- a held lock, a
 * parked SETLK, unread replies queued, an open file -- print "parked" and
 * wait to be killed.  The calling script then stops orfad, which must
 * still exit cleanly (and, under ASan, without leaks).
 */
static int park_mode(void)
{
	static struct pc a, b, slow;
	struct orfa_entry f;
	struct orfa_msg m;
	uint64_t fa, fb, fs;
	static uint8_t *buf;	/* static: lives (and is reachable) until killed */
	char name[64];

	buf = calloc(1, 1 << 20);
	snprintf(name, sizeof(name), "park.%d", (int)getpid());
	if (!buf || pc_open(&a) || pc_open(&b) || pc_open(&slow))
		return 1;
	if (op_create(&a, a.root, name, 0644, O_RDWR | O_CREAT, &f, &fa) ||
	    op_write(&a, f.nodeid, fa, 0, buf, 1 << 20, NULL, NULL) ||
	    op_setlk(&a, f.nodeid, fa, 1, F_WRLCK, 0, UINT64_MAX - 1) ||
	    op_lookup(&b, b.root, name, NULL) ||
	    op_open(&b, ORFA_OP_OPEN, f.nodeid, O_RDWR, &fb, NULL) ||
	    op_lookup(&slow, slow.root, name, NULL) ||
	    op_open(&slow, ORFA_OP_OPEN, f.nodeid, O_RDONLY, &fs, NULL))
		return 1;
	lk_req(&b, &m, ORFA_OP_SETLK, f.nodeid, fb, 2, F_WRLCK, 0, 0,
	       ORFA_LK_WAIT);
	if (pc_send(&b, &m, NULL, 0))
		return 1;
	for (int i = 0; i < 100; i++) {
		read_req(&slow, &m, f.nodeid, fs, 0, 1 << 20);
		if (pc_send(&slow, &m, NULL, 0))
			return 1;
	}
	if (op_ping(&a))
		return 1;
	printf("parked\n");
	fflush(stdout);
	for (int i = 0; i < 120; i++)
		sleep(1);
	return 0;
}

/* ---- main --------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "log", required_argument, NULL, 'l' },
		{ "backend", required_argument, NULL, 'b' },
		{ "count-file", required_argument, NULL, 'c' },
		{ "bench", required_argument, NULL, 'n' },
		{ "park", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = NULL, *count_file = NULL;
	unsigned bench = 20000;
	int park = 0;
	struct env t;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'a': addr = optarg; break;
		case 'l': g_log = optarg; break;
		case 'b': g_backend = optarg; break;
		case 'c': count_file = optarg; break;
		case 'n': bench = (unsigned)atoi(optarg); break;
		case 'p': park = 1; break;
		default:
			fprintf(stderr, "usage: orfa_probe --addr HOST:PORT "
				"--log FILE [--backend B] [--count-file F] "
				"[--bench N]\n");
			return 2;
		}
	}
	if (!addr || orfa_parse_address(addr, NULL, NULL, 0, g_host,
					sizeof(g_host), g_port,
					sizeof(g_port)) < 0) {
		fprintf(stderr, "orfa_probe: --addr HOST:PORT needed\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (park)
		return park_mode();
	diag("probing %s:%s (%s backend)", g_host, g_port, g_backend);

	memset(&t, 0, sizeof(t));
	t_hello(&t.p);
	if (t.p.c) {
		t_nodes(&t);
		t_files(&t);
		t_dirs(&t);
		t_bad_ids(&t);
		t_locks(&t);
		t_concurrent(&t);
		t_pipeline(&t);
		t_backpressure(&t);
		if (bench)
			t_bench(&t, bench);
	}
	t_version_mismatch();
	t_malformed(&t);
	pc_close(&t.p);

	if (count_file) {
		FILE *f = fopen(count_file, "w");

		if (f) {
			fprintf(f, "%d\n", g_n);
			fclose(f);
		}
	} else {
		printf("1..%d\n", g_n);
	}
	return g_failed ? 1 : 0;
}
