/*
 * dispatch.h - the request handlers of orfad: one per opcode, in a table
 * indexed by opcode (handler + name for traces).  The entry points are
 * declared in server_impl.h, next to the request and connection objects
 * they work on; this header only names the table for tests and tools.
 */
#ifndef ORFA_DISPATCH_H
#define ORFA_DISPATCH_H

/* Name of opcode in the dispatch table, or NULL when it has no handler
 * (such requests are answered ENOSYS). */
const char *dispatch_op_name(unsigned opcode);

#endif /* ORFA_DISPATCH_H */
