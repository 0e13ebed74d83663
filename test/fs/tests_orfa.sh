# tests_orfa.sh - checks that only make sense for ORFA (the local target
# reports them skipped): mounting through mount(8)/mount.fuse3 and fstab,
# and a server killed under a reading client.
# Sourced by harness.sh; see lib.sh.

# ---- mount -t fuse.orfa / fstab ----------------------------------------
# mount(8) hands fuse.* types to mount.fuse3, which runs "orfa SOURCE DIR
# -o OPTS" through /bin/sh.  mount(8) strips PATH from the helper's
# environment (util-linux sanitize_env), so a PATH entry cannot reach it;
# the shell then searches its default path, which includes /usr/local/sbin
# (where meson installs orfa).  So the test runs in a private mount
# namespace (unshare -m) in which a temporary directory holding only an
# "orfa" symlink to the built client is bind-mounted over /usr/local/sbin:
# nothing is installed and the host's mount table is untouched.  PATH is
# also set, for a mount.fuse3 started some other way.

# helper_mount_run MOUNT_ARGS...: inside the namespace, mount with
# MOUNT_ARGS, wait for $D, read the marker, umount $D.  Results in
# $S/helper.out as KEY=VALUE lines.
helper_mount_run() {
	local q
	q=$(printf '%q ' "$@")
	cat > "$S/inner.sh" <<-EOF
	set -u
	mounted() { awk -v m="\$1" '\$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
	mount --bind '$BIN' /usr/local/sbin || { echo BIND=fail; exit 1; }
	out=\$(timeout -k 2 30 mount $q 2>&1); echo "MOUNT_RC=\$?"; echo "MOUNT_OUT=\$out" | tr '\n' ' '; echo
	for i in \$(seq 1 200); do mounted '$D' && break; sleep 0.1; done
	mounted '$D' && echo MOUNTED=yes || echo MOUNTED=no
	echo "TYPE=\$(awk -v m='$D' '\$2 == m { print \$3 }' /proc/mounts)"
	echo "MARKER=\$(timeout -k 2 30 cat '$D/t-$name/marker' 2>&1)"
	out=\$(timeout -k 2 30 umount '$D' 2>&1); echo "UMOUNT_RC=\$?"; echo "UMOUNT_OUT=\$out" | tr '\n' ' '; echo
	mounted '$D' && echo STILL_MOUNTED=yes || echo STILL_MOUNTED=no
	mounted '$D' && timeout -k 2 10 umount -l '$D'
	exit 0
	EOF
	PATH="$BIN:$PATH" timeout -k 5 120 unshare --mount --propagation private \
		bash "$S/inner.sh" > "$S/helper.out" 2>&1
	OUT=$(cat "$S/helper.out")
	note "$(tr '\n' ' ' < "$S/helper.out")"
}

helper_mount_check() {
	grep -q '^BIND=fail' "$S/helper.out" && skip "cannot bind-mount in a private mount namespace"
	[ "$(kv MOUNT_RC)" = 0 ] || fail "mount failed (status $(kv MOUNT_RC)): $(kv MOUNT_OUT)"
	[ "$(kv MOUNTED)" = yes ] || fail "$D not in /proc/mounts after mount returned 0"
	expect_eq "marker via the helper mount" "$(kv MARKER)" marker
	[ "$(kv UMOUNT_RC)" = 0 ] || fail "umount failed: $(kv UMOUNT_OUT)"
	[ "$(kv STILL_MOUNTED)" = no ] || fail "$D still mounted after umount"
}

helper_mount_setup() {
	BIN=$(orfa_install_bin)
	D=$S/mnt
	mkdir -p "$D"
	printf marker > "$W/marker" || fail "cannot write marker"
	# The daemonized client lives on in the namespace if the test dies.
	trap 'proc_kill_mentioning "$D"' EXIT
}

fs_test mount_t_fuse_orfa orfa root
t_mount_t_fuse_orfa() {
	helper_mount_setup
	helper_mount_run -t fuse.orfa "$FS_ADDR:/" "$D" ${FS_XPORT_OPT:+-o "$FS_XPORT_OPT"}
	helper_mount_check
}

fs_test mount_t_fuse_orfa_port_option orfa root
t_mount_t_fuse_orfa_port_option() {
	helper_mount_setup
	helper_mount_run -t fuse.orfa "$FS_HOST:/" "$D" -o "port=${FS_ADDR##*:}${FS_XPORT_OPT:+,$FS_XPORT_OPT}"
	helper_mount_check
}

fs_test mount_fstab_line orfa root
t_mount_fstab_line() {
	helper_mount_setup
	printf '%s %s fuse.orfa defaults,_netdev%s 0 0\n' "$FS_ADDR:/" "$D" "${FS_XPORT_OPT:+,$FS_XPORT_OPT}" > "$S/fstab"
	helper_mount_run --fstab "$S/fstab" "$D"
	helper_mount_check
}

# ---- the server killed under a reader ----------------------------------
# Own server (same backend) and client with -o timeout=5 (request
# timeout).  A 64 MiB file is written through one mount, which is then
# unmounted so the reading mount starts with a cold cache; fsops slowread
# reads it 1 MiB per 20 ms and the server gets SIGKILL once 8 MiB are in.

kill_cleanup() {
	local m
	for m in "$S/mr" "$S/mw"; do
		fs_unmount "$m"
	done
	[ -n "${KCLIENT:-}" ] && proc_stop "$KCLIENT"
	[ -n "${KSERVER:-}" ] && proc_stop "$KSERVER"
}

# kill_setup: leaves the reading mount at $S/mr, server $KSERVER.
kill_setup() {
	local wpid
	KSERVER="" KCLIENT=""
	trap kill_cleanup EXIT
	mkdir -p "$S/export"
	orfa_server_start "$S/orfad.log" "$S/port" "$FS_TARGET" "$S/export" ||
		fail "server for the kill test: $SETUP_ERR"
	KSERVER=$SERVER_PID
	orfa_mount "$SERVER_ADDR" "$S/mw" "$S/orfa-w.log" timeout=5 ||
		fail "writer mount with -o timeout=5: $SETUP_ERR"
	wpid=$CLIENT_PID
	timeout 120 head -c $((64 * 1048576)) /dev/urandom > "$S/mw/big" ||
		fail "writing the 64 MiB file failed"
	fs_unmount "$S/mw" || fail "cannot unmount the writer mount"
	proc_wait_exit "$wpid" 20
	orfa_mount "$SERVER_ADDR" "$S/mr" "$S/orfa-r.log" timeout=5 ||
		fail "reader mount with -o timeout=5: $SETUP_ERR"
	KCLIENT=$CLIENT_PID
	expect_eq "file size" "$(st %s "$S/mr/big")" $((64 * 1048576))
}

# kill_during_read: starts the reader, kills the server at 8 MiB, waits
# for the reader.  Sets READER_RC, READER_OUT, READER_SECS.
kill_during_read() {
	local rpid t0
	timeout -k 5 60 "$FSOPS" slowread "$S/mr/big" "$S/progress" > "$S/reader.out" 2>&1 &
	rpid=$!
	progress_8m() { [ "$(cat "$S/progress" 2>/dev/null || echo 0)" -ge 8388608 ]; }
	wait_for 30 progress_8m || { kill "$rpid"; fail "reader made no progress: $(cat "$S/reader.out")"; }
	kill -KILL "$KSERVER"
	t0=$(date +%s.%N)
	wait "$rpid"
	READER_RC=$?
	READER_SECS=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
	READER_OUT=$(cat "$S/reader.out")
	proc_wait_exit "$KSERVER" 5
	KSERVER=""
	note "reader after server kill: rc=$READER_RC after ${READER_SECS}s: $(printf '%s' "$READER_OUT" | tr '\n' ' ')"
}

fs_test server_kill_reader_gets_error orfa limit=200
t_server_kill_reader_gets_error() {
	kill_setup
	kill_during_read
	case $READER_RC in
	1) ;;
	0) fail "reader finished without error after the server was killed: $READER_OUT" ;;
	124 | 137) fail "reader hung: no error within 60 s of the server kill (client -o timeout=5)" ;;
	*) fail "reader ended with status $READER_RC: $READER_OUT" ;;
	esac
	printf '%s\n' "$READER_OUT" | grep -q '^ERR E' || fail "no errno reported: $READER_OUT"
}

fs_test server_kill_new_requests_fail orfa limit=200
t_server_kill_new_requests_fail() {
	kill_setup
	kill_during_read
	run -t 60 "$FSOPS" stat "$S/mr/not-looked-up-yet"
	case $RC in
	1) note "stat after the kill: $OUT" ;;
	0) fail "stat of a new name succeeded with the server dead" ;;
	124 | 137) fail "stat hung for 60 s with the server dead" ;;
	*) fail "stat gave status $RC: $OUT" ;;
	esac
	run -t 60 "$FSOPS" creat-excl "$S/mr/new-file"
	case $RC in
	1) note "create after the kill: $OUT" ;;
	0) fail "create succeeded with the server dead" ;;
	*) fail "create hung or crashed (status $RC): $OUT" ;;
	esac
}

fs_test server_kill_then_unmount orfa limit=200
t_server_kill_then_unmount() {
	kill_setup
	kill_during_read
	run -t 30 fusermount3 -u "$S/mr"
	[ "$RC" -eq 0 ] || fail "fusermount3 -u after the server kill failed ($RC): $OUT"
	! mounted "$S/mr" || fail "still mounted after fusermount3 -u"
	proc_wait_exit "$KCLIENT" 20 || fail "client still running 20 s after its unmount"
	KCLIENT=""
}

# ---- close(2) reaches the server only when it has work there -------------
# Own server with a debug log (it names every request it receives) and
# client.  A close(2) sends FLUSH only after data changed through that open
# file or once a POSIX lock was asked for on the file (ops_io.c,
# flush_needed); the lock is still dropped when its holder closes.

flush_cleanup() {
	fs_unmount "$S/mf"
	[ -n "${FCLIENT:-}" ] && proc_stop "$FCLIENT"
	[ -n "${FSERVER:-}" ] && proc_stop "$FSERVER"
}

flushes() { grep -c ': FLUSH #' "$S/orfad.log"; }

# flush_count WHAT WANT CMD...: runs CMD, expects WANT FLUSH requests.
flush_count() {
	local what=$1 want=$2 before
	shift 2
	before=$(flushes)
	"$@" || fail "$what failed"
	expect_eq "FLUSH requests of $what" $(($(flushes) - before)) "$want"
}

fs_test close_flushes_only_with_work orfa limit=120
t_close_flushes_only_with_work() {
	FSERVER="" FCLIENT=""
	trap flush_cleanup EXIT
	mkdir -p "$S/export"
	ORFA_FS_SERVER_ARGS="--log-level debug" orfa_server_start \
		"$S/orfad.log" "$S/port" "$FS_TARGET" "$S/export" ||
		fail "server: $SETUP_ERR"
	FSERVER=$SERVER_PID
	orfa_mount "$SERVER_ADDR" "$S/mf" "$S/orfa-f.log" "" ||
		fail "mount: $SETUP_ERR"
	FCLIENT=$CLIENT_PID
	flush_count "a write and close" 1 sh -c "printf x > '$S/mf/f'"
	flush_count "open, read, close" 0 cat "$S/mf/f"
	flush_count "an append and close" 1 sh -c "printf y >> '$S/mf/f'"
	flush_count "open, read, close" 0 cat "$S/mf/f"
	lockpair posix-wr "$S/mf/f" "$S/mf/f"
	expect_eq "F_SETLK after the holder closed" "$(kv after_release)" OK
	flush_count "open, read, close of a file once locked" 1 cat "$S/mf/f"
}
