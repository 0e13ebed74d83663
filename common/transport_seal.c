/*
 * transport_seal.c - the sealed path of the transport wrappers (issue 12
 * item 3): once orfa_conn_seal switched a connection, orfa_conn_send seals
 * every message (seal.c) before the transport sees it and orfa_conn_recv
 * opens every message before the caller sees it, so neither the
 * transports nor their callers change.  Encrypting needs the data segment
 * in memory of our own: it is encrypted from the caller's memory into one
 * buffer with the head (gathered first when in several pieces, read with
 * pread instead of sendfile from a file), and the caller's done() runs
 * once it was read.  In integrity-only mode data in one piece of memory is
 * sent from where it is (only the head is ours).  Two-phase receives are
 * refused while sealed (transport.c's defer trampoline): the data must be
 * verified before anything uses it.  Not here: the cryptography (seal.c),
 * the key schedule (auth.c).
 */
#include "transport.h"
#include "transport_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seal.h"

struct orfa_conn_seal {
	pthread_mutex_t tx_lock;	/* counter order = transport order */
	struct orfa_seal_dir tx;	/* under tx_lock */
	struct orfa_seal_dir rx;	/* the receiving thread's */
	int rx_failed;			/* the receiving thread's: an open
					 * failed, the connection is done */
};

int orfa_conn_seal(struct orfa_conn *c, const struct orfa_seal_keys *keys)
{
	struct orfa_conn_seal *s;

	if (__atomic_load_n(&c->seal, __ATOMIC_ACQUIRE))
		return -EALREADY;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->tx_lock, NULL);
	orfa_seal_dir_init(&s->tx, keys->tx, keys->integrity_only);
	orfa_seal_dir_init(&s->rx, keys->rx, keys->integrity_only);
	__atomic_store_n(&c->seal, s, __ATOMIC_RELEASE);
	return 0;
}

bool orfa_conn_sealed(const struct orfa_conn *c)
{
	return __atomic_load_n(&c->seal, __ATOMIC_ACQUIRE) != NULL;
}

void tp_seal_free(struct orfa_conn *c)
{
	struct orfa_conn_seal *s = c->seal;

	if (!s)
		return;
	c->seal = NULL;
	pthread_mutex_destroy(&s->tx_lock);
	orfa_seal_dir_wipe(&s->tx);
	orfa_seal_dir_wipe(&s->rx);
	free(s);
}

/* Copy m's data segment (dlen bytes) to dst: 0 or a negative errno. */
static int data_copy(const struct orfa_txmsg *m, uint8_t *dst, size_t dlen)
{
	size_t got = 0;

	if (m->iov) {
		for (int i = 0; i < m->iovcnt; i++) {
			memcpy(dst + got, m->iov[i].iov_base, m->iov[i].iov_len);
			got += m->iov[i].iov_len;
		}
		return 0;
	}
	while (got < dlen) {
		ssize_t n = pread(m->fd, dst + got, dlen - got,
				  m->fd_off + (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			/* The file shrank under the reply: zeros, as the
			 * plain path's sendfile pads. */
			memset(dst + got, 0, dlen - got);
			break;
		}
		got += (size_t)n;
	}
	return 0;
}

/*
 * The buffer of one sealed message: the caller's done (run when the
 * transport is done with the caller's data, integrity-only mode sending
 * it from where it is), then head + trailer, then (when copied) the data.
 */
struct sealed_buf {
	void (*done)(void *arg);
	void *done_arg;
	uint8_t bytes[];
};

static void sealed_buf_done(void *p)
{
	struct sealed_buf *b = p;

	if (b->done)
		b->done(b->done_arg);
	free(b);
}

/* The data segment of m, when it is one piece of memory (or none). */
static const uint8_t *data_in_place(const struct orfa_txmsg *m, size_t dlen)
{
	static const uint8_t empty[1];

	if (dlen == 0)
		return empty;
	if (m->iov && m->iovcnt == 1)
		return m->iov[0].iov_base;
	return NULL;
}

/* The caller's done, once: now (on failure, or once its data was read),
 * or chained to ours when its data is sent from where it is. */
static void caller_done(const struct orfa_txmsg *m)
{
	if (m->done)
		m->done(m->done_arg);
}

int tp_send_sealed(struct orfa_conn *c, const struct orfa_txmsg *m)
{
	struct orfa_conn_seal *s = c->seal;
	const uint8_t *src = NULL;
	struct sealed_buf *b = NULL;
	struct orfa_txmsg tx;
	struct iovec iov;
	size_t dlen = 0, blen = 0, hl = 0;
	int rc, in_place = 0;

	rc = orfa_tp_txmsg_check(m, &dlen, NULL);
	if (rc == 0) {
		blen = m->head_len - ORFA_HDR_SIZE;
		hl = m->head_len + ORFA_SEAL_TRAILER;
		if (blen + ORFA_SEAL_TRAILER > ORFA_MAX_BODY)
			rc = -EMSGSIZE;
	}
	if (rc == 0) {
		src = data_in_place(m, dlen);
		/* Integrity only: the data is sent from where it is. */
		in_place = s->tx.integrity_only && src;
		b = malloc(sizeof(*b) + hl + (in_place ? 0 : dlen));
		if (!b)
			rc = -ENOMEM;
	}
	if (rc == 0) {
		memcpy(b->bytes, m->head, m->head_len);
		b->done = in_place ? m->done : NULL;
		b->done_arg = m->done_arg;
		if (!src) {		/* several pieces, or a file */
			rc = data_copy(m, b->bytes + hl, dlen);
			src = b->bytes + hl;
		}
	}
	if (rc) {
		caller_done(m);
		free(b);
		return rc;
	}
	memset(&tx, 0, sizeof(tx));
	tx.head = b->bytes;
	tx.head_len = hl;
	iov.iov_base = in_place ? (void *)src : b->bytes + hl;
	iov.iov_len = dlen;
	tx.iov = dlen ? &iov : NULL;
	tx.iovcnt = dlen ? 1 : 0;
	tx.fd = -1;
	tx.done = sealed_buf_done;
	tx.done_arg = b;
	tx.reply_buf = m->reply_buf;
	tx.reply_buf_len = m->reply_buf_len;
	/* Encrypting: src to our copy (in place when src is already ours).
	 * The transport frees b through done, also when it fails. */
	pthread_mutex_lock(&s->tx_lock);
	orfa_seal_frame_from(&s->tx, b->bytes, blen, src,
			     in_place ? NULL : b->bytes + hl, dlen);
	if (!in_place)
		caller_done(m);	/* its data was read */
	rc = c->ops->send(c, &tx);
	pthread_mutex_unlock(&s->tx_lock);
	return rc;
}

int tp_recv_sealed(struct orfa_conn *c, struct orfa_rxmsg *m)
{
	struct orfa_conn_seal *s = c->seal;
	uint64_t seq = s->rx.seq;
	size_t blen;
	int rc;

	if (s->rx_failed)
		return orfa_conn_fail(c, -EBADMSG, "sealed stream broken");
	rc = c->ops->recv(c, m);
	if (rc < 0)
		return rc;
	if (m->data_deferred)
		rc = -EPROTO;
	else
		rc = orfa_seal_open(&s->rx, m->head, m->head_len, m->data,
				    m->hdr.data_len, &blen);
	if (rc) {
		unsigned op = m->hdr.opcode;
		unsigned long long id = (unsigned long long)m->hdr.req_id;

		s->rx_failed = 1;
		c->ops->recv_done(c, m);
		return orfa_conn_fail(c, -EBADMSG, "protected frame %llu "
				      "(opcode %u, req_id %llu) failed "
				      "verification: altered, replayed, "
				      "reordered or injected",
				      (unsigned long long)seq, op, id);
	}
	m->hdr.body_len = (uint32_t)blen;
	m->head_len = ORFA_HDR_SIZE + blen;
	return 0;
}
