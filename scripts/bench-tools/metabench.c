/*
 * metabench.c - metadata micro-benchmark used by scripts/bench.
 *
 *   metabench create|stat|unlink DIR N     ops/s over N empty files
 *   metabench statlat FILE N               median and p99 stat() latency (us)
 *   metabench getattrlat FILE N            the same of fstat() on an open
 *                                          file (one GETATTR, caching off)
 *   metabench readlat FILE N               the same of a 4 KiB pread() at
 *                                          offset 0, its pages dropped
 *                                          before each (one READ)
 *
 * Prints one line "ops_per_s=X" or "median_us=X p99_us=Y".  Exit 1 on any
 * failed call (the benchmark refuses to report figures of a broken run).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* fstat() or 4 KiB pread() of file, n times: median and p99. */
static int fd_latency(const char *mode, const char *file, long n)
{
	static char buf[4096];
	int rd = strcmp(mode, "readlat") == 0;
	double *lat = calloc(n, sizeof(*lat));
	int fd = open(file, O_RDONLY);
	struct stat st;

	if (!lat || fd < 0) {
		perror(file);
		return 1;
	}
	/* Untimed warm-up: the first calls after a quiet spell wake threads
	 * and caches that the median should not see. */
	for (long i = 0; i < (n < 200 ? n : 200); i++) {
		if (rd)
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		if (rd ? pread(fd, buf, sizeof(buf), 0) < 0 : fstat(fd, &st) < 0)
			break;
	}
	for (long i = 0; i < n; i++) {
		double t;
		int rc;

		if (rd)
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		t = now();
		rc = rd ? (pread(fd, buf, sizeof(buf), 0) == sizeof(buf) ? 0 : -1)
			: fstat(fd, &st);
		lat[i] = (now() - t) * 1e6;
		if (rc < 0) {
			fprintf(stderr, "metabench: %s %s failed\n", mode, file);
			return 1;
		}
	}
	close(fd);
	qsort(lat, n, sizeof(*lat), cmp_double);
	printf("median_us=%.2f p99_us=%.2f\n", lat[n / 2],
	       lat[(long)(n * 0.99)]);
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	char path[4096];

	if (argc != 4) {
		fprintf(stderr, "usage: metabench create|stat|unlink DIR N | "
			"statlat|getattrlat|readlat FILE N\n");
		return 2;
	}
	const char *mode = argv[1], *dir = argv[2];
	long n = atol(argv[3]);
	if (n <= 0)
		return 2;

	if (strcmp(mode, "getattrlat") == 0 || strcmp(mode, "readlat") == 0)
		return fd_latency(mode, dir, n);
	if (strcmp(mode, "statlat") == 0) {
		double *lat = calloc(n, sizeof(*lat));
		struct stat st;

		if (!lat)
			return 1;
		for (long i = 0; i < n; i++) {
			double t = now();
			if (stat(dir, &st) < 0) {
				perror(dir);
				return 1;
			}
			lat[i] = (now() - t) * 1e6;
		}
		qsort(lat, n, sizeof(*lat), cmp_double);
		printf("median_us=%.2f p99_us=%.2f\n", lat[n / 2],
		       lat[(long)(n * 0.99)]);
		free(lat);
		return 0;
	}

	double t0 = now();
	for (long i = 0; i < n; i++) {
		struct stat st;
		int rc = 0;

		snprintf(path, sizeof(path), "%s/f%07ld", dir, i);
		if (strcmp(mode, "create") == 0) {
			int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
			if (fd < 0 || close(fd) < 0)
				rc = -1;
		} else if (strcmp(mode, "stat") == 0) {
			rc = stat(path, &st);
		} else if (strcmp(mode, "unlink") == 0) {
			rc = unlink(path);
		} else {
			fprintf(stderr, "metabench: unknown mode %s\n", mode);
			return 2;
		}
		if (rc < 0) {
			fprintf(stderr, "metabench: %s %s: %s\n", mode, path,
				strerror(errno));
			return 1;
		}
	}
	printf("ops_per_s=%.0f\n", n / (now() - t0));
	return 0;
}
