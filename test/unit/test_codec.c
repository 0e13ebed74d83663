/*
 * test_codec.c - Check unit tests for protocol/codec.c.
 *
 * Round-trips every request and reply, pins the byte layout with a few
 * golden encodings, feeds the decoders truncated, oversized, unknown and
 * inconsistent messages, exercises the READDIR and FORGET record helpers,
 * and ends with a bounded, fixed-seed fuzz loop.  Bodies handed to a
 * decoder are always heap copies of exactly body_len bytes, so an
 * out-of-bounds read shows up under ASan (CI runs this file under
 * ASan+UBSan).
 *
 * The expectations here are written from orfa_proto.h and PROTOCOL.md,
 * not from the codec's table, so a wrong table row fails a test.
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "codec.h"

static const struct orfa_limits lim = {
	.max_body = ORFA_MAX_BODY,
	.max_data = ORFA_DEFAULT_MAX_DATA,
};

/* ---- helpers ------------------------------------------------------------- */

/* Distinct non-zero bytes: a field decoded from the wrong place, or a
 * swapped pair, cannot compare equal. */
static void fill_pattern(void *p, size_t n, unsigned seed)
{
	uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((i * 13u + seed * 7u) % 251u + 1u);
}

/* A heap copy of exactly n bytes, so ASan sees any read past the end. */
static uint8_t *heap_copy(const uint8_t *src, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	ck_assert_ptr_nonnull(p);
	if (n)
		memcpy(p, src, n);
	return p;
}

static void fill_cred(struct orfa_cred *c, uint32_t ngroups)
{
	memset(c, 0, sizeof(*c));
	c->uid = 1000;
	c->gid = 100;
	c->pid = 4242;
	c->umask = 022;
	c->ngroups = ngroups;
	for (uint32_t i = 0; i < ngroups; i++)
		c->groups[i] = 5000 + i * 3;
}

static void set_name(struct orfa_msg *m, int which, const char *s)
{
	if (which == 0) {
		m->name = s;
		m->namelen = (uint32_t)strlen(s);
	} else {
		m->name2 = s;
		m->name2len = (uint32_t)strlen(s);
	}
}

static const char N_EXPORT[] = "/export/sub/dir";
static const char N_NAME[] = "entry-name.txt";
static const char N_NEW[] = "new name";
static const char N_TARGET[] = "../some/target/path";
static const char N_XATTR[] = "user.orfa/test";

/*
 * Fill a request for op with patterned arguments, zero pads, consistent
 * length fields and names.  Returns the size of the argument struct (0 for
 * PING); *has_cred says whether a credential block is expected.
 */
static size_t fill_req(struct orfa_msg *m, unsigned op, int *has_cred)
{
	union orfa_args *a = &m->a;
	size_t sz;

	orfa_msg_init(m, op, 0x1122334455667700ull + op);
	fill_cred(&m->cred, 5);
	fill_pattern(a, sizeof(*a), op);
	*has_cred = 1;

	switch (op) {
	case ORFA_OP_HELLO:
		*has_cred = 0;
		memset(&m->cred, 0, sizeof(m->cred));
		set_name(m, 0, N_EXPORT);
		a->hello.export_len = m->namelen;
		sz = sizeof(a->hello);
		break;
	case ORFA_OP_LOOKUP:
		a->lookup.pad = 0;
		set_name(m, 0, N_NAME);
		a->lookup.namelen = m->namelen;
		sz = sizeof(a->lookup);
		break;
	case ORFA_OP_FORGET:
		a->forget.pad = 0;
		a->forget.count = 3;
		m->hdr.data_len = 3 * ORFA_FORGET_ONE_SIZE;
		sz = sizeof(a->forget);
		break;
	case ORFA_OP_GETATTR:
		sz = sizeof(a->getattr);
		break;
	case ORFA_OP_SETATTR:
		a->setattr.pad = 0;
		sz = sizeof(a->setattr);
		break;
	case ORFA_OP_READLINK:
	case ORFA_OP_STATFS:
		sz = sizeof(a->node);
		break;
	case ORFA_OP_MKNOD:
		set_name(m, 0, N_NAME);
		a->mknod.namelen = m->namelen;
		sz = sizeof(a->mknod);
		break;
	case ORFA_OP_MKDIR:
		set_name(m, 0, N_NAME);
		a->mkdir.namelen = m->namelen;
		sz = sizeof(a->mkdir);
		break;
	case ORFA_OP_UNLINK:
	case ORFA_OP_RMDIR:
		a->unlink.pad = 0;
		set_name(m, 0, N_NAME);
		a->unlink.namelen = m->namelen;
		sz = sizeof(a->unlink);
		break;
	case ORFA_OP_SYMLINK:
		set_name(m, 0, N_NAME);
		set_name(m, 1, N_TARGET);
		a->symlink.namelen = m->namelen;
		a->symlink.targetlen = m->name2len;
		sz = sizeof(a->symlink);
		break;
	case ORFA_OP_RENAME:
		a->rename.pad = 0;
		set_name(m, 0, N_NAME);
		set_name(m, 1, N_NEW);
		a->rename.namelen = m->namelen;
		a->rename.newnamelen = m->name2len;
		sz = sizeof(a->rename);
		break;
	case ORFA_OP_LINK:
		a->link.pad = 0;
		set_name(m, 0, N_NEW);
		a->link.namelen = m->namelen;
		sz = sizeof(a->link);
		break;
	case ORFA_OP_OPEN:
	case ORFA_OP_OPENDIR:
		a->open.pad = 0;
		sz = sizeof(a->open);
		break;
	case ORFA_OP_CREATE:
		a->create.pad = 0;
		set_name(m, 0, N_NAME);
		a->create.namelen = m->namelen;
		sz = sizeof(a->create);
		break;
	case ORFA_OP_READ:
		a->read.pad = 0;
		sz = sizeof(a->read);
		break;
	case ORFA_OP_WRITE:
		a->write.pad = 0;
		m->hdr.data_len = 123457;
		sz = sizeof(a->write);
		break;
	case ORFA_OP_FLUSH:
	case ORFA_OP_RELEASE:
	case ORFA_OP_FSYNC:
	case ORFA_OP_RELEASEDIR:
	case ORFA_OP_FSYNCDIR:
		a->fh.pad = 0;
		sz = sizeof(a->fh);
		break;
	case ORFA_OP_READDIR:
	case ORFA_OP_READDIRPLUS:
		a->readdir.pad = 0;
		sz = sizeof(a->readdir);
		break;
	case ORFA_OP_SETXATTR:
		set_name(m, 0, N_XATTR);
		a->setxattr.namelen = m->namelen;
		m->hdr.data_len = ORFA_MAX_XATTR_VALUE;
		sz = sizeof(a->setxattr);
		break;
	case ORFA_OP_GETXATTR:
		set_name(m, 0, N_XATTR);
		a->getxattr.namelen = m->namelen;
		sz = sizeof(a->getxattr);
		break;
	case ORFA_OP_LISTXATTR:
		a->getxattr.namelen = 0;
		sz = sizeof(a->getxattr);
		break;
	case ORFA_OP_REMOVEXATTR:
		a->removexattr.pad = 0;
		set_name(m, 0, N_XATTR);
		a->removexattr.namelen = m->namelen;
		sz = sizeof(a->removexattr);
		break;
	case ORFA_OP_ACCESS:
		a->access.pad = 0;
		sz = sizeof(a->access);
		break;
	case ORFA_OP_GETLK:
	case ORFA_OP_SETLK:
		a->lk.pad = 0;
		sz = sizeof(a->lk);
		break;
	case ORFA_OP_FLOCK:
		a->flock.pad = 0;
		sz = sizeof(a->flock);
		break;
	case ORFA_OP_FALLOCATE:
		a->fallocate.pad = 0;
		sz = sizeof(a->fallocate);
		break;
	case ORFA_OP_LSEEK:
		a->lseek.pad = 0;
		sz = sizeof(a->lseek);
		break;
	case ORFA_OP_COPY_FILE_RANGE:
		a->copy.pad = 0;
		sz = sizeof(a->copy);
		break;
	case ORFA_OP_PING:
		*has_cred = 0;
		memset(&m->cred, 0, sizeof(m->cred));
		sz = 0;
		break;
	case ORFA_OP_AUTH:
		*has_cred = 0;
		memset(&m->cred, 0, sizeof(m->cred));
		sz = sizeof(a->auth);
		break;
	default:
		ck_abort_msg("fill_req: opcode %u not covered", op);
		return 0;
	}
	/* Bytes of the union past the struct are not sent; clear them so
	 * the whole union can be compared after decoding. */
	memset((uint8_t *)a + sz, 0, sizeof(*a) - sz);
	return sz;
}

/* Same for a successful reply; returns the reply struct size (0: none). */
static size_t fill_rep(struct orfa_msg *m, unsigned op)
{
	union orfa_args *a = &m->a;
	size_t sz;

	orfa_msg_init(m, op, 0xfedcba9876543200ull + op);
	fill_pattern(a, sizeof(*a), op + 100);

	switch (op) {
	case ORFA_OP_HELLO:
		a->hello_rep.magic = ORFA_MAGIC;
		a->hello_rep.pad = 0;
		sz = sizeof(a->hello_rep);
		break;
	case ORFA_OP_AUTH:
		sz = sizeof(a->auth_rep);
		break;
	case ORFA_OP_LOOKUP:
	case ORFA_OP_MKNOD:
	case ORFA_OP_MKDIR:
	case ORFA_OP_SYMLINK:
	case ORFA_OP_LINK:
		sz = sizeof(a->entry);
		break;
	case ORFA_OP_GETATTR:
	case ORFA_OP_SETATTR:
	case ORFA_OP_FALLOCATE:
		sz = sizeof(a->attr);
		break;
	case ORFA_OP_OPEN:
	case ORFA_OP_OPENDIR:
		sz = sizeof(a->open_rep);
		break;
	case ORFA_OP_CREATE:
		sz = sizeof(a->create_rep);
		break;
	case ORFA_OP_WRITE:
		sz = sizeof(a->write_rep);
		break;
	case ORFA_OP_STATFS:
		a->statfs.pad = 0;
		sz = sizeof(a->statfs);
		break;
	case ORFA_OP_GETXATTR:
	case ORFA_OP_LISTXATTR:
		sz = sizeof(a->xattr_rep);
		break;
	case ORFA_OP_GETLK:
		sz = sizeof(a->lock);
		break;
	case ORFA_OP_LSEEK:
		sz = sizeof(a->lseek_rep);
		break;
	case ORFA_OP_COPY_FILE_RANGE:
		sz = sizeof(a->copy_rep);
		break;
	default:
		sz = 0;
		break;
	}
	memset((uint8_t *)a + sz, 0, sizeof(*a) - sz);
	return sz;
}

static size_t cred_size(uint32_t ngroups)
{
	return 24 + ((ngroups * 4 + 7) & ~7u);
}

/* Encode m with enc (orfa_req_encode or orfa_rep_encode), returning a
 * heap copy of its body in *body. */
static ssize_t encode_with(ssize_t (*enc)(struct orfa_msg *, uint8_t *,
					  size_t),
			   struct orfa_msg *m, uint8_t **body)
{
	uint8_t buf[ORFA_MAX_BODY];
	ssize_t n = enc(m, buf, sizeof(buf));

	ck_assert_msg(n >= 0, "%s: %s encode failed: %zd",
		      orfa_op_name(m->hdr.opcode),
		      enc == orfa_rep_encode ? "reply" : "request", n);
	*body = heap_copy(buf, (size_t)n);
	return n;
}

static ssize_t encode_req(struct orfa_msg *m, uint8_t **body)
{
	return encode_with(orfa_req_encode, m, body);
}

static ssize_t encode_rep(struct orfa_msg *m, uint8_t **body)
{
	return encode_with(orfa_rep_encode, m, body);
}

/* Decode with dec (orfa_req_decode or orfa_rep_decode) a body of len
 * bytes, copied to an exact heap buffer, with header h; returns the
 * decoder's result. */
static int decode_with(int (*dec)(struct orfa_msg *, uint8_t *,
				  const char **),
		       const struct orfa_hdr *h, const uint8_t *src,
		       size_t len, struct orfa_msg *out, const char **why)
{
	uint8_t *body = heap_copy(src, len);
	int ret;

	memset(out, 0, sizeof(*out));
	out->hdr = *h;
	out->hdr.body_len = (uint32_t)len;
	*why = NULL;
	ret = dec(out, body, why);
	free(body);
	return ret;
}

static int decode_req_bytes(const struct orfa_hdr *h, const uint8_t *src,
			    size_t len, struct orfa_msg *out,
			    const char **why)
{
	return decode_with(orfa_req_decode, h, src, len, out, why);
}

static int decode_rep_bytes(const struct orfa_hdr *h, const uint8_t *src,
			    size_t len, struct orfa_msg *out,
			    const char **why)
{
	return decode_with(orfa_rep_decode, h, src, len, out, why);
}

/* A valid encoded LOOKUP with credentials of ngroups; body in buf. */
static size_t make_lookup(struct orfa_msg *m, uint8_t *buf, size_t cap,
			  uint32_t ngroups, const char *name)
{
	ssize_t n;

	orfa_msg_init(m, ORFA_OP_LOOKUP, 77);
	fill_cred(&m->cred, ngroups);
	m->a.lookup.parent = 0x0102030405060708ull;
	set_name(m, 0, name);
	n = orfa_req_encode(m, buf, cap);
	ck_assert_int_ge(n, 0);
	return (size_t)n;
}

/* ---- round trips ----------------------------------------------------------- */

START_TEST(test_req_roundtrip_every_opcode)
{
	unsigned op = (unsigned)_i;
	struct orfa_msg m, r;
	union orfa_args want;
	uint8_t hb[ORFA_HDR_SIZE], *body;
	const char *why = NULL;
	int has_cred, ret;
	size_t sz = fill_req(&m, op, &has_cred);
	size_t expect;
	ssize_t n;

	want = m.a;
	n = encode_req(&m, &body);
	expect = (has_cred ? cred_size(m.cred.ngroups) : 0) + sz;
	if (m.name)
		expect += m.namelen + 1;
	if (m.name2)
		expect += m.name2len + 1;
	ck_assert_msg((size_t)n == expect, "%s: body %zd bytes, want %zu",
		      orfa_op_name(op), n, expect);
	ck_assert_uint_eq(m.hdr.body_len, (uint32_t)n);

	orfa_hdr_encode(hb, &m.hdr);
	memset(&r, 0xa5, sizeof(r));
	ret = orfa_hdr_decode(hb, &r.hdr, &lim, &why);
	ck_assert_msg(ret == 0, "%s: header: %d %s", orfa_op_name(op), ret,
		      why ? why : "");
	ck_assert_mem_eq(&r.hdr, &m.hdr, sizeof(r.hdr));

	ret = orfa_req_decode(&r, body, &why);
	ck_assert_msg(ret == 0, "%s: decode: %d %s", orfa_op_name(op), ret,
		      why ? why : "");
	ck_assert_msg(memcmp(&r.a, &want, sizeof(want)) == 0,
		      "%s: arguments differ after round trip",
		      orfa_op_name(op));
	ck_assert_mem_eq(&r.cred, &m.cred, sizeof(r.cred));
	ck_assert_uint_eq(r.data_len, m.hdr.data_len);
	if (m.name) {
		ck_assert_ptr_nonnull(r.name);
		ck_assert_uint_eq(r.namelen, m.namelen);
		ck_assert_str_eq(r.name, m.name);
		ck_assert(r.name >= (char *)body &&
			  r.name + r.namelen < (char *)body + n);
	} else {
		ck_assert_ptr_null(r.name);
		ck_assert_uint_eq(r.namelen, 0);
	}
	if (m.name2) {
		ck_assert_ptr_nonnull(r.name2);
		ck_assert_uint_eq(r.name2len, m.name2len);
		ck_assert_str_eq(r.name2, m.name2);
	} else {
		ck_assert_ptr_null(r.name2);
	}
	free(body);
}
END_TEST

START_TEST(test_rep_roundtrip_every_opcode)
{
	unsigned op = (unsigned)_i;
	struct orfa_msg m, r;
	union orfa_args want;
	uint8_t hb[ORFA_HDR_SIZE], *body;
	const char *why = NULL;
	size_t sz;
	ssize_t n;
	int ret;

	sz = fill_rep(&m, op);
	if (op == ORFA_OP_FORGET) {
		/* Never answered: there is no reply to encode. */
		uint8_t tmp[8];

		ck_assert_int_eq(orfa_rep_encode(&m, tmp, sizeof(tmp)),
				 -EINVAL);
		return;
	}
	want = m.a;
	n = encode_rep(&m, &body);
	ck_assert_msg((size_t)n == sz, "%s: reply body %zd bytes, want %zu",
		      orfa_op_name(op), n, sz);
	ck_assert(m.hdr.flags & ORFA_F_REPLY);

	orfa_hdr_encode(hb, &m.hdr);
	memset(&r, 0x5a, sizeof(r));
	ck_assert_int_eq(orfa_hdr_decode(hb, &r.hdr, &lim, &why), 0);
	ret = orfa_rep_decode(&r, body, &why);
	ck_assert_msg(ret == 0, "%s: reply decode: %d %s", orfa_op_name(op),
		      ret, why ? why : "");
	ck_assert_msg(memcmp(&r.a, &want, sizeof(want)) == 0,
		      "%s: reply arguments differ", orfa_op_name(op));
	ck_assert_uint_eq(r.hdr.req_id, m.hdr.req_id);
	ck_assert_ptr_null(r.name);
	free(body);
}
END_TEST

START_TEST(test_error_reply_roundtrip_every_opcode)
{
	unsigned op = (unsigned)_i;
	struct orfa_msg m, r;
	uint8_t *body;
	const char *why;
	ssize_t n;
	int ret;

	fill_rep(&m, op);
	m.hdr.status = EIO;
	if (op == ORFA_OP_FORGET) {
		uint8_t tmp[8];

		ck_assert_int_eq(orfa_rep_encode(&m, tmp, sizeof(tmp)),
				 -EINVAL);
		return;
	}
	n = encode_rep(&m, &body);
	if (op == ORFA_OP_HELLO)
		ck_assert_int_eq(n, sizeof(struct orfa_hello_rep));
	else
		ck_assert_msg(n == 0, "%s: error reply has %zd body bytes",
			      orfa_op_name(op), n);
	ret = decode_rep_bytes(&m.hdr, body, (size_t)n, &r, &why);
	ck_assert_msg(ret == 0, "%s: %d %s", orfa_op_name(op), ret,
		      why ? why : "");
	ck_assert_uint_eq(r.hdr.status, EIO);
	free(body);
}
END_TEST

static const uint32_t cred_ngroups[] = { 0, 1, 17, 32 };

START_TEST(test_cred_roundtrip_ngroups)
{
	uint32_t ng = cred_ngroups[_i];
	struct orfa_msg m, r;
	uint8_t *body;
	const char *why;
	ssize_t n;

	orfa_msg_init(&m, ORFA_OP_GETATTR, 9);
	fill_cred(&m.cred, ng);
	m.a.getattr.nodeid = 11;
	m.a.getattr.fh = 12;
	n = encode_req(&m, &body);
	ck_assert_uint_eq((size_t)n, cred_size(ng) + 16);
	/* The pad word after an odd group count is zero on the wire. */
	if (ng & 1)
		ck_assert_uint_eq(orfa_get_le32(body + 24 + ng * 4), 0);
	ck_assert_uint_eq(orfa_get_le32(body + 16), ng);

	ck_assert_int_eq(decode_req_bytes(&m.hdr, body, (size_t)n, &r, &why),
			 0);
	ck_assert_uint_eq(r.cred.uid, 1000);
	ck_assert_uint_eq(r.cred.gid, 100);
	ck_assert_uint_eq(r.cred.pid, 4242);
	ck_assert_uint_eq(r.cred.umask, 022);
	ck_assert_uint_eq(r.cred.ngroups, ng);
	for (uint32_t i = 0; i < ORFA_MAX_GROUPS; i++)
		ck_assert_uint_eq(r.cred.groups[i], i < ng ? 5000 + i * 3 : 0);
	ck_assert_uint_eq(r.a.getattr.nodeid, 11);
	ck_assert_uint_eq(r.a.getattr.fh, 12);
	free(body);
}
END_TEST

/* ---- golden bytes ---------------------------------------------------------- */

START_TEST(test_header_golden_bytes)
{
	static const uint8_t want[ORFA_HDR_SIZE] = {
		0x04, 0x03, 0x02, 0x01,		/* body_len */
		0x0d, 0x0c, 0x0b, 0x0a,		/* data_len */
		0x02, 0x00,			/* opcode LOOKUP */
		0x01, 0x00,			/* flags REPLY */
		0x02, 0x00, 0x00, 0x00,		/* status ENOENT */
		0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
	};
	struct orfa_hdr h = {
		.body_len = 0x01020304, .data_len = 0x0a0b0c0d,
		.opcode = ORFA_OP_LOOKUP, .flags = ORFA_F_REPLY,
		.status = ENOENT, .req_id = 0x1122334455667788ull,
	}, back;
	struct orfa_limits big = { ORFA_MAX_BODY, ORFA_MAX_DATA_LIMIT };
	uint8_t out[ORFA_HDR_SIZE];

	orfa_hdr_encode(out, &h);
	ck_assert_mem_eq(out, want, sizeof(want));
	/* body_len above the maximum: EMSGSIZE, but the fields are read. */
	ck_assert_int_eq(orfa_hdr_decode(want, &back, &big, NULL), -EMSGSIZE);
	ck_assert_mem_eq(&back, &h, sizeof(h));
}
END_TEST

START_TEST(test_lookup_request_golden_bytes)
{
	static const uint8_t want[] = {
		0xe8, 0x03, 0, 0,  0x64, 0, 0, 0,	/* uid 1000, gid 100 */
		0x92, 0x10, 0, 0,  0x12, 0, 0, 0,	/* pid 4242, umask 022 */
		0x01, 0, 0, 0,     0, 0, 0, 0,		/* ngroups 1, pad */
		0x88, 0x13, 0, 0,  0, 0, 0, 0,		/* group 5000, pad */
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* parent */
		0x03, 0, 0, 0,     0, 0, 0, 0,		/* namelen 3, pad */
		'a', 'b', 'c', 0,			/* name + NUL */
	};
	struct orfa_msg m;
	uint8_t buf[256];
	size_t n = make_lookup(&m, buf, sizeof(buf), 1, "abc");

	ck_assert_uint_eq(n, sizeof(want));
	ck_assert_mem_eq(buf, want, sizeof(want));
	ck_assert_uint_eq(m.a.lookup.namelen, 3);
}
END_TEST

START_TEST(test_hello_request_has_no_credentials)
{
	static const uint8_t want[] = {
		0x4f, 0x52, 0x46, 0x41,  0x01, 0, 0, 0,	/* "ORFA", version */
		0, 0, 0, 0x01, 0, 0, 0, 0,		/* max_data 16 MiB */
		0x0f, 0, 0, 0, 0, 0, 0, 0,		/* features */
		0x01, 0, 0, 0,  0x01, 0, 0, 0,		/* export_len, flags */
		0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, /* nonce, */
		0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, /* in array */
		0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, /* order */
		0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
		'/', 0,
	};
	struct orfa_msg m;
	uint8_t buf[128];
	ssize_t n;

	orfa_msg_init(&m, ORFA_OP_HELLO, 1);
	m.cred.uid = 99;	/* must not be sent */
	m.a.hello.magic = ORFA_MAGIC;
	m.a.hello.version = ORFA_PROTO_VERSION;
	m.a.hello.max_data = ORFA_DEFAULT_MAX_DATA;
	m.a.hello.features = ORFA_FEAT_ALL;
	m.a.hello.flags = ORFA_HELLO_AUTH;
	for (unsigned i = 0; i < ORFA_NONCE_SIZE; i++)
		m.a.hello.nonce[i] = (uint8_t)i;
	set_name(&m, 0, "/");
	n = orfa_req_encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(n, sizeof(want));
	ck_assert_mem_eq(buf, want, sizeof(want));
}
END_TEST

/* The HELLO reply: flags, pad and the server nonce sit between features
 * and the root fields; the nonce goes out in array order. */
START_TEST(test_hello_reply_golden_nonce_and_root_offsets)
{
	struct orfa_msg m, r;
	uint8_t buf[256];
	const char *why;
	ssize_t n;

	orfa_msg_init(&m, ORFA_OP_HELLO, 1);
	m.a.hello_rep.magic = ORFA_MAGIC;
	m.a.hello_rep.version = ORFA_PROTO_VERSION;
	m.a.hello_rep.flags = ORFA_HELLO_AUTH;
	for (unsigned i = 0; i < ORFA_NONCE_SIZE; i++)
		m.a.hello_rep.nonce[i] = (uint8_t)(0xa0 + i);
	m.a.hello_rep.root_nodeid = 0x0102030405060708ull;
	n = orfa_rep_encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(n, 168);
	ck_assert_uint_eq(orfa_get_le32(buf + 0), ORFA_MAGIC);
	ck_assert_uint_eq(orfa_get_le32(buf + 4), ORFA_PROTO_VERSION);
	ck_assert_uint_eq(orfa_get_le32(buf + 24), ORFA_HELLO_AUTH);
	ck_assert_uint_eq(orfa_get_le32(buf + 28), 0);
	for (unsigned i = 0; i < ORFA_NONCE_SIZE; i++)
		ck_assert_uint_eq(buf[32 + i], 0xa0 + i);
	ck_assert_uint_eq(orfa_get_le64(buf + 64), 0x0102030405060708ull);
	ck_assert_int_eq(decode_rep_bytes(&m.hdr, buf, (size_t)n, &r, &why),
			 0);
	ck_assert_mem_eq(r.a.hello_rep.nonce, m.a.hello_rep.nonce,
			 ORFA_NONCE_SIZE);
	/* Non-zero pad after the flags: refused. */
	buf[28] = 1;
	ck_assert_int_eq(decode_rep_bytes(&m.hdr, buf, (size_t)n, &r, &why),
			 -EPROTO);
}
END_TEST

/* AUTH: no credentials, 32 raw proof bytes; the reply's proof first, then
 * the root entry HELLO withheld. */
START_TEST(test_auth_golden_bytes)
{
	struct orfa_msg m, r;
	uint8_t buf[256];
	const char *why;
	ssize_t n;

	orfa_msg_init(&m, ORFA_OP_AUTH, 2);
	m.cred.uid = 99;	/* must not be sent */
	for (unsigned i = 0; i < ORFA_PROOF_SIZE; i++)
		m.a.auth.proof[i] = (uint8_t)(0xff - i);
	n = orfa_req_encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(n, ORFA_PROOF_SIZE);
	for (unsigned i = 0; i < ORFA_PROOF_SIZE; i++)
		ck_assert_uint_eq(buf[i], 0xff - i);
	ck_assert_int_eq(decode_req_bytes(&m.hdr, buf, (size_t)n, &r, &why),
			 0);
	ck_assert_mem_eq(r.a.auth.proof, m.a.auth.proof, ORFA_PROOF_SIZE);
	/* A short proof is a truncated request. */
	ck_assert_int_eq(decode_req_bytes(&m.hdr, buf, 31, &r, &why),
			 -EBADMSG);

	orfa_msg_init(&m, ORFA_OP_AUTH, 2);
	for (unsigned i = 0; i < ORFA_PROOF_SIZE; i++)
		m.a.auth_rep.proof[i] = (uint8_t)i;
	m.a.auth_rep.root_nodeid = 0x1122334455667788ull;
	m.a.auth_rep.root_generation = 7;
	m.a.auth_rep.root_attr.mode = 040755;
	n = orfa_rep_encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(n, 136);
	ck_assert_uint_eq(buf[31], 31);
	ck_assert_uint_eq(orfa_get_le64(buf + 32), 0x1122334455667788ull);
	ck_assert_uint_eq(orfa_get_le64(buf + 40), 7);
	ck_assert_int_eq(decode_rep_bytes(&m.hdr, buf, (size_t)n, &r, &why),
			 0);
	ck_assert_uint_eq(r.a.auth_rep.root_attr.mode, 040755);
}
END_TEST

START_TEST(test_forget_records_roundtrip)
{
	static const uint8_t want1[16] = {
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
		0x02, 0, 0, 0, 0, 0, 0, 0,
	};
	uint8_t buf[4 * ORFA_FORGET_ONE_SIZE];
	struct orfa_forget_one f, g;

	for (size_t i = 0; i < 4; i++) {
		f.nodeid = i == 1 ? 0x0102030405060708ull : 1000 + i;
		f.nlookup = i == 1 ? 2 : UINT64_MAX - i;
		orfa_forget_put(buf, i, &f);
	}
	ck_assert_mem_eq(buf + 16, want1, 16);
	for (size_t i = 0; i < 4; i++) {
		orfa_forget_get(buf, i, &g);
		ck_assert_uint_eq(g.nodeid, i == 1 ? 0x0102030405060708ull
						  : 1000 + i);
		ck_assert_uint_eq(g.nlookup, i == 1 ? 2 : UINT64_MAX - i);
	}
}
END_TEST

/* ---- opcodes, names, message init ------------------------------------------- */

START_TEST(test_op_names_known_and_distinct)
{
	for (unsigned op = ORFA_OP_HELLO; op < ORFA_OP_MAX; op++) {
		const char *s = orfa_op_name(op);

		ck_assert_str_ne(s, "?");
		for (unsigned o2 = ORFA_OP_HELLO; o2 < op; o2++)
			ck_assert_str_ne(s, orfa_op_name(o2));
	}
	ck_assert_str_eq(orfa_op_name(ORFA_OP_LOOKUP), "LOOKUP");
	ck_assert_str_eq(orfa_op_name(ORFA_OP_COPY_FILE_RANGE),
			 "COPY_FILE_RANGE");
}
END_TEST

START_TEST(test_op_name_unknown_is_question_mark)
{
	ck_assert_str_eq(orfa_op_name(0), "?");
	ck_assert_str_eq(orfa_op_name(ORFA_OP_MAX), "?");
	ck_assert_str_eq(orfa_op_name(0xffff), "?");
	ck_assert_str_eq(orfa_op_name(~0u), "?");
}
END_TEST

START_TEST(test_msg_init_clears_and_marks_forget_noreply)
{
	struct orfa_msg m;

	memset(&m, 0xff, sizeof(m));
	orfa_msg_init(&m, ORFA_OP_READ, 42);
	ck_assert_uint_eq(m.hdr.opcode, ORFA_OP_READ);
	ck_assert_uint_eq(m.hdr.req_id, 42);
	ck_assert_uint_eq(m.hdr.flags, 0);
	ck_assert_uint_eq(m.hdr.status, 0);
	ck_assert_uint_eq(m.cred.ngroups, 0);
	ck_assert_ptr_null(m.name);
	ck_assert_ptr_null(m.data);
	orfa_msg_init(&m, ORFA_OP_FORGET, 43);
	ck_assert_uint_eq(m.hdr.flags, ORFA_F_NOREPLY);
}
END_TEST

/* ---- header rejects ------------------------------------------------------------ */

static int hdr_decode_fields(uint32_t body_len, uint32_t data_len,
			     uint16_t opcode, uint16_t flags,
			     const struct orfa_limits *l, struct orfa_hdr *out,
			     const char **why)
{
	struct orfa_hdr h = {
		.body_len = body_len, .data_len = data_len, .opcode = opcode,
		.flags = flags, .req_id = 0xabcdef,
	};
	uint8_t b[ORFA_HDR_SIZE];

	orfa_hdr_encode(b, &h);
	*why = NULL;
	return orfa_hdr_decode(b, out, l, why);
}

START_TEST(test_hdr_unknown_opcode_is_enosys_and_filled)
{
	static const uint16_t bad[] = { 0, ORFA_OP_MAX, 200, 0xffff };
	struct orfa_hdr h;
	const char *why;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&h, 0, sizeof(h));
		ck_assert_int_eq(hdr_decode_fields(40, 8, bad[i], 0, &lim, &h,
						   &why), -ENOSYS);
		ck_assert_str_eq(why, "unknown opcode");
		ck_assert_uint_eq(h.opcode, bad[i]);
		ck_assert_uint_eq(h.body_len, 40);
		ck_assert_uint_eq(h.data_len, 8);
		ck_assert_uint_eq(h.req_id, 0xabcdef);
	}
}
END_TEST

START_TEST(test_body_unknown_opcode_is_enosys)
{
	struct orfa_msg m;
	uint8_t buf[64];
	const char *why;

	orfa_msg_init(&m, ORFA_OP_MAX, 1);
	ck_assert_int_eq(orfa_req_encode(&m, buf, sizeof(buf)), -ENOSYS);
	ck_assert_int_eq(orfa_rep_encode(&m, buf, sizeof(buf)), -ENOSYS);
	orfa_msg_init(&m, 0, 1);
	ck_assert_int_eq(orfa_req_encode(&m, buf, sizeof(buf)), -ENOSYS);
	ck_assert_int_eq(decode_req_bytes(&m.hdr, buf, 0, &m, &why), -ENOSYS);
	m.hdr.opcode = 999;
	m.hdr.flags = ORFA_F_REPLY;
	ck_assert_int_eq(decode_rep_bytes(&m.hdr, buf, 0, &m, &why), -ENOSYS);
}
END_TEST

/* ---- truncation --------------------------------------------------------------- */

static const unsigned trunc_req_ops[] = {
	ORFA_OP_HELLO, ORFA_OP_LOOKUP, ORFA_OP_FORGET, ORFA_OP_SETATTR,
	ORFA_OP_SYMLINK, ORFA_OP_RENAME, ORFA_OP_CREATE, ORFA_OP_WRITE,
	ORFA_OP_SETXATTR, ORFA_OP_SETLK, ORFA_OP_COPY_FILE_RANGE,
};

START_TEST(test_truncated_request_is_ebadmsg)
{
	unsigned op = trunc_req_ops[_i];
	struct orfa_msg m, r;
	uint8_t *body;
	const char *why;
	int has_cred;
	ssize_t n;

	fill_req(&m, op, &has_cred);
	n = encode_req(&m, &body);
	ck_assert_int_eq(decode_req_bytes(&m.hdr, body, (size_t)n, &r, &why),
			 0);
	for (ssize_t len = 0; len < n; len++) {
		int ret = decode_req_bytes(&m.hdr, body, (size_t)len, &r,
					   &why);

		ck_assert_msg(ret == -EBADMSG,
			      "%s truncated to %zd of %zd: got %d (%s)",
			      orfa_op_name(op), len, n, ret, why ? why : "");
		ck_assert_ptr_nonnull(why);
	}
	free(body);
}
END_TEST

static const unsigned trunc_rep_ops[] = {
	ORFA_OP_HELLO, ORFA_OP_LOOKUP, ORFA_OP_GETATTR, ORFA_OP_OPEN,
	ORFA_OP_CREATE, ORFA_OP_WRITE, ORFA_OP_STATFS, ORFA_OP_GETXATTR,
	ORFA_OP_GETLK, ORFA_OP_LSEEK, ORFA_OP_COPY_FILE_RANGE,
};

START_TEST(test_truncated_reply_is_ebadmsg)
{
	unsigned op = trunc_rep_ops[_i];
	struct orfa_msg m, r;
	uint8_t *body;
	const char *why;
	ssize_t n;

	fill_rep(&m, op);
	n = encode_rep(&m, &body);
	ck_assert_int_gt(n, 0);
	for (ssize_t len = 0; len < n; len++) {
		int ret = decode_rep_bytes(&m.hdr, body, (size_t)len, &r,
					   &why);

		ck_assert_msg(ret == -EBADMSG,
			      "%s reply truncated to %zd of %zd: got %d (%s)",
			      orfa_op_name(op), len, n, ret, why ? why : "");
	}
	free(body);
}
END_TEST

/* ---- accepted edge cases and encoder refusals ------------------------------ */

START_TEST(test_slash_allowed_in_target_export_and_xattr_name)
{
	static const unsigned ops_ok[] = {
		ORFA_OP_SYMLINK, ORFA_OP_HELLO, ORFA_OP_SETXATTR,
	};

	for (size_t i = 0; i < 3; i++) {
		struct orfa_msg m, r;
		uint8_t *body;
		const char *why;
		int has_cred;
		ssize_t n;

		fill_req(&m, ops_ok[i], &has_cred);
		ck_assert(strchr(ops_ok[i] == ORFA_OP_SYMLINK ? m.name2 :
				 m.name, '/'));
		n = encode_req(&m, &body);
		ck_assert_int_eq(decode_req_bytes(&m.hdr, body, (size_t)n, &r,
						  &why), 0);
		free(body);
	}
}
END_TEST

START_TEST(test_encode_refuses_overlong_names)
{
	static char big[ORFA_MAX_SYMLINK + 2];
	struct orfa_msg m;
	static uint8_t buf[ORFA_MAX_BODY];
	int has_cred;

	memset(big, 'n', sizeof(big) - 1);
	fill_req(&m, ORFA_OP_LOOKUP, &has_cred);
	m.name = big;
	m.namelen = ORFA_MAX_NAME;
	ck_assert_int_gt(orfa_req_encode(&m, buf, sizeof(buf)), 0);
	m.namelen = ORFA_MAX_NAME + 1;
	ck_assert_int_eq(orfa_req_encode(&m, buf, sizeof(buf)), -EINVAL);

	fill_req(&m, ORFA_OP_SYMLINK, &has_cred);
	m.name2 = big;
	m.name2len = ORFA_MAX_SYMLINK;
	ck_assert_int_gt(orfa_req_encode(&m, buf, sizeof(buf)), 0);
	m.name2len = ORFA_MAX_SYMLINK + 1;
	ck_assert_int_eq(orfa_req_encode(&m, buf, sizeof(buf)), -EINVAL);

	fill_req(&m, ORFA_OP_GETXATTR, &has_cred);
	m.name = big;
	m.namelen = ORFA_MAX_XATTR_NAME + 1;
	ck_assert_int_eq(orfa_req_encode(&m, buf, sizeof(buf)), -EINVAL);
}
END_TEST

START_TEST(test_encode_refuses_slash_in_name)
{
	struct orfa_msg m;
	uint8_t buf[256];

	orfa_msg_init(&m, ORFA_OP_MKDIR, 1);
	set_name(&m, 0, "a/b");
	ck_assert_int_eq(orfa_req_encode(&m, buf, sizeof(buf)), -EINVAL);
}
END_TEST

START_TEST(test_encode_short_buffer_is_emsgsize)
{
	struct orfa_msg m;
	uint8_t buf[512];
	int has_cred;
	ssize_t n;

	fill_req(&m, ORFA_OP_SYMLINK, &has_cred);
	n = orfa_req_encode(&m, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	for (ssize_t cap = 0; cap < n; cap++)
		ck_assert_int_eq(orfa_req_encode(&m, buf, (size_t)cap),
				 -EMSGSIZE);
	fill_rep(&m, ORFA_OP_CREATE);
	n = orfa_rep_encode(&m, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	for (ssize_t cap = 0; cap < n; cap++)
		ck_assert_int_eq(orfa_rep_encode(&m, buf, (size_t)cap),
				 -EMSGSIZE);
}
END_TEST

START_TEST(test_encode_ngroups_33_is_einval)
{
	struct orfa_msg m;
	uint8_t buf[512];

	orfa_msg_init(&m, ORFA_OP_GETATTR, 1);
	m.cred.ngroups = 33;
	ck_assert_int_eq(orfa_req_encode(&m, buf, sizeof(buf)), -EINVAL);
}
END_TEST

START_TEST(test_encode_zeroes_pads)
{
	struct orfa_msg m, r;
	uint8_t buf[256];
	const char *why;
	ssize_t n;

	orfa_msg_init(&m, ORFA_OP_READ, 5);
	m.cred.pad = 0xffffffff;
	m.a.read.pad = 0xffffffff;
	n = orfa_req_encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(decode_req_bytes(&m.hdr, buf, (size_t)n, &r, &why),
			 0);
	ck_assert_uint_eq(r.a.read.pad, 0);
}
END_TEST

START_TEST(test_write_accepts_any_data_len)
{
	struct orfa_msg m, r;
	uint8_t *body;
	const char *why;
	int has_cred;
	ssize_t n;

	fill_req(&m, ORFA_OP_WRITE, &has_cred);
	n = encode_req(&m, &body);
	m.hdr.data_len = 0;
	ck_assert_int_eq(decode_req_bytes(&m.hdr, body, (size_t)n, &r, &why),
			 0);
	m.hdr.data_len = ORFA_MAX_DATA_LIMIT;
	ck_assert_int_eq(decode_req_bytes(&m.hdr, body, (size_t)n, &r, &why),
			 0);
	ck_assert_uint_eq(r.data_len, ORFA_MAX_DATA_LIMIT);
	free(body);
}
END_TEST

START_TEST(test_hello_error_reply_keeps_body_and_reason)
{
	struct orfa_msg m, r;
	uint8_t *body;
	const char *why;
	ssize_t n;

	fill_rep(&m, ORFA_OP_HELLO);
	m.a.hello_rep.version = 7;
	m.hdr.status = EPROTONOSUPPORT;
	n = encode_rep(&m, &body);
	ck_assert_int_eq(n, sizeof(struct orfa_hello_rep));
	m.hdr.data_len = 40;	/* the human-readable reason */
	ck_assert_int_eq(decode_rep_bytes(&m.hdr, body, (size_t)n, &r, &why),
			 0);
	ck_assert_uint_eq(r.a.hello_rep.version, 7);
	ck_assert_uint_eq(r.hdr.status, EPROTONOSUPPORT);
	free(body);
}
END_TEST

/* ---- rejection table -------------------------------------------------------- */

/*
 * Each case builds a valid frame, applies up to three edits to its header
 * or body bytes, and decodes the result; the loop test below runs them all.
 * Cases that expect 0 are the accepted neighbours of a refusal (the last
 * FORGET count that fits, a HELLO refusal with a reason), so a decoder that
 * refuses everything fails too.
 */

/* How the valid frame is built before the edits. */
enum build {
	B_LOOKUP,	/* make_lookup(): credentials with arg groups, name
			 * "abc"; 24 + 4 * arg (rounded to 8) + 16 + 4 bytes */
	B_REQ,		/* fill_req(op) */
	B_FORGET,	/* a FORGET request with count = arg, no records */
	B_REP,		/* fill_rep(op), status = arg, then encoded */
};

enum edit_kind {
	E_NONE = 0,
	E_BYTE,		/* body[off] = val */
	E_LE32,		/* 32-bit little-endian val at body + off */
	E_LEN_SET,	/* decode off bytes */
	E_LEN_ADD,	/* decode encoded length + off bytes (zeros appended) */
	E_FLAGS,	/* hdr.flags = val */
	E_STATUS,	/* hdr.status = val */
	E_DATA_LEN,	/* hdr.data_len = val */
};

/* off < 0 counts from the end of the encoded body (-1: its last byte). */
struct edit {
	uint8_t kind;		/* enum edit_kind */
	int32_t off;
	uint32_t val;
};

#define EDITS 3		/* edits per case at most */

struct reject_case {
	const char *name;
	uint8_t build;		/* enum build */
	uint16_t op;		/* B_REQ, B_REP */
	uint32_t arg;		/* see enum build */
	bool rep;		/* decode as a reply */
	uint32_t enc_len;	/* non-zero: encoded length the offsets assume */
	struct edit edit[EDITS];
	int expect;		/* 0 or a negative errno */
	const char *why;	/* expected reason; NULL: any */
};

#define BYTE(o, v)	{ E_BYTE, o, v }
#define LE32(o, v)	{ E_LE32, o, v }
#define LEN_SET(n)	{ E_LEN_SET, n, 0 }
#define LEN_ADD(n)	{ E_LEN_ADD, n, 0 }
#define FLAGS(v)	{ E_FLAGS, 0, v }
#define STATUS(v)	{ E_STATUS, 0, v }
#define DATA_LEN(v)	{ E_DATA_LEN, 0, v }

/* Byte offsets in a B_LOOKUP body with no groups. */
#define LK_CRED_NGROUPS	16
#define LK_CRED_PAD	20
#define LK_NAMELEN	(24 + 8)
#define LK_ARGS_PAD	(24 + 12)
#define LK_NAME		(24 + 16)

#define REQ(nm, b, o, a, ...) { .name = nm, .build = b, .op = o, .arg = a, \
				 __VA_ARGS__ }
#define REP(nm, o, st, ...) { .name = nm, .build = B_REP, .op = o,	\
			      .arg = st, .rep = true, __VA_ARGS__ }

static const struct reject_case reject_cases[] = {
	/* truncation: the reason names the part that is short */
	REQ("LOOKUP cut in the credentials", B_LOOKUP, 0, 2,
	    .edit = { LEN_SET(10) }, .expect = -EBADMSG,
	    .why = "credentials truncated"),
	REQ("LOOKUP cut in the group list", B_LOOKUP, 0, 2,
	    .edit = { LEN_SET(28) }, .expect = -EBADMSG,
	    .why = "group list truncated"),
	REQ("LOOKUP cut in its arguments", B_LOOKUP, 0, 2,
	    .edit = { LEN_SET(40) }, .expect = -EBADMSG,
	    .why = "LOOKUP request arguments truncated"),
	REQ("LOOKUP cut in its name", B_LOOKUP, 0, 2,
	    .edit = { LEN_ADD(-1) }, .expect = -EBADMSG,
	    .why = "name truncated"),

	/* inconsistent requests */
	REQ("trailing byte after a request", B_LOOKUP, 0, 0,
	    .edit = { LEN_ADD(1) }, .expect = -EPROTO,
	    .why = "trailing bytes after body"),
	REQ("PING without a body accepted", B_REQ, ORFA_OP_PING, 0,
	    .expect = 0),
	REQ("PING with a body", B_REQ, ORFA_OP_PING, 0,
	    .edit = { LEN_ADD(8) }, .expect = -EPROTO),
	REQ("name without NUL", B_LOOKUP, 0, 0,
	    .edit = { BYTE(-1, 'x') }, .expect = -EPROTO,
	    .why = "name not NUL-terminated"),
	REQ("slash in a name", B_LOOKUP, 0, 0,
	    .edit = { BYTE(-3, '/') }, .expect = -EPROTO,
	    .why = "name contains '/'"),
	REQ("slash in RENAME's new name", B_REQ, ORFA_OP_RENAME, 0,
	    .edit = { BYTE(-2, '/') }, .expect = -EPROTO),
	REQ("NUL inside a name", B_LOOKUP, 0, 0,
	    .edit = { BYTE(-3, 0) }, .expect = -EPROTO,
	    .why = "name contains NUL"),
	REQ("NUL inside an xattr name", B_REQ, ORFA_OP_GETXATTR, 0,
	    .edit = { BYTE(-4, 0) }, .expect = -EPROTO),
	REQ("empty name", B_LOOKUP, 0, 0,	/* namelen 0, a lone NUL */
	    .edit = { LE32(LK_NAMELEN, 0), BYTE(LK_NAME, 0),
		      LEN_SET(LK_NAME + 1) },
	    .expect = -EPROTO, .why = "empty name"),
	REQ("name above ORFA_MAX_NAME", B_LOOKUP, 0, 0,
	    .edit = { LE32(LK_NAMELEN, ORFA_MAX_NAME + 1) },
	    .expect = -EPROTO, .why = "name longer than ORFA_MAX_NAME"),
	REQ("name length UINT32_MAX", B_LOOKUP, 0, 0,
	    .edit = { LE32(LK_NAMELEN, UINT32_MAX) }, .expect = -EPROTO),
	REQ("ngroups 33", B_LOOKUP, 0, 32,
	    .edit = { LE32(LK_CRED_NGROUPS, 33) }, .expect = -EPROTO,
	    .why = "ngroups above 32"),
	REQ("ngroups UINT32_MAX", B_LOOKUP, 0, 32,
	    .edit = { LE32(LK_CRED_NGROUPS, UINT32_MAX) },
	    .expect = -EPROTO),
	REQ("non-zero argument pad", B_LOOKUP, 0, 0,
	    .edit = { BYTE(LK_ARGS_PAD, 1) }, .expect = -EPROTO,
	    .why = "non-zero padding"),
	REQ("non-zero credential pad", B_LOOKUP, 0, 0,
	    .edit = { BYTE(LK_CRED_PAD, 0x80) }, .expect = -EPROTO,
	    .why = "non-zero padding"),
	REQ("non-zero group list pad", B_LOOKUP, 0, 3,	/* after 3 groups */
	    .edit = { BYTE(24 + 3 * 4, 1) }, .expect = -EPROTO),
	REQ("LISTXATTR with a namelen", B_REQ, ORFA_OP_LISTXATTR, 0,
	    .enc_len = 24 + 24 + 16,	/* credentials with 5 groups */
	    .edit = { LE32(-4, 1) }, .expect = -EPROTO),
	REQ("reply flag on a request", B_LOOKUP, 0, 0,
	    .edit = { FLAGS(ORFA_F_REPLY) }, .expect = -EPROTO,
	    .why = "reply flag set on a request"),
	REQ("no-reply flag outside FORGET", B_LOOKUP, 0, 0,
	    .edit = { FLAGS(ORFA_F_NOREPLY) }, .expect = -EPROTO),
	REQ("status on a request", B_LOOKUP, 0, 0,
	    .edit = { STATUS(EIO) }, .expect = -EPROTO),
	REQ("data segment on LOOKUP", B_LOOKUP, 0, 0,
	    .edit = { DATA_LEN(1) }, .expect = -EPROTO,
	    .why = "unexpected data segment"),
	REQ("SETXATTR value above ORFA_MAX_XATTR_VALUE", B_REQ,
	    ORFA_OP_SETXATTR, 0,
	    .edit = { DATA_LEN(ORFA_MAX_XATTR_VALUE + 1) },
	    .expect = -EPROTO),

	/* FORGET: count and data_len agree, count within ORFA_MAX_FORGET */
	REQ("FORGET 3 records in 48 bytes accepted", B_FORGET, 0, 3,
	    .edit = { DATA_LEN(48) }, .expect = 0),
	REQ("FORGET 3 records in 32 bytes", B_FORGET, 0, 3,
	    .edit = { DATA_LEN(32) }, .expect = -EPROTO),
	REQ("FORGET 3 records in 64 bytes", B_FORGET, 0, 3,
	    .edit = { DATA_LEN(64) }, .expect = -EPROTO),
	REQ("FORGET 3 records in 47 bytes", B_FORGET, 0, 3,
	    .edit = { DATA_LEN(47) }, .expect = -EPROTO),
	REQ("FORGET 0 records in 16 bytes", B_FORGET, 0, 0,
	    .edit = { DATA_LEN(16) }, .expect = -EPROTO),
	REQ("FORGET ORFA_MAX_FORGET records accepted", B_FORGET, 0,
	    ORFA_MAX_FORGET, .edit = { DATA_LEN(ORFA_MAX_FORGET * 16) },
	    .expect = 0),
	REQ("FORGET ORFA_MAX_FORGET + 1 records", B_FORGET, 0,
	    ORFA_MAX_FORGET + 1,
	    .edit = { DATA_LEN((ORFA_MAX_FORGET + 1) * 16) },
	    .expect = -EPROTO),
	/* count * 16 wraps to 0 in 32 bits: still refused */
	REQ("FORGET count 0x10000000 with no data", B_FORGET, 0,
	    0x10000000u, .expect = -EPROTO),

	/* inconsistent replies */
	REP("HELLO reply with a bad magic", ORFA_OP_HELLO, 0,
	    .edit = { LE32(0, 0x12345678) }, .expect = -EPROTO),
	REP("reply without the reply flag", ORFA_OP_GETATTR, 0,
	    .edit = { FLAGS(0) }, .expect = -EPROTO,
	    .why = "reply flag missing on a reply"),
	REP("error reply with a body", ORFA_OP_GETATTR, 0,
	    .enc_len = sizeof(struct orfa_attr),
	    .edit = { STATUS(ENOENT) }, .expect = -EPROTO,
	    .why = "error reply with a body"),
	/* HELLO and AUTH refusals carry a reason (at most
	 * ORFA_HELLO_MAX_DATA bytes); their successes carry no data. */
	REP("HELLO refusal with a reason accepted", ORFA_OP_HELLO, EACCES,
	    .enc_len = sizeof(struct orfa_hello_rep),
	    .edit = { DATA_LEN(60) }, .expect = 0),
	REP("HELLO refusal with a reason above ORFA_HELLO_MAX_DATA",
	    ORFA_OP_HELLO, EACCES,
	    .edit = { DATA_LEN(ORFA_HELLO_MAX_DATA + 1) }, .expect = -EPROTO),
	REP("HELLO success with data", ORFA_OP_HELLO, 0,
	    .edit = { DATA_LEN(4) }, .expect = -EPROTO,
	    .why = "unexpected data segment"),
	REP("AUTH refusal with a reason accepted", ORFA_OP_AUTH, EACCES,
	    .edit = { DATA_LEN(60) }, .expect = 0),
	REP("AUTH refusal with a reason above ORFA_HELLO_MAX_DATA",
	    ORFA_OP_AUTH, EACCES,
	    .edit = { DATA_LEN(ORFA_HELLO_MAX_DATA + 1) }, .expect = -EPROTO),
	REP("AUTH success with data", ORFA_OP_AUTH, 0,
	    .edit = { DATA_LEN(4) }, .expect = -EPROTO,
	    .why = "unexpected data segment"),
	REP("error reply with data", ORFA_OP_READ, EIO,
	    .edit = { DATA_LEN(10) }, .expect = -EPROTO),
	REP("data segment on a GETATTR reply", ORFA_OP_GETATTR, 0,
	    .edit = { DATA_LEN(4) }, .expect = -EPROTO),
	REP("data segment on a READ reply accepted", ORFA_OP_READ, 0,
	    .edit = { DATA_LEN(4) }, .expect = 0),
	REP("trailing bytes after an LSEEK reply", ORFA_OP_LSEEK, 0,
	    .enc_len = 8, .edit = { LEN_ADD(8) }, .expect = -EPROTO),
	REP("trailing bytes after an empty UNLINK reply", ORFA_OP_UNLINK, 0,
	    .edit = { LEN_ADD(8) }, .expect = -EPROTO),
	REP("non-zero STATFS reply pad", ORFA_OP_STATFS, 0,
	    .edit = { BYTE(-1, 1) }, .expect = -EPROTO),
	REP("status 4095 accepted", ORFA_OP_UNLINK, 4095, .expect = 0),
	REP("status 4096", ORFA_OP_UNLINK, 4095,
	    .edit = { STATUS(4096) }, .expect = -EPROTO),
	{ .name = "reply to FORGET", .build = B_FORGET, .rep = true,
	  .edit = { FLAGS(ORFA_F_REPLY), LEN_SET(0) }, .expect = -EPROTO },
};

/* Builds c's valid frame into buf; returns its body length. */
static size_t reject_build(const struct reject_case *c, struct orfa_msg *m,
			   uint8_t *buf, size_t cap)
{
	int has_cred;
	ssize_t n;

	switch (c->build) {
	case B_LOOKUP:
		return make_lookup(m, buf, cap, c->arg, "abc");
	case B_FORGET:
		orfa_msg_init(m, ORFA_OP_FORGET, 3);
		m->a.forget.count = c->arg;
		n = orfa_req_encode(m, buf, cap);
		break;
	case B_REQ:
		fill_req(m, c->op, &has_cred);
		n = orfa_req_encode(m, buf, cap);
		break;
	default:
		fill_rep(m, c->op);
		m->hdr.status = c->arg;
		n = orfa_rep_encode(m, buf, cap);
		break;
	}
	ck_assert_msg(n >= 0, "%s: encode failed: %zd", c->name, n);
	return (size_t)n;
}

/* Applies the edits (up to EDITS, E_NONE ends them) to m and buf, which
 * holds n encoded bytes; returns the length to decode.  m may be NULL when
 * no edit touches the header. */
static size_t edits_apply(const struct edit *edit, struct orfa_msg *m,
			  uint8_t *buf, size_t n)
{
	size_t len = n;

	for (size_t i = 0; i < EDITS && edit[i].kind != E_NONE; i++) {
		const struct edit *e = &edit[i];
		size_t at = e->off < 0 ? n - (size_t)-e->off : (size_t)e->off;

		switch (e->kind) {
		case E_BYTE:
			buf[at] = (uint8_t)e->val;
			break;
		case E_LE32:
			orfa_put_le32(buf + at, e->val);
			break;
		case E_LEN_SET:
			len = (size_t)e->off;
			break;
		case E_LEN_ADD:
			len = (size_t)((ssize_t)n + e->off);
			break;
		case E_FLAGS:
			m->hdr.flags = (uint16_t)e->val;
			break;
		case E_STATUS:
			m->hdr.status = e->val;
			break;
		case E_DATA_LEN:
			m->hdr.data_len = e->val;
			break;
		default:
			break;
		}
	}
	return len;
}

START_TEST(test_body_reject_table)
{
	const struct reject_case *c = &reject_cases[_i];
	static uint8_t buf[ORFA_MAX_BODY];
	struct orfa_msg m, r;
	const char *why;
	size_t n, len;
	int ret;

	memset(buf, 0, sizeof(buf));
	n = reject_build(c, &m, buf, sizeof(buf));
	ck_assert_msg(!c->enc_len || n == c->enc_len,
		      "%s: encoded %zu bytes, the case assumes %u",
		      c->name, n, c->enc_len);
	len = edits_apply(c->edit, &m, buf, n);
	ret = c->rep ? decode_rep_bytes(&m.hdr, buf, len, &r, &why)
		     : decode_req_bytes(&m.hdr, buf, len, &r, &why);
	ck_assert_msg(ret == c->expect, "%s: decode returned %d (%s), "
		      "expected %d", c->name, ret, why ? why : "no reason",
		      c->expect);
	if (ret)
		ck_assert_msg(why, "%s: refused without a reason", c->name);
	else
		ck_assert_msg(r.data_len == m.hdr.data_len,
			      "%s: data_len %u, header says %u", c->name,
			      r.data_len, m.hdr.data_len);
	if (c->why)
		ck_assert_msg(why && !strcmp(why, c->why),
			      "%s: reason \"%s\", expected \"%s\"", c->name,
			      why ? why : "(none)", c->why);
}
END_TEST

/* Frame header cases, decoded by orfa_hdr_decode under the given limits. */
struct hdr_case {
	const char *name;
	uint32_t body_len, data_len;
	uint16_t opcode, flags;
	const struct orfa_limits *lim;	/* NULL: the hard caps only */
	int expect;
};

static const struct orfa_limits small_lim = { 4096, 1 << 20 };
static const struct orfa_limits loose_lim = { UINT32_MAX, UINT32_MAX };

static const struct hdr_case hdr_cases[] = {
	{ "body_len at a 4096 limit accepted", 4096, 0, ORFA_OP_LOOKUP, 0,
	  &small_lim, 0 },
	{ "body_len above a 4096 limit", 4097, 0, ORFA_OP_LOOKUP, 0,
	  &small_lim, -EMSGSIZE },
	{ "body_len UINT32_MAX without limits", UINT32_MAX, 0,
	  ORFA_OP_LOOKUP, 0, NULL, -EMSGSIZE },
	{ "body_len above ORFA_MAX_BODY under loose limits",
	  ORFA_MAX_BODY + 1, 0, ORFA_OP_PING, 0, &loose_lim, -EMSGSIZE },
	{ "data_len above ORFA_MAX_DATA_LIMIT under loose limits", 0,
	  ORFA_MAX_DATA_LIMIT + 1, ORFA_OP_WRITE, 0, &loose_lim, -EMSGSIZE },
	{ "data_len at max_data accepted", 64, ORFA_DEFAULT_MAX_DATA,
	  ORFA_OP_WRITE, 0, &lim, 0 },
	{ "data_len above max_data", 64, ORFA_DEFAULT_MAX_DATA + 1,
	  ORFA_OP_WRITE, 0, &lim, -EMSGSIZE },
	{ "unknown flag 0x0004", 0, 0, ORFA_OP_PING, 0x0004, &lim,
	  -EBADMSG },
	{ "unknown flags 0x8001", 0, 0, ORFA_OP_PING, 0x8001, &lim,
	  -EBADMSG },
	{ "reply and no-reply flags together accepted", 0, 0, ORFA_OP_PING,
	  ORFA_F_REPLY | ORFA_F_NOREPLY, &lim, 0 },
};

START_TEST(test_hdr_reject_table)
{
	const struct hdr_case *c = &hdr_cases[_i];
	struct orfa_hdr h;
	const char *why;
	int ret = hdr_decode_fields(c->body_len, c->data_len, c->opcode,
				    c->flags, c->lim, &h, &why);

	ck_assert_msg(ret == c->expect, "%s: decode returned %d (%s), "
		      "expected %d", c->name, ret, why ? why : "no reason",
		      c->expect);
	if (ret)
		ck_assert_msg(why, "%s: refused without a reason", c->name);
}
END_TEST

/* The encoders refuse what the decoders reject. */
START_TEST(test_encode_refuses_what_decode_rejects)
{
	struct orfa_msg m;
	uint8_t buf[256];

	make_lookup(&m, buf, sizeof(buf), 0, "abc");
	set_name(&m, 0, "");
	ck_assert_int_eq(orfa_req_encode(&m, buf, sizeof(buf)), -EINVAL);
	set_name(&m, 0, "abc");
	m.hdr.flags |= ORFA_F_REPLY;
	ck_assert_int_eq(orfa_req_encode(&m, buf, sizeof(buf)), -EINVAL);

	orfa_msg_init(&m, ORFA_OP_UNLINK, 1);
	m.hdr.status = 4096;
	ck_assert_int_eq(orfa_rep_encode(&m, buf, sizeof(buf)), -EINVAL);
	orfa_msg_init(&m, ORFA_OP_FORGET, 1);
	ck_assert_int_eq(orfa_rep_encode(&m, buf, sizeof(buf)), -EINVAL);
}
END_TEST

/* ---- directory records ----------------------------------------------------------- */

static const char *dir_names[] = {
	".", "..", "a", "seven77", "eight888", "nine99999",
	"a-name-with-some-length.txt",
};
#define N_DIR (sizeof(dir_names) / sizeof(dir_names[0]))

static void make_entry(struct orfa_entry *e, unsigned i)
{
	fill_pattern(e, sizeof(*e), i + 40);
}

START_TEST(test_dirent_size_pads_name_to_8)
{
	ck_assert_uint_eq(orfa_dirent_size(0, 1), 32);
	ck_assert_uint_eq(orfa_dirent_size(0, 8), 32);
	ck_assert_uint_eq(orfa_dirent_size(0, 9), 40);
	ck_assert_uint_eq(orfa_dirent_size(1, 1), 24 + 104 + 8);
	ck_assert_uint_eq(orfa_dirent_size(1, 255), 24 + 104 + 256);
}
END_TEST

START_TEST(test_dirent_roundtrip)
{
	int plus = _i;
	uint8_t buf[4096];
	size_t off = 0, total;
	struct orfa_dirent d;
	struct orfa_entry e, got_e;
	const char *name;

	memset(buf, 0xee, sizeof(buf));
	for (unsigned i = 0; i < N_DIR; i++) {
		size_t before = off;

		d.ino = 100 + i;
		d.cookie = 0x1000000000ull + i;
		d.type = (i & 1) ? 4 : 8;
		d.namelen = (uint32_t)strlen(dir_names[i]);
		make_entry(&e, i);
		ck_assert_int_eq(orfa_dirent_put(buf, sizeof(buf), &off, plus,
						 &d, &e, dir_names[i]), 0);
		ck_assert_uint_eq(off - before,
				  orfa_dirent_size(plus, d.namelen));
		ck_assert_uint_eq(off % 8, 0);
	}
	total = off;
	off = 0;
	for (unsigned i = 0; i < N_DIR; i++) {
		ck_assert_int_eq(orfa_dirent_next(buf, total, &off, plus, &d,
						  &got_e, &name), 1);
		ck_assert_uint_eq(d.ino, 100 + i);
		ck_assert_uint_eq(d.cookie, 0x1000000000ull + i);
		ck_assert_uint_eq(d.type, (i & 1) ? 4 : 8);
		ck_assert_uint_eq(d.namelen, strlen(dir_names[i]));
		ck_assert(memcmp(name, dir_names[i], d.namelen) == 0);
		if (plus) {
			make_entry(&e, i);
			ck_assert_mem_eq(&got_e, &e, sizeof(e));
		}
	}
	ck_assert_int_eq(orfa_dirent_next(buf, total, &off, plus, &d, &got_e,
					  &name), 0);
	ck_assert_uint_eq(off, total);
}
END_TEST

START_TEST(test_dirent_plus_without_entry_writes_zero_entry)
{
	uint8_t buf[256];
	size_t off = 0, len;
	struct orfa_dirent d = { .ino = 5, .cookie = 6, .type = 8,
				 .namelen = 1 };
	struct orfa_entry e;
	const char *name;

	ck_assert_int_eq(orfa_dirent_put(buf, sizeof(buf), &off, 1, &d, NULL,
					 "x"), 0);
	len = off;
	off = 0;
	memset(&e, 0xff, sizeof(e));
	ck_assert_int_eq(orfa_dirent_next(buf, len, &off, 1, &d, &e, &name),
			 1);
	ck_assert_uint_eq(e.nodeid, 0);
	ck_assert_uint_eq(e.attr.mode, 0);
}
END_TEST

START_TEST(test_dirent_put_full_buffer_is_enospc)
{
	uint8_t buf[80];
	size_t off = 0;
	struct orfa_dirent d = { .ino = 1, .cookie = 1, .type = 8,
				 .namelen = 8 };

	memset(buf, 0xee, sizeof(buf));
	/* 32 bytes per record: two fit in 80, the third does not. */
	ck_assert_int_eq(orfa_dirent_put(buf, sizeof(buf), &off, 0, &d, NULL,
					 "abcdefgh"), 0);
	ck_assert_int_eq(orfa_dirent_put(buf, sizeof(buf), &off, 0, &d, NULL,
					 "abcdefgh"), 0);
	ck_assert_uint_eq(off, 64);
	ck_assert_int_eq(orfa_dirent_put(buf, sizeof(buf), &off, 0, &d, NULL,
					 "abcdefgh"), -ENOSPC);
	ck_assert_uint_eq(off, 64);
	for (size_t i = 64; i < sizeof(buf); i++)
		ck_assert_uint_eq(buf[i], 0xee);
	/* A record that exactly fills the buffer is accepted. */
	off = 48;
	ck_assert_int_eq(orfa_dirent_put(buf, sizeof(buf), &off, 0, &d, NULL,
					 "abcdefgh"), 0);
	ck_assert_uint_eq(off, 80);
	ck_assert_int_eq(orfa_dirent_put(buf, sizeof(buf), &off, 1, &d, NULL,
					 "abcdefgh"), -ENOSPC);
}
END_TEST

START_TEST(test_dirent_put_bad_namelen_is_einval)
{
	uint8_t buf[2048];
	size_t off = 0;
	struct orfa_dirent d = { .namelen = 0 };
	static char big[ORFA_MAX_NAME + 1];

	ck_assert_int_eq(orfa_dirent_put(buf, sizeof(buf), &off, 0, &d, NULL,
					 ""), -EINVAL);
	d.namelen = ORFA_MAX_NAME + 1;
	ck_assert_int_eq(orfa_dirent_put(buf, sizeof(buf), &off, 0, &d, NULL,
					 big), -EINVAL);
	ck_assert_uint_eq(off, 0);
}
END_TEST

/* One valid plain record "abc" (32 bytes) in buf; returns its length. */
static size_t one_dirent(uint8_t *buf, size_t cap, const char *name)
{
	size_t off = 0;
	struct orfa_dirent d = { .ino = 9, .cookie = 10, .type = 4,
				 .namelen = (uint32_t)strlen(name) };

	ck_assert_int_eq(orfa_dirent_put(buf, cap, &off, 0, &d, NULL, name),
			 0);
	return off;
}

static int dirent_parse(const uint8_t *src, size_t len, int plus)
{
	uint8_t *b = heap_copy(src, len);
	struct orfa_dirent d;
	struct orfa_entry e;
	const char *name;
	size_t off = 0;
	int ret = orfa_dirent_next(b, len, &off, plus, &d, &e, &name);

	free(b);
	return ret;
}

START_TEST(test_dirent_truncated_record_is_eproto)
{
	uint8_t buf[256];
	size_t n = one_dirent(buf, sizeof(buf), "abc");

	ck_assert_int_eq(dirent_parse(buf, n, 0), 1);
	ck_assert_int_eq(dirent_parse(buf, 0, 0), 0);
	for (size_t len = 1; len < n; len++)
		ck_assert_int_eq(dirent_parse(buf, len, 0), -EPROTO);
	/* A plain record read as a READDIRPLUS one is too short. */
	ck_assert_int_eq(dirent_parse(buf, n, 1), -EPROTO);
}
END_TEST

/* One-edit changes of a valid plain record "abc" (32 bytes: ino, cookie,
 * type at 16, namelen at 20, name at 24, pad to 32). */
struct dirent_case {
	const char *name;
	struct edit edit[EDITS];
	int expect;
};

static const struct dirent_case dirent_cases[] = {
	{ "namelen 0", { LE32(20, 0) }, -EPROTO },
	{ "namelen above ORFA_MAX_NAME", { LE32(20, ORFA_MAX_NAME + 1) },
	  -EPROTO },
	{ "namelen past the record end", { LE32(20, 9) }, -EPROTO },
	{ "slash in the name", { BYTE(25, '/') }, -EPROTO },
	{ "NUL in the name", { BYTE(25, 0) }, -EPROTO },
	{ "non-zero name pad", { BYTE(-1, 'x') }, -EPROTO },
	{ "type 16", { LE32(16, 16) }, -EPROTO },
};

START_TEST(test_dirent_reject_table)
{
	const struct dirent_case *c = &dirent_cases[_i];
	uint8_t buf[256];
	size_t n = one_dirent(buf, sizeof(buf), "abc");
	int ret;

	ck_assert_uint_eq(n, 32);
	n = edits_apply(c->edit, NULL, buf, n);
	ret = dirent_parse(buf, n, 0);
	ck_assert_msg(ret == c->expect, "%s: orfa_dirent_next returned %d, "
		      "expected %d", c->name, ret, c->expect);
}
END_TEST

START_TEST(test_dirent_offset_past_end_is_eproto)
{
	uint8_t buf[256];
	size_t n = one_dirent(buf, sizeof(buf), "abc");
	struct orfa_dirent d;
	const char *name;
	size_t off = n + 8;

	ck_assert_int_eq(orfa_dirent_next(buf, n, &off, 0, &d, NULL, &name),
			 -EPROTO);
}
END_TEST

/* ---- fuzz ------------------------------------------------------------------------ */

#define FUZZ_ITERATIONS 200000

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64*: fixed seed, reproducible in CI. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static void check_decoded(const struct orfa_msg *m, const uint8_t *body,
			  int ret)
{
	ck_assert_msg(ret == 0 || ret == -EBADMSG || ret == -EPROTO ||
		      ret == -ENOSYS, "unexpected decoder result %d", ret);
	if (ret)
		return;
	if (m->name) {
		ck_assert((const uint8_t *)m->name >= body);
		ck_assert((const uint8_t *)m->name + m->namelen <
			  body + m->hdr.body_len);
		ck_assert_uint_eq(strlen(m->name), m->namelen);
	}
	if (m->name2) {
		ck_assert((const uint8_t *)m->name2 + m->name2len <
			  body + m->hdr.body_len);
		ck_assert_uint_eq(strlen(m->name2), m->name2len);
	}
}

/* Applies one to four random mutations to the first len of the cap bytes
 * of scratch; returns the new length. */
static size_t fuzz_mutate(uint8_t *scratch, size_t cap, size_t len)
{
	for (unsigned k = 0, nm = rng() % 4 + 1; k < nm; k++) {
		uint64_t q = rng();

		switch (q % 5) {
		case 0:	/* flip a byte */
			if (len)
				scratch[(q >> 8) % len] ^=
					(uint8_t)(q >> 32 | 1);
			break;
		case 1:	/* small integer in a length slot */
			if (len >= 4) {
				size_t at = ((q >> 8) % (len / 4)) * 4;

				orfa_put_le32(scratch + at,
					      (uint32_t)(q >> 40) % 64);
			}
			break;
		case 2:	/* truncate */
			if (len)
				len = (q >> 8) % len;
			break;
		case 3:	/* extend */
			if (len < cap - 16) {
				size_t add = (q >> 8) % 16;

				memset(scratch + len, (int)(q >> 16), add);
				len += add;
			}
			break;
		default: /* huge value in a length slot */
			if (len >= 4) {
				size_t at = ((q >> 8) % (len / 4)) * 4;

				orfa_put_le32(scratch + at,
					      (uint32_t)(q >> 32));
			}
			break;
		}
	}
	return len;
}

/* Seed corpus: a valid request and reply of every opcode. */
static void fuzz_seed(uint8_t valid[ORFA_OP_MAX][2][512],
		      size_t valid_len[ORFA_OP_MAX][2])
{
	for (unsigned op = ORFA_OP_HELLO; op < ORFA_OP_MAX; op++) {
		struct orfa_msg m;
		int has_cred;
		ssize_t n;

		fill_req(&m, op, &has_cred);
		n = orfa_req_encode(&m, valid[op][0], sizeof(valid[op][0]));
		ck_assert_int_ge(n, 0);
		valid_len[op][0] = (size_t)n;
		if (op == ORFA_OP_FORGET)
			continue;
		fill_rep(&m, op);
		n = orfa_rep_encode(&m, valid[op][1], sizeof(valid[op][1]));
		ck_assert_int_ge(n, 0);
		valid_len[op][1] = (size_t)n;
	}
}

START_TEST(test_fuzz_decoders_stay_in_bounds)
{
	static uint8_t valid[ORFA_OP_MAX][2][512];
	static size_t valid_len[ORFA_OP_MAX][2];
	static uint8_t scratch[1024];
	unsigned accepted = 0;

	rng_state = 0x4f52464100000001ull;
	fuzz_seed(valid, valid_len);

	for (unsigned it = 0; it < FUZZ_ITERATIONS; it++) {
		uint64_t r = rng();
		unsigned op = ORFA_OP_HELLO + (unsigned)(r % (ORFA_OP_MAX - 1));
		int reply = (r >> 8) & 1;
		size_t len;
		struct orfa_msg m;
		uint8_t *body;
		const char *why;
		int ret;

		if ((r >> 9) % 16 == 0)
			op = (unsigned)(rng() % 64);	/* sometimes unknown */
		if ((r >> 13) % 4 == 0) {
			/* Random bytes. */
			len = rng() % 300;
			for (size_t i = 0; i < len; i++)
				scratch[i] = (uint8_t)rng();
		} else {
			/* A valid body, mutated. */
			unsigned o = op < ORFA_OP_MAX && op ? op : ORFA_OP_LOOKUP;

			len = valid_len[o][reply];
			memcpy(scratch, valid[o][reply], len);
			len = fuzz_mutate(scratch, sizeof(scratch), len);
		}

		body = heap_copy(scratch, len);
		memset(&m, 0, sizeof(m));
		m.hdr.opcode = (uint16_t)op;
		m.hdr.body_len = (uint32_t)len;
		m.hdr.flags = reply ? ORFA_F_REPLY : 0;
		if ((r >> 16) % 8 == 0)
			m.hdr.flags ^= (uint16_t)(rng() & 7);
		m.hdr.data_len = (r >> 20) % 4 == 0 ? (uint32_t)(rng() % 70000)
						   : 0;
		if (op == ORFA_OP_FORGET && (r >> 24) % 2 && len >= 32)
			m.hdr.data_len = orfa_get_le32(body + len - 8) * 16u;
		m.hdr.status = reply && (r >> 26) % 8 == 0 ? EIO : 0;
		ret = reply ? orfa_rep_decode(&m, body, &why)
			    : orfa_req_decode(&m, body, &why);
		check_decoded(&m, body, ret);
		if (ret == 0)
			accepted++;
		else
			ck_assert_ptr_nonnull(why);
		free(body);
	}
	/* The mutations must leave some messages valid, or the loop only
	 * exercises the first checks. */
	ck_assert_uint_gt(accepted, 1000);
}
END_TEST

START_TEST(test_fuzz_dirent_next_stays_in_bounds)
{
	static uint8_t buf[2048];

	rng_state = 0x0123456789abcdefull;
	for (unsigned it = 0; it < FUZZ_ITERATIONS / 4; it++) {
		int plus = (int)(rng() & 1);
		size_t off = 0, len;
		unsigned records = 0;
		uint8_t *b;
		struct orfa_dirent d;
		struct orfa_entry e;
		const char *name;
		int ret;

		for (unsigned i = 0; i < 5; i++) {
			struct orfa_dirent in = {
				.ino = rng(), .cookie = rng(), .type = 8,
				.namelen = (uint32_t)(rng() % 20 + 1),
			};
			char nm[24];

			memset(nm, 'a' + (int)i, sizeof(nm));
			if (orfa_dirent_put(buf, sizeof(buf), &off, plus, &in,
					    NULL, nm))
				break;
		}
		len = off;
		for (unsigned k = 0, nm = rng() % 3 + 1; k < nm && len; k++) {
			uint64_t q = rng();

			if (q & 1)
				buf[(q >> 8) % len] ^= (uint8_t)(q >> 32 | 1);
			else
				len = (q >> 8) % (len + 1);
		}
		b = heap_copy(buf, len);
		off = 0;
		while ((ret = orfa_dirent_next(b, len, &off, plus, &d, &e,
					       &name)) == 1) {
			ck_assert((const uint8_t *)name >= b);
			ck_assert((const uint8_t *)name + d.namelen <= b + len);
			ck_assert_uint_le(off, len);
			ck_assert_uint_lt(++records, 6);
		}
		ck_assert(ret == 0 || ret == -EPROTO);
		free(b);
	}
}
END_TEST

START_TEST(test_fuzz_header_decode_classifies_everything)
{
	uint8_t b[ORFA_HDR_SIZE];
	struct orfa_hdr h;
	const char *why;

	rng_state = 0xfeedfacecafebeefull;
	for (unsigned it = 0; it < FUZZ_ITERATIONS / 4; it++) {
		int ret;

		for (unsigned i = 0; i < ORFA_HDR_SIZE; i++)
			b[i] = (uint8_t)rng();
		if (it & 1) {	/* plausible sizes, to reach the later checks */
			orfa_put_le32(b, (uint32_t)(rng() % 1000));
			orfa_put_le32(b + 4, (uint32_t)(rng() % 1000));
		}
		why = NULL;
		ret = orfa_hdr_decode(b, &h, &lim, &why);
		ck_assert(ret == 0 || ret == -EMSGSIZE || ret == -EBADMSG ||
			  ret == -ENOSYS);
		ck_assert(ret == 0 ? why == NULL : why != NULL);
		if (ret == 0) {
			ck_assert_uint_le(h.body_len, lim.max_body);
			ck_assert_uint_le(h.data_len, lim.max_data);
			ck_assert_str_ne(orfa_op_name(h.opcode), "?");
		}
	}
}
END_TEST

/* ---- suite ------------------------------------------------------------------------- */

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *codec_suite(void)
{
	Suite *s = suite_create("codec");
	TCase *tc;

	tc = tcase_create("roundtrip");
	tcase_add_loop_test(tc, test_req_roundtrip_every_opcode,
			    ORFA_OP_HELLO, ORFA_OP_MAX);
	tcase_add_loop_test(tc, test_rep_roundtrip_every_opcode,
			    ORFA_OP_HELLO, ORFA_OP_MAX);
	tcase_add_loop_test(tc, test_error_reply_roundtrip_every_opcode,
			    ORFA_OP_HELLO, ORFA_OP_MAX);
	tcase_add_loop_test(tc, test_cred_roundtrip_ngroups, 0,
			    N_OF(cred_ngroups));
	tcase_add_test(tc, test_header_golden_bytes);
	tcase_add_test(tc, test_lookup_request_golden_bytes);
	tcase_add_test(tc, test_hello_request_has_no_credentials);
	tcase_add_test(tc, test_hello_reply_golden_nonce_and_root_offsets);
	tcase_add_test(tc, test_auth_golden_bytes);
	tcase_add_test(tc, test_forget_records_roundtrip);
	tcase_add_test(tc, test_op_names_known_and_distinct);
	tcase_add_test(tc, test_op_name_unknown_is_question_mark);
	tcase_add_test(tc, test_msg_init_clears_and_marks_forget_noreply);
	tcase_add_test(tc, test_encode_zeroes_pads);
	suite_add_tcase(s, tc);

	tc = tcase_create("header");
	tcase_add_test(tc, test_hdr_unknown_opcode_is_enosys_and_filled);
	tcase_add_test(tc, test_body_unknown_opcode_is_enosys);
	suite_add_tcase(s, tc);

	tc = tcase_create("reject");
	tcase_add_loop_test(tc, test_body_reject_table, 0, N_OF(reject_cases));
	tcase_add_loop_test(tc, test_hdr_reject_table, 0, N_OF(hdr_cases));
	tcase_add_test(tc, test_encode_refuses_what_decode_rejects);
	tcase_add_loop_test(tc, test_truncated_request_is_ebadmsg, 0,
			    N_OF(trunc_req_ops));
	tcase_add_loop_test(tc, test_truncated_reply_is_ebadmsg, 0,
			    N_OF(trunc_rep_ops));
	tcase_add_test(tc, test_slash_allowed_in_target_export_and_xattr_name);
	tcase_add_test(tc, test_encode_refuses_overlong_names);
	tcase_add_test(tc, test_encode_refuses_slash_in_name);
	tcase_add_test(tc, test_encode_short_buffer_is_emsgsize);
	tcase_add_test(tc, test_encode_ngroups_33_is_einval);
	tcase_add_test(tc, test_write_accepts_any_data_len);
	tcase_add_test(tc, test_hello_error_reply_keeps_body_and_reason);
	suite_add_tcase(s, tc);

	tc = tcase_create("dirent");
	tcase_add_test(tc, test_dirent_size_pads_name_to_8);
	tcase_add_loop_test(tc, test_dirent_roundtrip, 0, 2);
	tcase_add_test(tc, test_dirent_plus_without_entry_writes_zero_entry);
	tcase_add_test(tc, test_dirent_put_full_buffer_is_enospc);
	tcase_add_test(tc, test_dirent_put_bad_namelen_is_einval);
	tcase_add_test(tc, test_dirent_truncated_record_is_eproto);
	tcase_add_loop_test(tc, test_dirent_reject_table, 0,
			    N_OF(dirent_cases));
	tcase_add_test(tc, test_dirent_offset_past_end_is_eproto);
	suite_add_tcase(s, tc);

	tc = tcase_create("fuzz");
	/* Generous: the fuzz loops run under ASan in CI on a 2-core box. */
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_fuzz_decoders_stay_in_bounds);
	tcase_add_test(tc, test_fuzz_dirent_next_stays_in_bounds);
	tcase_add_test(tc, test_fuzz_header_decode_classifies_everything);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return orfa_check_run(codec_suite());
}
