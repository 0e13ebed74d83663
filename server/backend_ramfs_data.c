/*
 * backend_ramfs_data.c - contents of regular files in the in-memory
 * backend: read, write, truncate, fallocate, SEEK_DATA/SEEK_HOLE and
 * copy_file_range.
 *
 * A file is a sparse radix tree (64 slots a level, height growing with
 * the largest chunk index, so > 4 GiB offsets cost a few levels) of
 * refcounted chunks of up to 64 KiB (see backend_ramfs_impl.h for the
 * chunk rules).  Absent chunks are holes: they read as zeros and cost
 * nothing.  Invariant: every byte of a chunk at or beyond the file size
 * is zero, so growing a file never has to clear anything.
 *
 * Reads are zero-copy: the reply's iovec points into the chunks, each
 * chunk referenced by a hold the caller releases once the reply is sent,
 * and holes point at a static zero area.  A writer that finds a chunk
 * shared (refs > 1) copies it first, so data handed to a reply never
 * changes under it, whatever happens to the file meanwhile.  A read that
 * would need more than ORFA_READ_MAX_IOV segments (or when the hold
 * cannot be allocated) is copied into the caller's buffer instead.
 *
 * copy_file_range takes a snapshot (chunk references) of the source range
 * first, so overlapping ranges of one file copy as if read before
 * written; chunk-aligned whole chunks are shared, not copied.
 *
 * Not here: nodes, names, permissions (backend_ramfs.c, _dir.c), the
 * radix tree itself (backend_ramfs_rtree.c).  Every
 * function below that touches a file runs with node->lock held.
 */
#include "backend_ramfs_impl.h"
#include "backend_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE	0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE	0x02
#endif

/* Largest range one copy_file_range call copies (a short count beyond),
 * to bound the time both files stay locked. */
#define RAMFS_COPY_MAX		(64u << 20)

/* Holes in read replies point here; never written. */
#define RAMFS_ZEROS_SIZE	(1u << 20)
static unsigned char ramfs_zeros[RAMFS_ZEROS_SIZE];

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* ---- chunks ---------------------------------------------------------- */

static struct ramfs_chunk *chunk_alloc(uint32_t cap, int zero)
{
	struct ramfs_chunk *c;

	c = zero ? calloc(1, sizeof(*c) + cap) : malloc(sizeof(*c) + cap);
	if (!c)
		return NULL;
	c->refs = 1;
	c->cap = cap;
	return c;
}

static void chunk_get(struct ramfs_chunk *c)
{
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void ramfs_chunk_put(struct ramfs_chunk *c)
{
	if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(c);
}

/* Acquire pairs with the release in ramfs_chunk_put(): once a reader's
 * reference is gone, so are its accesses to the data. */
static int chunk_shared(struct ramfs_chunk *c)
{
	return __atomic_load_n(&c->refs, __ATOMIC_ACQUIRE) > 1;
}

static uint32_t cap_for(uint64_t need)
{
	uint32_t cap = RAMFS_CHUNK_MIN;

	while (cap < need)
		cap <<= 1;
	return cap;
}

/* Charge n bytes, from *reserve (bytes charged in advance) if possible. */
static int charge_r(struct ramfs *fs, uint64_t *reserve, uint64_t n)
{
	if (reserve && *reserve >= n) {
		*reserve -= n;
		return 0;
	}
	return ramfs_charge(fs, n);
}

/* Detach chunk idx from the file. */
static void file_drop(struct ramfs *fs, struct ramfs_node *n, uint64_t idx)
{
	struct ramfs_chunk *c = ramfs_rt_remove(fs, &n->u.file.rt, idx);

	if (!c)
		return;
	n->u.file.alloc -= c->cap;
	ramfs_uncharge(fs, c->cap);
	ramfs_chunk_put(c);
}

/* Detach every chunk with index >= first. */
static void file_drop_from(struct ramfs *fs, struct ramfs_node *n,
			   uint64_t first, uint64_t last)
{
	uint64_t i;

	while (first <= last && ramfs_rt_next(&n->u.file.rt, first, &i) &&
	       i <= last) {
		file_drop(fs, n, i);
		first = i + 1;
	}
}

/* Make the chunk in *slot private to this file and at least cap bytes
 * long (copy-on-write and growth): 0, -ENOSPC or -ENOMEM, nothing
 * changed on failure. */
static int chunk_own(struct ramfs *fs, struct ramfs_node *n, void **slot,
		     uint32_t cap, uint64_t *reserve)
{
	struct ramfs_chunk *c = *slot, *nc;
	uint32_t ncap = c->cap > cap ? c->cap : cap;
	int r;

	if (c->cap >= cap && !chunk_shared(c))
		return 0;
	if (ncap > c->cap) {
		r = charge_r(fs, reserve, ncap - c->cap);
		if (r)
			return r;
	}
	nc = chunk_alloc(ncap, 0);
	if (!nc) {
		ramfs_uncharge(fs, ncap - c->cap);
		return -ENOMEM;
	}
	memcpy(nc->data, c->data, c->cap);
	memset(nc->data + c->cap, 0, ncap - c->cap);
	*slot = nc;
	n->u.file.alloc += ncap - c->cap;
	ramfs_chunk_put(c);
	return 0;
}

/* Chunk idx, present, private and at least need bytes long; NULL and
 * *err on failure (nothing changed). */
static struct ramfs_chunk *chunk_prepare(struct ramfs *fs,
					 struct ramfs_node *n, uint64_t idx,
					 uint64_t need, uint64_t *reserve,
					 int *err)
{
	void **slot = ramfs_rt_slot(&n->u.file.rt, idx);
	struct ramfs_chunk *c;
	uint32_t cap = cap_for(need);
	int r;

	if (slot && *slot) {
		r = chunk_own(fs, n, slot, cap, reserve);
		if (r) {
			*err = r;
			return NULL;
		}
		return *slot;
	}
	r = charge_r(fs, reserve, cap);
	if (r) {
		*err = r;
		return NULL;
	}
	c = chunk_alloc(cap, 1);
	if (!c) {
		ramfs_uncharge(fs, cap);
		*err = -ENOMEM;
		return NULL;
	}
	r = ramfs_rt_insert(fs, &n->u.file.rt, idx, c);
	if (r) {
		ramfs_chunk_put(c);
		ramfs_uncharge(fs, cap);
		*err = r;
		return NULL;
	}
	n->u.file.alloc += cap;
	return c;
}

/* Zero bytes [from, to) of chunk idx (a hole needs nothing). */
static int file_zero(struct ramfs *fs, struct ramfs_node *n, uint64_t idx,
		     uint32_t from, uint32_t to)
{
	void **slot = ramfs_rt_slot(&n->u.file.rt, idx);
	struct ramfs_chunk *c = slot ? *slot : NULL;
	int r;

	if (!c || from >= c->cap)
		return 0;
	if (to > c->cap)
		to = c->cap;
	if (from == 0 && to == c->cap) {
		file_drop(fs, n, idx);	/* all zeros: a hole */
		return 0;
	}
	r = chunk_own(fs, n, slot, c->cap, NULL);
	if (r)
		return r;
	c = *slot;
	memset(c->data + from, 0, to - from);
	return 0;
}

/* ramfs_rt_destroy's leaf callback: give back one chunk of file f. */
static void chunk_free_leaf(struct ramfs *fs, void *f, void *p)
{
	struct ramfs_node *n = f;
	struct ramfs_chunk *c = p;

	ramfs_uncharge(fs, c->cap);
	n->u.file.alloc -= c->cap;
	ramfs_chunk_put(c);
}

void ramfs_file_free(struct ramfs *fs, struct ramfs_node *n)
{
	ramfs_rt_destroy(fs, &n->u.file.rt, chunk_free_leaf, n);
}

/* ---- truncate -------------------------------------------------------- */

int ramfs_file_truncate(struct ramfs *fs, struct ramfs_node *n, uint64_t size)
{
	uint32_t keep = (uint32_t)(size & RAMFS_CHUNK_MASK);
	uint64_t first_drop = size >> RAMFS_CHUNK_SHIFT;

	if (size > RAMFS_MAX_FILESIZE)
		return -EFBIG;
	if (size >= n->size) {
		n->size = size;	/* the bytes past the old end are zeros */
		return 0;
	}
	if (keep) {
		void **slot = ramfs_rt_slot(&n->u.file.rt, first_drop);
		struct ramfs_chunk *c = slot ? *slot : NULL;

		first_drop++;
		if (c && c->cap > keep) {
			uint32_t ncap = cap_for(keep);
			struct ramfs_chunk *nc = NULL;

			/* clear the tail; shrink the chunk while at it */
			if (chunk_shared(c) || ncap < c->cap)
				nc = chunk_alloc(ncap, 0);
			if (nc) {
				memcpy(nc->data, c->data, keep);
				memset(nc->data + keep, 0, ncap - keep);
				*slot = nc;
				n->u.file.alloc -= c->cap - ncap;
				ramfs_uncharge(fs, c->cap - ncap);
				ramfs_chunk_put(c);
			} else if (chunk_shared(c)) {
				return -ENOMEM;
			} else {
				memset(c->data + keep, 0, c->cap - keep);
			}
		}
	}
	file_drop_from(fs, n, first_drop, UINT64_MAX);
	n->size = size;
	return 0;
}

/* ---- read ------------------------------------------------------------ */

struct ramfs_hold {
	unsigned n;
	struct ramfs_chunk *c[ORFA_READ_MAX_IOV];
};

static void hold_release(void *p)
{
	struct ramfs_hold *h = p;

	for (unsigned i = 0; i < h->n; i++)
		ramfs_chunk_put(h->c[i]);
	free(h);
}

/* The part of [pos, end) inside pos's chunk: len bytes from coff in chunk
 * c (NULL for a hole), of which the first dlen are stored data and the
 * rest reads as zeros. */
struct read_piece {
	struct ramfs_chunk *c;
	uint32_t coff, len, dlen;
};

static void read_piece_at(struct ramfs_node *n, uint64_t pos, uint64_t end,
			  struct read_piece *p)
{
	p->coff = (uint32_t)(pos & RAMFS_CHUNK_MASK);
	p->len = (uint32_t)min_u64(RAMFS_CHUNK_SIZE - p->coff, end - pos);
	p->c = ramfs_rt_get(&n->u.file.rt, pos >> RAMFS_CHUNK_SHIFT);
	p->dlen = 0;
	if (p->c && p->coff < p->c->cap)
		p->dlen = p->len < p->c->cap - p->coff ? p->len :
			  p->c->cap - p->coff;
}

/* Point out->iov at the chunks; -1 when it does not fit (the caller
 * copies instead). */
static int read_zero_copy(struct ramfs_node *n, uint64_t off, uint64_t len,
			  struct orfa_read_out *out)
{
	struct ramfs_hold *h = NULL;
	uint64_t pos = off, end = off + len;
	int cnt = 0, last_zero = 0;

	while (pos < end) {
		struct read_piece p;
		struct ramfs_chunk *c;
		uint32_t coff, m, dlen, z;

		read_piece_at(n, pos, end, &p);
		c = p.c;
		coff = p.coff;
		m = p.len;
		dlen = p.dlen;
		if (dlen) {
			if (cnt == ORFA_READ_MAX_IOV)
				goto fallback;
			if (!h) {
				h = malloc(sizeof(*h));
				if (!h)
					goto fallback;
				h->n = 0;
			}
			chunk_get(c);
			h->c[h->n++] = c;
			out->iov[cnt].iov_base = c->data + coff;
			out->iov[cnt].iov_len = dlen;
			cnt++;
			last_zero = 0;
		}
		z = m - dlen;
		if (z) {
			if (last_zero &&
			    out->iov[cnt - 1].iov_len + z <= RAMFS_ZEROS_SIZE) {
				out->iov[cnt - 1].iov_len += z;
			} else {
				if (cnt == ORFA_READ_MAX_IOV)
					goto fallback;
				out->iov[cnt].iov_base = ramfs_zeros;
				out->iov[cnt].iov_len = z;
				cnt++;
				last_zero = 1;
			}
		}
		pos += m;
	}
	out->iovcnt = cnt;
	out->len = len;
	out->release = h ? hold_release : NULL;
	out->hold = h;
	return 0;

fallback:
	if (h)
		hold_release(h);
	return -1;
}

static void read_copy(struct ramfs_node *n, uint64_t off, uint64_t len,
		      unsigned char *buf)
{
	uint64_t pos = off, end = off + len;

	while (pos < end) {
		struct read_piece p;

		read_piece_at(n, pos, end, &p);
		if (p.dlen)
			memcpy(buf, p.c->data + p.coff, p.dlen);
		memset(buf + p.dlen, 0, p.len - p.dlen);
		buf += p.len;
		pos += p.len;
	}
}

static int file_type_check(const struct ramfs_node *n)
{
	if (n->type == S_IFDIR)
		return -EISDIR;
	return n->type == S_IFREG ? 0 : -EINVAL;
}

/* Start a READ (denied: O_WRONLY) or WRITE (denied: O_RDONLY) on node
 * nodeid: the handle's access mode, the node, a regular file.  0 with the
 * node in use (ramfs_node_unuse(fs, *held) when done), or an errno with
 * nothing held. */
static int file_use(struct ramfs *fs, uint64_t nodeid, struct ramfs_fh *f,
		    int denied, struct ramfs_node **np, int *held)
{
	int r;

	if (f && (int)(f->flags & O_ACCMODE) == denied)
		return -EBADF;
	r = ramfs_node_use(fs, nodeid, f, np, held);
	if (r)
		return r;
	r = file_type_check(*np);
	if (r)
		ramfs_node_unuse(fs, *held);
	return r;
}

int ramfs_op_read(struct orfa_backend *be, uint64_t nodeid, void *fh,
		  uint64_t offset, uint32_t size, void *buf,
		  struct orfa_read_out *out)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_fh *f = fh;
	struct ramfs_node *n;
	int held, r;

	backend_read_out_init(out);
	r = file_use(fs, nodeid, f, O_WRONLY, &n, &held);
	if (r)
		return r;
	pthread_mutex_lock(&n->lock);
	if (offset < n->size && size) {
		uint64_t len = min_u64(size, n->size - offset);

		if (read_zero_copy(n, offset, len, out) == 0) {
			/* out points into the chunks */
		} else if (!buf) {
			r = -ENOBUFS;	/* backend.h: asked again with one */
		} else {
			read_copy(n, offset, len, buf);
			out->iov[0].iov_base = buf;
			out->iov[0].iov_len = len;
			out->iovcnt = 1;
			out->len = len;
		}
	}
	ramfs_atime_locked(n);
	pthread_mutex_unlock(&n->lock);
	ramfs_node_unuse(fs, held);
	return r;
}

/* ---- write ----------------------------------------------------------- */

/* Write what fits; *written bytes (maybe short); error only if none. */
static int file_write(struct ramfs *fs, struct ramfs_node *n, uint64_t off,
		      const struct iovec *iov, int iovcnt, uint64_t *written)
{
	uint64_t total = 0, pos, end;
	size_t vo = 0;
	int vi = 0, r = 0;

	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > RAMFS_MAX_FILESIZE - total)
			return -EFBIG;
		total += iov[i].iov_len;
	}
	*written = 0;
	if (total == 0)
		return 0;
	if (off > RAMFS_MAX_FILESIZE || total > RAMFS_MAX_FILESIZE - off)
		return -EFBIG;
	pos = off;
	end = off + total;
	while (pos < end) {
		uint64_t idx = pos >> RAMFS_CHUNK_SHIFT;
		uint32_t coff = (uint32_t)(pos & RAMFS_CHUNK_MASK);
		uint32_t m = (uint32_t)min_u64(RAMFS_CHUNK_SIZE - coff,
					       end - pos);
		struct ramfs_chunk *c;
		uint32_t done = 0;

		c = chunk_prepare(fs, n, idx, (uint64_t)coff + m, NULL, &r);
		if (!c)
			break;
		while (done < m) {
			size_t k;

			while (iov[vi].iov_len == vo) {
				vi++;
				vo = 0;
			}
			k = min_u64(m - done, iov[vi].iov_len - vo);
			memcpy(c->data + coff + done,
			       (const char *)iov[vi].iov_base + vo, k);
			done += (uint32_t)k;
			vo += k;
		}
		pos += m;
	}
	*written = pos - off;
	if (*written && pos > n->size)
		n->size = pos;
	return *written ? 0 : r;
}

static void file_modified_locked(struct ramfs_node *n,
				 const struct orfa_cred *cr)
{
	ramfs_kill_suid_locked(n, cr);
	ramfs_now(&n->mtime);
	n->ctime = n->mtime;
}

int ramfs_op_write(struct orfa_backend *be, const struct orfa_cred *cr,
		   uint64_t nodeid, void *fh, uint64_t offset,
		   const struct iovec *iov, int iovcnt, uint32_t flags,
		   uint64_t *written, struct orfa_attr *attr)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_fh *f = fh;
	struct ramfs_node *n;
	int held, r;

	*written = 0;
	r = file_use(fs, nodeid, f, O_RDONLY, &n, &held);
	if (r)
		return r;
	pthread_mutex_lock(&n->lock);
	if (!f && ramfs_perm_locked(n, cr, W_OK)) {
		r = -EACCES;
	} else {
		if ((flags | (f ? f->flags : 0)) & O_APPEND)
			offset = n->size;
		r = file_write(fs, n, offset, iov, iovcnt, written);
		if (*written)
			file_modified_locked(n, cr);
	}
	if (attr)
		ramfs_fill_attr_locked(n, attr);
	pthread_mutex_unlock(&n->lock);
	ramfs_node_unuse(fs, held);
	return r;
}

/* ---- fallocate ------------------------------------------------------- */

static int file_allocate(struct ramfs *fs, struct ramfs_node *n, uint64_t off,
			 uint64_t len, int keep_size)
{
	uint64_t end = off + len;
	uint64_t first = off >> RAMFS_CHUNK_SHIFT;
	uint64_t last = (end - 1) >> RAMFS_CHUNK_SHIFT;
	uint64_t need = (last - first + 1) * RAMFS_CHUNK_SIZE, reserve, i;
	int r = 0;

	/* charge the whole range up front: ENOSPC before anything */
	for (i = first; ramfs_rt_next(&n->u.file.rt, i, &i) && i <= last; i++)
		need -= ((struct ramfs_chunk *)
			 ramfs_rt_get(&n->u.file.rt, i))->cap;
	if (need > ramfs_capacity(fs))
		return -ENOSPC;
	r = ramfs_charge(fs, need);
	if (r)
		return r;
	reserve = need;
	for (i = first; i <= last; i++)
		if (!chunk_prepare(fs, n, i, RAMFS_CHUNK_SIZE, &reserve, &r))
			break;
	ramfs_uncharge(fs, reserve);
	/* on failure the chunks allocated stay (zeros, maybe past the
	 * end); the size only changes on success */
	if (!r && !keep_size && end > n->size)
		n->size = end;
	return r;
}

static int file_punch(struct ramfs *fs, struct ramfs_node *n, uint64_t off,
		      uint64_t len)
{
	uint64_t end = off + len;
	uint64_t fidx = off >> RAMFS_CHUNK_SHIFT;
	uint64_t lidx = (end - 1) >> RAMFS_CHUNK_SHIFT;
	uint32_t foff = (uint32_t)(off & RAMFS_CHUNK_MASK);
	uint32_t lend = (uint32_t)((end - 1) & RAMFS_CHUNK_MASK) + 1;
	int r;

	if (fidx == lidx)
		return file_zero(fs, n, fidx, foff, lend);
	r = file_zero(fs, n, fidx, foff, RAMFS_CHUNK_SIZE);
	if (!r)
		r = file_zero(fs, n, lidx, 0, lend);
	if (!r && lidx > fidx + 1)
		file_drop_from(fs, n, fidx + 1, lidx - 1);
	return r;
}

int ramfs_op_fallocate(struct orfa_backend *be, const struct orfa_cred *cr,
		       uint64_t nodeid, void *fh, uint32_t mode,
		       uint64_t offset, uint64_t length,
		       struct orfa_attr *attr)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_fh *f = fh;
	struct ramfs_node *n;
	int held, r;

	if (mode & ~(uint32_t)(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE))
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	if (length == 0)
		return -EINVAL;
	if (offset > RAMFS_MAX_FILESIZE ||
	    length > RAMFS_MAX_FILESIZE - offset)
		return -EFBIG;
	if (f && (f->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	r = ramfs_node_use(fs, nodeid, fh, &n, &held);
	if (r)
		return r;
	if (n->type != S_IFREG) {
		r = n->type == S_IFDIR ? -EISDIR : -ENODEV;
		goto out;
	}
	pthread_mutex_lock(&n->lock);
	if (!f && ramfs_perm_locked(n, cr, W_OK))
		r = -EACCES;
	else if (mode & FALLOC_FL_PUNCH_HOLE)
		r = file_punch(fs, n, offset, length);
	else
		r = file_allocate(fs, n, offset, length,
				  mode & FALLOC_FL_KEEP_SIZE);
	if (!r)
		file_modified_locked(n, cr);
	if (attr)
		ramfs_fill_attr_locked(n, attr);
	pthread_mutex_unlock(&n->lock);
out:
	ramfs_node_unuse(fs, held);
	return r;
}

/* ---- lseek ----------------------------------------------------------- */

int ramfs_op_lseek(struct orfa_backend *be, uint64_t nodeid, void *fh,
		   uint64_t offset, uint32_t whence, uint64_t *result)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_node *n;
	int held, r;
	uint64_t i;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	r = ramfs_node_use(fs, nodeid, fh, &n, &held);
	if (r)
		return r;
	if (n->type != S_IFREG) {
		r = -EINVAL;
		goto out;
	}
	pthread_mutex_lock(&n->lock);
	if (offset >= n->size) {
		r = -ENXIO;
	} else if (whence == SEEK_DATA) {
		if (!ramfs_rt_next(&n->u.file.rt,
				   offset >> RAMFS_CHUNK_SHIFT, &i)) {
			r = -ENXIO;
		} else {
			uint64_t pos = i << RAMFS_CHUNK_SHIFT;

			if (pos < offset)
				pos = offset;
			if (pos >= n->size)
				r = -ENXIO;
			else
				*result = pos;
		}
	} else {
		uint64_t j, pos;

		i = offset >> RAMFS_CHUNK_SHIFT;
		while (ramfs_rt_next(&n->u.file.rt, i, &j) && j == i)
			i++;
		pos = i << RAMFS_CHUNK_SHIFT;
		if (pos < offset)
			pos = offset;
		*result = min_u64(pos, n->size);	/* EOF is a hole */
	}
	pthread_mutex_unlock(&n->lock);
out:
	ramfs_node_unuse(fs, held);
	return r;
}

/* ---- copy_file_range ------------------------------------------------- */

/* Make chunk idx of n the (shared) chunk s, or a hole if s is NULL. */
static int chunk_install(struct ramfs *fs, struct ramfs_node *n, uint64_t idx,
			 struct ramfs_chunk *s)
{
	void **slot = ramfs_rt_slot(&n->u.file.rt, idx);
	struct ramfs_chunk *old = slot ? *slot : NULL;
	uint32_t oldcap = old ? old->cap : 0;
	int r;

	if (old == s)
		return 0;
	if (!s) {
		file_drop(fs, n, idx);
		return 0;
	}
	if (s->cap > oldcap) {
		r = ramfs_charge(fs, s->cap - oldcap);
		if (r)
			return r;
	}
	chunk_get(s);
	if (old) {
		*slot = s;
		ramfs_chunk_put(old);
	} else {
		r = ramfs_rt_insert(fs, &n->u.file.rt, idx, s);
		if (r) {
			ramfs_chunk_put(s);
			ramfs_uncharge(fs, s->cap);
			return r;
		}
	}
	if (oldcap > s->cap)
		ramfs_uncharge(fs, oldcap - s->cap);
	n->u.file.alloc = n->u.file.alloc - oldcap + s->cap;
	return 0;
}

/* Both nodes locked (they may be one).  Copies up to len bytes; *copied
 * may be short (end of input, RAMFS_COPY_MAX, or no space left). */
static int file_copy(struct ramfs *fs, struct ramfs_node *in, uint64_t off_in,
		     struct ramfs_node *out, uint64_t off_out, uint64_t len,
		     uint64_t *copied)
{
	struct ramfs_chunk **snap;
	uint64_t first, last, nsnap, done = 0, i;
	int r = 0;

	*copied = 0;
	if (off_in >= in->size)
		return 0;
	len = min_u64(min_u64(len, in->size - off_in), RAMFS_COPY_MAX);
	if (len == 0)
		return 0;
	if (off_out > RAMFS_MAX_FILESIZE || len > RAMFS_MAX_FILESIZE - off_out)
		return -EFBIG;
	/* snapshot the source: writes below copy these chunks first */
	first = off_in >> RAMFS_CHUNK_SHIFT;
	last = (off_in + len - 1) >> RAMFS_CHUNK_SHIFT;
	nsnap = last - first + 1;
	snap = calloc(nsnap, sizeof(*snap));
	if (!snap)
		return -ENOMEM;
	for (i = first; ramfs_rt_next(&in->u.file.rt, i, &i) && i <= last;
	     i++) {
		snap[i - first] = ramfs_rt_get(&in->u.file.rt, i);
		chunk_get(snap[i - first]);
	}
	while (done < len) {
		uint64_t pin = off_in + done, pout = off_out + done;
		uint64_t rem = len - done, didx = pout >> RAMFS_CHUNK_SHIFT;
		uint32_t cin = (uint32_t)(pin & RAMFS_CHUNK_MASK);
		uint32_t cout = (uint32_t)(pout & RAMFS_CHUNK_MASK);
		struct ramfs_chunk *c, *s;
		uint32_t m, dlen = 0, zto;

		s = snap[(pin >> RAMFS_CHUNK_SHIFT) - first];
		if (cin == 0 && cout == 0 && rem >= RAMFS_CHUNK_SIZE) {
			/* a whole aligned chunk: share it */
			r = chunk_install(fs, out, didx, s);
			if (r)
				break;
			done += RAMFS_CHUNK_SIZE;
			continue;
		}
		m = (uint32_t)min_u64(min_u64(RAMFS_CHUNK_SIZE - cin,
					      RAMFS_CHUNK_SIZE - cout), rem);
		if (s && cin < s->cap)
			dlen = m < s->cap - cin ? m : s->cap - cin;
		if (dlen == 0) {
			r = file_zero(fs, out, didx, cout, cout + m);
			if (r)
				break;
			done += m;
			continue;
		}
		c = chunk_prepare(fs, out, didx, (uint64_t)cout + dlen, NULL,
				  &r);
		if (!c)
			break;
		memcpy(c->data + cout, s->data + cin, dlen);
		zto = cout + m < c->cap ? cout + m : c->cap;
		if (zto > cout + dlen)
			memset(c->data + cout + dlen, 0, zto - (cout + dlen));
		done += m;
	}
	for (i = 0; i < nsnap; i++)
		if (snap[i])
			ramfs_chunk_put(snap[i]);
	free(snap);
	if (done && off_out + done > out->size)
		out->size = off_out + done;
	*copied = done;
	return done ? 0 : r;
}

int ramfs_op_copy_file_range(struct orfa_backend *be,
			     const struct orfa_cred *cr, uint64_t nodeid_in,
			     void *fh_in, uint64_t off_in,
			     uint64_t nodeid_out, void *fh_out,
			     uint64_t off_out, uint64_t len, uint32_t flags,
			     uint64_t *copied, struct orfa_attr *attr_out)
{
	struct ramfs *fs = to_fs(be);
	struct ramfs_fh *fi = fh_in, *fo = fh_out;
	struct ramfs_node *in, *out, *l1, *l2;
	int held = 0, r = 0;

	*copied = 0;
	if (flags)
		return -EINVAL;
	if ((fi && (fi->flags & O_ACCMODE) == O_WRONLY) ||
	    (fo && ((fo->flags & O_ACCMODE) == O_RDONLY ||
		    (fo->flags & O_APPEND))))
		return -EBADF;
	/* ns is taken once at most: never twice for reading */
	if (!fi || !fo) {
		pthread_rwlock_rdlock(&fs->ns);
		held = 1;
	}
	in = fi ? fi->node : ramfs_node_find(fs, nodeid_in);
	out = fo ? fo->node : ramfs_node_find(fs, nodeid_out);
	if (!in || !out) {
		r = -ESTALE;
		goto out_unuse;
	}
	if (in->nodeid != nodeid_in || out->nodeid != nodeid_out) {
		r = -EBADF;
		goto out_unuse;
	}
	if (in->type == S_IFDIR || out->type == S_IFDIR) {
		r = -EISDIR;
		goto out_unuse;
	}
	if (in->type != S_IFREG || out->type != S_IFREG) {
		r = -EINVAL;
		goto out_unuse;
	}
	if ((!fi && ramfs_perm(in, cr, R_OK)) ||
	    (!fo && ramfs_perm(out, cr, W_OK))) {
		r = -EACCES;
		goto out_unuse;
	}
	/* two node locks: lower address first */
	l1 = in < out ? in : out;
	l2 = in < out ? out : in;
	pthread_mutex_lock(&l1->lock);
	if (l2 != l1)
		pthread_mutex_lock(&l2->lock);
	r = file_copy(fs, in, off_in, out, off_out, len, copied);
	if (*copied) {
		file_modified_locked(out, cr);
		ramfs_atime_locked(in);
	}
	if (attr_out)
		ramfs_fill_attr_locked(out, attr_out);
	if (l2 != l1)
		pthread_mutex_unlock(&l2->lock);
	pthread_mutex_unlock(&l1->lock);
out_unuse:
	ramfs_node_unuse(fs, held);
	return r;
}
