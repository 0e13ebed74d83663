#!/bin/sh
# bench.sh - inside the Soft-RoCE VM: RDMA vs TCP through the ORFA
# transports (round trip of an empty request, 1 MiB requests and 1 MiB
# replies, see test_rdma_transport --bench), plus the raw verbs baseline of
# the same VM (ibv_rc_pingpong: 64 B and 1 MiB ping-pong), so the figures
# can be read against what Soft-RoCE under emulation can do at all.  Only
# ratios within one run mean anything.  TAP on stdout.
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
echo "1..$n"
