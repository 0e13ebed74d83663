/*
 * cli.h - the orfa command line: what the options say (struct cli), where
 * to connect (struct target), and parsing both.  main.c runs the stages;
 * cli.c holds the option table, --help and the checks.
 */
#ifndef ORFA_CLI_H
#define ORFA_CLI_H

#include "ops.h"

#include <fuse_opt.h>

#define DEFAULT_TIMEOUT_S	30.0
#define MAX_CONNS		64

/* The options, as given (the defaults are set by cli_init). */
struct cli {
	const char *source;
	char *transport;
	char *port_opt;
	char *key_file;
	int integrity_only;		/* -o integrity=only */
	unsigned conns;
	size_t rdma_buf_size;		/* 0: the transport's default */
	unsigned rdma_credits;		/* 0: the transport's default */
	double timeout;
	double attr_timeout, entry_timeout, negative_timeout;	/* < 0: default */
	int cache;
	int writeback;
	int reconnect;
	int fsname_given;
	int subtype_given;
	int allow_other;		/* allow_other or allow_root given */
	int default_perms;		/* 1 given, 0 no_default_permissions,
					 * -1 not said */
	int show_help, show_version;
	int bad;			/* an error was printed */
};

/* Where to connect, from the source and -o port=. */
/* Where to connect, from the source and -o port=. */
struct target {
	char host[256], port[16], path[4096];
	const char *use_port;
};

/* Defaults into c. */
void cli_init(struct cli *c);
/* Free what cli_parse allocated in c. */
void cli_free(struct cli *c);

/*
 * Parse the command line into c (args keeps what libfuse must see) and
 * check what can be checked before libfuse sees it: the source into t,
 * the port, the transport.  Returns 0 to go on, 1 when done (help,
 * version: exit 0), -1 after printing an error.
 */
int cli_parse(struct fuse_args *args, struct cli *c, const char *prog,
	      struct target *t);

/* Add to args the mount options orfa implies unless told otherwise
 * (fsname, subtype, default_permissions with allow_other).  0 or -1 when
 * out of memory. */
int cli_add_implied_opts(struct fuse_args *args, const struct cli *c);

/* The mount's cache mode, writeback and cache timeouts from c. */
void cli_mount_opts(const struct cli *c, struct orfa_mount *m);

#endif /* ORFA_CLI_H */
