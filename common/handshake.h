/*
 * handshake.h - the client's half of the ORFA handshake (PROTOCOL.md
 * sections 5 and 6): build the HELLO request with the authentication
 * fields, decide from the HELLO reply whether AUTH must follow (and refuse
 * a server that cannot prove it holds the key the client was given), build
 * the AUTH request, check the server's proof in the AUTH reply.
 *
 * No I/O here: the caller sends and receives the messages on its own
 * connection and decodes the replies with orfa_rep_decode, as for any
 * other request.  One struct orfa_handshake per connection (each
 * connection gets fresh nonces); it holds no pointer after a call returns
 * except the key, which the caller keeps alive until the handshake ends.
 *
 * Sequence (every call returns 0 or a negative errno with a message for
 * the user in err):
 *
 *   orfa_handshake_init(&hs, key_or_NULL, export_path);
 *   orfa_handshake_hello(&hs, &m, req_id, max_data, features);
 *       send m (orfa_req_encode...), receive and decode the reply rep;
 *       a reply with status != 0 is a refusal: report its reason text
 *       (data segment) as before;
 *   ret = orfa_handshake_hello_reply(&hs, &rep, err, errsz);
 *       ret < 0: give up (close the connection, report err);
 *       ret == 0: done, rep.a.hello_rep is the session (root, limits...);
 *       ret == 1: AUTH must follow:
 *   orfa_handshake_auth(&hs, &m, req_id2);
 *       send m, receive and decode the AUTH reply arep; status != 0 is a
 *       refusal (reason text in the data segment, e.g. a wrong key);
 *   orfa_handshake_auth_reply(&hs, &arep, &rep.a.hello_rep, err, errsz);
 *       0: the server proved it holds the key; the root fields were
 *       copied into rep.a.hello_rep, which now reads like a HELLO reply
 *       without authentication.
 *   orfa_handshake_session_keys(&hs, &keys);
 *       after AUTH succeeded: the connection's session keys (encrypting,
 *       or integrity only when hs.want_integrity_only was set after init
 *       and the server granted it: hs.integrity_only); seal the
 *       connection with them (orfa_conn_seal) before sending anything
 *       else, and wipe them (orfa_seal_keys_wipe).
 *   orfa_handshake_clear(&hs);
 */
#ifndef ORFA_HANDSHAKE_H
#define ORFA_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "codec.h"

struct orfa_handshake {
	const struct orfa_key *key;		/* NULL: no key */
	const char *export_path;		/* borrowed: as sent in HELLO */
	uint8_t cnonce[ORFA_NONCE_SIZE];	/* ours, fresh per connection */
	uint8_t snonce[ORFA_NONCE_SIZE];	/* the server's, from HELLO */
	int stage;				/* 0 init, 1 HELLO sent,
						 * 2 AUTH due, 3 AUTH sent,
						 * 4 done */
	bool want_integrity_only;		/* set by the caller after
						 * init: ask for frames
						 * authenticated, not
						 * encrypted */
	bool integrity_only;			/* the server granted it */
};

/* key may be NULL; both key and export_path ("" or "/sub/dir") are
 * borrowed until orfa_handshake_clear. */
void orfa_handshake_init(struct orfa_handshake *hs,
			 const struct orfa_key *key, const char *export_path);

/*
 * Fill m as the HELLO request (orfa_msg_init included): magic, version,
 * max_data, features, the export path as name, and with a key the
 * ORFA_HELLO_AUTH flag and a fresh client nonce.  0 or -EINVAL (export
 * path longer than ORFA_MAX_EXPORT).
 */
int orfa_handshake_hello(struct orfa_handshake *hs, struct orfa_msg *m,
			 uint64_t req_id, uint64_t max_data,
			 uint64_t features);

/*
 * rep: the decoded HELLO reply with status 0.  Returns 0 when the session
 * is open (no key on either side), 1 when AUTH must follow, or -EACCES:
 * the server requires authentication and we have no key, or we have a key
 * and the server does not ask for it (it cannot prove it holds the key:
 * the client refuses to go on), -EPROTO: an inconsistent reply.
 */
int orfa_handshake_hello_reply(struct orfa_handshake *hs,
			       const struct orfa_msg *rep, char *err,
			       size_t errsz);

/* Fill m as the AUTH request with our proof (after hello_reply gave 1).
 * 0, or -EINVAL when AUTH is not due. */
int orfa_handshake_auth(struct orfa_handshake *hs, struct orfa_msg *m,
			uint64_t req_id);

/*
 * rep: the decoded AUTH reply with status 0.  Checks the server's proof
 * (constant time); on success copies its root fields into hello (the
 * HELLO reply of this connection) and returns 0.  -EACCES when the proof
 * is wrong (the server does not hold our key: do not use it), -EINVAL
 * when no AUTH was sent.
 */
int orfa_handshake_auth_reply(struct orfa_handshake *hs,
			      const struct orfa_msg *rep,
			      struct orfa_hello_rep *hello, char *err,
			      size_t errsz);

/* The client's session keys once AUTH succeeded (auth_reply gave 0): 0,
 * or -EINVAL (no key, or AUTH not done). */
int orfa_handshake_session_keys(const struct orfa_handshake *hs,
				struct orfa_seal_keys *out);

/* End the sequence (call once the handshake is over, either way); hs may
 * then be initialised again. */
void orfa_handshake_clear(struct orfa_handshake *hs);

#endif /* ORFA_HANDSHAKE_H */
