/*
 * ops_xattr.c - FUSE extended attribute operations: SETXATTR, GETXATTR,
 * LISTXATTR, REMOVEXATTR.  Size-0 queries ask the server for the size
 * only; a value that does not fit the caller's buffer is ERANGE (from the
 * server, or here if it sent more than asked).
 *
 * The kernel reads "security.capability" before every write(2) (to drop
 * file capabilities on write).  Its absence is cached per node for the
 * attribute timeout, like an attribute, so small writes cost one round
 * trip, not two.
 */
#include "clock.h"
#include "ops.h"
#include "stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CAPS_XATTR "security.capability"

/* A change of the capability xattr through this client. */
static void caps_changed(struct orfa_mount *m, fuse_ino_t ino,
			 const char *name)
{
	if (strcmp(name, CAPS_XATTR) == 0)
		nodes_set_nocaps(m->nodes, orfa_ino_to_node(m, ino), 0);
}

/* Without the feature, ENOSYS: the kernel then stops asking.  The
 * virtual stats attribute of the root is read-only: EPERM. */
static bool xattr_ok(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	if (ino == FUSE_ROOT_ID && name && strcmp(name, ORFA_STATS_XATTR) == 0) {
		fuse_reply_err(req, EPERM);
		return false;
	}
	if (!(req_mount(req)->features & ORFA_FEAT_XATTR)) {
		fuse_reply_err(req, ENOSYS);
		return false;
	}
	if (name && strlen(name) > ORFA_MAX_XATTR_NAME) {
		fuse_reply_err(req, ERANGE);
		return false;
	}
	return true;
}

void orfa_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		      const char *value, size_t size, int flags)
{
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;
	struct iovec iov = { .iov_base = (void *)value, .iov_len = size };

	if (!xattr_ok(req, ino, name))
		return;
	if (size > ORFA_MAX_XATTR_VALUE) {
		fuse_reply_err(req, E2BIG);
		return;
	}
	caps_changed(req_mount(req), ino, name);
	if (!(call = op_call(req, ORFA_OP_SETXATTR, 0, &ctx)))
		return;
	msg = orfa_call_msg(call);
	msg->a.setxattr.nodeid = orfa_ino_to_node(ctx->m, ino);
	msg->a.setxattr.flags = (uint32_t)flags;
	msg->name = name;
	msg->namelen = (uint32_t)strlen(name);
	orfa_call_send(call, &iov, size ? 1 : 0, 0, op_done_err, NULL);
}

/* GETXATTR, LISTXATTR: size 0 asks for the size only. */
static void done_xattr(struct orfa_call *call, int err,
		       const struct orfa_msg *rep)
{
	struct op_ctx *ctx = orfa_call_ctx(call);

	if (ctx->caps && (err == -ENODATA || err == -EOPNOTSUPP))
		nodes_set_nocaps(ctx->m->nodes, ctx->node, orfa_now_ns() +
				 (int64_t)(ctx->m->attr_timeout * 1e9));
	if (err) {
		fuse_reply_err(ctx->req, -err);
	} else if (ctx->size == 0) {
		fuse_reply_xattr(ctx->req, (size_t)rep->a.xattr_rep.size);
	} else if (rep->data_len > ctx->size) {
		fuse_reply_err(ctx->req, ERANGE);
	} else {
		fuse_reply_buf(ctx->req, rep->data, rep->data_len);
	}
}

/* The virtual ORFA_STATS_XATTR of the root (stats.h): answered here. */
static void get_stats(fuse_req_t req, size_t size)
{
	char *buf = malloc(ORFA_STATS_MAX);
	size_t n;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = stats_format(buf, ORFA_STATS_MAX);
	if (size == 0)
		fuse_reply_xattr(req, n);
	else if (n > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, n);
	free(buf);
}

static void get_xattr(fuse_req_t req, unsigned opcode, fuse_ino_t ino,
		      const char *name, size_t size)
{
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;

	struct orfa_mount *m = req_mount(req);
	bool caps = name && strcmp(name, CAPS_XATTR) == 0;

	if (ino == FUSE_ROOT_ID && name && strcmp(name, ORFA_STATS_XATTR) == 0) {
		get_stats(req, size);
		return;
	}
	if (!xattr_ok(req, ino, name))
		return;
	if (caps && nodes_nocaps(m->nodes, orfa_ino_to_node(m, ino),
				 orfa_now_ns())) {
		stats_caps(1);
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (caps)
		stats_caps(0);
	if (size > ORFA_MAX_XATTR_VALUE)
		size = ORFA_MAX_XATTR_VALUE;
	if (!(call = op_call(req, opcode, size, &ctx)))
		return;
	ctx->size = (uint32_t)size;
	ctx->caps = caps;
	ctx->node = orfa_ino_to_node(m, ino);
	msg = orfa_call_msg(call);
	msg->a.getxattr.nodeid = orfa_ino_to_node(ctx->m, ino);
	msg->a.getxattr.size = (uint32_t)size;
	if (name) {
		msg->name = name;
		msg->namelen = (uint32_t)strlen(name);
	}
	orfa_call_send(call, NULL, 0, 0, done_xattr, NULL);
}

void orfa_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		      size_t size)
{
	get_xattr(req, ORFA_OP_GETXATTR, ino, name, size);
}

void orfa_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	get_xattr(req, ORFA_OP_LISTXATTR, ino, NULL, size);
}

void orfa_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct orfa_call *call;
	struct orfa_msg *msg;
	struct op_ctx *ctx;

	if (!xattr_ok(req, ino, name))
		return;
	caps_changed(req_mount(req), ino, name);
	if (!(call = op_call(req, ORFA_OP_REMOVEXATTR, 0, &ctx)))
		return;
	msg = orfa_call_msg(call);
	msg->a.removexattr.nodeid = orfa_ino_to_node(ctx->m, ino);
	msg->name = name;
	msg->namelen = (uint32_t)strlen(name);
	orfa_call_send(call, NULL, 0, 0, op_done_err, NULL);
}

