#!/usr/bin/env bash
# Safe defaults of orfad --export (issue 12), TAP.  orfad runs as root on
# a directory export; orfa_defaults, a raw client run as uid 65534 (from
# an unprivileged port) or as root (from a port below 1024), claims uid 0
# in its requests and tries to make a root-owned set-uid file and a
# character device.  After each case the export directory itself is
# checked with find(1): no root-owned set-uid/set-gid file, no device
# node, unless the export says no_root_squash,dev,suid.
#   run-defaults.sh ORFAD ORFA_DEFAULTS
set -u
orfad=$1 tool=$2
dir=$(mktemp -d /tmp/orfa-defaults.XXXXXX)
pid= n=0
cleanup() {
	[ -n "$pid" ] && { kill -KILL "$pid"; wait "$pid"; } 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
t() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

if [ "$(id -u)" != 0 ]; then
	echo "1..0 # SKIP orfad must run as root (the attack is on a root server)"
	exit 0
fi
chmod 755 "$dir"
nobody=(setpriv --reuid 65534 --regid 65534 --clear-groups)

# start OPTIONS...: a fresh export and orfad --export on it (--ramfs
# with $src=ramfs).
src=native
start() {
	local -a what=(--export "$dir/export")
	[ "$src" = ramfs ] && what=(--ramfs --ramfs-size 16M)
	rm -rf "$dir/export" "$dir/port"
	mkdir -m 0777 "$dir/export"
	"$orfad" -f --listen 127.0.0.1:0 --port-file "$dir/port" \
		"${what[@]}" --log-level info "$@" \
		>"$dir/orfad.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		[ -s "$dir/port" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	sed 's/^/# /' "$dir/orfad.log"
	return 1
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null; pid=; }

# client AS EXPECT [PORTMAX]: the tool's lines as comments; its status.
client() {
	local -a as=()
	[ "$1" = nobody ] && as=("${nobody[@]}")
	timeout 30 "${as[@]}" "$tool" --addr "$(cat "$dir/port")" \
		--expect "$2" ${3:+--port-max "$3"} >"$dir/out" 2>&1
	local rc=$?
	sed 's/^/#   /' "$dir/out"
	return $rc
}
# What the export holds that it must not: root-owned set-id files, devices.
setid_root() { find "$dir/export" -mindepth 1 ! -type d -user 0 -perm /6000; }
devices() { find "$dir/export" -mindepth 1 \( -type c -o -type b \); }
none() { [ -z "$("$@")" ]; }

# 1. The shortcut's defaults against a local user: refused outright.
start; t $? "orfad --export DIR (defaults) starts as root"
client nobody refused -1023
t $? "uid 65534 from an unprivileged port: HELLO refused (secure)"
grep -q 'export / is secure' "$dir/orfad.log"
t $? "orfad logs why: the source port and the secure export"
[ -z "$(ls -A "$dir/export")" ]; t $? "nothing appeared in the export"

# 2. The same server, root on this host (a port below 1024): accepted,
# but squashed and nosuid, nodev.
client root squashed 1023
t $? "root from a privileged port is accepted; its requests run"
none setid_root; t $? "no root-owned set-uid/set-gid file (root_squash)"
none devices; t $? "no device node (root_squash, nodev)"
[ "$(stat -c %u "$dir/export/plain" 2>/dev/null)" = 65534 ]
t $? "a file root created is owned by 65534"
stop

# 3. insecure lets the local user in; root_squash alone still stops it
# (suid and dev given, so only the squash protects).
start --export-options insecure,suid,dev; t $? "orfad --export-options insecure,suid,dev starts"
client nobody squashed -1023
t $? "uid 65534 claiming uid 0 gets in (insecure)"
none setid_root; t $? "no root-owned set-uid/set-gid file (root_squash)"
none devices; t $? "no device node (squashed to nobody)"
stop

# 4. Not squashed, but nodev and nosuid (the defaults): EPERM.
start --export-options no_root_squash,insecure; t $? "orfad --export-options no_root_squash,insecure starts"
client nobody denied -1023
t $? "uid 0 not squashed: set-id CREATE/SETATTR and MKNOD of a device get EPERM"
none setid_root; t $? "no root-owned set-uid/set-gid file (nosuid)"
none devices; t $? "no device node (nodev)"
[ -p "$dir/export/fifo" ] && [ "$(stat -c %u "$dir/export/fifo")" = 0 ]
t $? "a fifo is still allowed (root-owned: not squashed)"
[ -d "$dir/export/sgdir" ] && [ -g "$dir/export/sgdir" ]
t $? "a set-gid directory is still allowed"
stop

# 5. dev and suid say so: the same requests succeed.
start --export-options no_root_squash,insecure,dev,suid; t $? "orfad --export-options no_root_squash,insecure,dev,suid starts"
client nobody allowed -1023
t $? "uid 0 not squashed with dev,suid: every request succeeds"
[ "$(stat -c '%u %a' "$dir/export/suid" 2>/dev/null)" = "0 4755" ]
t $? "a root-owned mode 4755 file was made"
[ -c "$dir/export/null" ] && [ "$(stat -c '%t,%T' "$dir/export/null")" = 1,3 ]
t $? "a character device (1,3) was made"
stop

# 6. Node ids belong to the session's view, the export root included:
# an id whose references were given back cannot be used by guessing it
# (ramfs: its nodes live on without references).
src=ramfs
start --export-options no_root_squash,insecure; t $? "orfad --ramfs --export-options no_root_squash,insecure starts"
client root guess
t $? "a forgotten node id below a 0700 directory gives ESTALE on the export root"
stop

echo "1..$n"
