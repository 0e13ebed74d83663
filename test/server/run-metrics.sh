#!/usr/bin/env bash
# orfad --metrics (TAP): a real orfad on a free loopback port with the
# metrics endpoint given only a port (so it must listen on 127.0.0.1),
# a known load from orfa_metrics_load over real TCP (--max-files 1, so
# its second OPEN hits a limit), then GET /metrics: the per-opcode
# request counts, errors, histogram counts, bytes moved and limit hits
# must be the load's, and `promtool check metrics` must accept the page
# (skipped when promtool is not installed).
#   run-metrics.sh ORFAD ORFA_METRICS_LOAD
set -u
orfad=$1 load=$2
dir=$(mktemp -d /tmp/orfa-metrics.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
n=0
t() {	# t COND-EXIT-STATUS NAME
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}
bail() { echo "not ok $((n + 1)) - $1"; sed 's/^/# /' "$dir/orfad.log"
	echo "1..$((n + 1))"; exit 1; }

# A free port: orfad refuses to start when the metrics port is taken,
# so try a few random ones.
for _ in 1 2 3 4 5 6 7 8; do
	mport=$((20000 + RANDOM % 40000))
	rm -f "$dir/port"
	"$orfad" -f --listen 127.0.0.1:0 --port-file "$dir/port" --ramfs \
		--export-options rw,no_root_squash,insecure \
		--max-files 1 --metrics "$mport" --log-level info >"$dir/orfad.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		[ -s "$dir/port" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	[ -s "$dir/port" ] && break
	wait "$pid" 2>/dev/null; pid=
done
[ -n "$pid" ] || bail "orfad --metrics PORT starts"
t 0 "orfad --metrics $mport starts"

# Given only a port, the endpoint listens on 127.0.0.1 (0100007F).
hexport=$(printf '%04X' "$mport")
grep -q "^ *[0-9]*: 0100007F:$hexport 00000000:0000 0A" /proc/net/tcp
t $? "the metrics endpoint listens on 127.0.0.1 only"

"$load" "$(cat "$dir/port")" >"$dir/load.out" 2>&1
st=$?
sed 's/^/# /' "$dir/load.out"
t "$st" "the load ran (orfa_metrics_load)"

url="http://127.0.0.1:$mport/metrics"
code=$(curl -s -o "$dir/page" -w '%{http_code}' "$url")
t "$([ "$code" = 200 ]; echo $?)" "GET /metrics answers 200 ($code)"
page=$dir/page
val() {	# val SERIES: the value of one exact series, or "none"
	awk -v s="$1" '$1 == s { print $2; f = 1 } END { if (!f) print "none" }' "$page"
}
L='export="/",transport="tcp"'
check() {	# check SERIES WANT
	local got
	got=$(val "$1")
	t "$([ "$got" = "$2" ]; echo $?)" "$1 is $2 (got $got)"
}
check "orfad_requests_total{$L,op=\"WRITE\"}" 3
check "orfad_requests_total{$L,op=\"READ\"}" 2
check "orfad_requests_total{$L,op=\"CREATE\"}" 1
check "orfad_request_errors_total{$L,op=\"WRITE\"}" 0
check "orfad_request_errors_total{$L,op=\"LOOKUP\"}" 1
check "orfad_request_duration_seconds_count{$L,op=\"WRITE\"}" 3
check "orfad_request_duration_seconds_bucket{$L,op=\"READ\",le=\"+Inf\"}" 2
check "orfad_read_bytes_total{$L}" 8192
check "orfad_written_bytes_total{$L}" 12288
check 'orfad_connections_opened_total{transport="tcp"}' 1
check "orfad_request_errors_total{$L,op=\"OPEN\"}" 1
check 'orfad_limit_hits_total{limit="max_files"}' 1
check 'orfad_limit_hits_total{limit="max_conns"}' 0
g=$(val "orfad_requests_total{$L,op=\"GETATTR\"}")
t "$([ "$g" != none ] && [ "$g" -ge 5 ]; echo $?)" \
	"GETATTR counted at least 5 times (got $g)"
s=$(val "orfad_request_duration_seconds_sum{$L,op=\"WRITE\"}")
t "$(awk -v s="$s" 'BEGIN { exit !(s > 0 && s < 60) }'; echo $?)" \
	"WRITE latency sum is positive and sane ($s s)"

if command -v promtool >/dev/null; then
	promtool check metrics <"$page" >"$dir/promtool.out" 2>&1
	st=$?
	sed 's/^/# /' "$dir/promtool.out"
	t "$st" "promtool check metrics accepts the page"
else
	n=$((n + 1))
	echo "ok $n - promtool check metrics # SKIP promtool not installed"
fi

code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/")
t "$([ "$code" = 404 ]; echo $?)" "other paths are 404 ($code)"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url")
t "$([ "$code" != 200 ]; echo $?)" "POST is refused ($code)"

kill -TERM "$pid"
st=timeout
for _ in $(seq 100); do
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid"; st=$?; pid=
		break
	fi
	sleep 0.1
done
t "$([ "$st" = 0 ]; echo $?)" "orfad stops cleanly (exit $st)"
! grep -qE ': err: |Sanitizer|runtime error' "$dir/orfad.log"
t $? "no error in the server log"

# A bad endpoint stops orfad at start, with the reason.
"$orfad" -f --listen 127.0.0.1:0 --ramfs --metrics not-a-port \
	>"$dir/bad.log" 2>&1
st=$?
t "$([ "$st" = 1 ] && grep -q 'cannot serve metrics' "$dir/bad.log"; echo $?)" \
	"--metrics not-a-port is refused at start (exit $st)"
echo "1..$n"
