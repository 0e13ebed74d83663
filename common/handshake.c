/*
 * handshake.c - the client's half of the ORFA handshake (handshake.h):
 * message contents and decisions only; the caller moves the bytes.
 */
#include "handshake.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

_Static_assert(ORFA_NONCE_SIZE == ORFA_AUTH_NONCE_SIZE, "nonce sizes");
_Static_assert(ORFA_PROOF_SIZE == ORFA_AUTH_MAC_SIZE, "proof sizes");

static const char *shown(const char *path)
{
	return path && *path ? path : "/";
}

void orfa_handshake_init(struct orfa_handshake *hs,
			 const struct orfa_key *key, const char *export_path)
{
	memset(hs, 0, sizeof(*hs));
	hs->key = key;
	hs->export_path = export_path ? export_path : "";
}

int orfa_handshake_hello(struct orfa_handshake *hs, struct orfa_msg *m,
			 uint64_t req_id, uint64_t max_data,
			 uint64_t features)
{
	size_t len = strlen(hs->export_path);

	if (len > ORFA_MAX_EXPORT)
		return -EINVAL;
	orfa_msg_init(m, ORFA_OP_HELLO, req_id);
	m->a.hello.magic = ORFA_MAGIC;
	m->a.hello.version = ORFA_PROTO_VERSION;
	m->a.hello.max_data = max_data;
	m->a.hello.features = features;
	m->name = hs->export_path;
	m->namelen = (uint32_t)len;
	if (hs->key) {
		orfa_auth_nonce(hs->cnonce);
		memcpy(m->a.hello.nonce, hs->cnonce, ORFA_NONCE_SIZE);
		m->a.hello.flags = ORFA_HELLO_AUTH |
			(hs->want_integrity_only ? ORFA_HELLO_INTEGRITY : 0);
	}
	hs->stage = 1;
	return 0;
}

int orfa_handshake_hello_reply(struct orfa_handshake *hs,
			       const struct orfa_msg *rep, char *err,
			       size_t errsz)
{
	const struct orfa_hello_rep *h = &rep->a.hello_rep;
	int server_auth = !!(h->flags & ORFA_HELLO_AUTH);

	if (hs->stage != 1 || rep->hdr.status) {
		snprintf(err, errsz, "HELLO reply out of sequence");
		return -EINVAL;
	}
	if (server_auth && !hs->key) {
		snprintf(err, errsz, "the server requires authentication: "
			 "mount with a key (-o key=FILE)");
		return -EACCES;
	}
	if (!server_auth && hs->key) {
		/* It could be anyone: only a server that holds the key can
		 * prove it, and this one does not even ask. */
		snprintf(err, errsz, "the server does not authenticate (it "
			 "has no key): refusing to use it with a key");
		return -EACCES;
	}
	if (!server_auth) {
		hs->stage = 4;
		return 0;
	}
	if (h->root_nodeid != ORFA_ROOT_ID_NONE) {
		snprintf(err, errsz, "HELLO reply asks for AUTH but already "
			 "gives a root node");
		return -EPROTO;
	}
	if ((h->flags & ORFA_HELLO_INTEGRITY) && !hs->want_integrity_only) {
		snprintf(err, errsz, "the server grants integrity-only "
			 "protection, which we did not ask for");
		return -EPROTO;
	}
	hs->integrity_only = !!(h->flags & ORFA_HELLO_INTEGRITY);
	memcpy(hs->snonce, h->nonce, ORFA_NONCE_SIZE);
	hs->stage = 2;
	return 1;
}

int orfa_handshake_auth(struct orfa_handshake *hs, struct orfa_msg *m,
			uint64_t req_id)
{
	if (hs->stage != 2 || !hs->key)
		return -EINVAL;
	orfa_msg_init(m, ORFA_OP_AUTH, req_id);
	orfa_auth_proof(hs->key, ORFA_AUTH_CLIENT, hs->cnonce, hs->snonce,
			hs->export_path, m->a.auth.proof);
	hs->stage = 3;
	return 0;
}

int orfa_handshake_auth_reply(struct orfa_handshake *hs,
			      const struct orfa_msg *rep,
			      struct orfa_hello_rep *hello, char *err,
			      size_t errsz)
{
	const struct orfa_auth_rep *a = &rep->a.auth_rep;

	if (hs->stage != 3 || rep->hdr.status) {
		snprintf(err, errsz, "AUTH reply out of sequence");
		return -EINVAL;
	}
	if (orfa_auth_verify(hs->key, ORFA_AUTH_SERVER, hs->cnonce,
			     hs->snonce, hs->export_path, a->proof) != 0) {
		snprintf(err, errsz, "the server could not prove it holds our "
			 "key for %s: refusing to use it",
			 shown(hs->export_path));
		return -EACCES;
	}
	hello->root_nodeid = a->root_nodeid;
	hello->root_generation = a->root_generation;
	hello->root_attr = a->root_attr;
	hs->stage = 4;
	return 0;
}

int orfa_handshake_session_keys(const struct orfa_handshake *hs,
				struct orfa_seal_keys *out)
{
	if (hs->stage != 4 || !hs->key)
		return -EINVAL;
	orfa_auth_session_keys(hs->key, ORFA_AUTH_CLIENT, hs->cnonce,
			       hs->snonce, hs->export_path, hs->integrity_only,
			       out);
	return 0;
}

void orfa_handshake_clear(struct orfa_handshake *hs)
{
	/* Nonces are public; this only ends the sequence. */
	memset(hs, 0, sizeof(*hs));
}
