/*
 * hello.c - the handshake of orfad: HELLO (version, limits, features,
 * which export, whether the peer may mount it) and, when the server has a
 * key, AUTH (the client proves it holds the key, then the server does).
 * See PROTOCOL.md sections 5 and 6.
 *
 * Both run on the connection's receiving thread, before any other request
 * of the connection can run, and answer themselves.  A refusal answers
 * with a status and a reason text in the data segment, logs the reason
 * with the peer, and closes the connection once the reply is sent
 * (conn->close_after_flush).  Not here: what a session may do once it is
 * set up (access.c), the cryptography (common/auth.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "auth.h"
#include "log.h"
#include "server_impl.h"

_Static_assert(ORFA_NONCE_SIZE == ORFA_AUTH_NONCE_SIZE, "nonce sizes");
_Static_assert(ORFA_PROOF_SIZE == ORFA_AUTH_MAC_SIZE, "proof sizes");

/* A refusal reason the transport may keep after the send returns. */
struct reason_blk {
	struct iovec iov;
	char text[];
};

/* Answer r with rep and reason as data segment (best effort: without
 * memory, the status alone). */
static void reply_reason(struct sreq *r, struct orfa_msg *rep,
			 const char *reason)
{
	size_t len = strlen(reason);
	struct reason_blk *b;
	struct orfa_txmsg tx = { .fd = -1 };

	if (len > ORFA_HELLO_MAX_DATA)
		len = ORFA_HELLO_MAX_DATA;
	b = len ? malloc(sizeof(*b) + len) : NULL;
	if (!b) {
		sreq_reply(r, rep, NULL);
		return;
	}
	memcpy(b->text, reason, len);
	b->iov.iov_base = b->text;
	b->iov.iov_len = len;
	tx.iov = &b->iov;
	tx.iovcnt = 1;
	tx.done = free;
	tx.done_arg = b;
	sreq_reply(r, rep, &tx);
}

/* Refuse a HELLO: status err, our version in the body, reason as data. */
static void hello_refuse(struct sreq *r, int err, const char *reason)
{
	struct sconn *c = r->conn;
	struct orfa_msg rep;

	log_warn("%s: HELLO refused: %s", c->peer, reason);
	memset(&rep, 0, sizeof(rep));
	rep.hdr.status = (uint32_t)err;
	rep.a.hello_rep.magic = ORFA_MAGIC;
	rep.a.hello_rep.version = ORFA_PROTO_VERSION;
	rep.a.hello_rep.max_data = c->srv->cfg.max_data;
	rep.a.hello_rep.features = ORFA_FEAT_ALL;
	rep.a.hello_rep.flags = c->srv->cfg.key ? ORFA_HELLO_AUTH : 0;
	reply_reason(r, &rep, reason);
	c->close_after_flush = 1;
}

static void auth_refuse(struct sreq *r, int err, const char *reason)
{
	struct sconn *c = r->conn;
	struct orfa_msg rep;

	log_warn("%s: AUTH refused: %s", c->peer, reason);
	memset(&rep, 0, sizeof(rep));
	rep.hdr.status = (uint32_t)err;
	reply_reason(r, &rep, reason);
	c->close_after_flush = 1;
}

/* The session is set up: from now on the negotiated limits hold. */
static void session_open(struct sconn *c)
{
	c->hello_done = 1;
	c->auth_wait = 0;
	orfa_conn_set_limits(c->tc, ORFA_MAX_BODY, c->max_data);
}

void dispatch_hello(struct sreq *r)
{
	struct sconn *c = r->conn;
	struct orfa_server *srv = c->srv;
	const uint8_t *body = r->head + ORFA_HDR_SIZE;
	const struct orfa_hello_req *a = &r->m.a.hello;
	char reason[512], host[80];
	const char *why = NULL, *path, *subdir = "";
	struct orfa_msg rep;
	struct orfa_entry root;
	struct sexport *x;
	uint32_t magic, version;
	int ret;

	/* Magic and version first, before the rest of a body whose layout
	 * may belong to another version. */
	if (r->m.hdr.body_len < 8) {
		hello_refuse(r, EPROTO, "HELLO body too short");
		return;
	}
	magic = orfa_get_le32(body);
	version = orfa_get_le32(body + 4);
	if (magic != ORFA_MAGIC) {
		snprintf(reason, sizeof(reason),
			 "bad magic 0x%08x in HELLO (expected 0x%08x)", magic,
			 ORFA_MAGIC);
		hello_refuse(r, EPROTONOSUPPORT, reason);
		return;
	}
	if (version != ORFA_PROTO_VERSION) {
		snprintf(reason, sizeof(reason),
			 "client speaks protocol version %u, server speaks "
			 "version %u", version, ORFA_PROTO_VERSION);
		hello_refuse(r, EPROTONOSUPPORT, reason);
		return;
	}
	ret = orfa_req_decode(&r->m, r->head + ORFA_HDR_SIZE, &why);
	if (ret) {
		snprintf(reason, sizeof(reason), "malformed HELLO: %s",
			 why ? why : strerror(-ret));
		hello_refuse(r, EPROTO, reason);
		return;
	}
	if (a->max_data == 0) {
		hello_refuse(r, EINVAL, "HELLO offers max_data 0");
		return;
	}
	if (a->flags & ~ORFA_HELLO_FLAGS_ALL) {
		snprintf(reason, sizeof(reason), "unknown HELLO flags %#x",
			 a->flags & ~ORFA_HELLO_FLAGS_ALL);
		hello_refuse(r, EINVAL, reason);
		return;
	}

	/* Which export, and may this peer mount it? */
	path = r->m.name ? r->m.name : "";
	x = access_find(srv->exports, srv->sx, path, &subdir);
	if (!x) {
		snprintf(reason, sizeof(reason), "no export %s on this server",
			 *path ? path : "/");
		hello_refuse(r, ENOENT, reason);
		return;
	}
	if (!access_peer_allowed(c, x, host, sizeof(host))) {
		snprintf(reason, sizeof(reason),
			 "client %s is not allowed to mount %s", host,
			 *path ? path : "/");
		hello_refuse(r, EACCES, reason);
		return;
	}
	c->ex = x;
	c->max_data = a->max_data < srv->cfg.max_data ?
		      (uint32_t)a->max_data : srv->cfg.max_data;
	c->features = a->features & ORFA_FEAT_ALL;

	memset(&rep, 0, sizeof(rep));
	rep.a.hello_rep.magic = ORFA_MAGIC;
	rep.a.hello_rep.version = ORFA_PROTO_VERSION;
	rep.a.hello_rep.max_data = c->max_data;
	rep.a.hello_rep.features = c->features;

	if (srv->cfg.key) {
		/* The subdirectory is resolved only once the client proved
		 * it holds the key: nothing about the export shows before. */
		if (!(a->flags & ORFA_HELLO_AUTH)) {
			snprintf(reason, sizeof(reason),
				 "the server requires authentication: mount "
				 "%s with a key (-o key=FILE)",
				 *path ? path : "/");
			hello_refuse(r, EACCES, reason);
			return;
		}
		c->export_path = strdup(path);
		if (!c->export_path) {
			hello_refuse(r, ENOMEM, "out of memory");
			return;
		}
		memcpy(c->cnonce, a->nonce, ORFA_NONCE_SIZE);
		orfa_auth_nonce(c->snonce);
		memcpy(rep.a.hello_rep.nonce, c->snonce, ORFA_NONCE_SIZE);
		rep.a.hello_rep.flags = ORFA_HELLO_AUTH;
		c->hello_done = 1;
		c->auth_wait = 1;
		log_info("%s: HELLO: export %s, waiting for AUTH", c->peer,
			 *path ? path : "/");
		sreq_reply(r, &rep, NULL);
		return;
	}

	reason[0] = '\0';
	ret = access_session_start(c, *path ? path : "/", subdir, &root,
				   reason, sizeof(reason));
	if (ret) {
		hello_refuse(r, -ret, reason);
		return;
	}
	session_open(c);
	rep.a.hello_rep.root_nodeid = root.nodeid;
	rep.a.hello_rep.root_generation = root.generation;
	rep.a.hello_rep.root_attr = root.attr;
	log_info("%s: HELLO: export %s, root node %llu, max_data %u, "
		 "features %#llx", c->peer, *path ? path : "/",
		 (unsigned long long)root.nodeid, c->max_data,
		 (unsigned long long)c->features);
	sreq_reply(r, &rep, NULL);
}

void dispatch_auth(struct sreq *r)
{
	struct sconn *c = r->conn;
	const struct orfa_key *key = c->srv->cfg.key;
	const char *why = NULL, *subdir = "", *path = c->export_path;
	char reason[512];
	struct orfa_entry root;
	struct orfa_msg rep;
	int ret;

	ret = orfa_req_decode(&r->m, r->head + ORFA_HDR_SIZE, &why);
	if (ret) {
		snprintf(reason, sizeof(reason), "malformed AUTH: %s",
			 why ? why : strerror(-ret));
		auth_refuse(r, EPROTO, reason);
		return;
	}
	if (orfa_auth_verify(key, ORFA_AUTH_CLIENT, c->cnonce, c->snonce,
			     path, r->m.a.auth.proof) != 0) {
		snprintf(reason, sizeof(reason),
			 "authentication failed for export %s: the client's "
			 "key does not match the server's",
			 *path ? path : "/");
		auth_refuse(r, EACCES, reason);
		return;
	}
	/* orfa_exports_find again: the same path, the same export. */
	access_find(c->srv->exports, c->srv->sx, path, &subdir);
	reason[0] = '\0';
	ret = access_session_start(c, *path ? path : "/", subdir, &root,
				   reason, sizeof(reason));
	if (ret) {
		auth_refuse(r, -ret, reason);
		return;
	}
	session_open(c);
	memset(&rep, 0, sizeof(rep));
	orfa_auth_proof(key, ORFA_AUTH_SERVER, c->cnonce, c->snonce, path,
			rep.a.auth_rep.proof);
	rep.a.auth_rep.root_nodeid = root.nodeid;
	rep.a.auth_rep.root_generation = root.generation;
	rep.a.auth_rep.root_attr = root.attr;
	log_info("%s: AUTH: client authenticated, export %s, root node %llu, "
		 "max_data %u, features %#llx", c->peer, *path ? path : "/",
		 (unsigned long long)root.nodeid, c->max_data,
		 (unsigned long long)c->features);
	sreq_reply(r, &rep, NULL);
}
