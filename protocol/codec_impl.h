/*
 * codec_impl.h - private to the codec: the shape of the message table that
 * codec_table.c fills and codec.c walks.  Not for callers of the codec
 * (they include codec.h); tests reach the codec only through codec.h.
 */
#ifndef ORFA_CODEC_IMPL_H
#define ORFA_CODEC_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "codec.h"

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

/* The message table, indexed by opcode; rows without a name are unknown
 * opcodes (codec_table.c). */
extern const struct op_desc orfa_codec_ops[ORFA_OP_MAX];

/* The READDIRPLUS entry layout, shared with the directory record code. */
extern const struct layout *const orfa_codec_entry_layout;

/* The row for opcode, or NULL when the opcode is unknown. */
static inline const struct op_desc *op_get(unsigned opcode)
{
	if (opcode >= ORFA_OP_MAX || !orfa_codec_ops[opcode].name)
		return NULL;
	return &orfa_codec_ops[opcode];
}

#endif /* ORFA_CODEC_IMPL_H */
