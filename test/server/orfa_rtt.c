/*
 * orfa_rtt.c - round-trip latency of one synchronous client against a
 * running orfad, for scripts/bench --latency (a measuring tool, not a
 * test): the median time of a PING, a GETATTR and a 4 KiB READ, each
 * sent only once the previous reply came back, as orfa's FUSE path sends
 * them under a single-threaded application.  PING costs the transport and
 * the loop; GETATTR and READ add orfad's own work on the request.
 *
 * usage: orfa_rtt --addr HOST:PORT [--count N]
 * Makes "orfa_rtt.<pid>" (4 KiB) in the export root and removes it.
 * Prints one line: ping_us=X getattr_us=Y read_us=Z
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe_lib.h"

enum { RTT_PING, RTT_GETATTR, RTT_READ, RTT_KINDS };

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median_us(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2] * 1e6;
}

/* One request of the given kind: 0 or non-zero. */
static int rtt_one(struct pc *p, int kind, uint64_t node, uint64_t fh,
		   uint8_t *buf)
{
	size_t len = 0;

	switch (kind) {
	case RTT_PING:
		return op_ping(p);
	case RTT_GETATTR:
		return op_getattr(p, node, 0, NULL);
	default:
		return op_read(p, node, fh, 0, 4096, buf, &len) ||
		       len != 4096;
	}
}

/* N rounds of the three kinds, interleaved; medians into us[]. */
static int rtt_measure(struct pc *p, uint64_t node, uint64_t fh, int n,
		       double us[RTT_KINDS])
{
	static uint8_t buf[4096];
	double *t[RTT_KINDS];
	int rc = 0;

	for (int k = 0; k < RTT_KINDS; k++)
		t[k] = calloc((size_t)n, sizeof(double));
	for (int i = 0; i < n && !rc && t[0] && t[1] && t[2]; i++) {
		for (int k = 0; k < RTT_KINDS && !rc; k++) {
			double t0 = now_s();

			rc = rtt_one(p, k, node, fh, buf);
			t[k][i] = now_s() - t0;
		}
	}
	if (!t[0] || !t[1] || !t[2])
		rc = -1;
	for (int k = 0; k < RTT_KINDS; k++) {
		if (!rc)
			us[k] = median_us(t[k], n);
		free(t[k]);
	}
	return rc;
}

static int rtt_run(int n)
{
	static uint8_t data[4096];
	struct orfa_entry e;
	struct pc p;
	char name[64];
	double us[RTT_KINDS];
	uint64_t fh;
	int rc;

	if (pc_open(&p)) {
		fprintf(stderr, "orfa_rtt: cannot connect to %s:%s\n",
			g_host, g_port);
		return 1;
	}
	snprintf(name, sizeof(name), "orfa_rtt.%d", (int)getpid());
	memset(data, 'x', sizeof(data));
	rc = op_create(&p, p.root, name, 0644, 2 /* O_RDWR */, &e, &fh);
	if (rc == 0)
		rc = op_write(&p, e.nodeid, fh, 0, data, sizeof(data), NULL,
			      NULL);
	if (rc == 0)
		rc = rtt_measure(&p, e.nodeid, fh, n, us);
	if (rc == 0)
		printf("ping_us=%.1f getattr_us=%.1f read_us=%.1f\n",
		       us[RTT_PING], us[RTT_GETATTR], us[RTT_READ]);
	else
		fprintf(stderr, "orfa_rtt: a request failed (%d)\n", rc);
	op_unlink(&p, ORFA_OP_UNLINK, p.root, name);
	pc_close(&p);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "count", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = NULL;
	int n = 2000, ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'a': addr = optarg; break;
		case 'n': n = atoi(optarg); break;
		default:
			return 2;
		}
	}
	if (!addr || n < 1 || n > 10000000 ||
	    orfa_parse_address(addr, NULL, NULL, 0, g_host, sizeof(g_host),
			       g_port, sizeof(g_port)) < 0) {
		fprintf(stderr, "usage: orfa_rtt --addr HOST:PORT [--count N]\n");
		return 2;
	}
	return rtt_run(n);
}
