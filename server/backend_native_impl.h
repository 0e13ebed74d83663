/*
 * backend_native_impl.h - internals of the native backend that its unit
 * test inspects.  Not for other modules: the server uses backend.h only.
 */
#ifndef ORFA_BACKEND_NATIVE_IMPL_H
#define ORFA_BACKEND_NATIVE_IMPL_H

#include <stddef.h>

#include "backend.h"

/* Nodes currently in the node table, the root included (so >= 1).  Each
 * holds one O_PATH descriptor.  be must be a native backend. */
size_t backend_native_node_count(struct orfa_backend *be);

/* Nonzero when the backend switches fsuid/fsgid/groups per request (it was
 * created by a process whose effective uid is 0). */
int backend_native_switches_creds(struct orfa_backend *be);

#endif /* ORFA_BACKEND_NATIVE_IMPL_H */
