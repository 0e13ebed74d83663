/*
 * nodes.h - what the client remembers per server node: the lookup count
 * the kernel holds and the attributes last seen, for close-to-open cache
 * decisions (cache=auto).
 *
 * An entry exists while the kernel holds lookup references to the node
 * (nodes_ref adds one, nodes_forget takes them back) and is dropped at
 * zero.  References are counted per connection, because the server counts
 * them per connection and each must be given back where it came from.
 * Node ids are server ids.  All functions are thread-safe (one
 * mutex).  Nothing here talks to the network.
 */
#ifndef ORFA_NODES_H
#define ORFA_NODES_H

#include <stdbool.h>
#include <stdint.h>

#include "orfa_proto.h"

struct orfa_nodes;

/* For nconns connections (>= 1).  NULL when out of memory. */
struct orfa_nodes *nodes_new(unsigned nconns);
void nodes_free(struct orfa_nodes *n);

/* The kernel got one more reference to nodeid, which connection conn
 * handed out, with attributes a (may be NULL).  Returns 0 or -ENOMEM (then
 * the reference is not tracked: nodes_forget will send it to connection
 * 0, and the node's cache is just dropped at its next open). */
int nodes_ref(struct orfa_nodes *n, uint64_t nodeid,
	      const struct orfa_attr *a, unsigned conn);

/* The kernel gave back nlookup references.  per_conn (nconns entries)
 * receives how many to give back on each connection; references the table
 * did not know of are put on connection 0. */
void nodes_forget(struct orfa_nodes *n, uint64_t nodeid, uint64_t nlookup,
		  uint64_t *per_conn);

/* Connection conn was replaced by a new one (reconnect): the references
 * it handed out are no longer counted by any server connection.  The
 * kernel still holds them; when it forgets them, nodes_forget gives them
 * back to no connection (they are taken before any others). */
void nodes_conn_reset(struct orfa_nodes *n, unsigned conn);

/* Attributes of nodeid seen in a reply.  own: they result from this
 * client's own change (write, setattr), which the kernel's cache already
 * reflects; otherwise a change of mtime, ctime or size marks the node's
 * cached data stale. */
void nodes_observe(struct orfa_nodes *n, uint64_t nodeid,
		   const struct orfa_attr *a, bool own);

/* At open, with the attributes from the OPEN reply: true when the kernel
 * may keep its cached data (nothing changed since this client last saw
 * the node).  Records a as the new reference point. */
bool nodes_open_keep(struct orfa_nodes *n, uint64_t nodeid,
		     const struct orfa_attr *a);

/*
 * "security.capability" is absent on nodeid, as the server said: remembered
 * until `until` (CLOCK_MONOTONIC ns), because the kernel asks for it before
 * every write(2) to see whether capabilities must be dropped.
 * nodes_nocaps: true while that holds (now < until).  until 0 forgets it.
 */
void nodes_set_nocaps(struct orfa_nodes *n, uint64_t nodeid, int64_t until);
bool nodes_nocaps(struct orfa_nodes *n, uint64_t nodeid, int64_t now);

/*
 * A POSIX lock was asked for on nodeid through this client (nodes_set_locked:
 * false if nodeid is not tracked).  nodes_locked: true once that happened,
 * and for nodes not tracked; it stays true while the node is known.
 */
bool nodes_set_locked(struct orfa_nodes *n, uint64_t nodeid);
bool nodes_locked(struct orfa_nodes *n, uint64_t nodeid);

/* Number of nodes tracked and sum of their lookup counts (tests, debug). */
void nodes_stats(struct orfa_nodes *n, uint64_t *count, uint64_t *refs);

#endif /* ORFA_NODES_H */
