#!/usr/bin/env bash
# orfad command line (TAP): help/version, bad arguments (exit 2 with a
# message), unusable export and busy port (exit 1 with a message), and
# detaching: a daemon reports a busy port from the starting process and
# otherwise detaches once listening.
#   orfad-cli.sh ORFAD
set -u
orfad=$1
dir=$(mktemp -d /tmp/orfad-cli.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
n=0
t() {	# t COND-EXIT-STATUS NAME
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}
run() {	# run ARGS...: exit status in $rc, stderr in $dir/err
	timeout 20 "$orfad" "$@" >"$dir/out" 2>"$dir/err"
	rc=$?
}
wait_port() {	# wait_port FILE PID
	for _ in $(seq 100); do
		[ -s "$1" ] && return 0
		[ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null && return 1
		sleep 0.1
	done
	return 1
}

run --help
t $([ $rc = 0 ] && grep -q -- '--listen' "$dir/out"; echo $?) "--help exits 0 and shows the options"
run --version
t $([ $rc = 0 ] && grep -q '^orfad ' "$dir/out"; echo $?) "--version exits 0"

run --help
t $(grep -q -- '--exports FILE' "$dir/out" && grep -q -- '--key FILE' "$dir/out" && grep -q -- '--genkey FILE' "$dir/out"; echo $?) "--help shows --exports, --key and --genkey"

for args in "" "--ramfs --export /tmp" "--ramfs --threading=bogus" \
	    "--ramfs --log-level loud" "--ramfs --listen 127.0.0.1:99999" \
	    "--ramfs --threads 0" "--ramfs --ramfs-size 12X" "--ramfs --nope" \
	    "--ramfs extra" "--exports /dev/null --ramfs" \
	    "--exports /dev/null --export /tmp" "--genkey $dir/k --ramfs" \
	    "--exports /dev/null --export-options ro"; do
	# shellcheck disable=SC2086
	run -f $args
	t $([ $rc = 2 ] && [ -s "$dir/err" ]; echo $?) "'orfad -f $args' exits 2 with a message (exit $rc)"
done
head -2 "$dir/err" | sed 's/^/# /'

run -f --listen 127.0.0.1:0 --exports "$dir/missing"
t $([ $rc = 1 ] && grep -q "bad exports file: $dir/missing" "$dir/err"; echo $?) "a missing exports file: exit 1 with a message (exit $rc)"
printf 'data /srv\n' >"$dir/bad-exports"
run -f --listen 127.0.0.1:0 --exports "$dir/bad-exports"
t $([ $rc = 1 ] && grep -q "line 1: too few fields" "$dir/err"; echo $?) "an exports file with a bad line: exit 1 naming the line (exit $rc)"
sed 's/^/# /' "$dir/err"
printf 'data %s/missing *\n' "$dir" >"$dir/exports"
run -f --listen 127.0.0.1:0 --exports "$dir/exports"
t $([ $rc = 1 ] && grep -q "cannot export $dir/missing as data" "$dir/err"; echo $?) "an export whose directory is missing: exit 1 naming it (exit $rc)"

run -f --listen 127.0.0.1:0 --export "$dir/missing"
t $([ $rc = 1 ] && grep -q "cannot export $dir/missing" "$dir/err"; echo $?) "a missing export directory: exit 1 with a message (exit $rc)"
sed 's/^/# /' "$dir/err"
run -f --listen 127.0.0.1:0 --ramfs --export-options rw,nosquash
t $([ $rc = 1 ] && grep -q "bad --export-options 'rw,nosquash': unknown option 'nosquash'" "$dir/err"; echo $?) "a bad --export-options: exit 1 naming the option (exit $rc)"
sed 's/^/# /' "$dir/err"
run --help
t $(grep -q -- '--export-options OPTS' "$dir/out" && grep -q 'root_squash, secure' "$dir/out"; echo $?) "--help shows --export-options and the shortcut's defaults"

"$orfad" -f --listen 127.0.0.1:0 --port-file "$dir/port1" --ramfs 2>"$dir/log1" &
pids+=($!)
if wait_port "$dir/port1" "${pids[0]}"; then
	addr=$(cat "$dir/port1")
	run -f --listen "$addr" --ramfs
	t $([ $rc = 1 ] && grep -q "^orfad: cannot listen on $addr: Address already in use" "$dir/err"; echo $?) "a busy port: exit 1 and 'cannot listen on $addr: Address already in use' (exit $rc)"
	sed 's/^/# /' "$dir/err"
	run --listen "$addr" --ramfs
	t $([ $rc = 1 ] && grep -q "cannot listen on" "$dir/err"; echo $?) "without -f too, the starting process reports the busy port (exit $rc)"
else
	t 1 "first orfad starts"; t 1 "without -f: busy port"
fi

# Detached: the starting process exits 0 once listening.
run --listen 127.0.0.1:0 --port-file "$dir/port2" --ramfs
dpid=$(pgrep -f -- "--port-file $dir/port2" | head -1)
[ -n "$dpid" ] && pids+=("$dpid")
t $([ $rc = 0 ] && [ -s "$dir/port2" ] && [ -n "$dpid" ]; echo $?) "without -f orfad detaches once listening (exit $rc, daemon pid ${dpid:-none})"
if [ -n "$dpid" ]; then
	kill -TERM "$dpid"
	for _ in $(seq 50); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
	t $(! kill -0 "$dpid" 2>/dev/null; echo $?) "the daemon stops on SIGTERM"
else
	t 1 "the daemon stops on SIGTERM"
fi

# SIGINT stops a foreground server cleanly.
kill -INT "${pids[0]}" 2>/dev/null
st=timeout
for _ in $(seq 50); do
	if ! kill -0 "${pids[0]}" 2>/dev/null; then wait "${pids[0]}"; st=$?; break; fi
	sleep 0.1
done
t $([ "$st" = 0 ]; echo $?) "SIGINT stops a foreground orfad with exit 0 (exit $st)"
echo "1..$n"
