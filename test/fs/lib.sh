# lib.sh - helpers shared by harness.sh and the tests_*.sh files of the
# mounted-file-system suite.  Sourced, never run.
#
# A test is a function t_NAME registered with `fs_test NAME [flags]` and
# run by harness.sh in its own bash process under timeout(1), with:
#   W        its work directory in the mount (empty, mode 0755, root's)
#   W2       the same directory seen through the second mount (the second
#            orfa client of the same server; == W on the local target)
#   S        a scratch directory on local disk, not in the mount
#   FS_TARGET local|ramfs|native, FSOPS/FS_STATIC helper paths, and the
#   other FS_* variables harness.sh exports.
# It returns 0 for pass; `fail MSG` and `skip REASON` end it early.

# Registration: fs_test NAME [orfa] [root] [limit=SECONDS]
#   orfa   needs an ORFA server/client (mount helper, server kill): the
#          local target reports it skipped
#   root   needs uid 0 (setpriv, mknod, chown): skipped otherwise
FS_TESTS=()
declare -A FS_FLAGS FS_LIMIT
fs_test() {
	local name=$1 a flags="" limit=120
	shift
	for a in "$@"; do
		case $a in
		limit=*) limit=${a#limit=} ;;
		*) flags="$flags $a" ;;
		esac
	done
	FS_TESTS+=("$name")
	FS_FLAGS[$name]=$flags
	FS_LIMIT[$name]=$limit
}

fail() {
	echo "FAIL: $*"
	exit 1
}

skip() {
	echo "SKIP: $*"
	exit 77
}

note() {
	echo "note: $*"
}

# run [-t SECONDS] CMD...: runs CMD under timeout (default 60 s), stdout
# and stderr into $OUT, exit status into $RC.  Never fails by itself.
run() {
	local t=60
	if [ "$1" = -t ]; then
		t=$2
		shift 2
	fi
	OUT=$(timeout -k 5 "$t" "$@" 2>&1)
	RC=$?
}

# expect_ok CMD...: CMD must exit 0.
expect_ok() {
	run "$@"
	[ "$RC" -eq 0 ] || fail "'$*' exited $RC: $OUT"
}

# expect_err ERRNAME CMD...: CMD is an fsops call that must report ERRNAME
# (one name, or several separated by |, e.g. "EAGAIN|EACCES").
expect_err() {
	local want=$1 got
	shift
	run "$@"
	got=$(printf '%s\n' "$OUT" | sed -n 's/^ERR \([A-Z0-9]*\) .*/\1/p' | head -n1)
	if [ "$RC" -eq 0 ]; then
		fail "'$*' succeeded, expected $want"
	fi
	case "|$want|" in
	*"|$got|"*) return 0 ;;
	esac
	fail "'$*' gave ${got:-no errno} (rc=$RC: $OUT), expected $want"
}

# expect_eq WHAT GOT WANT
expect_eq() {
	[ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

# kv KEY: the value of a key=value line in $OUT (fsops output).
kv() {
	printf '%s\n' "$OUT" | sed -n "s/^$1=//p" | head -n1
}

# "${NOBODY[@]}" CMD...: CMD as uid/gid 65534 with no supplementary groups
# (an array rather than a function so that run/timeout can exec it).
NOBODY=(setpriv --reuid 65534 --regid 65534 --clear-groups)

# st FORMAT PATH: stat -c FORMAT PATH under a timeout; empty on error.
st() {
	timeout -k 5 30 stat -c "$1" -- "$2" 2>/dev/null
}

# mounted DIR: DIR is a mount point in /proc/mounts.
mounted() {
	awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts
}

# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	while ! "$@"; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.1
	done
	return 0
}

# make_random_file PATH BYTES: local file of random content.
make_random_file() {
	head -c "$2" /dev/urandom > "$1"
}
