/*
 * exports.h - which directories orfad serves, to whom, and how.
 *
 * An exports file (orfa-exports(5), docs/exports.md) has one export per
 * line:
 *
 *     NAME   SOURCE   CLIENTS   [OPTIONS]
 *
 *   NAME     what clients ask for: "data" is mounted as "server:/data";
 *            "/" is the root export (then "server:/sub" mounts its
 *            subdirectory sub).
 *   SOURCE   an absolute directory, or "ramfs:SIZE" (SIZE with K/M/G/T).
 *   CLIENTS  comma-separated networks in CIDR form (10.0.0.0/8,
 *            fd00::/8, 192.0.2.7 = /32, ::1 = /128) or "*" for anyone.
 *   OPTIONS  comma-separated: ro | rw (default rw), root_squash (default)
 *            | no_root_squash, all_squash, anonuid=N, anongid=N
 *            (default 65534), secure (default) | insecure, nodev
 *            (default) | dev, nosuid (default) | suid.
 *
 * '#' starts a comment; blank lines are ignored.  orfad --export DIR is the
 * one-line shortcut "/ DIR *" with the defaults above, or with the options
 * of --export-options (docs/security.md has what each option protects).
 */
#ifndef ORFA_EXPORTS_H
#define ORFA_EXPORTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "orfa_proto.h"

#define ORFA_EXPORT_RO		(1u << 0)
#define ORFA_EXPORT_ROOT_SQUASH	(1u << 1)
#define ORFA_EXPORT_ALL_SQUASH	(1u << 2)
#define ORFA_EXPORT_INSECURE	(1u << 3)	/* any source port */
#define ORFA_EXPORT_DEV		(1u << 4)	/* device nodes allowed */
#define ORFA_EXPORT_SUID	(1u << 5)	/* set-uid/gid bits allowed */

/* The options of an exports line that has none. */
#define ORFA_EXPORT_DEFAULTS	ORFA_EXPORT_ROOT_SQUASH

/* Below this a client's source port is privileged ("secure"). */
#define ORFA_PRIVILEGED_PORT	1024

#define ORFA_EXPORT_MAX_NETS	32

struct orfa_net {
	int family;			/* AF_INET or AF_INET6; 0 = anyone */
	uint8_t addr[16];		/* network, host bits cleared */
	unsigned prefix;		/* 0..32 or 0..128 */
};

struct orfa_export {
	char name[256];			/* "/" or a name without '/' */
	char path[4096];		/* directory; empty for ramfs */
	uint64_t ramfs_size;		/* > 0 for a RAM export */
	struct orfa_net nets[ORFA_EXPORT_MAX_NETS];
	int nnets;
	unsigned flags;			/* ORFA_EXPORT_* */
	uint32_t anonuid;
	uint32_t anongid;
	void *backend;			/* the server's struct orfa_backend * */
};

struct orfa_exports {
	struct orfa_export *v;
	int n;
};

/*
 * Parse exports text.  Returns 0 and fills *out (release with
 * orfa_exports_free), or -EINVAL with "line N: reason" in err.  Names must
 * be unique; sources are not checked for existence here.
 */
int orfa_exports_parse(const char *text, struct orfa_exports *out,
		       char *err, size_t errsz);
/* Read and parse a file; -errno of the read or -EINVAL (see err). */
int orfa_exports_load(const char *file, struct orfa_exports *out,
		      char *err, size_t errsz);
void orfa_exports_free(struct orfa_exports *ex);

/*
 * The table of the command-line shortcuts (THE SHORTCUT in
 * docs/exports.md): one root export "/" for anyone serving dir, or a RAM
 * file system of ramfs_size bytes when dir is NULL, with the options opts
 * (the OPTIONS field of an exports line; NULL or "" for the defaults:
 * rw,root_squash,secure,nodev,nosuid).  0 (release with
 * orfa_exports_free), -ENAMETOOLONG, -ENOMEM, or -EINVAL with the reason
 * in err.
 */
int orfa_exports_shortcut(struct orfa_exports *out, const char *dir,
			  uint64_t ramfs_size, const char *opts, char *err,
			  size_t errsz);

/*
 * Find the export a client path names: "/data/sub" -> export "data" with
 * *subdir "sub" (pointing into path; "" for the export root).  A root
 * export "/" takes every path no named export claims.  NULL when none.
 */
const struct orfa_export *orfa_exports_find(const struct orfa_exports *ex,
					    const char *path,
					    const char **subdir);

/* 1 when the peer address is in one of the export's networks. */
int orfa_export_allows(const struct orfa_export *e,
		       const struct sockaddr *peer);

/*
 * May a client whose source port is port (host order) reach e?  1 unless
 * e is secure (no "insecure") and port is not privileged.
 */
int orfa_export_port_ok(const struct orfa_export *e, unsigned port);

/*
 * The set-id and device rules of e (nosuid, nodev) for a request that
 * would give a file mode: -EPERM when mode has S_ISUID or S_ISGID on a
 * non-directory and e is nosuid, or mode is a character or block device
 * and e is nodev (and make_node says mode is a new node's type, as for
 * MKNOD); else 0.  Set-gid on directories is allowed: it only says new
 * entries inherit the group, as the kernel lets any owner set it.
 */
int orfa_export_mode_ok(const struct orfa_export *e, uint32_t mode,
			int make_node);

/* Apply squashing to credentials received from a client, in place. */
void orfa_export_squash(const struct orfa_export *e, struct orfa_cred *cr);

/* 1 when opcode changes the file system (refused on ro exports). */
int orfa_op_modifies(unsigned opcode, uint32_t open_flags);

#endif /* ORFA_EXPORTS_H */
