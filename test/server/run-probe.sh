#!/usr/bin/env bash
# End-to-end server test (TAP): start a real orfad on a free local port
# with the given backend and threading mode, run orfa_probe against it
# (every operation, locks, concurrency, pipelining, HELLO refusal,
# malformed input), then stop orfad with SIGTERM and check it exits
# cleanly and logged no error.
#   run-probe.sh ORFAD ORFA_PROBE ramfs|native [queue|sequential|connection]
set -u
orfad=$1 probe=$2 backend=$3 mode=${4:-queue}
dir=$(mktemp -d /tmp/orfa-probe.XXXXXX)
pid= ppid=
cleanup() {
	[ -n "$ppid" ] && kill -KILL "$ppid" 2>/dev/null
	if [ -n "$pid" ]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

case $backend in
ramfs) src=(--ramfs --ramfs-size 256M) ;;
native) mkdir "$dir/export"; src=(--export "$dir/export") ;;
*) echo "1..0 # SKIP unknown backend $backend"; exit 0 ;;
esac
# The probe acts as root and as other users (uid 0 not squashed), makes
# fifos and set-gid directories, and its raw sockets use any port.
src+=(--export-options rw,no_root_squash,insecure)

"$orfad" -f --listen 127.0.0.1:0 --port-file "$dir/port" "${src[@]}" \
	--threading="$mode" --threads 4 --log-level info \
	>"$dir/orfad.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	[ -s "$dir/port" ] && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
if [ ! -s "$dir/port" ]; then
	echo "not ok 1 - orfad ($backend, $mode) starts"
	sed 's/^/# /' "$dir/orfad.log"
	echo "1..1"
	exit 1
fi
echo "# orfad $backend backend, $mode threading, at $(cat "$dir/port")"

timeout 240 "$probe" --addr "$(cat "$dir/port")" --log "$dir/orfad.log" \
	--backend "$backend" --count-file "$dir/count" >"$dir/probe.out" 2>&1
rc=$?
cat "$dir/probe.out"
n=$(grep -cE '^(not )?ok ' "$dir/probe.out")
if [ "$rc" != 0 ] && ! grep -q '^not ok ' "$dir/probe.out"; then
	n=$((n + 1))
	echo "not ok $n - orfa_probe ran to the end (exit $rc)"
fi

n=$((n + 1))
if kill -0 "$pid" 2>/dev/null; then
	echo "ok $n - orfad is still running after the probe"
else
	echo "not ok $n - orfad is still running after the probe"
fi

# Stop the server while a client holds a lock, has a SETLK parked and
# 100 MiB of replies unread: it must still stop cleanly.
"$probe" --addr "$(cat "$dir/port")" --park >"$dir/park.out" 2>&1 &
ppid=$!
for _ in $(seq 100); do
	grep -qs parked "$dir/park.out" && break
	kill -0 "$ppid" 2>/dev/null || break
	sleep 0.1
done
n=$((n + 1))
if grep -qs parked "$dir/park.out"; then
	echo "ok $n - a client parks a lock request and leaves replies unread"
else
	echo "not ok $n - a client parks a lock request and leaves replies unread"
	sed 's/^/# /' "$dir/park.out"
fi

n=$((n + 1))
kill -TERM "$pid" 2>/dev/null
st=timeout
for _ in $(seq 100); do
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid"; st=$?; pid=
		break
	fi
	sleep 0.1
done
{ kill -KILL "$ppid"; wait "$ppid"; } 2>/dev/null
ppid=
if [ "$st" = 0 ]; then
	echo "ok $n - SIGTERM stops orfad cleanly with that work pending (exit 0)"
else
	echo "not ok $n - SIGTERM stops orfad cleanly with that work pending (exit $st)"
fi

n=$((n + 1))
if grep -qE ': err: |Sanitizer|runtime error' "$dir/orfad.log"; then
	echo "not ok $n - no error in the server log"
	grep -E ': err: |Sanitizer|runtime error' "$dir/orfad.log" | head -20 |
		sed 's/^/# /'
else
	echo "ok $n - no error in the server log"
fi
if [ "$rc" != 0 ] || [ -n "${ORFA_PROBE_SHOW_LOG:-}" ]; then
	echo "# --- orfad log (last 60 lines) ---"
	tail -60 "$dir/orfad.log" | sed 's/^/# /'
fi
echo "1..$n"
