/*
 * make_seeds.c - writes the seed corpus of fuzz_server: one file per
 * scenario, each a selector byte (1 = the harness sends HELLO first)
 * followed by valid request frames built with the codec.  Node and file
 * ids are the ones a fresh RAM backend hands out first (root = 1, then
 * small ids); the fuzzer mutates from there.
 *   make_seeds DIR            seeds of fuzz_server
 *   make_seeds --client DIR   seeds of fuzz_client: valid replies to the
 *                             calls that harness makes; req_id k (0..6)
 *                             names the k-th call (the harness rewrites it)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static uint8_t out[1 << 16];
static size_t outlen;
static uint64_t rid;

static void frame(struct orfa_msg *m, const void *data, uint32_t dlen)
{
	m->cred.uid = 0;
	m->cred.umask = 022;
	ssize_t n = orfa_req_encode(m, out + outlen + ORFA_HDR_SIZE,
				    sizeof(out) - outlen - ORFA_HDR_SIZE - dlen);
	if (n < 0) {
		fprintf(stderr, "encode %s: %zd\n", orfa_op_name(m->hdr.opcode), n);
		exit(1);
	}
	m->hdr.data_len = dlen;
	orfa_hdr_encode(out + outlen, &m->hdr);
	outlen += ORFA_HDR_SIZE + (size_t)n;
	if (dlen)
		memcpy(out + outlen, data, dlen);
	outlen += dlen;
}

static struct orfa_msg *msg(unsigned op)
{
	static struct orfa_msg m;
	orfa_msg_init(&m, op, ++rid);
	return &m;
}

static void named(struct orfa_msg *m, const char *n)
{
	m->name = n;
	m->namelen = (uint32_t)strlen(n);
}

static void save(const char *dir, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(out, 1, outlen, f) != outlen || fclose(f)) {
		perror(path);
		exit(1);
	}
	outlen = 1;
}

static void reply(unsigned op, uint64_t k, const void *data, uint32_t dlen)
{
	static struct orfa_msg m;
	orfa_msg_init(&m, op, k);
	m.hdr.flags = ORFA_F_REPLY;
	switch (op) {
	case ORFA_OP_GETATTR:
		m.a.attr.mode = 0100644; m.a.attr.nlink = 1; m.a.attr.size = 100;
		break;
	case ORFA_OP_LOOKUP:
		m.a.entry.nodeid = 2; m.a.entry.attr.mode = 0100644;
		m.a.entry.attr.nlink = 1;
		break;
	case ORFA_OP_GETXATTR:
		m.a.xattr_rep.size = dlen;
		break;
	case ORFA_OP_OPEN:
		m.a.open_rep.fh = 5; m.a.open_rep.attr.mode = 0100644;
		break;
	case ORFA_OP_CREATE:
		m.a.create_rep.entry.nodeid = 3; m.a.create_rep.fh = 7;
		m.a.create_rep.entry.attr.mode = 0100644;
		break;
	default:
		break;
	}
	ssize_t n = orfa_rep_encode(&m, out + outlen + ORFA_HDR_SIZE,
				    sizeof(out) - outlen - ORFA_HDR_SIZE - dlen);
	if (n < 0)
		exit(1);
	m.hdr.data_len = dlen;
	orfa_hdr_encode(out + outlen, &m.hdr);
	outlen += ORFA_HDR_SIZE + (size_t)n;
	if (dlen)
		memcpy(out + outlen, data, dlen);
	outlen += dlen;
}

static int client_seeds(const char *d)
{
	uint8_t dir[1024];
	size_t off = 0;
	struct orfa_dirent de = { 2, 1, 4, 1 };
	struct orfa_entry e = { 0 };

	outlen = 0;
	reply(ORFA_OP_GETATTR, 0, NULL, 0);
	reply(ORFA_OP_LOOKUP, 1, NULL, 0);
	reply(ORFA_OP_READ, 2, "some file data", 14);
	de.ino = 1; de.cookie = 1; de.namelen = 1;
	orfa_dirent_put(dir, sizeof(dir), &off, 1, &de, &e, ".");
	de.cookie = 2; de.namelen = 2;
	orfa_dirent_put(dir, sizeof(dir), &off, 1, &de, &e, "..");
	e.nodeid = 9; e.attr.mode = 0100644; e.attr.nlink = 1;
	de.ino = 9; de.cookie = 3; de.type = 8; de.namelen = 4;
	orfa_dirent_put(dir, sizeof(dir), &off, 1, &de, &e, "file");
	reply(ORFA_OP_READDIRPLUS, 3, dir, (uint32_t)off);
	reply(ORFA_OP_GETXATTR, 4, "value", 5);
	reply(ORFA_OP_OPEN, 5, NULL, 0);
	reply(ORFA_OP_CREATE, 6, NULL, 0);
	save(d, "all-replies");
	outlen = 0;
	struct orfa_msg m;
	for (unsigned k = 0; k < 7; k++) {	/* every call fails with an errno */
		static const unsigned ops[] = { ORFA_OP_GETATTR, ORFA_OP_LOOKUP,
			ORFA_OP_READ, ORFA_OP_READDIRPLUS, ORFA_OP_GETXATTR,
			ORFA_OP_OPEN, ORFA_OP_CREATE };
		orfa_msg_init(&m, ops[k], k);
		m.hdr.flags = ORFA_F_REPLY;
		m.hdr.status = 2 + k;
		orfa_hdr_encode(out + outlen, &m.hdr);
		outlen += ORFA_HDR_SIZE;
	}
	save(d, "all-errors");
	return 0;
}

/* Lookups, GETATTR, STATFS and PING on the root. */
static void seeds_lookup(const char *d)
{
	struct orfa_msg *m;

	m = msg(ORFA_OP_LOOKUP); m->a.lookup.parent = 1; named(m, "missing"); frame(m, NULL, 0);
	m = msg(ORFA_OP_GETATTR); m->a.getattr.nodeid = 1; frame(m, NULL, 0);
	m = msg(ORFA_OP_STATFS); m->a.node.nodeid = 1; frame(m, NULL, 0);
	m = msg(ORFA_OP_PING); frame(m, NULL, 0);
	save(d, "lookup-getattr-statfs");
}

/* Create a file, write, read, resize, allocate, seek, copy, sync, close. */
static void seeds_file_io(const char *d, const char *data)
{
	struct orfa_msg *m;

	m = msg(ORFA_OP_CREATE); m->a.create.parent = 1; m->a.create.mode = 0100644;
	m->a.create.flags = 02 | 0100; named(m, "f"); frame(m, NULL, 0);
	m = msg(ORFA_OP_WRITE); m->a.write.nodeid = 2; m->a.write.fh = 1; frame(m, data, 200);
	m = msg(ORFA_OP_READ); m->a.read.nodeid = 2; m->a.read.fh = 1; m->a.read.size = 4096; frame(m, NULL, 0);
	m = msg(ORFA_OP_SETATTR); m->a.setattr.nodeid = 2; m->a.setattr.valid = ORFA_SET_SIZE | ORFA_SET_MODE;
	m->a.setattr.size = 10; m->a.setattr.mode = 0600; frame(m, NULL, 0);
	m = msg(ORFA_OP_FALLOCATE); m->a.fallocate.nodeid = 2; m->a.fallocate.fh = 1; m->a.fallocate.length = 1 << 20; frame(m, NULL, 0);
	m = msg(ORFA_OP_LSEEK); m->a.lseek.nodeid = 2; m->a.lseek.fh = 1; m->a.lseek.whence = 3; frame(m, NULL, 0);
	m = msg(ORFA_OP_COPY_FILE_RANGE); m->a.copy.nodeid_in = 2; m->a.copy.fh_in = 1;
	m->a.copy.nodeid_out = 2; m->a.copy.fh_out = 1; m->a.copy.off_out = 4096; m->a.copy.len = 100; frame(m, NULL, 0);
	m = msg(ORFA_OP_FSYNC); m->a.fh.nodeid = 2; m->a.fh.fh = 1; frame(m, NULL, 0);
	m = msg(ORFA_OP_FLUSH); m->a.fh.nodeid = 2; m->a.fh.fh = 1; m->a.fh.lock_owner = 7; frame(m, NULL, 0);
	m = msg(ORFA_OP_RELEASE); m->a.fh.nodeid = 2; m->a.fh.fh = 1; frame(m, NULL, 0);
	save(d, "file-io");
}

/* mkdir, mknod, symlink, readlink, link, rename, access, unlink, rmdir. */
static void seeds_namespace(const char *d)
{
	struct orfa_msg *m;

	m = msg(ORFA_OP_MKDIR); m->a.mkdir.parent = 1; m->a.mkdir.mode = 040755; named(m, "d"); frame(m, NULL, 0);
	m = msg(ORFA_OP_MKNOD); m->a.mknod.parent = 2; m->a.mknod.mode = 010644; named(m, "fifo"); frame(m, NULL, 0);
	m = msg(ORFA_OP_SYMLINK); m->a.symlink.parent = 2; named(m, "l"); m->name2 = "../../etc"; m->name2len = 9; frame(m, NULL, 0);
	m = msg(ORFA_OP_READLINK); m->a.node.nodeid = 4; frame(m, NULL, 0);
	m = msg(ORFA_OP_LINK); m->a.link.nodeid = 3; m->a.link.newparent = 1; named(m, "hard"); frame(m, NULL, 0);
	m = msg(ORFA_OP_RENAME); m->a.rename.parent = 1; m->a.rename.newparent = 2; named(m, "hard");
	m->name2 = "moved"; m->name2len = 5; m->a.rename.flags = ORFA_RENAME_NOREPLACE; frame(m, NULL, 0);
	m = msg(ORFA_OP_ACCESS); m->a.access.nodeid = 2; m->a.access.mask = 7; frame(m, NULL, 0);
	m = msg(ORFA_OP_UNLINK); m->a.unlink.parent = 2; named(m, "moved"); frame(m, NULL, 0);
	m = msg(ORFA_OP_RMDIR); m->a.unlink.parent = 1; named(m, "d"); frame(m, NULL, 0);
	save(d, "namespace");
}

/* Open and read the root directory both ways, sync, close. */
static void seeds_readdir(const char *d)
{
	struct orfa_msg *m;

	m = msg(ORFA_OP_OPENDIR); m->a.open.nodeid = 1; frame(m, NULL, 0);
	m = msg(ORFA_OP_READDIRPLUS); m->a.readdir.nodeid = 1; m->a.readdir.fh = 1; m->a.readdir.size = 4096; frame(m, NULL, 0);
	m = msg(ORFA_OP_READDIR); m->a.readdir.nodeid = 1; m->a.readdir.fh = 1; m->a.readdir.cookie = 2; m->a.readdir.size = 512; frame(m, NULL, 0);
	m = msg(ORFA_OP_FSYNCDIR); m->a.fh.nodeid = 1; m->a.fh.fh = 1; frame(m, NULL, 0);
	m = msg(ORFA_OP_RELEASEDIR); m->a.fh.nodeid = 1; m->a.fh.fh = 1; frame(m, NULL, 0);
	save(d, "readdir");
}

/* Set, get, list and remove an extended attribute. */
static void seeds_xattr(const char *d)
{
	struct orfa_msg *m;

	m = msg(ORFA_OP_SETXATTR); m->a.setxattr.nodeid = 1; named(m, "user.k"); frame(m, "value", 5);
	m = msg(ORFA_OP_GETXATTR); m->a.getxattr.nodeid = 1; m->a.getxattr.size = 64; named(m, "user.k"); frame(m, NULL, 0);
	m = msg(ORFA_OP_LISTXATTR); m->a.getxattr.nodeid = 1; m->a.getxattr.size = 0; frame(m, NULL, 0);
	m = msg(ORFA_OP_REMOVEXATTR); m->a.removexattr.nodeid = 1; named(m, "user.k"); frame(m, NULL, 0);
	save(d, "xattr");
}

/* Open a file and take POSIX and flock locks. */
static void seeds_locks(const char *d)
{
	struct orfa_msg *m;

	m = msg(ORFA_OP_OPEN); m->a.open.nodeid = 1; m->a.open.flags = 0; frame(m, NULL, 0);
	m = msg(ORFA_OP_SETLK); m->a.lk.nodeid = 1; m->a.lk.fh = 1; m->a.lk.owner = 9;
	m->a.lk.lock.end = 100; m->a.lk.lock.type = 1; frame(m, NULL, 0);
	m = msg(ORFA_OP_GETLK); m->a.lk.nodeid = 1; m->a.lk.fh = 1; m->a.lk.owner = 10;
	m->a.lk.lock.end = UINT64_MAX; m->a.lk.lock.type = 1; frame(m, NULL, 0);
	m = msg(ORFA_OP_FLOCK); m->a.flock.nodeid = 1; m->a.flock.fh = 1; m->a.flock.owner = 9; m->a.flock.op = 2 | 4; frame(m, NULL, 0);
	save(d, "locks");
}

/* Look a file up, then FORGET three nodes in one message. */
static void seeds_forget(const char *d)
{
	uint8_t fl[3 * ORFA_FORGET_ONE_SIZE];
	struct orfa_msg *m;

	for (unsigned i = 0; i < 3; i++) {
		struct orfa_forget_one f = { 2 + i, 1 };
		orfa_forget_put(fl, i, &f);
	}
	m = msg(ORFA_OP_LOOKUP); m->a.lookup.parent = 1; named(m, "f"); frame(m, NULL, 0);
	m = msg(ORFA_OP_FORGET); m->a.forget.count = 3; frame(m, fl, sizeof(fl));
	save(d, "forget");
}

/* A request with no HELLO before it: the server must refuse. */
static void seeds_no_hello(const char *d)
{
	struct orfa_msg *m;

	out[0] = 0;		/* no HELLO: the server must refuse */
	m = msg(ORFA_OP_GETATTR); m->a.getattr.nodeid = 1; frame(m, NULL, 0);
	save(d, "no-hello");
}

/* The fuzz_server corpus, one file per scenario; request ids run on
 * across the files. */
int main(int argc, char **argv)
{
	char data[256];
	const char *d;

	if (argc == 3 && strcmp(argv[1], "--client") == 0)
		return client_seeds(argv[2]);
	if (argc != 2)
		return 2;
	d = argv[1];
	memset(data, 'x', sizeof(data));
	out[0] = 1;
	outlen = 1;

	seeds_lookup(d);
	seeds_file_io(d, data);
	seeds_namespace(d);
	seeds_readdir(d);
	seeds_xattr(d);
	seeds_locks(d);
	seeds_forget(d);
	seeds_no_hello(d);
	return 0;
}
