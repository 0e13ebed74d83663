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
 * (sreq_close_after_reply).  Before AUTH, no refusal tells one export
 * from another (hello_refuse_export); after a good AUTH, the connection
 * is sealed with the session keys (PROTOCOL.md section 6.1).  They see
 * the connection through the request API only (request.h).  Not here:
 * what a session may do once it is set up (access.c), the cryptography
 * (common/auth.c, common/seal.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "auth.h"
#include "dispatch.h"
#include "log.h"
#include "request.h"
#include "seal.h"
#include "server.h"

_Static_assert(ORFA_NONCE_SIZE == ORFA_AUTH_NONCE_SIZE, "nonce sizes");
_Static_assert(ORFA_PROOF_SIZE == ORFA_AUTH_MAC_SIZE, "proof sizes");

/* Answer r with rep and reason as data segment (best effort: without
 * memory, the status alone). */
static void reply_reason(struct sreq *r, struct orfa_msg *rep,
			 const char *reason)
{
	size_t len = strlen(reason);
	struct sreq_buf *b;

	if (len > ORFA_HELLO_MAX_DATA)
		len = ORFA_HELLO_MAX_DATA;
	b = len ? sreq_buf_new(len) : NULL;
	if (!b) {
		sreq_reply(r, rep, NULL);
		return;
	}
	memcpy(b->data, reason, len);
	sreq_reply_buf(r, rep, b, len);
}

/* The one text of hello_refuse_export. */
#define HELLO_REFUSAL "export not available to this client: it does not " \
	"exist, this address may not mount it, or it requires a key " \
	"(-o key=FILE)"

/* Refuse a HELLO: status err, our version in the body, reason as data;
 * the caller logs. */
static void hello_refuse_quiet(struct sreq *r, int err, const char *reason)
{
	const struct orfa_server_cfg *cfg = sreq_server_cfg(r);
	struct orfa_msg rep;

	memset(&rep, 0, sizeof(rep));
	rep.hdr.status = (uint32_t)err;
	rep.a.hello_rep.magic = ORFA_MAGIC;
	rep.a.hello_rep.version = ORFA_PROTO_VERSION;
	rep.a.hello_rep.max_data = cfg->max_data;
	rep.a.hello_rep.features = ORFA_FEAT_ALL;
	rep.a.hello_rep.flags = cfg->key ? ORFA_HELLO_AUTH : 0;
	reply_reason(r, &rep, reason);
	sreq_close_after_reply(r);
}

static void hello_refuse(struct sreq *r, int err, const char *reason)
{
	log_warn("%s: HELLO refused: %s", sreq_session(r)->peer, reason);
	hello_refuse_quiet(r, err, reason);
}

/*
 * Refuse a HELLO for anything about the export it names (issue 12 item
 * 4): the export does not exist, this client may not mount it, it needs
 * a key.  Every such refusal before AUTH is the same status and the same
 * text, whatever the export, so the answer tells no export name from
 * another; the real reason goes to the log only.  Also for the other
 * checks of HELLO (declared in dispatch.h).
 */
void hello_refuse_export(struct sreq *r, const char *logwhy)
{
	log_warn("%s: HELLO refused: %s", sreq_session(r)->peer, logwhy);
	hello_refuse_quiet(r, EACCES, HELLO_REFUSAL);
}

static void auth_refuse(struct sreq *r, int err, const char *reason)
{
	struct orfa_msg rep;

	log_warn("%s: AUTH refused: %s", sreq_session(r)->peer, reason);
	memset(&rep, 0, sizeof(rep));
	rep.hdr.status = (uint32_t)err;
	reply_reason(r, &rep, reason);
	sreq_close_after_reply(r);
}

/* The path as messages show it. */
static const char *path_shown(const char *path)
{
	return *path ? path : "/";
}

/*
 * Check what a HELLO says about itself: magic and version first, before
 * the rest of a body whose layout may belong to another version, then
 * the decoded arguments.  0, or the status to refuse with and a reason.
 */
static int hello_check(struct sreq *r, char *reason, size_t rsz)
{
	uint8_t *body = r->head + ORFA_HDR_SIZE;
	const struct orfa_hello_req *a = &r->m.a.hello;
	const char *why = NULL;
	uint32_t magic, version;
	int ret;

	if (r->m.hdr.body_len < 8) {
		snprintf(reason, rsz, "HELLO body too short");
		return EPROTO;
	}
	magic = orfa_get_le32(body);
	version = orfa_get_le32(body + 4);
	if (magic != ORFA_MAGIC) {
		snprintf(reason, rsz,
			 "bad magic 0x%08x in HELLO (expected 0x%08x)", magic,
			 ORFA_MAGIC);
		return EPROTONOSUPPORT;
	}
	if (version != ORFA_PROTO_VERSION) {
		snprintf(reason, rsz,
			 "client speaks protocol version %u, server speaks "
			 "version %u", version, ORFA_PROTO_VERSION);
		return EPROTONOSUPPORT;
	}
	ret = orfa_req_decode(&r->m, body, &why);
	if (ret) {
		snprintf(reason, rsz, "malformed HELLO: %s",
			 why ? why : strerror(-ret));
		return EPROTO;
	}
	if (a->max_data == 0) {
		snprintf(reason, rsz, "HELLO offers max_data 0");
		return EINVAL;
	}
	if (a->flags & ~ORFA_HELLO_FLAGS_ALL) {
		snprintf(reason, rsz, "unknown HELLO flags %#x",
			 a->flags & ~ORFA_HELLO_FLAGS_ALL);
		return EINVAL;
	}
	return 0;
}

/* Which export does the HELLO ask for, and may this peer mount it?  The
 * export in *x and the subdirectory in *subdir; 0, or the status to refuse
 * with and a reason. */
static int hello_export(struct sreq *r, const char *path,
			struct sexport **x, const char **subdir, char *reason,
			size_t rsz)
{
	char host[80];

	*x = sreq_find_export(r, path, subdir);
	if (!*x) {
		snprintf(reason, rsz, "no export %s on this server",
			 path_shown(path));
		return ENOENT;
	}
	if (!access_peer_allowed(r, *x, host, sizeof(host))) {
		snprintf(reason, rsz, "client %s is not allowed to mount %s",
			 host, path_shown(path));
		return EACCES;
	}
	return 0;
}

/*
 * Start the session on the export HELLO bound (subdirectory subdir of
 * path) and open it; what starts the log line.  0 and *root, or the status
 * to refuse with (a positive errno) and a reason.
 */
static int session_begin(struct sreq *r, const char *path,
			 const char *subdir, const char *what,
			 struct orfa_entry *root, char *reason, size_t rsz)
{
	struct ssession *s = sreq_session(r);
	int ret;

	reason[0] = '\0';
	ret = access_session_start(s, path_shown(path), subdir, root, reason,
				   rsz);
	if (ret)
		return -ret;
	sreq_session_open(r);
	log_info("%s: %s export %s, root node %llu, max_data %u, "
		 "features %#llx", s->peer, what, path_shown(path),
		 (unsigned long long)root->nodeid, s->max_data,
		 (unsigned long long)s->features);
	return 0;
}

/*
 * The server has a key: keep what the AUTH proof needs and answer with
 * our nonce.  The export is looked up only once the client proved it
 * holds the key: nothing about it shows before, not even whether it
 * exists (issue 12 item 4).
 */
static void hello_ask_auth(struct sreq *r, const char *path,
			   struct orfa_msg *rep)
{
	struct ssession *s = sreq_session(r);
	char why[512];

	if (!(r->m.a.hello.flags & ORFA_HELLO_AUTH)) {
		snprintf(why, sizeof(why), "the server requires "
			 "authentication, the client has no key (export %s)",
			 path_shown(path));
		hello_refuse_export(r, why);
		return;
	}
	s->export_path = strdup(path);
	if (!s->export_path) {
		hello_refuse(r, ENOMEM, "out of memory");
		return;
	}
	memcpy(s->cnonce, r->m.a.hello.nonce, ORFA_NONCE_SIZE);
	orfa_auth_nonce(s->snonce);
	memcpy(rep->a.hello_rep.nonce, s->snonce, ORFA_NONCE_SIZE);
	rep->a.hello_rep.flags = ORFA_HELLO_AUTH;
	/* Integrity only when the client asks and the administrator allows
	 * it; otherwise frames are encrypted (the client accepts that). */
	s->integrity_only = (r->m.a.hello.flags & ORFA_HELLO_INTEGRITY) &&
			    sreq_server_cfg(r)->allow_integrity_only;
	if (s->integrity_only)
		rep->a.hello_rep.flags |= ORFA_HELLO_INTEGRITY;
	sreq_hello_wait_auth(r);
	log_info("%s: HELLO: export %s, waiting for AUTH (then %s)", s->peer,
		 path_shown(path), s->integrity_only ?
		 "integrity only, frames not encrypted" : "encrypted frames");
	sreq_reply(r, rep, NULL);
}

void hello_handle(struct sreq *r)
{
	const struct orfa_server_cfg *cfg = sreq_server_cfg(r);
	const struct orfa_hello_req *a = &r->m.a.hello;
	struct ssession *s = sreq_session(r);
	const char *path = "", *subdir = "";
	char reason[512];
	struct orfa_entry root;
	struct orfa_msg rep;
	struct sexport *x = NULL;
	int err;

	err = hello_check(r, reason, sizeof(reason));
	if (err) {
		hello_refuse(r, err, reason);
		return;
	}
	path = r->m.name ? r->m.name : "";
	s->max_data = a->max_data < cfg->max_data ?
		      (uint32_t)a->max_data : cfg->max_data;
	s->features = a->features & ORFA_FEAT_ALL;

	memset(&rep, 0, sizeof(rep));
	rep.a.hello_rep.magic = ORFA_MAGIC;
	rep.a.hello_rep.version = ORFA_PROTO_VERSION;
	rep.a.hello_rep.max_data = s->max_data;
	rep.a.hello_rep.features = s->features;
	if (cfg->key) {
		hello_ask_auth(r, path, &rep);
		return;
	}
	if (hello_export(r, path, &x, &subdir, reason, sizeof(reason))) {
		hello_refuse_export(r, reason);
		return;
	}
	s->ex = x;
	err = session_begin(r, path, subdir, "HELLO:", &root, reason,
			    sizeof(reason));
	if (err) {
		hello_refuse(r, err, reason);
		return;
	}
	rep.a.hello_rep.root_nodeid = root.nodeid;
	rep.a.hello_rep.root_generation = root.generation;
	rep.a.hello_rep.root_attr = root.attr;
	sreq_reply(r, &rep, NULL);
}

/* After a good AUTH reply: seal the connection with the session keys. */
static void auth_seal(struct sreq *r, const struct orfa_key *key)
{
	struct ssession *s = sreq_session(r);
	struct orfa_seal_keys keys;

	orfa_auth_session_keys(key, ORFA_AUTH_SERVER, s->cnonce, s->snonce,
			       s->export_path, s->integrity_only, &keys);
	if (sreq_seal(r, &keys) != 0)
		log_err("%s: cannot protect the connection: out of memory",
			s->peer);
	orfa_seal_keys_wipe(&keys);
}

void auth_handle(struct sreq *r)
{
	const struct orfa_key *key = sreq_server_cfg(r)->key;
	struct ssession *s = sreq_session(r);
	const char *why = NULL, *subdir = "", *path = s->export_path;
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
	if (orfa_auth_verify(key, ORFA_AUTH_CLIENT, s->cnonce, s->snonce,
			     path, r->m.a.auth.proof) != 0) {
		snprintf(reason, sizeof(reason),
			 "authentication failed for export %s: the client's "
			 "key does not match the server's", path_shown(path));
		auth_refuse(r, EACCES, reason);
		return;
	}
	/* Authenticated: now the export may be named. */
	ret = hello_export(r, path, &s->ex, &subdir, reason, sizeof(reason));
	if (ret == 0)
		ret = session_begin(r, path, subdir,
				    "AUTH: client authenticated,", &root,
				    reason, sizeof(reason));
	if (ret) {
		auth_refuse(r, ret, reason);
		return;
	}
	memset(&rep, 0, sizeof(rep));
	orfa_auth_proof(key, ORFA_AUTH_SERVER, s->cnonce, s->snonce, path,
			rep.a.auth_rep.proof);
	rep.a.auth_rep.root_nodeid = root.nodeid;
	rep.a.auth_rep.root_generation = root.generation;
	rep.a.auth_rep.root_attr = root.attr;
	sreq_reply(r, &rep, NULL);
	auth_seal(r, key);
}
