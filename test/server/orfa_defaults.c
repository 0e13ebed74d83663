/*
 * orfa_defaults.c - a raw client that claims to be root (uid 0, gid 0 in
 * every request's credentials, whoever runs it) against orfad, for
 * run-defaults.sh (issue 12, safe defaults).  It connects, says HELLO and
 * tries what a hostile local user would: CREATE a mode 04755 file, MKNOD
 * a character device (1,3), chmod 04755 and 02755 on a plain file; and
 * what must stay allowed: a fifo, chmod 02775 on a directory.  It prints one TAP
 * line per request with what the server answered; whether the server was
 * right is asserted by the script, which looks at the export directory
 * itself (owner, mode, type), and by the --expect mode:
 *
 *   refused   HELLO must be refused (a secure export, unprivileged port)
 *   squashed  accepted; the requests run as nobody
 *   denied    accepted, not squashed, nosuid+nodev: the four set-id and
 *             device requests must get EPERM, fifo and set-gid dir succeed
 *   allowed   accepted, not squashed, suid+dev: everything succeeds
 *   guess     node ids are the session's view's (issue 12 item 6): one
 *             connection makes private/f (private mode 0700), gives its
 *             references back and closes; a second one, as uid 1000,
 *             names f by its id: ESTALE, not f's attributes
 *
 * Usage: orfa_defaults --addr HOST:PORT --expect MODE [--port-max N]
 * (--port-max N: the connection's local port must be at most N; -N: it
 * must be above N).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "probe_lib.h"

/* req_init with the credentials of a client claiming to be root. */
static void req_root(struct pc *p, struct orfa_msg *m, unsigned op)
{
	req_init(p, m, op);
	m->cred.uid = 0;
	m->cred.gid = 0;
	m->cred.ngroups = 0;
	m->cred.umask = 0;
}

static int do_create(struct pc *p, const char *name, uint32_t mode)
{
	struct orfa_msg m, rep;

	req_root(p, &m, ORFA_OP_CREATE);
	m.a.create.parent = p->root;
	m.a.create.mode = mode;
	m.a.create.flags = O_WRONLY | O_CREAT | O_EXCL;
	m.name = name;
	m.namelen = (uint32_t)strlen(name);
	return pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
}

static int do_mknod(struct pc *p, const char *name, uint32_t mode,
		    uint64_t rdev)
{
	struct orfa_msg m, rep;

	req_root(p, &m, ORFA_OP_MKNOD);
	m.a.mknod.parent = p->root;
	m.a.mknod.mode = mode;
	m.a.mknod.rdev = rdev;
	m.name = name;
	m.namelen = (uint32_t)strlen(name);
	return pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
}

static int do_mkdir(struct pc *p, const char *name, uint32_t mode)
{
	struct orfa_msg m, rep;

	req_root(p, &m, ORFA_OP_MKDIR);
	m.a.mkdir.parent = p->root;
	m.a.mkdir.mode = mode;
	m.name = name;
	m.namelen = (uint32_t)strlen(name);
	return pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
}

/* chmod name to mode (permission bits only, as a client may send). */
static int do_chmod(struct pc *p, const char *name, uint32_t mode)
{
	struct orfa_msg m, rep;
	struct orfa_entry e;
	int st;

	st = op_lookup(p, p->root, name, &e);
	if (st)
		return st;
	req_root(p, &m, ORFA_OP_SETATTR);
	m.a.setattr.nodeid = e.nodeid;
	m.a.setattr.valid = ORFA_SET_MODE;
	m.a.setattr.mode = mode;
	return pc_call(p, &m, NULL, 0, &rep, NULL, 0, NULL);
}

static const char *st_name(int st)
{
	return st == 0 ? "ok" : st > 0 ? strerror(st) : "transport error";
}

/* The requests, with the status each must get in mode expect. */
static void run_requests(struct pc *p, const char *expect)
{
	int denied = strcmp(expect, "denied") == 0;
	int allowed = strcmp(expect, "allowed") == 0;
	int st;

	st = do_create(p, "suid", S_IFREG | 04755);
	ok(denied ? st == EPERM : allowed ? st == 0 : st >= 0,
	   "CREATE mode 04755 as uid 0: %s", st_name(st));
	st = do_mknod(p, "null", S_IFCHR | 0666, makedev(1, 3));
	ok(denied ? st == EPERM : allowed ? st == 0 : st > 0,
	   "MKNOD char device (1,3) as uid 0: %s", st_name(st));
	st = do_create(p, "plain", S_IFREG | 0755);
	ok(st == 0 || (!denied && !allowed && st > 0),
	   "CREATE mode 0755 as uid 0: %s", st_name(st));
	if (st == 0) {
		st = do_chmod(p, "plain", 04755);
		ok(denied ? st == EPERM : allowed ? st == 0 : st >= 0,
		   "SETATTR mode 04755 as uid 0: %s", st_name(st));
		st = do_chmod(p, "plain", 02755);
		ok(denied ? st == EPERM : allowed ? st == 0 : st >= 0,
		   "SETATTR mode 02755 as uid 0: %s", st_name(st));
	}
	st = do_mknod(p, "fifo", S_IFIFO | 0644, 0);
	ok(denied || allowed ? st == 0 : st >= 0,
	   "MKNOD fifo as uid 0: %s", st_name(st));
	st = do_mkdir(p, "sgdir", 0775);
	if (st == 0)
		st = do_chmod(p, "sgdir", 02775);
	ok(denied || allowed ? st == 0 : st >= 0,
	   "MKDIR, then SETATTR mode 02775 on it, as uid 0: %s",
	   st_name(st));
}

/* The "guess" mode (see the top of the file). */
static void run_guess(void)
{
	struct orfa_entry d = { 0 }, f = { 0 };
	struct orfa_msg m, rep;
	uint64_t ids[2], counts[2] = { 1, 1 };
	struct pc p;
	int st;

	st = pc_open(&p);
	if (!ok(st == 0, "first connection: HELLO: %s", st_name(st)))
		return;
	st = do_mkdir(&p, "private", 0700);
	if (st == 0)
		st = op_lookup(&p, p.root, "private", &d);
	if (st == 0) {
		req_root(&p, &m, ORFA_OP_CREATE);
		m.a.create.parent = d.nodeid;
		m.a.create.mode = S_IFREG | 0644;
		m.a.create.flags = O_WRONLY | O_CREAT | O_EXCL;
		m.name = "f";
		m.namelen = 1;
		st = pc_call(&p, &m, NULL, 0, &rep, NULL, 0, NULL);
		f = rep.a.create_rep.entry;
	}
	if (!ok(st == 0, "as uid 0: private/ (0700) and private/f: %s",
		st_name(st)))
		return;
	ids[0] = d.nodeid;
	ids[1] = f.nodeid;
	/* One reference each from MKDIR... and LOOKUP: give them all back. */
	counts[0] = 2;
	op_forget(&p, ids, counts, 2);
	op_ping(&p);
	pc_close(&p);

	st = pc_open(&p);
	if (!ok(st == 0, "second connection: HELLO: %s", st_name(st)))
		return;
	req_init(&p, &m, ORFA_OP_GETATTR);
	m.cred.uid = m.cred.gid = 1000;
	m.a.getattr.nodeid = f.nodeid;
	st = pc_call(&p, &m, NULL, 0, &rep, NULL, 0, NULL);
	ok(st == ESTALE, "as uid 1000, GETATTR of private/f by its id "
	   "%#llx: %s (ESTALE wanted)", (unsigned long long)f.nodeid,
	   st_name(st));
	st = op_lookup(&p, p.root, "private", &d);
	ok(st == 0, "LOOKUP private from the root still works: %s",
	   st_name(st));
	pc_close(&p);
}

/* The local port of p's connection, or -1. */
static int local_port(struct pc *p)
{
	char name[64];
	const char *colon;

	sock_name(orfa_conn_fd(p->c), name, sizeof(name));
	colon = strrchr(name, ':');
	return colon ? atoi(colon + 1) : -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "expect", required_argument, NULL, 'e' },
		{ "port-max", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = NULL, *expect = NULL, *pmax = NULL;
	struct orfa_msg rep;
	char reason[512];
	struct pc p;
	int ch, st;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'a': addr = optarg; break;
		case 'e': expect = optarg; break;
		case 'p': pmax = optarg; break;
		default: return 2;
		}
	}
	if (!addr || !expect ||
	    orfa_parse_address(addr, NULL, NULL, 0, g_host, sizeof(g_host),
			       g_port, sizeof(g_port)) < 0) {
		fprintf(stderr, "usage: orfa_defaults --addr HOST:PORT "
			"--expect refused|squashed|denied|allowed|guess "
			"[--port-max [-]N]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(expect, "guess") == 0) {
		run_guess();
		return g_failed ? 1 : 0;
	}
	st = pc_connect(&p);
	if (!ok(st == 0, "connect as uid %u: %s", (unsigned)geteuid(),
		st ? strerror(-st) : "ok"))
		return 1;
	if (pmax) {
		int port = local_port(&p), n = atoi(pmax);

		ok(n < 0 ? port > -n : port >= 0 && port <= n,
		   "local port %d is %s %d", port, n < 0 ? "above" : "at most",
		   n < 0 ? -n : n);
	}
	st = pc_hello_v(&p, ORFA_PROTO_VERSION, "/", &rep, reason,
			sizeof(reason));
	if (strcmp(expect, "refused") == 0) {
		ok(st > 0, "HELLO refused: %s (%s)", st_name(st), reason);
		pc_close(&p);
		return g_failed ? 1 : 0;
	}
	if (!ok(st == 0, "HELLO accepted: %s %s", st_name(st), reason)) {
		pc_close(&p);
		return 1;
	}
	run_requests(&p, expect);
	pc_close(&p);
	return g_failed ? 1 : 0;
}
