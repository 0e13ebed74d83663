/*
 * backend_native_cred.c - the native backend's per-operation identity:
 * nat_cred_enter() makes the calling thread act as the client's user
 * (fsuid, fsgid, supplementary groups, and no effective capabilities for
 * callers other than uid 0), nat_cred_leave() restores the server's.
 * Only when the backend was created by root; the rules, and why raw
 * system calls, are in the opening comment of backend_native.c.  Nothing
 * here touches nodes or files.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend_native_impl.h"
#include "log.h"
#include "transport.h"

/* The supplementary groups this thread currently has, when known. */
static __thread struct {
	bool valid;
	uint32_t n;
	gid_t groups[ORFA_MAX_GROUPS];
} tl_groups;

/* This thread's capabilities outside operations, read once per thread
 * (only this file changes them, and puts them back). */
static __thread struct {
	bool valid;
	struct __user_cap_data_struct d[2];
} tl_caps;

/* Read this thread's capabilities into tl_caps, before any change. */
static int caps_snapshot(void)
{
	struct __user_cap_header_struct h = {
	    .version = _LINUX_CAPABILITY_VERSION_3,
	    .pid = 0,
	};

	if (tl_caps.valid)
		return 0;
	if (syscall(SYS_capget, &h, tl_caps.d) < 0)
		return -errno;
	tl_caps.valid = true;
	return 0;
}

/* Empty the thread's effective set (drop) or restore it from tl_caps. */
static int caps_set(bool drop)
{
	struct __user_cap_header_struct h = {
	    .version = _LINUX_CAPABILITY_VERSION_3,
	    .pid = 0,
	};
	struct __user_cap_data_struct d[2];

	memcpy(d, tl_caps.d, sizeof(d));
	if (drop) {
		d[0].effective = 0;
		d[1].effective = 0;
	}
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

void nat_cred_leave(struct nat_backend *nb, struct nat_cred_state *cs)
{
	if (cs->caps_dropped && caps_set(false) < 0) {
		/* Cannot happen (effective <= permitted); if it did, this
		 * thread could no longer switch users: stop rather than run
		 * requests with the wrong identity. */
		log_err("native: cannot restore capabilities: %s",
			strerror(errno));
		abort();
	}
	if (cs->switched) {
		syscall(SYS_setfsuid, nb->srv_uid);
		syscall(SYS_setfsgid, nb->srv_gid);
	}
	cs->switched = cs->caps_dropped = false;
}

/*
 * Become cr on this thread (see the file comment).  NULL cr, or a backend
 * that does not switch, leaves the identity alone.  Returns 0 or a
 * negative errno (the identity is then unchanged).
 */
int nat_cred_enter(struct nat_backend *nb, const struct orfa_cred *cr,
		   struct nat_cred_state *cs)
{
	uint32_t n;
	int r;

	cs->switched = cs->caps_dropped = false;
	if (!nb->switch_creds || !cr)
		return 0;
	if (cr->uid == nb->srv_uid && cr->gid == nb->srv_gid)
		return 0; /* root as root: groups do not matter */
	if (cr->uid != 0) {
		r = caps_snapshot();
		if (r < 0) {
			log_err("native: capget: %s", strerror(-r));
			return r;
		}
	}
	orfa_thread_creds_changing();	/* see transport.h */
	n = cr->ngroups < ORFA_MAX_GROUPS ? cr->ngroups : ORFA_MAX_GROUPS;
	if (!tl_groups.valid || tl_groups.n != n ||
	    memcmp(tl_groups.groups, cr->groups, n * sizeof(gid_t)) != 0) {
		gid_t g[ORFA_MAX_GROUPS];

		for (uint32_t i = 0; i < n; i++)
			g[i] = cr->groups[i];
		tl_groups.valid = false;
		if (syscall(SYS_setgroups, (size_t)n, g) < 0) {
			static atomic_bool logged;

			r = -errno;
			if (!atomic_exchange(&logged, true))
				log_err("native: setgroups(%u groups): %s "
					"(cannot act as users; refusing their "
					"requests)",
					n, strerror(-r));
			return r;
		}
		memcpy(tl_groups.groups, g, n * sizeof(gid_t));
		tl_groups.n = n;
		tl_groups.valid = true;
	}
	cs->switched = true;
	syscall(SYS_setfsgid, cr->gid);
	syscall(SYS_setfsuid, cr->uid);
	/* setfsuid reports no error; read the values back (an invalid id
	 * such as -1 fails and returns the current one). */
	if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != cr->uid ||
	    (gid_t)syscall(SYS_setfsgid, (gid_t)-1) != cr->gid) {
		nat_cred_leave(nb, cs);
		return -EPERM;
	}
	if (cr->uid != 0) {
		r = caps_set(true);
		if (r < 0) {
			log_err("native: capset: %s", strerror(-r));
			nat_cred_leave(nb, cs);
			return r;
		}
		cs->caps_dropped = true;
	}
	return 0;
}
