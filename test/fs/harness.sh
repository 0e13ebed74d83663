#!/bin/bash
# harness.sh - runs the mounted-file-system suite against one target and
# reports every check as its own TAP test.
#
#   harness.sh local|ramfs|native [TEST_NAME...]
#   harness.sh --list                 (test names and flags, in order)
#
#   local   a plain directory on local disk (no ORFA at all): shows that the
#           tests themselves are right; ORFA-only tests are skipped
#   ramfs   orfad --ramfs, mounted twice with the orfa client
#   native  orfad --export DIR, mounted twice with the orfa client
#
# Binaries come from $ORFA_BUILD_DIR (set by meson; server/orfad,
# fuse-client/orfa, test/fs/fsops, test/fs/fs_static).  The tests live in
# tests_*.sh (see lib.sh for what a test sees).  Each test runs in its own
# process under timeout(1); everything started is torn down in an EXIT
# trap, also on failure or timeout.  If the client cannot mount, every test
# is "not ok" with the reason; a missing machine prerequisite (/dev/fuse,
# fusermount3) skips the whole run (exit 77).  Otherwise the exit status is
# 0 and the TAP lines say what passed.
#
# Environment knobs (all optional):
#   ORFA_FS_MOUNT_OPTS   client -o options of mount 1 (default
#                        allow_other,default_permissions)
#   ORFA_FS_MOUNT2_OPTS  client -o options of mount 2 (default
#                        allow_other,no_default_permissions: orfa turns
#                        default_permissions on with allow_other otherwise)
#                        The two differ on purpose.  orfad checks every
#                        request against the caller's credentials (as an
#                        NFS server would), so mount 2 leaves permission
#                        checks to the server alone; mount 1 adds the
#                        kernel's check, which a multi-user mount needs
#                        because FUSE without default_permissions does not
#                        re-check directory search permission on cached
#                        entries.  The permission tests run on both.
#   ORFA_FS_TRANSPORT    tcp (default) or rdma: orfad listens on
#                        rdma://HOST and both mounts add transport=rdma
#                        (test/rdma runs the suite so inside the VM)
#   ORFA_FS_HOST         address orfad listens on (default 127.0.0.1;
#                        192.0.2.1 in the Soft-RoCE VM)
#   ORFA_FS_RAMFS_SIZE   --ramfs-size for orfad (default 3G)
#   ORFA_FS_SERVER_ARGS  extra orfad arguments (e.g. "--log-level debug")
#   ORFA_FS_LOCAL_DIR    parent of the local target's directory (default
#                        /tmp; e.g. /dev/shm for tmpfs)
#   ORFA_FS_TMPDIR       where the run's temporary directory goes (default
#                        /tmp): mount points, logs, and the native
#                        target's export directory
#   ORFA_FS_KEEP=1       keep the temporary directory (logs) at the end
#   ORFA_FS_TIMES=FILE   write "SECONDS TEST" for every test run to FILE
set -u
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=orfa.sh
. "$HERE/orfa.sh"
for f in tests_io.sh tests_ns.sh tests_attr.sh tests_time.sh tests_perm.sh \
	tests_proc.sh tests_multi.sh tests_orfa.sh tests_restart.sh \
	tests_channel.sh tests_stats.sh; do
	# shellcheck disable=SC1090
	. "$HERE/$f"
done
# Checks the runner itself performs at the end (see r_* below).
fs_test no_daemon_crashes orfa runner
fs_test unmount_clean orfa runner
fs_test server_stops_on_sigterm orfa runner
fs_test logs_free_of_sanitizer_reports orfa runner

# ---- one test, in its own process (re-entered by the runner) -----------
if [ "${1:-}" = --one ]; then
	name=$2
	W=$FS_MNT/t-$name
	W2=$FS_MNT2/t-$name
	S=$FS_TMP/scratch/$name
	FSOPS=$FS_HELPERS/fsops
	FS_STATIC=$FS_HELPERS/fs_static
	mkdir -p "$S"
	cd "$S" || exit 1
	umask 022
	"t_$name"
	exit $?
fi

# ---- harness.sh --list: the tests, in order, with their flags ----------
if [ "${1:-}" = --list ]; then
	for name in "${FS_TESTS[@]}"; do
		echo "$name${FS_FLAGS[$name]}"
	done
	exit 0
fi

# ---- runner ------------------------------------------------------------
FS_TARGET=${1:-}
case $FS_TARGET in
local | ramfs | native) shift ;;
*)
	echo "usage: $0 local|ramfs|native [TEST_NAME...] | --list" >&2
	exit 2
	;;
esac

if [ $# -gt 0 ]; then
	SELECTED=("$@")
	for n in "${SELECTED[@]}"; do
		[ -n "${FS_LIMIT[$n]+x}" ] || { echo "unknown test $n" >&2; exit 2; }
	done
else
	SELECTED=("${FS_TESTS[@]}")
fi

BUILD=${ORFA_BUILD_DIR:-$HERE/../../build}
FS_ORFAD=$BUILD/server/orfad
FS_ORFA=$BUILD/fuse-client/orfa
HELPER_SRC=$BUILD/test/fs
FS_MOUNT_OPTS=${ORFA_FS_MOUNT_OPTS:-allow_other,default_permissions}
FS_MOUNT2_OPTS=${ORFA_FS_MOUNT2_OPTS:-allow_other,no_default_permissions}
FS_TRANSPORT=${ORFA_FS_TRANSPORT:-tcp}
FS_HOST=${ORFA_FS_HOST:-127.0.0.1}
# Extra -o for every client mount the suite makes ("" over TCP).
FS_XPORT_OPT=""
if [ "$FS_TRANSPORT" = rdma ]; then
	FS_XPORT_OPT="transport=rdma"
	FS_MOUNT_OPTS="${FS_MOUNT_OPTS:+$FS_MOUNT_OPTS,}$FS_XPORT_OPT"
	FS_MOUNT2_OPTS="${FS_MOUNT2_OPTS:+$FS_MOUNT2_OPTS,}$FS_XPORT_OPT"
fi
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
# A non-root user may pass allow_other only with user_allow_other in
# /etc/fuse.conf; without it the tests that need it (all root-only) are
# skipped anyway, so drop the option rather than fail every mount.
if [ "$IS_ROOT" = 0 ] && ! grep -qs '^[[:space:]]*user_allow_other' /etc/fuse.conf; then
	FS_MOUNT_OPTS=$(printf '%s' "$FS_MOUNT_OPTS" | sed 's/\(^\|,\)allow_other//; s/^,//')
	FS_MOUNT2_OPTS=$(printf '%s' "$FS_MOUNT2_OPTS" | sed 's/\(^\|,\)allow_other//; s/^,//')
fi

if [ "$FS_TARGET" != local ]; then
	if [ ! -c /dev/fuse ] || ! command -v fusermount3 > /dev/null; then
		echo "1..0 # SKIP no /dev/fuse or fusermount3 on this machine"
		exit 77
	fi
fi

FS_TMP=$(mktemp -d "${ORFA_FS_TMPDIR:-/tmp}/orfa-fs-$FS_TARGET.XXXXXX") || exit 1
chmod 755 "$FS_TMP"	# the non-root user of the permission tests walks in
mkdir -p "$FS_TMP/logs" "$FS_TMP/scratch"
: > "$FS_TMP/pids.list"
: > "$FS_TMP/mounts.list"
SETUP_ERR=""
SERVER_PID=""
CLIENT1_PID=""
CLIENT2_PID=""
CRASHES=""
EXPORT=""

cleanup() {
	local m pid what left
	trap - EXIT INT TERM HUP
	if [ -s "$FS_TMP/mounts.list" ]; then
		for m in $(tac "$FS_TMP/mounts.list" | awk '!seen[$0]++'); do
			fs_unmount "$m" || echo "# WARNING: could not unmount $m"
		done
	fi
	while read -r pid what; do
		[ -n "$pid" ] && proc_stop "$pid"
	done < <(tac "$FS_TMP/pids.list")
	# Daemons started through mount.fuse3 (pid unknown) and anything a
	# killed test left behind: all name this run's temporary directory.
	proc_kill_mentioning "$FS_TMP"
	left=$(awk -v t="$FS_TMP/" 'index($2, t) == 1 { print $2 }' /proc/mounts)
	if [ -n "$left" ]; then
		echo "# WARNING: still mounted, leaving $FS_TMP in place: $left"
	elif [ "${ORFA_FS_KEEP:-0}" = 1 ]; then
		echo "# kept $FS_TMP"
	else
		timeout -k 5 300 rm -rf "$FS_TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# Both mounts alive: listed in /proc/mounts and answering statfs.
mounts_alive() {
	[ "$FS_TARGET" = local ] && return 0
	mounted "$FS_MNT" && mounted "$FS_MNT2" &&
		timeout -k 2 10 stat -f "$FS_MNT" > /dev/null 2>&1 &&
		timeout -k 2 10 stat -f "$FS_MNT2" > /dev/null 2>&1
}

# Starts the server and mounts both clients; SETUP_ERR on failure.
orfa_up() {
	orfa_server_start "$FS_TMP/logs/orfad.log" "$FS_TMP/port" "$FS_TARGET" \
		"$EXPORT" || return 1
	FS_ADDR=$SERVER_ADDR
	orfa_mount "$FS_ADDR" "$FS_MNT" "$FS_TMP/logs/orfa1.log" "$FS_MOUNT_OPTS" || return 1
	CLIENT1_PID=$CLIENT_PID
	orfa_mount "$FS_ADDR" "$FS_MNT2" "$FS_TMP/logs/orfa2.log" "$FS_MOUNT2_OPTS" || return 1
	CLIENT2_PID=$CLIENT_PID
	# The root of the export must let the non-root user of the
	# permission tests in.
	timeout -k 2 30 chmod 0755 "$FS_MNT" ||
		{ SETUP_ERR="chmod 0755 on the mount root failed"; return 1; }
	return 0
}

orfa_down() {
	fs_unmount "$FS_MNT"
	fs_unmount "$FS_MNT2"
	for p in "$CLIENT1_PID" "$CLIENT2_PID" "$SERVER_PID"; do
		[ -n "$p" ] && proc_stop "$p"
	done
	CLIENT1_PID="" CLIENT2_PID="" SERVER_PID=""
}

# Called after a test when the mounts are not alive: says what died,
# then restarts everything so later tests still mean something.
recover() {
	local why=""
	kill -0 "$SERVER_PID" 2>/dev/null || why="$why orfad(pid $SERVER_PID) died;"
	kill -0 "$CLIENT1_PID" 2>/dev/null || why="$why orfa client 1 died;"
	kill -0 "$CLIENT2_PID" 2>/dev/null || why="$why orfa client 2 died;"
	[ -n "$why" ] || why=" a mount stopped answering statfs;"
	CRASHES="$CRASHES $1"
	echo "# after $1:$why restarting server and clients"
	for l in orfad orfa1 orfa2; do
		tail -n 3 "$FS_TMP/logs/$l.log" 2>/dev/null | sed "s/^/#   $l: /"
		mv "$FS_TMP/logs/$l.log" "$FS_TMP/logs/$l.log.$1" 2>/dev/null
	done
	orfa_down
	orfa_up || echo "# restart failed: $SETUP_ERR"
}

# ---- checks done by the runner itself ----------------------------------
r_no_daemon_crashes() {
	[ -z "$CRASHES" ] && return 0
	echo "server or client died or hung after:$CRASHES"
	return 1
}

r_unmount_clean() {
	local p rc=0
	for m in "$FS_MNT" "$FS_MNT2"; do
		if ! timeout -k 2 20 fusermount3 -u "$m" 2>&1; then
			echo "fusermount3 -u $m failed"
			rc=1
		fi
	done
	for p in "$CLIENT1_PID" "$CLIENT2_PID"; do
		if ! proc_wait_exit "$p" 20; then
			echo "orfa client pid $p still running 20 s after its unmount"
			rc=1
		fi
	done
	return $rc
}

r_server_stops_on_sigterm() {
	kill -TERM "$SERVER_PID" 2>/dev/null
	if proc_wait_exit "$SERVER_PID" 20; then
		return 0
	fi
	echo "orfad pid $SERVER_PID still running 20 s after SIGTERM"
	return 1
}

r_logs_free_of_sanitizer_reports() {
	local hits
	hits=$(grep -l -E 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' \
		"$FS_TMP"/logs/orfa*.log* "$FS_TMP"/logs/orfad*.log* \
		"$FS_TMP"/scratch/*/*.log 2>/dev/null)
	[ -z "$hits" ] && return 0
	for f in $hits; do
		echo "sanitizer report in $f:"
		grep -m3 -E 'Sanitizer|runtime error:' "$f"
	done
	return 1
}

# ---- setup -------------------------------------------------------------
# Helpers are copied next to the mounts so that uid 65534 can run them
# whatever the permissions of the build tree.
FS_HELPERS=$FS_TMP/helpers
mkdir -p "$FS_HELPERS"
chmod 755 "$FS_HELPERS"
if [ ! -x "$HELPER_SRC/fsops" ]; then
	SETUP_ERR="test helper $HELPER_SRC/fsops not built (ORFA_BUILD_DIR=$BUILD)"
else
	cp "$HELPER_SRC/fsops" "$FS_HELPERS/"
	[ -x "$HELPER_SRC/fs_static" ] && cp "$HELPER_SRC/fs_static" "$FS_HELPERS/"
	chmod 755 "$FS_HELPERS"/*
fi
if [ "$FS_TARGET" = local ]; then
	base=${ORFA_FS_LOCAL_DIR:-$FS_TMP}
	if [ "$base" = "$FS_TMP" ]; then
		FS_MNT=$FS_TMP/m1
		mkdir -p "$FS_MNT"
	else
		FS_MNT=$(mktemp -d "$base/orfa-fs-local.XXXXXX") || exit 1
		echo "$FS_MNT" > "$FS_TMP/localdir"
	fi
	chmod 755 "$FS_MNT"
	FS_MNT2=$FS_MNT
	FS_ADDR=""
else
	FS_MNT=$FS_TMP/m1
	FS_MNT2=$FS_TMP/m2
	FS_ADDR=""
	if [ "$FS_TARGET" = native ]; then
		EXPORT=$FS_TMP/export
		mkdir -p "$EXPORT"
		chmod 755 "$EXPORT"
	fi
	if [ -z "$SETUP_ERR" ]; then
		if [ ! -x "$FS_ORFAD" ]; then
			SETUP_ERR="orfad not built at $FS_ORFAD"
		elif [ ! -x "$FS_ORFA" ]; then
			SETUP_ERR="orfa client not built at $FS_ORFA"
		else
			orfa_up
		fi
	fi
fi
export FS_TRANSPORT FS_HOST FS_XPORT_OPT
export FS_TARGET FS_TMP FS_MNT FS_MNT2 FS_ADDR FS_ORFAD FS_ORFA FS_HELPERS \
	FS_MOUNT_OPTS FS_MOUNT2_OPTS IS_ROOT EXPORT

# ---- run ---------------------------------------------------------------
echo "1..${#SELECTED[@]}"
if [ "$FS_TARGET" = local ]; then
	echo "# target local, directory $FS_MNT"
else
	echo "# target $FS_TARGET, server $FS_ADDR, mount 1 $FS_MNT (-o ${FS_MOUNT_OPTS:-nothing}), mount 2 $FS_MNT2 (-o ${FS_MOUNT2_OPTS:-nothing})"
fi
[ -n "$SETUP_ERR" ] && echo "# SETUP FAILED: $SETUP_ERR"
n=0
failed=0
start_all=$SECONDS
for name in "${SELECTED[@]}"; do
	n=$((n + 1))
	flags=${FS_FLAGS[$name]}
	log=$FS_TMP/logs/t-$name.log
	case " $flags " in
	*" orfa "*)
		if [ "$FS_TARGET" = local ]; then
			echo "ok $n - $name # SKIP ORFA-only test, not applicable to a local directory"
			continue
		fi
		;;
	esac
	case " $flags " in
	*" root "*)
		if [ "$IS_ROOT" != 1 ]; then
			echo "ok $n - $name # SKIP needs root"
			continue
		fi
		;;
	esac
	if [ -n "$SETUP_ERR" ]; then
		echo "not ok $n - $name"
		echo "# not run: $SETUP_ERR"
		failed=$((failed + 1))
		continue
	fi

	t0=$SECONDS
	case " $flags " in
	*" runner "*)
		"r_$name" > "$log" 2>&1
		rc=$?
		;;
	*)
		if ! timeout -k 5 30 mkdir "$FS_MNT/t-$name" > "$log" 2>&1; then
			echo "not ok $n - $name"
			echo "# cannot create work directory $FS_MNT/t-$name: $(cat "$log")"
			failed=$((failed + 1))
			mounts_alive || recover "$name"
			continue
		fi
		timeout -k 2 10 chmod 0755 "$FS_MNT/t-$name"
		timeout -k 10 "${FS_LIMIT[$name]}" bash "$HERE/harness.sh" --one "$name" > "$log" 2>&1 < /dev/null
		rc=$?
		;;
	esac
	dt=$((SECONDS - t0))
	echo "$dt $name" >> "$FS_TMP/times"
	case $rc in
	0)
		echo "ok $n - $name"
		sed -n 's/^note: /# /p' "$log" | head -n 3
		;;
	77) echo "ok $n - $name # SKIP $(sed -n 's/^SKIP: //p' "$log" | tail -n1)" ;;
	*)
		echo "not ok $n - $name"
		failed=$((failed + 1))
		if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
			echo "# timed out after ${FS_LIMIT[$name]} s"
		fi
		tail -n 15 "$log" | sed 's/^/# /'
		;;
	esac
	case " $flags " in
	*" runner "*) continue ;;
	esac
	if ! mounts_alive; then
		recover "$name"
		continue
	fi
	if [ "${ORFA_FS_KEEP:-0}" != 1 ] || [ "$rc" = 0 ]; then
		timeout -k 5 300 rm -rf "$FS_MNT/t-$name" ||
			echo "# note: could not remove $FS_MNT/t-$name"
	fi
done

echo "# $FS_TARGET: ${#SELECTED[@]} tests, $failed failed, $((SECONDS - start_all)) s"
if [ -s "$FS_TMP/times" ]; then
	echo "# slowest: $(sort -rn "$FS_TMP/times" | head -n 8 | awk '{printf "%s %ss, ", $2, $1}')"
fi
if [ -n "${ORFA_FS_TIMES:-}" ] && [ -s "$FS_TMP/times" ]; then
	cp "$FS_TMP/times" "$ORFA_FS_TIMES"
fi
if [ -s "$FS_TMP/localdir" ]; then
	timeout -k 5 300 rm -rf "$(cat "$FS_TMP/localdir")"
fi
# The TAP lines carry the results (meson reports failed subtests as FAIL;
# a non-zero exit would turn that into ERROR).
exit 0
