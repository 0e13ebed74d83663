/*
 * fsops.c - single-system-call subcommands of the fsops test helper and
 * the dispatch table.  Multi-process subcommands (locks, mmap, fork) are in
 * fsops_proc.c.  Each subcommand makes exactly the calls it names and
 * reports the result as described in fsops.h, so a shell test can check an
 * exact errno ("expect_err ENOTEMPTY fsops rename a b").
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fsops.h"

const char *fsops_errname(int err)
{
	static char buf[32];
	const char *name = strerrorname_np(err);

	if (name)
		return name;
	snprintf(buf, sizeof(buf), "E%d", err);
	return buf;
}

int fsops_err(const char *op, int err)
{
	printf("ERR %s %s: %s\n", fsops_errname(err), op, strerror(err));
	fflush(stdout);
	return FSOPS_EXIT_ERR;
}

int fsops_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("FAIL ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	return FSOPS_EXIT_FAIL;
}

static int ok(void)
{
	puts("OK");
	return FSOPS_EXIT_OK;
}

/* Parse an unsigned number (any base strtoull accepts); -1 on junk. */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	if (errno || end == s || *end)
		return -1;
	return 0;
}

static int cmd_creat_excl(int argc, char **argv)
{
	mode_t mode = argc > 2 ? (mode_t)strtoul(argv[2], NULL, 8) : 0644;
	int fd = open(argv[1], O_CREAT | O_EXCL | O_WRONLY, mode);

	if (fd < 0)
		return fsops_err("open(O_CREAT|O_EXCL)", errno);
	close(fd);
	return ok();
}

static int cmd_open(int argc, char **argv)
{
	const char *how = argv[2];
	int flags;
	int fd;

	if (!strcmp(how, "r"))
		flags = O_RDONLY;
	else if (!strcmp(how, "w"))
		flags = O_WRONLY;
	else if (!strcmp(how, "rw"))
		flags = O_RDWR;
	else if (!strcmp(how, "dir"))
		flags = O_RDONLY | O_DIRECTORY;
	else if (!strcmp(how, "creat"))
		flags = O_WRONLY | O_CREAT;
	else {
		fprintf(stderr, "open: mode must be r|w|rw|dir|creat\n");
		return FSOPS_EXIT_USAGE;
	}
	fd = open(argv[1], flags, 0666);
	if (fd < 0)
		return fsops_err("open", errno);
	close(fd);
	return ok();
}

static int cmd_mkdir(int argc, char **argv)
{
	mode_t mode = argc > 2 ? (mode_t)strtoul(argv[2], NULL, 8) : 0755;

	if (mkdir(argv[1], mode) < 0)
		return fsops_err("mkdir", errno);
	return ok();
}

static int cmd_rmdir(int argc, char **argv)
{
	if (rmdir(argv[1]) < 0)
		return fsops_err("rmdir", errno);
	return ok();
}

static int cmd_unlink(int argc, char **argv)
{
	if (unlink(argv[1]) < 0)
		return fsops_err("unlink", errno);
	return ok();
}

static int cmd_link(int argc, char **argv)
{
	if (link(argv[1], argv[2]) < 0)
		return fsops_err("link", errno);
	return ok();
}

static int cmd_symlink(int argc, char **argv)
{
	if (symlink(argv[1], argv[2]) < 0)
		return fsops_err("symlink", errno);
	return ok();
}

static int cmd_rename(int argc, char **argv)
{
	if (rename(argv[1], argv[2]) < 0)
		return fsops_err("rename", errno);
	return ok();
}

static int cmd_rename2(int argc, char **argv)
{
	unsigned int flags;

	if (!strcmp(argv[3], "noreplace"))
		flags = RENAME_NOREPLACE;
	else if (!strcmp(argv[3], "exchange"))
		flags = RENAME_EXCHANGE;
	else if (!strcmp(argv[3], "none"))
		flags = 0;
	else {
		fprintf(stderr, "rename2: flags must be noreplace|exchange|none\n");
		return FSOPS_EXIT_USAGE;
	}
	if (renameat2(AT_FDCWD, argv[1], AT_FDCWD, argv[2], flags) < 0)
		return fsops_err("renameat2", errno);
	return ok();
}

static int cmd_stat(int argc, char **argv)
{
	struct stat st;

	if (stat(argv[1], &st) < 0)
		return fsops_err("stat", errno);
	printf("OK ino=%ju nlink=%ju size=%jd\n", (uintmax_t)st.st_ino,
	       (uintmax_t)st.st_nlink, (intmax_t)st.st_size);
	return FSOPS_EXIT_OK;
}

/* "now", "omit" or SECONDS[.NANOSECONDS] (seconds may be negative). */
static int parse_ts(const char *s, struct timespec *ts)
{
	char *end;

	if (!strcmp(s, "now")) {
		ts->tv_sec = 0;
		ts->tv_nsec = UTIME_NOW;
		return 0;
	}
	if (!strcmp(s, "omit")) {
		ts->tv_sec = 0;
		ts->tv_nsec = UTIME_OMIT;
		return 0;
	}
	errno = 0;
	ts->tv_sec = strtoll(s, &end, 10);
	if (errno || end == s)
		return -1;
	ts->tv_nsec = 0;
	if (*end == '.') {
		const char *p = end + 1;
		long ns = 0;
		int digits = 0;

		for (; *p >= '0' && *p <= '9' && digits < 9; p++, digits++)
			ns = ns * 10 + (*p - '0');
		if (*p)
			return -1;
		for (; digits < 9; digits++)
			ns *= 10;
		ts->tv_nsec = ns;
	} else if (*end) {
		return -1;
	}
	return 0;
}

static int cmd_utimens(int argc, char **argv)
{
	struct timespec ts[2];

	if (parse_ts(argv[2], &ts[0]) || parse_ts(argv[3], &ts[1])) {
		fprintf(stderr, "utimens: bad time\n");
		return FSOPS_EXIT_USAGE;
	}
	if (utimensat(AT_FDCWD, argv[1], ts, 0) < 0)
		return fsops_err("utimensat", errno);
	return ok();
}

static int cmd_getxattr(int argc, char **argv)
{
	char buf[65536 + 1];
	ssize_t n = getxattr(argv[1], argv[2], buf, sizeof(buf) - 1);

	if (n < 0)
		return fsops_err("getxattr", errno);
	buf[n] = '\0';
	printf("OK %s\n", buf);
	return FSOPS_EXIT_OK;
}

static int cmd_setxattr(int argc, char **argv)
{
	int flags = 0;

	if (argc > 4) {
		if (!strcmp(argv[4], "create"))
			flags = XATTR_CREATE;
		else if (!strcmp(argv[4], "replace"))
			flags = XATTR_REPLACE;
		else {
			fprintf(stderr, "setxattr: flag must be create|replace\n");
			return FSOPS_EXIT_USAGE;
		}
	}
	if (setxattr(argv[1], argv[2], argv[3], strlen(argv[3]), flags) < 0)
		return fsops_err("setxattr", errno);
	return ok();
}

static int cmd_removexattr(int argc, char **argv)
{
	if (removexattr(argv[1], argv[2]) < 0)
		return fsops_err("removexattr", errno);
	return ok();
}

/* Prints the names one per line, without "OK" (sorted by the caller). */
static int cmd_listxattr(int argc, char **argv)
{
	char buf[65536];
	ssize_t n = listxattr(argv[1], buf, sizeof(buf));

	if (n < 0)
		return fsops_err("listxattr", errno);
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
		puts(buf + i);
	return FSOPS_EXIT_OK;
}

/* seek PATH data|hole OFFSET: prints "OK <resulting offset>". */
static int cmd_seek(int argc, char **argv)
{
	int whence;
	uint64_t off;
	off_t r;
	int fd;

	if (!strcmp(argv[2], "data"))
		whence = SEEK_DATA;
	else if (!strcmp(argv[2], "hole"))
		whence = SEEK_HOLE;
	else {
		fprintf(stderr, "seek: whence must be data|hole\n");
		return FSOPS_EXIT_USAGE;
	}
	if (parse_u64(argv[3], &off)) {
		fprintf(stderr, "seek: bad offset\n");
		return FSOPS_EXIT_USAGE;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0)
		return fsops_err("open", errno);
	r = lseek(fd, (off_t)off, whence);
	if (r < 0) {
		int err = errno;

		close(fd);
		return fsops_err("lseek", err);
	}
	close(fd);
	printf("OK %jd\n", (intmax_t)r);
	return FSOPS_EXIT_OK;
}

/* pwrite PATH OFFSET STRING: writes STRING at OFFSET without truncating. */
static int cmd_pwrite(int argc, char **argv)
{
	uint64_t off;
	size_t len = strlen(argv[3]);
	ssize_t n;
	int fd;

	if (parse_u64(argv[2], &off)) {
		fprintf(stderr, "pwrite: bad offset\n");
		return FSOPS_EXIT_USAGE;
	}
	fd = open(argv[1], O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		return fsops_err("open", errno);
	n = pwrite(fd, argv[3], len, (off_t)off);
	if (n < 0) {
		int err = errno;

		close(fd);
		return fsops_err("pwrite", err);
	}
	if (close(fd) < 0)
		return fsops_err("close", errno);
	if ((size_t)n != len)
		return fsops_fail("short pwrite %zd of %zu", n, len);
	return ok();
}

/* copy-range SRC DST: copies all of SRC into a new DST with
 * copy_file_range(2), in one or more calls. */
static int cmd_copy_range(int argc, char **argv)
{
	struct stat st;
	int in, out;
	off_t left;

	in = open(argv[1], O_RDONLY);
	if (in < 0)
		return fsops_err("open src", errno);
	if (fstat(in, &st) < 0)
		return fsops_err("fstat", errno);
	out = open(argv[2], O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (out < 0)
		return fsops_err("open dst", errno);
	for (left = st.st_size; left > 0;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);

		if (n < 0)
			return fsops_err("copy_file_range", errno);
		if (n == 0)
			return fsops_fail("copy_file_range returned 0 with "
					  "%jd bytes left", (intmax_t)left);
		left -= n;
	}
	close(in);
	if (close(out) < 0)
		return fsops_err("close dst", errno);
	return ok();
}

/* open-many DIR N: creates DIR/f0..f<N-1>, keeps all N open at once,
 * writes each its own name, then reads every one back through its
 * descriptor before closing them. */
static int cmd_open_many(int argc, char **argv)
{
	char path[4096], want[64], got[64];
	uint64_t n;
	int *fds;

	if (parse_u64(argv[2], &n) || n == 0 || n > 100000) {
		fprintf(stderr, "open-many: N must be 1..100000\n");
		return FSOPS_EXIT_USAGE;
	}
	fds = calloc(n, sizeof(*fds));
	if (!fds)
		return fsops_err("calloc", ENOMEM);
	for (uint64_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/f%ju", argv[1], (uintmax_t)i);
		fds[i] = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
		if (fds[i] < 0) {
			int err = errno;

			printf("opened=%ju\n", (uintmax_t)i);
			return fsops_err("open", err);
		}
		snprintf(want, sizeof(want), "file %ju\n", (uintmax_t)i);
		if (write(fds[i], want, strlen(want)) != (ssize_t)strlen(want))
			return fsops_err("write", errno);
	}
	for (uint64_t i = 0; i < n; i++) {
		ssize_t r;

		snprintf(want, sizeof(want), "file %ju\n", (uintmax_t)i);
		r = pread(fds[i], got, sizeof(got), 0);
		if (r < 0)
			return fsops_err("pread", errno);
		if ((size_t)r != strlen(want) || memcmp(got, want, (size_t)r))
			return fsops_fail("descriptor %ju reads '%.*s'",
					  (uintmax_t)i, (int)r, got);
	}
	for (uint64_t i = 0; i < n; i++)
		if (close(fds[i]) < 0)
			return fsops_err("close", errno);
	free(fds);
	return ok();
}

struct fsops_cmd {
	const char *name;
	int min_args;		/* arguments after the subcommand name */
	int (*fn)(int argc, char **argv);
	const char *usage;
};

static const struct fsops_cmd cmds[] = {
	{ "creat-excl", 1, cmd_creat_excl, "PATH [MODE]" },
	{ "open", 2, cmd_open, "PATH r|w|rw|dir|creat" },
	{ "mkdir", 1, cmd_mkdir, "PATH [MODE]" },
	{ "rmdir", 1, cmd_rmdir, "PATH" },
	{ "unlink", 1, cmd_unlink, "PATH" },
	{ "link", 2, cmd_link, "OLD NEW" },
	{ "symlink", 2, cmd_symlink, "TARGET PATH" },
	{ "rename", 2, cmd_rename, "OLD NEW" },
	{ "rename2", 3, cmd_rename2, "OLD NEW noreplace|exchange|none" },
	{ "stat", 1, cmd_stat, "PATH" },
	{ "utimens", 3, cmd_utimens, "PATH ATIME MTIME (now|omit|S[.NS])" },
	{ "getxattr", 2, cmd_getxattr, "PATH NAME" },
	{ "setxattr", 3, cmd_setxattr, "PATH NAME VALUE [create|replace]" },
	{ "removexattr", 2, cmd_removexattr, "PATH NAME" },
	{ "listxattr", 1, cmd_listxattr, "PATH" },
	{ "seek", 3, cmd_seek, "PATH data|hole OFFSET" },
	{ "pwrite", 3, cmd_pwrite, "PATH OFFSET STRING" },
	{ "copy-range", 2, cmd_copy_range, "SRC DST" },
	{ "open-many", 2, cmd_open_many, "DIR N" },
	{ "offset-fork", 1, fsops_offset_fork, "PATH" },
	{ "offset-dup", 1, fsops_offset_dup, "PATH" },
	{ "unlinked", 2, fsops_unlinked, "PATH read|write|nlink|hidden" },
	{ "lockpair", 3, fsops_lockpair,
	  "MODE HOLDER_PATH OTHER_PATH (posix-wr|posix-rd|posix-disjoint|"
	  "posix-wait|flock-ex|flock-sh|flock-release)" },
	{ "mmap-shared", 3, fsops_mmap_shared, "WPATH RPATH msync|munmap" },
	{ "mmap-private", 2, fsops_mmap_private, "WPATH RPATH" },
	{ "slowread", 2, fsops_slowread, "PATH PROGRESS_FILE" },
	{ "sock", 1, fsops_sock, "PATH" },
};

static void usage(void)
{
	fprintf(stderr, "usage: fsops COMMAND ARGS...\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(stderr, "  %s %s\n", cmds[i].name, cmds[i].usage);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		usage();
		return FSOPS_EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		if (argc - 2 < cmds[i].min_args) {
			fprintf(stderr, "usage: fsops %s %s\n", cmds[i].name,
				cmds[i].usage);
			return FSOPS_EXIT_USAGE;
		}
		return cmds[i].fn(argc - 1, argv + 1);
	}
	usage();
	return FSOPS_EXIT_USAGE;
}
