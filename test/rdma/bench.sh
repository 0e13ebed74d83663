#!/bin/bash
# bench.sh - inside the Soft-RoCE VM: RDMA vs TCP through the ORFA
# transports (round trip of an empty request, 1 MiB requests and 1 MiB
# replies, see test_rdma_transport --bench), plus the raw verbs baseline of
# the same VM (ibv_rc_pingpong: 64 B and 1 MiB ping-pong), so the figures
# can be read against what Soft-RoCE under emulation can do at all, and a
# sequential read and a 4 KiB read round trip through a real orfa mount
# over each transport.  Only ratios within one run mean anything.  TAP on
# stdout.
#   bench.sh TEST_PROGRAM        (run by scripts/rdma-vm; meson benchmark)
prog=${1:?usage: bench.sh TEST_PROGRAM}
"$prog" --bench | grep -v '^1\.\.'
n=1
if command -v ibv_rc_pingpong > /dev/null; then
	for size in 64 1048576; do
		iters=2000
		[ "$size" -gt 4096 ] && iters=100
		ibv_rc_pingpong -d rxe0 -g 1 -s $size -n $iters > /dev/null 2>&1 &
		srv=$!
		sleep 1
		out=$(timeout 120 ibv_rc_pingpong -d rxe0 -g 1 -s $size -n $iters 192.0.2.1 2>&1)
		wait $srv
		n=$((n + 1))
		if echo "$out" | grep -q usec/iter; then
			echo "ok $n - raw verbs ibv_rc_pingpong $size B"
			echo "$out" | tail -n 2 | sed 's/^/#   raw verbs: /'
		else
			echo "not ok $n - raw verbs ibv_rc_pingpong $size B"
			echo "$out" | tail -n 3 | sed 's/^/#   /'
		fi
	done
else
	n=$((n + 1))
	echo "ok $n - raw verbs baseline # SKIP ibv_rc_pingpong not installed (ibverbs-utils)"
fi

# Through a real mount, per transport, in this same VM: orfad --ramfs and
# an orfa mount.  Sequential read: a 64 MiB file written through one
# mount, read with dd bs=1M through a fresh mount (nothing cached).
# Small-request round trip: 4 KiB reads on a cache=none mount, where every
# read(2) is one READ request.
BUILD=${ORFA_BUILD_DIR:-$(cd "$(dirname "$prog")/../.." && pwd)}
T=$(mktemp -d /tmp/rdma-bench.XXXXXX)
spid=
cleanup() {
	for m in "$T"/mnt*; do
		fusermount3 -u -z "$m" 2> /dev/null
	done
	[ -n "$spid" ] && kill "$spid" 2> /dev/null
	rm -rf "$T"
}
trap cleanup EXIT
now() { date +%s%N; }
mnt_up() { # mnt_up TP ADDR DIR OPTS
	mkdir -p "$3"
	"$BUILD/fuse-client/orfa" "$2:/" "$3" -o "transport=$1${4:+,$4}" &&
		timeout 20 sh -c "until grep -q ' $3 fuse' /proc/mounts; do sleep 0.1; done"
}
mount_bench() { # mount_bench TP -> "SEQ_MIB_S RTT_US" on stdout
	local tp=$1 addr t0 t1 seq rtt
	rm -f "$T/port"
	"$BUILD/server/orfad" -f --listen "$tp://192.0.2.1:0" \
		--port-file "$T/port" --ramfs --ramfs-size 256M \
		--export-options rw,no_root_squash,insecure \
		> "$T/orfad-$tp.log" 2>&1 &
	spid=$!
	timeout 20 sh -c "until [ -s '$T/port' ]; do sleep 0.1; done" || return 1
	addr=$(head -n 1 "$T/port")
	mnt_up "$tp" "$addr" "$T/mnt-w" || return 1
	dd if=/dev/urandom of="$T/mnt-w/f" bs=1M count=64 status=none || return 1
	fusermount3 -u "$T/mnt-w"
	mnt_up "$tp" "$addr" "$T/mnt-r" || return 1
	t0=$(now)
	dd if="$T/mnt-r/f" of=/dev/null bs=1M status=none || return 1
	t1=$(now)
	seq=$(awk "BEGIN { printf \"%.1f\", 64 * 1e9 / ($t1 - $t0) }")
	fusermount3 -u "$T/mnt-r"
	mnt_up "$tp" "$addr" "$T/mnt-d" cache=none || return 1
	dd if="$T/mnt-d/f" of=/dev/null bs=4k count=200 status=none
	t0=$(now)
	dd if="$T/mnt-d/f" of=/dev/null bs=4k count=2000 status=none || return 1
	t1=$(now)
	rtt=$(awk "BEGIN { printf \"%.0f\", ($t1 - $t0) / 2000 / 1000 }")
	fusermount3 -u "$T/mnt-d"
	kill "$spid"; wait "$spid" 2> /dev/null; spid=
	echo "$seq $rtt"
}
n=$((n + 1))
if r_rdma=$(mount_bench rdma) && r_tcp=$(mount_bench tcp); then
	set -- $r_rdma $r_tcp
	echo "ok $n - mounted: sequential read and 4 KiB read round trip, rdma and tcp"
	echo "#   mounted seq read 64 MiB, dd bs=1M:  rdma $1 MiB/s, tcp $3 MiB/s, rdma/tcp $(awk "BEGIN { printf \"%.2f\", $1 / $3 }")"
	echo "#   mounted 4 KiB read (cache=none):   rdma $2 us, tcp $4 us, tcp/rdma $(awk "BEGIN { printf \"%.2f\", $4 / $2 }")"
else
	echo "not ok $n - mounted: sequential read and 4 KiB read round trip, rdma and tcp"
	tail -n 5 "$T"/orfad-*.log 2> /dev/null | sed 's/^/#   /'
fi
echo "1..$n"
