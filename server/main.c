/*
 * main.c - the orfad command line: parse options, create the backend,
 * bind the listener (so a busy port fails in the starting process),
 * write the port file, detach unless -f, then run the server until
 * SIGINT/SIGTERM.
 *
 * Exit status: 0 after a clean stop, 1 when the export or the listening
 * address cannot be used, 2 for a bad command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "config.h"
#include "log.h"
#include "server.h"
#include "transport.h"

#define DEFAULT_LISTEN		"127.0.0.1"
#define DEFAULT_RAMFS_SIZE	(1ull << 30)

static void usage(FILE *f)
{
	fprintf(f,
"Usage: orfad [--listen ADDR[:PORT]] (--export DIR | --ramfs [--ramfs-size SIZE])\n"
"             [-f] [--log-level LEVEL] [--port-file FILE]\n"
"             [--threading=queue|sequential|connection] [--threads N]\n"
"\n"
"Serve a directory (--export) or an in-memory file system (--ramfs) to ORFA\n"
"clients.\n"
"\n"
"  -l, --listen ADDR[:PORT]  address to listen on (default " DEFAULT_LISTEN
":" ORFA_DEFAULT_PORT "; only the\n"
"                            local host unless told otherwise). ADDR may be\n"
"                            a host name, an IPv4 address or [IPv6]; PORT 0\n"
"                            picks a free port. A tcp:// prefix is allowed.\n"
"  -e, --export DIR          export the directory DIR\n"
"  -r, --ramfs               export an empty in-memory file system\n"
"      --ramfs-size SIZE     its capacity, e.g. 512M, 4G (default 1G)\n"
"  -f, --foreground          stay in the foreground, log to stderr\n"
"                            (otherwise detach once listening, log to syslog)\n"
"      --log-level LEVEL     err, warning, notice (default), info, debug\n"
"      --port-file FILE      write the bound \"host:port\" to FILE once\n"
"                            listening\n"
"      --threading MODE      queue (default): event loop + worker pool;\n"
"                            sequential: everything on the event loop;\n"
"                            connection: one thread per connection\n"
"      --threads N           worker threads in queue mode\n"
"  -h, --help                show this help\n"
"  -V, --version             show the version\n"
"\n"
"Exit status: 0 after SIGINT/SIGTERM, 1 when the export or the address\n"
"cannot be used, 2 for a bad command line.\n");
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

/* "123", "512K", "4M", "1G", "2T" (binary units, optional "B"/"iB"). */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (shift && *end == 'i')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || v == 0 || v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
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

enum {
	OPT_RAMFS_SIZE = 256,
	OPT_LOG_LEVEL,
	OPT_PORT_FILE,
	OPT_THREADING,
	OPT_THREADS,
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "export", required_argument, NULL, 'e' },
		{ "ramfs", no_argument, NULL, 'r' },
		{ "ramfs-size", required_argument, NULL, OPT_RAMFS_SIZE },
		{ "foreground", no_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "port-file", required_argument, NULL, OPT_PORT_FILE },
		{ "threading", required_argument, NULL, OPT_THREADING },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen_spec = DEFAULT_LISTEN, *export_dir = NULL;
	const char *port_file = NULL;
	char tp[16], host[256], port[16], addr[320];
	uint64_t ramfs_size = DEFAULT_RAMFS_SIZE;
	int ramfs = 0, foreground = 0, size_given = 0, ch, ret, status = 0;
	struct orfa_server_cfg cfg;
	struct orfa_tp_opts tpo;
	struct orfa_backend *be = NULL;
	struct orfa_listener *lst = NULL;
	struct orfa_server *srv = NULL;
	char *end;
	long n;

	umask(0);		/* the backends apply each client's umask */
	signal(SIGPIPE, SIG_IGN);
	orfa_log_set_ident("orfad");
	orfa_server_cfg_default(&cfg);

	while ((ch = getopt_long(argc, argv, "l:e:rfhV", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			listen_spec = optarg;
			break;
		case 'e':
			export_dir = optarg;
			break;
		case 'r':
			ramfs = 1;
			break;
		case OPT_RAMFS_SIZE:
			if (parse_size(optarg, &ramfs_size) < 0)
				bad_usage("invalid --ramfs-size '%s'", optarg);
			size_given = 1;
			break;
		case 'f':
			foreground = 1;
			break;
		case OPT_LOG_LEVEL:
			ret = orfa_log_parse_level(optarg);
			if (ret < 0)
				bad_usage("invalid --log-level '%s' (err, "
					  "warning, notice, info, debug)",
					  optarg);
			orfa_log_set_level((enum orfa_log_level)ret);
			break;
		case OPT_PORT_FILE:
			port_file = optarg;
			break;
		case OPT_THREADING:
			ret = orfa_threading_parse(optarg);
			if (ret < 0)
				bad_usage("invalid --threading '%s' (queue, "
					  "sequential, connection)", optarg);
			cfg.threading = (enum orfa_threading)ret;
			break;
		case OPT_THREADS:
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || n < 1 ||
			    n > 1024)
				bad_usage("invalid --threads '%s' (1 to 1024)",
					  optarg);
			cfg.threads = (unsigned)n;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("orfad %s (ORFA protocol version %u)\n",
			       ORFA_VERSION, ORFA_PROTO_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'orfad --help' for more "
				"information.\n");
			return 2;
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument '%s'", argv[optind]);
	if (!!export_dir + ramfs != 1)
		bad_usage("give exactly one of --export DIR and --ramfs");
	if (size_given && !ramfs)
		bad_usage("--ramfs-size needs --ramfs");
	if (orfa_parse_address(listen_spec, ORFA_DEFAULT_PORT, tp, sizeof(tp),
			       host, sizeof(host), port, sizeof(port)) < 0)
		bad_usage("invalid --listen address '%s'", listen_spec);

	if (ramfs)
		ret = backend_ramfs_create(ramfs_size, &be);
	else
		ret = backend_native_create(export_dir, &be);
	if (ret) {
		if (ramfs)
			fprintf(stderr, "orfad: cannot create the RAM file "
				"system: %s\n", strerror(-ret));
		else
			fprintf(stderr, "orfad: cannot export %s: %s\n",
				export_dir, strerror(-ret));
		return 1;
	}

	orfa_server_listen_opts(&cfg, &tpo);
	ret = orfa_listener_open(tp, host, port, &tpo, &lst, NULL);
	if (ret) {
		fprintf(stderr, "orfad: cannot listen on %s%s%s:%s: %s\n",
			strchr(host, ':') ? "[" : "", host,
			strchr(host, ':') ? "]" : "", port, strerror(-ret));
		status = 1;
		goto out;
	}
	ret = orfa_listener_addr(lst, addr, sizeof(addr));
	if (ret) {
		snprintf(addr, sizeof(addr), "%s:%s", host, port);
		if (port_file) {
			fprintf(stderr, "orfad: cannot get the bound address: "
				"%s\n", strerror(-ret));
			status = 1;
			goto out;
		}
	}
	if (port_file) {
		ret = write_port_file(port_file, addr);
		if (ret) {
			fprintf(stderr, "orfad: cannot write %s: %s\n",
				port_file, strerror(-ret));
			status = 1;
			goto out;
		}
	}
	if (!foreground) {
		ret = daemonize();
		if (ret) {
			log_err("cannot detach: %s", strerror(-ret));
			status = 1;
			goto out;
		}
	}

	ret = orfa_server_create(&cfg, be, lst, &srv);
	if (ret == 0)
		ret = orfa_server_catch_signals(srv);
	if (ret) {
		log_err("cannot start the server: %s", strerror(-ret));
		status = 1;
		goto out;
	}
	if (cfg.threading == ORFA_THREADING_QUEUE)
		log_notice("listening on %s, exporting %s, queue threading "
			   "with %u workers", addr,
			   ramfs ? "a RAM file system" : export_dir,
			   cfg.threads);
	else
		log_notice("listening on %s, exporting %s, %s threading", addr,
			   ramfs ? "a RAM file system" : export_dir,
			   orfa_threading_name(cfg.threading));
	if (orfa_server_run(srv) < 0)
		status = 1;
	log_notice("stopped");
out:
	orfa_server_destroy(srv);
	orfa_listener_close(lst);
	orfa_backend_destroy(be);
	return status;
}
