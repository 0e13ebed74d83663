/*
 * fsops.h - shared bits of the fsops test helper (test/fs/fsops*.c).
 *
 * fsops is a multi-call program the mounted-file-system suite
 * (test/fs/harness.sh) uses for system calls the shell cannot make or
 * cannot report precisely (renameat2, utimensat, SEEK_DATA, locks, mmap).
 * Output contract, relied on by test/fs/lib.sh:
 *   success        prints "OK" (and/or key=value lines), exit 0
 *   syscall error  prints "ERR <ERRNO_NAME> <op>: <strerror>", exit 1
 *   usage error    message on stderr, exit 2
 *   wrong content  prints "FAIL <what>", exit 3
 */
#ifndef FSOPS_H
#define FSOPS_H

#include <errno.h>

#define FSOPS_EXIT_OK		0
#define FSOPS_EXIT_ERR		1
#define FSOPS_EXIT_USAGE	2
#define FSOPS_EXIT_FAIL		3

/* Print "ERR <NAME> <op>: <msg>" for err (a positive errno); returns 1. */
int fsops_err(const char *op, int err);

/* Print "FAIL <formatted>"; returns FSOPS_EXIT_FAIL. */
int fsops_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Name of a positive errno ("EAGAIN"), or "E<number>". Static storage. */
const char *fsops_errname(int err);

/* Subcommands living in fsops_proc.c; argv[0] is the subcommand name. */
int fsops_offset_fork(int argc, char **argv);
int fsops_offset_dup(int argc, char **argv);
int fsops_unlinked(int argc, char **argv);
int fsops_lockpair(int argc, char **argv);
int fsops_mmap_shared(int argc, char **argv);
int fsops_mmap_private(int argc, char **argv);
int fsops_slowread(int argc, char **argv);
int fsops_sock(int argc, char **argv);

#endif
