/*
 * exports.c - the exports file: parsing, client network matching,
 * credential squashing and the read-only filter (see exports.h).
 * Pure logic: no backend is created here; the server does that.
 */
#include "exports.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport.h"

#define NOBODY 65534u

static int fail(char *err, size_t errsz, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errsz, int line, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (err && errsz) {
		if (line > 0)
			n = snprintf(err, errsz, "line %d: ", line);
		if (n < 0 || (size_t)n >= errsz)
			n = 0;
		va_start(ap, fmt);
		vsnprintf(err + n, errsz - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int parse_net(const char *s, struct orfa_net *n)
{
	char buf[128];
	char *slash;
	long prefix = -1;
	unsigned max;

	memset(n, 0, sizeof(*n));
	if (strcmp(s, "*") == 0)
		return 0;
	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash) {
		char *end;

		*slash = '\0';
		errno = 0;
		prefix = strtol(slash + 1, &end, 10);
		if (errno || *end || end == slash + 1 || prefix < 0)
			return -EINVAL;
	}
	if (inet_pton(AF_INET, buf, n->addr) == 1) {
		n->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, n->addr) == 1) {
		n->family = AF_INET6;
		max = 128;
	} else {
		return -EINVAL;
	}
	if (prefix > (long)max)
		return -EINVAL;
	n->prefix = prefix < 0 ? max : (unsigned)prefix;
	/* Clear host bits so matching is a plain prefix compare. */
	for (unsigned bit = n->prefix; bit < max; bit++)
		n->addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
	return 0;
}

static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int parse_options(char *opts, struct orfa_export *e, char *err,
			 size_t errsz, int line)
{
	char *save = NULL;

	for (char *o = strtok_r(opts, ",", &save); o;
	     o = strtok_r(NULL, ",", &save)) {
		if (strcmp(o, "ro") == 0)
			e->flags |= ORFA_EXPORT_RO;
		else if (strcmp(o, "rw") == 0)
			e->flags &= ~ORFA_EXPORT_RO;
		else if (strcmp(o, "root_squash") == 0)
			e->flags |= ORFA_EXPORT_ROOT_SQUASH;
		else if (strcmp(o, "no_root_squash") == 0)
			e->flags &= ~ORFA_EXPORT_ROOT_SQUASH;
		else if (strcmp(o, "all_squash") == 0)
			e->flags |= ORFA_EXPORT_ALL_SQUASH;
		else if (strcmp(o, "no_all_squash") == 0)
			e->flags &= ~ORFA_EXPORT_ALL_SQUASH;
		else if (strcmp(o, "secure") == 0)
			e->flags &= ~ORFA_EXPORT_INSECURE;
		else if (strcmp(o, "insecure") == 0)
			e->flags |= ORFA_EXPORT_INSECURE;
		else if (strcmp(o, "nodev") == 0)
			e->flags &= ~ORFA_EXPORT_DEV;
		else if (strcmp(o, "dev") == 0)
			e->flags |= ORFA_EXPORT_DEV;
		else if (strcmp(o, "nosuid") == 0)
			e->flags &= ~ORFA_EXPORT_SUID;
		else if (strcmp(o, "suid") == 0)
			e->flags |= ORFA_EXPORT_SUID;
		else if (strncmp(o, "anonuid=", 8) == 0) {
			if (parse_u32(o + 8, &e->anonuid))
				return fail(err, errsz, line, "bad anonuid '%s'", o + 8);
		} else if (strncmp(o, "anongid=", 8) == 0) {
			if (parse_u32(o + 8, &e->anongid))
				return fail(err, errsz, line, "bad anongid '%s'", o + 8);
		} else {
			return fail(err, errsz, line, "unknown option '%s'", o);
		}
	}
	return 0;
}

static int parse_line(char *s, struct orfa_export *e, char *err, size_t errsz,
		      int line)
{
	char *field[5];
	int nf = 0;
	char *save = NULL;

	for (char *t = strtok_r(s, " \t", &save); t;
	     t = strtok_r(NULL, " \t", &save)) {
		if (nf == 4)
			return fail(err, errsz, line, "too many fields (expected NAME SOURCE CLIENTS [OPTIONS])");
		field[nf++] = t;
	}
	if (nf < 3)
		return fail(err, errsz, line, "too few fields (expected NAME SOURCE CLIENTS [OPTIONS])");

	memset(e, 0, sizeof(*e));
	e->flags = ORFA_EXPORT_DEFAULTS;
	e->anonuid = NOBODY;
	e->anongid = NOBODY;

	/* NAME: "/" or a plain name; a leading '/' is tolerated ("/data"). */
	const char *name = field[0];
	if (strcmp(name, "/") != 0 && name[0] == '/')
		name++;
	if (!*name || strlen(name) >= sizeof(e->name) ||
	    (strcmp(name, "/") != 0 && strchr(name, '/')) ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return fail(err, errsz, line, "bad export name '%s'", field[0]);
	strcpy(e->name, name);

	/* SOURCE */
	if (strncmp(field[1], "ramfs:", 6) == 0) {
		if (orfa_parse_size(field[1] + 6, &e->ramfs_size) ||
		    e->ramfs_size == 0)
			return fail(err, errsz, line, "bad ramfs size '%s'", field[1] + 6);
	} else if (field[1][0] == '/') {
		if (strlen(field[1]) >= sizeof(e->path))
			return fail(err, errsz, line, "path too long");
		strcpy(e->path, field[1]);
	} else {
		return fail(err, errsz, line, "source must be an absolute path or ramfs:SIZE, not '%s'", field[1]);
	}

	/* CLIENTS */
	char *nsave = NULL;
	for (char *c = strtok_r(field[2], ",", &nsave); c;
	     c = strtok_r(NULL, ",", &nsave)) {
		if (e->nnets == ORFA_EXPORT_MAX_NETS)
			return fail(err, errsz, line, "more than %d client networks", ORFA_EXPORT_MAX_NETS);
		if (parse_net(c, &e->nets[e->nnets]))
			return fail(err, errsz, line, "bad client network '%s' (want CIDR like 10.0.0.0/8, fd00::/8, or *)", c);
		e->nnets++;
	}
	if (e->nnets == 0)
		return fail(err, errsz, line, "no client networks");

	if (nf == 4)
		return parse_options(field[3], e, err, errsz, line);
	return 0;
}

int orfa_exports_parse(const char *text, struct orfa_exports *out, char *err,
		       size_t errsz)
{
	char *copy = strdup(text);
	char *save = NULL;
	int line = 0, rc = 0;

	memset(out, 0, sizeof(*out));
	if (!copy)
		return -ENOMEM;
	/* strtok_r would merge empty lines; walk by hand to count them. */
	char *p = copy;
	while (p && rc == 0) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		line++;
		char *hash = strchr(p, '#');
		if (hash)
			*hash = '\0';
		char *s = p;
		while (isspace((unsigned char)*s))
			s++;
		if (*s) {
			struct orfa_export *v = realloc(out->v, (size_t)(out->n + 1) * sizeof(*v));
			if (!v) {
				rc = -ENOMEM;
				break;
			}
			out->v = v;
			rc = parse_line(s, &v[out->n], err, errsz, line);
			if (rc == 0) {
				for (int i = 0; i < out->n; i++)
					if (strcmp(v[i].name, v[out->n].name) == 0)
						rc = fail(err, errsz, line, "export '%s' defined twice", v[i].name);
			}
			if (rc == 0)
				out->n++;
		}
		p = nl ? nl + 1 : NULL;
	}
	(void)save;
	free(copy);
	if (rc == 0 && out->n == 0)
		rc = fail(err, errsz, 0, "no exports defined");
	if (rc)
		orfa_exports_free(out);
	return rc;
}

int orfa_exports_load(const char *file, struct orfa_exports *out, char *err,
		      size_t errsz)
{
	FILE *f = fopen(file, "r");
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (!f) {
		rc = -errno;
		snprintf(err, errsz, "%s: %s", file, strerror(-rc));
		return rc;
	}
	FILE *m = open_memstream(&text, &len);
	if (!m) {
		fclose(f);
		return -ENOMEM;
	}
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, m);
	fclose(f);
	fclose(m);
	char perr[256] = "";
	rc = orfa_exports_parse(text, out, perr, sizeof(perr));
	if (rc)
		snprintf(err, errsz, "%s: %s", file, perr);
	free(text);
	return rc;
}

int orfa_exports_shortcut(struct orfa_exports *out, const char *dir,
			  uint64_t ramfs_size, const char *opts, char *err,
			  size_t errsz)
{
	struct orfa_export *e;
	char *copy;
	int ret;

	memset(out, 0, sizeof(*out));
	if (dir && strlen(dir) >= sizeof(e->path))
		return -ENAMETOOLONG;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	strcpy(e->name, "/");
	if (dir)
		strcpy(e->path, dir);
	else
		e->ramfs_size = ramfs_size;
	e->nnets = 1;			/* nets[0] zeroed: anyone */
	e->anonuid = NOBODY;
	e->anongid = NOBODY;
	e->flags = ORFA_EXPORT_DEFAULTS;
	copy = strdup(opts ? opts : "");
	ret = copy ? parse_options(copy, e, err, errsz, 0) : -ENOMEM;
	free(copy);
	if (ret) {
		free(e);
		return ret;
	}
	out->v = e;
	out->n = 1;
	return 0;
}

void orfa_exports_free(struct orfa_exports *ex)
{
	free(ex->v);
	ex->v = NULL;
	ex->n = 0;
}

const struct orfa_export *orfa_exports_find(const struct orfa_exports *ex,
					    const char *path,
					    const char **subdir)
{
	const struct orfa_export *root = NULL;

	while (*path == '/')
		path++;
	size_t first = strcspn(path, "/");
	for (int i = 0; i < ex->n; i++) {
		const struct orfa_export *e = &ex->v[i];
		if (strcmp(e->name, "/") == 0) {
			root = e;
		} else if (strlen(e->name) == first &&
			   strncmp(e->name, path, first) == 0) {
			const char *rest = path + first;
			while (*rest == '/')
				rest++;
			*subdir = rest;
			return e;
		}
	}
	if (root)
		*subdir = path;
	return root;
}

int orfa_export_allows(const struct orfa_export *e, const struct sockaddr *peer)
{
	uint8_t a[16];
	int family;

	if (peer->sa_family == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)peer)->sin_addr, 4);
		family = AF_INET;
	} else if (peer->sa_family == AF_INET6) {
		const struct in6_addr *v6 = &((const struct sockaddr_in6 *)peer)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(v6)) {
			memcpy(a, &v6->s6_addr[12], 4);
			family = AF_INET;
		} else {
			memcpy(a, v6->s6_addr, 16);
			family = AF_INET6;
		}
	} else {
		family = 0;
	}
	for (int i = 0; i < e->nnets; i++) {
		const struct orfa_net *n = &e->nets[i];
		if (n->family == 0)
			return 1;
		if (n->family != family)
			continue;
		unsigned full = n->prefix / 8, rem = n->prefix % 8;
		if (memcmp(a, n->addr, full) != 0)
			continue;
		if (rem && ((a[full] ^ n->addr[full]) & (uint8_t)(0xff00u >> rem)))
			continue;
		return 1;
	}
	return 0;
}

int orfa_export_port_ok(const struct orfa_export *e, unsigned port)
{
	return (e->flags & ORFA_EXPORT_INSECURE) ||
	       port < ORFA_PRIVILEGED_PORT;
}

int orfa_export_mode_ok(const struct orfa_export *e, uint32_t mode,
			int make_node)
{
	if (!(e->flags & ORFA_EXPORT_SUID) && !S_ISDIR(mode) &&
	    (mode & (S_ISUID | S_ISGID)))
		return -EPERM;
	if (!(e->flags & ORFA_EXPORT_DEV) && make_node &&
	    (S_ISCHR(mode) || S_ISBLK(mode)))
		return -EPERM;
	return 0;
}

void orfa_export_squash(const struct orfa_export *e, struct orfa_cred *cr)
{
	if (e->flags & ORFA_EXPORT_ALL_SQUASH) {
		cr->uid = e->anonuid;
		cr->gid = e->anongid;
		cr->ngroups = 0;
		return;
	}
	if (!(e->flags & ORFA_EXPORT_ROOT_SQUASH))
		return;
	if (cr->uid == 0)
		cr->uid = e->anonuid;
	if (cr->gid == 0)
		cr->gid = e->anongid;
	for (uint32_t i = 0; i < cr->ngroups && i < ORFA_MAX_GROUPS; i++)
		if (cr->groups[i] == 0)
			cr->groups[i] = e->anongid;
}

int orfa_op_modifies(unsigned opcode, uint32_t open_flags)
{
	switch (opcode) {
	case ORFA_OP_SETATTR:
	case ORFA_OP_MKNOD:
	case ORFA_OP_MKDIR:
	case ORFA_OP_UNLINK:
	case ORFA_OP_RMDIR:
	case ORFA_OP_SYMLINK:
	case ORFA_OP_RENAME:
	case ORFA_OP_LINK:
	case ORFA_OP_CREATE:
	case ORFA_OP_WRITE:
	case ORFA_OP_SETXATTR:
	case ORFA_OP_REMOVEXATTR:
	case ORFA_OP_FALLOCATE:
	case ORFA_OP_COPY_FILE_RANGE:
		return 1;
	case ORFA_OP_OPEN:
		return (open_flags & O_ACCMODE) != O_RDONLY ||
		       (open_flags & O_TRUNC);
	default:
		return 0;
	}
}
