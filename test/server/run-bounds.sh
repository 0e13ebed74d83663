#!/usr/bin/env bash
# Bounds on every peer (issue 12, docs/limits.md), TAP: a real orfad per
# case over real TCP, driven by orfa_bounds (see its opening comment).
#   run-bounds.sh ORFAD ORFA_BOUNDS
set -u
orfad=$1 bounds=$2
dir=$(mktemp -d /tmp/orfa-bounds.XXXXXX)
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

# start_orfad NOFILE LOG ARGS...: orfad in the background with at most
# NOFILE descriptors, pid in $pid.  Every case starts orfad here: export
# options that later defaults need go in this one place: the raw clients
# run as root but connect from unprivileged ports, so the shortcut export
# is insecure (and not squashed, like an exports line's no_root_squash).
start_orfad() {
	local nofile=$1 log=$2
	shift 2
	case " $* " in
	*" --export "*|*" --ramfs "*)
		set -- "$@" --export-options rw,no_root_squash,insecure ;;
	esac
	rm -f "$dir/port"
	(ulimit -n "$nofile" && exec "$orfad" -f --listen 127.0.0.1:0 \
		--port-file "$dir/port" --log-level info "$@") >"$log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		[ -s "$dir/port" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}
stop_orfad() {	# stop_orfad NAME LOG: SIGTERM, exit 0, no error logged
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
	if grep -qE ': err: |Sanitizer|runtime error' "$2"; then
		t 1 "$1: no error in the server log"
		grep -E ': err: |Sanitizer|runtime error' "$2" | head | sed 's/^/# /'
	else
		t 0 "$1: no error in the server log"
	fi
}
# case_run NAME NOFILE ORFAD-ARGS...: one server, one orfa_bounds test
# (NAME up to its first '-').
case_run() {
	local name=$1 nofile=$2 log=$dir/$1.log rc
	shift 2
	if ! start_orfad "$nofile" "$log" "$@"; then
		t 1 "$name: orfad starts"
		sed 's/^/# /' "$log"
		return
	fi
	timeout 100 "$bounds" --addr "$(cat "$dir/port")" --log "$log" \
		--test "${name%%-*}" >"$dir/out" 2>&1
	rc=$?
	awk -v base="$n" '
		/^(not )?ok [0-9]+ / {
			ok = ($1 == "ok"); sub(/^(not )?ok [0-9]+ /, "");
			printf "%s %d %s\n", ok ? "ok" : "not ok", base + (++k), $0;
			next }
		{ print }' "$dir/out"
	n=$((n + $(grep -cE '^(not )?ok ' "$dir/out")))
	if [ "$rc" != 0 ]; then
		grep -q '^not ok ' "$dir/out" ||
			t 1 "$name: orfa_bounds ran to the end (exit $rc)"
		echo "# --- orfad log (last 30 lines) ---"
		tail -30 "$log" | sed 's/^/# /'
	fi
	stop_orfad "$name" "$log"
}

mkdir "$dir/export"
chmod 0777 "$dir/export"
case_run flood 256 --export "$dir/export"
# Caps above what 256 descriptors hold: accept fails with EMFILE and
# orfad sheds connections without a handshake instead.
case_run flood-emfile 256 --export "$dir/export" --max-conns 1000 \
	--max-conns-per-addr 1000
# Four workers, as in the issue: without the bound, four slow senders
# hold them all.
case_run trickle 1024 --export "$dir/export" --threads 4
case_run deadlines 1024 --ramfs --hello-timeout 1 --idle-timeout 2 \
	--msg-timeout 2
cat >"$dir/exports" <<EOT
/ $dir/export 10.0.0.0/8 rw,no_root_squash,insecure
EOT
case_run netcheck 1024 --exports "$dir/exports"
case_run caps 1024 --ramfs --max-files 4 --max-nodes 6
echo "1..$n"
