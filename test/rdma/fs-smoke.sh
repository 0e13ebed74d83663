#!/bin/bash
# fs-smoke.sh - a real orfad and a real orfa mount talking over RDMA
# (Soft-RoCE) and, for comparison, over TCP, both on 192.0.2.1 inside the
# VM of scripts/rdma-vm.  For each transport and backend (ramfs, native):
# start orfad, mount, then cp / cat / ls / mv / rm and the checksum of a
# 64 MiB file written and read back through the mount.  TAP on stdout.
#
#   fs-smoke.sh [BUILD_DIR]      (run inside the VM: test/rdma/meson.build)
#
# Skips (exit 77) when it is not inside the VM (no 192.0.2.1 RDMA device)
# or the binaries are missing.  Everything it starts is stopped, and every
# mount unmounted, in an EXIT trap.
set -u
export LC_ALL=C

BUILD=${1:-${ORFA_BUILD_DIR:-}}
ORFAD=$BUILD/server/orfad
ORFA=$BUILD/fuse-client/orfa
HOST=${ORFA_RDMA_TEST_ADDR:-192.0.2.1}
T=$(mktemp -d /tmp/rdma-fs.XXXXXX) || exit 1
n=0
failed=0
pids=""
mounts=""

ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { # check NAME COMMAND...
	local name=$1
	shift
	if "$@" > "$T/check.out" 2>&1; then
		ok "$name"
	else
		not_ok "$name"
		sed 's/^/#   /' "$T/check.out" | tail -n 5
	fi
}

cleanup() {
	local m p
	for m in $mounts; do
		fusermount3 -u -z "$m" 2> /dev/null
	done
	for p in $pids; do
		kill "$p" 2> /dev/null
	done
	sleep 0.2
	for p in $pids; do
		kill -9 "$p" 2> /dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT

if [ ! -x "$ORFAD" ] || [ ! -x "$ORFA" ]; then
	echo "1..0 # SKIP orfad or orfa not built in '$BUILD'"
	exit 77
fi
if ! ip -o addr show 2> /dev/null | grep -q " $HOST/" ||
	! [ -d /sys/class/infiniband ] || [ -z "$(ls /sys/class/infiniband)" ]; then
	echo "1..0 # SKIP no RDMA device with $HOST (run under scripts/rdma-vm)"
	exit 77
fi

# The data: 64 MiB of random bytes and a few small files.
head -c $((64 << 20)) /dev/urandom > "$T/big"
big_sum=$(md5sum < "$T/big" | cut -d' ' -f1)
mkdir -p "$T/small"
for i in 1 2 3 4 5; do
	seq 1 $((i * 1000)) > "$T/small/f$i"
done

wait_file() { # wait_file FILE SECONDS
	local end=$((SECONDS + $2))
	while [ "$SECONDS" -lt "$end" ]; do
		[ -s "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

wait_mount() { # wait_mount DIR PID SECONDS
	local end=$((SECONDS + $3))
	while [ "$SECONDS" -lt "$end" ]; do
		if grep -q " $1 fuse" /proc/mounts &&
			timeout 10 stat -f "$1" > /dev/null 2>&1; then
			return 0
		fi
		kill -0 "$2" 2> /dev/null || return 1
		sleep 0.1
	done
	return 1
}

# start_orfad TP DIR LABEL ARGS...: orfad in the foreground on TP, logging
# to DIR/orfad.log; sets the caller's spid and addr.  1 (after a not ok
# line) if it does not listen.
start_orfad() {
	local tp=$1 dir=$2 lbl=$3
	shift 3
	"$ORFAD" -f --listen "$tp://$HOST:0" --port-file "$dir/port" "$@" \
		> "$dir/orfad.log" 2>&1 &
	spid=$!
	pids="$pids $spid"
	if ! wait_file "$dir/port" 20; then
		not_ok "$lbl: orfad listens on $tp://$HOST"
		sed 's/^/#   /' "$dir/orfad.log" | tail -n 5
		return 1
	fi
	addr=$(head -n1 "$dir/port")
}

# stop_orfad DIR LABEL: SIGTERM the caller's spid; it must exit with 0.
stop_orfad() {
	kill -TERM "$spid"
	if timeout 20 sh -c "while kill -0 $spid 2>/dev/null; do sleep 0.1; done"; then
		wait "$spid"
		check "$2: orfad stops cleanly on SIGTERM" test $? = 0
	else
		not_ok "$2: orfad stops on SIGTERM"
		sed 's/^/#   /' "$1/orfad.log" | tail -n 5
	fi
}

# One transport + backend: mount, exercise, unmount.  With a third
# argument (a label), orfad also gets $SMOKE_SARGS and the mount
# $SMOKE_COPTS.
run_one() {
	local tp=$1 backend=$2 d=$T/$1-$2${3:+-$3} spid cpid addr mnt t0 t1
	local -a sargs
	local copts="transport=$tp${3:+,$SMOKE_COPTS}" lbl="$tp/$backend${3:+ ($3)}"

	mkdir -p "$d/export" "$d/mnt"
	mnt=$d/mnt
	case $backend in
	ramfs) sargs=(--ramfs --ramfs-size 512M) ;;
	native) sargs=(--export "$d/export") ;;
	esac
	# Root here is root there; the RDMA client connects from an
	# unprivileged rdma_cm port (docs/security.md): insecure.
	sargs+=(--export-options rw,no_root_squash,insecure)
	# shellcheck disable=SC2206
	[ -n "${3:-}" ] && sargs+=($SMOKE_SARGS)
	start_orfad "$tp" "$d" "$lbl" "${sargs[@]}" || return
	ok "$lbl: orfad listens on $tp://$addr"

	"$ORFA" "$addr:/" "$mnt" -f -o "$copts" > "$d/orfa.log" 2>&1 &
	cpid=$!
	pids="$pids $cpid"
	mounts="$mounts $mnt"
	if ! wait_mount "$mnt" "$cpid" 30; then
		not_ok "$lbl: mount with -o $copts"
		sed 's/^/#   /' "$d/orfa.log" | tail -n 5
		return
	fi
	ok "$lbl: mount with -o $copts"
	if [ -n "${3:-}" ] && [ -n "${SMOKE_EXPECT:-}" ]; then
		check "$lbl: orfad reports '$SMOKE_EXPECT'" \
			grep -F "$SMOKE_EXPECT" "$d/orfad.log"
	fi

	t0=$(date +%s.%N)
	check "$lbl: cp 64 MiB file in" timeout 300 cp "$T/big" "$mnt/big"
	t1=$(date +%s.%N)
	echo "# $lbl: 64 MiB written in $(awk "BEGIN { print $t1 - $t0 }") s"
	check "$lbl: size is right" test "$(stat -c %s "$mnt/big")" = $((64 << 20))
	t0=$(date +%s.%N)
	check "$lbl: 64 MiB checksum read back matches" \
		sh -c "[ \"\$(timeout 300 cat '$mnt/big' | md5sum | cut -d' ' -f1)\" = $big_sum ]"
	t1=$(date +%s.%N)
	echo "# $lbl: 64 MiB read in $(awk "BEGIN { print $t1 - $t0 }") s"
	check "$lbl: cp -r of small files, contents match" \
		sh -c "cp -r '$T/small' '$mnt/small' && diff -r '$T/small' '$mnt/small'"
	check "$lbl: ls lists them" \
		sh -c "[ \"\$(ls '$mnt/small' | tr '\n' ' ')\" = 'f1 f2 f3 f4 f5 ' ]"
	check "$lbl: mv and cat" \
		sh -c "mv '$mnt/small/f3' '$mnt/f3' && cmp '$mnt/f3' '$T/small/f3'"
	check "$lbl: rm -r and rm" \
		sh -c "rm -r '$mnt/small' '$mnt/f3' '$mnt/big' && [ -z \"\$(ls -A '$mnt')\" ]"
	if [ "$backend" = native ]; then
		check "$lbl: export directory is empty again" \
			sh -c "[ -z \"\$(ls -A '$d/export')\" ]"
	fi

	fusermount3 -u "$mnt" 2> /dev/null || fusermount3 -u -z "$mnt"
	if timeout 20 sh -c "while kill -0 $cpid 2>/dev/null; do sleep 0.1; done"; then
		ok "$lbl: client exits after unmount"
	else
		not_ok "$lbl: client exits after unmount"
	fi
	stop_orfad "$d" "$lbl"
	if grep -E "ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:" \
		"$d/orfad.log" "$d/orfa.log" > "$T/san" 2>&1; then
		not_ok "$lbl: no sanitizer reports"
		sed 's/^/#   /' "$T/san" | head -n 5
	else
		ok "$lbl: no sanitizer reports"
	fi
}

# Export access by network over TP: orfad takes the client's address from
# the transport (rdma_cm's resolved peer over RDMA), so an export open to
# the VM's network admits the mount and one open to another network refuses
# it with the reason.
run_exports() {
	local tp=$1 d=$T/$1-exports spid cpid addr
	mkdir -p "$d/mnt-in" "$d/mnt-out"
	printf '%s\n' "in ramfs:64M ${HOST%.*}.0/24 rw,no_root_squash,insecure" \
		"out ramfs:64M 10.0.0.0/8 rw,no_root_squash,insecure" > "$d/exports"
	start_orfad "$tp" "$d" "$tp/exports" --exports "$d/exports" || return
	"$ORFA" "$addr:/in" "$d/mnt-in" -f -o "transport=$tp" \
		> "$d/orfa-in.log" 2>&1 &
	cpid=$!
	pids="$pids $cpid"
	mounts="$mounts $d/mnt-in"
	if wait_mount "$d/mnt-in" "$cpid" 30 &&
		echo hi > "$d/mnt-in/f" && [ "$(cat "$d/mnt-in/f")" = hi ]; then
		ok "$tp/exports: export open to ${HOST%.*}.0/24 admits $HOST"
	else
		not_ok "$tp/exports: export open to ${HOST%.*}.0/24 admits $HOST"
		sed 's/^/#   /' "$d/orfa-in.log" "$d/orfad.log" | tail -n 6
	fi
	fusermount3 -u "$d/mnt-in" 2> /dev/null || fusermount3 -u -z "$d/mnt-in"
	if ! timeout 30 "$ORFA" "$addr:/out" "$d/mnt-out" -o "transport=$tp" \
		> "$d/orfa-out.log" 2>&1 &&
		grep -q "export not available to this client" \
			"$d/orfa-out.log" &&
		! grep -q " $d/mnt-out fuse" /proc/mounts; then
		ok "$tp/exports: export open to 10.0.0.0/8 refuses $HOST with the one refusal (no export names told apart)"
	else
		not_ok "$tp/exports: export open to 10.0.0.0/8 refuses $HOST with the one refusal (no export names told apart)"
		fusermount3 -u -z "$d/mnt-out" 2> /dev/null
		sed 's/^/#   /' "$d/orfa-out.log" | tail -n 4
	fi
	if grep -q "not allowed to mount /out" "$d/orfad.log"; then
		ok "$tp/exports: orfad logs the refusal with the peer's address"
	else
		not_ok "$tp/exports: orfad logs the refusal with the peer's address"
		sed 's/^/#   /' "$d/orfad.log" | tail -n 4
	fi
	kill -TERM "$spid"
}

# A directory export serving a non-root user: the native backend switches
# each serving thread's file-system credentials to the caller's, and the
# kernel refuses write()-based verbs and rdma_cm commands from a thread
# whose credentials changed since the device was opened, so the transport
# must keep all its verbs work off those threads.  For each threading
# mode: 16 MiB written and read back by uid 65534 (rendezvous both ways),
# then a second mount (a new connection accepted after the serving
# threads changed credentials) reads it again, and orfad stops cleanly.
run_user() {
	local tp=$1 mode=$2 d=$T/$1-user-$2 spid cpid addr i lbl
	local -a nobody=(setpriv --reuid 65534 --regid 65534 --clear-groups)

	lbl="$tp/native ($mode, uid 65534)"
	mkdir -p "$d/export/u" "$d/mnt"
	chmod 755 "$T" "$d"
	chown 65534:65534 "$d/export/u"
	head -c $((16 << 20)) /dev/urandom > "$d/data"
	chmod 644 "$d/data"
	start_orfad "$tp" "$d" "$lbl" --export "$d/export" \
		--export-options rw,no_root_squash,insecure \
		--threading "$mode" || return
	for i in 1 2; do
		"$ORFA" "$addr:/" "$d/mnt" -f -o "transport=$tp,allow_other" \
			> "$d/orfa-$i.log" 2>&1 &
		cpid=$!
		pids="$pids $cpid"
		mounts="$mounts $d/mnt"
		if ! wait_mount "$d/mnt" "$cpid" 30; then
			not_ok "$lbl: mount $i"
			sed 's/^/#   /' "$d/orfa-$i.log" "$d/orfad.log" | tail -n 6
			return
		fi
		if [ "$i" = 1 ]; then
			check "$lbl: 16 MiB written by the user" timeout 120 \
				"${nobody[@]}" cp "$d/data" "$d/mnt/u/data"
		fi
		check "$lbl: read back by the user on mount $i" timeout 120 \
			"${nobody[@]}" cmp "$d/data" "$d/mnt/u/data"
		fusermount3 -u "$d/mnt" 2> /dev/null || fusermount3 -u -z "$d/mnt"
		timeout 20 sh -c "while kill -0 $cpid 2>/dev/null; do sleep 0.1; done"
	done
	check "$lbl: the file in the export is the user's" \
		test "$(stat -c %u "$d/export/u/data")" = 65534
	check "$lbl: orfad logged no verbs failure" \
		sh -c "! grep -E 'Permission denied|failed:' '$d/orfad.log'"
	stop_orfad "$d" "$lbl"
}

for tp in ${ORFA_SMOKE_TRANSPORTS:-rdma tcp}; do
	for backend in ramfs native; do
		run_one "$tp" "$backend"
	done
	run_exports "$tp"
	for mode in queue sequential connection; do
		run_user "$tp" "$mode"
	done
done
# Receive buffers and credits set on both sides (orfad --rdma-*, -o rdma_*):
# the connection uses what each side asked for, and data of every size
# still crosses (more goes by rendezvous with fewer, larger buffers).
case " ${ORFA_SMOKE_TRANSPORTS:-rdma tcp} " in
*" rdma "*)
	SMOKE_SARGS="--rdma-buf-size 256K --rdma-credits 8 --log-level info"
	SMOKE_COPTS="rdma_buf_size=128K,rdma_credits=4"
	SMOKE_EXPECT="connected (credits 8/4, buffers 262144/131072)"
	run_one rdma ramfs tuned
	;;
esac
echo "1..$n"
[ "$failed" = 0 ]
