#!/usr/bin/env bash
# The manual pages (issue 17), TAP: each page is lint-clean (mandoc -T lint,
# warnings and worse; skipped when mandoc is missing) and renders with
# man -l, and every option "orfad --help" and "orfa --help" list appears in
# orfad.8 and orfa.8.
#   run-man.sh ORFAD ORFA MANDIR
set -u
orfad=$1 orfa=$2 mandir=$3
n=0
t() {	# t COND-EXIT-STATUS NAME
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}
pages="orfa.8 orfad.8 orfa-exports.5"
for p in $pages; do
	n=$((n + 1))
	if ! command -v mandoc >/dev/null; then
		echo "ok $n - $p: mandoc -T lint # SKIP mandoc is not installed" \
			"(scripts/install-deps installs it)"
	elif out=$(mandoc -T lint -W warning "$mandir/$p" 2>&1); then
		echo "ok $n - $p: mandoc -T lint"
	else
		echo "not ok $n - $p: mandoc -T lint"
		printf '%s\n' "$out" | sed 's/^/# /'
	fi
	if ! command -v man >/dev/null; then
		n=$((n + 1))
		echo "ok $n - $p: man -l renders it # SKIP man is not installed"
	else
		out=$(MANWIDTH=80 man -l "$mandir/$p" 2>/dev/null)
		name=${p%.*}
		printf '%s\n' "$out" | grep -q "^NAME" &&
			printf '%s\n' "$out" | grep -qi "^ *$name" 
		t $? "$p: man -l renders it"
	fi
done

# check_opts PAGE WHAT OPTION...: each OPTION appears in the page source:
# "--max-files" as "Fl \-max\-files" (Fl adds the first '-'), "-o" names
# as they are ("Cm cache=").
check_opts() {
	local page=$1 what=$2 missing= o pat
	shift 2
	for o in "$@"; do
		case $o in
		--*)	pat=${o#-}; pat=${pat//-/\\\\-} ;;
		*)	pat=$o ;;
		esac
		grep -qE -- "(^|[ ])${pat}([^a-z_\\\\]|\$)" "$mandir/$page" ||
			missing+=" $o"
	done
	[ $# -gt 0 ] && [ -z "$missing" ]
	t $? "$page: all $# $what of --help are in the page${missing:+ (missing:$missing)}"
}
# orfad: every --long option of --help.
mapfile -t dopts < <("$orfad" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u)
check_opts orfad.8 "long options" "${dopts[@]}"
# orfa: every --long option and every -o option of its own section
# (the libfuse section that follows is documented generically).
mapfile -t copts < <("$orfa" --help 2>&1 | grep -oE -- '--[a-z][a-z-]+' |
	sort -u)
mapfile -t oopts < <("$orfa" --help 2>&1 |
	sed -n '/^ORFA options/,/^FUSE options/p' |
	grep -oE '^    [a-z_]+' | sed 's/ //g' | sort -u)
check_opts orfa.8 "long options" "${copts[@]}"
check_opts orfa.8 "-o options" "${oopts[@]}"
echo "1..$n"
