# tests_restart.sh - orfad killed with SIGKILL and restarted on the same
# port under a client mounted with -o reconnect (issue 6).  Each test runs
# its own server (native: with --state-dir, so node ids persist; ramfs:
# empty after the restart) and client; nothing in the mount is busy while
# the server is down, except what the test holds on purpose.
# Sourced by harness.sh; see lib.sh.
#
# Requests in flight at the kill are sent again if idempotent (a 1 GiB
# copy runs through the restart); see fuse-client/client.h.

rs_cleanup() {
	exec 3<&- 4>&-
	fs_unmount "$S/m"
	[ -n "${RCLIENT:-}" ] && proc_stop "$RCLIENT"
	[ -n "${RSERVER:-}" ] && proc_stop "$RSERVER"
}

# rs_start LISTEN LOG: orfad for FS_TARGET on LISTEN ("$FS_HOST:0" or the
# address of the previous one); sets RSERVER and RADDR (HOST:PORT).
rs_start() {
	local listen=$1
	[ "${FS_TRANSPORT:-tcp}" = rdma ] && listen="rdma://$listen"
	local -a args=(-f --listen "$listen" --port-file "$S/port" --log-level info)

	case $FS_TARGET in
	native) args+=(--export "$S/export" --state-dir "$S/state") ;;
	ramfs) args+=(--ramfs --ramfs-size 256M) ;;
	esac
	args+=(--export-options "$(orfa_export_options)")
	rm -f "$S/port"
	"$FS_ORFAD" "${args[@]}" > "$2" 2>&1 &
	RSERVER=$!
	echo "$RSERVER orfad" >> "$FS_TMP/pids.list"
	port_written() { [ -s "$S/port" ]; }
	wait_for 20 port_written || fail "orfad did not start: $(tail -n 3 "$2" | tr '\n' '|')"
	RADDR=$(head -n1 "$S/port")
	RADDR=${RADDR#*://}
}

# rs_setup OPTS: server and a client on $S/m with -o reconnect,OPTS.
rs_setup() {
	RSERVER="" RCLIENT=""
	trap rs_cleanup EXIT
	cd "$S" || fail "no scratch directory"
	mkdir -p "$S/export" "$S/state"
	rs_start "${FS_HOST:-127.0.0.1}:0" "$S/orfad1.log"
	orfa_mount "$RADDR" "$S/m" "$S/orfa.log" "reconnect,$1" ||
		fail "mount with -o reconnect,$1: $SETUP_ERR"
	RCLIENT=$CLIENT_PID
}

# rs_kill_restart: SIGKILL the server, start a new one on the same port.
rs_kill_restart() {
	kill -KILL "$RSERVER"
	proc_wait_exit "$RSERVER" 30 || fail "orfad still there 30 s after SIGKILL"
	local was=$RADDR
	rs_start "$RADDR" "$S/orfad2.log"
	[ "$RADDR" = "$was" ] || fail "restarted on another port ($RADDR, was $was)"
}

fs_test restart_open_files_and_cwd_survive orfa root limit=120
t_restart_open_files_and_cwd_survive() {
	[ "$FS_TARGET" = native ] || skip "node ids persist on the native backend only"
	rs_setup timeout=20
	mkdir "$S/m/d" || fail "mkdir"
	printf 'first line\n' > "$S/m/d/f" || fail "write d/f"
	# A reader holding d/f open with its cwd in d, and an appender.
	(
		cd "$S/m/d" || exit 1
		exec 3< f 4>> f
		echo held > "$S/held"
		while [ ! -e "$S/go" ]; do sleep 0.1; done
		timeout 30 cat f > "$S/by-name" 2>&1 || echo "cat f failed: $?" >> "$S/errors"
		printf 'second line\n' >&4 || echo "append through fd failed" >> "$S/errors"
		exec 4>&-
		timeout 30 cat <&3 > "$S/by-fd" 2>&1 || echo "read fd failed" >> "$S/errors"
		timeout 30 ls > "$S/ls" 2>&1 || echo "ls in cwd failed" >> "$S/errors"
	) &
	local holder=$!
	held() { [ -e "$S/held" ]; }
	wait_for 20 held || fail "holder did not start"
	rs_kill_restart
	touch "$S/go"
	timeout 90 tail --pid="$holder" -f /dev/null
	wait "$holder" || fail "holder failed"
	[ ! -s "$S/errors" ] || fail "after the restart: $(tr '\n' '|' < "$S/errors")"
	expect_eq "d/f by name from the old cwd" "$(cat "$S/by-name")" "first line"
	expect_eq "d/f read through the fd opened before" "$(cat "$S/by-fd")" \
		"$(printf 'first line\nsecond line')"
	expect_eq "ls of the old cwd" "$(cat "$S/ls")" "f"
	grep -q 'reconnected after' "$S/orfa.log" || fail "client did not log its reconnection"
	note "$(grep -h 'reconnected after\|reopened\|restored' "$S/orfa.log" "$S/orfad2.log" | tr '\n' '|')"
}

fs_test restart_fsynced_data_survives orfa root limit=120
t_restart_fsynced_data_survives() {
	[ "$FS_TARGET" = native ] || skip "a RAM file system is empty after a restart"
	rs_setup timeout=20
	make_random_file "$S/src" $((32 * 1048576))
	timeout 60 dd if="$S/src" of="$S/m/synced" bs=1M conv=fsync status=none ||
		fail "dd with conv=fsync failed"
	rs_kill_restart
	run -t 60 sha256sum "$S/m/synced"
	[ "$RC" = 0 ] || fail "reading back after the restart: $OUT"
	expect_eq "sha256 after the restart" "${OUT%% *}" "$(sha256sum < "$S/src" | cut -d' ' -f1)"
}

fs_test restart_ramfs_gives_estale_not_hang orfa limit=120
t_restart_ramfs_gives_estale_not_hang() {
	[ "$FS_TARGET" = ramfs ] || skip "ramfs only"
	rs_setup timeout=10
	mkdir "$S/m/d" && printf x > "$S/m/d/f" || fail "setup files"
	exec 3< "$S/m/d/f"
	rs_kill_restart
	run -t 60 cat "$S/m/d/f"
	case $RC in
	0) fail "old file still readable after a RAM fs restart: $OUT" ;;
	124 | 137) fail "cat hung after the restart" ;;
	esac
	note "cat of an old name: $OUT"
	run -t 60 cat /dev/fd/3
	case $RC in
	0) fail "old open file still readable after a RAM fs restart" ;;
	124 | 137) fail "read of an old open file hung" ;;
	esac
	note "read of an old open file: $OUT"
	exec 3<&-
	run -t 60 sh -c "echo new > '$S/m/new' && cat '$S/m/new'"
	expect_eq "a new file after the restart" "$OUT" new
}

fs_test restart_dead_server_errors_in_time orfa limit=120
t_restart_dead_server_errors_in_time() {
	local t0
	rs_setup timeout=3
	kill -KILL "$RSERVER"
	proc_wait_exit "$RSERVER" 10
	RSERVER=""
	t0=$SECONDS
	run -t 60 stat "$S/m/never-seen"
	case $RC in
	0) fail "stat succeeded with no server" ;;
	124 | 137) fail "stat hung with no server (-o timeout=3)" ;;
	esac
	note "stat with the server dead: $OUT after $((SECONDS - t0)) s"
	run -t 30 fusermount3 -u "$S/m"
	[ "$RC" = 0 ] || fail "fusermount3 -u with the client reconnecting: $OUT"
	proc_wait_exit "$RCLIENT" 20 || fail "client still running 20 s after its unmount"
	RCLIENT=""
}

fs_test restart_during_1g_copy orfa root limit=400
t_restart_during_1g_copy() {
	local cpid t0 size
	[ "$FS_TARGET" = native ] || skip "node ids persist on the native backend only"
	rs_setup timeout=30
	make_random_file "$S/src" $((1024 * 1048576))
	timeout 300 cp "$S/src" "$S/m/big" 2> "$S/cp.err" &
	cpid=$!
	quarter() { size=$(stat -c %s "$S/export/big" 2>/dev/null || echo 0); [ "$size" -ge $((256 * 1048576)) ]; }
	wait_for 120 quarter || fail "copy made no progress"
	note "killing orfad with $size bytes copied"
	t0=$SECONDS
	rs_kill_restart
	wait "$cpid" || fail "cp failed across the restart (status $?): $(cat "$S/cp.err")"
	note "copy finished $((SECONDS - t0)) s after the kill; $(grep -h 'reconnected after\|sent again\|reopened\|resolving' "$S/orfa.log" | tr '\n' '|')"
	expect_eq "sha256 of the copy" "$(sha256sum < "$S/m/big" | cut -d' ' -f1)" "$(sha256sum < "$S/src" | cut -d' ' -f1)"
}

fs_test restart_during_10k_untar orfa root limit=400
t_restart_during_10k_untar() {
	local tpid t0 n
	[ "$FS_TARGET" = native ] || skip "node ids persist on the native backend only"
	rs_setup timeout=30
	mkdir -p "$S/tree"
	for d in $(seq -w 0 99); do
		mkdir "$S/tree/d$d"
		for f in $(seq -w 0 99); do
			printf '%s/%s %s\n' "$d" "$f" "$RANDOM$RANDOM" > "$S/tree/d$d/f$f"
		done
	done
	tar -C "$S/tree" -cf "$S/tree.tar" . || fail "tar -c"
	(cd "$S/tree" && find . -type f | sort | xargs sha256sum) > "$S/want.sums"
	mkdir "$S/m/x" || fail "mkdir x"
	timeout 300 tar -C "$S/m/x" -xf "$S/tree.tar" 2> "$S/tar.err" &
	tpid=$!
	some() { n=$(find "$S/export/x" -type f 2>/dev/null | wc -l); [ "$n" -ge 3000 ]; }
	wait_for 200 some || fail "untar made no progress"
	note "killing orfad with $n files extracted"
	t0=$SECONDS
	rs_kill_restart
	wait "$tpid" || fail "tar -x failed across the restart (status $?): $(head -c 600 "$S/tar.err")"
	note "untar finished $((SECONDS - t0)) s after the kill; $(grep -h 'reconnected after\|sent again\|reopened\|resolving' "$S/orfa.log" | tr '\n' '|')"
	expect_eq "files after the untar" "$(find "$S/m/x" -type f | wc -l)" 10000
	expect_eq "directories after the untar" "$(find "$S/m/x" -mindepth 1 -type d | wc -l)" 100
	(cd "$S/m/x" && find . -type f | sort | xargs sha256sum) > "$S/got.sums"
	cmp -s "$S/want.sums" "$S/got.sums" || fail "checksums differ: $(diff "$S/want.sums" "$S/got.sums" | head -5 | tr '\n' '|')"
}
