/*
 * orfa_restart.c - node ids across an orfad restart (issue 6), driven by
 * run-restart.sh.
 *
 *   orfa_restart --addr A --before FILE   make d/, d/f (with content) and
 *       gone, write their node ids to FILE, print "ready" and hold the
 *       connection (so the server still holds the references) until
 *       killed.
 *   orfa_restart --addr A --after FILE --backend native|ramfs
 *       against a restarted orfad: native (with --state-dir): the old ids
 *       still name the same inodes, lookups hand the same ids out again,
 *       the file opens and reads back, and the id of a file deleted while
 *       the server was down is ESTALE; ramfs: every old id but the root's
 *       is ESTALE.
 * TAP lines without a plan (the script prints it).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe_lib.h"

static const char content[] = "data that must survive a server restart";

static int before(const char *file)
{
	struct orfa_entry d, f, g;
	uint64_t fh = 0, gfh = 0, written = 0;
	struct pc p;
	FILE *out;
	int st;

	memset(&p, 0, sizeof(p));
	if (pc_open(&p)) {
		ok(0, "connect and HELLO");
		return 1;
	}
	st = op_mkdir(&p, p.root, "d", 0755, &d);
	if (st == 0)
		st = op_create(&p, d.nodeid, "f", 0644, O_RDWR, &f, &fh);
	if (st == 0)
		st = op_write(&p, f.nodeid, fh, 0, content, sizeof(content),
			      &written, NULL);
	if (st == 0)
		st = op_fh(&p, ORFA_OP_FSYNC, f.nodeid, fh, 0);
	if (st == 0)
		st = op_create(&p, p.root, "gone", 0644, O_RDWR, &g, &gfh);
	if (!ok(st == 0 && written == sizeof(content),
		"before: mkdir d, create d/f with data, create gone (%d)", st))
		return 1;
	out = fopen(file, "w");
	if (!out)
		return 1;
	fprintf(out, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %"
		PRIu64 "\n", p.root, d.nodeid, f.nodeid, g.nodeid,
		f.attr.ino);
	fclose(out);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();	/* hold the references until killed */
}

static int after(const char *file, const char *backend)
{
	uint64_t root, did, fid, gid, fino, fh = 0;
	struct orfa_entry e;
	struct orfa_attr a;
	char buf[256];
	size_t len = 0;
	struct pc p;
	FILE *in;
	int st;

	in = fopen(file, "r");
	if (!in || fscanf(in, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
			  " %" SCNu64, &root, &did, &fid, &gid, &fino) != 5) {
		ok(0, "ids of the first server read back");
		return 1;
	}
	fclose(in);
	memset(&p, 0, sizeof(p));
	if (!ok(pc_open(&p) == 0, "connect to the restarted server"))
		return 1;
	ok(p.root == root, "same root id after the restart");
	if (strcmp(backend, "ramfs") == 0) {
		st = op_getattr(&p, did, 0, NULL);
		ok(st == ESTALE, "ramfs: the old directory id is ESTALE (%d)",
		   st);
		st = op_getattr(&p, fid, 0, NULL);
		ok(st == ESTALE, "ramfs: the old file id is ESTALE (%d)", st);
		st = op_mkdir(&p, p.root, "d", 0755, &e);
		st = op_getattr(&p, did, 0, NULL);
		ok(st == ESTALE, "ramfs: ... also once a new d exists (%d)",
		   st);
		pc_close(&p);
		return 0;
	}
	st = op_getattr(&p, did, 0, &a);
	ok(st == 0 && (a.mode & S_IFMT) == S_IFDIR,
	   "the old id of d still names the directory (%d)", st);
	st = op_getattr(&p, fid, 0, &a);
	ok(st == 0 && a.ino == fino && a.size == sizeof(content),
	   "the old id of d/f still names the file (%d, size %llu)", st,
	   (unsigned long long)a.size);
	st = op_lookup(&p, p.root, "d", &e);
	ok(st == 0 && e.nodeid == did, "LOOKUP of d gives the same id (%d)",
	   st);
	st = op_lookup(&p, did, "f", &e);
	ok(st == 0 && e.nodeid == fid,
	   "LOOKUP of f in the old directory id gives the same id (%d)", st);
	st = op_open(&p, ORFA_OP_OPEN, fid, O_RDONLY, &fh, NULL);
	if (st == 0)
		st = op_read(&p, fid, fh, 0, sizeof(buf), buf, &len);
	ok(st == 0 && len == sizeof(content) &&
	   memcmp(buf, content, len) == 0,
	   "the old file id opens and reads back its data (%d, %zu bytes)",
	   st, len);
	st = op_getattr(&p, gid, 0, NULL);
	ok(st == ESTALE,
	   "the id of a file deleted while the server was down is ESTALE "
	   "(%d)", st);
	pc_close(&p);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "before", required_argument, NULL, 'B' },
		{ "after", required_argument, NULL, 'A' },
		{ "backend", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = NULL, *bfile = NULL, *afile = NULL;
	const char *backend = "native";
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'a': addr = optarg; break;
		case 'B': bfile = optarg; break;
		case 'A': afile = optarg; break;
		case 'b': backend = optarg; break;
		default:
			return 2;
		}
	}
	if (!addr || (!bfile == !afile) ||
	    orfa_parse_address(addr, NULL, NULL, 0, g_host, sizeof(g_host),
			       g_port, sizeof(g_port)) < 0) {
		fprintf(stderr, "usage: orfa_restart --addr HOST:PORT "
			"(--before FILE | --after FILE [--backend B])\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (bfile)
		return before(bfile);
	after(afile, backend);
	return g_failed ? 1 : 0;
}
