#!/usr/bin/env bash
# The systemd units (issue 17), TAP: systemd-analyze verify accepts
# orfad.service and orfad@.service as meson configured them, with nothing
# to say (it exits 0 on many warnings, so its output must be empty), and
# each reloads with SIGHUP.  Skipped when systemd-analyze is missing.
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
echo "1..$n"
