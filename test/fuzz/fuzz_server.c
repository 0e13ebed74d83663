/*
 * fuzz_server.c - libFuzzer harness for orfad's frame decoder and request
 * dispatch, against the RAM backend.
 *
 * A real server (server/: the pipeline, the handlers and the RAM backend;
 * the TCP transport) runs in this process on 127.0.0.1; each input is one
 * client connection.  The first byte selects whether a valid HELLO is sent first
 * (so most inputs reach the post-handshake dispatch table rather than the
 * handshake check); the rest goes to the server verbatim, then the client
 * half-closes and reads until the server closes or 2 s pass.  A crash,
 * sanitizer report or hang in any server thread ends the run as a finding.
 * Seeds: test/fuzz/corpus/server (written by make_seeds).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "backend.h"
#include "codec.h"
#include "log.h"
#include "server.h"
#include "transport.h"

static struct sockaddr_in server_addr;

static void quiet_sink(enum orfa_log_level level, const char *msg, void *arg)
{
	(void)level;
	(void)msg;
	(void)arg;
}

static void *serve(void *arg)
{
	orfa_server_run(arg);
	return NULL;
}

static void start_server(void)
{
	struct orfa_server_cfg cfg;
	struct orfa_tp_opts o;
	struct orfa_backend *be;
	struct orfa_listener *lst;
	struct orfa_server *srv;
	char addr[128];
	pthread_t t;

	signal(SIGPIPE, SIG_IGN);
	orfa_log_set_sink(quiet_sink, NULL);
	if (backend_ramfs_create(64u << 20, &be) < 0)
		abort();
	orfa_server_cfg_default(&cfg);
	cfg.threads = 2;
	orfa_server_listen_opts(&cfg, &o);
	if (orfa_listener_open("tcp", "127.0.0.1", "0", &o, &lst, NULL) < 0 ||
	    orfa_listener_addr(lst, addr, sizeof(addr)) < 0 ||
	    orfa_server_create(&cfg, be, lst, &srv) < 0 ||
	    pthread_create(&t, NULL, serve, srv) != 0)
		abort();
	memset(&server_addr, 0, sizeof(server_addr));
	server_addr.sin_family = AF_INET;
	server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	server_addr.sin_port = htons((uint16_t)atoi(strrchr(addr, ':') + 1));
}

static size_t hello_frame(uint8_t *buf, size_t cap)
{
	struct orfa_msg m;
	ssize_t n;

	orfa_msg_init(&m, ORFA_OP_HELLO, 1);
	m.a.hello.magic = ORFA_MAGIC;
	m.a.hello.version = ORFA_PROTO_VERSION;
	m.a.hello.max_data = 1u << 20;
	m.a.hello.features = ORFA_FEAT_ALL;
	m.name = "/";
	m.namelen = 1;
	n = orfa_req_encode(&m, buf + ORFA_HDR_SIZE, cap - ORFA_HDR_SIZE);
	if (n < 0)
		abort();
	orfa_hdr_encode(buf, &m.hdr);
	return ORFA_HDR_SIZE + (size_t)n;
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;		/* the server may close early: fine */
		p += w;
		n -= (size_t)w;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	uint8_t buf[4096];
	struct timeval tv = { 2, 0 };
	int fd, one = 1;

	pthread_once(&once, start_server);
	if (size == 0)
		return 0;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&server_addr, sizeof(server_addr)) < 0) {
		close(fd);
		return 0;
	}
	if (data[0] & 1) {
		size_t n = hello_frame(buf, sizeof(buf));
		write_all(fd, buf, n);
	}
	write_all(fd, data + 1, size - 1);
	shutdown(fd, SHUT_WR);
	for (;;) {		/* drain replies until the server closes */
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r <= 0)
			break;
	}
	close(fd);
	return 0;
}
