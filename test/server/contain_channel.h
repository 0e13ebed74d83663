/*
 * contain_channel.h - the protected-channel tests of orfa_contain (issue
 * 12 items 3 and 4), in contain_channel.c: a relay between the test
 * client and orfad that injects or alters frames after AUTH, and the one
 * refusal before AUTH.
 */
#ifndef ORFA_CONTAIN_CHANNEL_H
#define ORFA_CONTAIN_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"
#include "probe_lib.h"

/* orfa_contain.c: the full handshake with the helper (key may be NULL),
 * sealing the connection after AUTH.  0, a positive status of a refusal
 * (reason in msg), or a negative errno (message in msg). */
int handshake(struct pc *p, const char *path, const struct orfa_key *key,
	      char *msg, size_t msz);
/* handshake asks for integrity-only protection (ORFA_HELLO_INTEGRITY). */
extern bool g_integrity_only;

/* Against orfad --key key --allow-integrity-only, export /a. */
void t_channel(const struct orfa_key *key);

#endif /* ORFA_CONTAIN_CHANNEL_H */
