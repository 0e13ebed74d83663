#!/usr/bin/env bash
# Run one libFuzzer harness for a bounded time from its seed corpus (TAP).
#   run-fuzz.sh HARNESS CORPUS_DIR [SECONDS]
# (ORFA_FUZZ_SECONDS overrides SECONDS, which defaults to 60)
# New inputs go to a scratch corpus, never into the source tree.  Passes
# when the run ends without a finding; prints executions as a comment.
set -u
harness=$1 seeds=$2 secs=${ORFA_FUZZ_SECONDS:-${3:-60}}
work=$(mktemp -d /tmp/orfa-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
echo "1..1"
name=$(basename "$harness")
( cd "$work" && timeout $((secs + 120)) "$harness" -max_total_time="$secs" \
	-timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
	"$work/corpus" "$seeds" ) >"$work/log" 2>&1
rc=$?
execs=$(grep -E '^stat::number_of_executed_units' "$work/log" | awk '{print $2}')
grep -E '^#[0-9]+ *DONE|^stat::' "$work/log" | sed 's/^/# /'
if [ $rc = 0 ]; then
	echo "ok 1 - $name: ${execs:-?} executions in ${secs}s without a finding"
else
	grep -E 'ERROR|SUMMARY|WARNING|==[0-9]+==' "$work/log" | head -30 | sed 's/^/# /'
	ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null | head -3 | while read -r f; do
		echo "# reproducer (base64): $(base64 -w0 "$f" | head -c 2000)"
	done
	echo "not ok 1 - $name: finding after ${execs:-?} executions (rc $rc)"
fi
