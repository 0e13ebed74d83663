/*
 * test_exports.c - the exports file parser, client network matching,
 * squashing, the read-only operation filter, the source port rule
 * (secure/insecure) and the set-id/device rules (server/exports.c).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "exports.h"
#include "transport.h"
#include "check_main.h"

static struct sockaddr_storage addr(const char *s)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, s, &v4->sin_addr) == 1)
		v4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, s, &v6->sin6_addr) == 1)
		v6->sin6_family = AF_INET6;
	return ss;
}

static int allows(const struct orfa_export *e, const char *a)
{
	struct sockaddr_storage ss = addr(a);
	return orfa_export_allows(e, (struct sockaddr *)&ss);
}

START_TEST(parse_full_file)
{
	const char *text =
		"# ORFA exports\n"
		"\n"
		"data     /srv/data   10.0.0.0/8,fd00::/8   ro,no_root_squash  # trailing comment\n"
		"scratch  ramfs:4G    *\n"
		"public   /srv/pub    192.0.2.7             all_squash,anonuid=1000,anongid=100\n";
	struct orfa_exports ex;
	char err[256] = "";

	ck_assert_int_eq(orfa_exports_parse(text, &ex, err, sizeof(err)), 0);
	ck_assert_int_eq(ex.n, 3);
	ck_assert_str_eq(ex.v[0].name, "data");
	ck_assert_str_eq(ex.v[0].path, "/srv/data");
	ck_assert_uint_eq(ex.v[0].flags, ORFA_EXPORT_RO);
	ck_assert_int_eq(ex.v[0].nnets, 2);
	ck_assert_uint_eq(ex.v[1].ramfs_size, 4ull << 30);
	ck_assert_uint_eq(ex.v[1].flags, ORFA_EXPORT_ROOT_SQUASH);
	ck_assert_uint_eq(ex.v[2].flags, ORFA_EXPORT_ROOT_SQUASH | ORFA_EXPORT_ALL_SQUASH);
	ck_assert_uint_eq(ex.v[2].anonuid, 1000);
	ck_assert_uint_eq(ex.v[2].anongid, 100);
	orfa_exports_free(&ex);
}
END_TEST

static void expect_error(const char *text, const char *needle)
{
	struct orfa_exports ex;
	char err[256] = "";

	ck_assert_int_eq(orfa_exports_parse(text, &ex, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, needle), "error '%s' lacks '%s'", err, needle);
	ck_assert_ptr_null(ex.v);
}

START_TEST(reject_bad_lines)
{
	expect_error("a /x\n", "line 1: too few fields");
	expect_error("\n\na /x * rw extra\n", "line 3: too many fields");
	expect_error("a relative/path *\n", "absolute path or ramfs");
	expect_error("a ramfs:12Q *\n", "bad ramfs size");
	expect_error("a /x 10.0.0.0/33\n", "bad client network '10.0.0.0/33'");
	expect_error("a /x 300.1.1.1\n", "bad client network");
	expect_error("a /x * rw,fast\n", "unknown option 'fast'");
	expect_error("a /x * anonuid=-1\n", "bad anonuid");
	expect_error("a /x *\na /y *\n", "line 2: export 'a' defined twice");
	expect_error("a/b /x *\n", "bad export name");
	expect_error("# nothing\n", "no exports defined");
}
END_TEST

START_TEST(networks_match_by_prefix)
{
	struct orfa_exports ex;
	char err[256];

	ck_assert_int_eq(orfa_exports_parse(
		"a /x 10.1.0.0/16,192.0.2.7,fd00::/8,::1\n", &ex, err, sizeof(err)), 0);
	const struct orfa_export *e = &ex.v[0];
	ck_assert(allows(e, "10.1.200.3"));
	ck_assert(!allows(e, "10.2.0.1"));
	ck_assert(allows(e, "192.0.2.7"));
	ck_assert(!allows(e, "192.0.2.8"));
	ck_assert(allows(e, "fd12:3456::1"));
	ck_assert(!allows(e, "fe80::1"));
	ck_assert(allows(e, "::1"));
	ck_assert(allows(e, "::ffff:10.1.2.3"));	/* v4-mapped */
	ck_assert(!allows(e, "127.0.0.1"));
	orfa_exports_free(&ex);

	ck_assert_int_eq(orfa_exports_parse("a /x 10.1.2.3/12\n", &ex, err, sizeof(err)), 0);
	ck_assert(allows(&ex.v[0], "10.15.255.255"));	/* host bits cleared */
	ck_assert(!allows(&ex.v[0], "10.16.0.0"));
	orfa_exports_free(&ex);
	ck_assert_int_eq(orfa_exports_parse("a /x *\n", &ex, err, sizeof(err)), 0);
	ck_assert(allows(&ex.v[0], "203.0.113.9"));
	ck_assert(allows(&ex.v[0], "2001:db8::1"));
	orfa_exports_free(&ex);
}
END_TEST

START_TEST(find_by_name_and_root)
{
	struct orfa_exports ex;
	char err[256];
	const char *sub = NULL;

	ck_assert_int_eq(orfa_exports_parse("data /d *\n/ /r *\n", &ex, err, sizeof(err)), 0);
	ck_assert_str_eq(orfa_exports_find(&ex, "/data", &sub)->name, "data");
	ck_assert_str_eq(sub, "");
	ck_assert_str_eq(orfa_exports_find(&ex, "/data/a/b", &sub)->name, "data");
	ck_assert_str_eq(sub, "a/b");
	ck_assert_str_eq(orfa_exports_find(&ex, "/database", &sub)->name, "/");
	ck_assert_str_eq(sub, "database");
	ck_assert_str_eq(orfa_exports_find(&ex, "/", &sub)->name, "/");
	ck_assert_str_eq(sub, "");
	orfa_exports_free(&ex);

	ck_assert_int_eq(orfa_exports_parse("data /d *\n", &ex, err, sizeof(err)), 0);
	ck_assert_ptr_null(orfa_exports_find(&ex, "/other", &sub));
	ck_assert_ptr_null(orfa_exports_find(&ex, "/", &sub));
	orfa_exports_free(&ex);
}
END_TEST

START_TEST(squash_rules)
{
	struct orfa_exports ex;
	char err[256];
	struct orfa_cred cr;

	ck_assert_int_eq(orfa_exports_parse(
		"rs /x *\n"
		"nrs /x2 * no_root_squash\n"
		"all /x3 * all_squash,anonuid=7,anongid=8\n", &ex, err, sizeof(err)), 0);

	memset(&cr, 0, sizeof(cr));
	cr.ngroups = 2;
	cr.groups[0] = 0;
	cr.groups[1] = 44;
	orfa_export_squash(&ex.v[0], &cr);
	ck_assert_uint_eq(cr.uid, 65534);
	ck_assert_uint_eq(cr.gid, 65534);
	ck_assert_uint_eq(cr.groups[0], 65534);
	ck_assert_uint_eq(cr.groups[1], 44);

	memset(&cr, 0, sizeof(cr));
	orfa_export_squash(&ex.v[1], &cr);
	ck_assert_uint_eq(cr.uid, 0);

	cr.uid = 1000;
	cr.gid = 1000;
	cr.ngroups = 1;
	orfa_export_squash(&ex.v[2], &cr);
	ck_assert_uint_eq(cr.uid, 7);
	ck_assert_uint_eq(cr.gid, 8);
	ck_assert_uint_eq(cr.ngroups, 0);

	cr.uid = 1000;
	cr.gid = 1000;
	orfa_export_squash(&ex.v[0], &cr);	/* non-root untouched */
	ck_assert_uint_eq(cr.uid, 1000);
	orfa_exports_free(&ex);
}
END_TEST

START_TEST(readonly_filter)
{
	ck_assert(orfa_op_modifies(ORFA_OP_WRITE, 0));
	ck_assert(orfa_op_modifies(ORFA_OP_CREATE, 0));
	ck_assert(orfa_op_modifies(ORFA_OP_RENAME, 0));
	ck_assert(orfa_op_modifies(ORFA_OP_SETXATTR, 0));
	ck_assert(orfa_op_modifies(ORFA_OP_OPEN, O_WRONLY));
	ck_assert(orfa_op_modifies(ORFA_OP_OPEN, O_RDONLY | O_TRUNC));
	ck_assert(!orfa_op_modifies(ORFA_OP_OPEN, O_RDONLY));
	ck_assert(!orfa_op_modifies(ORFA_OP_READ, 0));
	ck_assert(!orfa_op_modifies(ORFA_OP_LOOKUP, 0));
	ck_assert(!orfa_op_modifies(ORFA_OP_GETXATTR, 0));
}
END_TEST

START_TEST(sizes)
{
	uint64_t v;

	ck_assert_int_eq(orfa_parse_size("1G", &v), 0);
	ck_assert_uint_eq(v, 1ull << 30);
	ck_assert_int_eq(orfa_parse_size("512MiB", &v), 0);
	ck_assert_uint_eq(v, 512ull << 20);
	ck_assert_int_eq(orfa_parse_size("4096", &v), 0);
	ck_assert_uint_eq(v, 4096);
	ck_assert_int_eq(orfa_parse_size("2t", &v), 0);
	ck_assert_uint_eq(v, 2ull << 40);
	ck_assert_int_eq(orfa_parse_size("", &v), -EINVAL);
	ck_assert_int_eq(orfa_parse_size("G", &v), -EINVAL);
	ck_assert_int_eq(orfa_parse_size("1X", &v), -EINVAL);
	ck_assert_int_eq(orfa_parse_size("99999999999999999T", &v), -EINVAL);
}
END_TEST

/* The --export / --ramfs shortcut: "/ DIR *" with the defaults of a line
 * without options (root_squash, secure, nodev, nosuid), unless
 * --export-options says otherwise. */
START_TEST(shortcut_table)
{
	struct orfa_exports ex;
	const char *sub = NULL;
	struct orfa_cred cr = { .uid = 0, .gid = 0 };
	char err[128] = "";

	ck_assert_int_eq(orfa_exports_shortcut(&ex, "/srv/x", 0, NULL, err,
					       sizeof(err)), 0);
	ck_assert_int_eq(ex.n, 1);
	ck_assert_str_eq(ex.v[0].name, "/");
	ck_assert_str_eq(ex.v[0].path, "/srv/x");
	ck_assert_uint_eq(ex.v[0].flags, ORFA_EXPORT_ROOT_SQUASH);
	ck_assert(allows(&ex.v[0], "203.0.113.9"));
	ck_assert(allows(&ex.v[0], "fd00::1"));
	orfa_export_squash(&ex.v[0], &cr);
	ck_assert_uint_eq(cr.uid, 65534);
	ck_assert_uint_eq(cr.gid, 65534);
	ck_assert_str_eq(orfa_exports_find(&ex, "/a/b", &sub)->name, "/");
	ck_assert_str_eq(sub, "a/b");
	orfa_exports_free(&ex);

	ck_assert_int_eq(orfa_exports_shortcut(&ex, NULL, 1u << 20, "", err,
					       sizeof(err)), 0);
	ck_assert_uint_eq(ex.v[0].ramfs_size, 1u << 20);
	ck_assert_str_eq(ex.v[0].path, "");
	ck_assert_uint_eq(ex.v[0].flags, ORFA_EXPORT_ROOT_SQUASH);
	orfa_exports_free(&ex);

	ck_assert_int_eq(orfa_exports_shortcut(&ex, "/srv/x", 0,
			 "ro,no_root_squash,insecure,dev,suid", err,
			 sizeof(err)), 0);
	ck_assert_uint_eq(ex.v[0].flags, ORFA_EXPORT_RO | ORFA_EXPORT_INSECURE |
			  ORFA_EXPORT_DEV | ORFA_EXPORT_SUID);
	orfa_exports_free(&ex);

	ck_assert_int_eq(orfa_exports_shortcut(&ex, "/srv/x", 0, "rw,bogus",
					       err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "unknown option 'bogus'");
	ck_assert_ptr_null(ex.v);
}
END_TEST

/* secure (the default) wants a source port below 1024; insecure any. */
START_TEST(secure_wants_privileged_port)
{
	struct orfa_exports ex;
	char err[128];

	ck_assert_int_eq(orfa_exports_parse(
		"a /srv/a *\n"
		"b /srv/b * secure\n"
		"c /srv/c * insecure\n"
		"d /srv/d * insecure,secure\n", &ex, err, sizeof(err)), 0);
	for (int i = 0; i < 4; i++) {
		int insecure = i == 2;

		ck_assert_int_eq(orfa_export_port_ok(&ex.v[i], 1023), 1);
		ck_assert_int_eq(orfa_export_port_ok(&ex.v[i], 512), 1);
		ck_assert_int_eq(orfa_export_port_ok(&ex.v[i], 1024), insecure);
		ck_assert_int_eq(orfa_export_port_ok(&ex.v[i], 40000), insecure);
	}
	orfa_exports_free(&ex);
}
END_TEST

/* nosuid and nodev are the defaults; set-gid directories stay allowed;
 * fifos and sockets are never devices. */
START_TEST(suid_and_dev_rules)
{
	struct orfa_exports ex;
	char err[128];
	const struct orfa_export *d, *suid, *dev;

	ck_assert_int_eq(orfa_exports_parse(
		"a /srv/a *\n"
		"b /srv/b * suid\n"
		"c /srv/c * dev,nosuid\n", &ex, err, sizeof(err)), 0);
	d = &ex.v[0];
	suid = &ex.v[1];
	dev = &ex.v[2];
	ck_assert_uint_eq(d->flags & (ORFA_EXPORT_SUID | ORFA_EXPORT_DEV), 0);
	ck_assert_int_eq(orfa_export_mode_ok(d, S_IFREG | 0755, 0), 0);
	ck_assert_int_eq(orfa_export_mode_ok(d, S_IFREG | 04755, 0), -EPERM);
	ck_assert_int_eq(orfa_export_mode_ok(d, S_IFREG | 02755, 0), -EPERM);
	ck_assert_int_eq(orfa_export_mode_ok(d, S_IFDIR | 02775, 0), 0);
	ck_assert_int_eq(orfa_export_mode_ok(d, S_IFCHR | 0666, 1), -EPERM);
	ck_assert_int_eq(orfa_export_mode_ok(d, S_IFBLK | 0600, 1), -EPERM);
	ck_assert_int_eq(orfa_export_mode_ok(d, S_IFIFO | 0600, 1), 0);
	ck_assert_int_eq(orfa_export_mode_ok(d, S_IFSOCK | 0600, 1), 0);
	ck_assert_int_eq(orfa_export_mode_ok(suid, S_IFREG | 06755, 0), 0);
	ck_assert_int_eq(orfa_export_mode_ok(suid, S_IFCHR | 0666, 1), -EPERM);
	ck_assert_int_eq(orfa_export_mode_ok(dev, S_IFCHR | 0666, 1), 0);
	ck_assert_int_eq(orfa_export_mode_ok(dev, S_IFCHR | 04666, 1), -EPERM);
	orfa_exports_free(&ex);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("exports");
	TCase *tc = tcase_create("exports");

	tcase_add_test(tc, parse_full_file);
	tcase_add_test(tc, reject_bad_lines);
	tcase_add_test(tc, networks_match_by_prefix);
	tcase_add_test(tc, find_by_name_and_root);
	tcase_add_test(tc, squash_rules);
	tcase_add_test(tc, readonly_filter);
	tcase_add_test(tc, sizes);
	tcase_add_test(tc, shortcut_table);
	tcase_add_test(tc, secure_wants_privileged_port);
	tcase_add_test(tc, suid_and_dev_rules);
	suite_add_tcase(s, tc);
	return orfa_check_run(s);
}
