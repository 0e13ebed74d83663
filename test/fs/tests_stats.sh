# tests_stats.sh - `orfa stats MOUNTPOINT` on real mounts (issue 17): the
# counters of the reading mount move by what a read of a file made
# through the other mount sent, the writing mount's WRITE count and bytes
# move, the output is parseable ("KEY VALUE" lines, "op NAME ..."
# lines, "#" comments), the attribute is read-only and only the root
# answers.  Sourced by harness.sh; see lib.sh.

# stat_val FILE KEY: the value of "KEY VALUE" in an orfa stats output.
stat_val() {
	awk -v k="$2" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }' "$1"
}
# stat_op FILE OP FIELD: a field ("calls", "p50_us", ...) of an op line.
stat_op() {
	awk -v o="$2" -v f="$3" '$1 == "op" && $2 == o {
		for (i = 3; i < NF; i += 2) if ($i == f) v = $(i + 1)
	} END { print v + 0 }' "$1"
}

fs_test orfa_stats_read_write orfa
t_orfa_stats_read_write() {
	local a1=$S/m1-before b1=$S/m1-after a2=$S/m2-before b2=$S/m2-after
	expect_ok "$FS_ORFA" stats "$FS_MNT"
	echo "$OUT" > "$a1"
	expect_ok "$FS_ORFA" stats "$FS_MNT2"
	echo "$OUT" > "$a2"
	# 256 KiB written through the second mount and flushed...
	expect_ok dd if=/dev/urandom of="$W2/f" bs=64k count=4 conv=fsync
	expect_ok "$FS_ORFA" stats "$FS_MNT2"
	echo "$OUT" > "$b2"
	# ...then read through the first, which never had its pages.
	expect_ok cmp "$W2/f" "$W/f"
	expect_ok "$FS_ORFA" stats "$FS_MNT"
	echo "$OUT" > "$b1"
	sed 's/^/  /' "$b1"

	local r0 r1 rb0 rb1 w0 w1 wb0 wb1
	r0=$(stat_op "$a1" READ calls) r1=$(stat_op "$b1" READ calls)
	rb0=$(stat_val "$a1" read_bytes) rb1=$(stat_val "$b1" read_bytes)
	[ "$r1" -gt "$r0" ] || fail "READ calls did not move: $r0 -> $r1"
	[ $((rb1 - rb0)) -ge 262144 ] ||
		fail "read_bytes moved by $((rb1 - rb0)), want >= 262144"
	w0=$(stat_op "$a2" WRITE calls) w1=$(stat_op "$b2" WRITE calls)
	wb0=$(stat_val "$a2" written_bytes) wb1=$(stat_val "$b2" written_bytes)
	[ "$w1" -gt "$w0" ] || fail "WRITE calls did not move: $w0 -> $w1"
	[ $((wb1 - wb0)) -ge 262144 ] ||
		fail "written_bytes moved by $((wb1 - wb0)), want >= 262144"

	# Parseable: comments, "KEY NUMBER", or a whole op line.
	local bad
	bad=$(grep -vE '^#|^[a-z_]+ [0-9]+(\.[0-9]+)?$|^op [A-Z_]+ calls [0-9]+ errors [0-9]+ timeouts [0-9]+ p50_us [0-9]+ p90_us [0-9]+ p99_us [0-9]+ max_us [0-9]+$' "$b1")
	[ -z "$bad" ] || fail "unparseable lines: $bad"
	local p50 p90 p99
	p50=$(stat_op "$b1" READ p50_us) p90=$(stat_op "$b1" READ p90_us)
	p99=$(stat_op "$b1" READ p99_us)
	[ "$p50" -ge 1 ] && [ "$p50" -le "$p90" ] && [ "$p90" -le "$p99" ] ||
		fail "READ percentiles out of order: $p50 $p90 $p99"
	# Read-only, and only the mount root answers.
	run setfattr -n user.orfa.stats -v x "$FS_MNT"
	[ "$RC" -ne 0 ] || fail 'setting user.orfa.stats succeeded'
	run "$FS_ORFA" stats "$W"
	[ "$RC" -ne 0 ] || fail "orfa stats on a subdirectory succeeded: $OUT"
	return 0
}
