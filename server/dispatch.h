/*
 * dispatch.h - the entry points of orfad's request handlers, called by
 * the pipeline once a request is read: workers.c runs decoded requests,
 * conn.c runs HELLO and AUTH.  Handlers answer through the request API (request.h) and never
 * call back into the pipeline otherwise.
 *
 * The handlers: one per opcode, in a table indexed by opcode (handler +
 * name for traces), spread by job over dispatch.c (the table, nodes,
 * xattrs, file system), dispatch_io.c (open files, data, directories) and
 * dispatch_lock.c (locks); the handshake is hello.c's.
 */
#ifndef ORFA_DISPATCH_H
#define ORFA_DISPATCH_H

struct sreq;

/* Run one decoded request (any thread): access checks, handler, answer
 * (unless parked), then sreq_finish (unless parked). */
void dispatch_request(struct sreq *r);

/* hello.c: HELLO, on the receiving thread.  Binds the session (and asks
 * for AUTH when the server has a key), or refuses and closes the
 * connection after the reply.  Answers, does not finish. */
void hello_handle(struct sreq *r);
/* hello.c: AUTH, on the receiving thread, only when HELLO asked for it.
 * Opens the session, or refuses and closes the connection after the
 * reply.  Answers, does not finish. */
void auth_handle(struct sreq *r);
/* hello.c: refuse a HELLO for a reason tied to the export or the client's
 * right to it (unknown export, network, source port, missing key): one
 * status and one text for all, so that no answer before AUTH tells export
 * names apart (issue 12 item 4); logwhy, the real reason, is logged with
 * the peer.  Closes the connection after the reply. */
void hello_refuse_export(struct sreq *r, const char *logwhy);

/* Name of opcode in the dispatch table, or NULL when it has no handler
 * (such requests are answered ENOSYS). */
const char *dispatch_op_name(unsigned opcode);

#endif /* ORFA_DISPATCH_H */
