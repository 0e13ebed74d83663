/*
 * orfa_reload.c - orfad's SIGHUP reload (issue 17), TAP without a plan,
 * driven by run-reload.sh.  Raw protocol clients (probe_lib.c) against a
 * real orfad serving an exports file with the exports keep, chg and gone:
 *
 *   --mode file:     sessions on all three; the file is replaced by one
 *                    with keep unchanged, chg made ro, gone removed and
 *                    added new; SIGHUP.  Then: keep's open session goes on
 *                    (same file handle, same node ids) and a new one sees
 *                    its files; added takes a HELLO; gone refuses a new
 *                    HELLO while its old session still answers; chg's old
 *                    session gets EROFS.  Then a broken file and SIGHUP:
 *                    the error is logged and the exports stay as they are;
 *                    the same for a file naming a missing directory.
 *   --mode shortcut: orfad --ramfs; SIGHUP is logged and ignored.
 *
 * Not here: starting orfad (the script), files under a directory export
 * (the reload code does not depend on the backend).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe_lib.h"

#define OPTS	"*  rw,no_root_squash,insecure"

static const char *g_file;
static pid_t g_pid;

static int write_file(const char *path, const char *text)
{
	char tmp[4200];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	fputs(text, f);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

/* Open a session on export ex: 0, or the HELLO refusal (> 0). */
static int session(struct pc *p, const char *ex)
{
	g_export = ex;
	return pc_open(p);
}

/* Create file name in p's root and write 4 bytes: 0 and *node, *fh. */
static int make_file(struct pc *p, const char *name, uint64_t *node,
		     uint64_t *fh)
{
	struct orfa_entry e;
	uint64_t w;
	int st = op_create(p, p->root, name, 0644, O_RDWR, &e, fh);

	if (st)
		return st;
	*node = e.nodeid;
	return op_write(p, e.nodeid, *fh, 0, "abcd", 4, &w, NULL);
}

static void after_reload(struct pc *keep, uint64_t kn, uint64_t kfh,
			 struct pc *chg, struct pc *gone)
{
	struct orfa_entry e;
	struct orfa_attr a;
	struct pc p;
	uint64_t w;
	int st;

	ok(op_write(keep, kn, kfh, 4, "efgh", 4, &w, NULL) == 0,
	   "keep: the open session writes through its old file handle");
	memset(&a, 0, sizeof(a));
	st = op_getattr(keep, kn, 0, &a);
	ok(st == 0 && a.size == 8, "keep: its node id still answers (size "
	   "%llu)", (unsigned long long)a.size);
	if (ok(session(&p, "/keep") == 0, "keep: a new session is accepted")) {
		ok(op_lookup(&p, p.root, "f", &e) == 0 && e.attr.size == 8,
		   "keep: the new session sees the file the old one wrote");
		pc_close(&p);
	}
	if (ok(session(&p, "/added") == 0, "added: a new session is "
	       "accepted")) {
		ok(op_mkdir(&p, p.root, "d", 0755, &e) == 0,
		   "added: it is writable");
		pc_close(&p);
	}
	ok(session(&p, "/gone") > 0, "gone: a new session is refused");
	ok(op_getattr(gone, gone->root, 0, &a) == 0,
	   "gone: the session opened before the reload goes on");
	ok(op_create(chg, chg->root, "h", 0644, 0, &e, &w) == EROFS,
	   "chg (now ro): its old session gets EROFS on create");
}

static void run_file(void)
{
	struct pc keep, chg, gone, p;
	uint64_t kn, kfh, n, fh;
	char text[1024];

	if (!ok(session(&keep, "/keep") == 0 && session(&chg, "/chg") == 0 &&
		session(&gone, "/gone") == 0, "sessions on keep, chg, gone"))
		return;
	ok(make_file(&keep, "f", &kn, &kfh) == 0, "keep: file f written");
	ok(make_file(&chg, "g", &n, &fh) == 0, "chg: file g written");
	snprintf(text, sizeof(text), "# edited\nkeep ramfs:16M " OPTS "\n"
		 "chg ramfs:16M * ro,no_root_squash,insecure\n"
		 "added ramfs:16M " OPTS "\n");
	ok(write_file(g_file, text) == 0 && kill(g_pid, SIGHUP) == 0,
	   "exports file replaced, SIGHUP sent");
	ok(log_has("reloaded", "3 exports (1 added, 1 removed, 1 changed)"),
	   "orfad logs the reload with what changed");
	after_reload(&keep, kn, kfh, &chg, &gone);

	ok(write_file(g_file, "keep /no/such ramfs:1M\n") == 0 &&
	   kill(g_pid, SIGHUP) == 0, "broken exports file, SIGHUP sent");
	ok(log_has("reload: bad exports file", "still serving"),
	   "orfad logs the bad file and keeps its exports");
	ok(op_ping(&keep) == 0, "keep: the old session still answers");
	if (ok(session(&p, "/added") == 0, "added: still served"))
		pc_close(&p);

	/* Parses, but a new source cannot be opened. */
	ok(write_file(g_file, "keep ramfs:16M " OPTS "\n"
		      "bad /nonexistent/orfa-reload " OPTS "\n") == 0 &&
	   kill(g_pid, SIGHUP) == 0, "export of a missing directory, SIGHUP "
	   "sent");
	ok(log_has("reload: cannot serve the new exports", NULL),
	   "orfad logs it and keeps its exports");
	if (ok(session(&p, "/added") == 0, "added: still served"))
		pc_close(&p);
	ok(session(&p, "/bad") > 0, "bad: not served");
	ok(op_ping(&keep) == 0, "keep: the old session still answers");
	ok(kill(g_pid, 0) == 0, "orfad is still running");
	pc_close(&keep);
	pc_close(&chg);
	pc_close(&gone);
}

static void run_shortcut(void)
{
	struct pc p;

	if (!ok(session(&p, "/") == 0, "session on the --ramfs export"))
		return;
	ok(kill(g_pid, SIGHUP) == 0, "SIGHUP sent");
	ok(log_has("caught SIGHUP", "ignored"), "orfad logs it and ignores it");
	ok(op_ping(&p) == 0, "the session still answers");
	pc_close(&p);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "log", required_argument, NULL, 'l' },
		{ "pid", required_argument, NULL, 'p' },
		{ "file", required_argument, NULL, 'f' },
		{ "mode", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = NULL, *mode = "file";
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'a': addr = optarg; break;
		case 'l': g_log = optarg; break;
		case 'p': g_pid = (pid_t)atoi(optarg); break;
		case 'f': g_file = optarg; break;
		case 'm': mode = optarg; break;
		default: return 2;
		}
	}
	if (!addr || !g_log || g_pid <= 0 ||
	    (strcmp(mode, "file") == 0 && !g_file) ||
	    orfa_parse_address(addr, NULL, NULL, 0, g_host, sizeof(g_host),
			       g_port, sizeof(g_port)) < 0) {
		fprintf(stderr, "usage: orfa_reload --addr HOST:PORT --log LOG "
			"--pid PID [--mode file --file EXPORTS | --mode "
			"shortcut]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(mode, "shortcut") == 0)
		run_shortcut();
	else
		run_file();
	return g_failed ? 1 : 0;
}
