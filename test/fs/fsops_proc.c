/*
 * fsops_proc.c - fsops subcommands that need more than one process or more
 * than one call: shared file offsets after fork/dup, unlinked-but-open
 * files, POSIX and BSD locks held by another process (possibly through
 * another mount), mmap visibility, a deliberately slow reader for the
 * server-kill test, and a UNIX socket bound in the mount.
 *
 * Results are printed as key=value lines (plus ERR/FAIL lines, see
 * fsops.h); the shell test decides which key it asserts, so one helper run
 * backs exactly one TAP test.  Every wait on another process is bounded by
 * alarm() so a hung file system turns into an error, not a hung test.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsops.h"

#define ALARM_SECONDS 60

static void msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Full write/read on a descriptor; -errno on failure, else bytes done. */
static ssize_t write_all(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static ssize_t pread_all(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  off + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* Wait for a child; returns its exit status, or 128+signal. */
static int wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return 127;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

int fsops_offset_fork(int argc, char **argv)
{
	char buf[64] = "";
	off_t pos;
	pid_t pid;
	ssize_t n;
	int fd;

	fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return fsops_err("open", errno);
	pid = fork();
	if (pid < 0)
		return fsops_err("fork", errno);
	if (pid == 0) {
		alarm(ALARM_SECONDS);
		_exit(write_all(fd, "child-", 6) == 6 ? 0 : 1);
	}
	if (wait_child(pid) != 0)
		return fsops_fail("child write failed");
	if (write_all(fd, "parent", 6) != 6)
		return fsops_err("write", errno);
	pos = lseek(fd, 0, SEEK_CUR);
	n = pread_all(fd, buf, sizeof(buf) - 1, 0);
	if (n < 0)
		return fsops_err("pread", (int)-n);
	close(fd);
	if (pos != 12)
		return fsops_fail("parent offset %jd after child+parent writes, "
				  "want 12", (intmax_t)pos);
	if (n != 12 || memcmp(buf, "child-parent", 12))
		return fsops_fail("content '%.*s', want 'child-parent'",
				  (int)n, buf);
	puts("OK");
	return FSOPS_EXIT_OK;
}

int fsops_offset_dup(int argc, char **argv)
{
	char buf[8] = "";
	int fd1, fd2;
	ssize_t n;

	fd1 = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd1 < 0)
		return fsops_err("open", errno);
	fd2 = dup(fd1);
	if (fd2 < 0)
		return fsops_err("dup", errno);
	if (write_all(fd1, "abc", 3) != 3 || write_all(fd2, "def", 3) != 3)
		return fsops_err("write", errno);
	if (lseek(fd2, 1, SEEK_SET) != 1)
		return fsops_err("lseek", errno);
	n = read(fd1, buf, 2);
	if (n < 0)
		return fsops_err("read", errno);
	if (n != 2 || memcmp(buf, "bc", 2))
		return fsops_fail("read after lseek on dup gave '%.*s', "
				  "want 'bc'", (int)n, buf);
	n = pread_all(fd1, buf, sizeof(buf), 0);
	close(fd1);
	close(fd2);
	if (n != 6 || memcmp(buf, "abcdef", 6))
		return fsops_fail("content '%.*s', want 'abcdef'",
				  (int)(n < 0 ? 0 : n), buf);
	puts("OK");
	return FSOPS_EXIT_OK;
}

/* Lists the directory of path looking for leftovers of the unlinked name. */
static int check_hidden(const char *path)
{
	char *copy = strdup(path);
	char *base_copy = strdup(path);
	const char *base;
	struct dirent *de;
	int found_hidden = 0, found_name = 0, entries = 0;
	DIR *d;

	if (!copy || !base_copy)
		return fsops_err("strdup", ENOMEM);
	base = basename(base_copy);
	d = opendir(dirname(copy));
	if (!d)
		return fsops_err("opendir", errno);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		entries++;
		if (!strncmp(de->d_name, ".fuse_hidden", 12)) {
			printf("hidden=%s\n", de->d_name);
			found_hidden = 1;
		}
		if (!strcmp(de->d_name, base))
			found_name = 1;
	}
	closedir(d);
	free(copy);
	free(base_copy);
	if (found_hidden)
		return fsops_fail("a .fuse_hidden* entry is listed while the "
				  "unlinked file is open");
	if (found_name)
		return fsops_fail("unlinked name still listed");
	printf("OK entries=%d\n", entries);
	return FSOPS_EXIT_OK;
}

int fsops_unlinked(int argc, char **argv)
{
	const char *path = argv[1], *mode = argv[2];
	static const char data[] = "hello-unlinked\n";
	char buf[64] = "";
	struct stat st;
	int fd, rc;
	ssize_t n;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return fsops_err("open", errno);
	if (write_all(fd, data, sizeof(data) - 1) != sizeof(data) - 1)
		return fsops_err("write", errno);
	if (!strcmp(mode, "read")) {
		/* Reopen read-only so the read does not rely on the writer. */
		close(fd);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			return fsops_err("reopen", errno);
	}
	if (unlink(path) < 0)
		return fsops_err("unlink", errno);

	if (!strcmp(mode, "read")) {
		n = pread_all(fd, buf, sizeof(buf), 0);
		if (n < 0)
			return fsops_err("pread after unlink", (int)-n);
		if (n != sizeof(data) - 1 || memcmp(buf, data, (size_t)n))
			return fsops_fail("read after unlink gave %zd bytes "
					  "'%.*s'", n, (int)n, buf);
		rc = FSOPS_EXIT_OK;
		puts("OK");
	} else if (!strcmp(mode, "write")) {
		if (pwrite(fd, "second", 6, 5) != 6)
			return fsops_err("pwrite after unlink", errno);
		if (fsync(fd) < 0)
			return fsops_err("fsync after unlink", errno);
		n = pread_all(fd, buf, sizeof(buf), 0);
		if (n < 0)
			return fsops_err("pread after unlink", (int)-n);
		if (n != 15 || memcmp(buf, "hellosecondked\n", 15))
			return fsops_fail("content after unlink+pwrite '%.*s', "
					  "want 'hellosecondked\\n'", (int)n,
					  buf);
		if (fstat(fd, &st) < 0)
			return fsops_err("fstat", errno);
		if (st.st_size != 15)
			return fsops_fail("fstat size %jd, want 15",
					  (intmax_t)st.st_size);
		rc = FSOPS_EXIT_OK;
		puts("OK");
	} else if (!strcmp(mode, "nlink")) {
		if (fstat(fd, &st) < 0)
			return fsops_err("fstat after unlink", errno);
		if (st.st_nlink != 0)
			return fsops_fail("st_nlink %ju after unlink, want 0",
					  (uintmax_t)st.st_nlink);
		rc = FSOPS_EXIT_OK;
		puts("OK");
	} else if (!strcmp(mode, "hidden")) {
		rc = check_hidden(path);
	} else {
		fprintf(stderr, "unlinked: mode must be read|write|nlink|hidden\n");
		return FSOPS_EXIT_USAGE;
	}
	if (close(fd) < 0 && rc == FSOPS_EXIT_OK)
		return fsops_err("close", errno);
	return rc;
}

/* ---- locks ------------------------------------------------------------ */

enum lock_mode { POSIX_WR, POSIX_RD, POSIX_DISJOINT, POSIX_WAIT,
		 FLOCK_EX, FLOCK_SH };

static const char *lk_type_name(short t)
{
	switch (t) {
	case F_RDLCK: return "F_RDLCK";
	case F_WRLCK: return "F_WRLCK";
	case F_UNLCK: return "F_UNLCK";
	default: return "F_?";
	}
}

static int posix_lock(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
			    .l_start = start, .l_len = len };

	return fcntl(fd, cmd, &fl) < 0 ? -errno : 0;
}

/*
 * The holder: locks, reports 'L' (or 'E' + errno byte), waits for the
 * parent's go, optionally lingers (posix-wait), closes (releasing the
 * lock) and reports 'R'.
 */
static void lock_holder(enum lock_mode m, const char *path, int rd, int wr)
{
	char msg[2] = { 'L', 0 };
	char go;
	int fd, r;

	alarm(ALARM_SECONDS);
	fd = open(path, O_RDWR);
	if (fd < 0) {
		r = -errno;
	} else if (m == FLOCK_EX || m == FLOCK_SH) {
		r = flock(fd, m == FLOCK_EX ? LOCK_EX : LOCK_SH) < 0 ? -errno
								       : 0;
	} else {
		r = posix_lock(fd, F_SETLK, m == POSIX_RD ? F_RDLCK : F_WRLCK,
			       0, 100);
	}
	if (r < 0) {
		msg[0] = 'E';
		msg[1] = (char)-r;
	}
	if (write(wr, msg, 2) != 2 || r < 0)
		_exit(1);
	if (read(rd, &go, 1) < 0)
		_exit(1);
	if (m == POSIX_WAIT)
		msleep(300);	/* let the parent block in F_SETLKW */
	close(fd);
	msg[0] = 'R';
	_exit(write(wr, msg, 2) == 2 ? 0 : 1);
}

static void print_res(const char *key, int r)
{
	printf("%s=%s\n", key, r < 0 ? fsops_errname(-r) : "OK");
}

int fsops_lockpair(int argc, char **argv)
{
	static const char *names[] = { "posix-wr", "posix-rd",
		"posix-disjoint", "posix-wait", "flock-ex", "flock-sh" };
	enum lock_mode m;
	int to_child[2], to_parent[2];
	struct flock fl;
	char msg[2];
	size_t i;
	pid_t pid;
	int fd, r, st;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(argv[1], names[i]))
			break;
	if (i == sizeof(names) / sizeof(names[0])) {
		fprintf(stderr, "lockpair: unknown mode %s\n", argv[1]);
		return FSOPS_EXIT_USAGE;
	}
	m = (enum lock_mode)i;
	fd = open(argv[2], O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		return fsops_err("create", errno);
	close(fd);
	if (pipe(to_child) < 0 || pipe(to_parent) < 0)
		return fsops_err("pipe", errno);
	alarm(ALARM_SECONDS);
	pid = fork();
	if (pid < 0)
		return fsops_err("fork", errno);
	if (pid == 0) {
		close(to_child[1]);
		close(to_parent[0]);
		lock_holder(m, argv[2], to_child[0], to_parent[1]);
	}
	close(to_child[0]);
	close(to_parent[1]);
	printf("holder_pid=%d\n", (int)pid);
	if (read(to_parent[0], msg, 2) != 2)
		return fsops_fail("holder died before locking");
	if (msg[0] == 'E')
		return fsops_err("holder lock", msg[1]);

	fd = open(argv[3], O_RDWR);
	if (fd < 0)
		return fsops_err("open other", errno);
	switch (m) {
	case POSIX_WR:
	case POSIX_WAIT:
		print_res("setlk", posix_lock(fd, F_SETLK, F_WRLCK, 50, 100));
		fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET,
				     .l_start = 50, .l_len = 100 };
		if (fcntl(fd, F_GETLK, &fl) < 0) {
			print_res("getlk", -errno);
		} else {
			printf("getlk_type=%s\n", lk_type_name(fl.l_type));
			printf("getlk_pid=%d\n", (int)fl.l_pid);
			printf("getlk_range=%jd+%jd\n", (intmax_t)fl.l_start,
			       (intmax_t)fl.l_len);
		}
		break;
	case POSIX_RD:
		print_res("setlk", posix_lock(fd, F_SETLK, F_RDLCK, 0, 100));
		break;
	case POSIX_DISJOINT:
		print_res("setlk", posix_lock(fd, F_SETLK, F_WRLCK, 200, 100));
		break;
	case FLOCK_EX:
		print_res("flock", flock(fd, LOCK_EX | LOCK_NB) < 0 ? -errno
								    : 0);
		break;
	case FLOCK_SH:
		print_res("flock", flock(fd, LOCK_SH | LOCK_NB) < 0 ? -errno
								    : 0);
		break;
	}

	if (write(to_child[1], "g", 1) != 1)
		return fsops_err("write pipe", errno);
	if (m == POSIX_WAIT) {
		/* Blocks until the holder closes (~300 ms); alarm bounds it. */
		print_res("setlkw", posix_lock(fd, F_SETLKW, F_WRLCK, 50, 100));
	}
	if (read(to_parent[0], msg, 2) != 2 || msg[0] != 'R')
		return fsops_fail("holder did not release");
	st = wait_child(pid);
	if (st != 0)
		return fsops_fail("holder exit status %d", st);
	if (m == FLOCK_EX || m == FLOCK_SH) {
		/*
		 * A FUSE file system learns of a flock unlock-on-close from
		 * the RELEASE the kernel sends asynchronously after close()
		 * returned, so another mount may still see the lock for a
		 * moment: poll (10 ms steps, at most 10 s) and say how long.
		 * POSIX locks are dropped synchronously on close (the kernel
		 * sends the unlock itself), so they get a single try.
		 */
		int tries = 0;

		while ((r = flock(fd, LOCK_EX | LOCK_NB) < 0 ? -errno : 0) ==
		       -EWOULDBLOCK && tries < 1000) {
			msleep(10);
			tries++;
		}
		printf("after_release_retries=%d\n", tries);
	} else {
		r = posix_lock(fd, F_SETLK, F_WRLCK, 0, 1000);
	}
	print_res("after_release", r);
	close(fd);
	return FSOPS_EXIT_OK;
}

/* ---- mmap ------------------------------------------------------------- */

#define MAP_LEN 8192

/* Creates path with MAP_LEN bytes of 'a' and returns an O_RDWR fd. */
static int make_a_file(const char *path)
{
	char buf[MAP_LEN];
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		return -errno;
	memset(buf, 'a', sizeof(buf));
	if (write_all(fd, buf, sizeof(buf)) != sizeof(buf)) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

/*
 * A child opens rpath afresh and compares it with want; 0 when equal.
 * Prints the first difference.
 */
static int child_compare(const char *rpath, const char *want)
{
	pid_t pid = fork();

	if (pid < 0)
		return fsops_err("fork", errno);
	if (pid == 0) {
		char buf[MAP_LEN];
		ssize_t n;
		int fd;

		alarm(ALARM_SECONDS);
		fd = open(rpath, O_RDONLY);
		if (fd < 0)
			_exit(fsops_err("reader open", errno));
		n = pread_all(fd, buf, sizeof(buf), 0);
		if (n < 0)
			_exit(fsops_err("reader pread", (int)-n));
		if (n != MAP_LEN)
			_exit(fsops_fail("reader got %zd bytes, want %d", n,
					 MAP_LEN));
		for (size_t i = 0; i < MAP_LEN; i++)
			if (buf[i] != want[i])
				_exit(fsops_fail("reader: byte %zu is '%c', "
						 "want '%c'", i, buf[i],
						 want[i]));
		_exit(0);
	}
	return wait_child(pid);
}

int fsops_mmap_shared(int argc, char **argv)
{
	static const char tag[] = "shared-mmap-data";
	char want[MAP_LEN];
	int do_msync = !strcmp(argv[3], "msync");
	char *map;
	int fd, rc;

	if (!do_msync && strcmp(argv[3], "munmap")) {
		fprintf(stderr, "mmap-shared: last argument msync|munmap\n");
		return FSOPS_EXIT_USAGE;
	}
	alarm(ALARM_SECONDS);
	fd = make_a_file(argv[1]);
	if (fd < 0)
		return fsops_err("create", -fd);
	map = mmap(NULL, MAP_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return fsops_err("mmap", errno);
	memcpy(map + 100, tag, sizeof(tag) - 1);
	memcpy(map + 5000, tag, sizeof(tag) - 1);
	memset(want, 'a', sizeof(want));
	memcpy(want + 100, tag, sizeof(tag) - 1);
	memcpy(want + 5000, tag, sizeof(tag) - 1);
	if (do_msync) {
		if (msync(map, MAP_LEN, MS_SYNC) < 0)
			return fsops_err("msync", errno);
	} else {
		if (munmap(map, MAP_LEN) < 0)
			return fsops_err("munmap", errno);
	}
	rc = child_compare(argv[2], want);
	if (do_msync)
		munmap(map, MAP_LEN);
	close(fd);
	if (rc == 0)
		puts("OK");
	return rc;
}

int fsops_mmap_private(int argc, char **argv)
{
	char want[MAP_LEN];
	char *map;
	ssize_t n;
	int fd, rc;

	alarm(ALARM_SECONDS);
	fd = make_a_file(argv[1]);
	if (fd < 0)
		return fsops_err("create", -fd);
	map = mmap(NULL, MAP_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		return fsops_err("mmap", errno);
	memcpy(map + 100, "private", 7);
	if (memcmp(map + 100, "private", 7))
		return fsops_fail("private mapping does not hold its write");
	memset(want, 'a', sizeof(want));
	rc = child_compare(argv[2], want);
	if (rc)
		return rc;
	if (munmap(map, MAP_LEN) < 0)
		return fsops_err("munmap", errno);
	/* After munmap the file must still be untouched, for us too. */
	n = pread_all(fd, want, sizeof(want), 0);
	close(fd);
	if (n != MAP_LEN)
		return fsops_fail("pread after munmap: %zd bytes", n);
	for (size_t i = 0; i < MAP_LEN; i++)
		if (want[i] != 'a')
			return fsops_fail("byte %zu changed after munmap of a "
					  "private mapping", i);
	rc = child_compare(argv[2], want);
	if (rc == 0)
		puts("OK");
	return rc;
}

/* ---- slow reader ------------------------------------------------------ */

/*
 * Reads PATH in 1 MiB steps, 20 ms apart, writing the byte count read so
 * far into PROGRESS_FILE after every step, so that the server-kill test can
 * kill the server while this read is known to be in progress.  Exit 0 at
 * EOF, 1 (with ERR) when a read fails.  No alarm: the caller bounds it with
 * timeout(1) so a hang is told apart from an error.
 */
int fsops_slowread(int argc, char **argv)
{
	static char buf[1 << 20];
	long long total = 0;
	char num[32];
	int fd, pfd;

	fd = open(argv[1], O_RDONLY);
	if (fd < 0)
		return fsops_err("open", errno);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		int len;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			printf("read_bytes=%lld\n", total);
			return fsops_err("read", err);
		}
		if (n == 0)
			break;
		total += n;
		pfd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (pfd >= 0) {
			len = snprintf(num, sizeof(num), "%lld\n", total);
			if (write_all(pfd, num, (size_t)len) < 0)
				perror("progress");
			close(pfd);
		}
		msleep(20);
	}
	close(fd);
	printf("OK total=%lld\n", total);
	return FSOPS_EXIT_OK;
}

/* ---- UNIX socket ------------------------------------------------------ */

int fsops_sock(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[8] = "";
	struct stat st;
	int ls, cs, rc;
	pid_t pid;

	if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "sock: path too long for sun_path\n");
		return FSOPS_EXIT_USAGE;
	}
	strcpy(sa.sun_path, argv[1]);
	alarm(ALARM_SECONDS);
	ls = socket(AF_UNIX, SOCK_STREAM, 0);
	if (ls < 0)
		return fsops_err("socket", errno);
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return fsops_err("bind", errno);
	if (listen(ls, 1) < 0)
		return fsops_err("listen", errno);
	if (lstat(argv[1], &st) < 0)
		return fsops_err("lstat", errno);
	if (!S_ISSOCK(st.st_mode))
		return fsops_fail("bound path has mode %o, not a socket",
				  (unsigned)st.st_mode);
	pid = fork();
	if (pid < 0)
		return fsops_err("fork", errno);
	if (pid == 0) {
		int s = socket(AF_UNIX, SOCK_STREAM, 0);

		if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(fsops_err("connect", errno));
		if (write_all(s, "ping", 4) != 4 || read(s, buf, 4) != 4 ||
		    memcmp(buf, "pong", 4))
			_exit(fsops_fail("client exchange"));
		_exit(0);
	}
	cs = accept(ls, NULL, NULL);
	if (cs < 0)
		return fsops_err("accept", errno);
	if (read(cs, buf, 4) != 4 || memcmp(buf, "ping", 4))
		return fsops_fail("server did not receive ping");
	if (write_all(cs, "pong", 4) != 4)
		return fsops_err("write", errno);
	rc = wait_child(pid);
	close(cs);
	close(ls);
	if (rc)
		return rc;
	puts("OK");
	return FSOPS_EXIT_OK;
}
