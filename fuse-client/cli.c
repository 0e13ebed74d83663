/*
 * cli.c - the orfa command line: the -o options (table, --help text,
 * parsing and checking each value), the source HOST[:PORT]:/[SUBDIR], and
 * the mount options orfa implies.  Every bad option or source is reported
 * here, before anything connects or mounts.
 *
 * Not here: running the stages (connect, mount, serve) and the fork into
 * the background (main.c).
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "transport.h"

#include <fuse_lowlevel.h>

enum {
	KEY_TRANSPORT, KEY_PORT, KEY_CONNS, KEY_TIMEOUT, KEY_ATTR, KEY_ENTRY,
	KEY_NEGATIVE, KEY_CACHE, KEY_WRITEBACK, KEY_IGNORE, KEY_FSNAME,
	KEY_SUBTYPE, KEY_KEY, KEY_ALLOW_OTHER, KEY_DEFPERMS, KEY_NO_DEFPERMS,
	KEY_HELP, KEY_VERSION, KEY_RECONNECT, KEY_RDMA_BUF, KEY_RDMA_CREDITS,
	KEY_INTEGRITY,
};

static const struct fuse_opt orfa_opts[] = {
	FUSE_OPT_KEY("transport=", KEY_TRANSPORT),
	FUSE_OPT_KEY("port=", KEY_PORT),
	FUSE_OPT_KEY("key=", KEY_KEY),
	FUSE_OPT_KEY("integrity=", KEY_INTEGRITY),
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
"       %s stats MOUNTPOINT\n"
"\n"
"Mount the ORFA export SUBDIR of orfad at HOST (IPv6 literals in brackets:\n"
"[::1]:/).  Also usable as `mount -t fuse.orfa HOST:/ MOUNTPOINT` and from\n"
"/etc/fstab (type fuse.orfa).\n"
"\n"
"`orfa stats MOUNTPOINT` prints the counters of that mount's orfa process:\n"
"round trips, errors, timeouts and latency percentiles per operation, bytes\n"
"read and written, reconnects, cache hits (read from the virtual extended\n"
"attribute user.orfa.stats of the mount root; no round trip).\n"
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
"                           authentication with orfad --key; every\n"
"                           frame after it is encrypted and authenticated\n"
"    integrity=only|encrypt with a key: ask for frames authenticated but\n"
"                           not encrypted (granted by orfad\n"
"                           --allow-integrity-only; default encrypt)\n"
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
"\n", prog, prog, ORFA_DEFAULT_PORT, MAX_CONNS, DEFAULT_TIMEOUT_S);
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

/* A decimal integer from min to max into *out; -1 if not. */
static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long n;

	n = strtol(s, &end, 10);
	if (!*s || *end || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

/* A 0|1 option: "NAME" and "NAME=1" set *out, "NAME=0" clears it. */
static int parse_flag(const char *arg, const char *name, const char *val,
		      int *out)
{
	if (strcmp(arg, name) == 0 || strcmp(val, "1") == 0)
		*out = 1;
	else if (strcmp(val, "0") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

static void set_str(char **dst, const char *val)
{
	free(*dst);
	*dst = strdup(val);
}

/* Where a -o NAME=SECONDS option goes. */
static double *seconds_opt(struct cli *c, int key)
{
	switch (key) {
	case KEY_TIMEOUT: return &c->timeout;
	case KEY_ATTR: return &c->attr_timeout;
	case KEY_ENTRY: return &c->entry_timeout;
	default: return &c->negative_timeout;
	}
}

/* The ORFA options with a value (and writeback, reconnect): parsed into c,
 * never passed on to libfuse.  Returns 0 (after bad_opt when bad). */
static int value_opt(struct cli *c, const char *arg, int key, const char *val)
{
	uint64_t sz;
	long n;

	switch (key) {
	case KEY_TRANSPORT:
		if (strcmp(val, "tcp") && strcmp(val, "rdma"))
			return bad_opt(c, arg, "expected tcp or rdma");
		set_str(&c->transport, val);
		return 0;
	case KEY_PORT:
		if (parse_long(val, 1, 65535, &n) < 0)
			return bad_opt(c, arg, "expected a port number");
		set_str(&c->port_opt, val);
		return 0;
	case KEY_KEY:
		if (!*val)
			return bad_opt(c, arg, "expected a key file");
		set_str(&c->key_file, val);
		return 0;
	case KEY_INTEGRITY:
		if (strcmp(val, "only") == 0)
			c->integrity_only = 1;
		else if (strcmp(val, "encrypt") == 0)
			c->integrity_only = 0;
		else
			return bad_opt(c, arg, "expected only or encrypt");
		return 0;
	case KEY_CONNS:
		if (parse_long(val, 1, MAX_CONNS, &n) < 0)
			return bad_opt(c, arg, "expected 1 to 64");
		c->conns = (unsigned)n;
		return 0;
	case KEY_RDMA_BUF:
		if (orfa_parse_size(val, &sz) < 0 ||
		    sz < ORFA_RDMA_MIN_BUF_SIZE || sz > ORFA_RDMA_MAX_BUF_SIZE)
			return bad_opt(c, arg, "expected a size from 64K to 16M");
		c->rdma_buf_size = (size_t)sz;
		return 0;
	case KEY_RDMA_CREDITS:
		if (parse_long(val, (long)ORFA_RDMA_MIN_CREDITS,
			       (long)ORFA_RDMA_MAX_CREDITS, &n) < 0)
			return bad_opt(c, arg, "expected 4 to 4096");
		c->rdma_credits = (unsigned)n;
		return 0;
	case KEY_TIMEOUT: case KEY_ATTR: case KEY_ENTRY: case KEY_NEGATIVE:
		if (parse_seconds(val, seconds_opt(c, key)))
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
		if (parse_flag(arg, "writeback", val, &c->writeback) < 0)
			return bad_opt(c, arg, "expected 0 or 1");
		return 0;
	case KEY_RECONNECT:
		if (parse_flag(arg, "reconnect", val, &c->reconnect) < 0)
			return bad_opt(c, arg, "expected 0 or 1");
		return 0;
	}
	return 1;
}

/* fuse_opt_parse's callback: 0 drops arg, 1 passes it on to libfuse. */
static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct cli *c = data;
	const char *val = strchr(arg, '=');

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
	return value_opt(c, arg, key, val);
}

/*
 * Parsing SOURCE = HOST[:PORT]:/[SUBDIR] or [V6]:[PORT:]/[SUBDIR].  The
 * helpers return 0, 1 when SOURCE does not have that form (the caller
 * says so), or -1 after printing a more precise reason.
 */

/* HOST into host; *rest: what follows it, "/path" or "PORT:/path". */
static int source_host(const char *src, char *host, size_t hostsz,
		       const char **rest)
{
	const char *h, *hend, *r, *p;
	size_t hlen;

	if (src[0] == '[') {
		h = src + 1;
		hend = strchr(h, ']');
		if (!hend || hend[1] != ':')
			return 1;
		r = hend + 2;
	} else {
		h = src;
		r = strstr(src, ":/");
		if (!r)
			return 1;
		hend = r;
		r++;
		/* HOST:PORT before the ":/" */
		p = memchr(h, ':', (size_t)(hend - h));
		if (p) {
			if (memchr(p + 1, ':', (size_t)(hend - p - 1))) {
				fprintf(stderr, "orfa: bad source '%s': put "
					"IPv6 addresses in brackets, as in "
					"[::1]:/\n", src);
				return -1;
			}
			r = p + 1;
			hend = p;
		}
	}
	hlen = (size_t)(hend - h);
	if (hlen == 0 || hlen >= hostsz)
		return 1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*rest = r;
	return 0;
}

/* *rest: "/path" or "PORT:/path".  PORT (or "") into port; *rest moves to
 * the path. */
static int source_port(const char *src, const char **rest, char *port,
		       size_t portsz)
{
	const char *colon;
	size_t plen;
	long n;

	port[0] = '\0';
	if (**rest == '/')
		return 0;
	colon = strchr(*rest, ':');
	if (!colon || colon[1] != '/')
		return 1;
	plen = (size_t)(colon - *rest);
	if (plen == 0 || plen >= portsz)
		return 1;
	memcpy(port, *rest, plen);
	port[plen] = '\0';
	if (parse_long(port, 1, 65535, &n) < 0) {
		fprintf(stderr, "orfa: bad source '%s': bad port '%s'\n", src,
			port);
		return -1;
	}
	*rest = colon + 1;
	return 0;
}

/* Split SOURCE into host, port ("" when not given) and the export path
 * (single slashes, no trailing one).  Returns 0 or -1 after printing why. */
static int parse_source(const char *src, char *host, size_t hostsz,
			char *port, size_t portsz, char *path, size_t pathsz)
{
	const char *rest;
	size_t o = 0;
	int rc;

	rc = source_host(src, host, hostsz, &rest);
	if (rc == 0)
		rc = source_port(src, &rest, port, portsz);
	if (rc == 0 && strlen(rest) >= pathsz)
		rc = 1;
	if (rc < 0)
		return -1;
	if (rc > 0) {
		fprintf(stderr, "orfa: bad source '%s': expected "
			"HOST[:PORT]:/[SUBDIR] (IPv6: [ADDR]:/)\n", src);
		return -1;
	}
	for (const char *s = rest; *s; s++) {
		if (*s == '/' && o && path[o - 1] == '/')
			continue;
		path[o++] = *s;
	}
	if (o > 1 && path[o - 1] == '/')
		o--;
	path[o] = '\0';
	return 0;
}

void cli_init(struct cli *c)
{
	memset(c, 0, sizeof(*c));
	c->conns = 1;
	c->timeout = DEFAULT_TIMEOUT_S;
	c->attr_timeout = c->entry_timeout = c->negative_timeout = -1;
	c->reconnect = 1;
	c->cache = ORFA_CACHE_AUTO;
	c->default_perms = -1;
}

void cli_free(struct cli *c)
{
	free(c->transport);
	free(c->port_opt);
	free(c->key_file);
}

int cli_parse(struct fuse_args *args, struct cli *c, const char *prog,
	      struct target *t)
{
	const char *transport;

	if (fuse_opt_parse(args, c, orfa_opts, opt_proc) == -1 || c->bad)
		return -1;
	if (c->show_help) {
		usage(prog);
		return 1;
	}
	if (c->show_version) {
		printf("orfa %s (ORFA protocol %u)\n", ORFA_VERSION,
		       ORFA_PROTO_VERSION);
		fuse_lowlevel_version();
		return 1;
	}
	if (!c->source) {
		fprintf(stderr, "orfa: missing source HOST[:PORT]:/[SUBDIR]; "
			"try --help\n");
		return -1;
	}
	if (parse_source(c->source, t->host, sizeof(t->host), t->port,
			 sizeof(t->port), t->path, sizeof(t->path)) < 0)
		return -1;
	t->use_port = t->port[0] ? t->port : c->port_opt ? c->port_opt :
		      ORFA_DEFAULT_PORT;
	if (t->port[0] && c->port_opt && strcmp(t->port, c->port_opt) != 0) {
		fprintf(stderr, "orfa: the source says port %s but -o port=%s\n",
			t->port, c->port_opt);
		return -1;
	}
	transport = c->transport ? c->transport : "tcp";
	if (!orfa_transport_find(transport)) {
		fprintf(stderr, "orfa: transport '%s' is not built in\n",
			transport);
		return -1;
	}
	return 0;
}

/* Add "-o OPT" to args; -1 when out of memory. */
static int add_opt(struct fuse_args *args, const char *opt)
{
	if (fuse_opt_add_arg(args, "-o") < 0 || fuse_opt_add_arg(args, opt) < 0)
		return -1;
	return 0;
}

int cli_add_implied_opts(struct fuse_args *args, const struct cli *c)
{
	if (!c->fsname_given) {
		char *o = NULL;
		char *fsname = malloc(strlen(c->source) + 8);
		int rc;

		if (!fsname)
			return -1;
		sprintf(fsname, "fsname=%s", c->source);
		rc = fuse_opt_add_opt_escaped(&o, fsname);
		free(fsname);
		if (rc < 0 || add_opt(args, o) < 0) {
			free(o);
			return -1;
		}
		free(o);
	}

	/*
	 * Shared by several users (allow_other), the kernel must check
	 * permissions itself: it answers cached lookups without asking the
	 * server, so a directory's search permission would be checked only
	 * for whoever looked a name up first.
	 */
	if (c->allow_other && c->default_perms < 0 &&
	    add_opt(args, "default_permissions") < 0)
		return -1;

	/* "fuse.orfa" in /proc/mounts: what umount, findmnt and fstab
	 * matching expect. */
	if (!c->subtype_given && add_opt(args, "subtype=orfa") < 0)
		return -1;
	return 0;
}

void cli_mount_opts(const struct cli *c, struct orfa_mount *m)
{
	double attr = 1.0, entry = 1.0, neg = 0.0;

	m->cache = (enum orfa_cache_mode)c->cache;
	m->writeback = c->writeback != 0;

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
