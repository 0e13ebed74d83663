# tests_time.sh - timestamps: which operations change ctime/mtime,
# nanoseconds, 64-bit and negative seconds, UTIME_NOW/UTIME_OMIT.
# Sourced by harness.sh; see lib.sh.
#
# "Changed" tests sleep 1.1 s between the two stat calls so that even a
# server with one-second timestamps must show a different value; nothing
# is asserted about durations.

# later A B: A > B for "seconds.nanoseconds" strings (differences >= 1 s).
later() {
	awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 > b + 0) }'
}

# ctime_after ACTION...: the ctime of $W/f (before) and of ${AFTER:-$W/f}
# (after, for a rename) must increase across ACTION.
ctime_after() {
	local before after
	before=$(st %.9Z "$W/f")
	[ -n "$before" ] || fail "stat failed"
	sleep 1.1
	"$@" || fail "'$*' failed"
	after=$(st %.9Z "${AFTER:-$W/f}")
	later "$after" "$before" || fail "ctime did not increase across '$*': $before -> $after"
}

fs_test ctime_changes_on_chmod
t_ctime_changes_on_chmod() {
	: > "$W/f"
	ctime_after chmod 0600 "$W/f"
}

fs_test ctime_changes_on_chown root
t_ctime_changes_on_chown() {
	: > "$W/f"
	ctime_after chown 65534:65534 "$W/f"
}

fs_test ctime_changes_on_link
t_ctime_changes_on_link() {
	: > "$W/f"
	ctime_after ln "$W/f" "$W/g"
}

fs_test ctime_changes_on_rename
t_ctime_changes_on_rename() {
	: > "$W/f"
	AFTER=$W/g ctime_after mv "$W/f" "$W/g"
}

fs_test ctime_changes_on_write
t_ctime_changes_on_write() {
	printf 'a' > "$W/f"
	ctime_after dd if=/dev/zero of="$W/f" bs=1 count=1 seek=1 conv=notrunc status=none
}

fs_test mtime_changes_on_write
t_mtime_changes_on_write() {
	local before after
	printf 'a' > "$W/f"
	before=$(st %.9Y "$W/f")
	sleep 1.1
	printf 'b' >> "$W/f"
	after=$(st %.9Y "$W/f")
	later "$after" "$before" || fail "mtime did not increase across a write: $before -> $after"
}

fs_test mtime_dir_changes_on_create
t_mtime_dir_changes_on_create() {
	local before after
	mkdir "$W/d"
	before=$(st %.9Y "$W/d")
	sleep 1.1
	: > "$W/d/new"
	after=$(st %.9Y "$W/d")
	later "$after" "$before" || fail "directory mtime did not increase on create: $before -> $after"
}

# set_check WHAT(Y|X) TOUCH_DATE WANT: touch -d, then %.9<WHAT> on the
# second mount (the value the server stored) must be WANT.
set_check() {
	local opt=-m
	[ "$1" = X ] && opt=-a
	: > "$W/f"
	expect_ok touch $opt -d "$2" "$W/f"
	expect_eq "stat %.9$1 (same mount)" "$(st "%.9$1" "$W/f")" "$3"
	expect_eq "stat %.9$1 via second mount" "$(st "%.9$1" "$W2/f")" "$3"
}

fs_test mtime_nanoseconds_kept
t_mtime_nanoseconds_kept() {
	set_check Y '2020-02-03 04:05:06.123456789 UTC' 1580702706.123456789
}

fs_test atime_nanoseconds_kept
t_atime_nanoseconds_kept() {
	set_check X '2019-01-02 03:04:05.987654321 UTC' 1546398245.987654321
}

fs_test time_year_2100
t_time_year_2100() {
	set_check Y '2100-01-01 00:00:00.000000001 UTC' 4102444800.000000001
}

fs_test time_year_1901
t_time_year_1901() {
	set_check Y '1901-12-14 00:00:00 UTC' -2147472000.000000000
}

fs_test time_before_epoch_with_nanoseconds
t_time_before_epoch_with_nanoseconds() {
	set_check Y '1969-12-31 23:59:59.5 UTC' -0.500000000
}

fs_test utime_omit_keeps_mtime
t_utime_omit_keeps_mtime() {
	: > "$W/f"
	expect_ok "$FSOPS" utimens "$W/f" 1000000000.25 1000000000.5
	expect_ok "$FSOPS" utimens "$W/f" 1200000000.125 omit
	expect_eq atime "$(st %.9X "$W2/f")" 1200000000.125000000
	expect_eq "mtime (omitted)" "$(st %.9Y "$W2/f")" 1000000000.500000000
}

fs_test utime_omit_keeps_atime
t_utime_omit_keeps_atime() {
	: > "$W/f"
	expect_ok "$FSOPS" utimens "$W/f" 1000000000.25 1000000000.5
	expect_ok "$FSOPS" utimens "$W/f" omit 1300000000.75
	expect_eq "atime (omitted)" "$(st %.9X "$W2/f")" 1000000000.250000000
	expect_eq mtime "$(st %.9Y "$W2/f")" 1300000000.750000000
}

fs_test utime_now_sets_current
t_utime_now_sets_current() {
	local t0 t1 m
	: > "$W/f"
	expect_ok "$FSOPS" utimens "$W/f" 1000000000 1000000000
	t0=$(date +%s)
	expect_ok "$FSOPS" utimens "$W/f" omit now
	t1=$(date +%s)
	m=$(st %Y "$W2/f")
	expect_eq "atime (omitted)" "$(st %X "$W2/f")" 1000000000
	[ "$m" -ge "$t0" ] && [ "$m" -le $((t1 + 1)) ] ||
		fail "UTIME_NOW gave mtime $m, not within [$t0, $t1]"
}
