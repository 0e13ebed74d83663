/*
 * orfa_contain.c - containment tests of a running orfad: a hostile client
 * speaking the protocol directly (probe_lib.h) tries to reach what its
 * session must not reach, and checks that it cannot.
 *
 * --mode main (orfad --exports with the table run-contain.sh writes:
 * a, b, ro, sq, all, net):
 *   names ".", "..", names with '/', export paths with "..";
 *   symlinks pointing out of the export (never followed: LOOKUP gives the
 *   link, OPEN gives ELOOP, READLINK gives the text); crafted and stale
 *   node and file ids (ESTALE / EBADF, the connection stays usable); ids of
 *   another export; a subdirectory session (its ".." is its root, the
 *   export root's id and ids from outside the subtree give ESTALE, a
 *   directory moved out of the subtree cannot be climbed from); a bounded
 *   rename/lookup race; a read-only export (EROFS for every modifying
 *   opcode); root_squash and all_squash; a peer outside the export's
 *   networks; a client with a key refusing a server without one.
 * --mode auth (the same table, orfad --key): the right key, a wrong key,
 *   no key, requests before AUTH, a replayed AUTH frame.
 *
 * Throughout, every reply is watched: a canary file outside the export
 * (--canary PATH, reached from the export through symlinks) must never
 * show -- its name and content never appear in a reply, and (native
 * backend) no attribute in a reply carries its inode number, its
 * directory's or the test directory's.  Its atime, mtime and content are
 * compared at the end.
 *
 * Output is TAP without a plan; the number of tests goes to --count-file.
 *   orfa_contain --addr HOST:PORT --log ORFAD_LOG --backend native|ramfs
 *                --mode main|auth --canary PATH [--key F --wrong-key F]
 *                [--count-file F]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "auth.h"
#include "codec.h"
#include "contain_channel.h"
#include "handshake.h"
#include "orfa_proto.h"
#include "probe_lib.h"
#include "seal.h"
#include "transport.h"

/* The root node id of both backends (server/backend.h). */
#define ROOT_ID 1u

static const char *g_backend = "native";
static int g_native;

/* ---- the canary and the reply watch -------------------------------------- */

static struct {
	char path[PATH_MAX];
	char name[256];		/* must never appear in a reply */
	char token[128];	/* its content: must never appear either */
	ino_t ino, dir_ino, top_ino;	/* never in a reply's attributes */
	struct stat st;		/* at the start */
	int violations;
} cn;

static int canary_setup(const char *path)
{
	char tmp[PATH_MAX], tmp2[PATH_MAX];
	struct stat st;
	FILE *f;

	snprintf(cn.path, sizeof(cn.path), "%s", path);
	snprintf(tmp, sizeof(tmp), "%s", path);
	snprintf(cn.name, sizeof(cn.name), "%s", basename(tmp));
	/* Read without moving its atime: a read by the server would. */
	f = fdopen(open(path, O_RDONLY | O_NOATIME), "r");
	if (!f)
		return -1;
	if (!fgets(cn.token, sizeof(cn.token), f))
		cn.token[0] = '\0';
	fclose(f);
	cn.token[strcspn(cn.token, "\n")] = '\0';
	/* An xattr whose value is the content token: GETXATTR/LISTXATTR
	 * through a link would show it (where the file system has them). */
	if (setxattr(path, "user.orfa_canary", cn.token, strlen(cn.token),
		     0) < 0 && errno != ENOTSUP && errno != EOPNOTSUPP)
		return -1;
	if (stat(path, &cn.st) < 0)
		return -1;
	cn.ino = cn.st.st_ino;
	snprintf(tmp, sizeof(tmp), "%s", path);
	if (stat(dirname(tmp), &st) < 0)
		return -1;
	cn.dir_ino = st.st_ino;
	snprintf(tmp2, sizeof(tmp2), "%s/..", dirname(tmp));
	if (stat(tmp2, &st) < 0)
		return -1;
	cn.top_ino = st.st_ino;
	return 0;
}

static void violation(const char *what, unsigned op)
{
	if (cn.violations++ < 10)
		diag("VIOLATION: %s in a %s reply", what, orfa_op_name(op));
}

static void watch_ino(uint64_t ino, unsigned op)
{
	/* Inode numbers of the RAM backend are its own: no comparison. */
	if (!g_native || ino == 0)
		return;
	if (ino == cn.ino)
		violation("the canary's inode number", op);
	else if (ino == cn.dir_ino)
		violation("the inode number of the canary's directory", op);
	else if (ino == cn.top_ino)
		violation("the inode number of the export's parent", op);
}

static void watch(const struct orfa_msg *rep, const void *data, size_t len)
{
	unsigned op = rep->hdr.opcode;
	const union orfa_args *a = &rep->a;

	if (len && data) {
		if (cn.name[0] && memmem(data, len, cn.name, strlen(cn.name)))
			violation("the canary's name", op);
		if (cn.token[0] &&
		    memmem(data, len, cn.token, strlen(cn.token)))
			violation("the canary's content", op);
		if (memmem(data, len, "orfa_canary", 11))
			violation("the canary's xattr name", op);
	}
	if (rep->hdr.status)
		return;
	switch (op) {
	case ORFA_OP_HELLO:
		watch_ino(a->hello_rep.root_attr.ino, op);
		break;
	case ORFA_OP_AUTH:
		watch_ino(a->auth_rep.root_attr.ino, op);
		break;
	case ORFA_OP_LOOKUP: case ORFA_OP_MKNOD: case ORFA_OP_MKDIR:
	case ORFA_OP_SYMLINK: case ORFA_OP_LINK:
		watch_ino(a->entry.attr.ino, op);
		break;
	case ORFA_OP_GETATTR: case ORFA_OP_SETATTR: case ORFA_OP_FALLOCATE:
		watch_ino(a->attr.ino, op);
		break;
	case ORFA_OP_OPEN: case ORFA_OP_OPENDIR:
		watch_ino(a->open_rep.attr.ino, op);
		break;
	case ORFA_OP_CREATE:
		watch_ino(a->create_rep.entry.attr.ino, op);
		break;
	case ORFA_OP_WRITE:
		watch_ino(a->write_rep.attr.ino, op);
		break;
	case ORFA_OP_COPY_FILE_RANGE:
		watch_ino(a->copy_rep.attr.ino, op);
		break;
	case ORFA_OP_READDIR: case ORFA_OP_READDIRPLUS: {
		int plus = op == ORFA_OP_READDIRPLUS;
		struct orfa_dirent d;
		struct orfa_entry e;
		const char *name;
		size_t off = 0;

		while (data && orfa_dirent_next(data, len, &off, plus, &d, &e,
						&name) == 1) {
			watch_ino(d.ino, op);
			if (plus)
				watch_ino(e.attr.ino, op);
		}
		break;
	}
	default:
		break;
	}
}

static void canary_check(void)
{
	struct stat st;
	char buf[256] = "";
	FILE *f;

	ok(cn.st.st_atim.tv_sec < cn.st.st_mtim.tv_sec,
	   "the canary's atime is older than its mtime: any read would have "
	   "moved it");
	ok(cn.violations == 0, "no reply named the canary, showed its content "
	   "or carried an inode number from outside the export (%d "
	   "violations)", cn.violations);
	if (!ok(stat(cn.path, &st) == 0, "the canary is still there"))
		return;
	ok(st.st_ctim.tv_sec == cn.st.st_ctim.tv_sec &&
	   st.st_ctim.tv_nsec == cn.st.st_ctim.tv_nsec &&
	   st.st_mode == cn.st.st_mode && st.st_uid == cn.st.st_uid &&
	   st.st_gid == cn.st.st_gid,
	   "the canary's inode was not changed (ctime, mode %o, owner %u:%u)",
	   (unsigned)st.st_mode, (unsigned)st.st_uid, (unsigned)st.st_gid);
	ok(getxattr(cn.path, "user.orfa_contain", NULL, 0) < 0,
	   "no xattr was set on the canary");
	ok(st.st_atim.tv_sec == cn.st.st_atim.tv_sec &&
	   st.st_atim.tv_nsec == cn.st.st_atim.tv_nsec &&
	   st.st_mtim.tv_sec == cn.st.st_mtim.tv_sec &&
	   st.st_mtim.tv_nsec == cn.st.st_mtim.tv_nsec &&
	   st.st_size == cn.st.st_size && st.st_nlink == cn.st.st_nlink,
	   "the canary was neither read nor written nor linked to (atime "
	   "%lld, mtime %lld, size %lld, links %lu unchanged)",
	   (long long)st.st_atim.tv_sec, (long long)st.st_mtim.tv_sec,
	   (long long)st.st_size, (unsigned long)st.st_nlink);
	f = fdopen(open(cn.path, O_RDONLY | O_NOATIME), "r");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
	ok(strcmp(buf, cn.token) == 0, "the canary's content is unchanged");
}

/* ---- requests probe_lib has no helper for ---------------------------------- */

static int call(struct pc *p, struct orfa_msg *m, struct orfa_msg *rep)
{
	struct orfa_msg tmp;

	return pc_call(p, m, NULL, 0, rep ? rep : &tmp, NULL, 0, NULL);
}

static void set_name(struct orfa_msg *m, const char *a, const char *b)
{
	m->name = a;
	m->namelen = a ? (uint32_t)strlen(a) : 0;
	m->name2 = b;
	m->name2len = b ? (uint32_t)strlen(b) : 0;
}

static int op_symlink(struct pc *p, uint64_t parent, const char *name,
		      const char *target, struct orfa_entry *e)
{
	struct orfa_msg m, rep;
	int st;

	req_init(p, &m, ORFA_OP_SYMLINK);
	m.a.symlink.parent = parent;
	set_name(&m, name, target);
	st = call(p, &m, &rep);
	if (st == 0 && e)
		*e = rep.a.entry;
	return st;
}

static int op_readlink(struct pc *p, uint64_t node, char *buf, size_t cap)
{
	struct orfa_msg m, rep;
	size_t len = 0;
	int st;

	req_init(p, &m, ORFA_OP_READLINK);
	m.a.node.nodeid = node;
	st = pc_call(p, &m, NULL, 0, &rep, buf, cap - 1, &len);
	buf[st == 0 && len < cap ? len : 0] = '\0';
	return st;
}

static int op_rename(struct pc *p, uint64_t parent, const char *name,
		     uint64_t newparent, const char *newname)
{
	struct orfa_msg m;

	req_init(p, &m, ORFA_OP_RENAME);
	m.a.rename.parent = parent;
	m.a.rename.newparent = newparent;
	set_name(&m, name, newname);
	return call(p, &m, NULL);
}

static int op_link(struct pc *p, uint64_t node, uint64_t newparent,
		   const char *name)
{
	struct orfa_msg m;

	req_init(p, &m, ORFA_OP_LINK);
	m.a.link.nodeid = node;
	m.a.link.newparent = newparent;
	set_name(&m, name, NULL);
	return call(p, &m, NULL);
}

static int op_mknod(struct pc *p, uint64_t parent, const char *name)
{
	struct orfa_msg m;

	req_init(p, &m, ORFA_OP_MKNOD);
	m.a.mknod.parent = parent;
	m.a.mknod.mode = S_IFIFO | 0644;
	set_name(&m, name, NULL);
	return call(p, &m, NULL);
}

static int op_setattr_size(struct pc *p, uint64_t node, uint64_t size)
{
	struct orfa_msg m;

	req_init(p, &m, ORFA_OP_SETATTR);
	m.a.setattr.nodeid = node;
	m.a.setattr.valid = ORFA_SET_SIZE;
	m.a.setattr.size = size;
	return call(p, &m, NULL);
}

static int op_setattr_mode(struct pc *p, uint64_t node, uint32_t mode)
{
	struct orfa_msg m;

	req_init(p, &m, ORFA_OP_SETATTR);
	m.a.setattr.nodeid = node;
	m.a.setattr.valid = ORFA_SET_MODE;
	m.a.setattr.mode = mode;
	return call(p, &m, NULL);
}

static int op_access(struct pc *p, uint64_t node, uint32_t mask)
{
	struct orfa_msg m;

	req_init(p, &m, ORFA_OP_ACCESS);
	m.a.access.nodeid = node;
	m.a.access.mask = mask;
	return call(p, &m, NULL);
}

static int op_setxattr(struct pc *p, uint64_t node, const char *name,
		       const char *value)
{
	struct orfa_msg m, rep;

	req_init(p, &m, ORFA_OP_SETXATTR);
	m.a.setxattr.nodeid = node;
	set_name(&m, name, NULL);
	return pc_call(p, &m, value, strlen(value), &rep, NULL, 0, NULL);
}

static int op_removexattr(struct pc *p, uint64_t node, const char *name)
{
	struct orfa_msg m;

	req_init(p, &m, ORFA_OP_REMOVEXATTR);
	m.a.removexattr.nodeid = node;
	set_name(&m, name, NULL);
	return call(p, &m, NULL);
}

/* GETXATTR (name) or LISTXATTR (name NULL) with room for the value. */
static int op_xattr(struct pc *p, unsigned op, uint64_t node,
		    const char *name)
{
	struct orfa_msg m, rep;
	char buf[4096];
	size_t len;

	req_init(p, &m, op);
	m.a.getxattr.nodeid = node;
	m.a.getxattr.size = sizeof(buf);
	set_name(&m, name, NULL);
	return pc_call(p, &m, NULL, 0, &rep, buf, sizeof(buf), &len);
}

static int op_fallocate(struct pc *p, uint64_t node, uint64_t fh)
{
	struct orfa_msg m;

	req_init(p, &m, ORFA_OP_FALLOCATE);
	m.a.fallocate.nodeid = node;
	m.a.fallocate.fh = fh;
	m.a.fallocate.length = 4096;
	return call(p, &m, NULL);
}

static int op_copy(struct pc *p, uint64_t node, uint64_t fh)
{
	struct orfa_msg m;

	req_init(p, &m, ORFA_OP_COPY_FILE_RANGE);
	m.a.copy.nodeid_in = node;
	m.a.copy.fh_in = fh;
	m.a.copy.nodeid_out = node;
	m.a.copy.fh_out = fh;
	m.a.copy.off_out = 100;
	m.a.copy.len = 3;
	return call(p, &m, NULL);
}

/* LOOKUP and give the reference straight back: the status. */
static int lookup_forget(struct pc *p, uint64_t parent, const char *name,
			 struct orfa_entry *e)
{
	struct orfa_entry tmp;
	uint64_t one = 1;
	int st = op_lookup(p, parent, name, e ? e : &tmp);

	if (st == 0)
		op_forget(p, e ? &e->nodeid : &tmp.nodeid, &one, 1);
	return st;
}

/* Connect and HELLO for path: the status (reason in reason). */
static int hello(struct pc *p, const char *path, char *reason, size_t rsz)
{
	struct orfa_msg rep;
	int st = pc_connect(p);

	if (st)
		return st;
	st = pc_hello_v(p, ORFA_PROTO_VERSION, path, &rep, reason, rsz);
	if (st)
		pc_close(p);
	return st;
}

/* The full handshake with the helper (key may be NULL).  Returns 0, a
 * positive status of a refusal (reason in msg), or a negative errno (the
 * helper's or the transport's; message in msg). */
int handshake(struct pc *p, const char *path, const struct orfa_key *key,
	      char *msg, size_t msz)
{
	struct orfa_handshake hs;
	struct orfa_msg m, rep, arep;
	size_t len = 0;
	int st;

	msg[0] = '\0';
	st = pc_connect(p);
	if (st) {
		snprintf(msg, msz, "connect: %s", strerror(-st));
		return st;
	}
	orfa_handshake_init(&hs, key, path);
	hs.want_integrity_only = g_integrity_only;
	orfa_handshake_hello(&hs, &m, ++p->next_id, ORFA_DEFAULT_MAX_DATA,
			     ORFA_FEAT_ALL);
	st = pc_call(p, &m, NULL, 0, &rep, msg, msz - 1, &len);
	if (st) {
		msg[st > 0 && len < msz ? len : 0] = '\0';
		goto out;
	}
	st = orfa_handshake_hello_reply(&hs, &rep, msg, msz);
	if (st == 1) {
		orfa_handshake_auth(&hs, &m, ++p->next_id);
		len = 0;
		st = pc_call(p, &m, NULL, 0, &arep, msg, msz - 1, &len);
		if (st) {
			msg[st > 0 && len < msz ? len : 0] = '\0';
			goto out;
		}
		st = orfa_handshake_auth_reply(&hs, &arep, &rep.a.hello_rep,
					       msg, msz);
		if (st == 0) {
			struct orfa_seal_keys keys;

			/* The server seals after its AUTH reply: so do we. */
			st = orfa_handshake_session_keys(&hs, &keys);
			if (st == 0)
				st = orfa_conn_seal(p->c, &keys);
			orfa_seal_keys_wipe(&keys);
		}
	}
	if (st == 0) {
		p->root = rep.a.hello_rep.root_nodeid;
		p->max_data = (uint32_t)rep.a.hello_rep.max_data;
		p->root_attr = rep.a.hello_rep.root_attr;
	}
out:
	orfa_handshake_clear(&hs);
	if (st)
		pc_close(p);
	return st;
}

/* ---- the export's layout -------------------------------------------------- */

struct layout {
	struct orfa_entry file, sub, inner, innerfile, elsewhere;
	struct orfa_entry to_alias, to_outdir, to_root, to_abs, up, upup;
	char alias_target[PATH_MAX + 16], abs_target[PATH_MAX + 16];
};

/*
 * Native: run-contain.sh made the tree on the server's disk.  RAM: make
 * the same tree over the wire.  Then look everything up (one reference
 * each, kept by p for the rest of the run).
 */
static int layout_get(struct pc *p, struct layout *l)
{
	char outdir[PATH_MAX], tmp[PATH_MAX];
	uint64_t fh;
	int st = 0;

	snprintf(tmp, sizeof(tmp), "%s", cn.path);
	snprintf(outdir, sizeof(outdir), "%s", dirname(tmp));
	snprintf(l->alias_target, sizeof(l->alias_target), "../%s/alias",
		 basename(outdir));
	snprintf(l->abs_target, sizeof(l->abs_target), "%s/alias", outdir);
	if (!g_native) {
		struct orfa_entry e;

		st |= op_create(p, p->root, "file", 0644, O_RDWR | O_CREAT, &e,
				&fh);
		if (!st) {
			st |= op_write(p, e.nodeid, fh, 0, "hello\n", 6, NULL,
				       NULL);
			op_fh(p, ORFA_OP_RELEASE, e.nodeid, fh, 0);
		}
		st |= op_mkdir(p, p->root, "sub", 0777, &e);
		st |= op_mkdir(p, e.nodeid, "inner", 0777, &l->inner);
		st |= op_create(p, l->inner.nodeid, "file", 0644,
				O_RDWR | O_CREAT, &e, &fh);
		if (!st)
			op_fh(p, ORFA_OP_RELEASE, e.nodeid, fh, 0);
		st |= op_mkdir(p, p->root, "elsewhere", 0777, &e);
		st |= op_symlink(p, p->root, "to_alias", l->alias_target, &e);
		st |= op_symlink(p, p->root, "to_abs", l->abs_target, &e);
		st |= op_symlink(p, p->root, "to_outdir", "../outside", &e);
		st |= op_symlink(p, p->root, "to_root", "/", &e);
		st |= op_lookup(p, p->root, "sub", &e);
		st |= op_symlink(p, e.nodeid, "up", "..", NULL);
		st |= op_symlink(p, e.nodeid, "upup", "../..", NULL);
		if (st)
			return -1;
	}
	st |= op_lookup(p, p->root, "file", &l->file);
	st |= op_lookup(p, p->root, "sub", &l->sub);
	st |= op_lookup(p, l->sub.nodeid, "inner", &l->inner);
	st |= op_lookup(p, l->inner.nodeid, "file", &l->innerfile);
	st |= op_lookup(p, p->root, "elsewhere", &l->elsewhere);
	st |= op_lookup(p, p->root, "to_alias", &l->to_alias);
	st |= op_lookup(p, p->root, "to_abs", &l->to_abs);
	st |= op_lookup(p, p->root, "to_outdir", &l->to_outdir);
	st |= op_lookup(p, p->root, "to_root", &l->to_root);
	st |= op_lookup(p, l->sub.nodeid, "up", &l->up);
	st |= op_lookup(p, l->sub.nodeid, "upup", &l->upup);
	return st ? -1 : 0;
}

/* ---- names ------------------------------------------------------------------ */

/* A request with a name the codec refuses ('/' inside): the server drops
 * the connection and logs why; a new connection works. */
static void bad_name_drops(const char *name)
{
	struct pc p;
	struct orfa_msg m;
	uint8_t buf[256];
	char me[64], valid[64];
	size_t n;
	int fd;

	fd = raw_connect(me, sizeof(me));
	if (!ok(fd >= 0 && raw_hello(fd) == 0, "raw connection for LOOKUP "
		"\"%s\"", name))
		return;
	/* A valid name of the same length, patched in place (the codec
	 * would not encode this one): the name ends the body, before its
	 * NUL. */
	memset(valid, 'x', sizeof(valid));
	valid[strlen(name)] = '\0';
	orfa_msg_init(&m, ORFA_OP_LOOKUP, 5);
	cred_fill(&m.cred);
	m.a.lookup.parent = ROOT_ID;
	m.name = valid;
	m.namelen = (uint32_t)strlen(valid);
	n = raw_frame(buf, sizeof(buf), &m, 0);
	memcpy(buf + n - m.namelen - 1, name, m.namelen);
	ok(raw_write(fd, buf, n) == 0 && raw_closed(fd),
	   "LOOKUP \"%s\": the server drops the connection", name);
	ok(log_has(me, "name contains '/'"), "... and logs why (%s)", me);
	close(fd);
	ok(pc_open(&p) == 0 && op_ping(&p) == 0, "... and serves a new one");
	pc_close(&p);
}

static void t_names(struct pc *p, const struct layout *l)
{
	struct orfa_entry e;
	char reason[512];
	struct pc q;
	int st;

	st = lookup_forget(p, p->root, "..", &e);
	ok(st == 0 && e.nodeid == p->root,
	   "LOOKUP \"..\" of the export root gives the root itself (%d)", st);
	st = lookup_forget(p, p->root, ".", &e);
	ok(st == 0 && e.nodeid == p->root, "LOOKUP \".\" gives the root");
	st = lookup_forget(p, l->sub.nodeid, "..", &e);
	ok(st == 0 && e.nodeid == p->root, "LOOKUP \"..\" of sub gives the "
	   "root (%d)", st);
	bad_name_drops("../..");
	bad_name_drops("/etc");

	ok(op_mkdir(p, p->root, "..", 0755, NULL) == EEXIST &&
	   op_mkdir(p, p->root, ".", 0755, NULL) == EEXIST,
	   "MKDIR \"..\" and \".\": EEXIST");
	ok(op_mknod(p, p->root, "..") == EEXIST, "MKNOD \"..\": EEXIST");
	ok(op_symlink(p, p->root, "..", "x", NULL) == EEXIST,
	   "SYMLINK named \"..\": EEXIST");
	ok(op_link(p, l->file.nodeid, p->root, "..") == EEXIST,
	   "LINK to \"..\": EEXIST");
	{
		uint64_t fh;

		ok(op_create(p, p->root, "..", 0644, O_RDWR | O_CREAT, NULL,
			     &fh) == EEXIST, "CREATE \"..\": EEXIST");
	}
	ok(op_unlink(p, ORFA_OP_UNLINK, p->root, "..") == EISDIR,
	   "UNLINK \"..\": EISDIR");
	ok(op_unlink(p, ORFA_OP_RMDIR, l->sub.nodeid, "..") == ENOTEMPTY &&
	   op_unlink(p, ORFA_OP_RMDIR, l->sub.nodeid, ".") == EINVAL,
	   "RMDIR \"..\" and \".\": ENOTEMPTY, EINVAL");
	ok(op_rename(p, l->sub.nodeid, "..", p->root, "moved") == EBUSY &&
	   op_rename(p, p->root, "file", l->sub.nodeid, "..") == EBUSY,
	   "RENAME from or to \"..\": EBUSY");
	ok(lookup_forget(p, p->root, "sub", &e) == 0 &&
	   e.nodeid == l->sub.nodeid, "sub is still where it was");

	/* Export paths that climb. */
	st = hello(&q, "/a/../b", reason, sizeof(reason));
	ok(st == EINVAL && strstr(reason, "..") != NULL,
	   "HELLO for /a/../b: EINVAL (\"%s\")", reason);
	pc_close(&q);
	st = hello(&q, "/a/sub/../..", reason, sizeof(reason));
	ok(st == EINVAL, "HELLO for /a/sub/../..: EINVAL (%d)", st);
	pc_close(&q);
	st = hello(&q, "/../a", reason, sizeof(reason));
	ok(st == EACCES || st == EINVAL, "HELLO for /../a: refused (%d, "
	   "\"%s\")", st, reason);
	pc_close(&q);
	st = hello(&q, "/nope", reason, sizeof(reason));
	ok(st == EACCES && strstr(reason, "export not available") != NULL &&
	   !strstr(reason, "nope"),
	   "HELLO for an unknown export: EACCES, the one refusal that "
	   "names no export (\"%s\")", reason);
	ok(log_has("HELLO refused", "no export /nope"),
	   "... and the server logs it");
	pc_close(&q);
	st = hello(&q, "/a/file", reason, sizeof(reason));
	ok(st == ENOTDIR, "HELLO for a file: ENOTDIR (%d)", st);
	pc_close(&q);
}

/* ---- symlinks ------------------------------------------------------------------ */

static void t_symlinks(struct pc *p, const struct layout *l)
{
	struct orfa_entry e;
	struct orfa_attr a;
	char text[PATH_MAX];
	uint64_t fh = 0;
	int st;

	ok(S_ISLNK(l->to_alias.attr.mode) && S_ISLNK(l->to_abs.attr.mode) &&
	   S_ISLNK(l->to_outdir.attr.mode) && S_ISLNK(l->to_root.attr.mode),
	   "LOOKUP of symlinks out of the export gives the links themselves");
	st = op_open(p, ORFA_OP_OPEN, l->to_alias.nodeid, O_RDONLY, &fh, NULL);
	ok(st == ELOOP, "OPEN of a symlink to a file outside: ELOOP (%d)", st);
	st = op_open(p, ORFA_OP_OPEN, l->to_abs.nodeid, O_RDWR, &fh, NULL);
	ok(st == ELOOP, "OPEN O_RDWR of an absolute symlink: ELOOP (%d)", st);
	st = op_open(p, ORFA_OP_OPEN, l->to_alias.nodeid, O_WRONLY | O_TRUNC,
		     &fh, NULL);
	ok(st == ELOOP, "OPEN O_WRONLY|O_TRUNC of it: ELOOP (%d)", st);
	st = op_open(p, ORFA_OP_OPENDIR, l->to_outdir.nodeid, O_RDONLY, &fh,
		     NULL);
	ok(st != 0, "OPENDIR of a symlink to a directory outside: refused "
	   "(%d)", st);
	st = op_readlink(p, l->to_alias.nodeid, text, sizeof(text));
	ok(st == 0 && strcmp(text, l->alias_target) == 0,
	   "READLINK gives the link's text (\"%s\")", text);
	st = op_readlink(p, l->to_abs.nodeid, text, sizeof(text));
	ok(st == 0 && strcmp(text, l->abs_target) == 0,
	   "READLINK of the absolute link gives its text");
	st = op_lookup(p, l->to_outdir.nodeid, "alias", &e);
	ok(st == ENOTDIR, "LOOKUP through a symlink to a directory outside: "
	   "ENOTDIR (%d)", st);
	st = op_lookup(p, l->to_root.nodeid, "etc", &e);
	ok(st == ENOTDIR, "LOOKUP through a symlink to /: ENOTDIR (%d)", st);
	st = op_lookup(p, l->upup.nodeid, "outside", &e);
	ok(st == ENOTDIR, "LOOKUP through sub/upup (../..): ENOTDIR (%d)",
	   st);
	st = op_lookup(p, l->to_alias.nodeid, "..", &e);
	ok(st == ENOTDIR, "LOOKUP \"..\" of a symlink: ENOTDIR (%d)", st);
	st = op_getattr(p, l->to_alias.nodeid, 0, &a);
	ok(st == 0 && S_ISLNK(a.mode), "GETATTR of the link describes the link");
	st = op_setattr_size(p, l->to_alias.nodeid, 0);
	ok(st != 0, "SETATTR size 0 on the link: refused (%d)", st);
	st = op_setattr_mode(p, l->to_abs.nodeid, 0666);
	ok(st != 0 || !g_native, "SETATTR mode on the link: refused, the "
	   "target is not chmod'ed (%d)", st);
	st = op_readlink(p, l->file.nodeid, text, sizeof(text));
	ok(st == EINVAL, "READLINK of a regular file: EINVAL (%d)", st);
	st = op_setxattr(p, l->to_alias.nodeid, "user.orfa_contain", "x");
	ok(st != 0, "SETXATTR user.* on the link: refused (%d)", st);
	st = op_setxattr(p, l->to_abs.nodeid, "user.orfa_contain", "x");
	ok(st != 0, "SETXATTR user.* on the absolute link: refused (%d)", st);
	ok(op_xattr(p, ORFA_OP_LISTXATTR, l->to_alias.nodeid, NULL) >= 0 &&
	   op_xattr(p, ORFA_OP_GETXATTR, l->to_alias.nodeid,
		    "user.orfa_canary") != 0,
	   "LISTXATTR and GETXATTR of the link show nothing of the canary");
	st = op_access(p, l->to_alias.nodeid, W_OK);
	(void)st;	/* whatever it says, it says it of the link */
	/* A hard link of the symlink is a symlink too. */
	st = op_link(p, l->to_alias.nodeid, p->root, "hardlink_of_link");
	if (st == 0) {
		st = op_lookup(p, p->root, "hardlink_of_link", &e);
		ok(st == 0 && S_ISLNK(e.attr.mode) &&
		   op_open(p, ORFA_OP_OPEN, e.nodeid, O_RDONLY, &fh, NULL) ==
		   ELOOP, "a hard link of the symlink is a symlink: ELOOP");
		op_unlink(p, ORFA_OP_UNLINK, p->root, "hardlink_of_link");
	} else {
		ok(st == EPERM || st == EACCES,
		   "LINK of a symlink refused (%d)", st);
	}
}

/* ---- crafted and stale ids ------------------------------------------------------ */

static void t_ids(struct pc *p, const struct layout *l)
{
	/* Unused slots, or used slots with the wrong generation (the
	 * root is slot 1 generation 0 in both backends). */
	static const uint64_t crafted[] = {
		0, 0x00000000000ffffeull, 0xdeadbeef00000001ull,
		0x0000000100000001ull, 0xffffffffffffffffull,
		0x7fffffff00000003ull,
	};
	struct orfa_entry e, e2;
	struct orfa_attr a;
	uint8_t buf[64];
	size_t len;
	uint64_t fh, dfh, counts[2] = { 1, 1 }, nodes[2];
	int good = 0, st;

	for (unsigned i = 0; i < sizeof(crafted) / sizeof(crafted[0]); i++) {
		if (op_getattr(p, crafted[i], 0, &a) == ESTALE &&
		    op_lookup(p, crafted[i], "file", &e) == ESTALE &&
		    op_open(p, ORFA_OP_OPEN, crafted[i], O_RDONLY, &fh, NULL) ==
		    ESTALE)
			good++;
		else
			diag("crafted node id %#llx not refused",
			     (unsigned long long)crafted[i]);
	}
	ok(good == (int)(sizeof(crafted) / sizeof(crafted[0])),
	   "crafted node ids: GETATTR, LOOKUP, OPEN give ESTALE (%d)", good);
	ok(op_ping(p) == 0, "the connection is still usable");

	good = 0;
	for (unsigned i = 1; i < sizeof(crafted) / sizeof(crafted[0]); i++) {
		if (op_read(p, l->file.nodeid, crafted[i], 0, 16, buf, &len) ==
		    EBADF &&
		    op_write(p, l->file.nodeid, crafted[i], 0, "x", 1, NULL,
			     NULL) == EBADF &&
		    op_fh(p, ORFA_OP_RELEASE, l->file.nodeid, crafted[i], 0) ==
		    EBADF)
			good++;
	}
	ok(good == (int)(sizeof(crafted) / sizeof(crafted[0])) - 1,
	   "crafted file ids: READ, WRITE, RELEASE give EBADF (%d)", good);

	/* A file id used on another node, a directory id used as a file. */
	st = op_open(p, ORFA_OP_OPEN, l->file.nodeid, O_RDONLY, &fh, NULL);
	ok(st == 0 && op_read(p, l->innerfile.nodeid, fh, 0, 16, buf, &len) ==
	   EBADF, "a file id with another node id: EBADF");
	st = op_open(p, ORFA_OP_OPENDIR, l->sub.nodeid, O_RDONLY, &dfh, NULL);
	ok(st == 0 && op_read(p, l->sub.nodeid, dfh, 0, 16, buf, &len) ==
	   EBADF, "a directory id used for READ: EBADF");
	op_fh(p, ORFA_OP_RELEASEDIR, l->sub.nodeid, dfh, 0);

	/* Stale file id: released, then used. */
	op_fh(p, ORFA_OP_RELEASE, l->file.nodeid, fh, 0);
	st = op_read(p, l->file.nodeid, fh, 0, 16, buf, &len);
	ok(st == EBADF, "a released file id: EBADF (%d)", st);
	st = op_fh(p, ORFA_OP_RELEASE, l->file.nodeid, fh, 0);
	ok(st == EBADF, "releasing it twice: EBADF (%d)", st);

	/* Stale node id: unlinked and forgotten. */
	st = op_create(p, p->root, "stale", 0644, O_RDWR | O_CREAT, &e, &fh);
	if (st == 0)
		op_fh(p, ORFA_OP_RELEASE, e.nodeid, fh, 0);
	ok(st == 0 && op_lookup(p, p->root, "stale", &e2) == 0 &&
	   op_unlink(p, ORFA_OP_UNLINK, p->root, "stale") == 0,
	   "a file to go stale");
	nodes[0] = nodes[1] = e.nodeid;
	op_forget(p, nodes, counts, 2);
	st = op_getattr(p, e.nodeid, 0, &a);
	ok(st == ESTALE, "its node id after unlink and FORGET: ESTALE (%d)",
	   st);
	st = op_lookup(p, e.nodeid, "x", &e2);
	ok(st == ESTALE, "LOOKUP under it: ESTALE (%d)", st);
	/* Forgetting more than one holds takes back only what one holds:
	 * another connection's reference stays. */
	{
		struct pc q;

		st = pc_open(&q);
		st |= op_lookup(&q, q.root, "file", &e);
		st |= op_lookup(&q, q.root, "file", &e);
		nodes[0] = l->file.nodeid;
		counts[0] = 1000000;
		if (st == 0)
			op_forget(&q, nodes, counts, 1);
		ok(st == 0 && op_ping(&q) == 0 &&
		   op_getattr(p, l->file.nodeid, 0, &a) == 0,
		   "FORGET of a million references held twice: the other "
		   "connection's reference still holds the node");
		pc_close(&q);
	}
	ok(op_ping(p) == 0, "after all that the connection still works");
}

/* ---- ids of another export ------------------------------------------------------ */

static void t_cross_export(struct pc *a, const struct layout *l)
{
	struct pc b;
	struct orfa_entry e, bfile;
	struct orfa_attr at;
	uint8_t buf[64];
	size_t len;
	uint64_t afh = 0, bfh = 0;
	char reason[256];
	int st;

	st = hello(&b, "/b", reason, sizeof(reason));
	if (!ok(st == 0, "HELLO for export b (%d %s)", st, reason))
		return;
	if (!g_native) {
		st = op_create(&b, b.root, "bfile", 0644, O_RDWR | O_CREAT, &e,
			       &bfh);
		if (st == 0) {
			op_write(&b, e.nodeid, bfh, 0, "b-secret\n", 9, NULL,
				 NULL);
			op_fh(&b, ORFA_OP_RELEASE, e.nodeid, bfh, 0);
		}
	}
	/* Node ids of the RAM backend are small and the same in every
	 * export: a's id may name one of b's nodes.  What matters is that
	 * it never names a's: a's "file" holds "hello\n" (6 bytes), b has
	 * only its root and "bfile" with "b-secret\n" (9 bytes). */
	ok(op_lookup(&b, b.root, "bfile", &bfile) == 0 &&
	   bfile.attr.size == 9, "export b has its own file");
	st = op_lookup(&b, b.root, "file", &e);
	ok(st == ENOENT, "LOOKUP of a's file name on b: ENOENT (%d)", st);
	st = op_lookup(&b, b.root, "sub", &e);
	ok(st == ENOENT, "LOOKUP of a's directory name on b: ENOENT (%d)", st);

	st = op_getattr(&b, l->file.nodeid, 0, &at);
	ok(st == ESTALE || (st == 0 && at.size != 6),
	   "a's file node id on b does not reach a's file (%d)", st);
	st = op_lookup(&b, l->sub.nodeid, "inner", &e);
	ok(st == ESTALE || st == ENOENT || st == ENOTDIR,
	   "a's directory node id on b does not reach a's directory (%d)",
	   st);
	st = op_open(&b, ORFA_OP_OPEN, l->file.nodeid, O_RDONLY, &bfh, NULL);
	len = 0;
	if (st == 0) {
		op_read(&b, l->file.nodeid, bfh, 0, sizeof(buf), buf, &len);
		op_fh(&b, ORFA_OP_RELEASE, l->file.nodeid, bfh, 0);
	}
	ok(st == ESTALE || (st == 0 && (len != 6 || memcmp(buf, "hello", 5))),
	   "OPEN and READ of a's node id on b do not read a's file (%d)", st);
	st = op_open(a, ORFA_OP_OPEN, l->file.nodeid, O_RDONLY, &afh, NULL);
	ok(st == 0 && op_read(&b, l->file.nodeid, afh, 0, 16, buf, &len) ==
	   EBADF, "a's file id on b: EBADF");
	ok(op_read(&b, bfile.nodeid, afh, 0, 16, buf, &len) == EBADF,
	   "a's file id with b's node id: EBADF");
	op_fh(a, ORFA_OP_RELEASE, l->file.nodeid, afh, 0);
	st = op_getattr(a, bfile.nodeid, 0, &at);
	ok(st == ESTALE || (st == 0 && at.size != 9),
	   "b's node id on a does not reach b's file (%d)", st);
	ok(op_ping(&b) == 0 && op_ping(a) == 0, "both connections still work");
	pc_close(&b);
}

/* ---- subdirectory sessions --------------------------------------------------------- */

static void t_subdir(struct pc *a, const struct layout *l)
{
	struct pc s;
	struct orfa_entry e, mv, inner, root_e;
	struct orfa_attr at;
	char reason[256];
	uint64_t fh, one = 1;
	int st;

	st = hello(&s, "/a/sub", reason, sizeof(reason));
	if (!ok(st == 0 && s.root == l->sub.nodeid,
		"HELLO for /a/sub: the session root is sub (%d %s)", st,
		reason))
		return;
	st = op_lookup(&s, s.root, "..", &e);
	ok(st == 0 && e.nodeid == s.root,
	   "LOOKUP \"..\" of the session root gives the session root (%d)",
	   st);
	if (st == 0)
		op_forget(&s, &e.nodeid, &one, 1);
	st = op_lookup(&s, s.root, "inner", &inner);
	ok(st == 0, "LOOKUP inner");
	st = op_lookup(&s, inner.nodeid, "..", &e);
	ok(st == 0 && e.nodeid == s.root, "LOOKUP \"..\" of inner gives the "
	   "session root");
	if (st == 0) {
		op_forget(&s, &e.nodeid, &one, 1);
		st = op_lookup(&s, e.nodeid, "..", &e);
		ok(st == 0 && e.nodeid == s.root, "and again \"..\": still the "
		   "session root");
		if (st == 0)
			op_forget(&s, &e.nodeid, &one, 1);
	}
	st = op_getattr(&s, ROOT_ID, 0, &at);
	ok(st == ESTALE, "GETATTR of the export root's id (1): ESTALE (%d)",
	   st);
	st = op_lookup(&s, ROOT_ID, "file", &e);
	ok(st == ESTALE, "LOOKUP under the export root's id: ESTALE (%d)", st);
	st = op_open(&s, ORFA_OP_OPENDIR, ROOT_ID, O_RDONLY, &fh,
		     NULL);
	ok(st == ESTALE, "OPENDIR of the export root's id: ESTALE (%d)", st);
	st = op_mkdir(&s, ROOT_ID, "x", 0755, &e);
	ok(st == ESTALE, "MKDIR under the export root's id: ESTALE (%d)", st);
	st = op_getattr(&s, l->file.nodeid, 0, &at);
	ok(st == ESTALE, "a node id outside the subtree (handed to another "
	   "session): ESTALE (%d)", st);
	st = op_open(&s, ORFA_OP_OPEN, l->file.nodeid, O_RDONLY, &fh, NULL);
	ok(st == ESTALE, "OPEN of it: ESTALE (%d)", st);
	st = op_rename(&s, inner.nodeid, "file", ROOT_ID, "x");
	ok(st == ESTALE, "RENAME out to the export root: ESTALE (%d)", st);
	st = op_lookup(&s, s.root, "inner", &e);
	ok(st == 0 && lookup_forget(&s, inner.nodeid, "file", &e) == 0,
	   "inner/file is still in place");
	st = op_lookup(&s, inner.nodeid, "file", &e);
	ok(st == 0 && op_link(&s, e.nodeid, ROOT_ID, "x") == ESTALE,
	   "LINK of a file it holds into the export root: ESTALE");
	st = op_lookup(&s, s.root, "up", &e);
	ok(st == 0 && S_ISLNK(e.attr.mode) &&
	   op_open(&s, ORFA_OP_OPEN, e.nodeid, O_RDONLY, &fh, NULL) == ELOOP,
	   "sub/up (-> ..) is a symlink that is not followed");

	/* READDIRPLUS of the session root: ".." shows the root itself. */
	st = op_open(&s, ORFA_OP_OPENDIR, s.root, O_RDONLY, &fh, NULL);
	if (st == 0) {
		uint8_t *buf = malloc(65536);
		struct orfa_msg m;
		size_t len = 0, off = 0;
		struct orfa_dirent d;
		const char *name;
		uint64_t dotdot_ino = 0;

		req_init(&s, &m, ORFA_OP_READDIRPLUS);
		m.a.readdir.nodeid = s.root;
		m.a.readdir.fh = fh;
		m.a.readdir.size = 65536;
		st = buf ? pc_call(&s, &m, NULL, 0, NULL, buf, 65536, &len) :
			   -ENOMEM;
		while (st == 0 && orfa_dirent_next(buf, len, &off, 1, &d, &e,
						   &name) == 1) {
			if (d.namelen == 2 && !memcmp(name, "..", 2))
				dotdot_ino = d.ino;
			else if (e.nodeid)
				op_forget(&s, &e.nodeid, &one, 1);
		}
		ok(st == 0 && dotdot_ino == s.root_attr.ino,
		   "READDIRPLUS of the session root: \"..\" shows the root "
		   "(ino %llu)", (unsigned long long)dotdot_ino);
		free(buf);
		op_fh(&s, ORFA_OP_RELEASEDIR, s.root, fh, 0);
	}

	/* A directory moved out of the subtree by another session: its
	 * ".." is not followed. */
	st = op_mkdir(a, l->sub.nodeid, "mv", 0777, &e);
	ok(st == 0 && op_lookup(&s, s.root, "mv", &mv) == 0,
	   "a directory sub/mv, held by the subdirectory session");
	st = op_rename(a, l->sub.nodeid, "mv", l->elsewhere.nodeid, "mv");
	ok(st == 0, "another session moves it out of the subtree");
	st = op_lookup(&s, mv.nodeid, "..", &e);
	ok(st == EACCES, "\"..\" of the moved directory: EACCES, not its new "
	   "parent (%d)", st);
	if (st == 0)
		op_forget(&s, &e.nodeid, &one, 1);
	st = op_rename(a, l->elsewhere.nodeid, "mv", l->sub.nodeid, "mv");
	ok(st == 0 && op_lookup(&s, mv.nodeid, "..", &root_e) == 0 &&
	   root_e.nodeid == s.root, "moved back: its \"..\" is the session "
	   "root again");
	op_unlink(a, ORFA_OP_RMDIR, l->sub.nodeid, "mv");
	ok(op_ping(&s) == 0, "the subdirectory session still works");
	pc_close(&s);
}

/* ---- a bounded rename / lookup race ------------------------------------------------ */

#define RACE_SECONDS 2.0

/* Child: rename sub/r1/d to elsewhere/d and back on its own connection
 * until the time is up.  Exit status: 0, or 1 when a rename failed. */
static int race_renamer(uint64_t r1, uint64_t elsewhere)
{
	struct pc p;
	double end = now_s() + RACE_SECONDS;
	int n = 0;

	if (pc_open(&p))
		return 1;
	while (now_s() < end) {
		if (op_rename(&p, r1, "d", elsewhere, "d") ||
		    op_rename(&p, elsewhere, "d", r1, "d"))
			return 1;
		n++;
	}
	pc_close(&p);
	printf("# renamer: %d round trips\n", n);
	return 0;
}

static void t_race(struct pc *a, const struct layout *l)
{
	struct pc s, w;
	struct orfa_entry r1, r1s, d, e, f;
	uint64_t one = 1, fh;
	unsigned n = 0, up_ok = 0, up_refused = 0, wrong = 0, wf = 0;
	unsigned w_wrong = 0;
	double end;
	pid_t pid;
	int st, status = -1;

	st = op_mkdir(a, l->sub.nodeid, "r1", 0777, &r1);
	st |= op_mkdir(a, r1.nodeid, "d", 0777, &d);
	st |= op_create(a, d.nodeid, "f", 0644, O_RDWR | O_CREAT, &f, &fh);
	if (!ok(st == 0, "race: sub/r1/d/f"))
		return;
	op_fh(a, ORFA_OP_RELEASE, f.nodeid, fh, 0);
	/* s: a subdirectory session holding r1 and d; w: a whole-export
	 * session holding them too. */
	st = hello(&s, "/a/sub", NULL, 0);
	st |= op_lookup(&s, s.root, "r1", &r1s);
	st |= op_lookup(&s, r1s.nodeid, "d", &e);
	st |= pc_open(&w);
	st |= op_lookup(&w, l->sub.nodeid, "r1", &e);
	st |= op_lookup(&w, r1.nodeid, "d", &e);
	if (!ok(st == 0, "race: two sessions hold sub/r1/d"))
		return;

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(race_renamer(r1.nodeid, l->elsewhere.nodeid));
	end = now_s() + RACE_SECONDS;
	while (now_s() < end && n < 1000000) {
		n++;
		st = op_lookup(&s, d.nodeid, "..", &e);
		if (st == 0) {
			if (e.nodeid == r1.nodeid)
				up_ok++;
			else
				wrong++;
			op_forget(&s, &e.nodeid, &one, 1);
		} else if (st == EACCES || st == ENOENT || st == ESTALE) {
			up_refused++;
		} else {
			wrong++;
		}
		st = op_lookup(&s, d.nodeid, "f", &e);
		if (st == 0) {
			wf += e.nodeid == f.nodeid;
			op_forget(&s, &e.nodeid, &one, 1);
		}
		st = op_lookup(&w, d.nodeid, "..", &e);
		if (st == 0) {
			if (e.nodeid != r1.nodeid &&
			    e.nodeid != l->elsewhere.nodeid)
				w_wrong++;
			op_forget(&w, &e.nodeid, &one, 1);
		}
	}
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "race: the renamer ran for %.0f s without errors", RACE_SECONDS);
	ok(wrong == 0, "race: the subdirectory session's \"..\" of d was "
	   "always r1 or refused (%u lookups: %u r1, %u refused, %u other)",
	   n, up_ok, up_refused, wrong);
	ok(w_wrong == 0, "race: the whole-export session's \"..\" of d was "
	   "always r1 or elsewhere (%u other)", w_wrong);
	ok(wf > 0, "race: d/f was found under d throughout (%u times)", wf);
	ok(op_ping(&s) == 0 && op_ping(&w) == 0,
	   "race: both sessions still work");
	pc_close(&s);
	pc_close(&w);
}

/* ---- read-only export ------------------------------------------------------------ */

static void t_readonly(const struct layout *l)
{
	struct pc r;
	struct orfa_entry e;
	struct orfa_msg m;
	uint8_t buf[64];
	char reason[256];
	uint64_t file, fh = 12345, rfh = 0;
	size_t len = 0;
	int st, n = 0, good = 0;

	st = hello(&r, "/ro", reason, sizeof(reason));
	if (!ok(st == 0, "HELLO for the read-only export (%d %s)", st, reason))
		return;
	/* A real file where there is one (native: the export's "file"). */
	file = r.root;
	if (op_lookup(&r, r.root, "file", &e) == 0)
		file = e.nodeid;
	if (g_native) {
		st = op_open(&r, ORFA_OP_OPEN, file, O_RDONLY, &rfh, NULL);
		ok(st == 0 && op_read(&r, file, rfh, 0, sizeof(buf), buf,
				      &len) == 0 && len == 6 &&
		   !memcmp(buf, "hello\n", 6),
		   "ro: OPEN O_RDONLY and READ work (%d)", st);
		fh = rfh;
	}
#define EXPECT_EROFS(expr, what) do {					\
		int st_ = (expr);					\
		n++;							\
		if (st_ == EROFS)					\
			good++;						\
		else							\
			diag("ro: %s gave %d, not EROFS", what, st_);	\
	} while (0)
	EXPECT_EROFS(op_setattr_size(&r, file, 0), "SETATTR size");
	EXPECT_EROFS(op_setattr_mode(&r, r.root, 0777), "SETATTR mode");
	EXPECT_EROFS(op_mknod(&r, r.root, "n"), "MKNOD");
	EXPECT_EROFS(op_mkdir(&r, r.root, "d", 0755, NULL), "MKDIR");
	EXPECT_EROFS(op_unlink(&r, ORFA_OP_UNLINK, r.root, "file"), "UNLINK");
	EXPECT_EROFS(op_unlink(&r, ORFA_OP_RMDIR, r.root, "sub"), "RMDIR");
	EXPECT_EROFS(op_symlink(&r, r.root, "s", "t", NULL), "SYMLINK");
	EXPECT_EROFS(op_rename(&r, r.root, "file", r.root, "file2"),
		     "RENAME");
	EXPECT_EROFS(op_link(&r, file, r.root, "l"), "LINK");
	EXPECT_EROFS(op_open(&r, ORFA_OP_OPEN, file, O_WRONLY, &rfh, NULL),
		     "OPEN O_WRONLY");
	EXPECT_EROFS(op_open(&r, ORFA_OP_OPEN, file, O_RDWR, &rfh, NULL),
		     "OPEN O_RDWR");
	EXPECT_EROFS(op_open(&r, ORFA_OP_OPEN, file, O_RDONLY | O_TRUNC, &rfh,
			     NULL), "OPEN O_TRUNC");
	EXPECT_EROFS(op_create(&r, r.root, "c", 0644, O_RDWR | O_CREAT, NULL,
			       &rfh), "CREATE");
	EXPECT_EROFS(op_write(&r, file, fh, 0, "x", 1, NULL, NULL), "WRITE");
	EXPECT_EROFS(op_setxattr(&r, file, "user.orfa", "v"), "SETXATTR");
	EXPECT_EROFS(op_removexattr(&r, file, "user.orfa"), "REMOVEXATTR");
	EXPECT_EROFS(op_fallocate(&r, file, fh), "FALLOCATE");
	EXPECT_EROFS(op_copy(&r, file, fh), "COPY_FILE_RANGE");
	EXPECT_EROFS(op_access(&r, file, W_OK), "ACCESS W_OK");
#undef EXPECT_EROFS
	ok(good == n, "ro: every modifying opcode gives EROFS (%d of %d)",
	   good, n);
	ok(op_access(&r, r.root, R_OK) == 0 &&
	   op_getattr(&r, r.root, 0, NULL) == 0,
	   "ro: ACCESS R_OK and GETATTR work");
	req_init(&r, &m, ORFA_OP_STATFS);
	m.a.node.nodeid = r.root;
	ok(call(&r, &m, NULL) == 0, "ro: STATFS works");
	if (g_native)
		op_fh(&r, ORFA_OP_RELEASE, file, fh, 0);
	ok(op_ping(&r) == 0, "ro: the connection still works");
	pc_close(&r);
	(void)l;
}

/* After the ro test: the file the ro session tried to change is intact. */
static void readonly_left_alone(struct pc *a, const struct layout *l)
{
	uint8_t buf[64];
	size_t len = 0;
	uint64_t fh;
	int st;

	st = op_open(a, ORFA_OP_OPEN, l->file.nodeid, O_RDONLY, &fh, NULL);
	ok(st == 0 && op_read(a, l->file.nodeid, fh, 0, sizeof(buf), buf,
			      &len) == 0 && len == 6 &&
	   !memcmp(buf, "hello\n", 6) &&
	   lookup_forget(a, a->root, "file2", NULL) == ENOENT,
	   "ro: the export's file is unchanged and nothing was created");
	if (st == 0)
		op_fh(a, ORFA_OP_RELEASE, l->file.nodeid, fh, 0);
}

/* ---- squashing ----------------------------------------------------------------------- */

static void t_squash(const char *dir)
{
	struct pc q;
	struct orfa_entry e;
	struct orfa_msg m, rep;
	char reason[256], path[PATH_MAX + 32];
	struct stat st;
	uint64_t fh;
	int s, root = geteuid() == 0;

	s = hello(&q, "/sq", reason, sizeof(reason));
	if (!ok(s == 0, "HELLO for the root_squash export (%d %s)", s, reason))
		return;
	if (g_native) {
		s = op_create(&q, q.root, "sq_by_root", 0644, O_RDWR | O_CREAT,
			      &e, &fh);
		if (s == 0)
			op_fh(&q, ORFA_OP_RELEASE, e.nodeid, fh, 0);
		snprintf(path, sizeof(path), "%s/export/sq_by_root", dir);
		if (stat(path, &st) < 0)
			memset(&st, 0xff, sizeof(st));
		if (root)
			ok(s == 0 && st.st_uid == 65534 && st.st_gid == 65534 &&
			   e.attr.uid == 65534,
			   "root_squash: a file created by uid 0 is owned by "
			   "65534:65534 on disk (%d, uid %u)", s,
			   s == 0 ? (unsigned)st.st_uid : 0);
		else
			skip("orfad does not run as root", "root_squash: "
			     "owner of a file created by uid 0");
		/* uid 1000 is left alone. */
		req_init(&q, &m, ORFA_OP_CREATE);
		m.cred.uid = 1000;
		m.cred.gid = 1000;
		m.a.create.parent = q.root;
		m.a.create.mode = 0644;
		m.a.create.flags = O_RDWR | O_CREAT;
		m.name = "sq_by_1000";
		m.namelen = (uint32_t)strlen(m.name);
		s = call(&q, &m, &rep);
		if (s == 0)
			op_fh(&q, ORFA_OP_RELEASE,
			      rep.a.create_rep.entry.nodeid,
			      rep.a.create_rep.fh, 0);
		if (root)
			ok(s == 0 && rep.a.create_rep.entry.attr.uid == 1000,
			   "root_squash: uid 1000 stays 1000 (%d)", s);
		else
			skip("orfad does not run as root",
			     "root_squash: uid 1000 stays 1000");
	} else {
		/* The RAM root is root's 0755: squashed root may not write. */
		s = op_create(&q, q.root, "sq_by_root", 0644, O_RDWR | O_CREAT,
			      &e, &fh);
		if (root)
			ok(s == EACCES, "root_squash: uid 0 acts as nobody: "
			   "CREATE in root's directory gives EACCES (%d)", s);
		else
			skip("orfad does not run as root",
			     "root_squash on the RAM backend");
		ok(op_access(&q, q.root, W_OK) == EACCES || !root,
		   "root_squash: ACCESS W_OK of root's directory: EACCES");
	}
	pc_close(&q);

	s = hello(&q, "/all", reason, sizeof(reason));
	if (!ok(s == 0, "HELLO for the all_squash export (%d %s)", s, reason))
		return;
	if (g_native) {
		req_init(&q, &m, ORFA_OP_CREATE);
		m.cred.uid = 1000;
		m.cred.gid = 1000;
		m.cred.ngroups = 1;
		m.cred.groups[0] = 0;
		m.a.create.parent = q.root;
		m.a.create.mode = 0644;
		m.a.create.flags = O_RDWR | O_CREAT;
		m.name = "all_by_1000";
		m.namelen = (uint32_t)strlen(m.name);
		s = call(&q, &m, &rep);
		if (s == 0)
			op_fh(&q, ORFA_OP_RELEASE,
			      rep.a.create_rep.entry.nodeid,
			      rep.a.create_rep.fh, 0);
		snprintf(path, sizeof(path), "%s/export/all_by_1000", dir);
		if (stat(path, &st) < 0)
			memset(&st, 0xff, sizeof(st));
		if (root)
			ok(s == 0 && st.st_uid == 4321 && st.st_gid == 4321,
			   "all_squash,anonuid=4321: a file created by uid "
			   "1000 is owned by 4321:4321 (%d)", s);
		else
			skip("orfad does not run as root", "all_squash owner");
		s = op_create(&q, q.root, "all_by_root", 0644,
			      O_RDWR | O_CREAT, &e, &fh);
		if (s == 0)
			op_fh(&q, ORFA_OP_RELEASE, e.nodeid, fh, 0);
		if (root)
			ok(s == 0 && e.attr.uid == 4321,
			   "all_squash: uid 0 too (%d, uid %u)", s,
			   s == 0 ? e.attr.uid : 0);
		else
			skip("orfad does not run as root", "all_squash root");
	} else {
		s = op_mkdir(&q, q.root, "d", 0755, &e);
		if (root)
			ok(s == EACCES, "all_squash: uid 0 acts as 4321: MKDIR "
			   "in root's directory gives EACCES (%d)", s);
		else
			skip("orfad does not run as root", "all_squash RAM");
	}
	pc_close(&q);
}

/* ---- networks, keys ------------------------------------------------------------------- */

static void t_network(void)
{
	struct pc p;
	char reason[256], me[64];
	int st;

	st = pc_connect(&p);
	if (!ok(st == 0, "connect for export net"))
		return;
	sock_name(orfa_conn_fd(p.c), me, sizeof(me));
	{
		struct orfa_msg rep;

		st = pc_hello_v(&p, ORFA_PROTO_VERSION, "/net", &rep, reason,
				sizeof(reason));
	}
	ok(st == EACCES && strstr(reason, "export not available") != NULL &&
	   !strstr(reason, "net"),
	   "an export for 10.0.0.0/8 refuses 127.0.0.1: EACCES, the same "
	   "refusal as an unknown export (\"%s\")", reason);
	ok(log_has(me, "HELLO refused: client 127.0.0.1 is not allowed to "
		   "mount /net"), "the server logs the refusal with the peer "
	   "(%s)", me);
	ok(pc_recv(&p, &(struct orfa_msg){ 0 }, NULL, 0, NULL) < 0,
	   "and closes the connection");
	pc_close(&p);
	st = hello(&p, "/net/sub", reason, sizeof(reason));
	ok(st == EACCES, "its subdirectories too (%d)", st);
	pc_close(&p);
}

static void t_key_vs_keyless_server(void)
{
	struct orfa_key key;
	struct pc p;
	char msg[256];
	int st;

	memset(&key, 7, sizeof(key));
	st = handshake(&p, "/a", &key, msg, sizeof(msg));
	ok(st == -EACCES && strstr(msg, "does not authenticate") != NULL,
	   "a client with a key refuses a server without one (\"%s\")", msg);
	pc_close(&p);
}

/* ---- authentication --------------------------------------------------------------------- */

static void t_auth(const struct orfa_key *key, const struct orfa_key *wrong)
{
	struct pc p;
	struct orfa_attr at;
	struct orfa_handshake hs;
	struct orfa_msg m, rep;
	uint8_t hbuf[512], abuf[512];
	char msg[512], me[64];
	size_t hn, an;
	int st, fd;

	st = handshake(&p, "/a", key, msg, sizeof(msg));
	ok(st == 0 && p.root == ROOT_ID,
	   "the right key: HELLO + AUTH open the session (%d %s)", st, msg);
	ok(st == 0 && op_getattr(&p, p.root, 0, &at) == 0 && op_ping(&p) == 0,
	   "the right key: requests are served");
	ok(log_has("AUTH: client authenticated", "export /a"),
	   "the server logs the authenticated client");
	if (st == 0) {
		/* A second AUTH on an open session is a protocol error. */
		orfa_msg_init(&m, ORFA_OP_AUTH, ++p.next_id);
		ok(pc_call(&p, &m, NULL, 0, &rep, NULL, 0, NULL) < 0,
		   "AUTH again on an open session: the connection is dropped");
		ok(log_has("AUTH request the server did not ask for", NULL),
		   "... with a reason in the log");
	}
	pc_close(&p);

	if (!g_native) {
		/* A fresh RAM export: make the subdirectory first. */
		if (handshake(&p, "/a", key, msg, sizeof(msg)) == 0)
			op_mkdir(&p, p.root, "sub", 0777, NULL);
		pc_close(&p);
	}
	st = handshake(&p, "/a/sub", key, msg, sizeof(msg));
	ok(st == 0 && p.root != ROOT_ID,
	   "the right key for a subdirectory: its root (%d)", st);
	pc_close(&p);
	st = handshake(&p, "/a/missing", key, msg, sizeof(msg));
	ok(st == ENOENT, "the right key, a missing subdirectory: ENOENT "
	   "after AUTH (%d \"%s\")", st, msg);
	pc_close(&p);

	st = handshake(&p, "/a", wrong, msg, sizeof(msg));
	ok(st == EACCES && strstr(msg, "authentication failed") != NULL,
	   "a wrong key: AUTH refused with EACCES (\"%s\")", msg);
	ok(log_has("AUTH refused: authentication failed for export /a", NULL),
	   "the server logs the failed authentication");
	ok(st != 0 && !p.c, "the client gets no session");
	pc_close(&p);

	st = handshake(&p, "/a", NULL, msg, sizeof(msg));
	ok(st == EACCES && strstr(msg, "requires a key") != NULL,
	   "no key: HELLO refused with EACCES (\"%s\")", msg);
	ok(log_has("HELLO refused: the server requires authentication", NULL),
	   "the server logs it");
	pc_close(&p);
	st = handshake(&p, "/a/missing", NULL, msg, sizeof(msg));
	ok(st == EACCES, "no key: a missing subdirectory shows nothing more "
	   "(EACCES, not ENOENT: %d)", st);
	pc_close(&p);

	/* HELLO asking for AUTH, then something else: dropped. */
	st = pc_connect(&p);
	if (st == 0) {
		sock_name(orfa_conn_fd(p.c), me, sizeof(me));
		orfa_handshake_init(&hs, key, "/a");
		orfa_handshake_hello(&hs, &m, ++p.next_id,
				     ORFA_DEFAULT_MAX_DATA, ORFA_FEAT_ALL);
		st = pc_call(&p, &m, NULL, 0, &rep, NULL, 0, NULL);
		ok(st == 0 && (rep.a.hello_rep.flags & ORFA_HELLO_AUTH) &&
		   rep.a.hello_rep.root_nodeid == 0,
		   "HELLO with a key: the server asks for AUTH and gives no "
		   "root yet");
		st = op_getattr(&p, ROOT_ID, 0, &at);
		ok(st < 0, "GETATTR before AUTH: the connection is dropped "
		   "(%d)", st);
		ok(log_has(me, "GETATTR request (opcode 4) before AUTH"),
		   "... and the server logs why");
		orfa_handshake_clear(&hs);
	}
	pc_close(&p);

	/* A recorded AUTH frame replayed on another connection. */
	st = pc_connect(&p);
	if (st == 0) {
		orfa_handshake_init(&hs, key, "/a");
		orfa_handshake_hello(&hs, &m, 1, ORFA_DEFAULT_MAX_DATA,
				     ORFA_FEAT_ALL);
		hn = raw_frame(hbuf, sizeof(hbuf), &m, 0);
		st = pc_call(&p, &m, NULL, 0, &rep, NULL, 0, NULL);
		if (st == 0 &&
		    orfa_handshake_hello_reply(&hs, &rep, msg, sizeof(msg)) ==
		    1) {
			orfa_handshake_auth(&hs, &m, 2);
			an = raw_frame(abuf, sizeof(abuf), &m, 0);
			st = pc_call(&p, &m, NULL, 0, &rep, NULL, 0, NULL);
		} else {
			an = 0;
			st = -1;
		}
		ok(st == 0, "a genuine session whose frames are recorded");
		orfa_handshake_clear(&hs);
		pc_close(&p);
		fd = raw_connect(me, sizeof(me));
		{
			struct orfa_hdr h;

			/* The same HELLO (same client nonce: a replay), the
			 * same AUTH: the server's nonce is new. */
			st = fd >= 0 && an && raw_write(fd, hbuf, hn) == 0 &&
			     raw_reply(fd, &h) == 0 && h.status == 0 &&
			     raw_write(fd, abuf, an) == 0 &&
			     raw_reply(fd, &h) == 0 ? (int)h.status : -1;
		}
		ok(st == EACCES, "the replayed AUTH frame on a new connection: "
		   "EACCES (%d)", st);
		ok(fd >= 0 && raw_closed(fd), "... and the connection is "
		   "closed");
		ok(log_has(me, "AUTH refused"), "... and the server logs it "
		   "(%s)", me);
		if (fd >= 0)
			close(fd);
	}
}

/* ---- main ---------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "log", required_argument, NULL, 'l' },
		{ "backend", required_argument, NULL, 'b' },
		{ "mode", required_argument, NULL, 'm' },
		{ "canary", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'k' },
		{ "wrong-key", required_argument, NULL, 'w' },
		{ "count-file", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = NULL, *mode = "main", *canary = NULL;
	const char *keyf = NULL, *wrongf = NULL, *count_file = NULL;
	struct orfa_key key, wrong;
	char dir[PATH_MAX], tmp[PATH_MAX], err[512];
	struct layout l;
	struct pc a;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'a': addr = optarg; break;
		case 'l': g_log = optarg; break;
		case 'b': g_backend = optarg; break;
		case 'm': mode = optarg; break;
		case 'C': canary = optarg; break;
		case 'k': keyf = optarg; break;
		case 'w': wrongf = optarg; break;
		case 'c': count_file = optarg; break;
		default:
			fprintf(stderr, "usage: see the top of "
				"orfa_contain.c\n");
			return 2;
		}
	}
	if (!addr || !canary ||
	    orfa_parse_address(addr, NULL, NULL, 0, g_host, sizeof(g_host),
			       g_port, sizeof(g_port)) < 0) {
		fprintf(stderr, "orfa_contain: --addr and --canary needed\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	g_native = strcmp(g_backend, "native") == 0;
	if (canary_setup(canary)) {
		fprintf(stderr, "orfa_contain: canary %s: %s\n", canary,
			strerror(errno));
		return 2;
	}
	/* The test directory: the canary's directory's parent. */
	snprintf(tmp, sizeof(tmp), "%s", canary);
	snprintf(dir, sizeof(dir), "%s", dirname(dirname(tmp)));
	g_reply_watch = watch;
	g_export = "/a";	/* pc_open, raw_hello */
	diag("containment (%s mode) against %s:%s, %s backend", mode, g_host,
	     g_port, g_backend);

	if (strcmp(mode, "auth") == 0) {
		if (!keyf || !wrongf ||
		    orfa_key_load(keyf, &key, err, sizeof(err)) ||
		    orfa_key_load(wrongf, &wrong, err, sizeof(err))) {
			fprintf(stderr, "orfa_contain: keys: %s\n", err);
			return 2;
		}
		t_auth(&key, &wrong);
		t_channel(&key);
	} else {
		char reason[256];
		int st = hello(&a, "/a", reason, sizeof(reason));

		if (!ok(st == 0, "HELLO for export a (%d %s)", st, reason))
			goto out;
		if (!ok(layout_get(&a, &l) == 0, "the export's tree (symlinks "
			"out of it, sub/, elsewhere/) is there"))
			goto out;
		t_names(&a, &l);
		t_symlinks(&a, &l);
		t_ids(&a, &l);
		t_cross_export(&a, &l);
		t_subdir(&a, &l);
		t_race(&a, &l);
		t_readonly(&l);
		readonly_left_alone(&a, &l);
		t_squash(dir);
		t_network();
		t_key_vs_keyless_server();
		ok(op_ping(&a) == 0, "the first connection survived it all");
		pc_close(&a);
	}
out:
	canary_check();
	if (count_file) {
		FILE *f = fopen(count_file, "w");

		if (f) {
			fprintf(f, "%d\n", g_n);
			fclose(f);
		}
	} else {
		printf("1..%d\n", g_n);
	}
	return g_failed ? 1 : 0;
}
