#!/usr/bin/env bash
# orfad's SIGHUP reload (issue 17), TAP: a real orfad serving an exports
# file, edited and re-read while raw clients hold sessions (orfa_reload.c
# says what is checked); then orfad --ramfs, where SIGHUP is ignored.
#   run-reload.sh ORFAD ORFA_RELOAD
set -u
orfad=$1 reload=$2
dir=$(mktemp -d /tmp/orfa-reload.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
n=0
t() {	# t COND-EXIT-STATUS NAME
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}
start_orfad() {	# start_orfad LOG ARGS...: pid in $pid
	local log=$1
	shift
	rm -f "$dir/port"
	"$orfad" -f --listen 127.0.0.1:0 --port-file "$dir/port" \
		--log-level info "$@" >"$log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		[ -s "$dir/port" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}
stop_orfad() {	# stop_orfad NAME: SIGTERM, exit 0
	local st=timeout
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 100); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid"; st=$?; pid=
			break
		fi
		sleep 0.1
	done
	t "$([ "$st" = 0 ]; echo $?)" "$1: orfad stops cleanly (exit $st)"
}
case_run() {	# case_run NAME LOG ORFA_RELOAD-ARGS...
	local name=$1 log=$2
	shift 2
	timeout 100 "$reload" --addr "$(cat "$dir/port")" --log "$log" \
		--pid "$pid" "$@" >"$dir/out" 2>&1
	awk -v base="$n" -v name="$name" '
		/^(not )?ok [0-9]+ / {
			ok = ($1 == "ok"); sub(/^(not )?ok [0-9]+ (- )?/, "");
			printf "%s %d - %s: %s\n", ok ? "ok" : "not ok",
				++base, name, $0; next }
		{ print "# " $0 }' "$dir/out"
	n=$((n + $(grep -cE '^(not )?ok [0-9]+ ' "$dir/out")))
}

opts='*  rw,no_root_squash,insecure'
printf 'keep ramfs:16M %s\nchg ramfs:16M %s\ngone ramfs:16M %s\n' \
	"$opts" "$opts" "$opts" >"$dir/exports"
if start_orfad "$dir/file.log" --exports "$dir/exports"; then
	t 0 "file: orfad starts"
	case_run file "$dir/file.log" --mode file --file "$dir/exports"
	stop_orfad file
else
	t 1 "file: orfad starts"
	sed 's/^/# /' "$dir/file.log"
fi
[ "$n" -gt 3 ] || sed 's/^/# /' "$dir/file.log"

if start_orfad "$dir/short.log" --ramfs --ramfs-size 16M \
	--export-options rw,no_root_squash,insecure; then
	t 0 "shortcut: orfad starts"
	case_run shortcut "$dir/short.log" --mode shortcut
	stop_orfad shortcut
else
	t 1 "shortcut: orfad starts"
	sed 's/^/# /' "$dir/short.log"
fi
echo "1..$n"
