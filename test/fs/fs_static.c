/*
 * fs_static.c - a statically linked check of basic file I/O on a mount.
 *
 * Usage: fs_static PATH      (PATH must not exist; removed on success)
 *        fs_static --hello   (prints "fs_static hello"; used to test exec)
 *
 * Built with -static by test/fs/meson.build so the suite also covers a
 * program that does not go through the dynamic loader (and can itself be
 * copied onto the mount and executed there).  Does open, write, lseek,
 * read, pwrite, pread and a MAP_SHARED mmap, verifying every byte.  Prints
 * "OK" and exits 0, or "FAIL <step>: <reason>" and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LEN (1 << 20)

static unsigned char buf[LEN], back[LEN];

static int fail(const char *step)
{
	printf("FAIL %s: %s\n", step, errno ? strerror(errno) : "mismatch");
	return 1;
}

static unsigned char pattern(size_t i)
{
	return (unsigned char)((i * 131u + (i >> 9)) & 0xff);
}

int main(int argc, char **argv)
{
	struct stat st;
	unsigned char *map;
	ssize_t n;
	int fd;

	if (argc == 2 && !strcmp(argv[1], "--hello")) {
		puts("fs_static hello");
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: fs_static PATH | --hello\n");
		return 2;
	}
	for (size_t i = 0; i < LEN; i++)
		buf[i] = pattern(i);

	errno = 0;
	fd = open(argv[1], O_RDWR | O_CREAT | O_EXCL, 0644);
	if (fd < 0)
		return fail("open");
	for (size_t off = 0; off < LEN; off += (size_t)n) {
		n = write(fd, buf + off, LEN - off > 65536 ? 65536 : LEN - off);
		if (n <= 0)
			return fail("write");
	}
	if (lseek(fd, 0, SEEK_END) != LEN)
		return fail("lseek SEEK_END");
	if (lseek(fd, 0, SEEK_SET) != 0)
		return fail("lseek SEEK_SET");
	for (size_t off = 0; off < LEN; off += (size_t)n) {
		n = read(fd, back + off, LEN - off);
		if (n <= 0)
			return fail("read");
	}
	if (memcmp(buf, back, LEN))
		return fail("read back");
	if (pwrite(fd, "STATIC", 6, 4096) != 6)
		return fail("pwrite");
	memcpy(buf + 4096, "STATIC", 6);
	if (fstat(fd, &st) < 0)
		return fail("fstat");
	if (st.st_size != LEN)
		return fail("fstat size");

	map = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return fail("mmap");
	if (memcmp(map, buf, LEN))
		return fail("mmap content");
	memcpy(map + LEN - 6, "MAPPED", 6);
	memcpy(buf + LEN - 6, "MAPPED", 6);
	if (msync(map, LEN, MS_SYNC) < 0)
		return fail("msync");
	if (munmap(map, LEN) < 0)
		return fail("munmap");
	for (size_t off = 0; off < LEN; off += (size_t)n) {
		n = pread(fd, back + off, LEN - off, (off_t)off);
		if (n <= 0)
			return fail("pread");
	}
	if (memcmp(buf, back, LEN))
		return fail("pread after mmap write");
	if (close(fd) < 0)
		return fail("close");
	if (unlink(argv[1]) < 0)
		return fail("unlink");
	puts("OK");
	return 0;
}
