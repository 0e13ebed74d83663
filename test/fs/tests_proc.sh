# tests_proc.sh - behaviour seen by processes: unlinked-but-open files,
# POSIX and BSD locks (one mount and across two mounts), a static binary,
# mmap, executing programs stored on the mount, shared file offsets.
# Sourced by harness.sh; see lib.sh.

# ---- unlink while open -------------------------------------------------
fs_test unlink_open_read_via_fd
t_unlink_open_read_via_fd() {
	expect_ok "$FSOPS" unlinked "$W/f" read
}

fs_test unlink_open_write_via_fd
t_unlink_open_write_via_fd() {
	expect_ok "$FSOPS" unlinked "$W/f" write
}

fs_test unlink_open_fstat_nlink_0
t_unlink_open_fstat_nlink_0() {
	expect_ok "$FSOPS" unlinked "$W/f" nlink
}

fs_test unlink_open_no_fuse_hidden
t_unlink_open_no_fuse_hidden() {
	expect_ok "$FSOPS" unlinked "$W/f" hidden
	expect_eq "entries left after close" "$(ls -A "$W" | tr '\n' ' ')" ""
	expect_eq "entries left via second mount" "$(ls -A "$W2" | tr '\n' ' ')" ""
}

# ---- locks -------------------------------------------------------------
# lockpair MODE HOLDER_PATH OTHER_PATH: runs fsops lockpair into $OUT.
lockpair() {
	run -t 90 "$FSOPS" lockpair "$@"
	[ "$RC" -eq 0 ] || fail "fsops lockpair $*: rc=$RC: $OUT"
	note "$(printf '%s\n' "$OUT" | tr '\n' ' ')"
}

fs_test posix_lock_conflict
t_posix_lock_conflict() {
	lockpair posix-wr "$W/f" "$W/f"
	case $(kv setlk) in
	EAGAIN | EACCES) ;;
	*) fail "F_SETLK on a range write-locked by another process gave '$(kv setlk)', want EAGAIN or EACCES" ;;
	esac
}

fs_test posix_getlk_reports_holder
t_posix_getlk_reports_holder() {
	lockpair posix-wr "$W/f" "$W/f"
	expect_eq "F_GETLK l_type" "$(kv getlk_type)" F_WRLCK
	expect_eq "F_GETLK range" "$(kv getlk_range)" 0+100
	expect_eq "F_GETLK l_pid" "$(kv getlk_pid)" "$(kv holder_pid)"
}

fs_test posix_lock_released_on_close
t_posix_lock_released_on_close() {
	lockpair posix-wr "$W/f" "$W/f"
	expect_eq "F_SETLK after the holder closed" "$(kv after_release)" OK
}

fs_test posix_read_locks_shared
t_posix_read_locks_shared() {
	lockpair posix-rd "$W/f" "$W/f"
	expect_eq "second F_RDLCK" "$(kv setlk)" OK
}

fs_test posix_disjoint_ranges
t_posix_disjoint_ranges() {
	lockpair posix-disjoint "$W/f" "$W/f"
	expect_eq "F_WRLCK on a disjoint range" "$(kv setlk)" OK
}

fs_test posix_setlkw_waits_for_release
t_posix_setlkw_waits_for_release() {
	lockpair posix-wait "$W/f" "$W/f"
	case $(kv setlk) in
	EAGAIN | EACCES) ;;
	*) fail "F_SETLK before release gave '$(kv setlk)', want EAGAIN or EACCES" ;;
	esac
	expect_eq "F_SETLKW once the holder closed" "$(kv setlkw)" OK
}

fs_test flock_exclusive_conflict
t_flock_exclusive_conflict() {
	lockpair flock-ex "$W/f" "$W/f"
	expect_eq "LOCK_EX|LOCK_NB while another holds LOCK_EX" "$(kv flock)" EAGAIN
}

fs_test flock_released_on_close
t_flock_released_on_close() {
	lockpair flock-ex "$W/f" "$W/f"
	expect_eq "LOCK_EX after the holder closed" "$(kv after_release)" OK
}

fs_test flock_shared_compatible
t_flock_shared_compatible() {
	lockpair flock-sh "$W/f" "$W/f"
	expect_eq "second LOCK_SH" "$(kv flock)" OK
}

# flock(1): -n fails while a holder (flock -x ... sh) has the lock.
fs_test flock_util_nonblocking
t_flock_util_nonblocking() {
	local holder
	: > "$W/f"
	timeout 60 flock -x "$W/f" sh -c \
		"echo held > '$S/held'; while [ ! -e '$S/release' ]; do sleep 0.1; done" &
	holder=$!
	wait_for 20 test -s "$S/held" || fail "holder never got the lock"
	run -t 20 flock -n "$W/f" true
	: > "$S/release"
	wait "$holder"
	[ "$RC" -eq 1 ] || fail "flock -n while held exited $RC, want 1: $OUT"
	run -t 20 flock -n "$W/f" true
	[ "$RC" -eq 0 ] || fail "flock -n after the holder exited gave $RC: $OUT"
}

# The same locks between the two mounts (two orfa clients, one server).
fs_test posix_lock_two_mounts_conflict
t_posix_lock_two_mounts_conflict() {
	lockpair posix-wr "$W/f" "$W2/f"
	case $(kv setlk) in
	EAGAIN | EACCES) ;;
	*) fail "F_SETLK via mount 2 on a range write-locked via mount 1 gave '$(kv setlk)', want EAGAIN or EACCES" ;;
	esac
}

fs_test posix_getlk_two_mounts
t_posix_getlk_two_mounts() {
	lockpair posix-wr "$W/f" "$W2/f"
	# l_pid may be the holder's pid or 0 over the network: not checked.
	expect_eq "F_GETLK l_type via mount 2" "$(kv getlk_type)" F_WRLCK
	expect_eq "F_GETLK range via mount 2" "$(kv getlk_range)" 0+100
}

fs_test posix_lock_two_mounts_released
t_posix_lock_two_mounts_released() {
	lockpair posix-wr "$W/f" "$W2/f"
	expect_eq "F_SETLK via mount 2 after the holder closed" "$(kv after_release)" OK
}

fs_test posix_setlkw_two_mounts
t_posix_setlkw_two_mounts() {
	lockpair posix-wait "$W/f" "$W2/f"
	expect_eq "F_SETLKW via mount 2 once the holder closed" "$(kv setlkw)" OK
}

fs_test flock_two_mounts_conflict
t_flock_two_mounts_conflict() {
	lockpair flock-ex "$W/f" "$W2/f"
	expect_eq "LOCK_EX|LOCK_NB via mount 2 while held via mount 1" "$(kv flock)" EAGAIN
}

fs_test flock_two_mounts_released
t_flock_two_mounts_released() {
	lockpair flock-ex "$W/f" "$W2/f"
	expect_eq "LOCK_EX via mount 2 after the holder closed" "$(kv after_release)" OK
}

# ---- static binary, exec -----------------------------------------------
fs_test static_binary_io
t_static_binary_io() {
	[ -x "$FS_STATIC" ] || skip "fs_static not built (no static libc)"
	expect_ok "$FS_STATIC" "$W/f"
	[ "$OUT" = OK ] || fail "fs_static: $OUT"
}

fs_test exec_static_binary_from_mount
t_exec_static_binary_from_mount() {
	[ -x "$FS_STATIC" ] || skip "fs_static not built (no static libc)"
	cp "$FS_STATIC" "$W/prog" && chmod 0755 "$W/prog" || fail "copy failed"
	expect_ok "$W/prog" --hello
	expect_eq output "$OUT" "fs_static hello"
	expect_ok "$W2/prog" --hello
}

fs_test exec_dynamic_binary_from_mount
t_exec_dynamic_binary_from_mount() {
	cp /bin/echo "$W/echo" && chmod 0755 "$W/echo" || fail "copy failed"
	expect_ok "$W/echo" dynamic ok
	expect_eq output "$OUT" "dynamic ok"
}

fs_test exec_script_shebang
t_exec_script_shebang() {
	printf '#!/bin/sh\necho "script $1"\n' > "$W/s.sh"
	chmod 0755 "$W/s.sh"
	expect_ok "$W/s.sh" ok
	expect_eq output "$OUT" "script ok"
}

# ---- mmap --------------------------------------------------------------
fs_test mmap_shared_visible_after_msync
t_mmap_shared_visible_after_msync() {
	expect_ok "$FSOPS" mmap-shared "$W/f" "$W/f" msync
}

fs_test mmap_shared_visible_after_munmap
t_mmap_shared_visible_after_munmap() {
	expect_ok "$FSOPS" mmap-shared "$W/f" "$W/f" munmap
}

fs_test mmap_shared_msync_visible_second_mount
t_mmap_shared_msync_visible_second_mount() {
	expect_ok "$FSOPS" mmap-shared "$W/f" "$W2/f" msync
}

fs_test mmap_private_invisible
t_mmap_private_invisible() {
	expect_ok "$FSOPS" mmap-private "$W/f" "$W/f"
}

# ---- shared offsets ----------------------------------------------------
fs_test fork_shares_offset
t_fork_shares_offset() {
	expect_ok "$FSOPS" offset-fork "$W/f"
}

fs_test dup_shares_offset
t_dup_shares_offset() {
	expect_ok "$FSOPS" offset-dup "$W/f"
}
