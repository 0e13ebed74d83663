/*
 * codec.c - table-driven encoder and decoder for ORFA message bodies.
 *
 * One table, indexed by opcode, says everything the codec knows about a
 * message: its name, the field list of its request and reply argument
 * structures, which names follow the request arguments and which argument
 * fields hold their lengths, and what the data segment may hold.  Encoding
 * and decoding are generic loops over that table, so adding a message is
 * one table row, and the rules a receiver enforces are the rules a sender
 * is held to.
 *
 * Not here: I/O, allocation, version negotiation, and the meaning of any
 * field beyond its wire validity (a server still answers ENAMETOOLONG for a
 * 300-byte name, EBADF for an unknown file id, and so on).
 *
 * Decoding reads only from the body it is given, through a bounds-checked
 * cursor whose overflow flag is sticky; nothing on the network can make it
 * read out of bounds or assert.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "codec.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- wire sizes the rest of the code and PROTOCOL.md rely on ----------- */

_Static_assert(sizeof(struct orfa_hdr) == ORFA_HDR_SIZE, "frame header");
_Static_assert(offsetof(struct orfa_cred, groups) == ORFA_CRED_FIXED_SIZE,
	       "credential block fixed part");
_Static_assert(sizeof(struct orfa_attr) == 88, "orfa_attr");
_Static_assert(sizeof(struct orfa_entry) == 104, "orfa_entry");
_Static_assert(sizeof(struct orfa_dirent) == 24, "orfa_dirent");
_Static_assert(sizeof(struct orfa_forget_one) == ORFA_FORGET_ONE_SIZE,
	       "orfa_forget_one");
_Static_assert(sizeof(struct orfa_lock) == 24, "orfa_lock");
_Static_assert(sizeof(struct orfa_hello_req) == 64, "orfa_hello_req");
_Static_assert(sizeof(struct orfa_hello_rep) == 168, "orfa_hello_rep");
_Static_assert(sizeof(struct orfa_auth_req) == 32, "orfa_auth_req");
_Static_assert(sizeof(struct orfa_auth_rep) == 136, "orfa_auth_rep");
_Static_assert(ORFA_MAX_FORGET * ORFA_FORGET_ONE_SIZE <= ORFA_DEFAULT_MAX_DATA,
	       "a full FORGET fits in the default data segment");

/* ---- the message table ------------------------------------------------- */

/* One wire field: where it lives in union orfa_args and how wide it is. */
struct field {
	uint16_t off;
	uint8_t size;		/* 4 or 8: a little-endian integer; anything
				 * else: that many raw bytes (nonces, proofs),
				 * copied as they are */
	uint8_t mbz;		/* must be zero: padding, or a length that is
				 * unused by this opcode (LISTXATTR namelen) */
};

/* The argument structure of one message as an ordered field list. */
struct layout {
	const struct field *f;
	uint8_t nfields;
	uint16_t size;		/* wire size = sizeof the struct */
};

/*
 * Layouts are written as X-macro lists of member paths inside union
 * orfa_args, expanded twice: once into the field array, once into a
 * constant sum of field sizes that must equal sizeof the struct.  Since
 * every struct in orfa_proto.h has explicit padding, that equality means
 * the list covers every byte (a field listed twice in place of another
 * would leave that other one out of the round-trip tests).
 */
#define FLD(path, z) { offsetof(union orfa_args, path), \
		       sizeof(((union orfa_args *)0)->path), z },
#define FSZ(path, z) + sizeof(((union orfa_args *)0)->path)

#define LAYOUT(lname, type, LIST)					\
	static const struct field lname##_f[] = { LIST(FLD) };		\
	_Static_assert(0 LIST(FSZ) == sizeof(type),			\
		       #lname ": field list does not cover " #type);	\
	static const struct layout lname = {				\
		lname##_f, ARRAY_SIZE(lname##_f), sizeof(type)		\
	};

#define ATTR_FIELDS(X, p)						\
	X(p.ino, 0) X(p.size, 0) X(p.blocks, 0)				\
	X(p.atime, 0) X(p.mtime, 0) X(p.ctime, 0)			\
	X(p.atime_nsec, 0) X(p.mtime_nsec, 0) X(p.ctime_nsec, 0)	\
	X(p.mode, 0) X(p.nlink, 0) X(p.uid, 0) X(p.gid, 0)		\
	X(p.blksize, 0) X(p.rdev, 0)
#define ENTRY_FIELDS(X, p)						\
	X(p.nodeid, 0) X(p.generation, 0) ATTR_FIELDS(X, p.attr)
#define LOCK_FIELDS(X, p)						\
	X(p.start, 0) X(p.end, 0) X(p.type, 0) X(p.pid, 0)

/* Requests. */
#define L_HELLO(X) X(hello.magic, 0) X(hello.version, 0)		\
	X(hello.max_data, 0) X(hello.features, 0)			\
	X(hello.export_len, 0) X(hello.flags, 0) X(hello.nonce, 0)
#define L_AUTH(X) X(auth.proof, 0)
#define L_LOOKUP(X) X(lookup.parent, 0) X(lookup.namelen, 0)		\
	X(lookup.pad, 1)
#define L_FORGET(X) X(forget.count, 0) X(forget.pad, 1)
#define L_GETATTR(X) X(getattr.nodeid, 0) X(getattr.fh, 0)
#define L_SETATTR(X) X(setattr.nodeid, 0) X(setattr.fh, 0)		\
	X(setattr.valid, 0) X(setattr.mode, 0) X(setattr.uid, 0)	\
	X(setattr.gid, 0) X(setattr.size, 0) X(setattr.atime, 0)	\
	X(setattr.mtime, 0) X(setattr.ctime, 0)				\
	X(setattr.atime_nsec, 0) X(setattr.mtime_nsec, 0)		\
	X(setattr.ctime_nsec, 0) X(setattr.pad, 1)
#define L_NODE(X) X(node.nodeid, 0)
#define L_MKNOD(X) X(mknod.parent, 0) X(mknod.rdev, 0)			\
	X(mknod.mode, 0) X(mknod.namelen, 0)
#define L_MKDIR(X) X(mkdir.parent, 0) X(mkdir.mode, 0) X(mkdir.namelen, 0)
#define L_UNLINK(X) X(unlink.parent, 0) X(unlink.namelen, 0)		\
	X(unlink.pad, 1)
#define L_SYMLINK(X) X(symlink.parent, 0) X(symlink.namelen, 0)	\
	X(symlink.targetlen, 0)
#define L_RENAME(X) X(rename.parent, 0) X(rename.newparent, 0)		\
	X(rename.flags, 0) X(rename.namelen, 0)				\
	X(rename.newnamelen, 0) X(rename.pad, 1)
#define L_LINK(X) X(link.nodeid, 0) X(link.newparent, 0)		\
	X(link.namelen, 0) X(link.pad, 1)
#define L_OPEN(X) X(open.nodeid, 0) X(open.flags, 0) X(open.pad, 1)
#define L_CREATE(X) X(create.parent, 0) X(create.mode, 0)		\
	X(create.flags, 0) X(create.namelen, 0) X(create.pad, 1)
#define L_READ(X) X(read.nodeid, 0) X(read.fh, 0) X(read.offset, 0)	\
	X(read.size, 0) X(read.pad, 1)
#define L_WRITE(X) X(write.nodeid, 0) X(write.fh, 0)			\
	X(write.offset, 0) X(write.flags, 0) X(write.pad, 1)
#define L_FH(X) X(fh.nodeid, 0) X(fh.fh, 0) X(fh.lock_owner, 0)	\
	X(fh.flags, 0) X(fh.pad, 1)
#define L_READDIR(X) X(readdir.nodeid, 0) X(readdir.fh, 0)		\
	X(readdir.cookie, 0) X(readdir.size, 0) X(readdir.pad, 1)
#define L_SETXATTR(X) X(setxattr.nodeid, 0) X(setxattr.flags, 0)	\
	X(setxattr.namelen, 0)
#define L_GETXATTR(X) X(getxattr.nodeid, 0) X(getxattr.size, 0)	\
	X(getxattr.namelen, 0)
#define L_LISTXATTR(X) X(getxattr.nodeid, 0) X(getxattr.size, 0)	\
	X(getxattr.namelen, 1)
#define L_REMOVEXATTR(X) X(removexattr.nodeid, 0)			\
	X(removexattr.namelen, 0) X(removexattr.pad, 1)
#define L_ACCESS(X) X(access.nodeid, 0) X(access.mask, 0) X(access.pad, 1)
#define L_LK(X) X(lk.nodeid, 0) X(lk.fh, 0) X(lk.owner, 0)		\
	LOCK_FIELDS(X, lk.lock) X(lk.flags, 0) X(lk.pad, 1)
#define L_FLOCK(X) X(flock.nodeid, 0) X(flock.fh, 0) X(flock.owner, 0)	\
	X(flock.op, 0) X(flock.pad, 1)
#define L_FALLOCATE(X) X(fallocate.nodeid, 0) X(fallocate.fh, 0)	\
	X(fallocate.offset, 0) X(fallocate.length, 0)			\
	X(fallocate.mode, 0) X(fallocate.pad, 1)
#define L_LSEEK(X) X(lseek.nodeid, 0) X(lseek.fh, 0)			\
	X(lseek.offset, 0) X(lseek.whence, 0) X(lseek.pad, 1)
#define L_COPY(X) X(copy.nodeid_in, 0) X(copy.fh_in, 0)		\
	X(copy.off_in, 0) X(copy.nodeid_out, 0) X(copy.fh_out, 0)	\
	X(copy.off_out, 0) X(copy.len, 0) X(copy.flags, 0)		\
	X(copy.pad, 1)

/* Replies. */
#define L_HELLO_REP(X) X(hello_rep.magic, 0) X(hello_rep.version, 0)	\
	X(hello_rep.max_data, 0) X(hello_rep.features, 0)		\
	X(hello_rep.flags, 0) X(hello_rep.pad, 1) X(hello_rep.nonce, 0)	\
	X(hello_rep.root_nodeid, 0) X(hello_rep.root_generation, 0)	\
	ATTR_FIELDS(X, hello_rep.root_attr)
#define L_ENTRY(X) ENTRY_FIELDS(X, entry)
#define L_ATTR(X) ATTR_FIELDS(X, attr)
#define L_OPEN_REP(X) X(open_rep.fh, 0) ATTR_FIELDS(X, open_rep.attr)
#define L_CREATE_REP(X) ENTRY_FIELDS(X, create_rep.entry)		\
	X(create_rep.fh, 0)
#define L_WRITE_REP(X) X(write_rep.written, 0)				\
	ATTR_FIELDS(X, write_rep.attr)
#define L_STATFS(X) X(statfs.blocks, 0) X(statfs.bfree, 0)		\
	X(statfs.bavail, 0) X(statfs.files, 0) X(statfs.ffree, 0)	\
	X(statfs.bsize, 0) X(statfs.frsize, 0) X(statfs.namemax, 0)	\
	X(statfs.pad, 1)
#define L_XATTR_REP(X) X(xattr_rep.size, 0)
#define L_LOCK(X) LOCK_FIELDS(X, lock)
#define L_LSEEK_REP(X) X(lseek_rep.offset, 0)
#define L_COPY_REP(X) X(copy_rep.copied, 0) ATTR_FIELDS(X, copy_rep.attr)
#define L_AUTH_REP(X) X(auth_rep.proof, 0) X(auth_rep.root_nodeid, 0)	\
	X(auth_rep.root_generation, 0) ATTR_FIELDS(X, auth_rep.root_attr)

LAYOUT(lay_hello, struct orfa_hello_req, L_HELLO)
LAYOUT(lay_auth, struct orfa_auth_req, L_AUTH)
LAYOUT(lay_lookup, struct orfa_lookup_req, L_LOOKUP)
LAYOUT(lay_forget, struct orfa_forget_req, L_FORGET)
LAYOUT(lay_getattr, struct orfa_getattr_req, L_GETATTR)
LAYOUT(lay_setattr, struct orfa_setattr_req, L_SETATTR)
LAYOUT(lay_node, struct orfa_nodeid_req, L_NODE)
LAYOUT(lay_mknod, struct orfa_mknod_req, L_MKNOD)
LAYOUT(lay_mkdir, struct orfa_mkdir_req, L_MKDIR)
LAYOUT(lay_unlink, struct orfa_unlink_req, L_UNLINK)
LAYOUT(lay_symlink, struct orfa_symlink_req, L_SYMLINK)
LAYOUT(lay_rename, struct orfa_rename_req, L_RENAME)
LAYOUT(lay_link, struct orfa_link_req, L_LINK)
LAYOUT(lay_open, struct orfa_open_req, L_OPEN)
LAYOUT(lay_create, struct orfa_create_req, L_CREATE)
LAYOUT(lay_read, struct orfa_read_req, L_READ)
LAYOUT(lay_write, struct orfa_write_req, L_WRITE)
LAYOUT(lay_fh, struct orfa_fh_req, L_FH)
LAYOUT(lay_readdir, struct orfa_readdir_req, L_READDIR)
LAYOUT(lay_setxattr, struct orfa_setxattr_req, L_SETXATTR)
LAYOUT(lay_getxattr, struct orfa_getxattr_req, L_GETXATTR)
LAYOUT(lay_listxattr, struct orfa_getxattr_req, L_LISTXATTR)
LAYOUT(lay_removexattr, struct orfa_removexattr_req, L_REMOVEXATTR)
LAYOUT(lay_access, struct orfa_access_req, L_ACCESS)
LAYOUT(lay_lk, struct orfa_lk_req, L_LK)
LAYOUT(lay_flock, struct orfa_flock_req, L_FLOCK)
LAYOUT(lay_fallocate, struct orfa_fallocate_req, L_FALLOCATE)
LAYOUT(lay_lseek, struct orfa_lseek_req, L_LSEEK)
LAYOUT(lay_copy, struct orfa_copy_range_req, L_COPY)

LAYOUT(lay_hello_rep, struct orfa_hello_rep, L_HELLO_REP)
LAYOUT(lay_entry, struct orfa_entry, L_ENTRY)
LAYOUT(lay_attr, struct orfa_attr, L_ATTR)
LAYOUT(lay_open_rep, struct orfa_open_rep, L_OPEN_REP)
LAYOUT(lay_create_rep, struct orfa_create_rep, L_CREATE_REP)
LAYOUT(lay_write_rep, struct orfa_write_rep, L_WRITE_REP)
LAYOUT(lay_statfs, struct orfa_statfs_out, L_STATFS)
LAYOUT(lay_xattr_rep, struct orfa_xattr_rep, L_XATTR_REP)
LAYOUT(lay_lock, struct orfa_lock, L_LOCK)
LAYOUT(lay_lseek_rep, struct orfa_lseek_rep, L_LSEEK_REP)
LAYOUT(lay_copy_rep, struct orfa_copy_range_rep, L_COPY_REP)
LAYOUT(lay_auth_rep, struct orfa_auth_rep, L_AUTH_REP)

/* What a name after the request arguments may be. */
enum name_kind {
	NK_NONE = 0,
	NK_NAME,	/* directory entry: 1..ORFA_MAX_NAME, no '/' */
	NK_TARGET,	/* symlink target: 0..ORFA_MAX_SYMLINK, '/' allowed */
	NK_XATTR,	/* xattr name: 1..ORFA_MAX_XATTR_NAME, '/' allowed */
	NK_EXPORT,	/* HELLO export path: 0..ORFA_MAX_EXPORT, '/' allowed */
};

struct name_rule {
	uint8_t kind;		/* enum name_kind */
	uint16_t len_off;	/* offset in union orfa_args of its u32 length */
};

/* What the data segment may hold. */
enum data_rule {
	DATA_NONE = 0,	/* data_len must be 0 */
	DATA_ANY,	/* opaque bytes, bounded only by max_data */
	DATA_FORGET,	/* count x struct orfa_forget_one */
	DATA_XATTR,	/* xattr value, <= ORFA_MAX_XATTR_VALUE */
	DATA_REASON,	/* replies: a refusal's reason text, only when
			 * status != 0 (HELLO, AUTH); none on success */
};

struct op_desc {
	const char *name;
	bool cred;			/* request starts with credentials */
	bool no_reply;			/* never answered (FORGET) */
	const struct layout *req;	/* NULL: no request arguments */
	struct name_rule names[2];	/* in wire order; unused: NK_NONE */
	uint8_t req_data;		/* enum data_rule */
	const struct layout *rep;	/* NULL: empty reply body */
	uint8_t rep_data;		/* DATA_NONE, DATA_ANY or DATA_REASON */
	bool err_body;			/* error replies keep the reply body
					 * (HELLO: versions stay readable) */
	const char *trunc_req;		/* "<OP> request arguments truncated" */
	const char *trunc_rep;		/* "<OP> reply body truncated" */
};

#define NAMELEN(kind, path) { kind, offsetof(union orfa_args, path) }

/* Row helpers: OP(name, cred, request layout, reply layout, ...). */
#define OP(id, c, rq, rp, ...)						\
	[ORFA_OP_##id] = { .name = #id, .cred = c, .req = rq, .rep = rp,	\
			   .trunc_req = #id " request arguments truncated",	\
			   .trunc_rep = #id " reply body truncated",		\
			   __VA_ARGS__ }

static const struct op_desc ops[ORFA_OP_MAX] = {
	OP(HELLO, false, &lay_hello, &lay_hello_rep,
	   .names = { NAMELEN(NK_EXPORT, hello.export_len) },
	   .rep_data = DATA_REASON, .err_body = true),
	OP(LOOKUP, true, &lay_lookup, &lay_entry,
	   .names = { NAMELEN(NK_NAME, lookup.namelen) }),
	OP(FORGET, true, &lay_forget, NULL,
	   .req_data = DATA_FORGET, .no_reply = true),
	OP(GETATTR, true, &lay_getattr, &lay_attr),
	OP(SETATTR, true, &lay_setattr, &lay_attr),
	OP(READLINK, true, &lay_node, NULL, .rep_data = DATA_ANY),
	OP(MKNOD, true, &lay_mknod, &lay_entry,
	   .names = { NAMELEN(NK_NAME, mknod.namelen) }),
	OP(MKDIR, true, &lay_mkdir, &lay_entry,
	   .names = { NAMELEN(NK_NAME, mkdir.namelen) }),
	OP(UNLINK, true, &lay_unlink, NULL,
	   .names = { NAMELEN(NK_NAME, unlink.namelen) }),
	OP(RMDIR, true, &lay_unlink, NULL,
	   .names = { NAMELEN(NK_NAME, unlink.namelen) }),
	OP(SYMLINK, true, &lay_symlink, &lay_entry,
	   .names = { NAMELEN(NK_NAME, symlink.namelen),
		      NAMELEN(NK_TARGET, symlink.targetlen) }),
	OP(RENAME, true, &lay_rename, NULL,
	   .names = { NAMELEN(NK_NAME, rename.namelen),
		      NAMELEN(NK_NAME, rename.newnamelen) }),
	OP(LINK, true, &lay_link, &lay_entry,
	   .names = { NAMELEN(NK_NAME, link.namelen) }),
	OP(OPEN, true, &lay_open, &lay_open_rep),
	OP(CREATE, true, &lay_create, &lay_create_rep,
	   .names = { NAMELEN(NK_NAME, create.namelen) }),
	OP(READ, true, &lay_read, NULL, .rep_data = DATA_ANY),
	OP(WRITE, true, &lay_write, &lay_write_rep, .req_data = DATA_ANY),
	OP(FLUSH, true, &lay_fh, NULL),
	OP(RELEASE, true, &lay_fh, NULL),
	OP(FSYNC, true, &lay_fh, NULL),
	OP(OPENDIR, true, &lay_open, &lay_open_rep),
	OP(READDIR, true, &lay_readdir, NULL, .rep_data = DATA_ANY),
	OP(READDIRPLUS, true, &lay_readdir, NULL, .rep_data = DATA_ANY),
	OP(RELEASEDIR, true, &lay_fh, NULL),
	OP(FSYNCDIR, true, &lay_fh, NULL),
	OP(STATFS, true, &lay_node, &lay_statfs),
	OP(SETXATTR, true, &lay_setxattr, NULL,
	   .names = { NAMELEN(NK_XATTR, setxattr.namelen) },
	   .req_data = DATA_XATTR),
	OP(GETXATTR, true, &lay_getxattr, &lay_xattr_rep,
	   .names = { NAMELEN(NK_XATTR, getxattr.namelen) },
	   .rep_data = DATA_ANY),
	OP(LISTXATTR, true, &lay_listxattr, &lay_xattr_rep,
	   .rep_data = DATA_ANY),
	OP(REMOVEXATTR, true, &lay_removexattr, NULL,
	   .names = { NAMELEN(NK_XATTR, removexattr.namelen) }),
	OP(ACCESS, true, &lay_access, NULL),
	OP(GETLK, true, &lay_lk, &lay_lock),
	OP(SETLK, true, &lay_lk, NULL),
	OP(FLOCK, true, &lay_flock, NULL),
	OP(FALLOCATE, true, &lay_fallocate, &lay_attr),
	OP(LSEEK, true, &lay_lseek, &lay_lseek_rep),
	OP(COPY_FILE_RANGE, true, &lay_copy, &lay_copy_rep),
	OP(PING, false, NULL, NULL),
	OP(AUTH, false, &lay_auth, &lay_auth_rep, .rep_data = DATA_REASON),
};

static const struct op_desc *op_get(unsigned opcode)
{
	if (opcode >= ORFA_OP_MAX || !ops[opcode].name)
		return NULL;
	return &ops[opcode];
}

const char *orfa_op_name(unsigned opcode)
{
	const struct op_desc *d = op_get(opcode);

	return d ? d->name : "?";
}

void orfa_msg_init(struct orfa_msg *m, unsigned opcode, uint64_t req_id)
{
	memset(m, 0, sizeof(*m));
	m->hdr.opcode = (uint16_t)opcode;
	m->hdr.req_id = req_id;
	if (opcode == ORFA_OP_FORGET)
		m->hdr.flags = ORFA_F_NOREPLY;
}

/* ---- frame header -------------------------------------------------------- */

void orfa_hdr_encode(uint8_t out[ORFA_HDR_SIZE], const struct orfa_hdr *h)
{
	orfa_put_le32(out + 0, h->body_len);
	orfa_put_le32(out + 4, h->data_len);
	orfa_put_le16(out + 8, h->opcode);
	orfa_put_le16(out + 10, h->flags);
	orfa_put_le32(out + 12, h->status);
	orfa_put_le64(out + 16, h->req_id);
}

int orfa_hdr_decode(const uint8_t in[ORFA_HDR_SIZE], struct orfa_hdr *h,
		    const struct orfa_limits *lim, const char **why)
{
	uint32_t max_body = lim ? lim->max_body : ORFA_MAX_BODY;
	uint32_t max_data = lim ? lim->max_data : ORFA_MAX_DATA_LIMIT;
	const char *dummy;

	if (!why)
		why = &dummy;
	if (max_body > ORFA_MAX_BODY)
		max_body = ORFA_MAX_BODY;
	if (max_data > ORFA_MAX_DATA_LIMIT)
		max_data = ORFA_MAX_DATA_LIMIT;

	h->body_len = orfa_get_le32(in + 0);
	h->data_len = orfa_get_le32(in + 4);
	h->opcode = orfa_get_le16(in + 8);
	h->flags = orfa_get_le16(in + 10);
	h->status = orfa_get_le32(in + 12);
	h->req_id = orfa_get_le64(in + 16);

	/* Size limits first: a frame we cannot hold cannot be skipped
	 * safely either, whatever its opcode. */
	if (h->body_len > max_body) {
		*why = "body_len above the maximum body size";
		return -EMSGSIZE;
	}
	if (h->data_len > max_data) {
		*why = "data_len above the negotiated max_data";
		return -EMSGSIZE;
	}
	if (h->flags & ~(ORFA_F_REPLY | ORFA_F_NOREPLY)) {
		*why = "unknown flag bits in header";
		return -EBADMSG;
	}
	if (!op_get(h->opcode)) {
		*why = "unknown opcode";
		return -ENOSYS;
	}
	*why = NULL;
	return 0;
}

/* ---- cursors ------------------------------------------------------------- */

/*
 * Read cursor.  Every read past the end sets over (sticky), records the
 * reason of the first overrun and yields zeros / NULL, so a decoder can read
 * a whole message and test over once.
 */
struct rcur {
	const uint8_t *p;
	size_t len;
	size_t pos;
	bool over;
	const char *why;	/* reason of the first overrun */
};

static const uint8_t *rcur_take(struct rcur *c, size_t n, const char *why)
{
	const uint8_t *q;

	if (c->over || n > c->len - c->pos) {
		if (!c->over)
			c->why = why;
		c->over = true;
		return NULL;
	}
	q = c->p + c->pos;
	c->pos += n;
	return q;
}

static uint64_t rcur_uint(struct rcur *c, unsigned size, const char *why)
{
	const uint8_t *q = rcur_take(c, size, why);

	if (!q)
		return 0;
	switch (size) {
	case 4:
		return orfa_get_le32(q);
	default:
		return orfa_get_le64(q);
	}
}

/* Write cursor: same idea, overflow means the caller's buffer is short. */
struct wcur {
	uint8_t *p;
	size_t cap;
	size_t pos;
	bool over;
};

static uint8_t *wcur_take(struct wcur *c, size_t n)
{
	uint8_t *q;

	if (c->over || n > c->cap - c->pos) {
		c->over = true;
		return NULL;
	}
	q = c->p + c->pos;
	c->pos += n;
	return q;
}

static void wcur_uint(struct wcur *c, unsigned size, uint64_t v)
{
	uint8_t *q = wcur_take(c, size);

	if (!q)
		return;
	switch (size) {
	case 4:
		orfa_put_le32(q, (uint32_t)v);
		break;
	default:
		orfa_put_le64(q, v);
		break;
	}
}

static void wcur_bytes(struct wcur *c, const void *src, size_t n)
{
	uint8_t *q = wcur_take(c, n);

	if (q && n)
		memcpy(q, src, n);
}

static void wcur_zero(struct wcur *c, size_t n)
{
	uint8_t *q = wcur_take(c, n);

	if (q && n)
		memset(q, 0, n);
}

/* ---- generic field loops -------------------------------------------------- */

static uint64_t field_load(const union orfa_args *a, const struct field *f)
{
	const uint8_t *p = (const uint8_t *)a + f->off;

	if (f->size == 4) {
		uint32_t v;

		memcpy(&v, p, 4);
		return v;
	} else {
		uint64_t v;

		memcpy(&v, p, 8);
		return v;
	}
}

static void field_store(union orfa_args *a, const struct field *f, uint64_t v)
{
	uint8_t *p = (uint8_t *)a + f->off;

	if (f->size == 4) {
		uint32_t v32 = (uint32_t)v;

		memcpy(p, &v32, 4);
	} else {
		memcpy(p, &v, 8);
	}
}

/*
 * The wire image of a struct is its field list laid out at the host offsets
 * (offsetof), each field little-endian: with no implicit padding and the
 * sizes summing to sizeof, that is exactly the declared layout, whatever
 * order the list is written in.  Must-be-zero fields are written as zero
 * whatever the host struct holds.  Byte-array fields (nonces, proofs) go
 * out as they are, in array order.
 */
static void layout_encode(struct wcur *c, const struct layout *l,
			  const union orfa_args *a)
{
	uint8_t *q = wcur_take(c, l->size);

	if (!q)
		return;
	for (unsigned i = 0; i < l->nfields; i++) {
		const struct field *f = &l->f[i];
		uint64_t v;

		if (f->size != 4 && f->size != 8) {
			if (f->mbz)
				memset(q + f->off, 0, f->size);
			else
				memcpy(q + f->off, (const uint8_t *)a + f->off,
				       f->size);
			continue;
		}
		v = f->mbz ? 0 : field_load(a, f);
		if (f->size == 4)
			orfa_put_le32(q + f->off, (uint32_t)v);
		else
			orfa_put_le64(q + f->off, v);
	}
}

/*
 * Fills a from the next l->size bytes; on overrun a is left untouched (the
 * caller zeroed it) and the cursor records why.  Returns false when a
 * must-be-zero field is not zero.
 */
static bool layout_decode(struct rcur *c, const struct layout *l,
			  union orfa_args *a, const char *why)
{
	const uint8_t *q = rcur_take(c, l->size, why);
	bool pads_ok = true;

	if (!q)
		return true;
	for (unsigned i = 0; i < l->nfields; i++) {
		const struct field *f = &l->f[i];
		uint64_t v;

		if (f->size != 4 && f->size != 8) {
			memcpy((uint8_t *)a + f->off, q + f->off, f->size);
			for (unsigned k = 0; f->mbz && k < f->size; k++)
				if (q[f->off + k])
					pads_ok = false;
			continue;
		}
		v = f->size == 4 ? orfa_get_le32(q + f->off)
				 : orfa_get_le64(q + f->off);
		if (f->mbz && v)
			pads_ok = false;
		field_store(a, f, v);
	}
	return pads_ok;
}

static uint32_t args_u32(const union orfa_args *a, uint16_t off)
{
	uint32_t v;

	memcpy(&v, (const uint8_t *)a + off, 4);
	return v;
}

static void args_set_u32(union orfa_args *a, uint16_t off, uint32_t v)
{
	memcpy((uint8_t *)a + off, &v, 4);
}

/* ---- names ---------------------------------------------------------------- */

static uint32_t name_max(uint8_t kind)
{
	switch (kind) {
	case NK_NAME:
		return ORFA_MAX_NAME;
	case NK_TARGET:
		return ORFA_MAX_SYMLINK;
	case NK_XATTR:
		return ORFA_MAX_XATTR_NAME;
	default:
		return ORFA_MAX_EXPORT;
	}
}

/* Length limits, before any byte of the name is looked at. */
static const char *name_len_check(uint8_t kind, uint32_t len)
{
	if (len > name_max(kind)) {
		switch (kind) {
		case NK_NAME:
			return "name longer than ORFA_MAX_NAME";
		case NK_TARGET:
			return "symlink target longer than ORFA_MAX_SYMLINK";
		case NK_XATTR:
			return "xattr name longer than ORFA_MAX_XATTR_NAME";
		default:
			return "export path longer than 4096 bytes";
		}
	}
	if (len == 0 && kind == NK_NAME)
		return "empty name";
	if (len == 0 && kind == NK_XATTR)
		return "empty xattr name";
	return NULL;
}

/* Content rules; s has len bytes (the terminating NUL is checked apart). */
static const char *name_body_check(uint8_t kind, const char *s, uint32_t len)
{
	if (memchr(s, '\0', len))
		return "name contains NUL";
	if (kind == NK_NAME && memchr(s, '/', len))
		return "name contains '/'";
	return NULL;
}

/* ---- credentials ------------------------------------------------------------ */

static void cred_encode(struct wcur *c, const struct orfa_cred *cr)
{
	wcur_uint(c, 4, cr->uid);
	wcur_uint(c, 4, cr->gid);
	wcur_uint(c, 4, cr->pid);
	wcur_uint(c, 4, cr->umask);
	wcur_uint(c, 4, cr->ngroups);
	wcur_uint(c, 4, 0);
	for (uint32_t i = 0; i < cr->ngroups; i++)
		wcur_uint(c, 4, cr->groups[i]);
	if (cr->ngroups & 1)
		wcur_uint(c, 4, 0);
}

/* Returns 0, or -EPROTO with *why set; overruns are left to the caller.
 * *pads_ok is cleared on non-zero padding. */
static int cred_decode(struct rcur *c, struct orfa_cred *cr, bool *pads_ok,
		       const char **why)
{
	cr->uid = (uint32_t)rcur_uint(c, 4, "credentials truncated");
	cr->gid = (uint32_t)rcur_uint(c, 4, "credentials truncated");
	cr->pid = (uint32_t)rcur_uint(c, 4, "credentials truncated");
	cr->umask = (uint32_t)rcur_uint(c, 4, "credentials truncated");
	cr->ngroups = (uint32_t)rcur_uint(c, 4, "credentials truncated");
	cr->pad = (uint32_t)rcur_uint(c, 4, "credentials truncated");
	if (cr->pad)
		*pads_ok = false;
	if (cr->ngroups > ORFA_MAX_GROUPS) {
		*why = "ngroups above 32";
		return -EPROTO;
	}
	for (uint32_t i = 0; i < cr->ngroups; i++)
		cr->groups[i] = (uint32_t)rcur_uint(c, 4,
						    "group list truncated");
	if (cr->ngroups & 1) {
		if (rcur_uint(c, 4, "group list truncated"))
			*pads_ok = false;
	}
	return 0;
}

/* ---- requests ----------------------------------------------------------------- */

static void names_of(struct orfa_msg *m, const char **s, uint32_t *len)
{
	s[0] = m->name;
	len[0] = m->namelen;
	s[1] = m->name2;
	len[1] = m->name2len;
}

ssize_t orfa_req_encode(struct orfa_msg *m, uint8_t *buf, size_t cap)
{
	const struct op_desc *d = op_get(m->hdr.opcode);
	struct wcur c = { .p = buf, .cap = cap };
	const char *s[2];
	uint32_t len[2];

	if (!d)
		return -ENOSYS;
	if (m->hdr.flags & ORFA_F_REPLY)
		return -EINVAL;
	if (d->cred && m->cred.ngroups > ORFA_MAX_GROUPS)
		return -EINVAL;

	names_of(m, s, len);
	for (int i = 0; i < 2; i++) {
		uint8_t kind = d->names[i].kind;

		if (kind == NK_NONE)
			continue;
		if (name_len_check(kind, len[i]))
			return -EINVAL;
		if (len[i] && !s[i])
			return -EINVAL;
		if (len[i] && name_body_check(kind, s[i], len[i]))
			return -EINVAL;
		args_set_u32(&m->a, d->names[i].len_off, len[i]);
	}

	if (d->cred)
		cred_encode(&c, &m->cred);
	if (d->req)
		layout_encode(&c, d->req, &m->a);
	for (int i = 0; i < 2; i++) {
		if (d->names[i].kind == NK_NONE)
			continue;
		wcur_bytes(&c, s[i], len[i]);
		wcur_zero(&c, 1);	/* NUL, not counted in the length */
	}
	if (c.over)
		return -EMSGSIZE;
	m->hdr.body_len = (uint32_t)c.pos;
	return (ssize_t)c.pos;
}

/* Data segment rules shared by both decoders. */
static const char *data_check(uint8_t rule, const struct orfa_msg *m)
{
	switch (rule) {
	case DATA_NONE:
		return m->hdr.data_len ? "unexpected data segment" : NULL;
	case DATA_FORGET:
		if (m->a.forget.count > ORFA_MAX_FORGET)
			return "FORGET count above ORFA_MAX_FORGET";
		if ((uint64_t)m->a.forget.count * ORFA_FORGET_ONE_SIZE !=
		    m->hdr.data_len)
			return "FORGET count disagrees with data_len";
		return NULL;
	case DATA_XATTR:
		return m->hdr.data_len > ORFA_MAX_XATTR_VALUE ?
			"xattr value above ORFA_MAX_XATTR_VALUE" : NULL;
	default:
		return NULL;
	}
}

int orfa_req_decode(struct orfa_msg *m, uint8_t *body, const char **why)
{
	const struct op_desc *d = op_get(m->hdr.opcode);
	struct rcur c = { .p = body, .len = m->hdr.body_len };
	const char *dummy, *err;
	const uint8_t *np[2] = { NULL, NULL };
	uint32_t len[2] = { 0, 0 };
	bool pads_ok = true;
	int ret;

	if (!why)
		why = &dummy;
	*why = NULL;
	memset(&m->cred, 0, sizeof(m->cred));
	memset(&m->a, 0, sizeof(m->a));
	m->name = m->name2 = NULL;
	m->namelen = m->name2len = 0;
	m->data_len = m->hdr.data_len;

	if (!d) {
		*why = "unknown opcode";
		return -ENOSYS;
	}
	if (m->hdr.flags & ~(ORFA_F_REPLY | ORFA_F_NOREPLY)) {
		*why = "unknown flag bits in header";
		return -EBADMSG;
	}
	if (m->hdr.flags & ORFA_F_REPLY) {
		*why = "reply flag set on a request";
		return -EPROTO;
	}
	if ((m->hdr.flags & ORFA_F_NOREPLY) && !d->no_reply) {
		*why = "no-reply flag on a request that is answered";
		return -EPROTO;
	}
	if (m->hdr.status) {
		*why = "non-zero status in a request";
		return -EPROTO;
	}

	if (d->cred) {
		ret = cred_decode(&c, &m->cred, &pads_ok, why);
		if (ret)
			return ret;
	}
	if (d->req && !layout_decode(&c, d->req, &m->a, d->trunc_req))
		pads_ok = false;

	/* Names: lengths come from the (possibly zeroed, if overrun)
	 * arguments; limits are checked before the bytes are taken. */
	for (int i = 0; i < 2; i++) {
		uint8_t kind = d->names[i].kind;

		if (kind == NK_NONE)
			continue;
		len[i] = args_u32(&m->a, d->names[i].len_off);
		if (len[i] > name_max(kind)) {
			*why = name_len_check(kind, len[i]);
			return -EPROTO;
		}
		np[i] = rcur_take(&c, (size_t)len[i] + 1,
				  i ? "second name truncated" :
				      "name truncated");
	}

	/* The one overrun check of the message. */
	if (c.over) {
		*why = c.why;
		return -EBADMSG;
	}
	if (!pads_ok) {
		*why = "non-zero padding";
		return -EPROTO;
	}
	for (int i = 0; i < 2; i++) {
		uint8_t kind = d->names[i].kind;

		if (kind == NK_NONE)
			continue;
		if (np[i][len[i]] != '\0') {
			*why = "name not NUL-terminated";
			return -EPROTO;
		}
		err = name_len_check(kind, len[i]);
		if (!err)
			err = name_body_check(kind, (const char *)np[i],
					      len[i]);
		if (err) {
			*why = err;
			return -EPROTO;
		}
	}
	if (c.pos != c.len) {
		*why = "trailing bytes after body";
		return -EPROTO;
	}
	err = data_check(d->req_data, m);
	if (err) {
		*why = err;
		return -EPROTO;
	}

	m->name = (const char *)np[0];
	m->namelen = len[0];
	m->name2 = (const char *)np[1];
	m->name2len = len[1];
	return 0;
}

/* ---- replies ------------------------------------------------------------------- */

/* Highest errno a status may carry (Linux MAX_ERRNO). */
#define ORFA_MAX_STATUS 4095u

static bool rep_has_body(const struct op_desc *d, const struct orfa_hdr *h)
{
	return d->rep && (h->status == 0 || d->err_body);
}

ssize_t orfa_rep_encode(struct orfa_msg *m, uint8_t *buf, size_t cap)
{
	const struct op_desc *d = op_get(m->hdr.opcode);
	struct wcur c = { .p = buf, .cap = cap };

	if (!d)
		return -ENOSYS;
	if (d->no_reply || m->hdr.status > ORFA_MAX_STATUS)
		return -EINVAL;
	m->hdr.flags = (uint16_t)((m->hdr.flags | ORFA_F_REPLY) &
				  ~ORFA_F_NOREPLY);
	if (rep_has_body(d, &m->hdr))
		layout_encode(&c, d->rep, &m->a);
	if (c.over)
		return -EMSGSIZE;
	m->hdr.body_len = (uint32_t)c.pos;
	return (ssize_t)c.pos;
}

int orfa_rep_decode(struct orfa_msg *m, uint8_t *body, const char **why)
{
	const struct op_desc *d = op_get(m->hdr.opcode);
	struct rcur c = { .p = body, .len = m->hdr.body_len };
	const char *dummy;
	bool pads_ok = true;

	if (!why)
		why = &dummy;
	*why = NULL;
	memset(&m->cred, 0, sizeof(m->cred));
	memset(&m->a, 0, sizeof(m->a));
	m->name = m->name2 = NULL;
	m->namelen = m->name2len = 0;
	m->data_len = m->hdr.data_len;

	if (!d) {
		*why = "unknown opcode";
		return -ENOSYS;
	}
	if (m->hdr.flags & ~(ORFA_F_REPLY | ORFA_F_NOREPLY)) {
		*why = "unknown flag bits in header";
		return -EBADMSG;
	}
	if (!(m->hdr.flags & ORFA_F_REPLY)) {
		*why = "reply flag missing on a reply";
		return -EPROTO;
	}
	if (m->hdr.flags & ORFA_F_NOREPLY) {
		*why = "no-reply flag on a reply";
		return -EPROTO;
	}
	if (d->no_reply) {
		*why = "reply to a request that is never answered";
		return -EPROTO;
	}
	if (m->hdr.status > ORFA_MAX_STATUS) {
		*why = "status is not an errno value";
		return -EPROTO;
	}

	if (!rep_has_body(d, &m->hdr)) {
		if (m->hdr.body_len) {
			*why = m->hdr.status ? "error reply with a body" :
					       "trailing bytes after body";
			return -EPROTO;
		}
	} else if (!layout_decode(&c, d->rep, &m->a, d->trunc_rep)) {
		pads_ok = false;
	}
	if (c.over) {
		*why = c.why;
		return -EBADMSG;
	}
	if (!pads_ok) {
		*why = "non-zero padding";
		return -EPROTO;
	}
	if (c.pos != c.len) {
		*why = "trailing bytes after body";
		return -EPROTO;
	}
	if (d->rep == &lay_hello_rep && m->a.hello_rep.magic != ORFA_MAGIC) {
		*why = "bad magic in HELLO reply";
		return -EPROTO;
	}
	if (m->hdr.data_len) {
		if (m->hdr.status && d->rep_data != DATA_REASON) {
			*why = "error reply with a data segment";
			return -EPROTO;
		}
		if (!m->hdr.status && (d->rep_data == DATA_NONE ||
				       d->rep_data == DATA_REASON)) {
			*why = "unexpected data segment";
			return -EPROTO;
		}
		if (m->hdr.status && m->hdr.data_len > ORFA_HELLO_MAX_DATA) {
			*why = "refusal reason above ORFA_HELLO_MAX_DATA";
			return -EPROTO;
		}
	}
	return 0;
}

/* ---- directory records ---------------------------------------------------------- */

#define DIRENT_SIZE	24u
#define ENTRY_SIZE	104u

size_t orfa_dirent_size(int plus, uint32_t namelen)
{
	return DIRENT_SIZE + (plus ? ENTRY_SIZE : 0) +
	       (((size_t)namelen + 7u) & ~(size_t)7u);
}

int orfa_dirent_put(uint8_t *buf, size_t cap, size_t *off, int plus,
		    const struct orfa_dirent *d, const struct orfa_entry *e,
		    const char *name)
{
	static const struct orfa_entry none;
	struct wcur c = { .p = buf, .cap = cap, .pos = *off };
	union orfa_args a;
	size_t need;

	if (d->namelen == 0 || d->namelen > ORFA_MAX_NAME)
		return -EINVAL;
	need = orfa_dirent_size(plus, d->namelen);
	if (*off > cap || need > cap - *off)
		return -ENOSPC;

	wcur_uint(&c, 8, d->ino);
	wcur_uint(&c, 8, d->cookie);
	wcur_uint(&c, 4, d->type);
	wcur_uint(&c, 4, d->namelen);
	if (plus) {
		a.entry = e ? *e : none;
		layout_encode(&c, &lay_entry, &a);
	}
	wcur_bytes(&c, name, d->namelen);
	wcur_zero(&c, need - (c.pos - *off));
	*off = c.pos;
	return 0;
}

int orfa_dirent_next(const uint8_t *buf, size_t len, size_t *off, int plus,
		     struct orfa_dirent *d, struct orfa_entry *e,
		     const char **name)
{
	struct rcur c = { .p = buf, .len = len, .pos = *off };
	union orfa_args a;
	const uint8_t *np, *padp;
	size_t padlen;

	if (*off >= len)
		return *off == len ? 0 : -EPROTO;

	d->ino = rcur_uint(&c, 8, "dirent truncated");
	d->cookie = rcur_uint(&c, 8, "dirent truncated");
	d->type = (uint32_t)rcur_uint(&c, 4, "dirent truncated");
	d->namelen = (uint32_t)rcur_uint(&c, 4, "dirent truncated");
	if (plus) {
		layout_decode(&c, &lay_entry, &a, "dirent truncated");
		if (e)
			*e = a.entry;
	}
	if (c.over || d->namelen == 0 || d->namelen > ORFA_MAX_NAME ||
	    d->type > 15)
		return -EPROTO;
	np = rcur_take(&c, d->namelen, "dirent name truncated");
	padlen = (8u - (d->namelen & 7u)) & 7u;
	padp = rcur_take(&c, padlen, "dirent padding truncated");
	if (c.over)
		return -EPROTO;
	if (memchr(np, '\0', d->namelen) || memchr(np, '/', d->namelen))
		return -EPROTO;
	for (size_t i = 0; i < padlen; i++)
		if (padp[i])
			return -EPROTO;
	*name = (const char *)np;
	*off = c.pos;
	return 1;
}

/* ---- FORGET records ------------------------------------------------------------- */

void orfa_forget_put(uint8_t *buf, size_t i, const struct orfa_forget_one *f)
{
	uint8_t *p = buf + i * ORFA_FORGET_ONE_SIZE;

	orfa_put_le64(p, f->nodeid);
	orfa_put_le64(p + 8, f->nlookup);
}

void orfa_forget_get(const uint8_t *buf, size_t i, struct orfa_forget_one *f)
{
	const uint8_t *p = buf + i * ORFA_FORGET_ONE_SIZE;

	f->nodeid = orfa_get_le64(p);
	f->nlookup = orfa_get_le64(p + 8);
}
