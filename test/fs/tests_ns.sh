# tests_ns.sh - the name space: rename cases, hard links, symlinks, name
# lengths and odd characters, special files (FIFO, device, UNIX socket).
# Sourced by harness.sh; see lib.sh for the test environment.

# ---- rename ------------------------------------------------------------
fs_test rename_file_over_file
t_rename_file_over_file() {
	local ino
	printf 'A' > "$W/a"
	printf 'B' > "$W/b"
	ino=$(st %i "$W/a")
	expect_ok "$FSOPS" rename "$W/a" "$W/b"
	[ ! -e "$W/a" ] || fail "source name still exists"
	expect_eq "target content" "$(cat "$W/b")" A
	expect_eq "target inode" "$(st %i "$W/b")" "$ino"
	expect_eq "target content via second mount" "$(cat "$W2/b")" A
	expect_eq "listing" "$(ls -A "$W" | tr '\n' ' ')" "b "
}

fs_test rename_dir_over_empty_dir
t_rename_dir_over_empty_dir() {
	mkdir "$W/d1" "$W/d2"
	printf 'x' > "$W/d1/f"
	expect_ok "$FSOPS" rename "$W/d1" "$W/d2"
	[ ! -e "$W/d1" ] || fail "source directory still exists"
	expect_eq "moved file" "$(cat "$W/d2/f")" x
}

fs_test rename_dir_over_nonempty_enotempty
t_rename_dir_over_nonempty_enotempty() {
	mkdir "$W/d1" "$W/d2"
	: > "$W/d2/f"
	expect_err ENOTEMPTY "$FSOPS" rename "$W/d1" "$W/d2"
	[ -d "$W/d1" ] && [ -e "$W/d2/f" ] || fail "failed rename changed the tree"
}

fs_test rename_into_own_subtree_einval
t_rename_into_own_subtree_einval() {
	mkdir -p "$W/d/sub"
	expect_err EINVAL "$FSOPS" rename "$W/d" "$W/d/sub/x"
}

fs_test rename_file_over_dir_eisdir
t_rename_file_over_dir_eisdir() {
	: > "$W/f"
	mkdir "$W/d"
	expect_err EISDIR "$FSOPS" rename "$W/f" "$W/d"
}

fs_test rename_dir_over_file_enotdir
t_rename_dir_over_file_enotdir() {
	: > "$W/f"
	mkdir "$W/d"
	expect_err ENOTDIR "$FSOPS" rename "$W/d" "$W/f"
}

fs_test rename_across_dirs
t_rename_across_dirs() {
	mkdir "$W/d1" "$W/d2"
	printf 'moved' > "$W/d1/f"
	expect_ok "$FSOPS" rename "$W/d1/f" "$W/d2/g"
	expect_eq "d1 listing" "$(ls -A "$W/d1")" ""
	expect_eq "content" "$(cat "$W/d2/g")" moved
	expect_eq "content via second mount" "$(cat "$W2/d2/g")" moved
	[ ! -e "$W2/d1/f" ] || fail "old name still visible via second mount"
}

# A file replaced by rename stays readable through a descriptor opened
# before (the server must keep the replaced file alive).
fs_test rename_over_open_file_keeps_data
t_rename_over_open_file_keeps_data() {
	local got
	printf 'new' > "$W/a"
	printf 'old' > "$W/b"
	exec 3< "$W/b" || fail "open failed"
	expect_ok "$FSOPS" rename "$W/a" "$W/b"
	got=$(cat <&3)
	exec 3<&-
	expect_eq "read through the old descriptor" "$got" old
	expect_eq "new content by name" "$(cat "$W/b")" new
}

fs_test rename_noreplace_existing_eexist
t_rename_noreplace_existing_eexist() {
	printf 'A' > "$W/a"
	printf 'B' > "$W/b"
	expect_err EEXIST "$FSOPS" rename2 "$W/a" "$W/b" noreplace
	expect_eq "source kept" "$(cat "$W/a")" A
	expect_eq "target kept" "$(cat "$W/b")" B
}

fs_test rename_noreplace_missing_ok
t_rename_noreplace_missing_ok() {
	printf 'A' > "$W/a"
	expect_ok "$FSOPS" rename2 "$W/a" "$W/b" noreplace
	[ ! -e "$W/a" ] || fail "source still exists"
	expect_eq content "$(cat "$W/b")" A
}

fs_test rename_exchange_swaps
t_rename_exchange_swaps() {
	printf 'A' > "$W/a"
	mkdir "$W/b"
	: > "$W/b/inside"
	expect_ok "$FSOPS" rename2 "$W/a" "$W/b" exchange
	[ -d "$W/a" ] && [ -e "$W/a/inside" ] || fail "a is not the old directory b"
	expect_eq "b content" "$(cat "$W/b")" A
	expect_eq "b via second mount" "$(cat "$W2/b")" A
	[ -e "$W2/a/inside" ] || fail "a is not the old directory b via second mount"
}

fs_test rename_exchange_missing_enoent
t_rename_exchange_missing_enoent() {
	printf 'A' > "$W/a"
	expect_err ENOENT "$FSOPS" rename2 "$W/a" "$W/b" exchange
}

# ---- hard links --------------------------------------------------------
fs_test hardlink_count_after_link
t_hardlink_count_after_link() {
	printf 'x' > "$W/f"
	expect_eq "nlink before" "$(st %h "$W/f")" 1
	expect_ok "$FSOPS" link "$W/f" "$W/g"
	expect_eq "nlink of f" "$(st %h "$W/f")" 2
	expect_eq "nlink of g" "$(st %h "$W/g")" 2
	expect_eq "nlink via second mount" "$(st %h "$W2/g")" 2
	expect_eq "same inode" "$(st %i "$W/g")" "$(st %i "$W/f")"
}

fs_test hardlink_count_after_unlink
t_hardlink_count_after_unlink() {
	printf 'x' > "$W/f"
	ln "$W/f" "$W/g"
	ln "$W/f" "$W/h"
	expect_eq "nlink with 3 names" "$(st %h "$W/f")" 3
	rm "$W/g"
	expect_eq "nlink after unlink" "$(st %h "$W/f")" 2
	rm "$W/f"
	expect_eq "nlink of last name" "$(st %h "$W/h")" 1
	expect_eq content "$(cat "$W/h")" x
}

fs_test hardlink_across_dirs
t_hardlink_across_dirs() {
	mkdir "$W/d1" "$W/d2"
	printf 'one' > "$W/d1/f"
	expect_ok "$FSOPS" link "$W/d1/f" "$W/d2/g"
	expect_eq "same inode" "$(st %i "$W/d2/g")" "$(st %i "$W/d1/f")"
	printf 'two' >> "$W/d2/g"
	expect_eq "write via one name seen via the other" "$(cat "$W/d1/f")" onetwo
	expect_eq "via second mount" "$(cat "$W2/d1/f")" onetwo
}

fs_test dir_nlink_counts_subdirs
t_dir_nlink_counts_subdirs() {
	mkdir "$W/d"
	expect_eq "nlink of empty dir" "$(st %h "$W/d")" 2
	mkdir "$W/d/s1" "$W/d/s2"
	: > "$W/d/f"
	expect_eq "nlink with 2 subdirs" "$(st %h "$W/d")" 4
	rmdir "$W/d/s1"
	expect_eq "nlink after rmdir" "$(st %h "$W/d")" 3
}

# ---- symlinks ----------------------------------------------------------
fs_test symlink_relative
t_symlink_relative() {
	mkdir "$W/d"
	printf 'target' > "$W/d/t"
	expect_ok "$FSOPS" symlink "d/t" "$W/l"
	expect_eq readlink "$(readlink "$W/l")" "d/t"
	expect_eq "content through link" "$(cat "$W/l")" target
	expect_eq "content through link via second mount" "$(cat "$W2/l")" target
}

fs_test symlink_absolute
t_symlink_absolute() {
	printf 'abs' > "$W/t"
	expect_ok "$FSOPS" symlink "$W/t" "$W/l"
	expect_eq readlink "$(readlink "$W/l")" "$W/t"
	expect_eq "content through link" "$(cat "$W/l")" abs
}

fs_test symlink_dangling
t_symlink_dangling() {
	expect_ok "$FSOPS" symlink "no/such/target" "$W/l"
	[ -L "$W/l" ] || fail "dangling link is not a symlink (lstat)"
	expect_eq readlink "$(readlink "$W/l")" "no/such/target"
	expect_err ENOENT "$FSOPS" stat "$W/l"
}

fs_test symlink_lstat_vs_stat
t_symlink_lstat_vs_stat() {
	printf '12345' > "$W/t"
	ln -s t "$W/l"
	expect_eq "lstat type" "$(st %F "$W/l")" "symbolic link"
	expect_eq "lstat size (target length)" "$(st %s "$W/l")" 1
	expect_eq "stat type" "$(stat -L -c %F "$W/l")" "regular file"
	expect_eq "stat size" "$(stat -L -c %s "$W/l")" 5
	expect_eq "stat inode" "$(stat -L -c %i "$W/l")" "$(st %i "$W/t")"
}

fs_test symlink_to_dir_traversal
t_symlink_to_dir_traversal() {
	mkdir -p "$W/real/sub"
	printf 'in' > "$W/real/sub/f"
	ln -s real "$W/ld"
	expect_eq "content through dir link" "$(cat "$W/ld/sub/f")" in
	expect_eq "listing through dir link" "$(ls "$W/ld/")" sub
}

fs_test symlink_target_4095_bytes
t_symlink_target_4095_bytes() {
	local tgt
	tgt=$(printf 'x%.0s' $(seq 1 4095))
	expect_ok "$FSOPS" symlink "$tgt" "$W/l"
	expect_eq "readlink length" "$(readlink "$W/l" | tr -d '\n' | wc -c)" 4095
	[ "$(readlink "$W2/l")" = "$tgt" ] || fail "target differs via second mount"
}

# ---- names -------------------------------------------------------------
fs_test name_255_bytes_ok
t_name_255_bytes_ok() {
	local n
	n=$(printf 'n%.0s' $(seq 1 255))
	expect_ok "$FSOPS" creat-excl "$W/$n"
	expect_eq listing "$(ls "$W")" "$n"
	expect_ok "$FSOPS" mkdir "$W/${n%n}d"
	expect_ok "$FSOPS" unlink "$W/$n"
}

fs_test name_256_bytes_create_enametoolong
t_name_256_bytes_create_enametoolong() {
	local n
	n=$(printf 'n%.0s' $(seq 1 256))
	expect_err ENAMETOOLONG "$FSOPS" creat-excl "$W/$n"
	expect_err ENAMETOOLONG "$FSOPS" mkdir "$W/$n"
	expect_eq listing "$(ls -A "$W")" ""
}

fs_test name_256_bytes_lookup_enametoolong
t_name_256_bytes_lookup_enametoolong() {
	local n
	n=$(printf 'n%.0s' $(seq 1 256))
	expect_err ENAMETOOLONG "$FSOPS" stat "$W/$n"
}

fs_test name_odd_characters
t_name_odd_characters() {
	local n
	local -a names=("with space" "tab	x" "new
line" "utf8-é-日本" "-leading-dash" "star*?[x]" "back\\slash" ".hidden" "..dots" "'quote\"")
	for n in "${names[@]}"; do
		printf '%s' "$n" > "$W/$n" || fail "creating '$n' failed"
	done
	for n in "${names[@]}"; do
		expect_eq "content of '$n' via second mount" "$(cat "$W2/$n")" "$n"
	done
	expect_eq "entries" "$(find "$W2" -mindepth 1 -print0 | tr -cd '\0' | wc -c)" "${#names[@]}"
}

# ---- special files -----------------------------------------------------
fs_test mkfifo_pipe
t_mkfifo_pipe() {
	mkfifo "$W/p" || fail "mkfifo failed"
	expect_eq type "$(st %F "$W/p")" fifo
	timeout 20 cat "$W/p" > "$S/out" &
	printf 'through fifo\n' | timeout 20 tee "$W/p" > /dev/null ||
		fail "writing into the FIFO failed"
	wait
	expect_eq "data through fifo" "$(cat "$S/out")" "through fifo"
}

fs_test mknod_char_device root
t_mknod_char_device() {
	mknod "$W/null" c 1 3 || fail "mknod failed"
	expect_eq "type major minor" "$(st '%F %t %T' "$W/null")" "character special file 1 3"
	expect_eq "via second mount" "$(st '%F %t %T' "$W2/null")" "character special file 1 3"
}

fs_test unix_socket_bind_connect
t_unix_socket_bind_connect() {
	expect_ok "$FSOPS" sock "$W/s"
	expect_eq "type" "$(st %F "$W/s")" socket
}
