/*
 * orfa_metrics_load.c - a fixed, known load for the metrics test
 * (run-metrics.sh): over one connection, CREATE a file, WRITE 3 x 4096
 * bytes, READ them back as 2 x 4096 (checked), GETATTR the root 5 times,
 * OPEN the file a second time (EMFILE: the script runs orfad with
 * --max-files 1, one limit hit), RELEASE it, and LOOKUP a name that does
 * not exist (one ENOENT).  Prints TAP lines for its own steps; the script
 * then checks orfad's counters.
 *   orfa_metrics_load HOST:PORT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "orfa_proto.h"
#include "probe_lib.h"
#include "transport.h"

int main(int argc, char **argv)
{
	static uint8_t buf[4096], got[4096];
	struct orfa_entry e;
	struct orfa_attr a;
	struct pc p;
	uint64_t fh, n;
	size_t len;
	int ret, bad = 0;

	if (argc != 2 || orfa_parse_address(argv[1], NULL, NULL, 0, g_host,
			sizeof(g_host), g_port, sizeof(g_port)) < 0) {
		fprintf(stderr, "usage: orfa_metrics_load HOST:PORT\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&p, 0, sizeof(p));
	if (!ok(pc_open(&p) == 0, "load: connect and HELLO"))
		return 1;
	ret = op_create(&p, p.root, "metrics-file", 0644, O_RDWR, &e, &fh);
	ok(ret == 0, "load: CREATE (%d)", ret);
	for (unsigned i = 0; i < 3; i++) {
		fill(buf, sizeof(buf), i * 4096u, 7);
		ret = op_write(&p, e.nodeid, fh, i * 4096u, buf, sizeof(buf),
			       &n, &a);
		bad |= ret != 0 || n != sizeof(buf);
	}
	ok(!bad, "load: 3 WRITEs of 4096 bytes");
	for (unsigned i = 0; i < 2; i++) {
		ret = op_read(&p, e.nodeid, fh, i * 4096u, sizeof(got), got,
			      &len);
		bad |= ret != 0 || len != sizeof(got) ||
		       !check(got, len, i * 4096u, 7);
	}
	ok(!bad, "load: 2 READs of 4096 bytes read back");
	for (unsigned i = 0; i < 5; i++)
		bad |= op_getattr(&p, p.root, 0, &a) != 0;
	ok(!bad, "load: 5 GETATTRs");
	ret = op_open(&p, ORFA_OP_OPEN, e.nodeid, O_RDONLY, &n, &a);
	ok(ret == EMFILE, "load: a second OPEN is EMFILE (--max-files 1: %d)",
	   ret);
	ok(op_fh(&p, ORFA_OP_RELEASE, e.nodeid, fh, 0) == 0, "load: RELEASE");
	ret = op_lookup(&p, p.root, "no-such-name", &e);
	ok(ret == ENOENT, "load: LOOKUP of a missing name is ENOENT (%d)",
	   ret);
	pc_close(&p);
	return g_failed ? 1 : 0;
}
