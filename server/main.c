/*
 * main.c - the orfad command line: parse options, read the exports (a file,
 * or the --export/--ramfs one-line shortcut) and create a backend for each,
 * load the key, bind the listener (so a busy port fails in the starting
 * process), write the port file, detach unless -f, then run the server
 * until SIGINT/SIGTERM.  --genkey writes a key file and exits.
 *
 * main() reads as those stages: cmdline_parse() and cmdline_check() fill
 * struct cmdline (server tuning goes straight into the server
 * configuration), then orfad_start() runs key_setup(), exports_setup(),
 * listener_setup(), daemonize() and server_start(); orfad_teardown()
 * releases whatever was set up.
 *
 * Exit status: 0 after a clean stop, 1 when an export, the key or the
 * listening address cannot be used, 2 for a bad command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "backend.h"
#include "config.h"
#include "exports.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "transport.h"

#define DEFAULT_LISTEN		"127.0.0.1"
#define DEFAULT_RAMFS_SIZE	(1ull << 30)

static void usage(FILE *f)
{
	fprintf(f,
"Usage: orfad [--listen ADDR[:PORT]]\n"
"             (--exports FILE | --export DIR | --ramfs [--ramfs-size SIZE])\n"
"             [--export-options OPTS]\n"
"             [--key FILE] [-f] [--log-level LEVEL] [--port-file FILE]\n"
"             [--threading=queue|sequential|connection] [--threads N]\n"
"             [--rdma-buf-size SIZE] [--rdma-credits N]\n"
"             [--hello-timeout S] [--idle-timeout S] [--msg-timeout S]\n"
"             [--max-conns N] [--max-conns-per-addr N] [--max-files N]\n"
"             [--max-nodes N] [--max-queued SIZE]\n"
"             [--metrics [ADDR:]PORT]\n"
"       orfad --genkey FILE\n"
"\n"
"Serve directories and in-memory file systems to ORFA clients.\n"
"\n"
"  -l, --listen ADDR[:PORT]  address to listen on (default " DEFAULT_LISTEN
":" ORFA_DEFAULT_PORT "; only the\n"
"                            local host unless told otherwise). ADDR may be\n"
"                            a host name, an IPv4 address or [IPv6]; PORT 0\n"
"                            picks a free port. A tcp:// prefix is allowed.\n"
"  -x, --exports FILE        serve the exports FILE lists: name, source,\n"
"                            allowed client networks, options (ro,\n"
"                            root_squash, ...); see orfa-exports(5),\n"
"                            docs/exports.md\n"
"  -e, --export DIR          export the directory DIR to any address (the\n"
"                            line \"/ DIR *\": rw, root_squash, secure,\n"
"                            nodev, nosuid)\n"
"  -r, --ramfs               export an empty in-memory file system\n"
"      --ramfs-size SIZE     its capacity, e.g. 512M, 4G (default 1G)\n"
"  -o, --export-options OPTS options of the --export/--ramfs export, as in\n"
"                            an exports file (e.g. ro, no_root_squash,\n"
"                            insecure: clients from unprivileged ports,\n"
"                            dev, suid); see docs/security.md\n"
"  -k, --key FILE            clients must prove they hold this shared key\n"
"                            (mode 0600), and orfad proves it to them\n"
"      --genkey FILE         write a new random key to FILE (mode 0600) and\n"
"                            exit\n"
"      --allow-integrity-only  with --key, grant clients that ask for it\n"
"                            (-o integrity=only) frames authenticated but\n"
"                            not encrypted (default: every frame encrypted)\n"
"  -f, --foreground          stay in the foreground, log to stderr\n"
"                            (otherwise detach once listening, log to syslog)\n"
"      --log-level LEVEL     err, warning, notice (default), info, debug\n"
"      --port-file FILE      write the bound \"host:port\" to FILE once\n"
"                            listening\n"
"      --metrics [ADDR:]PORT serve the server's counters in the Prometheus\n"
"                            text format on http://ADDR:PORT/metrics (off\n"
"                            by default; ADDR 127.0.0.1 when only PORT is\n"
"                            given); see docs/architecture.md\n"
"      --state-dir DIR       keep state that survives a restart in DIR: the\n"
"                            node ids of directory exports (needs root)\n"
"      --threading MODE      queue (default): event loop + worker pool;\n"
"                            sequential: everything on the event loop;\n"
"                            connection: one thread per connection\n"
"      --threads N           worker threads in queue mode\n"
"      --rdma-buf-size SIZE  RDMA: size of each pre-posted receive buffer\n"
"                            (64K, the least, to 16M); larger data goes by\n"
"                            RDMA read/write (rendezvous)\n"
"      --rdma-credits N      RDMA: receive buffers pre-posted per\n"
"                            connection, so requests in flight before the\n"
"                            sender waits (64; 4 to 4096)\n"
"Bounds on every peer (docs/limits.md); N is derived from the\n"
"descriptor limit (RLIMIT_NOFILE, raised to its maximum) when not given:\n"
"      --hello-timeout S     close a connection whose handshake (HELLO,\n"
"                            AUTH) is not done S s after accept (10)\n"
"      --idle-timeout S      close a connection holding no open file and\n"
"                            no lookup reference after S s without a\n"
"                            request (300; 0: never); clients reconnect\n"
"      --msg-timeout S       drop a connection whose message (header,\n"
"                            body, data) is not whole S s after it began\n"
"                            (30)\n"
"      --max-conns N         connections at once ((nofile - 64) / 2, 16 to\n"
"                            65536); at the cap, the oldest without a\n"
"                            finished handshake is dropped, or the new one\n"
"                            refused\n"
"      --max-conns-per-addr N  connections from one address (a quarter\n"
"                            of --max-conns, at least 8), the same way\n"
"      --max-files N         open files per connection, EMFILE above\n"
"                            (nofile / 2, 1024 to 1M)\n"
"      --max-nodes N         nodes known (looked up) per connection,\n"
"                            ENFILE above (nofile, 65536 to 1M)\n"
"      --max-queued SIZE     data held by unfinished requests of all\n"
"                            connections; reading pauses above (1G)\n"
"  -h, --help                show this help\n"
"  -V, --version             show the version\n"
"\n"
"Exit status: 0 after SIGINT/SIGTERM, 1 when an export, the key or the\n"
"address cannot be used, 2 for a bad command line.\n");
}

static void __attribute__((noreturn, format(printf, 1, 2)))
bad_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "orfad: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'orfad --help' for more information.\n");
	exit(2);
}

/* A decimal integer option in [min, max], or the usage error. */
static unsigned int_arg(const char *opt, const char *arg, long min, long max)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(arg, &end, 10);
	if (errno || *end || end == arg || n < min || n > max)
		bad_usage("invalid %s '%s' (%ld to %ld)", opt, arg, min, max);
	return (unsigned)n;
}

/* Write "host:port\n" to path atomically (readers never see half). */
static int write_port_file(const char *path, const char *addr)
{
	char tmp[PATH_MAX];
	FILE *f;
	int ret;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%s\n", addr);
	if (fclose(f) != 0) {
		ret = -errno;
		unlink(tmp);
		return ret;
	}
	if (chmod(tmp, 0644) < 0 || rename(tmp, path) < 0) {
		ret = -errno;
		unlink(tmp);
		return ret;
	}
	return 0;
}

/* Detach from the terminal; the parent exits 0.  The listener is already
 * bound, so start-up errors were reported before this point. */
static int daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -errno;
	if (chdir("/") < 0)
		return -errno;
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	orfa_log_use_syslog();
	return 0;
}

/* Give native export e its state file in state_dir: "native-" and a hash
 * of the export's name and real directory path. */
static int backend_state(const struct orfa_export *e, struct orfa_backend *be,
			 const char *state_dir)
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a */
	char path[PATH_MAX], real[PATH_MAX];
	const char *dir = realpath(e->path, real) ? real : e->path;
	int ret;

	for (const char *p = e->name; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	h = (h ^ 0) * 0x100000001b3ull;
	for (const char *p = dir; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	if ((size_t)snprintf(path, sizeof(path), "%s/native-%016llx.ids",
			     state_dir, (unsigned long long)h) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	ret = backend_native_set_state(be, path);
	if (ret)
		fprintf(stderr, "orfad: state file %s: %s\n", path,
			strerror(-ret));
	return ret;
}

/* Create the backend of every export, with its state file under state_dir
 * (--state-dir, or NULL); on failure say which and why. */
static int backends_create(struct orfa_exports *ex, const char *state_dir)
{
	for (int i = 0; i < ex->n; i++) {
		struct orfa_export *e = &ex->v[i];
		struct orfa_backend *be = NULL;
		int ret;

		if (e->backend)		/* kept over a reload */
			continue;

		if (e->ramfs_size)
			ret = backend_ramfs_create(e->ramfs_size, &be);
		else
			ret = backend_native_create(e->path, &be);
		if (ret == 0 && !e->ramfs_size && state_dir) {
			ret = backend_state(e, be, state_dir);
			if (ret) {
				orfa_backend_destroy(be);
				return ret;
			}
		}
		if (ret) {
			if (e->ramfs_size)
				fprintf(stderr, "orfad: cannot create the RAM "
					"file system of export %s: %s\n",
					e->name, strerror(-ret));
			else if (strcmp(e->name, "/") == 0)
				fprintf(stderr, "orfad: cannot export %s: %s\n",
					e->path, strerror(-ret));
			else
				fprintf(stderr, "orfad: cannot export %s as "
					"%s: %s\n", e->path, e->name,
					strerror(-ret));
			return ret;
		}
		e->backend = be;
	}
	return 0;
}

static void backends_destroy(struct orfa_exports *ex)
{
	for (int i = 0; i < ex->n; i++) {
		orfa_backend_destroy(ex->v[i].backend);
		ex->v[i].backend = NULL;
	}
}

/* The options of e that matter for security, as ", ro, root_squash". */
static void export_flags_describe(const struct orfa_export *e, char *buf,
				  size_t size)
{
	snprintf(buf, size, "%s%s%s%s%s",
		 e->flags & ORFA_EXPORT_RO ? ", ro" : "",
		 e->flags & ORFA_EXPORT_ALL_SQUASH ? ", all_squash" :
		 e->flags & ORFA_EXPORT_ROOT_SQUASH ? ", root_squash" :
		 ", no_root_squash",
		 e->flags & ORFA_EXPORT_INSECURE ? ", insecure" : "",
		 e->flags & ORFA_EXPORT_DEV ? ", dev" : "",
		 e->flags & ORFA_EXPORT_SUID ? ", suid" : "");
}

/* "data (/srv/data, ro, root_squash), scratch (RAM 4G, root_squash)" for
 * the start-up log line. */
static void exports_describe(const struct orfa_exports *ex, char *buf,
			     size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < ex->n && off < size; i++) {
		const struct orfa_export *e = &ex->v[i];
		char src[64], flags[96];
		int n;

		if (e->ramfs_size)
			snprintf(src, sizeof(src), "RAM %llu MiB",
				 (unsigned long long)(e->ramfs_size >> 20));
		export_flags_describe(e, flags, sizeof(flags));
		n = snprintf(buf + off, size - off, "%s%s (%s%s%s)",
			     i ? ", " : "", e->name,
			     e->ramfs_size ? src : e->path, flags,
			     e->nets[0].family == 0 && e->nnets == 1 ? "" :
			     ", some networks");
		if (n < 0)
			break;
		off += (size_t)n;
	}
}

/*
 * A directory export holds an O_PATH descriptor for every node a client
 * knows, so the default soft limit of 1024 open files runs out after a
 * thousand files.  Raise the soft limit to the hard one, and as root both
 * to fs.nr_open (at most 1M), as file servers do.
 */
static void raise_nofile(void)
{
	struct rlimit rl;
	rlim_t want = 1u << 20;
	FILE *f;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	f = geteuid() == 0 ? fopen("/proc/sys/fs/nr_open", "r") : NULL;
	if (f) {
		unsigned long long nr;

		if (fscanf(f, "%llu", &nr) == 1 && nr < want)
			want = (rlim_t)nr;
		fclose(f);
		if (rl.rlim_max < want) {
			struct rlimit up = { want, want };

			if (setrlimit(RLIMIT_NOFILE, &up) == 0)
				return;
		}
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* ---- the command line ---------------------------------------------------- */

enum {
	OPT_RAMFS_SIZE = 256,
	OPT_LOG_LEVEL,
	OPT_PORT_FILE,
	OPT_THREADING,
	OPT_THREADS,
	OPT_RDMA_BUF_SIZE,
	OPT_RDMA_CREDITS,
	OPT_GENKEY,
	OPT_STATE_DIR,
	OPT_METRICS,
	OPT_ALLOW_INTEGRITY_ONLY,
	OPT_HELLO_TIMEOUT,
	OPT_IDLE_TIMEOUT,
	OPT_MSG_TIMEOUT,
	OPT_MAX_CONNS,
	OPT_MAX_CONNS_PER_ADDR,
	OPT_MAX_FILES,
	OPT_MAX_NODES,
	OPT_MAX_QUEUED,
};

static const struct option long_opts[] = {
	{ "listen", required_argument, NULL, 'l' },
	{ "export", required_argument, NULL, 'e' },
	{ "exports", required_argument, NULL, 'x' },
	{ "key", required_argument, NULL, 'k' },
	{ "genkey", required_argument, NULL, OPT_GENKEY },
	{ "ramfs", no_argument, NULL, 'r' },
	{ "ramfs-size", required_argument, NULL, OPT_RAMFS_SIZE },
	{ "export-options", required_argument, NULL, 'o' },
	{ "foreground", no_argument, NULL, 'f' },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "port-file", required_argument, NULL, OPT_PORT_FILE },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "allow-integrity-only", no_argument, NULL,
	  OPT_ALLOW_INTEGRITY_ONLY },
	{ "threading", required_argument, NULL, OPT_THREADING },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "rdma-buf-size", required_argument, NULL, OPT_RDMA_BUF_SIZE },
	{ "rdma-credits", required_argument, NULL, OPT_RDMA_CREDITS },
	{ "hello-timeout", required_argument, NULL, OPT_HELLO_TIMEOUT },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
	{ "msg-timeout", required_argument, NULL, OPT_MSG_TIMEOUT },
	{ "max-conns", required_argument, NULL, OPT_MAX_CONNS },
	{ "max-conns-per-addr", required_argument, NULL,
	  OPT_MAX_CONNS_PER_ADDR },
	{ "max-files", required_argument, NULL, OPT_MAX_FILES },
	{ "max-nodes", required_argument, NULL, OPT_MAX_NODES },
	{ "max-queued", required_argument, NULL, OPT_MAX_QUEUED },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* What the command line asks for.  Server tuning options (--threading,
 * --threads, --rdma-*) go straight into the server configuration. */
struct cmdline {
	const char *listen_spec;	/* --listen, or DEFAULT_LISTEN */
	const char *export_dir;		/* --export */
	const char *exports_file;	/* --exports */
	const char *export_opts;	/* --export-options */
	const char *key_file;		/* --key */
	const char *genkey_file;	/* --genkey */
	const char *port_file;		/* --port-file */
	const char *state_dir;		/* --state-dir */
	const char *metrics;		/* --metrics, or NULL (off) */
	uint64_t ramfs_size;		/* --ramfs-size, or DEFAULT_RAMFS_SIZE */
	bool ramfs, size_given, foreground;
	/* --listen, split by cmdline_check() */
	char tp[16], host[256], port[16];
};

/* Applies a bound (--hello-timeout ... --max-queued, docs/limits.md) to
 * cfg; exits with status 2 for a bad value.  false when ch is not one. */
static bool bounds_option(struct orfa_server_cfg *cfg, int ch,
			  const char *arg)
{
	uint64_t size;

	switch (ch) {
	case OPT_HELLO_TIMEOUT:
		cfg->hello_timeout = int_arg("--hello-timeout", arg, 1, 3600);
		return true;
	case OPT_IDLE_TIMEOUT:
		cfg->idle_timeout = int_arg("--idle-timeout", arg, 0, 86400);
		if (cfg->idle_timeout == 0)
			cfg->idle_timeout = UINT_MAX;	/* never */
		return true;
	case OPT_MSG_TIMEOUT:
		cfg->msg_timeout = int_arg("--msg-timeout", arg, 1, 3600);
		return true;
	case OPT_MAX_CONNS:
		cfg->max_conns = int_arg("--max-conns", arg, 1, 1 << 20);
		return true;
	case OPT_MAX_CONNS_PER_ADDR:
		cfg->max_conns_per_addr = int_arg("--max-conns-per-addr", arg,
						  1, 1 << 20);
		return true;
	case OPT_MAX_FILES:
		cfg->max_files = int_arg("--max-files", arg, 1, 1 << 20);
		return true;
	case OPT_MAX_NODES:
		cfg->max_nodes = int_arg("--max-nodes", arg, 1, 1 << 20);
		return true;
	case OPT_MAX_QUEUED:
		if (orfa_parse_size(arg, &size) < 0 || size < (1u << 20))
			bad_usage("invalid --max-queued '%s' (1M or more)", arg);
		cfg->max_queued = (size_t)size;
		return true;
	default:
		return false;
	}
}

/* Applies a server tuning option (--threading, --threads, --rdma-*) to
 * cfg; exits with status 2 for a bad value.  Returns false when ch is not
 * one of them. */
static bool tuning_option(struct orfa_server_cfg *cfg, int ch,
			  const char *arg)
{
	uint64_t size;
	int ret;

	switch (ch) {
	case OPT_THREADING:
		ret = orfa_threading_parse(arg);
		if (ret < 0)
			bad_usage("invalid --threading '%s' (queue, "
				  "sequential, connection)", arg);
		cfg->threading = (enum orfa_threading)ret;
		return true;
	case OPT_THREADS:
		cfg->threads = int_arg("--threads", arg, 1, 1024);
		return true;
	case OPT_RDMA_BUF_SIZE:
		if (orfa_parse_size(arg, &size) < 0 ||
		    size < ORFA_RDMA_MIN_BUF_SIZE ||
		    size > ORFA_RDMA_MAX_BUF_SIZE)
			bad_usage("invalid --rdma-buf-size '%s' (64K to 16M)",
				  arg);
		cfg->rdma_buf_size = (size_t)size;
		return true;
	case OPT_RDMA_CREDITS:
		cfg->rdma_credits = int_arg("--rdma-credits", arg,
					    ORFA_RDMA_MIN_CREDITS,
					    ORFA_RDMA_MAX_CREDITS);
		return true;
	case OPT_ALLOW_INTEGRITY_ONLY:
		cfg->allow_integrity_only = true;
		return true;
	default:
		return bounds_option(cfg, ch, arg);
	}
}

/* Applies option ch with argument arg; exits for --help and --version
 * (status 0) and for a usage error (status 2). */
static void cmdline_option(struct cmdline *o, struct orfa_server_cfg *cfg,
			   int ch, const char *arg)
{
	int ret;

	switch (ch) {
	case 'l':
		o->listen_spec = arg;
		break;
	case 'e':
		o->export_dir = arg;
		break;
	case 'x':
		o->exports_file = arg;
		break;
	case 'o':
		o->export_opts = arg;
		break;
	case 'k':
		o->key_file = arg;
		break;
	case OPT_GENKEY:
		o->genkey_file = arg;
		break;
	case 'r':
		o->ramfs = true;
		break;
	case OPT_RAMFS_SIZE:
		if (orfa_parse_size(arg, &o->ramfs_size) < 0 ||
		    o->ramfs_size == 0)
			bad_usage("invalid --ramfs-size '%s'", arg);
		o->size_given = true;
		break;
	case 'f':
		o->foreground = true;
		break;
	case OPT_LOG_LEVEL:
		ret = orfa_log_parse_level(arg);
		if (ret < 0)
			bad_usage("invalid --log-level '%s' (err, warning, "
				  "notice, info, debug)", arg);
		orfa_log_set_level((enum orfa_log_level)ret);
		break;
	case OPT_PORT_FILE:
		o->port_file = arg;
		break;
	case OPT_METRICS:
		o->metrics = arg;
		break;
	case OPT_STATE_DIR:
		o->state_dir = arg;
		break;
	case 'h':
		usage(stdout);
		exit(0);
	case 'V':
		printf("orfad %s (ORFA protocol version %u)\n", ORFA_VERSION,
		       ORFA_PROTO_VERSION);
		exit(0);
	default:
		if (tuning_option(cfg, ch, arg))
			break;
		/* getopt has said what is wrong */
		fprintf(stderr, "Try 'orfad --help' for more information.\n");
		exit(2);
	}
}

/* Fills o from argv and the tuning options into cfg; a usage error exits
 * with status 2. */
static void cmdline_parse(int argc, char **argv, struct cmdline *o,
			  struct orfa_server_cfg *cfg)
{
	int ch;

	memset(o, 0, sizeof(*o));
	o->listen_spec = DEFAULT_LISTEN;
	o->ramfs_size = DEFAULT_RAMFS_SIZE;
	while ((ch = getopt_long(argc, argv, "l:e:x:o:k:rfhV", long_opts,
				 NULL)) != -1)
		cmdline_option(o, cfg, ch, optarg);
	if (optind < argc)
		bad_usage("unexpected argument '%s'", argv[optind]);
}

/* The options that go together for serving; splits --listen.  A usage
 * error exits with status 2. */
static void cmdline_check(struct cmdline *o)
{
	if (!!o->export_dir + o->ramfs + !!o->exports_file != 1)
		bad_usage("give exactly one of --exports FILE, --export DIR "
			  "and --ramfs");
	if (o->size_given && !o->ramfs)
		bad_usage("--ramfs-size needs --ramfs");
	if (o->export_opts && o->exports_file)
		bad_usage("--export-options goes with --export or --ramfs; "
			  "an exports file has its options on each line");
	if (orfa_parse_address(o->listen_spec, ORFA_DEFAULT_PORT,
			       o->tp, sizeof(o->tp), o->host, sizeof(o->host),
			       o->port, sizeof(o->port)) < 0)
		bad_usage("invalid --listen address '%s'", o->listen_spec);
}

/* --genkey FILE: write a key and say how to use it; the exit status. */
static int genkey_run(const struct cmdline *o)
{
	char err[512];

	if (o->export_dir || o->ramfs || o->exports_file || o->key_file ||
	    o->export_opts)
		bad_usage("--genkey FILE takes no other option");
	if (orfa_key_generate(o->genkey_file, err, sizeof(err))) {
		fprintf(stderr, "orfad: cannot write a key: %s\n", err);
		return 1;
	}
	printf("orfad: wrote a new key to %s (mode 0600); give the same file "
	       "to orfad --key and to clients (-o key=%s)\n",
	       o->genkey_file, o->genkey_file);
	return 0;
}

/* ---- start-up stages ----------------------------------------------------- */

/* An exports table read by a reload (SIGHUP). */
struct orfad_tab {
	struct orfad_tab *next;
	struct orfa_exports ex;
};

/* What a running orfad holds; orfad_teardown() releases what is set. */
struct orfad {
	const struct cmdline *o;
	struct orfa_server_cfg cfg;
	struct orfa_key key;		/* valid when cfg.key is set */
	struct orfa_exports ex;
	struct orfad_tab *reloaded;	/* newest first; each owns the
					 * backends no newer table took */
	const struct orfa_exports *cur;	/* served now: &ex or reloaded */
	struct orfa_listener *lst;
	struct orfa_server *srv;
	char addr[320];			/* bound "host:port" */
};

/* --key: load it and make clients authenticate.  0, or -1 after saying
 * why. */
static int key_setup(const struct cmdline *o, struct orfad *d)
{
	char err[512];

	if (!o->key_file)
		return 0;
	if (orfa_key_load(o->key_file, &d->key, err, sizeof(err))) {
		fprintf(stderr, "orfad: cannot use the key: %s\n", err);
		return -1;
	}
	d->cfg.key = &d->key;
	return 0;
}

/* Read the exports (file or shortcut) and create their backends.  0, or
 * -1 after saying why. */
static int exports_setup(const struct cmdline *o, struct orfad *d)
{
	char err[512];
	int ret;

	if (o->exports_file) {
		ret = orfa_exports_load(o->exports_file, &d->ex, err,
					sizeof(err));
		if (ret)
			fprintf(stderr, "orfad: bad exports file: %s\n", err);
	} else {
		err[0] = '\0';
		ret = orfa_exports_shortcut(&d->ex, o->export_dir,
					    o->ramfs_size, o->export_opts,
					    err, sizeof(err));
		if (ret == -EINVAL)
			fprintf(stderr, "orfad: bad --export-options '%s': "
				"%s\n", o->export_opts, err);
		else if (ret)
			fprintf(stderr, "orfad: cannot export %s: %s\n",
				o->export_dir ? o->export_dir :
				"a RAM file system", strerror(-ret));
	}
	if (ret == 0)
		ret = backends_create(&d->ex, o->state_dir);
	return ret ? -1 : 0;
}

/* Bind the listener (so a busy port fails in the starting process) and
 * write the port file.  0, or -1 after saying why. */
static int listener_setup(const struct cmdline *o, struct orfad *d)
{
	struct orfa_tp_opts tpo;
	int ret;

	orfa_server_listen_opts(&d->cfg, &tpo);
	ret = orfa_listener_open(o->tp, o->host, o->port, &tpo, &d->lst,
				 NULL);
	if (ret) {
		fprintf(stderr, "orfad: cannot listen on %s%s%s:%s: %s\n",
			strchr(o->host, ':') ? "[" : "", o->host,
			strchr(o->host, ':') ? "]" : "", o->port,
			strerror(-ret));
		return -1;
	}
	ret = orfa_listener_addr(d->lst, d->addr, sizeof(d->addr));
	if (ret) {
		snprintf(d->addr, sizeof(d->addr), "%s:%s", o->host, o->port);
		if (o->port_file) {
			fprintf(stderr, "orfad: cannot get the bound address: "
				"%s\n", strerror(-ret));
			return -1;
		}
	}
	if (!o->port_file)
		return 0;
	ret = write_port_file(o->port_file, d->addr);
	if (ret) {
		fprintf(stderr, "orfad: cannot write %s: %s\n", o->port_file,
			strerror(-ret));
		return -1;
	}
	return 0;
}

/* ---- reload (SIGHUP) ----------------------------------------------------- */

/* The entry of old that serves the same thing as e (name and source), or
 * NULL: its backend, ids and sessions carry over. */
static struct orfa_export *export_same_source(const struct orfa_exports *old,
					      const struct orfa_export *e)
{
	for (int i = 0; i < old->n; i++) {
		struct orfa_export *o = &old->v[i];

		if (strcmp(o->name, e->name) == 0 &&
		    strcmp(o->path, e->path) == 0 &&
		    o->ramfs_size == e->ramfs_size)
			return o;
	}
	return NULL;
}

static int export_options_differ(const struct orfa_export *a,
				 const struct orfa_export *b)
{
	return a->flags != b->flags || a->anonuid != b->anonuid ||
	       a->anongid != b->anongid || a->nnets != b->nnets ||
	       memcmp(a->nets, b->nets, sizeof(a->nets[0]) * (size_t)a->nnets);
}

/* Give t's entries the backends of the current exports they keep; 1 in
 * kept[i] for those.  Counts the changed ones in *changed. */
static int reload_match(struct orfad *d, struct orfa_exports *t, char *kept,
			int *changed)
{
	int nkept = 0;

	*changed = 0;
	for (int i = 0; i < t->n; i++) {
		struct orfa_export *o = export_same_source(d->cur, &t->v[i]);

		kept[i] = o != NULL;
		if (!o)
			continue;
		t->v[i].backend = o->backend;
		nkept++;
		if (export_options_differ(o, &t->v[i])) {
			log_notice("reload: export %s: new options apply to "
				   "its sessions from now on", t->v[i].name);
			(*changed)++;
		}
	}
	return nkept;
}

/* Destroy t's backends but the kept ones (a reload that failed). */
static void reload_unwind(struct orfa_exports *t, const char *kept)
{
	for (int i = 0; i < t->n; i++)
		if (!kept[i])
			orfa_backend_destroy(t->v[i].backend);
	orfa_exports_free(t);
}

/* SIGHUP: re-read the exports file and serve what it says now.  On any
 * error the exports served so far stay as they are. */
static void orfad_reload(void *arg)
{
	struct orfad *d = arg;
	struct orfad_tab *nt;
	char err[512], *kept = NULL;
	int nkept, changed, ret;

	nt = calloc(1, sizeof(*nt));
	if (!nt || orfa_exports_load(d->o->exports_file, &nt->ex, err,
				     sizeof(err))) {
		log_err("reload: bad exports file %s: %s; still serving the "
			"exports read before", d->o->exports_file,
			nt ? err : "out of memory");
		free(nt);
		return;
	}
	kept = calloc((size_t)nt->ex.n + 1, 1);
	ret = kept ? 0 : -ENOMEM;
	if (ret == 0) {
		nkept = reload_match(d, &nt->ex, kept, &changed);
		ret = backends_create(&nt->ex, d->o->state_dir);
	}
	if (ret == 0)
		ret = orfa_server_exports_update(d->srv, &nt->ex);
	if (ret) {
		log_err("reload: cannot serve the new exports (%s); still "
			"serving the exports read before", strerror(-ret));
		if (kept)
			reload_unwind(&nt->ex, kept);
		else
			orfa_exports_free(&nt->ex);
		free(kept);
		free(nt);
		return;
	}
	/* The new table owns the kept backends now. */
	for (int i = 0; i < nt->ex.n; i++)
		if (kept[i])
			export_same_source(d->cur, &nt->ex.v[i])->backend =
				NULL;
	log_notice("reloaded %s: %d exports (%d added, %d removed, %d "
		   "changed); sessions of removed exports go on until they "
		   "end", d->o->exports_file, nt->ex.n, nt->ex.n - nkept,
		   d->cur->n - nkept, changed);
	free(kept);
	nt->next = d->reloaded;
	d->reloaded = nt;
	d->cur = &nt->ex;
}

/* --metrics: count, and bind the endpoint (served once running).  0, or
 * -1 after saying why. */
static int metrics_setup(const struct cmdline *o, struct orfad *d)
{
	char err[256];
	int ret;

	if (!o->metrics)
		return 0;
	ret = metrics_init(&d->ex);
	if (ret == 0)
		ret = metrics_listen(o->metrics, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "%s", strerror(-ret));
	if (ret) {
		fprintf(stderr, "orfad: cannot serve metrics on %s: %s\n",
			o->metrics, err);
		return -1;
	}
	return 0;
}

/* Create the server on the listener and catch SIGINT/SIGTERM; logs the
 * start-up line.  0, or -1 after logging why. */
static int server_start(struct orfad *d, const char *what)
{
	const struct orfa_server_cfg *cfg = &d->cfg;
	int ret;

	ret = orfa_server_create_exports(&d->cfg, &d->ex, d->lst, &d->srv);
	if (ret == 0)
		ret = orfa_server_catch_signals(d->srv);
	if (ret == 0 && d->o->exports_file)
		orfa_server_on_reload(d->srv, orfad_reload, d);
	if (ret == 0)
		ret = metrics_start();
	if (ret) {
		log_err("cannot start the server: %s", strerror(-ret));
		return -1;
	}
	if (cfg->threading == ORFA_THREADING_QUEUE)
		log_notice("listening on %s, exporting %s, %s, queue "
			   "threading with %u workers", d->addr, what,
			   cfg->key ? "clients must authenticate" :
			   "no authentication", cfg->threads);
	else
		log_notice("listening on %s, exporting %s, %s, %s threading",
			   d->addr, what, cfg->key ?
			   "clients must authenticate" : "no authentication",
			   orfa_threading_name(cfg->threading));
	return 0;
}

/* Every stage up to a running server, in order; 0, or -1 after saying
 * why (orfad_teardown() releases what was set up). */
static int orfad_start(const struct cmdline *o, struct orfad *d)
{
	char what[1024];
	int ret;

	if (key_setup(o, d) || exports_setup(o, d))
		return -1;
	exports_describe(&d->ex, what, sizeof(what));
	if (listener_setup(o, d) || metrics_setup(o, d))
		return -1;
	if (!o->foreground) {
		ret = daemonize();
		if (ret) {
			log_err("cannot detach: %s", strerror(-ret));
			return -1;
		}
	}
	return server_start(d, what);
}

static void orfad_teardown(struct orfad *d)
{
	metrics_stop();
	orfa_server_destroy(d->srv);
	orfa_listener_close(d->lst);
	backends_destroy(&d->ex);
	orfa_exports_free(&d->ex);
	while (d->reloaded) {
		struct orfad_tab *t = d->reloaded;

		d->reloaded = t->next;
		backends_destroy(&t->ex);
		orfa_exports_free(&t->ex);
		free(t);
	}
	if (d->cfg.key)
		orfa_key_wipe(&d->key);
}

int main(int argc, char **argv)
{
	struct orfad d = { .ex = { NULL, 0 } };
	struct cmdline o;
	int status = 0;

	umask(0);		/* the backends apply each client's umask */
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	orfa_log_set_ident("orfad");
	orfa_server_cfg_default(&d.cfg);

	cmdline_parse(argc, argv, &o, &d.cfg);
	d.o = &o;
	d.cur = &d.ex;
	if (o.genkey_file)
		return genkey_run(&o);
	cmdline_check(&o);

	if (orfad_start(&o, &d)) {
		status = 1;
	} else {
		if (orfa_server_run(d.srv) < 0)
			status = 1;
		log_notice("stopped");
	}
	orfad_teardown(&d);
	return status;
}
