/*
 * client_hello.c - the handshake of a client connection, done
 * synchronously on a fresh connection before its receiver thread reads
 * (first connect, reconnect): HELLO, then AUTH when either side holds a
 * key, after which the connection is sealed (orfa_conn_seal).
 * common/handshake.c builds and checks the messages; this file does
 * their I/O and records or checks what the server granted, and prints
 * the server's refusal text escaped (text_escape).  The reconnect
 * hook's synchronous calls (orfa_client_sync_call, conn.c) use the same
 * send and receive.
 *
 * Not here: making the transport connection (client_session.c, conn.c),
 * the call table (client.c).
 */
#include "client_impl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "handshake.h"
#include "seal.h"

/*
 * Copy the server's text (len bytes, up to a NUL) into out[outsz] with
 * every byte outside printable ASCII written as \xNN, so that a server
 * cannot send terminal escapes to the user's terminal or log (issue 12
 * item 6).  Always NUL-terminates (outsz > 0); cuts what does not fit.
 */
void text_escape(const char *in, size_t len, char *out, size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < len && in[i]; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
			if (o + 1 >= outsz)
				break;
			out[o++] = (char)ch;
			continue;
		}
		if (o + 4 >= outsz)
			break;
		out[o++] = '\\';
		out[o++] = 'x';
		out[o++] = hex[ch >> 4];
		out[o++] = hex[ch & 15];
	}
	out[o] = '\0';
}

/* Send one handshake request m (no data) on a fresh connection. */
int hs_send(struct cconn *cc, struct orfa_msg *m, char *err, size_t errsz)
{
	uint8_t head[ORFA_HDR_SIZE + 128 + ORFA_MAX_EXPORT + 8];
	struct orfa_txmsg tx;
	ssize_t body;
	int rc;

	body = orfa_req_encode(m, head + ORFA_HDR_SIZE,
			       sizeof(head) - ORFA_HDR_SIZE);
	if (body < 0) {
		snprintf(err, errsz, "%s: cannot encode %s: %s", cc->name,
			 orfa_op_name(m->hdr.opcode), strerror((int)-body));
		return (int)body;
	}
	m->hdr.data_len = 0;
	orfa_hdr_encode(head, &m->hdr);
	memset(&tx, 0, sizeof(tx));
	tx.head = head;
	tx.head_len = ORFA_HDR_SIZE + (size_t)body;
	tx.fd = -1;
	rc = orfa_conn_send(cc->conn, &tx);
	if (rc < 0)
		snprintf(err, errsz, "%s: cannot send %s: %s", cc->name,
			 orfa_op_name(m->hdr.opcode), strerror(-rc));
	return rc;
}

/*
 * Receive the reply to handshake request (opcode, req_id) into rep (its
 * body and data stay in rx until orfa_conn_recv_done).  Waits at most
 * wait_ms: a server that accepts but never answers must not hang the
 * mount.  A refusal (status != 0) is turned into a message and its errno.
 */
int hs_recv(struct orfa_client *cl, struct cconn *cc, unsigned opcode,
	    uint64_t req_id, struct orfa_rxmsg *rx, struct orfa_msg *rep,
	    char *err, size_t errsz)
{
	int wait_ms = cl->timeout_ms > 0 ? cl->timeout_ms : HELLO_WAIT_MS;
	const char *why = NULL;
	struct pollfd pfd;
	int rc;

	pfd.fd = orfa_conn_fd(cc->conn);
	pfd.events = POLLIN;
	if (pfd.fd >= 0) {
		do {
			rc = poll(&pfd, 1, wait_ms);
		} while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			snprintf(err, errsz, "%s: no answer to %s within %d ms",
				 cc->name, orfa_op_name(opcode), wait_ms);
			return -ETIMEDOUT;
		}
	}
	memset(rx, 0, sizeof(*rx));
	rc = orfa_conn_recv(cc->conn, rx);
	if (rc < 0) {
		const char *le = orfa_conn_last_error(cc->conn);

		snprintf(err, errsz, "%s: no answer to %s: %s", cc->name,
			 orfa_op_name(opcode), le && le[0] ? le : strerror(-rc));
		return rc;
	}
	memset(rep, 0, sizeof(*rep));
	rep->hdr = rx->hdr;
	if (rx->hdr.opcode != opcode || rx->hdr.req_id != req_id) {
		rc = -EPROTO;
		why = "not the reply to the handshake";
	} else {
		rc = orfa_rep_decode(rep, rx->body, &why);
	}
	if (rc < 0) {
		snprintf(err, errsz, "%s: bad %s reply: %s", cc->name,
			 orfa_op_name(opcode), why ? why : strerror(-rc));
		orfa_conn_recv_done(cc->conn, rx);
		return -EPROTO;
	}
	rep->data = rx->data;
	if (rep->hdr.status) {
		size_t len = rx->hdr.data_len > 200 ? 200 : rx->hdr.data_len;
		char reason[4 * 200 + 1];

		/* The server's reason when it gave one (escaped), else the
		 * errno. */
		text_escape(rx->data ? (const char *)rx->data : "", len, reason,
			    sizeof(reason));
		if (opcode == ORFA_OP_HELLO &&
		    (rep->hdr.status == EPROTONOSUPPORT ||
		     rep->a.hello_rep.version != ORFA_PROTO_VERSION))
			snprintf(err, errsz, "%s: server speaks protocol "
				 "version %u, we speak %u%s%s", cc->name,
				 rep->a.hello_rep.version, ORFA_PROTO_VERSION,
				 reason[0] ? ": " : "", reason);
		else if (reason[0])
			snprintf(err, errsz, "%s: server refused: %s",
				 cc->name, reason);
		else
			snprintf(err, errsz, "%s: server refused export %s: %s",
				 cc->name, cl->export_path,
				 strerror((int)rep->hdr.status));
		rc = -(int)rep->hdr.status;
		orfa_conn_recv_done(cc->conn, rx);
		return rc;
	}
	return 0;
}

/*
 * What the HELLO reply of cc granted: the first connection records it in
 * cl->info; further ones must agree on the root; a reconnect (again) must
 * find the same root and no smaller max_data, since the FUSE session was
 * set up with them.
 */
static int hello_adopt(struct orfa_client *cl, struct cconn *cc,
		       const struct orfa_hello_rep *hello, uint32_t max_data,
		       bool again, char *err, size_t errsz)
{
	if (again) {
		/* A restarted server: same root unless its ids did not
		 * survive (then old ids answer ESTALE); same limits, since
		 * the FUSE session was set up with them. */
		if (hello->root_nodeid != cl->info.root_nodeid ||
		    hello->max_data < cl->info.max_data) {
			snprintf(err, errsz, "%s: the server came back with "
				 "another root node or a smaller max_data",
				 cc->name);
			return -ESTALE;
		}
		return 0;
	}
	if (cc->idx == 0) {
		cl->info.root_nodeid = hello->root_nodeid;
		cl->info.root_generation = hello->root_generation;
		cl->info.root_attr = hello->root_attr;
		cl->info.features = hello->features;
		cl->info.max_data = (uint32_t)(hello->max_data < max_data ?
					       hello->max_data : max_data);
		cl->info.server_version = hello->version;
	} else if (hello->root_nodeid != cl->info.root_nodeid) {
		snprintf(err, errsz, "%s: server gave another root node on a "
			 "second connection", cc->name);
		return -EPROTO;
	}
	if (cl->info.root_nodeid == ORFA_ROOT_ID_NONE ||
	    cl->info.max_data < 4096) {
		snprintf(err, errsz, "%s: unusable HELLO reply (root %llu, "
			 "max_data %u)", cc->name,
			 (unsigned long long)cl->info.root_nodeid,
			 cl->info.max_data);
		return -EPROTO;
	}
	return 0;
}

/* After a good AUTH: protect cc's connection with the session keys
 * before anything else is sent on it (PROTOCOL.md section 6.1). */
static int hello_seal(struct cconn *cc, const struct orfa_handshake *hs,
		      char *err, size_t errsz)
{
	struct orfa_seal_keys keys;
	int rc;

	rc = orfa_handshake_session_keys(hs, &keys);
	if (rc == 0)
		rc = orfa_conn_seal(cc->conn, &keys);
	orfa_seal_keys_wipe(&keys);
	if (rc < 0)
		snprintf(err, errsz, "%s: cannot protect the connection: %s",
			 cc->name, strerror(-rc));
	return rc;
}

/*
 * Synchronous handshake on a fresh connection (no receiver thread yet):
 * HELLO, then AUTH when either side holds a key (common/handshake.c does
 * the protocol; this does the I/O).
 */
int do_hello(struct orfa_client *cl, struct cconn *cc, uint32_t max_data,
	     const struct orfa_key *key, bool again, char *err, size_t errsz)
{
	struct orfa_handshake hs;
	struct orfa_hello_rep hello;
	struct orfa_rxmsg rx;
	struct orfa_msg m, rep;
	int rc;

	orfa_handshake_init(&hs, key, cl->export_path);
	hs.want_integrity_only = cl->integrity_only;
	rc = orfa_handshake_hello(&hs, &m, 1, max_data, ORFA_FEAT_ALL);
	if (rc < 0) {
		snprintf(err, errsz, "bad export path '%s'", cl->export_path);
		goto out;
	}
	rc = hs_send(cc, &m, err, errsz);
	if (rc < 0)
		goto out;
	rc = hs_recv(cl, cc, ORFA_OP_HELLO, 1, &rx, &rep, err, errsz);
	if (rc < 0)
		goto out;
	rc = orfa_handshake_hello_reply(&hs, &rep, err, errsz);
	hello = rep.a.hello_rep;
	orfa_conn_recv_done(cc->conn, &rx);
	if (rc == 1) {
		rc = orfa_handshake_auth(&hs, &m, 2);
		if (rc == 0)
			rc = hs_send(cc, &m, err, errsz);
		if (rc == 0)
			rc = hs_recv(cl, cc, ORFA_OP_AUTH, 2, &rx, &rep, err,
				     errsz);
		if (rc == 0) {
			rc = orfa_handshake_auth_reply(&hs, &rep, &hello, err,
						       errsz);
			orfa_conn_recv_done(cc->conn, &rx);
		}
		if (rc == 0)
			rc = hello_seal(cc, &hs, err, errsz);
	}
	if (rc == 0)
		rc = hello_adopt(cl, cc, &hello, max_data, again, err, errsz);
out:
	orfa_handshake_clear(&hs);
	return rc;
}
