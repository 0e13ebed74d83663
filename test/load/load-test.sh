#!/usr/bin/env bash
# Load test (TAP): 500 concurrent connections of mixed metadata and data
# requests against orfad --ramfs for a bounded time.  Passes when every
# request succeeded and every connection finished; prints the figures
# (requests/s, latency percentiles, server peak memory) as TAP comments.
#   load-test.sh ORFAD ORFA_LOAD [CONNS] [SECONDS]
set -u
orfad=$1 load=$2 conns=${3:-500} secs=${4:-10}
dir=$(mktemp -d /tmp/orfa-load.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
echo "1..3"

# All connections come from one address: the per-address cap (derived
# from the descriptor limit by default) is set to what the test needs.
"$orfad" -f --listen 127.0.0.1:0 --port-file "$dir/port" --ramfs \
	--ramfs-size 2G --export-options rw,no_root_squash,insecure \
	--max-conns $((conns + 64)) --max-conns-per-addr $((conns + 16)) \
	>"$dir/orfad.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
if [ ! -s "$dir/port" ]; then
	echo "not ok 1 - orfad starts"; sed 's/^/# /' "$dir/orfad.log"
	echo "not ok 2 - $conns connections without errors # orfad did not start"
	echo "not ok 3 - server survives the load"
	exit 1
fi
echo "ok 1 - orfad starts"

timeout $((secs + 120)) "$load" --addr "$(cat "$dir/port")" --conns "$conns" \
	--seconds "$secs" --depth 2 --server-pid "$pid" >"$dir/out" 2>"$dir/err"
rc=$?
sed 's/^/# /' "$dir/out"
head -20 "$dir/err" | sed 's/^/# /'
if [ $rc = 0 ]; then
	echo "ok 2 - $conns connections for ${secs}s without errors"
else
	echo "not ok 2 - $conns connections for ${secs}s without errors (rc $rc)"
fi
if kill -0 "$pid" 2>/dev/null; then
	echo "ok 3 - server survives the load"
else
	echo "not ok 3 - server survives the load"; tail -5 "$dir/orfad.log" | sed 's/^/# /'
fi
