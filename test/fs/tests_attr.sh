# tests_attr.sh - extended attributes, statfs, fallocate and
# SEEK_DATA/SEEK_HOLE.  Sourced by harness.sh; see lib.sh.

# ---- xattrs ------------------------------------------------------------
fs_test xattr_set_get
t_xattr_set_get() {
	: > "$W/f"
	expect_ok setfattr -n user.color -v blue "$W/f"
	expect_eq value "$(getfattr --absolute-names --only-values -n user.color "$W/f" 2>&1)" blue
	expect_eq "value via second mount" "$(getfattr --absolute-names --only-values -n user.color "$W2/f" 2>&1)" blue
}

fs_test xattr_list
t_xattr_list() {
	: > "$W/f"
	expect_ok "$FSOPS" setxattr "$W/f" user.a 1
	expect_ok "$FSOPS" setxattr "$W/f" user.bb 22
	run "$FSOPS" listxattr "$W/f"
	[ "$RC" -eq 0 ] || fail "listxattr: $OUT"
	expect_eq "user names" "$(printf '%s\n' "$OUT" | grep '^user\.' | sort | tr '\n' ' ')" "user.a user.bb "
	expect_eq "getfattr --absolute-names -d" "$(getfattr --absolute-names -d -m '^user\.' "$W/f" 2>/dev/null | grep '^user' | sort | tr '\n' ' ')" 'user.a="1" user.bb="22" '
}

fs_test xattr_remove
t_xattr_remove() {
	: > "$W/f"
	setfattr -n user.gone -v x "$W/f"
	setfattr -n user.kept -v y "$W/f"
	expect_ok "$FSOPS" removexattr "$W/f" user.gone
	expect_err ENODATA "$FSOPS" getxattr "$W/f" user.gone
	run "$FSOPS" listxattr "$W/f"
	expect_eq "names left" "$(printf '%s\n' "$OUT" | grep '^user\.' | tr '\n' ' ')" "user.kept "
}

fs_test xattr_missing_enodata
t_xattr_missing_enodata() {
	: > "$W/f"
	expect_err ENODATA "$FSOPS" getxattr "$W/f" user.never
	expect_err ENODATA "$FSOPS" removexattr "$W/f" user.never
}

fs_test xattr_create_flag_eexist
t_xattr_create_flag_eexist() {
	: > "$W/f"
	expect_ok "$FSOPS" setxattr "$W/f" user.x 1 create
	expect_err EEXIST "$FSOPS" setxattr "$W/f" user.x 2 create
	expect_eq value "$(getfattr --absolute-names --only-values -n user.x "$W/f")" 1
}

fs_test xattr_replace_flag_enodata
t_xattr_replace_flag_enodata() {
	: > "$W/f"
	expect_err ENODATA "$FSOPS" setxattr "$W/f" user.x 1 replace
	setfattr -n user.x -v 1 "$W/f"
	expect_ok "$FSOPS" setxattr "$W/f" user.x 2 replace
	expect_eq value "$(getfattr --absolute-names --only-values -n user.x "$W/f")" 2
}

fs_test xattr_on_directory
t_xattr_on_directory() {
	mkdir "$W/d"
	expect_ok setfattr -n user.dir -v yes "$W/d"
	expect_eq value "$(getfattr --absolute-names --only-values -n user.dir "$W2/d" 2>&1)" yes
}

fs_test xattr_value_3000_bytes
t_xattr_value_3000_bytes() {
	local v
	: > "$W/f"
	v=$(head -c 3000 /dev/urandom | base64 -w0 | head -c 3000)
	expect_ok "$FSOPS" setxattr "$W/f" user.big "$v"
	run "$FSOPS" getxattr "$W2/f" user.big
	[ "$OUT" = "OK $v" ] || fail "3000 byte value differs via second mount (rc=$RC, ${#OUT} bytes back)"
}

# ---- statfs ------------------------------------------------------------
fs_test statfs_sane
t_statfs_sane() {
	local bs blocks bfree bavail files ffree
	read -r bs blocks bfree bavail files ffree < <(stat -f -c '%S %b %f %a %c %d' "$W")
	[ -n "${ffree:-}" ] || fail "stat -f failed"
	note "bsize=$bs blocks=$blocks bfree=$bfree bavail=$bavail files=$files ffree=$ffree"
	[ "$bs" -gt 0 ] || fail "fundamental block size $bs"
	[ "$blocks" -gt 0 ] || fail "total blocks $blocks"
	[ "$bfree" -le "$blocks" ] || fail "free blocks $bfree > total $blocks"
	[ "$bavail" -le "$bfree" ] || fail "available blocks $bavail > free $bfree"
	[ "$ffree" -le "$files" ] || fail "free inodes $ffree > total $files"
	[ $((blocks * bs)) -ge $((256 * 1048576)) ] ||
		fail "file system of $((blocks * bs)) bytes is too small for this suite"
}

fs_test statfs_namelen_255
t_statfs_namelen_255() {
	expect_eq "max name length" "$(stat -f -c %l "$W")" 255
}

fs_test df_reports_mount
t_df_reports_mount() {
	run df -P "$W"
	[ "$RC" -eq 0 ] || fail "df failed: $OUT"
	if [ "$FS_TARGET" != local ]; then
		expect_eq "mounted on" "$(printf '%s\n' "$OUT" | awk 'NR == 2 {print $6}')" "$FS_MNT"
	fi
}

# ---- fallocate ---------------------------------------------------------
fs_test fallocate_allocates
t_fallocate_allocates() {
	expect_ok fallocate -l 4M "$W/f"
	expect_eq size "$(st %s "$W/f")" 4194304
	[ "$(st %b "$W/f")" -ge 8192 ] || fail "only $(st %b "$W/f") blocks after allocating 4 MiB"
	cmp "$W/f" <(head -c 4194304 /dev/zero) || fail "allocated range does not read as zeros"
}

fs_test fallocate_keep_size
t_fallocate_keep_size() {
	printf 'abc' > "$W/f"
	expect_ok fallocate -n -l 4M "$W/f"
	expect_eq "size unchanged" "$(st %s "$W/f")" 3
	expect_eq "size via second mount" "$(st %s "$W2/f")" 3
	[ "$(st %b "$W/f")" -ge 8192 ] || fail "only $(st %b "$W/f") blocks after KEEP_SIZE allocation of 4 MiB"
	expect_eq content "$(cat "$W/f")" abc
}

# 4 MiB of random data, then a 2 MiB hole punched at 1 MiB.
punch_setup() {
	make_random_file "$S/src" 4194304
	cp "$S/src" "$W/f" || fail "copy failed"
	sync "$W/f"
	BLOCKS_BEFORE=$(st %b "$W/f")
	expect_ok fallocate -p -o 1M -l 2M "$W/f"
}

fs_test fallocate_punch_hole_zeroes
t_fallocate_punch_hole_zeroes() {
	punch_setup
	expect_eq size "$(st %s "$W/f")" 4194304
	{ head -c 1048576 "$S/src"; head -c 2097152 /dev/zero; tail -c 1048576 "$S/src"; } > "$S/want"
	cmp "$W/f" "$S/want" || fail "content after punch: $(cmp "$W/f" "$S/want" 2>&1)"
	cmp "$W2/f" "$S/want" || fail "content via second mount after punch: $(cmp "$W2/f" "$S/want" 2>&1)"
}

fs_test fallocate_punch_hole_frees_blocks
t_fallocate_punch_hole_frees_blocks() {
	local after
	punch_setup
	after=$(st %b "$W/f")
	note "blocks before $BLOCKS_BEFORE after $after"
	[ "$after" -le $((BLOCKS_BEFORE - 4096)) ] ||
		fail "blocks went from $BLOCKS_BEFORE to $after; punching 2 MiB should free 4096"
}

# Data [0,1M), hole [1M,3M), data [3M,4M).
seek_setup() {
	head -c 1048576 /dev/urandom > "$S/m"
	dd if="$S/m" of="$W/f" bs=1M count=1 status=none
	dd if="$S/m" of="$W/f" bs=1M seek=3 count=1 conv=notrunc status=none
	expect_eq size "$(st %s "$W/f")" 4194304
}

fs_test seek_hole_finds_hole
t_seek_hole_finds_hole() {
	seek_setup
	run "$FSOPS" seek "$W/f" hole 0
	expect_eq "SEEK_HOLE from 0" "$OUT" "OK 1048576"
}

fs_test seek_data_skips_hole
t_seek_data_skips_hole() {
	seek_setup
	run "$FSOPS" seek "$W/f" data 1048576
	expect_eq "SEEK_DATA from 1 MiB" "$OUT" "OK 3145728"
	run "$FSOPS" seek "$W2/f" data 2000000
	expect_eq "SEEK_DATA from 2000000 via second mount" "$OUT" "OK 3145728"
}

fs_test seek_hole_at_eof
t_seek_hole_at_eof() {
	seek_setup
	run "$FSOPS" seek "$W/f" hole 3145728
	expect_eq "SEEK_HOLE from 3 MiB" "$OUT" "OK 4194304"
}

fs_test seek_data_past_eof_enxio
t_seek_data_past_eof_enxio() {
	seek_setup
	expect_err ENXIO "$FSOPS" seek "$W/f" data 4194304
}
