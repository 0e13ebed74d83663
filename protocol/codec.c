/*
 * codec.c - encoder and decoder for ORFA frame headers and message bodies.
 *
 * The rules live in the message table (codec_table.c): per opcode, the
 * field lists of the argument structures, the names that follow them and
 * what the data segment may hold.  This file holds the generic loops that
 * walk it: the frame header, the bounds-checked cursors, the field loops,
 * names and credentials, request and reply bodies, and the READDIR and
 * FORGET record helpers.
 *
 * Not here: the table itself, I/O, allocation, version negotiation, and
 * the meaning of any field beyond its wire validity (a server still
 * answers ENAMETOOLONG for a 300-byte name, EBADF for an unknown file id,
 * and so on).
 *
 * Decoding reads only from the body it is given, through a bounds-checked
 * cursor whose overflow flag is sticky; nothing on the network can make it
 * read out of bounds or assert.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "codec_impl.h"

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

/* ---- generic field loops ------------------------------------------------- */

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

/* ---- names --------------------------------------------------------------- */

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

/* ---- credentials --------------------------------------------------------- */

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

/* ---- request encoding ---------------------------------------------------- */

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

/* ---- decoding: header rules and the first step, both directions ---------- */

/* Sets *why to reason and returns err (a negative errno). */
static int refuse(const char **why, const char *reason, int err)
{
	*why = reason;
	return err;
}

/* Highest errno a status may carry (Linux MAX_ERRNO). */
#define ORFA_MAX_STATUS 4095u

/* Header fields a request may not use: the reason (EPROTO), or NULL. */
static const char *req_hdr_check(const struct op_desc *d,
				 const struct orfa_hdr *h)
{
	if (h->flags & ORFA_F_REPLY)
		return "reply flag set on a request";
	if ((h->flags & ORFA_F_NOREPLY) && !d->no_reply)
		return "no-reply flag on a request that is answered";
	if (h->status)
		return "non-zero status in a request";
	return NULL;
}

/* Header rules of a reply: the reason (EPROTO), or NULL. */
static const char *rep_hdr_check(const struct op_desc *d,
				 const struct orfa_hdr *h)
{
	if (!(h->flags & ORFA_F_REPLY))
		return "reply flag missing on a reply";
	if (h->flags & ORFA_F_NOREPLY)
		return "no-reply flag on a reply";
	if (d->no_reply)
		return "reply to a request that is never answered";
	if (h->status > ORFA_MAX_STATUS)
		return "status is not an errno value";
	return NULL;
}

/*
 * First step of both body decoders: clears *why and what the decoders fill
 * in m, then refuses an unknown opcode (-ENOSYS), unknown flag bits
 * (-EBADMSG) and header fields a request (reply false) or a reply may not
 * carry (-EPROTO).  Returns the opcode's table row, or NULL with *err and
 * *why set.
 */
static const struct op_desc *decode_begin(struct orfa_msg *m, bool reply,
					  const char **why, int *err)
{
	const struct op_desc *d = op_get(m->hdr.opcode);
	const char *bad;

	*why = NULL;
	memset(&m->cred, 0, sizeof(m->cred));
	memset(&m->a, 0, sizeof(m->a));
	m->name = m->name2 = NULL;
	m->namelen = m->name2len = 0;
	m->data_len = m->hdr.data_len;

	if (!d)
		*err = refuse(why, "unknown opcode", -ENOSYS);
	else if (m->hdr.flags & ~(ORFA_F_REPLY | ORFA_F_NOREPLY))
		*err = refuse(why, "unknown flag bits in header", -EBADMSG);
	else if ((bad = reply ? rep_hdr_check(d, &m->hdr)
			      : req_hdr_check(d, &m->hdr)))
		*err = refuse(why, bad, -EPROTO);
	else
		return d;
	return NULL;
}

/* ---- request decoding ---------------------------------------------------- */

/*
 * Takes the names that follow the arguments into np/len.  Lengths come from
 * the (possibly zeroed, if overrun) arguments; limits are checked before
 * the bytes are taken.  After an overrun np[i] is NULL and c->over is set
 * for the caller's one overrun check.  Returns 0, or -EPROTO with *why set.
 */
static int req_names_take(struct rcur *c, const struct op_desc *d,
			  const union orfa_args *a, const uint8_t *np[2],
			  uint32_t len[2], const char **why)
{
	for (int i = 0; i < 2; i++) {
		uint8_t kind = d->names[i].kind;

		if (kind == NK_NONE)
			continue;
		len[i] = args_u32(a, d->names[i].len_off);
		if (len[i] > name_max(kind))
			return refuse(why, name_len_check(kind, len[i]),
				      -EPROTO);
		np[i] = rcur_take(c, (size_t)len[i] + 1,
				  i ? "second name truncated" :
				      "name truncated");
	}
	return 0;
}

/* Content rules of names taken in full: the reason (EPROTO), or NULL. */
static const char *req_names_check(const struct op_desc *d,
				   const uint8_t *const np[2],
				   const uint32_t len[2])
{
	for (int i = 0; i < 2; i++) {
		uint8_t kind = d->names[i].kind;
		const char *err;

		if (kind == NK_NONE)
			continue;
		if (np[i][len[i]] != '\0')
			return "name not NUL-terminated";
		err = name_len_check(kind, len[i]);
		if (!err)
			err = name_body_check(kind, (const char *)np[i],
					      len[i]);
		if (err)
			return err;
	}
	return NULL;
}

/* Data segment rules of a request: the reason (EPROTO), or NULL. */
static const char *req_data_check(uint8_t rule, const struct orfa_msg *m)
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
	struct rcur c = { .p = body, .len = m->hdr.body_len };
	const uint8_t *np[2] = { NULL, NULL };
	uint32_t len[2] = { 0, 0 };
	const struct op_desc *d;
	const char *dummy, *err;
	bool pads_ok = true;
	int ret;

	if (!why)
		why = &dummy;
	d = decode_begin(m, false, why, &ret);
	if (!d)
		return ret;

	if (d->cred) {
		ret = cred_decode(&c, &m->cred, &pads_ok, why);
		if (ret)
			return ret;
	}
	if (d->req && !layout_decode(&c, d->req, &m->a, d->trunc_req))
		pads_ok = false;
	ret = req_names_take(&c, d, &m->a, np, len, why);
	if (ret)
		return ret;

	/* The one overrun check of the message. */
	if (c.over)
		return refuse(why, c.why, -EBADMSG);
	if (!pads_ok)
		return refuse(why, "non-zero padding", -EPROTO);
	err = req_names_check(d, np, len);
	if (!err && c.pos != c.len)
		err = "trailing bytes after body";
	if (!err)
		err = req_data_check(d->req_data, m);
	if (err)
		return refuse(why, err, -EPROTO);

	m->name = (const char *)np[0];
	m->namelen = len[0];
	m->name2 = (const char *)np[1];
	m->name2len = len[1];
	return 0;
}

/* ---- replies: encoding and decoding -------------------------------------- */

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

/* Data segment rules of a reply: the reason (EPROTO), or NULL. */
static const char *rep_data_check(const struct op_desc *d,
				  const struct orfa_hdr *h)
{
	if (!h->data_len)
		return NULL;
	if (h->status && d->rep_data != DATA_REASON)
		return "error reply with a data segment";
	if (!h->status && (d->rep_data == DATA_NONE ||
			   d->rep_data == DATA_REASON))
		return "unexpected data segment";
	if (h->status && h->data_len > ORFA_HELLO_MAX_DATA)
		return "refusal reason above ORFA_HELLO_MAX_DATA";
	return NULL;
}

int orfa_rep_decode(struct orfa_msg *m, uint8_t *body, const char **why)
{
	struct rcur c = { .p = body, .len = m->hdr.body_len };
	const struct op_desc *d;
	const char *dummy, *err;
	bool pads_ok = true;
	int ret;

	if (!why)
		why = &dummy;
	d = decode_begin(m, true, why, &ret);
	if (!d)
		return ret;

	if (!rep_has_body(d, &m->hdr)) {
		if (m->hdr.body_len)
			return refuse(why, m->hdr.status ?
				      "error reply with a body" :
				      "trailing bytes after body", -EPROTO);
	} else if (!layout_decode(&c, d->rep, &m->a, d->trunc_rep)) {
		pads_ok = false;
	}
	if (c.over)
		return refuse(why, c.why, -EBADMSG);
	if (!pads_ok)
		return refuse(why, "non-zero padding", -EPROTO);
	if (c.pos != c.len)
		err = "trailing bytes after body";
	else if (m->hdr.opcode == ORFA_OP_HELLO &&
		 m->a.hello_rep.magic != ORFA_MAGIC)
		err = "bad magic in HELLO reply";
	else
		err = rep_data_check(d, &m->hdr);
	return err ? refuse(why, err, -EPROTO) : 0;
}

/* ---- directory records --------------------------------------------------- */

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
		layout_encode(&c, orfa_codec_entry_layout, &a);
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
		layout_decode(&c, orfa_codec_entry_layout, &a, "dirent truncated");
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

/* ---- FORGET records ------------------------------------------------------ */

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
