/*
 * transport_seal.c - the sealed path of the transport wrappers (issue 12
 * item 3): once orfa_conn_seal switched a connection, orfa_conn_send seals
 * every message (seal.c) before the transport sees it and orfa_conn_recv
 * opens every message before the caller sees it, so neither the
 * transports nor their callers change.  Sealing needs the data segment in
 * memory of our own: it is copied (from the caller's iov, or pread from
 * its fd instead of sendfile) into one buffer with the head, encrypted
 * there, and the caller's done() runs at once.  Two-phase receives are
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

static void buf_free(void *p)
{
	free(p);
}

int tp_send_sealed(struct orfa_conn *c, const struct orfa_txmsg *m)
{
	struct orfa_conn_seal *s = c->seal;
	struct orfa_txmsg tx;
	struct iovec iov;
	size_t dlen, blen;
	uint8_t *buf;
	int rc;

	rc = orfa_tp_txmsg_check(m, &dlen, NULL);
	blen = m->head_len - ORFA_HDR_SIZE;
	if (rc == 0 && blen + ORFA_SEAL_TRAILER > ORFA_MAX_BODY)
		rc = -EMSGSIZE;
	buf = rc ? NULL : malloc(m->head_len + ORFA_SEAL_TRAILER + dlen);
	if (!rc && !buf)
		rc = -ENOMEM;
	if (!rc) {
		memcpy(buf, m->head, m->head_len);
		rc = data_copy(m, buf + m->head_len + ORFA_SEAL_TRAILER, dlen);
	}
	if (m->done)
		m->done(m->done_arg);	/* the caller's data is no longer used */
	if (rc) {
		free(buf);
		return rc;
	}
	memset(&tx, 0, sizeof(tx));
	tx.head = buf;
	tx.head_len = m->head_len + ORFA_SEAL_TRAILER;
	iov.iov_base = buf + tx.head_len;
	iov.iov_len = dlen;
	tx.iov = dlen ? &iov : NULL;
	tx.iovcnt = dlen ? 1 : 0;
	tx.fd = -1;
	tx.done = buf_free;
	tx.done_arg = buf;
	tx.reply_buf = m->reply_buf;
	tx.reply_buf_len = m->reply_buf_len;
	/* The transport frees buf through done, also when it fails. */
	pthread_mutex_lock(&s->tx_lock);
	orfa_seal_frame(&s->tx, buf, blen, iov.iov_base, dlen);
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
