/*
 * transport_tcp_tx.c - sending for the TCP transport.  Serialised by
 * tx_lock.  Header and memory data leave in one sendmsg (MSG_NOSIGNAL);
 * file data follows with sendfile, and if the file turns out shorter than
 * promised the rest is zero-filled so the framing survives.  In
 * non-blocking mode what the socket does not take is queued (head
 * copied, data referenced) and written by flush(); queued messages that
 * are pure memory are gathered into one sendmsg.  Corking queues on
 * purpose, so that a burst of replies leaves that way.
 */
#include "transport_tcp_impl.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const uint8_t tx_zeros[TX_ZERO_SIZE];

/* ---- send: message bookkeeping ---------------------------------------- */

void tcp_txq_init(struct txq *q)
{
	q->head = NULL;
	q->tail = &q->head;
	q->bytes = 0;
}

static void txq_push(struct txq *q, struct txent *e)
{
	e->next = NULL;
	*q->tail = e;
	q->tail = &e->next;
	q->bytes += e->left;
}

static struct txent *txq_pop(struct txq *q)
{
	struct txent *e = q->head;

	if (e) {
		q->head = e->next;
		if (!q->head)
			q->tail = &q->head;
		q->bytes -= e->left;
		e->next = NULL;
	}
	return e;
}

void tcp_txq_splice(struct txq *to, struct txq *from)
{
	struct txent *e;

	while ((e = txq_pop(from)))
		txq_push(to, e);
}

void tcp_txq_run_done(struct txq *q)
{
	struct txent *e;

	while ((e = txq_pop(q))) {
		if (e->done)
			e->done(e->done_arg);
		if (e->heap)
			free(e);
	}
}

/*
 * Fill e from m.  The frame header must match what follows it, since the
 * peer frames on it: body_len == head_len - 24 and data_len == the data
 * segment's length.  A mismatch is our caller's bug: -EINVAL.
 */
static int txent_init(struct txent *e, const struct orfa_txmsg *m)
{
	size_t data;
	int rc;

	memset(e, 0, sizeof(*e));
	e->fd = -1;
	e->done = m->done;
	e->done_arg = m->done_arg;
	rc = orfa_tp_txmsg_check(m, &data, NULL);
	if (rc)
		return rc;
	if (m->iov) {
		e->iov = m->iov;
		e->iovcnt = m->iovcnt;
	} else if (m->fd >= 0) {
		e->fd = m->fd;
		e->fd_off = m->fd_off;
		e->fd_rem = m->fd_len;
	}
	e->head = m->head;
	e->head_len = m->head_len;
	e->mem_rem = m->head_len + (e->iov ? data : 0);
	e->total = e->left = m->head_len + data;
	return 0;
}

/* Copy what is left of e into one heap block: the remaining head bytes
 * and the remaining iovec array (not the data it points to). */
static struct txent *txent_clone(const struct txent *e)
{
	size_t hrem = e->head_len - e->head_off;
	int niov = e->iovcnt - e->iov_idx;
	struct txent *h;
	struct iovec *iov;
	uint8_t *head;

	h = malloc(sizeof(*h) + (size_t)niov * sizeof(*iov) + hrem);
	if (!h)
		return NULL;
	*h = *e;
	iov = (struct iovec *)(h + 1);
	for (int i = 0; i < niov; i++)
		iov[i] = e->iov[e->iov_idx + i];
	if (niov > 0) {
		iov[0].iov_base = (uint8_t *)iov[0].iov_base + e->iov_off;
		iov[0].iov_len -= e->iov_off;
	}
	head = (uint8_t *)(iov + niov);
	memcpy(head, e->head + e->head_off, hrem);
	h->next = NULL;
	h->iov = iov;
	h->iovcnt = niov;
	h->iov_idx = 0;
	h->iov_off = 0;
	h->head = head;
	h->head_len = hrem;
	h->head_off = 0;
	h->heap = 1;
	return h;
}

/* Add e's unsent memory parts to out[max]; *all says whether all fit. */
static int tx_gather(const struct txent *e, struct iovec *out, int max,
		     int *all)
{
	int n = 0;

	*all = 0;
	if (e->head_off < e->head_len) {
		if (n == max)
			return n;
		out[n].iov_base = (void *)(e->head + e->head_off);
		out[n].iov_len = e->head_len - e->head_off;
		n++;
	}
	for (int i = e->iov_idx; i < e->iovcnt; i++) {
		size_t off = i == e->iov_idx ? e->iov_off : 0;

		if (e->iov[i].iov_len <= off)
			continue;
		if (n == max)
			return n;
		out[n].iov_base = (uint8_t *)e->iov[i].iov_base + off;
		out[n].iov_len = e->iov[i].iov_len - off;
		n++;
	}
	*all = 1;
	return n;
}

/* Account n sent bytes to e's memory parts; returns how many it took. */
static size_t tx_consume(struct txent *e, size_t n)
{
	size_t used = 0, k;

	if (e->head_off < e->head_len) {
		k = min_sz(n, e->head_len - e->head_off);
		e->head_off += k;
		used += k;
	}
	while (e->iov_idx < e->iovcnt) {
		size_t len = e->iov[e->iov_idx].iov_len;

		k = min_sz(n - used, len - e->iov_off);
		e->iov_off += k;
		used += k;
		if (e->iov_off < len)
			break;
		e->iov_idx++;
		e->iov_off = 0;
	}
	e->mem_rem -= used;
	e->left -= used;
	return used;
}

static void tx_account(struct txq *q, struct txent *e, size_t n)
{
	e->left -= n;
	q->bytes -= n;
}

/* ---- send: I/O -------------------------------------------------------- */

/* sendmsg with MSG_NOSIGNAL; -errno on failure. */
static ssize_t sock_sendv(int fd, struct iovec *iov, int n, int more)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
	ssize_t r = sendmsg(fd, &mh, MSG_NOSIGNAL | (more ? MSG_MORE : 0));

	return r < 0 ? -errno : r;
}

/* sendfile has no MSG_NOSIGNAL: block SIGPIPE in this thread around it and
 * swallow one it raised, so a dead peer is an error return, not a kill. */
static ssize_t sendfile_nosig(int sock, int fd, off_t *off, size_t n)
{
	sigset_t pipe_set, old, pending;
	int was_pending, err;
	ssize_t r;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	r = sendfile(sock, fd, off, n);
	err = errno;
	/* A dead peer raises SIGPIPE even when sendfile still returns a
	 * short count, so look whenever it did not send everything. */
	if (!was_pending && (r < 0 || (size_t)r < n)) {
		struct timespec zero = { 0, 0 };

		sigpending(&pending);
		if (sigismember(&pending, SIGPIPE))
			while (sigtimedwait(&pipe_set, NULL, &zero) < 0 &&
			       errno == EINTR)
				;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r < 0 ? -err : r;
}

/* Errors from sendfile that concern the socket rather than the file. */
static int sock_errno(int err)
{
	switch (err) {
	case EPIPE:
	case ECONNRESET:
	case ENOTCONN:
	case ETIMEDOUT:
	case ECONNABORTED:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ENETDOWN:
		return 1;
	default:
		return 0;
	}
}

/* The file shrank after the header promised fd_len bytes: keep the
 * framing intact by sending zeros for the missing part.  -EINTR: go on. */
static ssize_t tx_short_file(struct tcp_conn *c, struct txent *e)
{
	log_debug("tcp %s: data file ended %zu bytes early, padding with zeros",
		  c->base.peer, e->fd_rem);
	e->pad_rem += e->fd_rem;
	e->fd_rem = 0;
	return -EINTR;
}

static ssize_t tx_file_error(struct tcp_conn *c, ssize_t r)
{
	orfa_conn_fail(&c->base, -EIO, "reading file data to send failed: %s",
		       strerror((int)-r));
	return -EIO;
}

/* File data by sendfile. */
static ssize_t tx_sendfile(struct tcp_conn *c, struct txq *q, struct txent *e)
{
	off_t off = e->fd_off;
	ssize_t r;

	r = sendfile_nosig(c->fd, e->fd, &off,
			   min_sz(e->fd_rem, TX_FILE_CHUNK));
	if (r > 0) {
		e->fd_off += r;
		e->fd_rem -= (size_t)r;
		tx_account(q, e, (size_t)r);
		return r;
	}
	if (r == 0)
		return tx_short_file(c, e);
	if (r == -EINVAL || r == -ENOSYS || r == -EOVERFLOW || r == -ESPIPE) {
		/* This fd does not do sendfile: copy through memory. */
		e->use_pread = 1;
		return -EINTR;
	}
	if (r == -EAGAIN || r == -EINTR || sock_errno((int)-r))
		return r;
	return tx_file_error(c, r);
}

/* File data through the bounce buffer (pread + send). */
static ssize_t tx_pread(struct tcp_conn *c, struct txq *q, struct txent *e)
{
	size_t want = min_sz(e->fd_rem, TX_BOUNCE_SIZE);
	struct iovec iov;
	ssize_t r;

	if (!c->bounce) {
		c->bounce = malloc(TX_BOUNCE_SIZE);
		if (!c->bounce)
			return -ENOMEM;
	}
	r = pread(e->fd, c->bounce, want, e->fd_off);
	if (r < 0) {
		r = -errno;
		return r == -EINTR ? r : tx_file_error(c, r);
	}
	if (r == 0)
		return tx_short_file(c, e);
	/* Sent bytes only advance the offset; an unsent tail is read again
	 * next time, which is simpler than keeping it. */
	iov.iov_base = c->bounce;
	iov.iov_len = (size_t)r;
	r = sock_sendv(c->fd, &iov, 1, e->fd_rem > (size_t)r);
	if (r > 0) {
		e->fd_off += r;
		e->fd_rem -= (size_t)r;
		tx_account(q, e, (size_t)r);
	}
	return r;
}

/* Zero padding for a file that ended early. */
static ssize_t tx_zero_pad(struct tcp_conn *c, struct txq *q,
			   struct txent *e)
{
	struct iovec iov[16];
	size_t left = e->pad_rem;
	int n = 0;
	ssize_t r;

	while (left > 0 && n < 16) {
		iov[n].iov_base = (void *)tx_zeros;
		iov[n].iov_len = min_sz(left, TX_ZERO_SIZE);
		left -= iov[n].iov_len;
		n++;
	}
	r = sock_sendv(c->fd, iov, n, 0);
	if (r > 0) {
		e->pad_rem -= (size_t)r;
		tx_account(q, e, (size_t)r);
	}
	return r;
}


/* Write e's file range (or the zeros owed for it): >0 progress, -EAGAIN,
 * -EINTR, or another -errno that breaks the connection. */
static ssize_t tx_file(struct tcp_conn *c, struct txq *q, struct txent *e)
{
	if (e->fd_rem > 0 && !e->use_pread)
		return tx_sendfile(c, q, e);
	if (e->fd_rem > 0)
		return tx_pread(c, q, e);
	return tx_zero_pad(c, q, e);
}

/*
 * Write the entries of q, in order, as far as the socket takes them now.
 * Finished entries move to done.  0 when q is empty, -EAGAIN when the
 * socket is full, or another -errno (the connection is then broken).
 * Caller holds tx_lock.
 */
static int tx_progress(struct tcp_conn *c, struct txq *q, struct txq *done)
{
	for (;;) {
		struct txent *e = q->head;
		ssize_t r;

		if (!e)
			return 0;
		if (e->left == 0) {
			txq_push(done, txq_pop(q));
			continue;
		}
		if (e->mem_rem > 0) {
			struct iovec iov[TX_IOV_MAX];
			struct txent *x;
			int n = 0, all = 0, more = 0;
			size_t left;

			/* Gather memory of consecutive entries; stop at one
			 * whose file part must go first. */
			for (x = e; x && n < TX_IOV_MAX; x = x->next) {
				n += tx_gather(x, iov + n, TX_IOV_MAX - n,
					       &all);
				if (!all || x->fd_rem > 0 || x->pad_rem > 0) {
					more = all;
					break;
				}
			}
			r = sock_sendv(c->fd, iov, n, more);
			if (r < 0)
				goto io_error;
			left = (size_t)r;
			for (x = e; x && left > 0; x = x->next) {
				size_t u = tx_consume(x, left);

				q->bytes -= u;
				left -= u;
			}
			continue;
		}
		r = tx_file(c, q, e);
		if (r >= 0)
			continue;
io_error:
		if (r == -EINTR)
			continue;
		if (r == -EWOULDBLOCK)
			return -EAGAIN;
		return (int)r;
	}
}

/* The connection cannot send any more: remember why, fail the backlog
 * and shut the socket so the peer and our receiver notice.  Caller holds
 * tx_lock.  Returns err. */
static int tx_fail(struct tcp_conn *c, int err, struct txq *done)
{
	if (err == -EPIPE)
		err = -ECONNRESET;
	if (!c->tx_err) {
		c->tx_err = err;
		orfa_conn_fail(&c->base, err, "send failed: %s",
			       strerror(-err));
		shutdown(c->fd, SHUT_RDWR);
	}
	tcp_txq_splice(done, &c->txq);
	return err;
}

static int send_blocking(struct tcp_conn *c, struct txent *e,
			 struct txq *done)
{
	struct txq one;
	int rc;

	tcp_txq_init(&one);
	txq_push(&one, e);
	for (;;) {
		rc = tx_progress(c, &one, done);
		if (rc == 0)
			return 0;
		if (rc == -EAGAIN) {
			/* The timeout bounds each wait for socket space, i.e.
			 * how long the peer may take nothing at all. */
			rc = tcp_wait_fd(c, POLLOUT, c->send_timeout_ms);
			if (rc == 0)
				continue;
		}
		tcp_txq_splice(done, &one);
		if (rc == -ETIMEDOUT && e->left == e->total)
			return rc;	/* nothing sent: framing intact */
		if (rc == -ETIMEDOUT)
			orfa_conn_fail(&c->base, rc, "send timed out after "
				       "%d ms with %zu of %zu bytes sent",
				       c->send_timeout_ms,
				       e->total - e->left, e->total);
		return tx_fail(c, rc, done);
	}
}

static int send_nonblock(struct tcp_conn *c, struct txent *e,
			 struct txq *done)
{
	struct txent *h;
	int rc;

	if (!c->txq.head && !c->corked) {
		struct txq one;

		tcp_txq_init(&one);
		txq_push(&one, e);
		rc = tx_progress(c, &one, done);
		if (rc == 0)
			return 0;
		if (rc != -EAGAIN) {
			tcp_txq_splice(done, &one);
			return tx_fail(c, rc, done);
		}
	}
	h = txent_clone(e);
	if (!h) {
		txq_push(done, e);
		if (e->left == e->total)
			return -ENOMEM;
		orfa_conn_fail(&c->base, -ENOMEM, "cannot queue %zu bytes",
			       e->left);
		return tx_fail(c, -ENOMEM, done);
	}
	txq_push(&c->txq, h);
	return 0;
}

int tcp_send(struct orfa_conn *oc, const struct orfa_txmsg *m)
{
	struct tcp_conn *c = tcp(oc);
	struct txent e;
	struct txq done;
	int rc;

	tcp_txq_init(&done);
	rc = txent_init(&e, m);
	if (rc) {
		txq_push(&done, &e);
		goto out;
	}
	pthread_mutex_lock(&c->tx_lock);
	if (tcp_is_closed(c)) {
		rc = -ENOTCONN;
		txq_push(&done, &e);
	} else if (c->tx_err) {
		rc = c->tx_err;
		txq_push(&done, &e);
	} else if (c->nonblock) {
		rc = send_nonblock(c, &e, &done);
	} else {
		rc = send_blocking(c, &e, &done);
	}
	pthread_mutex_unlock(&c->tx_lock);
	if (rc && tcp_is_closed(c))
		rc = -ENOTCONN;
out:
	tcp_txq_run_done(&done);
	return rc;
}

int tcp_flush(struct orfa_conn *oc)
{
	struct tcp_conn *c = tcp(oc);
	struct txq done;
	int rc = 0;

	tcp_txq_init(&done);
	pthread_mutex_lock(&c->tx_lock);
	if (c->tx_err) {
		rc = c->tx_err;
	} else if (tcp_is_closed(c)) {
		tcp_txq_splice(&done, &c->txq);
		rc = -ENOTCONN;
	} else if (!c->corked) {
		rc = tx_progress(c, &c->txq, &done);
		if (rc == -EAGAIN)
			rc = 0;
		else if (rc < 0)
			rc = tx_fail(c, rc, &done);
	}
	pthread_mutex_unlock(&c->tx_lock);
	tcp_txq_run_done(&done);
	return rc;
}

int tcp_cork(struct orfa_conn *oc, int on)
{
	struct tcp_conn *c = tcp(oc);

	if (!c->nonblock)
		return 0;
	pthread_mutex_lock(&c->tx_lock);
	c->corked = !!on;
	pthread_mutex_unlock(&c->tx_lock);
	return on ? 0 : tcp_flush(oc);
}

size_t tcp_queued(struct orfa_conn *oc, int *want_write)
{
	struct tcp_conn *c = tcp(oc);
	size_t n;

	pthread_mutex_lock(&c->tx_lock);
	n = c->txq.bytes;
	/* Corked output is written by the uncork, not by polling. */
	if (want_write)
		*want_write = c->txq.head != NULL && !c->corked;
	pthread_mutex_unlock(&c->tx_lock);
	return n;
}
