/*
 * backend_native_ids.c - node ids of the native backend that survive an
 * orfad restart (issue 6), when orfad runs as root and was given a state
 * directory.
 *
 * A node id stays (slot generation << 32 | slot index), see
 * backend_native.c; what persists is the slot table: a file in the state
 * directory holds one fixed-size record per slot, written when a slot gets
 * a node (its generation and the file handle of the node's inode from
 * name_to_handle_at) and cleared when the node is freed (generation
 * bumped, no handle).  A restarted orfad reads the file back before
 * serving: each recorded inode is reopened with open_by_handle_at on the
 * export root's file system, checked (same inode; a directory must still
 * lie below the export root) and put back in its old slot with its old
 * generation, so every id a client held before the restart names the same
 * inode afterwards, and lookups of those inodes hand out the same ids
 * again.  A recorded inode that is gone (deleted, moved out of the export)
 * leaves its slot free: its id answers -ESTALE.
 *
 * Limits.  Writes are plain pwrite(2) (page cache): they survive the
 * server being killed, not the machine crashing.  A restored node counts
 * one lookup reference that no connection owns (the clients' references
 * died with the old server), so it stays in the table, with its
 * descriptor, for the life of the server.  A restored regular file cannot
 * be checked against the export (it has no parent to walk up from); as
 * with nodes a client holds, a file moved out of the export by a local
 * process stays reachable through its old id.  Without root
 * (open_by_handle_at needs CAP_DAC_READ_SEARCH), without a state directory
 * or on a file system without file handles, ids are not persistent and a
 * restart makes every old id stale.
 *
 * Locking: called with nb->lock held (save/clear) or before the backend
 * serves (load); nb->ids_fd is immutable once set.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_native_impl.h"
#include "log.h"

#define IDS_MAGIC	0x3153444941464f52ull	/* "ORFAIDS1" */
#define IDS_HANDLE_MAX	128			/* MAX_HANDLE_SZ */

/* One record per slot, at offset slot * sizeof(struct ids_rec); slot 0
 * holds the header (magic, export root's dev/ino in dev/ino). */
struct ids_rec {
	uint64_t magic;		/* IDS_MAGIC in the header, else 0 */
	uint32_t gen;		/* slot generation */
	uint32_t handle_bytes;	/* 0: slot free */
	int32_t handle_type;
	uint32_t pad;
	uint64_t dev, ino;	/* the inode the handle names */
	uint8_t handle[IDS_HANDLE_MAX];
};

static int rec_write(struct nat_backend *nb, uint32_t slot,
		     const struct ids_rec *r)
{
	ssize_t w = pwrite(nb->ids_fd, r, sizeof(*r),
			   (off_t)slot * (off_t)sizeof(*r));

	return w == (ssize_t)sizeof(*r) ? 0 : (w < 0 ? -errno : -EIO);
}

void nat_ids_save(struct nat_backend *nb, const struct nat_node *n)
{
	struct {
		struct file_handle fh;
		uint8_t buf[IDS_HANDLE_MAX];
	} h;
	struct ids_rec r;
	int mnt, ret;

	if (nb->ids_fd < 0)
		return;
	memset(&r, 0, sizeof(r));
	r.gen = nb->slots[n->slot].gen;
	h.fh.handle_bytes = IDS_HANDLE_MAX;
	if (name_to_handle_at(n->fd, "", &h.fh, &mnt, AT_EMPTY_PATH) == 0 &&
	    h.fh.handle_bytes <= IDS_HANDLE_MAX) {
		r.handle_bytes = h.fh.handle_bytes;
		r.handle_type = h.fh.handle_type;
		r.dev = n->dev;
		r.ino = n->ino;
		memcpy(r.handle, h.fh.f_handle, h.fh.handle_bytes);
	}
	/* Without a handle the record says "free": that id will be stale
	 * after a restart, as it would be without persistence. */
	ret = rec_write(nb, n->slot, &r);
	if (ret)
		log_warn("native: cannot record node id %u: %s", n->slot,
			 strerror(-ret));
}

void nat_ids_clear(struct nat_backend *nb, uint32_t slot)
{
	struct ids_rec r;

	if (nb->ids_fd < 0)
		return;
	memset(&r, 0, sizeof(r));
	r.gen = nb->slots[slot].gen;
	rec_write(nb, slot, &r);
}

/* Reopen the inode of record r for slot i; 0 and a node in the table, or
 * a negative errno (slot left free). */
static int rec_restore(struct nat_backend *nb, int mnt_fd, uint32_t i,
		       const struct ids_rec *r)
{
	struct {
		struct file_handle fh;
		uint8_t buf[IDS_HANDLE_MAX];
	} h;
	struct nat_node *n;
	struct stat st;
	int fd, ret;

	if (r->handle_bytes == 0 || r->handle_bytes > IDS_HANDLE_MAX)
		return -ESTALE;
	h.fh.handle_bytes = r->handle_bytes;
	h.fh.handle_type = r->handle_type;
	memcpy(h.fh.f_handle, r->handle, r->handle_bytes);
	fd = open_by_handle_at(mnt_fd, &h.fh, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_dev != (dev_t)r->dev ||
	    st.st_ino != (ino_t)r->ino || nat_find_node(nb, &st)) {
		close(fd);
		return -ESTALE;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = nat_check_below_root(nb, fd, &st);
		if (ret) {
			close(fd);
			return ret;
		}
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		close(fd);
		return -ENOMEM;
	}
	n->fd = fd;
	n->dev = st.st_dev;
	n->ino = st.st_ino;
	n->type = st.st_mode & S_IFMT;
	n->slot = i;
	n->nlookup = 1;		/* the old clients' references, see above */
	n->restored = true;
	nb->slots[i].gen = r->gen;
	nb->slots[i].node = n;
	nat_insert_node(nb, n);
	return 0;
}

/* Make room for slot i in the slot table.  0 or -ENOMEM. */
static int slots_reserve(struct nat_backend *nb, uint32_t i)
{
	uint32_t ncap = nb->slots_cap;
	struct nat_slot *ns;

	if (i < nb->slots_cap)
		return 0;
	while (ncap <= i) {
		if (ncap >= NAT_MAX_SLOTS)
			return -ENOMEM;
		ncap *= 2;
	}
	ns = realloc(nb->slots, (size_t)ncap * sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	memset(ns + nb->slots_cap, 0,
	       (size_t)(ncap - nb->slots_cap) * sizeof(*ns));
	nb->slots = ns;
	nb->slots_cap = ncap;
	return 0;
}

/* Read the records back (the table holds only the root yet). */
static void ids_load(struct nat_backend *nb, uint64_t nrec)
{
	unsigned restored = 0, stale = 0;
	uint32_t last_free = 0;
	/* open_by_handle_at wants a real descriptor, not an O_PATH one. */
	int mnt_fd = nat_node_reopen(nb, nb->root, O_RDONLY | O_DIRECTORY);

	for (uint64_t i = ORFA_ROOT_NODEID + 1; i < nrec; i++) {
		struct ids_rec r;

		if (pread(nb->ids_fd, &r, sizeof(r),
			  (off_t)i * (off_t)sizeof(r)) != (ssize_t)sizeof(r) ||
		    slots_reserve(nb, (uint32_t)i))
			break;
		nb->nslots = (uint32_t)i + 1;
		if (r.handle_bytes) {
			int ret = mnt_fd < 0 ? mnt_fd :
				  rec_restore(nb, mnt_fd, (uint32_t)i, &r);

			if (ret == 0) {
				restored++;
				continue;
			}
			log_info("native: node id %u not restored: %s",
				 (unsigned)i, strerror(-ret));
		}
		if (r.handle_bytes) {
			stale++;
			r.gen++;	/* the old id stays stale */
		}
		/* A free slot keeps counting generations from where it was
		 * (never 0: a zeroed record gets an odd one). */
		nb->slots[i].gen = r.gen ? r.gen : (uint32_t)(i * 2654435761u) | 1u;
		nb->slots[i].node = NULL;
		if (r.handle_bytes)
			nat_ids_clear(nb, (uint32_t)i);
		/* Free list in slot order. */
		nb->slots[i].next_free = 0;
		if (last_free)
			nb->slots[last_free].next_free = (uint32_t)i;
		else
			nb->free_head = (uint32_t)i;
		last_free = (uint32_t)i;
	}
	if (mnt_fd >= 0)
		close(mnt_fd);
	log_info("native: %u node ids restored from the state file, %u stale",
		 restored, stale);
}

int backend_native_set_state(struct orfa_backend *be, const char *path)
{
	struct nat_backend *nb = to_nb(be);
	struct {
		struct file_handle fh;
		uint8_t buf[IDS_HANDLE_MAX];
	} h;
	struct ids_rec hdr;
	struct stat st;
	int fd, mnt, ret;

	if (geteuid() != 0) {
		log_warn("native: not running as root: node ids will not "
			 "survive a restart");
		return 0;
	}
	h.fh.handle_bytes = IDS_HANDLE_MAX;
	if (name_to_handle_at(nb->root->fd, "", &h.fh, &mnt,
			      AT_EMPTY_PATH) < 0) {
		log_warn("native: the export's file system has no file "
			 "handles (%s): node ids will not survive a restart",
			 strerror(errno));
		return 0;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		log_err("native: state file %s: %s", path, strerror(-ret));
		if (fd >= 0)
			close(fd);
		return ret;
	}
	nb->ids_fd = fd;
	memset(&hdr, 0, sizeof(hdr));
	if (st.st_size >= (off_t)sizeof(hdr) &&
	    pread(fd, &hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) &&
	    hdr.magic == IDS_MAGIC && hdr.dev == (uint64_t)nb->root_dev &&
	    hdr.ino == (uint64_t)nb->root_ino) {
		ids_load(nb, (uint64_t)st.st_size / sizeof(hdr));
		return 0;
	}
	/* New, or another export's: start afresh. */
	memset(&hdr, 0, sizeof(hdr));
	hdr.magic = IDS_MAGIC;
	hdr.dev = nb->root_dev;
	hdr.ino = nb->root_ino;
	if (ftruncate(fd, 0) < 0 || rec_write(nb, 0, &hdr) < 0) {
		ret = -errno;
		log_err("native: state file %s: %s", path, strerror(-ret));
		nb->ids_fd = -1;
		close(fd);
		return ret ? ret : -EIO;
	}
	log_info("native: node ids recorded in %s", path);
	return 0;
}
