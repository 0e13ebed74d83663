/*
 * codec.h - encode and decode ORFA messages (see orfa_proto.h, PROTOCOL.md).
 *
 * The codec is pure: no I/O, no allocation, no global state.  Decoding goes
 * through a bounds-checked cursor; every malformed input is refused with a
 * negative errno and a precise reason string, never an assert.
 *
 * A message is three parts: the 24-byte frame header, the header-segment
 * body (credentials, arguments, names) and the data segment.  The codec
 * handles header and body; the data segment is file data or another
 * opaque payload that the caller moves itself (so it can come from a file
 * with sendfile, or land in a registered RDMA buffer) -- except for
 * READDIR/READDIRPLUS and FORGET data, for which helpers are given below.
 */
#ifndef ORFA_CODEC_H
#define ORFA_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "orfa_proto.h"

/* Arguments of one request or reply, by opcode (which member is valid is
 * given by opcode and by whether the message is a reply). */
union orfa_args {
	/* requests */
	struct orfa_hello_req hello;
	struct orfa_auth_req auth;
	struct orfa_lookup_req lookup;
	struct orfa_forget_req forget;
	struct orfa_getattr_req getattr;
	struct orfa_setattr_req setattr;
	struct orfa_nodeid_req node;		/* READLINK, STATFS */
	struct orfa_mknod_req mknod;
	struct orfa_mkdir_req mkdir;
	struct orfa_unlink_req unlink;		/* UNLINK, RMDIR */
	struct orfa_symlink_req symlink;
	struct orfa_rename_req rename;
	struct orfa_link_req link;
	struct orfa_open_req open;		/* OPEN, OPENDIR */
	struct orfa_create_req create;
	struct orfa_read_req read;
	struct orfa_write_req write;
	struct orfa_fh_req fh;			/* FLUSH RELEASE RELEASEDIR FSYNC FSYNCDIR */
	struct orfa_readdir_req readdir;	/* READDIR, READDIRPLUS */
	struct orfa_setxattr_req setxattr;
	struct orfa_getxattr_req getxattr;	/* GETXATTR, LISTXATTR */
	struct orfa_removexattr_req removexattr;
	struct orfa_access_req access;
	struct orfa_lk_req lk;			/* GETLK, SETLK */
	struct orfa_flock_req flock;
	struct orfa_fallocate_req fallocate;
	struct orfa_lseek_req lseek;
	struct orfa_copy_range_req copy;
	/* replies */
	struct orfa_hello_rep hello_rep;
	struct orfa_auth_rep auth_rep;
	struct orfa_entry entry;		/* LOOKUP MKNOD MKDIR SYMLINK LINK */
	struct orfa_attr attr;			/* GETATTR SETATTR FALLOCATE */
	struct orfa_open_rep open_rep;		/* OPEN, OPENDIR */
	struct orfa_create_rep create_rep;
	struct orfa_write_rep write_rep;
	struct orfa_statfs_out statfs;
	struct orfa_xattr_rep xattr_rep;	/* GETXATTR, LISTXATTR */
	struct orfa_lock lock;			/* GETLK reply */
	struct orfa_lseek_rep lseek_rep;
	struct orfa_copy_range_rep copy_rep;
};

/*
 * Host form of one message.  Pointers are borrowed from the buffers that
 * were decoded and live as long as those buffers; names are NUL-terminated
 * in place (the wire carries the NUL).
 */
struct orfa_msg {
	struct orfa_hdr hdr;		/* opcode, flags, status, req_id, lengths */
	struct orfa_cred cred;		/* requests except HELLO/AUTH/PING */
	union orfa_args a;
	const char *name;		/* first name, or NULL */
	uint32_t namelen;
	const char *name2;		/* second name (RENAME newname, SYMLINK target) */
	uint32_t name2len;
	const void *data;		/* data segment, or NULL when not decoded here */
	uint32_t data_len;
};

/* Negotiated limits a decoder enforces. */
struct orfa_limits {
	uint32_t max_body;		/* <= ORFA_MAX_BODY */
	uint32_t max_data;		/* <= ORFA_MAX_DATA_LIMIT */
};

/* Name of an opcode for logs and traces ("LOOKUP"); "?" when unknown. */
const char *orfa_op_name(unsigned opcode);

/*
 * Frame header.  orfa_hdr_encode writes exactly ORFA_HDR_SIZE bytes.
 * orfa_hdr_decode parses ORFA_HDR_SIZE bytes and checks them against lim:
 * returns 0, -EMSGSIZE (body_len or data_len above the limits), -EBADMSG
 * (unknown flags), -ENOSYS (opcode unknown).  *h is filled in before
 * anything is judged, whatever the result, and the lengths are judged
 * first: after any other error than -EMSGSIZE the frame's extent is known,
 * so a caller can skip it or answer ENOSYS (the transports rely on both).
 * *why (may be NULL) receives a static string naming the problem (NULL on
 * success).  lim may be NULL: the hard caps ORFA_MAX_BODY and
 * ORFA_MAX_DATA_LIMIT apply (they apply anyway above any lim).
 */
void orfa_hdr_encode(uint8_t out[ORFA_HDR_SIZE], const struct orfa_hdr *h);
int orfa_hdr_decode(const uint8_t in[ORFA_HDR_SIZE], struct orfa_hdr *h,
		    const struct orfa_limits *lim, const char **why);

/*
 * Body encoding.  Encode m's credentials (requests), arguments and names
 * for m->hdr.opcode into buf (capacity cap).  Returns the body length
 * (>= 0) and sets m->hdr.body_len to it; the caller sets m->hdr.data_len
 * to its data segment length.  Returns -EMSGSIZE when cap is too small,
 * -EINVAL when m is inconsistent (name too long, too many groups),
 * -ENOSYS on an unknown opcode.  Replies with hdr.status != 0 have an empty
 * body, except HELLO (whose body is always sent); HELLO and AUTH refusals
 * may carry a reason text as data segment.
 * Names come from m->name/namelen and m->name2/name2len; the encoder
 * writes those lengths into the argument length fields (namelen,
 * targetlen, export_len...), so callers need not fill them twice.  Pad
 * fields are sent as zero whatever m holds.  orfa_req_encode refuses
 * ORFA_F_REPLY (-EINVAL); orfa_rep_encode sets ORFA_F_REPLY, clears
 * ORFA_F_NOREPLY, and refuses FORGET and a status above 4095 (-EINVAL).
 */
ssize_t orfa_req_encode(struct orfa_msg *m, uint8_t *buf, size_t cap);
ssize_t orfa_rep_encode(struct orfa_msg *m, uint8_t *buf, size_t cap);

/*
 * Body decoding.  m->hdr must already hold the decoded frame header; body
 * holds exactly m->hdr.body_len bytes.  Fills the rest of m; names point
 * into body.  Returns 0, -EBADMSG (truncated: body shorter than the
 * structure or names it announces), -EPROTO (inconsistent: trailing bytes,
 * missing NUL, NUL or '/' inside a name, ngroups too large, a length field
 * that disagrees with data_len, non-zero pad), -ENOSYS (unknown opcode).
 * Also -EPROTO: ORFA_F_REPLY set on a request or missing on a reply,
 * ORFA_F_NOREPLY outside a FORGET request, non-zero status on a request,
 * an error reply with a body (HELLO excepted) or data (HELLO and AUTH may
 * carry a reason of at most ORFA_HELLO_MAX_DATA bytes), a bad HELLO reply
 * magic, a data segment where the opcode allows none; -EBADMSG: unknown
 * flag bits.  m->data_len is set to hdr.data_len.
 * The data pointer is not touched; set m->data yourself.
 */
int orfa_req_decode(struct orfa_msg *m, uint8_t *body, const char **why);
int orfa_rep_decode(struct orfa_msg *m, uint8_t *body, const char **why);

/* Initialise a request message for opcode with req_id; clears the rest. */
void orfa_msg_init(struct orfa_msg *m, unsigned opcode, uint64_t req_id);

/*
 * Directory entry records (READDIR/READDIRPLUS reply data).
 * orfa_dirent_size: bytes one record takes.  orfa_dirent_put appends a
 * record at buf+*off if it fits in cap, advancing *off; returns 0,
 * -ENOSPC when it does not fit (nothing written), or -EINVAL when
 * d->namelen is 0 or above ORFA_MAX_NAME.  e may be NULL (plain READDIR;
 * for READDIRPLUS a zeroed entry is sent).  orfa_dirent_next parses the
 * record at *off of a data segment of len bytes: returns 1 and advances
 * *off, 0 at the end, -EPROTO on a malformed record.  *name is NOT
 * NUL-terminated; use *namelen.
 */
size_t orfa_dirent_size(int plus, uint32_t namelen);
int orfa_dirent_put(uint8_t *buf, size_t cap, size_t *off, int plus,
		    const struct orfa_dirent *d, const struct orfa_entry *e,
		    const char *name);
int orfa_dirent_next(const uint8_t *buf, size_t len, size_t *off, int plus,
		     struct orfa_dirent *d, struct orfa_entry *e,
		     const char **name);

/* FORGET data: count records of struct orfa_forget_one. */
void orfa_forget_put(uint8_t *buf, size_t i, const struct orfa_forget_one *f);
void orfa_forget_get(const uint8_t *buf, size_t i, struct orfa_forget_one *f);
#define ORFA_FORGET_ONE_SIZE 16u

/* Little-endian helpers, used by the codec and by transports. */
static inline void orfa_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void orfa_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void orfa_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t orfa_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t orfa_get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
static inline uint64_t orfa_get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#endif /* ORFA_CODEC_H */
