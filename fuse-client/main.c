/*
 * main.c - the orfa command: parse `orfa HOST[:PORT]:/[SUBDIR] MOUNTPOINT
 * [-o OPTIONS] [-f] [-d]` (the form mount.fuse3 uses for `mount -t
 * fuse.orfa` and fstab), connect to orfad, mount, serve until unmounted.
 * The options and the source are parsed in cli.c; this file runs the
 * stages, forwards libfuse's messages to our log, and forks into the
 * background.
 *
 * Order matters for the user: every bad option, bad source or unreachable
 * server is reported before anything is mounted; `orfa` (and so `mount`)
 * returns only once the file system is mounted and served.  Unless -f, the
 * process forks first and the child does all the work, telling the waiting
 * parent how it went: so the connections, threads and (later) RDMA
 * resources are all created in the process that keeps them, which
 * fuse_daemonize() after the mount could not give us.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ops.h"
#include "log.h"
#include "stats.h"
#include "transport.h"

#include <fuse_log.h>
#include <fuse_opt.h>

static int daemonized;

/*
 * libfuse's messages.  libfuse writes one line in several calls, so pieces
 * are gathered per thread up to the newline.  Before detaching, errors go
 * to stderr as libfuse wrote them ("fuse: bad mount point ..."); after,
 * and for debug traces, through our log (syslog once detached).
 */
__attribute__((format(printf, 2, 0)))
static void fuse_log_to_orfa(enum fuse_log_level level, const char *fmt,
			     va_list ap)
{
	static __thread char line[1024];
	static __thread size_t len;
	enum orfa_log_level l;

	vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	len = strlen(line);
	if (len == 0 || (line[len - 1] != '\n' && len < sizeof(line) - 1))
		return;
	if (level <= FUSE_LOG_ERR)
		l = ORFA_LOG_ERR;
	else if (level == FUSE_LOG_WARNING)
		l = ORFA_LOG_WARNING;
	else if (level <= FUSE_LOG_INFO)
		l = ORFA_LOG_INFO;
	else
		l = ORFA_LOG_DEBUG;
	if (!daemonized && l <= ORFA_LOG_WARNING)
		fputs(line, stderr);
	else if (l == ORFA_LOG_DEBUG)
		fputs(line, stderr);	/* -d: libfuse's request trace */
	else
		orfa_log(l, "%s", line);
	len = 0;
	line[0] = '\0';
}

/*
 * Kernel readahead for this mount: FUSE's INIT cannot raise it above the
 * kernel's 128 KiB default, so reads would be 128 KiB requests.  Raise the
 * mount's own bdi to the request size (best effort: needs root; the bdi
 * goes away with the mount).  The bdi is found by device number in
 * /proc/self/mountinfo: stat() on the mount point would call into this
 * very file system before it serves.
 */
static void raise_readahead(const char *mountpoint, unsigned kb)
{
	char line[4096], path[96], want[PATH_MAX * 4 + 1], *o = want;
	unsigned maj = 0, min = 0, found = 0, cur;
	FILE *f;

	/* mountinfo escapes blanks and backslashes as \ooo */
	for (const char *s = mountpoint; *s && o < want + sizeof(want) - 5; s++) {
		if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\\')
			o += sprintf(o, "\\%03o", (unsigned char)*s);
		else
			*o++ = *s;
	}
	*o = '\0';
	f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned a, b;
		char mp[sizeof(line)];

		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &a, &b, mp) == 3 &&
		    strcmp(mp, want) == 0 && strstr(line, " - fuse.")) {
			maj = a;
			min = b;
			found = 1;	/* the last one is ours */
		}
	}
	fclose(f);
	if (!found)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj,
		 min);
	f = fopen(path, "r+");
	if (!f)
		return;
	if (fscanf(f, "%u", &cur) == 1 && cur < kb) {
		rewind(f);
		fprintf(f, "%u\n", kb);
	}
	if (fclose(f) != 0)
		log_debug("cannot raise readahead of %s: %s", path,
			  strerror(errno));
}

/* ---- background: fork first, report success once mounted -------------- */

/* Parent: wait for the child's verdict and exit with it.  Child: returns
 * the pipe to report on. */
static int daemon_start(void)
{
	int p[2];
	pid_t pid;
	char status = 1;

	if (pipe(p) < 0) {
		fprintf(stderr, "orfa: pipe: %s\n", strerror(errno));
		exit(1);
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "orfa: fork: %s\n", strerror(errno));
		exit(1);
	}
	if (pid > 0) {
		close(p[1]);
		while (read(p[0], &status, 1) < 0 && errno == EINTR)
			;
		_exit(status == 0 ? 0 : 1);
	}
	close(p[0]);
	if (setsid() < 0)
		log_warn("setsid: %s", strerror(errno));
	return p[1];
}

/* Child, mounted and serving: detach from the terminal, release the
 * parent. */
static void daemon_ready(int fd)
{
	int nullfd;
	char ok = 0;

	if (chdir("/") < 0)
		log_warn("chdir /: %s", strerror(errno));
	nullfd = open("/dev/null", O_RDWR);
	if (nullfd >= 0) {
		dup2(nullfd, 0);
		dup2(nullfd, 1);
		dup2(nullfd, 2);
		if (nullfd > 2)
			close(nullfd);
	}
	orfa_log_use_syslog();
	daemonized = 1;
	if (write(fd, &ok, 1) != 1)
		log_warn("cannot report to the parent: %s", strerror(errno));
	close(fd);
}

/* ---- the stages of main ------------------------------------------------- */

/* libfuse's own options: -f, -d, -s, the mount point (a missing or bad
 * one fails here).  0 to go on, 1 when done, -1 after an error. */
static int fuse_cmdline(struct fuse_args *args, struct fuse_cmdline_opts *fo)
{
	if (fuse_parse_cmdline(args, fo) != 0)
		return -1;
	if (!fo->mountpoint) {
		fprintf(stderr, "orfa: missing mount point; try --help\n");
		return -1;
	}
	if (fo->show_help || fo->show_version)	/* unreachable: our keys */
		return 1;
	if (fo->debug)
		orfa_log_set_level(ORFA_LOG_DEBUG);
	/* 1 MiB read sinks: keep them on the heap rather than mmap each. */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	return 0;
}

/* Connect to orfad (key: the loaded key when c->key_file, wiped here once
 * the handshake is done) and fill m from what HELLO granted.  0 or -1
 * after printing why. */
static int client_open(struct orfa_mount *m, const struct cli *c,
		       const struct target *t, struct orfa_key *key)
{
	struct orfa_client_cfg cfg;
	char err[512];
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	cfg.transport = c->transport ? c->transport : "tcp";
	cfg.host = t->host;
	cfg.port = t->use_port;
	cfg.export_path = t->path;
	cfg.nconns = c->conns;
	cfg.timeout_ms = (int)(c->timeout * 1000 + 0.5);
	cfg.max_data = ORFA_DEFAULT_MAX_DATA;
	cfg.key = c->key_file ? key : NULL;
	cfg.integrity_only = c->integrity_only;
	cfg.reconnect = c->reconnect;
	cfg.rdma_buf_size = c->rdma_buf_size;
	cfg.rdma_credits = c->rdma_credits;
	rc = orfa_client_connect(&cfg, &m->cl, err, sizeof(err));
	if (c->key_file)
		orfa_key_wipe(key);	/* only the handshake needs it */
	if (rc < 0) {
		fprintf(stderr, "orfa: %s\n", err);
		return -1;
	}
	orfa_client_set_reconnect_hook(m->cl, orfa_reopen_hook, m);
	m->root = orfa_client_info(m->cl)->root_nodeid;
	m->features = orfa_client_info(m->cl)->features;
	m->max_data = orfa_client_info(m->cl)->max_data;
	log_info("connected to %s:%s, export %s (root node %llu, max_data %u, "
		 "features 0x%llx)", t->host, t->use_port, t->path,
		 (unsigned long long)m->root, m->max_data,
		 (unsigned long long)m->features);
	return 0;
}

/* Serve FUSE requests until unmounted or signalled.  Returns main's exit
 * status. */
static int serve(struct fuse_session *se, const struct fuse_cmdline_opts *fo)
{
	int rc;

	if (fo->singlethread) {
		rc = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *lc = fuse_loop_cfg_create();

		if (!lc) {
			log_err("out of memory");
			return 1;
		}
		fuse_loop_cfg_set_clone_fd(lc, (unsigned)fo->clone_fd);
		/* UINT_MAX: not given, keep libfuse's defaults. */
		if (fo->max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(lc, fo->max_idle_threads);
		if (fo->max_threads != UINT_MAX)
			fuse_loop_cfg_set_max_threads(lc, fo->max_threads);
		rc = fuse_session_loop_mt(se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	/* Unmounted (0) or stopped by SIGINT/SIGTERM/SIGHUP (the signal
	 * number): both are a clean end. */
	if (rc == 0 || rc == SIGINT || rc == SIGTERM || rc == SIGHUP)
		return 0;
	log_err("session ended: %s", rc < 0 ? strerror(-rc) : "error");
	return 1;
}

/* Mount, start the client's threads, tell a waiting parent (*report_fd),
 * serve until the end, unmount.  Returns main's exit status. */
static int mount_and_serve(struct fuse_session *se, struct orfa_mount *m,
			   const struct fuse_cmdline_opts *fo, int *report_fd)
{
	int ret = 1;

	if (fuse_set_signal_handlers(se) != 0)
		return 1;
	if (fuse_session_mount(se, fo->mountpoint) != 0)
		goto out_signals;
	raise_readahead(fo->mountpoint, (m->max_data < (1u << 20) ?
					 m->max_data : (1u << 20)) / 1024);
	if (orfa_client_start(m->cl) < 0)
		goto out_unmount;
	if (*report_fd >= 0) {
		daemon_ready(*report_fd);
		*report_fd = -1;
	}
	ret = serve(se, fo);

out_unmount:
	/* Answer whatever is still pending before the session goes away. */
	orfa_client_stop(m->cl);
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
	return ret;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct cli c;
	struct fuse_cmdline_opts fo;
	struct orfa_mount m;
	struct orfa_key key;
	struct fuse_session *se = NULL;
	struct target t;
	char err[512];
	int report_fd = -1, ret = 1, rc;

	/* "stats" is never a source (HOST[:PORT]:/...): the subcommand. */
	if (argc >= 2 && strcmp(argv[1], "stats") == 0)
		return stats_main(argc, argv);
	orfa_log_set_ident("orfa");
	signal(SIGPIPE, SIG_IGN);
	cli_init(&c);
	memset(&m, 0, sizeof(m));
	memset(&fo, 0, sizeof(fo));

	fuse_set_log_func(fuse_log_to_orfa);
	rc = cli_parse(&args, &c, argv[0], &t);
	if (rc != 0) {
		ret = rc > 0 ? 0 : 1;
		goto out_args;
	}
	if (cli_add_implied_opts(&args, &c) < 0)
		goto out_args;

	rc = fuse_cmdline(&args, &fo);
	if (rc != 0) {
		ret = rc > 0 ? 0 : 1;
		goto out_args;
	}

	cli_mount_opts(&c, &m);
	stats_set_source(c.source);
	if (orfa_mount_init(&m, c.conns) < 0) {
		fprintf(stderr, "orfa: out of memory\n");
		goto out_args;
	}

	if (c.key_file) {
		if (orfa_auth_init() < 0) {
			fprintf(stderr, "orfa: cannot initialise libsodium\n");
			goto out_mount;
		}
		if (orfa_key_load(c.key_file, &key, err, sizeof(err)) < 0) {
			fprintf(stderr, "orfa: %s\n", err);
			goto out_mount;
		}
	}

	/* Unknown libfuse options are refused here, before connecting. */
	se = fuse_session_new(&args, &orfa_ll_ops, sizeof(orfa_ll_ops), &m);
	if (!se)
		goto out_mount;
	m.se = se;

	if (!fo.foreground)
		report_fd = daemon_start();
	if (client_open(&m, &c, &t, &key) < 0)
		goto out_session;

	ret = mount_and_serve(se, &m, &fo, &report_fd);
	orfa_client_stop(m.cl);
out_session:
	fuse_session_destroy(se);
	orfa_client_destroy(m.cl);
out_mount:
	if (c.key_file)
		orfa_key_wipe(&key);
	orfa_mount_fini(&m);
out_args:
	free(fo.mountpoint);
	cli_free(&c);
	fuse_opt_free_args(&args);
	if (report_fd >= 0)
		close(report_fd);	/* parent sees EOF: failure */
	return ret;
}
