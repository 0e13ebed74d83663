/*
 * transport_tcp_rx.c - receiving for the TCP transport: an incremental
 * framing state machine (header, body, data) fed from a 64 KiB staging
 * buffer that reads ahead, so a burst of small messages costs one
 * read(2).  Large body or data remainders are read straight into their
 * destination with one readv that also refills the staging buffer behind
 * them.  Frame lengths are checked against the limits before anything is
 * allocated.  Received messages live in pooled buffers lent to the caller
 * until recv_done, so several may be out on loan at once and returned
 * from any thread.
 *
 * Two-phase receive: a frame the defer resolver picks is lent with its
 * data segment still in the socket (and maybe partly staged); recv_data
 * then writes the staged part with pwrite and moves the rest socket ->
 * pipe -> file with splice, so file data never crosses user memory, or
 * reads it into memory.  A file that refuses splice gets read + pwrite;
 * after a write error the rest is read and dropped, keeping the framing.
 */
#include "transport_tcp_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* ---- receive buffers -------------------------------------------------- */

static size_t data_offset(size_t head_len)
{
	return (head_len + RX_DATA_ALIGN - 1) & ~(size_t)(RX_DATA_ALIGN - 1);
}

static struct rxbuf *rxbuf_get(struct tcp_conn *c, size_t need)
{
	struct rxbuf *b = NULL, **pp, **best = NULL;
	size_t cap;

	pthread_mutex_lock(&c->pool_lock);
	if (need <= RX_SMALL_CAP) {
		b = c->pool_small;
		if (b) {
			c->pool_small = b->next;
			c->n_small--;
		}
	} else {
		/* Best fit, so a 16 MiB buffer is not spent on 20 KiB. */
		for (pp = &c->pool_big; *pp; pp = &(*pp)->next)
			if ((*pp)->cap >= need &&
			    (!best || (*pp)->cap < (*best)->cap))
				best = pp;
		if (best) {
			b = *best;
			*best = b->next;
			c->n_big--;
			c->big_bytes -= b->cap;
		}
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (b) {
		b->next = NULL;
		return b;
	}
	if (need <= RX_SMALL_CAP)
		cap = RX_SMALL_CAP;
	else
		cap = (need + RX_BIG_ROUND - 1) & ~(size_t)(RX_BIG_ROUND - 1);
	b = malloc(sizeof(*b) + cap);
	if (b) {
		b->cap = cap;
		b->next = NULL;
	}
	return b;
}

static void pool_push_big(struct tcp_conn *c, struct rxbuf *b)
{
	b->next = c->pool_big;
	c->pool_big = b;
	c->n_big++;
	c->big_bytes += b->cap;
}

/* Keep b for reuse if the pool has room.  A full large-buffer pool gives
 * up its smallest buffer for a bigger one, so a stream of big messages
 * after many medium ones stops hitting malloc. */
static void rxbuf_put(struct tcp_conn *c, struct rxbuf *b)
{
	struct rxbuf **pp, **small = NULL, *victim;

	pthread_mutex_lock(&c->pool_lock);
	if (b->cap == RX_SMALL_CAP) {
		if (c->n_small < RX_SMALL_KEEP) {
			b->next = c->pool_small;
			c->pool_small = b;
			c->n_small++;
			b = NULL;
		}
	} else if (c->n_big < RX_BIG_KEEP &&
		   c->big_bytes + b->cap <= RX_BIG_KEEP_BYTES) {
		pool_push_big(c, b);
		b = NULL;
	} else {
		for (pp = &c->pool_big; *pp; pp = &(*pp)->next)
			if (!small || (*pp)->cap < (*small)->cap)
				small = pp;
		if (small && (*small)->cap < b->cap &&
		    c->big_bytes - (*small)->cap + b->cap <=
		    RX_BIG_KEEP_BYTES) {
			victim = *small;
			*small = victim->next;
			c->n_big--;
			c->big_bytes -= victim->cap;
			pool_push_big(c, b);
			b = victim;
		}
	}
	pthread_mutex_unlock(&c->pool_lock);
	free(b);
}

void tcp_rxbuf_free_list(struct rxbuf *b)
{
	while (b) {
		struct rxbuf *next = b->next;

		free(b);
		b = next;
	}
}

/* ---- receive ---------------------------------------------------------- */

/* Record a receive failure; it sticks: later recv calls return it too. */
static int rx_fail(struct tcp_conn *c, int err)
{
	c->rx_err = err;
	return err;
}

/* A whole frame header is staged: check it, find homes for the body and
 * the data, and move on to the body. */
static int rx_start(struct tcp_conn *c)
{
	const uint8_t *p = c->stage + c->s_start;
	struct orfa_hdr *h = &c->rx_hdr;
	uint32_t max_body = __atomic_load_n(&c->max_body, __ATOMIC_RELAXED);
	uint32_t max_data = __atomic_load_n(&c->max_data, __ATOMIC_RELAXED);
	void *sinkbuf = NULL;
	size_t head_len, need;
	struct rxbuf *b;
	char why[sizeof(c->base.why)];
	int rc;

	rc = orfa_tp_hdr_decode(p, h, max_body, max_data, why, sizeof(why));
	if (rc)
		return rx_fail(c, orfa_conn_fail(&c->base, rc, "%s", why));

	head_len = ORFA_HDR_SIZE + (size_t)h->body_len;
	c->rx_defer = h->data_len > 0 && c->defer &&
		      c->defer(c->defer_arg, h) == 1;
	if (h->data_len > 0 && c->sink && !c->rx_defer)
		sinkbuf = c->sink(c->sink_arg, h);
	need = sinkbuf || c->rx_defer ? head_len :
	       data_offset(head_len) + h->data_len;
	b = rxbuf_get(c, need);
	if (!b)
		return rx_fail(c, orfa_conn_fail(&c->base, -ENOMEM,
			"cannot allocate %zu bytes for a received frame",
			need));
	memcpy(b->mem, p, ORFA_HDR_SIZE);
	c->s_start += ORFA_HDR_SIZE;
	c->rx_buf = b;
	c->rx_in_sink = sinkbuf != NULL;
	c->rx_data = sinkbuf ? sinkbuf :
		     h->data_len && !c->rx_defer ?
		     b->mem + data_offset(head_len) : NULL;
	c->rx_state = RX_BODY;
	c->rx_dst = b->mem + ORFA_HDR_SIZE;
	c->rx_need = h->body_len;
	c->rx_got = ORFA_HDR_SIZE;
	c->rx_total = head_len + h->data_len;
	return 0;
}

/* Current segment complete: advance.  1 when the message is whole. */
static int rx_advance(struct tcp_conn *c)
{
	if (c->rx_state == RX_BODY && c->rx_hdr.data_len > 0 && !c->rx_defer) {
		c->rx_state = RX_DATA;
		c->rx_dst = c->rx_data;
		c->rx_need = c->rx_hdr.data_len;
		return 0;
	}
	return 1;
}

/* Read more from the socket.  >0 bytes read, 0 at EOF, or -errno. */
static ssize_t rx_fill(struct tcp_conn *c)
{
	size_t avail = c->s_end - c->s_start;
	ssize_t r;

	/* We only read when staging cannot make progress: at most a partial
	 * header (< 24 bytes) is left, so moving it down is cheap. */
	if (c->s_start > 0) {
		memmove(c->stage, c->stage + c->s_start, avail);
		c->s_start = 0;
		c->s_end = avail;
	}
	if (c->rx_state != RX_HDR && c->rx_need >= RX_DIRECT_MIN) {
		/* Big remainder: straight into place, read ahead behind it. */
		struct iovec iov[2] = {
			{ .iov_base = c->rx_dst, .iov_len = c->rx_need },
			{ .iov_base = c->stage + c->s_end,
			  .iov_len = RX_STAGE_SIZE - c->s_end },
		};
		size_t k;

		r = readv(c->fd, iov, 2);
		if (r > 0) {
			k = min_sz((size_t)r, c->rx_need);
			c->rx_dst += k;
			c->rx_need -= k;
			c->rx_got += k;
			c->s_end += (size_t)r - k;
		}
		c->rx_drained = r > 0 && (size_t)r < iov[0].iov_len +
						     iov[1].iov_len;
	} else {
		size_t want = RX_STAGE_SIZE - c->s_end;

		r = read(c->fd, c->stage + c->s_end, want);
		if (r > 0)
			c->s_end += (size_t)r;
		c->rx_drained = r > 0 && (size_t)r < want;
	}
	return r < 0 ? -errno : r;
}

/* Move what staging holds into the frame being read, starting frames
 * whose header is staged.  1: a message is whole; 0: staging has nothing
 * more for it; or the negative errno of a refused frame. */
static int rx_consume(struct tcp_conn *c)
{
	for (;;) {
		size_t avail = c->s_end - c->s_start, k;
		int rc;

		if (c->rx_state == RX_HDR) {
			if (avail < ORFA_HDR_SIZE)
				return 0;
			rc = rx_start(c);
			if (rc)
				return rc;
			continue;
		}
		if (c->rx_need > 0 && avail == 0)
			return 0;
		k = min_sz(avail, c->rx_need);
		memcpy(c->rx_dst, c->stage + c->s_start, k);
		c->s_start += k;
		c->rx_dst += k;
		c->rx_need -= k;
		c->rx_got += k;
		if (c->rx_need == 0 && rx_advance(c))
			return 1;
	}
}

/* The peer closed the connection: an orderly end between frames, a
 * truncated frame otherwise. */
static int rx_eof(struct tcp_conn *c)
{
	if (tcp_is_closed(c))
		return -ENOTCONN;
	if (c->rx_state == RX_HDR && c->s_end == c->s_start)
		return rx_fail(c, orfa_conn_fail(&c->base, -ECONNRESET,
						 "peer closed connection"));
	return rx_fail(c, orfa_conn_fail(&c->base, -ECONNRESET,
		"truncated frame: peer closed connection after %zu of %zu "
		"bytes",
		c->rx_state == RX_HDR ? c->s_end - c->s_start : c->rx_got,
		c->rx_state == RX_HDR ? (size_t)ORFA_HDR_SIZE : c->rx_total));
}

/* Read more from the socket, waiting for it in blocking mode.  1: the
 * read completed a message; 0: go on; -EAGAIN (non-blocking: nothing
 * there) or the connection's error. */
static int rx_read_more(struct tcp_conn *c)
{
	ssize_t r;
	int rc;

	if (c->rx_drained) {
		/* The last read took less than it asked for: the socket was
		 * empty then, and a read now would most likely say EAGAIN.
		 * Wait for readiness instead (the caller's poll, or ours),
		 * which saves a system call per request.  Data that came
		 * meanwhile makes the fd readable, so nothing is missed. */
		c->rx_drained = 0;
		if (c->nonblock)
			return -EAGAIN;
		rc = tcp_wait_fd(c, POLLIN, 0);
		if (rc)
			return rc;
	}
	r = rx_fill(c);
	if (r > 0)
		return c->rx_state != RX_HDR && c->rx_need == 0 &&
		       rx_advance(c);
	if (r == 0)
		return rx_eof(c);
	if (r == -EINTR)
		return 0;
	if (r == -EAGAIN || r == -EWOULDBLOCK) {
		if (c->nonblock)
			return -EAGAIN;
		return tcp_wait_fd(c, POLLIN, 0);
	}
	if (tcp_is_closed(c))
		return -ENOTCONN;
	return rx_fail(c, orfa_conn_fail(&c->base, -ECONNRESET,
					 "receive failed: %s",
					 strerror((int)-r)));
}

/* The whole message goes out on loan; the next frame starts (or, for a
 * deferred data segment, waits for recv_data). */
static void rx_lend(struct tcp_conn *c, struct orfa_rxmsg *m)
{
	m->hdr = c->rx_hdr;
	m->head = c->rx_buf->mem;
	m->head_len = ORFA_HDR_SIZE + (size_t)c->rx_hdr.body_len;
	m->body = m->head + ORFA_HDR_SIZE;
	m->data = c->rx_data;
	m->data_in_sink = c->rx_in_sink;
	m->data_deferred = c->rx_defer;
	m->tp_priv = c->rx_buf;
	c->rx_buf = NULL;
	c->rx_data = NULL;
	c->rx_in_sink = 0;
	c->rx_state = c->rx_defer ? RX_DEFERRED : RX_HDR;
	c->rx_def_left = c->rx_defer ? c->rx_hdr.data_len : 0;
	c->rx_defer = 0;
}

int tcp_recv(struct orfa_conn *oc, struct orfa_rxmsg *m)
{
	struct tcp_conn *c = tcp(oc);
	int rc;

	if (tcp_is_closed(c))
		return -ENOTCONN;
	if (c->rx_err)
		return c->rx_err;
	if (c->rx_state == RX_DEFERRED)
		return -EBUSY;	/* the caller's bug: take the data first */
	for (;;) {
		rc = rx_consume(c);
		if (rc == 0)
			rc = rx_read_more(c);
		if (rc < 0)
			return rc;
		if (rc > 0)
			break;
	}
	rx_lend(c, m);
	return 0;
}

void tcp_recv_done(struct orfa_conn *oc, struct orfa_rxmsg *m)
{
	struct rxbuf *b = m->tp_priv;

	if (b) {
		if (b->next)
			rxbuf_put(tcp(oc), b->next);
		rxbuf_put(tcp(oc), b);
	}
	m->tp_priv = NULL;
	m->head = m->body = NULL;
	m->data = NULL;
}

/* ---- two-phase receive -------------------------------------------------- */

void tcp_set_defer(struct orfa_conn *oc, orfa_defer_fn fn, void *arg)
{
	tcp(oc)->defer = fn;
	tcp(oc)->defer_arg = arg;
}

/* The rest of a deferred segment cannot come: the connection is over. */
static int def_broken(struct tcp_conn *c, int err, const char *why)
{
	return rx_fail(c, orfa_conn_fail(&c->base, err, "%s with %zu bytes of "
					 "a data segment missing", why,
					 c->rx_def_left));
}

/* Wait until the socket has more of the segment: 0 or the error. */
static int def_wait(struct tcp_conn *c, int timeout_ms)
{
	int rc = tcp_wait_fd(c, POLLIN, timeout_ms);

	if (rc == -ETIMEDOUT)
		return def_broken(c, rc, "peer sent nothing for a while");
	return rc ? rx_fail(c, rc) : 0;
}

/* Up to n bytes of the segment into p, staged bytes first.  > 0 bytes,
 * or the connection's negative errno. */
static ssize_t def_read(struct tcp_conn *c, void *p, size_t n, int timeout_ms)
{
	size_t avail = c->s_end - c->s_start;
	ssize_t r;

	n = min_sz(n, c->rx_def_left);
	if (avail) {
		n = min_sz(n, avail);
		memcpy(p, c->stage + c->s_start, n);
		c->s_start += n;
		c->rx_def_left -= n;
		return (ssize_t)n;
	}
	for (;;) {
		r = read(c->fd, p, n);
		if (r > 0) {
			c->rx_def_left -= (size_t)r;
			return r;
		}
		if (r == 0)
			return def_broken(c, -ECONNRESET,
					  "truncated frame: peer closed "
					  "connection");
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return def_broken(c, -ECONNRESET, strerror(errno));
		r = def_wait(c, timeout_ms);
		if (r)
			return r;
	}
}

/* Append n bytes at p to d's file, unless it failed already. */
static void def_pwrite(int fd, const uint8_t *p, size_t n,
		       struct orfa_rxdest *d)
{
	while (n > 0 && !d->werr) {
		ssize_t w = pwrite(fd, p, n, d->off + (off_t)d->written);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			d->werr = w < 0 ? -errno : -EIO;
			break;
		}
		d->written += (size_t)w;
		p += w;
		n -= (size_t)w;
	}
}

static int def_bounce(struct tcp_conn *c)
{
	if (!c->rx_bounce)
		c->rx_bounce = malloc(RX_BOUNCE_SIZE);
	return c->rx_bounce ? 0 : -ENOMEM;
}

/* Files that do not take splice from a pipe say so with these. */
static int splice_refused(int err)
{
	return err == EINVAL || err == ENOSYS || err == EOPNOTSUPP ||
	       err == EBADF || err == ESPIPE;
}

/* Empty the pipe (n bytes) into d's file; *nosplice when it refused.
 * 0, or a negative errno when the pipe misbehaves (connection over). */
static int def_pipe_out(struct tcp_conn *c, size_t n, int fd,
			struct orfa_rxdest *d, int *nosplice)
{
	while (n > 0) {
		ssize_t w, r;

		if (!d->werr && !*nosplice) {
			loff_t off = d->off + (off_t)d->written;

			w = splice(c->pipefd[0], NULL, fd, &off, n,
				   SPLICE_F_MOVE);
			if (w > 0) {
				d->written += (size_t)w;
				n -= (size_t)w;
				continue;
			}
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && splice_refused(errno))
				*nosplice = 1;	/* copy through memory */
			else
				d->werr = w < 0 ? -errno : -EIO;
			continue;
		}
		/* Through memory (or dropped once the file failed). */
		r = read(c->pipefd[0], c->rx_bounce, min_sz(n, RX_BOUNCE_SIZE));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return def_broken(c, -EIO, "splice pipe lost data");
		def_pwrite(fd, c->rx_bounce, (size_t)r, d);
		n -= (size_t)r;
	}
	return 0;
}

/* Move the socket part of the segment through the pipe into the file.
 * 0 when done or when it should continue through memory (*nosplice), or
 * the connection's negative errno. */
static int def_splice(struct tcp_conn *c, int fd, struct orfa_rxdest *d,
		      int timeout_ms, int *nosplice)
{
	if (c->pipefd[0] < 0) {
		int cap;

		if (pipe2(c->pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
			c->pipefd[0] = c->pipefd[1] = -1;
			*nosplice = 1;
			return 0;
		}
		(void)fcntl(c->pipefd[1], F_SETPIPE_SZ, (int)RX_PIPE_SIZE);
		cap = fcntl(c->pipefd[1], F_GETPIPE_SZ);
		c->pipe_cap = cap > 0 ? (size_t)cap : 65536;
	}
	while (c->rx_def_left > 0 && !*nosplice && !d->werr) {
		ssize_t in = splice(c->fd, NULL, c->pipefd[1], NULL,
				    min_sz(c->rx_def_left, c->pipe_cap),
				    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		int rc;

		if (in == 0)
			return def_broken(c, -ECONNRESET, "truncated frame: "
					  "peer closed connection");
		if (in < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				rc = def_wait(c, timeout_ms);
				if (rc)
					return rc;
				continue;
			}
			if (splice_refused(errno)) {
				*nosplice = 1;	/* this socket does not */
				return 0;
			}
			return def_broken(c, -ECONNRESET, strerror(errno));
		}
		c->rx_def_left -= (size_t)in;
		rc = def_pipe_out(c, (size_t)in, fd, d, nosplice);
		if (rc)
			return rc;
	}
	return 0;
}

/* The segment into d->fd: staged bytes with pwrite, the rest by splice
 * where the file takes it, else read + pwrite; dropped once it failed. */
static int def_to_file(struct tcp_conn *c, struct orfa_rxdest *d,
		       int timeout_ms)
{
	int nosplice = 0, rc;

	rc = def_bounce(c);
	if (rc)
		return rc;	/* nothing taken yet */
	while (c->rx_def_left > 0) {
		size_t avail = min_sz(c->s_end - c->s_start, c->rx_def_left);
		ssize_t r;

		if (avail > 0) {		/* read ahead already */
			def_pwrite(d->fd, c->stage + c->s_start, avail, d);
			c->s_start += avail;
			c->rx_def_left -= avail;
			continue;
		}
		if (!nosplice && !d->werr) {
			rc = def_splice(c, d->fd, d, timeout_ms, &nosplice);
			if (rc)
				return rc;
			continue;
		}
		r = def_read(c, c->rx_bounce, RX_BOUNCE_SIZE, timeout_ms);
		if (r < 0)
			return (int)r;
		def_pwrite(d->fd, c->rx_bounce, (size_t)r, d);
	}
	return 0;
}

/* The segment into memory: d->buf, or a second lent buffer chained to
 * the message's (its head stays where the caller's pointers are). */
static int def_to_mem(struct tcp_conn *c, struct orfa_rxmsg *m,
		      struct orfa_rxdest *d, int timeout_ms)
{
	struct rxbuf *head = m->tp_priv, *b = NULL;
	uint8_t *dst = d->buf;
	size_t got = 0, len = c->rx_def_left;

	if (!dst) {
		b = rxbuf_get(c, len);
		if (!b)
			return -ENOMEM;
		dst = b->mem;
		head->next = b;
	}
	while (got < len) {
		ssize_t r = def_read(c, dst + got, len - got, timeout_ms);

		if (r < 0)
			return (int)r;	/* b stays chained: freed by recv_done */
		got += (size_t)r;
	}
	m->data = dst;
	m->data_in_sink = d->buf != NULL;
	return 0;
}

int tcp_recv_data(struct orfa_conn *oc, struct orfa_rxmsg *m,
		  struct orfa_rxdest *d)
{
	struct tcp_conn *c = tcp(oc);
	int timeout_ms = d->timeout_ms > 0 ? d->timeout_ms : RX_DEFER_WAIT_MS;
	int rc;

	d->written = 0;
	d->werr = 0;
	if (!m->data_deferred || c->rx_state != RX_DEFERRED || !m->tp_priv)
		return -EINVAL;
	if (c->rx_err)
		return c->rx_err;
	if (d->fd >= 0)
		rc = def_to_file(c, d, timeout_ms);
	else
		rc = def_to_mem(c, m, d, timeout_ms);
	if (rc == -ENOMEM && c->rx_def_left == m->hdr.data_len)
		return rc;	/* nothing taken: may be tried again */
	if (rc)
		return rc;
	m->data_deferred = 0;
	c->rx_state = RX_HDR;
	c->rx_drained = 0;
	return 0;
}
