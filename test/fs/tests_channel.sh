# tests_channel.sh - the protected channel through a real mount (issue 12
# item 3): orfad --key and orfa -o key=, data written and read back intact
# (buffered and O_DIRECT, 1 MiB requests), and a mount without the key
# refused with the one pre-AUTH refusal; integrity-only mode when asked
# and allowed; a fake server's refusal printed escaped.  Own server and
# mount (the suite's mounts have no key).  The local target skips these.
# Sourced by harness.sh; see lib.sh.

channel_cleanup() {
	fs_unmount "$S/m"
	[ -n "${CSERVER:-}" ] && proc_stop "$CSERVER"
	[ -n "${CCLIENT:-}" ] && proc_stop "$CCLIENT"
}

# channel_server: orfad --key $S/key --allow-integrity-only (same backend
# as the suite), through the suite's one start function.  Sets CSERVER.
channel_server() {
	CSERVER="" CCLIENT=""
	trap channel_cleanup EXIT
	"$FS_ORFAD" --genkey "$S/key" > /dev/null 2>&1 || fail "orfad --genkey failed"
	mkdir -p "$S/export"
	ORFA_FS_SERVER_ARGS="${ORFA_FS_SERVER_ARGS:-} --key $S/key --allow-integrity-only --log-level info" \
		orfa_server_start "$S/orfad.log" "$S/port" "$FS_TARGET" "$S/export" ||
		fail "orfad --key: $SETUP_ERR"
	CSERVER=$SERVER_PID
}

fs_test sealed_mount_data_intact orfa limit=120
t_sealed_mount_data_intact() {
	local want
	channel_server
	orfa_mount "$SERVER_ADDR" "$S/m" "$S/orfa.log" "key=$S/key" ||
		fail "mount with -o key=: $SETUP_ERR"
	CCLIENT=$CLIENT_PID
	wait_for 10 grep -q "AUTH: client authenticated" "$S/orfad.log" ||
		fail "orfad did not log the authenticated client"
	grep -q "then encrypted frames" "$S/orfad.log" ||
		fail "the default is not encryption: $(grep 'waiting for AUTH' "$S/orfad.log")"
	make_random_file "$S/src" $((8 * 1048576))
	want=$(sha256sum < "$S/src")
	timeout 60 cp "$S/src" "$S/m/buffered" || fail "cp to the sealed mount failed"
	timeout 60 dd if="$S/src" of="$S/m/direct" bs=1M oflag=direct status=none ||
		fail "O_DIRECT write of 1 MiB blocks failed"
	expect_eq "buffered file, read back with O_DIRECT" \
		"$(timeout 60 dd if="$S/m/buffered" bs=1M iflag=direct status=none | sha256sum)" "$want"
	expect_eq "O_DIRECT file, read back buffered" \
		"$(timeout 60 cat "$S/m/direct" | sha256sum)" "$want"
	fs_unmount "$S/m" || fail "cannot unmount the sealed mount"
	proc_wait_exit "$CCLIENT" 20
	CCLIENT=""
	! grep -q 'failed verification' "$S/orfad.log" ||
		fail "orfad saw a frame fail verification: $(grep 'failed verification' "$S/orfad.log")"
}

fs_test sealed_mount_integrity_only orfa limit=60
t_sealed_mount_integrity_only() {
	local want
	channel_server
	orfa_mount "$SERVER_ADDR" "$S/m" "$S/orfa.log" "key=$S/key,integrity=only" ||
		fail "mount with -o key=,integrity=only: $SETUP_ERR"
	CCLIENT=$CLIENT_PID
	wait_for 10 grep -q "integrity only, frames not encrypted" "$S/orfad.log" ||
		fail "orfad did not grant integrity only"
	make_random_file "$S/src" $((4 * 1048576))
	want=$(sha256sum < "$S/src")
	timeout 60 dd if="$S/src" of="$S/m/f" bs=1M oflag=direct status=none ||
		fail "O_DIRECT write failed"
	expect_eq "read back with O_DIRECT" \
		"$(timeout 60 dd if="$S/m/f" bs=1M iflag=direct status=none | sha256sum)" "$want"
}

fs_test sealed_mount_without_key_refused orfa limit=60
t_sealed_mount_without_key_refused() {
	local rc
	channel_server
	mkdir -p "$S/m"
	timeout -k 2 30 "$FS_ORFA" "$SERVER_ADDR:/" "$S/m" -f ${FS_XPORT_OPT:+-o "$FS_XPORT_OPT"} \
		> "$S/orfa.log" 2>&1
	rc=$?
	! mounted "$S/m" || fail "mounted without the key"
	[ "$rc" -ne 0 ] || fail "orfa without the key exited 0"
	grep -q 'server refused: export not available to this client' "$S/orfa.log" ||
		fail "no refusal text: $(tr '\n' ' ' < "$S/orfa.log")"
}

# A fake server (python3) refuses HELLO with terminal escapes and other
# control bytes in its reason; orfa must print them as \xNN.
fs_test client_escapes_server_text orfa limit=60
t_client_escapes_server_text() {
	local fake rc
	command -v python3 > /dev/null || skip "no python3 for the fake server"
	mkdir -p "$S/m"
	cat > "$S/fake.py" <<-'PY'
	import socket, struct, sys
	s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
	open(sys.argv[1], "w").write(str(s.getsockname()[1]))
	c, _ = s.accept(); s.settimeout(20); c.settimeout(20)
	h = c.recv(24, socket.MSG_WAITALL)
	blen, dlen, op, fl, st, rid = struct.unpack("<IIHHIQ", h)
	c.recv(blen + dlen, socket.MSG_WAITALL)
	reason = b"evil\x1b]0;owned\x07\x1b[2J\rdone\x9b"
	body = struct.pack("<IIQQII", 0x4146524f, 1, 1 << 20, 0, 0, 0)
	body += bytes(168 - len(body))
	c.sendall(struct.pack("<IIHHIQ", len(body), len(reason), 1, 1, 13, rid) + body + reason)
	c.recv(1)
	PY
	python3 "$S/fake.py" "$S/fport" &
	fake=$!
	wait_for 10 test -s "$S/fport" || { kill "$fake"; fail "fake server did not start"; }
	timeout -k 2 30 "$FS_ORFA" "127.0.0.1:$(cat "$S/fport"):/" "$S/m" -f > "$S/orfa.log" 2>&1
	rc=$?
	kill "$fake" 2>/dev/null; wait "$fake" 2>/dev/null
	! mounted "$S/m" || { fs_unmount "$S/m"; fail "mounted against the fake server"; }
	[ "$rc" -ne 0 ] || fail "orfa exited 0"
	note "orfa said: $(cat -v "$S/orfa.log" | tr '\n' ' ')"
	! LC_ALL=C grep -q "$(printf '[\001-\011\013-\037\177-\377]')" "$S/orfa.log" ||
		fail "control bytes reached the output: $(cat -v "$S/orfa.log")"
	grep -qF 'evil\x1b]0;owned\x07\x1b[2J\x0ddone\x9b' "$S/orfa.log" ||
		fail "the reason is not shown escaped: $(cat -v "$S/orfa.log")"
}
