/*
 * main.c - the orfa command: parse `orfa HOST[:PORT]:/[SUBDIR] MOUNTPOINT
 * [-o OPTIONS] [-f] [-d]` (the form mount.fuse3 uses for `mount -t
 * fuse.orfa` and fstab), connect to orfad, mount, serve until unmounted.
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

#include "config.h"
#include "ops.h"
#include "log.h"
#include "transport.h"

#include <fuse_log.h>
#include <fuse_opt.h>

#define DEFAULT_TIMEOUT_S	30.0
#define MAX_CONNS		64

struct cli {
	const char *source;
	char *transport;
	char *port_opt;
	char *key_file;
	unsigned conns;
	size_t rdma_buf_size;		/* 0: the transport's default */
	unsigned rdma_credits;		/* 0: the transport's default */
	double timeout;
	double attr_timeout, entry_timeout, negative_timeout;	/* < 0: default */
	int cache;
	int writeback;
	int reconnect;
	int fsname_given;
	int subtype_given;
	int allow_other;		/* allow_other or allow_root given */
	int default_perms;		/* 1 given, 0 no_default_permissions,
					 * -1 not said */
	int show_help, show_version;
	int bad;			/* an error was printed */
};

enum {
	KEY_TRANSPORT, KEY_PORT, KEY_CONNS, KEY_TIMEOUT, KEY_ATTR, KEY_ENTRY,
	KEY_NEGATIVE, KEY_CACHE, KEY_WRITEBACK, KEY_IGNORE, KEY_FSNAME,
	KEY_SUBTYPE, KEY_KEY, KEY_ALLOW_OTHER, KEY_DEFPERMS, KEY_NO_DEFPERMS,
	KEY_HELP, KEY_VERSION, KEY_RECONNECT, KEY_RDMA_BUF, KEY_RDMA_CREDITS,
};

static const struct fuse_opt orfa_opts[] = {
	FUSE_OPT_KEY("transport=", KEY_TRANSPORT),
	FUSE_OPT_KEY("port=", KEY_PORT),
	FUSE_OPT_KEY("key=", KEY_KEY),
	FUSE_OPT_KEY("conns=", KEY_CONNS),
	FUSE_OPT_KEY("rdma_buf_size=", KEY_RDMA_BUF),
	FUSE_OPT_KEY("rdma_credits=", KEY_RDMA_CREDITS),
	FUSE_OPT_KEY("timeout=", KEY_TIMEOUT),
	FUSE_OPT_KEY("attr_timeout=", KEY_ATTR),
	FUSE_OPT_KEY("entry_timeout=", KEY_ENTRY),
	FUSE_OPT_KEY("negative_timeout=", KEY_NEGATIVE),
	FUSE_OPT_KEY("cache=", KEY_CACHE),
	FUSE_OPT_KEY("writeback=", KEY_WRITEBACK),
	FUSE_OPT_KEY("writeback", KEY_WRITEBACK),
	FUSE_OPT_KEY("reconnect=", KEY_RECONNECT),
	FUSE_OPT_KEY("reconnect", KEY_RECONNECT),
	FUSE_OPT_KEY("fsname=", KEY_FSNAME),
	FUSE_OPT_KEY("subtype=", KEY_SUBTYPE),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("allow_root", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("default_permissions", KEY_DEFPERMS),
	FUSE_OPT_KEY("no_default_permissions", KEY_NO_DEFPERMS),
	/* For mount(8), fstab and systemd, meaningless to a FUSE mount;
	 * libfuse would refuse them.  x-* and comment=* are matched in
	 * opt_proc. */
	FUSE_OPT_KEY("defaults", KEY_IGNORE),
	FUSE_OPT_KEY("_netdev", KEY_IGNORE),
	FUSE_OPT_KEY("_rnetdev", KEY_IGNORE),
	FUSE_OPT_KEY("nofail", KEY_IGNORE),
	FUSE_OPT_KEY("auto", KEY_IGNORE),
	FUSE_OPT_KEY("noauto", KEY_IGNORE),
	FUSE_OPT_KEY("user", KEY_IGNORE),
	FUSE_OPT_KEY("nouser", KEY_IGNORE),
	FUSE_OPT_KEY("users", KEY_IGNORE),
	FUSE_OPT_KEY("owner", KEY_IGNORE),
	FUSE_OPT_KEY("group", KEY_IGNORE),
	FUSE_OPT_KEY("relatime", KEY_IGNORE),
	FUSE_OPT_KEY("norelatime", KEY_IGNORE),
	FUSE_OPT_KEY("strictatime", KEY_IGNORE),
	FUSE_OPT_KEY("nostrictatime", KEY_IGNORE),
	FUSE_OPT_KEY("diratime", KEY_IGNORE),
	FUSE_OPT_KEY("nodiratime", KEY_IGNORE),
	FUSE_OPT_KEY("lazytime", KEY_IGNORE),
	FUSE_OPT_KEY("nolazytime", KEY_IGNORE),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END
};

static void usage(const char *prog)
{
	printf(
"usage: %s HOST[:PORT]:/[SUBDIR] MOUNTPOINT [-o OPTIONS] [-f] [-d]\n"
"\n"
"Mount the ORFA export SUBDIR of orfad at HOST (IPv6 literals in brackets:\n"
"[::1]:/).  Also usable as `mount -t fuse.orfa HOST:/ MOUNTPOINT` and from\n"
"/etc/fstab (type fuse.orfa).\n"
"\n"
"ORFA options (-o):\n"
"    transport=tcp|rdma     network transport (tcp)\n"
"    port=N                 server port (%s; a port in the source wins)\n"
"    conns=N                connections per mount, 1..%d (1); requests go\n"
"                           to the least loaded\n"
"    rdma_buf_size=SIZE     RDMA: size of each pre-posted receive buffer\n"
"                           (64K, the least, to 16M); larger data goes by\n"
"                           RDMA read/write\n"
"    rdma_credits=N         RDMA: receive buffers per connection, so\n"
"                           requests in flight before senders wait (64;\n"
"                           4 to 4096)\n"
"    cache=none|auto|always caching (auto): auto = close-to-open, page\n"
"                           cache kept while the file is unchanged on the\n"
"                           server; none = attributes and names not cached,\n"
"                           page cache dropped at every open; always =\n"
"                           long timeouts, page cache always kept\n"
"    attr_timeout=S         attribute cache lifetime (auto 1, none 0,\n"
"                           always 3600)\n"
"    entry_timeout=S        name cache lifetime (same defaults)\n"
"    negative_timeout=S     lifetime of cached \"no such file\" (auto 0,\n"
"                           none 0, always 60)\n"
"    writeback=0|1          kernel writeback cache (0); the kernel then\n"
"                           trusts its own file sizes and times: for files\n"
"                           only this client writes\n"
"    key=FILE               shared key (mode 0600) for mutual\n"
"                           authentication with orfad --key\n"
"    no_default_permissions with allow_other, do not let the kernel check\n"
"                           permissions (default_permissions is implied by\n"
"                           allow_other: cached names skip the server's\n"
"                           directory search checks)\n"
"    timeout=S              request timeout (%g): a request without a reply\n"
"                           by then fails with ETIMEDOUT; 0 = wait forever.\n"
"                           With reconnect=0, a lost connection fails every\n"
"                           pending request with EIO at once\n"
"    reconnect=0|1          (1) connect again when the connection is lost\n"
"                           or orfad restarts: requests wait for it up to\n"
"                           timeout=S, open files are reopened, requests\n"
"                           in flight are sent again or resolved\n"
"    _netdev, nofail, noauto, auto, user, users, defaults, x-*, comment=*\n"
"                           accepted and ignored (for mount(8) and systemd)\n"
"\n", prog, ORFA_DEFAULT_PORT, MAX_CONNS, DEFAULT_TIMEOUT_S);
	printf("FUSE options:\n");
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

static int bad_opt(struct cli *c, const char *arg, const char *why)
{
	fprintf(stderr, "orfa: bad option '%s': %s\n", arg, why);
	c->bad = 1;
	return 0;		/* discard; main stops on c->bad */
}

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < 0 || v > 1e9)
		return -1;
	*out = v;
	return 0;
}

static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct cli *c = data;
	const char *val = strchr(arg, '=');
	char *end;
	long n;

	val = val ? val + 1 : "";
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!c->source) {
			c->source = arg;
			return 0;
		}
		return 1;		/* the mount point, for libfuse */
	case FUSE_OPT_KEY_OPT:
		if (strncmp(arg, "x-", 2) == 0 ||
		    strncmp(arg, "comment=", 8) == 0)
			return 0;
		return 1;
	case KEY_IGNORE:
		return 0;
	case KEY_TRANSPORT:
		if (strcmp(val, "tcp") && strcmp(val, "rdma"))
			return bad_opt(c, arg, "expected tcp or rdma");
		free(c->transport);
		c->transport = strdup(val);
		return 0;
	case KEY_PORT:
		n = strtol(val, &end, 10);
		if (!*val || *end || n < 1 || n > 65535)
			return bad_opt(c, arg, "expected a port number");
		free(c->port_opt);
		c->port_opt = strdup(val);
		return 0;
	case KEY_KEY:
		if (!*val)
			return bad_opt(c, arg, "expected a key file");
		free(c->key_file);
		c->key_file = strdup(val);
		return 0;
	case KEY_CONNS:
		n = strtol(val, &end, 10);
		if (!*val || *end || n < 1 || n > MAX_CONNS)
			return bad_opt(c, arg, "expected 1 to 64");
		c->conns = (unsigned)n;
		return 0;
	case KEY_RDMA_BUF: {
		uint64_t sz;

		if (orfa_parse_size(val, &sz) < 0 ||
		    sz < ORFA_RDMA_MIN_BUF_SIZE || sz > ORFA_RDMA_MAX_BUF_SIZE)
			return bad_opt(c, arg, "expected a size from 64K to 16M");
		c->rdma_buf_size = (size_t)sz;
		return 0;
	}
	case KEY_RDMA_CREDITS:
		n = strtol(val, &end, 10);
		if (!*val || *end || n < (long)ORFA_RDMA_MIN_CREDITS ||
		    n > (long)ORFA_RDMA_MAX_CREDITS)
			return bad_opt(c, arg, "expected 4 to 4096");
		c->rdma_credits = (unsigned)n;
		return 0;
	case KEY_TIMEOUT:
		if (parse_seconds(val, &c->timeout))
			return bad_opt(c, arg, "expected seconds >= 0");
		return 0;
	case KEY_ATTR:
		if (parse_seconds(val, &c->attr_timeout))
			return bad_opt(c, arg, "expected seconds >= 0");
		return 0;
	case KEY_ENTRY:
		if (parse_seconds(val, &c->entry_timeout))
			return bad_opt(c, arg, "expected seconds >= 0");
		return 0;
	case KEY_NEGATIVE:
		if (parse_seconds(val, &c->negative_timeout))
			return bad_opt(c, arg, "expected seconds >= 0");
		return 0;
	case KEY_CACHE:
		if (strcmp(val, "none") == 0)
			c->cache = ORFA_CACHE_NONE;
		else if (strcmp(val, "auto") == 0)
			c->cache = ORFA_CACHE_AUTO;
		else if (strcmp(val, "always") == 0)
			c->cache = ORFA_CACHE_ALWAYS;
		else
			return bad_opt(c, arg, "expected none, auto or always");
		return 0;
	case KEY_WRITEBACK:
		if (strcmp(arg, "writeback") == 0 || strcmp(val, "1") == 0)
			c->writeback = 1;
		else if (strcmp(val, "0") == 0)
			c->writeback = 0;
		else
			return bad_opt(c, arg, "expected 0 or 1");
		return 0;
	case KEY_RECONNECT:
		if (strcmp(arg, "reconnect") == 0 || strcmp(val, "1") == 0)
			c->reconnect = 1;
		else if (strcmp(val, "0") == 0)
			c->reconnect = 0;
		else
			return bad_opt(c, arg, "expected 0 or 1");
		return 0;
	case KEY_FSNAME:
		c->fsname_given = 1;
		return 1;
	case KEY_SUBTYPE:
		c->subtype_given = 1;
		return 1;
	case KEY_ALLOW_OTHER:
		c->allow_other = 1;
		return 1;
	case KEY_DEFPERMS:
		c->default_perms = 1;
		return 1;
	case KEY_NO_DEFPERMS:
		c->default_perms = 0;
		return 0;
	case KEY_HELP:
		c->show_help = 1;
		return 0;
	case KEY_VERSION:
		c->show_version = 1;
		return 0;
	}
	return 1;
}

/*
 * Split SOURCE = HOST[:PORT]:/[SUBDIR] or [V6]:[PORT:]/[SUBDIR].  Returns 0
 * or -1 after printing why.
 */
static int parse_source(const char *src, char *host, size_t hostsz,
			char *port, size_t portsz, char *path, size_t pathsz)
{
	const char *h, *hend, *rest, *p;
	size_t hlen;

	if (src[0] == '[') {
		h = src + 1;
		hend = strchr(h, ']');
		if (!hend)
			goto bad;
		rest = hend + 1;
		if (*rest != ':')
			goto bad;
		rest++;
	} else {
		h = src;
		rest = strstr(src, ":/");
		if (!rest)
			goto bad;
		hend = rest;
		rest++;
		/* HOST:PORT before the ":/" */
		p = memchr(h, ':', (size_t)(hend - h));
		if (p) {
			if (memchr(p + 1, ':', (size_t)(hend - p - 1))) {
				fprintf(stderr, "orfa: bad source '%s': put "
					"IPv6 addresses in brackets, as in "
					"[::1]:/\n", src);
				return -1;
			}
			rest = p + 1;
			hend = p;
		}
	}
	hlen = (size_t)(hend - h);
	if (hlen == 0 || hlen >= hostsz)
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';

	/* rest: "/path" or "PORT:/path" */
	port[0] = '\0';
	if (*rest != '/') {
		const char *colon = strchr(rest, ':');
		size_t plen;
		long n;
		char *end;

		if (!colon || colon[1] != '/')
			goto bad;
		plen = (size_t)(colon - rest);
		if (plen == 0 || plen >= portsz)
			goto bad;
		memcpy(port, rest, plen);
		port[plen] = '\0';
		n = strtol(port, &end, 10);
		if (*end || n < 1 || n > 65535) {
			fprintf(stderr, "orfa: bad source '%s': bad port '%s'\n",
				src, port);
			return -1;
		}
		rest = colon + 1;
	}
	if (strlen(rest) >= pathsz)
		goto bad;
	/* Normalise the export path: single slashes, no trailing one. */
	{
		size_t o = 0;

		for (const char *s = rest; *s; s++) {
			if (*s == '/' && o && path[o - 1] == '/')
				continue;
			path[o++] = *s;
		}
		if (o > 1 && path[o - 1] == '/')
			o--;
		path[o] = '\0';
	}
	return 0;

bad:
	fprintf(stderr, "orfa: bad source '%s': expected HOST[:PORT]:/[SUBDIR] "
		"(IPv6: [ADDR]:/)\n", src);
	return -1;
}

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

static void set_timeouts(struct orfa_mount *m, const struct cli *c)
{
	double attr = 1.0, entry = 1.0, neg = 0.0;

	if (c->cache == ORFA_CACHE_NONE) {
		attr = entry = neg = 0.0;
	} else if (c->cache == ORFA_CACHE_ALWAYS) {
		attr = entry = 3600.0;
		neg = 60.0;
	}
	m->attr_timeout = c->attr_timeout >= 0 ? c->attr_timeout : attr;
	m->entry_timeout = c->entry_timeout >= 0 ? c->entry_timeout : entry;
	m->negative_timeout = c->negative_timeout >= 0 ? c->negative_timeout :
							  neg;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct cli c = {
		.conns = 1, .timeout = DEFAULT_TIMEOUT_S, .attr_timeout = -1,
		.reconnect = 1,
		.entry_timeout = -1, .negative_timeout = -1,
		.cache = ORFA_CACHE_AUTO, .default_perms = -1,
	};
	struct fuse_cmdline_opts fo;
	struct orfa_client_cfg cfg;
	struct orfa_mount m;
	struct orfa_key key;
	struct fuse_session *se = NULL;
	char host[256], port[16], path[4096], err[512];
	const char *use_port;
	int report_fd = -1, ret = 1, rc;

	orfa_log_set_ident("orfa");
	signal(SIGPIPE, SIG_IGN);
	memset(&m, 0, sizeof(m));
	memset(&fo, 0, sizeof(fo));

	fuse_set_log_func(fuse_log_to_orfa);
	if (fuse_opt_parse(&args, &c, orfa_opts, opt_proc) == -1 || c.bad)
		goto out_args;
	if (c.show_help) {
		usage(argv[0]);
		ret = 0;
		goto out_args;
	}
	if (c.show_version) {
		printf("orfa %s (ORFA protocol %u)\n", ORFA_VERSION,
		       ORFA_PROTO_VERSION);
		fuse_lowlevel_version();
		ret = 0;
		goto out_args;
	}
	if (!c.source) {
		fprintf(stderr, "orfa: missing source HOST[:PORT]:/[SUBDIR]; "
			"try --help\n");
		goto out_args;
	}
	if (parse_source(c.source, host, sizeof(host), port, sizeof(port),
			 path, sizeof(path)) < 0)
		goto out_args;
	use_port = port[0] ? port : c.port_opt ? c.port_opt : ORFA_DEFAULT_PORT;
	if (port[0] && c.port_opt && strcmp(port, c.port_opt) != 0) {
		fprintf(stderr, "orfa: the source says port %s but -o port=%s\n",
			port, c.port_opt);
		goto out_args;
	}
	if (!orfa_transport_find(c.transport ? c.transport : "tcp")) {
		fprintf(stderr, "orfa: transport '%s' is not built in\n",
			c.transport ? c.transport : "tcp");
		goto out_args;
	}
	if (!c.fsname_given) {
		char *o = NULL;
		char *fsname = malloc(strlen(c.source) + 8);

		if (!fsname)
			goto out_args;
		sprintf(fsname, "fsname=%s", c.source);
		rc = fuse_opt_add_opt_escaped(&o, fsname);
		free(fsname);
		if (rc < 0 || fuse_opt_add_arg(&args, "-o") < 0 ||
		    fuse_opt_add_arg(&args, o) < 0) {
			free(o);
			goto out_args;
		}
		free(o);
	}

	/*
	 * Shared by several users (allow_other), the kernel must check
	 * permissions itself: it answers cached lookups without asking the
	 * server, so a directory's search permission would be checked only
	 * for whoever looked a name up first.
	 */
	if (c.allow_other && c.default_perms < 0 &&
	    (fuse_opt_add_arg(&args, "-o") < 0 ||
	     fuse_opt_add_arg(&args, "default_permissions") < 0))
		goto out_args;

	/* "fuse.orfa" in /proc/mounts: what umount, findmnt and fstab
	 * matching expect. */
	if (!c.subtype_given &&
	    (fuse_opt_add_arg(&args, "-o") < 0 ||
	     fuse_opt_add_arg(&args, "subtype=orfa") < 0))
		goto out_args;

	/* -f, -d, -s, the mount point; a missing or bad one fails here. */
	if (fuse_parse_cmdline(&args, &fo) != 0)
		goto out_args;
	if (!fo.mountpoint) {
		fprintf(stderr, "orfa: missing mount point; try --help\n");
		goto out_args;
	}
	if (fo.show_help || fo.show_version) {	/* unreachable: our keys */
		ret = 0;
		goto out_args;
	}
	if (fo.debug)
		orfa_log_set_level(ORFA_LOG_DEBUG);
	/* 1 MiB read sinks: keep them on the heap rather than mmap each. */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);

	m.cache = (enum orfa_cache_mode)c.cache;
	m.writeback = c.writeback != 0;
	set_timeouts(&m, &c);
	if (orfa_mount_init(&m, c.conns) < 0) {
		fprintf(stderr, "orfa: out of memory\n");
		goto out_args;
	}

	if (c.key_file) {
		if (orfa_auth_init() < 0 ||
		    orfa_key_load(c.key_file, &key, err, sizeof(err)) < 0) {
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

	memset(&cfg, 0, sizeof(cfg));
	cfg.transport = c.transport ? c.transport : "tcp";
	cfg.host = host;
	cfg.port = use_port;
	cfg.export_path = path;
	cfg.nconns = c.conns;
	cfg.timeout_ms = (int)(c.timeout * 1000 + 0.5);
	cfg.max_data = ORFA_DEFAULT_MAX_DATA;
	cfg.key = c.key_file ? &key : NULL;
	cfg.reconnect = c.reconnect;
	cfg.rdma_buf_size = c.rdma_buf_size;
	cfg.rdma_credits = c.rdma_credits;
	rc = orfa_client_connect(&cfg, &m.cl, err, sizeof(err));
	if (c.key_file)
		orfa_key_wipe(&key);	/* only the handshake needs it */
	if (rc < 0) {
		fprintf(stderr, "orfa: %s\n", err);
		goto out_session;
	}
	orfa_client_set_reconnect_hook(m.cl, orfa_reopen_hook, &m);
	m.root = orfa_client_info(m.cl)->root_nodeid;
	m.features = orfa_client_info(m.cl)->features;
	m.max_data = orfa_client_info(m.cl)->max_data;
	log_info("connected to %s:%s, export %s (root node %llu, max_data %u, "
		 "features 0x%llx)", host, use_port, path,
		 (unsigned long long)m.root, m.max_data,
		 (unsigned long long)m.features);

	if (fuse_set_signal_handlers(se) != 0)
		goto out_client;
	if (fuse_session_mount(se, fo.mountpoint) != 0)
		goto out_signals;
	raise_readahead(fo.mountpoint, (m.max_data < (1u << 20) ?
					m.max_data : (1u << 20)) / 1024);
	if (orfa_client_start(m.cl) < 0)
		goto out_unmount;
	if (report_fd >= 0) {
		daemon_ready(report_fd);
		report_fd = -1;
	}

	if (fo.singlethread) {
		rc = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *lc = fuse_loop_cfg_create();

		if (!lc) {
			log_err("out of memory");
			goto out_unmount;
		}
		fuse_loop_cfg_set_clone_fd(lc, (unsigned)fo.clone_fd);
		/* UINT_MAX: not given, keep libfuse's defaults. */
		if (fo.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(lc, fo.max_idle_threads);
		if (fo.max_threads != UINT_MAX)
			fuse_loop_cfg_set_max_threads(lc, fo.max_threads);
		rc = fuse_session_loop_mt(se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	/* Unmounted (0) or stopped by SIGINT/SIGTERM/SIGHUP (the signal
	 * number): both are a clean end. */
	ret = (rc == 0 || rc == SIGINT || rc == SIGTERM || rc == SIGHUP) ? 0 : 1;
	if (ret)
		log_err("session ended: %s", rc < 0 ? strerror(-rc) : "error");

out_unmount:
	/* Answer whatever is still pending before the session goes away. */
	orfa_client_stop(m.cl);
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_client:
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
	free(c.transport);
	free(c.port_opt);
	free(c.key_file);
	fuse_opt_free_args(&args);
	if (report_fd >= 0)
		close(report_fd);	/* parent sees EOF: failure */
	return ret;
}
