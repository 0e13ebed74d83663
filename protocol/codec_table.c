/*
 * codec_table.c - the message table: what the codec knows about each ORFA
 * message, as data.
 *
 * One row per opcode gives the message's name, the field list of its
 * request and reply argument structures, which names follow the request
 * arguments and which argument fields hold their lengths, and what the
 * data segment may hold.  codec.c encodes and decodes with generic loops
 * over this table, so adding a message is one row here, and the rules a
 * receiver enforces are the rules a sender is held to.
 *
 * Not here: any code that reads or writes bytes (codec.c).  Compile-time
 * checks that the wire structs have the sizes PROTOCOL.md gives, and that
 * every field list covers its struct, are here beside the lists.
 */
#include <stddef.h>

#include "codec_impl.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- wire sizes the rest of the code and PROTOCOL.md rely on ------------- */

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


/* ---- field lists --------------------------------------------------------- */

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


/* Shared with the directory record code in codec.c. */
const struct layout *const orfa_codec_entry_layout = &lay_entry;

/* ---- the message table --------------------------------------------------- */

#define NAMELEN(kind, path) { kind, offsetof(union orfa_args, path) }

/* Row helpers: OP(name, cred, request layout, reply layout, ...). */
#define OP(id, c, rq, rp, ...)						\
	[ORFA_OP_##id] = { .name = #id, .cred = c, .req = rq, .rep = rp,	\
			   .trunc_req = #id " request arguments truncated",	\
			   .trunc_rep = #id " reply body truncated",		\
			   __VA_ARGS__ }

const struct op_desc orfa_codec_ops[ORFA_OP_MAX] = {
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
