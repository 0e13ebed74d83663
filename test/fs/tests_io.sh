# tests_io.sh - file data and directory basics: create, read, write,
# append, truncate, large and sparse files, big directories, deep trees.
# Sourced by harness.sh; see lib.sh for the test environment.

fs_test create_empty_file
t_create_empty_file() {
	: > "$W/f" || fail "creating an empty file failed"
	[ -f "$W/f" ] || fail "$W/f is not a regular file after create"
	expect_eq size "$(st %s "$W/f")" 0
}

fs_test write_read_back
t_write_read_back() {
	printf 'hello world\n' > "$W/f" || fail "write failed"
	expect_eq content "$(cat "$W/f")" "hello world"
	expect_eq size "$(st %s "$W/f")" 12
}

fs_test write_visible_on_second_mount
t_write_visible_on_second_mount() {
	printf 'through the server\n' > "$W/f" || fail "write failed"
	expect_eq "content via second mount" "$(timeout 30 cat "$W2/f")" "through the server"
}

fs_test overwrite_middle
t_overwrite_middle() {
	printf '0123456789' > "$W/f"
	printf 'ab' | dd of="$W/f" bs=1 seek=4 conv=notrunc status=none ||
		fail "dd conv=notrunc failed"
	expect_eq content "$(cat "$W/f")" "0123ab6789"
	expect_eq "content via second mount" "$(cat "$W2/f")" "0123ab6789"
}

fs_test append_o_append
t_append_o_append() {
	printf 'a' > "$W/f"
	printf 'b' >> "$W/f"
	printf 'c' >> "$W/f"
	expect_eq content "$(cat "$W/f")" "abc"
}

# Two processes appending fixed-size records with O_APPEND: none lost or
# torn (O_APPEND positions every write at the end of the file).
fs_test append_concurrent_no_loss
t_append_concurrent_no_loss() {
	local bad
	(for i in $(seq 1000 1999); do echo "A$i-xxxxxxxxxxxxxxxxxxxxxxxx"; done >> "$W/f") &
	(for i in $(seq 1000 1999); do echo "B$i-yyyyyyyyyyyyyyyyyyyyyyyy"; done >> "$W/f") &
	wait
	expect_eq lines "$(wc -l < "$W/f")" 2000
	expect_eq size "$(st %s "$W/f")" $((2000 * 31))
	bad=$(grep -c -v -E '^(A1[0-9]{3}-x{24}|B1[0-9]{3}-y{24})$' "$W/f")
	expect_eq "torn lines" "$bad" 0
}

fs_test truncate_shrink
t_truncate_shrink() {
	printf '0123456789' > "$W/f"
	truncate -s 4 "$W/f" || fail "truncate failed"
	expect_eq size "$(st %s "$W/f")" 4
	expect_eq content "$(cat "$W/f")" "0123"
}

fs_test truncate_grow_zero_fill
t_truncate_grow_zero_fill() {
	printf 'xy' > "$W/f"
	truncate -s 100000 "$W/f" || fail "truncate failed"
	expect_eq size "$(st %s "$W/f")" 100000
	{ printf 'xy'; head -c 99998 /dev/zero; } > "$S/want"
	cmp "$W/f" "$S/want" || fail "grown file is not 'xy' followed by zeros"
	cmp "$W2/f" "$S/want" || fail "grown file differs via the second mount"
}

fs_test open_trunc_rewrites
t_open_trunc_rewrites() {
	printf 'long old content\n' > "$W/f"
	printf 'new\n' > "$W/f"
	expect_eq content "$(cat "$W/f")" "new"
	expect_eq size "$(st %s "$W/f")" 4
}

fs_test mkdir_rmdir
t_mkdir_rmdir() {
	expect_ok "$FSOPS" mkdir "$W/d"
	[ -d "$W/d" ] || fail "not a directory after mkdir"
	expect_ok "$FSOPS" rmdir "$W/d"
	[ ! -e "$W/d" ] || fail "directory still exists after rmdir"
}

fs_test mkdir_existing_eexist
t_mkdir_existing_eexist() {
	mkdir "$W/d" || fail "mkdir failed"
	expect_err EEXIST "$FSOPS" mkdir "$W/d"
}

fs_test rmdir_nonempty_enotempty
t_rmdir_nonempty_enotempty() {
	mkdir "$W/d" && : > "$W/d/f" || fail "setup failed"
	expect_err ENOTEMPTY "$FSOPS" rmdir "$W/d"
}

fs_test rmdir_file_enotdir
t_rmdir_file_enotdir() {
	: > "$W/f"
	expect_err ENOTDIR "$FSOPS" rmdir "$W/f"
}

fs_test unlink_dir_eisdir
t_unlink_dir_eisdir() {
	mkdir "$W/d"
	expect_err EISDIR "$FSOPS" unlink "$W/d"
}

fs_test create_excl_eexist
t_create_excl_eexist() {
	expect_ok "$FSOPS" creat-excl "$W/f"
	expect_err EEXIST "$FSOPS" creat-excl "$W/f"
}

fs_test open_missing_enoent
t_open_missing_enoent() {
	expect_err ENOENT "$FSOPS" open "$W/missing" r
}

fs_test unlink_removes_name
t_unlink_removes_name() {
	: > "$W/f"
	expect_ok "$FSOPS" unlink "$W/f"
	expect_err ENOENT "$FSOPS" open "$W/f" r
	expect_eq listing "$(ls -A "$W")" ""
}

fs_test readdir_lists_entries
t_readdir_lists_entries() {
	: > "$W/a"
	: > "$W/b"
	mkdir "$W/c"
	ln -s a "$W/d"
	expect_eq "ls -A" "$(ls -A "$W" | tr '\n' ' ')" "a b c d "
	expect_eq "ls -A via second mount" "$(ls -A "$W2" | tr '\n' ' ')" "a b c d "
	expect_eq "types" "$(find "$W" -mindepth 1 -printf '%f%y\n' | sort | tr '\n' ' ')" "af bf cd dl "
}

fs_test fsync_file
t_fsync_file() {
	printf 'data' > "$W/f"
	expect_ok sync "$W/f"
	expect_ok sync -d "$W/f"
}

# Sizes around page, request and 16 MiB (default max_data) boundaries,
# written through one mount and compared through the other.
fs_test sizes_roundtrip_boundaries limit=240
t_sizes_roundtrip_boundaries() {
	local s
	make_random_file "$S/src" $((17 * 1048576 + 1))
	for s in 0 1 511 4095 4096 4097 65535 65536 65537 131073 1048575 \
		1048577 16777215 16777216 16777217 17825793; do
		head -c "$s" "$S/src" > "$W/f$s" || fail "writing $s bytes failed"
	done
	for s in 0 1 511 4095 4096 4097 65535 65536 65537 131073 1048575 \
		1048577 16777215 16777216 16777217 17825793; do
		expect_eq "size of f$s" "$(st %s "$W2/f$s")" "$s"
		head -c "$s" "$S/src" | timeout 60 cmp - "$W2/f$s" ||
			fail "content of a $s byte file differs via the second mount"
	done
}

# 256 MiB of random data written through mount 1 and read back through
# mount 2 (so it crossed the server rather than the page cache).
fs_test large_256MiB_sha256 limit=400
t_large_256MiB_sha256() {
	local want got
	timeout 300 sh -c "head -c 268435456 /dev/urandom | tee '$W/big' | sha256sum" \
		> "$S/sum" || fail "writing 256 MiB failed"
	want=$(cut -d' ' -f1 "$S/sum")
	expect_eq size "$(st %s "$W/big")" 268435456
	expect_eq "size via second mount" "$(st %s "$W2/big")" 268435456
	got=$(timeout 300 sha256sum < "$W2/big" | cut -d' ' -f1)
	expect_eq "sha256 via second mount" "$got" "$want"
}

# 4 GiB sparse file: 4 bytes written at the very end.
sparse_make() {
	expect_ok "$FSOPS" pwrite "$W/sparse" 4294967292 TAIL
}

fs_test sparse_4GiB_size
t_sparse_4GiB_size() {
	sparse_make
	expect_eq size "$(st %s "$W/sparse")" 4294967296
	expect_eq "size via second mount" "$(st %s "$W2/sparse")" 4294967296
}

fs_test sparse_4GiB_tail_data
t_sparse_4GiB_tail_data() {
	sparse_make
	expect_eq tail "$(timeout 30 tail -c 4 "$W2/sparse")" TAIL
}

fs_test sparse_4GiB_holes_read_zero
t_sparse_4GiB_holes_read_zero() {
	local mib
	sparse_make
	head -c 1048576 /dev/zero > "$S/zero"
	for mib in 0 1 2047 2048 4094; do
		timeout 30 dd if="$W2/sparse" bs=1M skip="$mib" count=1 status=none |
			cmp - "$S/zero" || fail "hole at MiB $mib does not read as zeros"
	done
	timeout 30 dd if="$W2/sparse" bs=1M skip=4095 count=1 status=none |
		head -c 1048572 | cmp - <(head -c 1048572 /dev/zero) ||
		fail "last MiB before the tail does not read as zeros"
}

fs_test sparse_4GiB_du_small
t_sparse_4GiB_du_small() {
	local blocks
	sparse_make
	blocks=$(st %b "$W/sparse")
	[ -n "$blocks" ] || fail "stat failed"
	[ "$blocks" -lt 2048 ] ||
		fail "sparse 4 GiB file uses $blocks 512-byte blocks (du $(du -k "$W/sparse" | cut -f1) KiB); want < 1 MiB"
}

# ---- a directory of 10,000 entries ------------------------------------
many_create() {
	mkdir "$W/d" || fail "mkdir failed"
	(cd "$W/d" && seq -f 'file-%05g' 1 10000 | timeout 200 xargs touch) ||
		fail "creating 10000 files failed"
}

fs_test dir_10000_create_count limit=300
t_dir_10000_create_count() {
	many_create
	expect_eq "entries listed" "$(ls -f "$W/d" | grep -c -v -E '^\.\.?$')" 10000
}

fs_test dir_10000_names_exact limit=300
t_dir_10000_names_exact() {
	many_create
	seq -f 'file-%05g' 1 10000 > "$S/want"
	# Second mount: a listing the server produced, not the dcache's.
	timeout 120 ls -f "$W2/d" | grep -v -E '^\.\.?$' | sort > "$S/got"
	[ -z "$(sort "$S/got" | uniq -d | head -n1)" ] ||
		fail "duplicate names in the listing: $(uniq -d "$S/got" | head -n3 | tr '\n' ' ')"
	diff -q "$S/want" "$S/got" > /dev/null ||
		fail "listing differs: $(diff "$S/want" "$S/got" | head -n5 | tr '\n' ' ')"
}

fs_test dir_10000_remove_all limit=300
t_dir_10000_remove_all() {
	many_create
	(cd "$W/d" && seq -f 'file-%05g' 1 10000 | timeout 200 xargs rm) ||
		fail "removing 10000 files failed"
	expect_eq "entries left" "$(ls -f "$W/d" | grep -c -v -E '^\.\.?$')" 0
	expect_eq "entries left via second mount" "$(ls -f "$W2/d" | grep -c -v -E '^\.\.?$')" 0
	expect_ok "$FSOPS" rmdir "$W/d"
}

# ---- deep trees and long paths ----------------------------------------
fs_test deep_tree_depth_100
t_deep_tree_depth_100() {
	local p
	p=$(printf 'd/%.0s' $(seq 1 100))
	mkdir -p "$W/$p" || fail "mkdir -p of depth 100 failed"
	printf 'deep\n' > "$W/${p}f" || fail "creating a file at depth 100 failed"
	expect_eq content "$(cat "$W2/${p}f")" deep
	expect_eq "directories found" "$(find "$W" -type d | wc -l)" 101
	timeout 60 rm -rf "$W/d" || fail "rm -rf of the deep tree failed"
	[ ! -e "$W/d" ] || fail "deep tree still present after rm -rf"
}

# An absolute path of 4095 bytes (PATH_MAX - 1) made of 200-byte names:
# created through one mount, read through the other (same path length).
# The server side path is longer than PATH_MAX: a backend must not build
# full paths.
fs_test path_max_4095
t_path_max_4095() {
	local comp rel abs left
	comp=$(printf 'p%.0s' $(seq 1 200))
	rel=""
	left=$((4095 - ${#W} - 1))
	while [ "$left" -gt 211 ]; do
		rel="$rel$comp/"
		left=$((left - 201))
	done
	rel="$rel$(printf 'f%.0s' $(seq 1 "$left"))"
	abs="$W/$rel"
	expect_eq "path length" "${#abs}" 4095
	(cd "$W" && mkdir -p "${rel%/*}") || fail "mkdir -p of the long path failed"
	(cd "$W" && printf 'long\n' > "$rel") || fail "creating the file failed"
	expect_ok "$FSOPS" stat "$abs"
	expect_eq "content via second mount" "$(cat "$W2/$rel")" long
	expect_err ENAMETOOLONG "$FSOPS" stat "${abs}x"
}

# ---- more I/O paths ----------------------------------------------------
fs_test o_direct_roundtrip
t_o_direct_roundtrip() {
	make_random_file "$S/src" 8388608
	run dd if="$S/src" of="$W/f" bs=1M oflag=direct status=none
	[ "$RC" -eq 0 ] || fail "O_DIRECT write failed: $OUT"
	run dd if="$W/f" of="$S/back" bs=1M iflag=direct status=none
	[ "$RC" -eq 0 ] || fail "O_DIRECT read failed: $OUT"
	cmp "$S/src" "$S/back" || fail "O_DIRECT round trip differs"
	cmp "$S/src" "$W2/f" || fail "O_DIRECT write differs via second mount"
}

fs_test copy_file_range_within_mount
t_copy_file_range_within_mount() {
	make_random_file "$S/src" $((4 * 1048576 + 123))
	cp "$S/src" "$W/a" || fail "copy in failed"
	expect_ok "$FSOPS" copy-range "$W/a" "$W/b"
	cmp "$S/src" "$W/b" || fail "copy_file_range result differs"
	cmp "$S/src" "$W2/b" || fail "copy_file_range result differs via second mount"
}

# 1000 files open at once (server and client handle tables).
fs_test many_open_files_1000
t_many_open_files_1000() {
	expect_ok "$FSOPS" open-many "$W" 1000
	expect_eq "files" "$(find "$W2" -type f | wc -l)" 1000
}

# rm -rf deletes while it reads the directory: readdir positions must stay
# valid as entries vanish, or rm skips names and the rmdir fails.
fs_test rm_rf_large_dir limit=300
t_rm_rf_large_dir() {
	mkdir "$W/d"
	(cd "$W/d" && seq -f 'entry-with-a-longer-name-%05g' 1 3000 | timeout 200 xargs touch) ||
		fail "creating 3000 files failed"
	run -t 200 rm -rf "$W/d"
	[ "$RC" -eq 0 ] || fail "rm -rf failed: $(printf '%s' "$OUT" | head -n 3)"
	[ ! -e "$W/d" ] || fail "directory still exists after rm -rf"
}

# 500 entries with 255-byte names: directory records fill READDIR replies
# up to their ends.
fs_test readdir_long_names_500
t_readdir_long_names_500() {
	local pad
	pad=$(printf 'x%.0s' $(seq 1 250))
	mkdir "$W/d"
	(cd "$W/d" && for i in $(seq -w 1 500); do : > "$pad-$i" || exit 1; done) ||
		fail "creating the files failed"
	seq -w 1 500 | sed "s/^/$pad-/" > "$S/want"
	ls -f "$W2/d" | grep -v -E '^\.\.?$' | sort > "$S/got"
	diff -q "$S/want" "$S/got" > /dev/null ||
		fail "listing via second mount differs: $(wc -l < "$S/got") names, $(sort "$S/got" | uniq -d | wc -l) duplicates"
}
