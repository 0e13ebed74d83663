#!/usr/bin/env bash
# Node ids across an orfad restart (issue 6), TAP: orfad gets kill -9
# while a client (orfa_restart --before) holds d/, d/f and gone; gone is
# deleted while no server runs; a new orfad on the same export and state
# directory must honour the old ids (native) or answer ESTALE (ramfs).
#   run-restart.sh ORFAD ORFA_RESTART native|ramfs
set -u
orfad=$1 tool=$2 backend=$3
dir=$(mktemp -d /tmp/orfa-restart.XXXXXX)
pid= hpid= n=0
# The holder runs under timeout(1): kill the tool itself, then timeout.
stop_holder() {
	{ pkill -KILL -P "$hpid"; kill -KILL "$hpid"; wait "$hpid"; } 2>/dev/null
	hpid=
}
cleanup() {
	[ -n "$hpid" ] && stop_holder
	[ -n "$pid" ] && { kill -KILL "$pid"; wait "$pid"; } 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
t() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

if [ "$backend" = native ] && [ "$(id -u)" != 0 ]; then
	echo "1..0 # SKIP persistent node ids need root (open_by_handle_at)"
	exit 0
fi
case $backend in
ramfs) src=(--ramfs --ramfs-size 64M) ;;
native) mkdir "$dir/export" "$dir/state"; src=(--export "$dir/export" --state-dir "$dir/state") ;;
esac
src+=(--export-options rw,no_root_squash,insecure)	# a raw client as root

# start LOG: orfad in the background, $pid, address in $dir/port.
start() {
	rm -f "$dir/port"
	"$orfad" -f --listen 127.0.0.1:0 --port-file "$dir/port" "${src[@]}" \
		--log-level info >"$1" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		[ -s "$dir/port" ] && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

start "$dir/orfad1.log"; t $? "orfad ($backend) starts"
timeout 60 "$tool" --addr "$(cat "$dir/port")" --before "$dir/ids" >"$dir/before.out" 2>&1 &
hpid=$!
for _ in $(seq 100); do
	grep -qs '^ready' "$dir/before.out" && break
	kill -0 "$hpid" 2>/dev/null || break
	sleep 0.1
done
grep -sE '^(not )?ok' "$dir/before.out" | sed 's/^/# /'
grep -qs '^ready' "$dir/before.out"; t $? "a client creates files and holds them"
kill -KILL "$pid"; wait "$pid" 2>/dev/null; pid=
t 0 "orfad killed with SIGKILL while the client holds its ids"
stop_holder
[ "$backend" = native ] && rm -f "$dir/export/gone"

start "$dir/orfad2.log"; t $? "orfad restarts on the same export"
timeout 60 "$tool" --addr "$(cat "$dir/port")" --after "$dir/ids" --backend "$backend" >"$dir/after.out" 2>&1
rc=$?
renum() {
	awk -v n="$n" '
	/^ok [0-9]+ - / { n++; sub(/^ok [0-9]+ - /, ""); print "ok " n " - " $0; next }
	/^not ok [0-9]+ - / { n++; sub(/^not ok [0-9]+ - /, ""); print "not ok " n " - " $0; next }
	{ print "# " $0 }' "$1"
	n=$((n + $(grep -cE '^(not )?ok [0-9]+ - ' "$1")))
}
renum "$dir/after.out"
[ "$rc" = 0 ] || { t 1 "orfa_restart --after exits 0 (exit $rc)"; sed 's/^/# /' "$dir/after.out"; }
grep -h 'node id' "$dir"/orfad*.log | sed 's/^/# /'
if grep -qE ': err: |Sanitizer|runtime error' "$dir"/orfad*.log; then
	t 1 "no error in the server logs"
	grep -hE ': err: |Sanitizer|runtime error' "$dir"/orfad*.log | head | sed 's/^/# /'
else
	t 0 "no error in the server logs"
fi
echo "1..$n"
