/*
 * orfa_proto.h - the ORFA wire protocol: constants, opcodes and the
 * fixed-layout argument structures of every message.
 *
 * This header is the single definition of the wire format; PROTOCOL.md
 * describes it in prose and must agree with it.  The codec (codec.h) is the
 * only code that turns bytes into these structures and back.
 *
 * Every structure below is laid out on the wire exactly as declared here:
 * fields in declaration order, little-endian, no implicit padding (explicit
 * pad fields are sent as zero; a receiver refuses non-zero padding, EPROTO).  All structures are a
 * multiple of 8 bytes so that consecutive structures stay 64-bit aligned, as
 * in the ORFA design (no XDR).
 *
 * Version history:
 *   1  first version (2026-11).  Revised before its first release (still
 *      version 1, see PROTOCOL.md section 15): HELLO carries flags and
 *      nonces, new opcode AUTH (shared-key mutual authentication);
 *      then frames after AUTH are sealed (PROTOCOL.md section 6.1),
 *      HELLO flag ORFA_HELLO_INTEGRITY.
 */
#ifndef ORFA_PROTO_H
#define ORFA_PROTO_H

#include <stdint.h>

#define ORFA_MAGIC		0x4146524fu	/* "ORFA" read as LE u32 */
#define ORFA_PROTO_VERSION	1u

/* Limits. */
#define ORFA_HDR_SIZE		24u		/* struct orfa_hdr on the wire */
#define ORFA_MAX_BODY		65536u		/* header segment body, bytes */
#define ORFA_MAX_DATA_LIMIT	(64u << 20)	/* hard cap on data_len */
#define ORFA_DEFAULT_MAX_DATA	(16u << 20)	/* offered in HELLO */
#define ORFA_HELLO_MAX_DATA	4096u		/* data_len accepted until HELLO
						 * completes (refusal reason) */
#define ORFA_MAX_GROUPS		32u		/* supplementary groups sent */
#define ORFA_MAX_NAME		1024u		/* longest name accepted on wire;
						 * backends answer ENAMETOOLONG
						 * above NAME_MAX (255) */
#define ORFA_MAX_SYMLINK	4096u		/* longest symlink target */
#define ORFA_MAX_XATTR_NAME	255u
#define ORFA_MAX_XATTR_VALUE	65536u
#define ORFA_MAX_FORGET		4096u		/* entries in one FORGET */
#define ORFA_MAX_EXPORT		4096u		/* HELLO export path */
#define ORFA_NONCE_SIZE		32u		/* HELLO nonces */
#define ORFA_PROOF_SIZE		32u		/* AUTH proofs (MACs) */

#define ORFA_ROOT_ID_NONE	0u		/* node id 0 is never valid */
#define ORFA_FH_NONE		0u		/* file id 0 means "no file" */

/* Header flags. */
#define ORFA_F_REPLY		0x0001u		/* message is a reply */
#define ORFA_F_NOREPLY		0x0002u		/* request expects no reply
						 * (FORGET only) */

/* Feature bits exchanged in HELLO (intersection is used). */
#define ORFA_FEAT_READDIRPLUS	(1ull << 0)
#define ORFA_FEAT_LOCKS		(1ull << 1)
#define ORFA_FEAT_XATTR		(1ull << 2)
#define ORFA_FEAT_COPY_RANGE	(1ull << 3)
#define ORFA_FEAT_ALL		0xfull

enum orfa_opcode {
	ORFA_OP_HELLO = 1,
	ORFA_OP_LOOKUP,
	ORFA_OP_FORGET,
	ORFA_OP_GETATTR,
	ORFA_OP_SETATTR,
	ORFA_OP_READLINK,
	ORFA_OP_MKNOD,
	ORFA_OP_MKDIR,
	ORFA_OP_UNLINK,
	ORFA_OP_RMDIR,
	ORFA_OP_SYMLINK,	/* 11 */
	ORFA_OP_RENAME,
	ORFA_OP_LINK,
	ORFA_OP_OPEN,
	ORFA_OP_CREATE,
	ORFA_OP_READ,
	ORFA_OP_WRITE,
	ORFA_OP_FLUSH,
	ORFA_OP_RELEASE,
	ORFA_OP_FSYNC,
	ORFA_OP_OPENDIR,	/* 21 */
	ORFA_OP_READDIR,
	ORFA_OP_READDIRPLUS,
	ORFA_OP_RELEASEDIR,
	ORFA_OP_FSYNCDIR,
	ORFA_OP_STATFS,
	ORFA_OP_SETXATTR,
	ORFA_OP_GETXATTR,
	ORFA_OP_LISTXATTR,
	ORFA_OP_REMOVEXATTR,
	ORFA_OP_ACCESS,		/* 31 */
	ORFA_OP_GETLK,
	ORFA_OP_SETLK,
	ORFA_OP_FLOCK,
	ORFA_OP_FALLOCATE,
	ORFA_OP_LSEEK,
	ORFA_OP_COPY_FILE_RANGE,
	ORFA_OP_PING,		/* 38: no arguments, empty reply */
	ORFA_OP_AUTH,		/* 39: after HELLO, when the server asks */
	ORFA_OP_MAX		/* one past the last opcode */
};

/*
 * Frame header: every message starts with these 24 bytes.  It is followed
 * by body_len bytes of "header segment" (arguments, names) and data_len
 * bytes of "data segment" (file data, directory entries, xattr values).
 * The two segments travel separately so file data is never copied just to
 * be framed (ORFA two-buffer model).
 */
struct orfa_hdr {
	uint32_t body_len;	/* <= ORFA_MAX_BODY */
	uint32_t data_len;	/* <= negotiated max_data */
	uint16_t opcode;	/* enum orfa_opcode */
	uint16_t flags;		/* ORFA_F_* */
	uint32_t status;	/* replies: 0 or a positive Linux errno
				 * (1..4095); requests: 0 */
	uint64_t req_id;	/* chosen by the requester, echoed in the reply */
};

/*
 * Credentials: the first thing in every request body (except HELLO, AUTH
 * and PING, which carry none).  On the wire: the 24 fixed bytes below, then
 * ngroups u32 group ids, then zero padding up to a multiple of 8.
 */
struct orfa_cred {
	uint32_t uid;
	uint32_t gid;
	uint32_t pid;
	uint32_t umask;		/* caller's umask, applied by the server */
	uint32_t ngroups;	/* <= ORFA_MAX_GROUPS */
	uint32_t pad;
	uint32_t groups[ORFA_MAX_GROUPS];	/* only ngroups travel */
};
#define ORFA_CRED_FIXED_SIZE	24u

/* File attributes (struct stat subset), 88 bytes. */
struct orfa_attr {
	uint64_t ino;
	uint64_t size;
	uint64_t blocks;	/* 512-byte units */
	int64_t  atime;
	int64_t  mtime;
	int64_t  ctime;
	uint32_t atime_nsec;
	uint32_t mtime_nsec;
	uint32_t ctime_nsec;
	uint32_t mode;		/* S_IF* type and permission bits, Linux values */
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint32_t blksize;
	uint64_t rdev;
};

/* Result of anything that hands out a node (one lookup reference). */
struct orfa_entry {
	uint64_t nodeid;
	uint64_t generation;
	struct orfa_attr attr;
};

struct orfa_statfs_out {
	uint64_t blocks;
	uint64_t bfree;
	uint64_t bavail;
	uint64_t files;
	uint64_t ffree;
	uint32_t bsize;
	uint32_t frsize;
	uint32_t namemax;
	uint32_t pad;
};

/* ---- HELLO and AUTH ------------------------------------------------- */
/* Request body: struct orfa_hello_req, then export_len bytes of export path
 * ("/" or "/sub/dir") and a NUL.  Reply body: struct orfa_hello_rep, sent
 * even when status != 0 so that each side can report the other's version;
 * on failure the data segment carries a human-readable reason.  magic and
 * version stay at offsets 0 and 4 of both structures in every version. */

/* HELLO flags.  Request: the client holds a key and will prove it (its
 * nonce is set).  Reply: the server requires AUTH before anything else (its
 * nonce is set; the root fields are zero, the AUTH reply carries them). */
#define ORFA_HELLO_AUTH		(1u << 0)
/* With ORFA_HELLO_AUTH: request, the client asks that frames after AUTH be
 * authenticated but not encrypted; reply, the server grants it
 * (PROTOCOL.md section 6.1). */
#define ORFA_HELLO_INTEGRITY	(1u << 1)
#define ORFA_HELLO_FLAGS_ALL	0x3u

struct orfa_hello_req {		/* 64 bytes */
	uint32_t magic;		/* ORFA_MAGIC */
	uint32_t version;	/* ORFA_PROTO_VERSION */
	uint64_t max_data;	/* largest data segment the client accepts */
	uint64_t features;	/* ORFA_FEAT_* wanted */
	uint32_t export_len;
	uint32_t flags;		/* ORFA_HELLO_* */
	uint8_t nonce[ORFA_NONCE_SIZE];	/* client nonce: fresh random bytes
					 * with ORFA_HELLO_AUTH, else zero */
};
struct orfa_hello_rep {		/* 168 bytes */
	uint32_t magic;
	uint32_t version;	/* server's version */
	uint64_t max_data;	/* min(client's, server's) */
	uint64_t features;	/* granted */
	uint32_t flags;		/* ORFA_HELLO_AUTH: send AUTH next */
	uint32_t pad;
	uint8_t nonce[ORFA_NONCE_SIZE];	/* server nonce with ORFA_HELLO_AUTH,
					 * else zero */
	uint64_t root_nodeid;	/* node the client maps to its root
				 * (0 when AUTH must follow) */
	uint64_t root_generation;
	struct orfa_attr root_attr;
};

/* AUTH (no credentials): the client's proof, a MAC with the shared key
 * over (client role, client nonce, server nonce, export path); the reply
 * carries the server's proof (server role, same inputs) and the root that
 * HELLO withheld.  A refusal (EACCES...) has an empty body and a reason
 * in the data segment, and the server closes the connection. */
struct orfa_auth_req {		/* 32 bytes */
	uint8_t proof[ORFA_PROOF_SIZE];
};
struct orfa_auth_rep {		/* 136 bytes */
	uint8_t proof[ORFA_PROOF_SIZE];
	uint64_t root_nodeid;
	uint64_t root_generation;
	struct orfa_attr root_attr;
};

/* ---- node operations ----------------------------------------------- */
/* Names follow the argument struct, each followed by one NUL byte that is
 * not counted in its length; a name may not contain '/' or NUL. */

struct orfa_lookup_req {	/* + name; reply: struct orfa_entry */
	uint64_t parent;
	uint32_t namelen;
	uint32_t pad;
};

struct orfa_forget_one {
	uint64_t nodeid;
	uint64_t nlookup;
};
struct orfa_forget_req {	/* + data: count x struct orfa_forget_one; no reply */
	uint32_t count;
	uint32_t pad;
};

struct orfa_getattr_req {	/* reply: struct orfa_attr */
	uint64_t nodeid;
	uint64_t fh;		/* ORFA_FH_NONE or an open file id */
};

#define ORFA_SET_MODE		(1u << 0)
#define ORFA_SET_UID		(1u << 1)
#define ORFA_SET_GID		(1u << 2)
#define ORFA_SET_SIZE		(1u << 3)
#define ORFA_SET_ATIME		(1u << 4)
#define ORFA_SET_MTIME		(1u << 5)
#define ORFA_SET_ATIME_NOW	(1u << 6)
#define ORFA_SET_MTIME_NOW	(1u << 7)
#define ORFA_SET_CTIME		(1u << 8)
#define ORFA_SET_KILL_SUIDGID	(1u << 9)
#define ORFA_SET_ALL		0x3ffu
struct orfa_setattr_req {	/* reply: struct orfa_attr */
	uint64_t nodeid;
	uint64_t fh;
	uint32_t valid;		/* ORFA_SET_* */
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint64_t size;
	int64_t  atime;
	int64_t  mtime;
	int64_t  ctime;
	uint32_t atime_nsec;
	uint32_t mtime_nsec;
	uint32_t ctime_nsec;
	uint32_t pad;
};

struct orfa_nodeid_req {	/* READLINK (reply data: target), STATFS */
	uint64_t nodeid;
};

struct orfa_mknod_req {		/* + name; reply: struct orfa_entry */
	uint64_t parent;
	uint64_t rdev;
	uint32_t mode;		/* includes S_IF* type */
	uint32_t namelen;
};

struct orfa_mkdir_req {		/* + name; reply: struct orfa_entry */
	uint64_t parent;
	uint32_t mode;
	uint32_t namelen;
};

struct orfa_unlink_req {	/* UNLINK, RMDIR: + name; empty reply */
	uint64_t parent;
	uint32_t namelen;
	uint32_t pad;
};

struct orfa_symlink_req {	/* + name + target; reply: struct orfa_entry */
	uint64_t parent;
	uint32_t namelen;
	uint32_t targetlen;
};

#define ORFA_RENAME_NOREPLACE	(1u << 0)	/* = RENAME_NOREPLACE */
#define ORFA_RENAME_EXCHANGE	(1u << 1)	/* = RENAME_EXCHANGE */
struct orfa_rename_req {	/* + name + newname; empty reply */
	uint64_t parent;
	uint64_t newparent;
	uint32_t flags;
	uint32_t namelen;
	uint32_t newnamelen;
	uint32_t pad;
};

struct orfa_link_req {		/* + newname; reply: struct orfa_entry */
	uint64_t nodeid;
	uint64_t newparent;
	uint32_t namelen;
	uint32_t pad;
};

/* ---- files ---------------------------------------------------------- */
struct orfa_open_req {		/* OPEN, OPENDIR */
	uint64_t nodeid;
	uint32_t flags;		/* open(2) flags, Linux values */
	uint32_t pad;
};
struct orfa_open_rep {
	uint64_t fh;		/* server-side file id (ORFA "FD identifier") */
	struct orfa_attr attr;	/* attributes at open, for close-to-open */
};

struct orfa_create_req {	/* + name */
	uint64_t parent;
	uint32_t mode;
	uint32_t flags;
	uint32_t namelen;
	uint32_t pad;
};
struct orfa_create_rep {
	struct orfa_entry entry;
	uint64_t fh;
};

struct orfa_read_req {		/* reply: empty body, data = bytes read
				 * (shorter than size only at end of file) */
	uint64_t nodeid;
	uint64_t fh;
	uint64_t offset;
	uint32_t size;
	uint32_t pad;
};

struct orfa_write_req {		/* + data: the bytes to write */
	uint64_t nodeid;
	uint64_t fh;
	uint64_t offset;
	uint32_t flags;		/* open flags of the writer (O_APPEND...) */
	uint32_t pad;
};
struct orfa_write_rep {
	uint64_t written;
	struct orfa_attr attr;	/* attributes after the write */
};

struct orfa_fh_req {		/* FLUSH, RELEASE, RELEASEDIR, FSYNC, FSYNCDIR */
	uint64_t nodeid;
	uint64_t fh;
	uint64_t lock_owner;	/* FLUSH/RELEASE: owner whose locks to drop */
	uint32_t flags;		/* FSYNC*: 1 = datasync only */
	uint32_t pad;
};

/* READDIR / READDIRPLUS: request struct orfa_readdir_req; reply data is a
 * sequence of records, each struct orfa_dirent, (READDIRPLUS only) a
 * struct orfa_entry, then namelen bytes of name padded with zeros to a
 * multiple of 8.  An empty data segment means end of directory.  Cookies
 * are opaque and stable: reading on from any cookie a previous reply
 * returned resumes after that entry. */
struct orfa_readdir_req {
	uint64_t nodeid;
	uint64_t fh;
	uint64_t cookie;	/* 0 = from the start */
	uint32_t size;		/* max bytes of reply data */
	uint32_t pad;
};
struct orfa_dirent {
	uint64_t ino;
	uint64_t cookie;	/* resume point after this entry */
	uint32_t type;		/* DT_* value */
	uint32_t namelen;
};

/* ---- xattrs --------------------------------------------------------- */
struct orfa_setxattr_req {	/* + name; data: value */
	uint64_t nodeid;
	uint32_t flags;		/* XATTR_CREATE / XATTR_REPLACE */
	uint32_t namelen;
};
struct orfa_getxattr_req {	/* GETXATTR (+ name), LISTXATTR (namelen 0) */
	uint64_t nodeid;
	uint32_t size;		/* 0: ask only for the size */
	uint32_t namelen;
};
struct orfa_xattr_rep {		/* data: value or list when size != 0 */
	uint64_t size;		/* size of the whole value / list */
};
struct orfa_removexattr_req {	/* + name */
	uint64_t nodeid;
	uint32_t namelen;
	uint32_t pad;
};

struct orfa_access_req {
	uint64_t nodeid;
	uint32_t mask;		/* R_OK | W_OK | X_OK or F_OK */
	uint32_t pad;
};

/* ---- locks ---------------------------------------------------------- */
/* Locks are held by the server, so every client of an export sees them.
 * Owners are (connection, lock_owner) pairs. */
#define ORFA_LK_WAIT		(1u << 0)	/* SETLK: block until granted */
struct orfa_lock {
	uint64_t start;
	uint64_t end;		/* inclusive; UINT64_MAX = to end of file */
	uint32_t type;		/* F_RDLCK 0, F_WRLCK 1, F_UNLCK 2 */
	uint32_t pid;
};
struct orfa_lk_req {		/* GETLK (reply: struct orfa_lock), SETLK */
	uint64_t nodeid;
	uint64_t fh;
	uint64_t owner;
	struct orfa_lock lock;
	uint32_t flags;		/* ORFA_LK_* */
	uint32_t pad;
};
struct orfa_flock_req {		/* empty reply */
	uint64_t nodeid;
	uint64_t fh;
	uint64_t owner;
	uint32_t op;		/* LOCK_SH / LOCK_EX / LOCK_UN, | LOCK_NB */
	uint32_t pad;
};

/* ---- space and ranges ----------------------------------------------- */
struct orfa_fallocate_req {	/* reply: struct orfa_attr */
	uint64_t nodeid;
	uint64_t fh;
	uint64_t offset;
	uint64_t length;
	uint32_t mode;		/* FALLOC_FL_* */
	uint32_t pad;
};

struct orfa_lseek_req {
	uint64_t nodeid;
	uint64_t fh;
	uint64_t offset;
	uint32_t whence;	/* SEEK_DATA 3 / SEEK_HOLE 4 (others: EINVAL) */
	uint32_t pad;
};
struct orfa_lseek_rep {
	uint64_t offset;
};

struct orfa_copy_range_req {
	uint64_t nodeid_in;
	uint64_t fh_in;
	uint64_t off_in;
	uint64_t nodeid_out;
	uint64_t fh_out;
	uint64_t off_out;
	uint64_t len;
	uint32_t flags;
	uint32_t pad;
};
struct orfa_copy_range_rep {
	uint64_t copied;
	struct orfa_attr attr;	/* attributes of the output file after */
};

#endif /* ORFA_PROTO_H */
