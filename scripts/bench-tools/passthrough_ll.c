/*
 * passthrough_ll.c - the smallest low-level FUSE file system that passes
 * lookup/getattr/readdir through to a local directory.  scripts/bench uses
 * it as the "local FUSE round trip" reference for stat latency: the
 * difference between it and ORFA is what the network protocol costs.
 * Read-only, single node table keyed by inode number; not for real use.
 *
 *   passthrough_ll SRCDIR MOUNTPOINT   (runs in the foreground)
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 34
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int root_fd;

/* Node ids are O_PATH descriptors + 2, one per inode (kept in a small
 * open-addressing table; never freed: benchmark only). */
#define NODES 65536
static struct { ino_t ino; int fd; } nodes[NODES];

static int node_fd(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? root_fd : (int)(ino - 2);
}

static int node_intern(int fd, ino_t ino)
{
	for (size_t i = ino % NODES, n = 0; n < NODES; i = (i + 1) % NODES, n++) {
		if (nodes[i].fd && nodes[i].ino == ino) {
			close(fd);
			return nodes[i].fd;
		}
		if (!nodes[i].fd) {
			nodes[i].ino = ino;
			nodes[i].fd = fd;
			return fd;
		}
	}
	return fd;
}

static void pt_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int fd = openat(node_fd(parent), name, O_PATH | O_NOFOLLOW);

	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	memset(&e, 0, sizeof(e));
	if (fstatat(fd, "", &e.attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		int err = errno;
		close(fd);
		fuse_reply_err(req, err);
		return;
	}
	e.ino = (fuse_ino_t)node_intern(fd, e.attr.st_ino) + 2;
	fuse_reply_entry(req, &e);
}

static void pt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static void pt_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (fstatat(node_fd(ino), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_attr(req, &st, 0);
}

static const struct fuse_lowlevel_ops pt_ops = {
	.lookup = pt_lookup,
	.forget = pt_forget,
	.getattr = pt_getattr,
};

int main(int argc, char **argv)
{
	char *fargv[] = { argv[0], "-o", "fsname=passthrough_ll", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_session *se;
	int ret = 1;

	if (argc != 3) {
		fprintf(stderr, "usage: passthrough_ll SRCDIR MOUNTPOINT\n");
		return 2;
	}
	root_fd = open(argv[1], O_PATH | O_DIRECTORY);
	if (root_fd < 0) {
		perror(argv[1]);
		return 1;
	}
	se = fuse_session_new(&args, &pt_ops, sizeof(pt_ops), NULL);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se) == 0 &&
	    fuse_session_mount(se, argv[2]) == 0) {
		ret = fuse_session_loop(se);
		fuse_session_unmount(se);
	}
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	return ret ? 1 : 0;
}
