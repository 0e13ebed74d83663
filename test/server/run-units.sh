#!/usr/bin/env bash
# The systemd units (issue 17), TAP: systemd-analyze verify accepts
# orfad.service and orfad@.service as meson configured them, with nothing
# to say (it exits 0 on many warnings, so its output must be empty), and
# each reloads with SIGHUP (verify is skipped when systemd-analyze is
# missing); orfad.service's ExecStart line starts orfad (no systemd needed).
#   run-units.sh BUILDDIR
set -u
build=$1
n=0
t() {	# t COND-EXIT-STATUS NAME
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}
dir=$(mktemp -d /tmp/orfa-units.XXXXXX)
trap 'rm -rf "$dir"' EXIT
for u in orfad.service orfad@.service; do
	if ! command -v systemd-analyze >/dev/null; then
		n=$((n + 1))
		echo "ok $n - $u: systemd-analyze verify # SKIP systemd-analyze" \
			"is not installed (package systemd)"
	else
		# An instance name for the template, as systemctl would use it.
		v=${u/@/@test}
		cp "$build/$u" "$dir/$v"
		out=$(cd "$dir" && systemd-analyze verify --man=no "./$v" 2>&1)
		rc=$?
		[ "$rc" = 0 ] && [ -z "$out" ]
		t $? "$u: systemd-analyze verify (exit $rc, no message)"
		[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/# /'
	fi
	grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$build/$u"
	t $? "$u: reload sends SIGHUP"
done

# The ExecStart line of orfad.service as systemd would run it ($$ -> $),
# with /etc/orfa moved to a temporary directory holding an exports file
# and a key, and the built orfad: it forks once listening (Type=forking),
# with the key.
orfad_bin=$build/server/orfad
cmd=$(sed -n 's/^ExecStart=//p' "$build/orfad.service")
cmd=${cmd//'$$'/'$'}
cmd=${cmd//\/etc\/orfa/$dir}
cmd=$(printf '%s' "$cmd" | sed "s#[^ ']*/orfad #$orfad_bin #")
echo "keep ramfs:1M 127.0.0.1" >"$dir/exports"
"$orfad_bin" --genkey "$dir/key" >/dev/null 2>&1
export ORFAD_OPTS="--listen 127.0.0.1:0 --port-file $dir/port"
(eval "$cmd") >"$dir/out" 2>&1
rc=$?
for _ in $(seq 50); do [ -s "$dir/port" ] && break; sleep 0.1; done
pid=$(pgrep -f -- "--exports $dir/exports" | head -n 1)
[ "$rc" = 0 ] && [ -s "$dir/port" ] && [ -n "$pid" ]
t $? "orfad.service's ExecStart: orfad forks once listening (exit $rc)"
[ -n "$pid" ] && tr '\0' ' ' </proc/"$pid"/cmdline | grep -q -- "--key $dir/key"
t $? "orfad.service's ExecStart: the key is used when it exists"
if [ -n "$pid" ]; then
	kill -TERM "$pid"
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
echo "1..$n"
