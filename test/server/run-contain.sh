#!/usr/bin/env bash
# Containment tests (TAP): a hostile client (orfa_contain) against a real
# orfad serving several exports from one --exports file, on the native
# backend (a real directory with symlinks pointing out of it and a canary
# file outside) or the RAM backend; then the same server with --key for
# the authentication tests; then the key file checks of orfad itself.
#   run-contain.sh ORFAD ORFA_CONTAIN native|ramfs [queue|sequential|connection]
set -u
orfad=$1 contain=$2 backend=$3 mode=${4:-queue}
dir=$(mktemp -d /tmp/orfa-contain.XXXXXX)
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

# The tree.  The canary lives outside the export, reachable only through
# symlinks (to a hard link "alias" of it, so its own name appears in no
# link text); its times are old so that any read would move its atime.
chmod 0755 "$dir"
mkdir -p "$dir/outside" "$dir/export" "$dir/export_b"
canary="$dir/outside/secret-$RANDOM$RANDOM"
echo "CANARY-$RANDOM-$RANDOM-CONTENT" >"$canary"
touch -d '2001-01-01 00:00:00' "$canary"
touch -a -d '2000-01-01 00:00:00' "$canary"
ln "$canary" "$dir/outside/alias"
chmod 0777 "$dir/export"
if [ "$backend" = native ]; then
	echo hello >"$dir/export/file"
	mkdir -p "$dir/export/sub/inner" "$dir/export/elsewhere"
	chmod 0777 "$dir/export/sub" "$dir/export/sub/inner" \
		"$dir/export/elsewhere"
	: >"$dir/export/sub/inner/file"
	ln -s ../outside/alias "$dir/export/to_alias"
	ln -s "$dir/outside/alias" "$dir/export/to_abs"
	ln -s ../outside "$dir/export/to_outdir"
	ln -s / "$dir/export/to_root"
	ln -s .. "$dir/export/sub/up"
	ln -s ../.. "$dir/export/sub/upup"
	echo b-secret >"$dir/export_b/bfile"
	src() { echo "$dir/$1"; }
else
	src() { echo "ramfs:64M"; }
fi
cat >"$dir/exports" <<EOT
# NAME  SOURCE                  CLIENTS              OPTIONS
a       $(src export)    *                    rw,no_root_squash,insecure
b       $(src export_b)  *                    rw,no_root_squash,insecure
ro      $(src export)    *                    ro,no_root_squash,insecure
sq      $(src export)    *                    rw,root_squash,insecure
all     $(src export)    *                    rw,all_squash,anonuid=4321,anongid=4321,insecure
net     $(src export)    10.0.0.0/8,fd00::/8  rw,insecure
EOT

start() {	# start LOG ARGS...: orfad in the background, pid in $pid
	local log=$1
	shift
	rm -f "$dir/port"
	"$orfad" -f --listen 127.0.0.1:0 --port-file "$dir/port" \
		--exports "$dir/exports" --threading="$mode" --log-level info \
		"$@" >"$log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		[ -s "$dir/port" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}
stop() {	# stop NAME LOG: SIGTERM, exit 0, no error in the log
	local st=timeout
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 100); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid"; st=$?; pid=
			break
		fi
		sleep 0.1
	done
	t "$([ "$st" = 0 ]; echo $?)" "$1: orfad stops cleanly on SIGTERM (exit $st)"
	if grep -qE ': err: |Sanitizer|runtime error' "$2"; then
		t 1 "$1: no error in the server log"
		grep -E ': err: |Sanitizer|runtime error' "$2" | head -20 |
			sed 's/^/# /'
	else
		t 0 "$1: no error in the server log"
	fi
}
probe() {	# probe LOG ARGS...: run orfa_contain, count its tests
	local log=$1 rc
	shift
	timeout 240 "$contain" --addr "$(cat "$dir/port")" --log "$log" \
		--backend "$backend" --canary "$canary" \
		--count-file "$dir/count" "$@" >"$dir/contain.out" 2>&1
	rc=$?
	# Renumber its TAP lines after ours.
	awk -v base="$n" '
		/^(not )?ok [0-9]+ / {
			ok = ($1 == "ok"); sub(/^(not )?ok [0-9]+ /, "");
			printf "%s %d %s\n", ok ? "ok" : "not ok", base + (++k), $0;
			next }
		{ print }' "$dir/contain.out"
	n=$((n + $(grep -cE '^(not )?ok ' "$dir/contain.out")))
	if [ "$rc" != 0 ] && ! grep -q '^not ok ' "$dir/contain.out"; then
		t 1 "orfa_contain $* ran to the end (exit $rc)"
	fi
	if [ "$rc" != 0 ] || [ -n "${ORFA_PROBE_SHOW_LOG:-}" ]; then
		echo "# --- orfad log (last 40 lines) ---"
		tail -40 "$log" | sed 's/^/# /'
	fi
}

echo "# containment, $backend backend, $mode threading, in $dir"
if start "$dir/orfad.log"; then
	t 0 "orfad serves the exports file (a, b, ro, sq, all, net)"
	probe "$dir/orfad.log" --mode main
	stop "without a key" "$dir/orfad.log"
else
	t 1 "orfad serves the exports file"
	sed 's/^/# /' "$dir/orfad.log"
fi

"$orfad" --genkey "$dir/key" >/dev/null 2>&1 &&
	"$orfad" --genkey "$dir/wrong" >/dev/null 2>&1
t $? "orfad --genkey writes two keys"
t "$([ "$(stat -c %a "$dir/key")" = 600 ]; echo $?)" "the key file has mode 0600"
if start "$dir/orfad-key.log" --key "$dir/key" --allow-integrity-only; then
	t 0 "orfad starts with --key"
	# The port file comes before the start-up line: wait for it.
	for _ in $(seq 50); do
		grep -q 'clients must authenticate' "$dir/orfad-key.log" && break
		sleep 0.1
	done
	grep -q 'clients must authenticate' "$dir/orfad-key.log"
	t $? "orfad says clients must authenticate"
	probe "$dir/orfad-key.log" --mode auth --key "$dir/key" \
		--wrong-key "$dir/wrong"
	stop "with a key" "$dir/orfad-key.log"
else
	t 1 "orfad starts with --key"
	sed 's/^/# /' "$dir/orfad-key.log"
fi

# Key files: open to others, missing, overwritten.
cp "$dir/key" "$dir/key644"
chmod 0644 "$dir/key644"
timeout 20 "$orfad" -f --listen 127.0.0.1:0 --ramfs --key "$dir/key644" \
	>"$dir/out" 2>"$dir/err"
rc=$?
t "$([ $rc = 1 ] && grep -q 'chmod 600' "$dir/err"; echo $?)" \
	"a key file with mode 0644: orfad exits 1 and says chmod 600 (exit $rc)"
sed 's/^/# /' "$dir/err"
timeout 20 "$orfad" -f --listen 127.0.0.1:0 --ramfs --key "$dir/nokey" \
	>"$dir/out" 2>"$dir/err"
rc=$?
t "$([ $rc = 1 ] && grep -q 'nokey' "$dir/err"; echo $?)" \
	"a missing key file: exit 1 with its name (exit $rc)"
printf 'my secret passphrase, long enough to pass a length check\n' > "$dir/weak"
chmod 0600 "$dir/weak"
timeout 20 "$orfad" -f --listen 127.0.0.1:0 --ramfs --key "$dir/weak" \
	>"$dir/out" 2>"$dir/err"
rc=$?
t "$([ $rc = 1 ] && grep -q 'orfad --genkey FILE' "$dir/err"; echo $?)" \
	"a passphrase as key: orfad exits 1 and says how to make a key (exit $rc)"
sed 's/^/# /' "$dir/err"
before=$(cat "$dir/key")
timeout 20 "$orfad" --genkey "$dir/key" >"$dir/out" 2>"$dir/err"
rc=$?
t "$([ $rc = 1 ] && [ "$(cat "$dir/key")" = "$before" ]; echo $?)" \
	"--genkey does not overwrite an existing key (exit $rc)"
echo "1..$n"
