# tests_multi.sh - several clients and processes at once: close-to-open
# consistency between the two mounts, and concurrent writers, readers and
# creators.  Sourced by harness.sh; see lib.sh.
#
# Close-to-open (the client's default cache=auto, as in NFS): a process
# that opens a file after another client closed it sees that client's
# writes, whatever it had cached before.

fs_test close_to_open_same_size_rewrite
t_close_to_open_same_size_rewrite() {
	printf 'version-1\n' > "$W/f"
	expect_eq "first read via mount 2" "$(cat "$W2/f")" version-1
	printf 'version-2\n' > "$W/f"
	expect_eq "read via mount 2 after rewrite + close via mount 1" "$(cat "$W2/f")" version-2
}

fs_test close_to_open_append_grows
t_close_to_open_append_grows() {
	printf 'one\n' > "$W/f"
	expect_eq "first read via mount 2" "$(cat "$W2/f")" one
	printf 'two\n' >> "$W/f"
	expect_eq "read via mount 2 after append via mount 1" "$(cat "$W2/f" | tr '\n' ' ')" "one two "
}

fs_test close_to_open_truncate_shrinks
t_close_to_open_truncate_shrinks() {
	printf 'a long first version\n' > "$W/f"
	expect_eq "first read via mount 2" "$(cat "$W2/f")" "a long first version"
	printf 'short\n' > "$W/f"
	expect_eq "read via mount 2 after truncate+write via mount 1" "$(cat "$W2/f")" short
}

fs_test create_seen_after_enoent_on_other_mount
t_create_seen_after_enoent_on_other_mount() {
	expect_err ENOENT "$FSOPS" stat "$W2/late"
	printf 'here' > "$W/late"
	expect_ok "$FSOPS" stat "$W2/late"
	expect_eq content "$(cat "$W2/late")" here
}

# 8 processes each write a distinct 16 MiB file at once through mount 1;
# every file is checked through mount 2.
fs_test parallel_writers_8x16MiB limit=300
t_parallel_writers_8x16MiB() {
	local i pids=""
	for i in 1 2 3 4 5 6 7 8; do
		make_random_file "$S/src$i" 16777216
	done
	for i in 1 2 3 4 5 6 7 8; do
		timeout 200 cp "$S/src$i" "$W/f$i" &
		pids="$pids $!"
	done
	for i in $pids; do
		wait "$i" || fail "a writer failed"
	done
	for i in 1 2 3 4 5 6 7 8; do
		timeout 60 cmp "$S/src$i" "$W2/f$i" || fail "file $i differs via mount 2"
	done
}

# 4 processes read the same 64 MiB file at once through a mount that has
# never seen it.
fs_test parallel_readers_same_file limit=300
t_parallel_readers_same_file() {
	local i want pids=""
	make_random_file "$S/src" 67108864
	want=$(sha256sum < "$S/src" | cut -d' ' -f1)
	cp "$S/src" "$W/f" || fail "copy failed"
	for i in 1 2 3 4; do
		(timeout 200 sha256sum < "$W2/f" | cut -d' ' -f1 > "$S/sum$i") &
		pids="$pids $!"
	done
	for i in $pids; do
		wait "$i"
	done
	for i in 1 2 3 4; do
		expect_eq "sha256 of reader $i" "$(cat "$S/sum$i")" "$want"
	done
}

# Two processes, one per mount, create 1000 files each in one directory.
fs_test parallel_creates_two_mounts limit=300
t_parallel_creates_two_mounts() {
	local p1 p2
	mkdir "$W/d"
	(cd "$W/d" && seq -f 'a%04g' 1 1000 | timeout 200 xargs touch) &
	p1=$!
	(cd "$W2/d" && seq -f 'b%04g' 1 1000 | timeout 200 xargs touch) &
	p2=$!
	wait "$p1" || fail "creates via mount 1 failed"
	wait "$p2" || fail "creates via mount 2 failed"
	expect_eq "entries via mount 1" "$(find "$W/d" -mindepth 1 | wc -l)" 2000
	expect_eq "entries via mount 2" "$(find "$W2/d" -mindepth 1 | wc -l)" 2000
	expect_eq "distinct names" "$(find "$W/d" -mindepth 1 -printf '%f\n' | sort -u | wc -l)" 2000
}

# Two processes, one per mount, each append a record 200 times, every
# append under flock(1) and in a fresh open with O_APPEND: no record is
# lost or overwritten (locks and close-to-open working together).
fs_test locked_appends_two_mounts limit=300
t_locked_appends_two_mounts() {
	local p1 p2
	: > "$W/log"
	(for i in $(seq 1 200); do
		timeout 30 flock "$W/log" sh -c "echo A$i >> '$W/log'" || exit 1
	done) &
	p1=$!
	(for i in $(seq 1 200); do
		timeout 30 flock "$W2/log" sh -c "echo B$i >> '$W2/log'" || exit 1
	done) &
	p2=$!
	wait "$p1" || fail "appender via mount 1 failed"
	wait "$p2" || fail "appender via mount 2 failed"
	expect_eq "records via mount 1" "$(sort -u "$W/log" | wc -l)" 400
	expect_eq "records via mount 2" "$(sort -u "$W2/log" | wc -l)" 400
}
