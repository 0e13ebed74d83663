# orfa.sh - starting and stopping orfad and orfa mounts for the
# mounted-file-system suite.  Sourced by harness.sh (and so available to
# the tests it runs).  Never run directly.
#
# Everything started here is recorded in $FS_TMP/pids.list and
# $FS_TMP/mounts.list, so the harness's EXIT trap can tear it down even
# when the test that started it was killed by its timeout.

# orfa_export_options: what the suite needs of the --export/--ramfs
# export: root on the client is root on the export, device nodes and
# set-id bits (the suite tests them).  secure (the default) stays when the
# client can bind a privileged port (root, over TCP), so every mount also
# tests that; the RDMA client and a non-root run need insecure.
orfa_export_options() {
	local o=rw,no_root_squash,dev,suid
	[ "$(id -u)" = 0 ] && [ "${FS_TRANSPORT:-tcp}" = tcp ] || o+=,insecure
	echo "$o"
}

# orfa_server_start LOG PORTFILE ramfs|native [EXPORT_DIR]
# Starts orfad in the foreground (background job) and waits up to 20 s for
# its port file.  Sets SERVER_PID and SERVER_ADDR ("HOST:PORT"; the host is
# $FS_HOST, 127.0.0.1 unless the suite runs over RDMA in the VM).
# Returns 1 with the reason in SETUP_ERR.
orfa_server_start() {
	local log=$1 pf=$2 backend=$3 export=${4:-} addr="" end
	local listen="$FS_HOST:0"
	[ "$FS_TRANSPORT" = rdma ] && listen="rdma://$FS_HOST:0"
	local -a args=(--listen "$listen" --port-file "$pf" -f)

	case $backend in
	ramfs) args+=(--ramfs --ramfs-size "${ORFA_FS_RAMFS_SIZE:-3G}") ;;
	native) args+=(--export "$export") ;;
	*) SETUP_ERR="unknown backend $backend"; return 1 ;;
	esac
	args+=(--export-options "$(orfa_export_options)")
	# Extra server arguments for debugging, e.g. "--log-level debug".
	# shellcheck disable=SC2206
	args+=(${ORFA_FS_SERVER_ARGS:-})
	rm -f "$pf"
	echo "+ orfad ${args[*]}" > "$log"
	"$FS_ORFAD" "${args[@]}" >> "$log" 2>&1 &
	SERVER_PID=$!
	echo "$SERVER_PID orfad" >> "$FS_TMP/pids.list"
	end=$((SECONDS + 20))
	while [ "$SECONDS" -lt "$end" ]; do
		if [ -s "$pf" ]; then
			addr=$(head -n1 "$pf")
			addr=${addr#*://}
			case $addr in
			"$FS_HOST":[0-9]*) SERVER_ADDR=$addr; return 0 ;;
			esac
		fi
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			wait "$SERVER_PID" 2>/dev/null
			SETUP_ERR="orfad exited (status $?) before writing its port file; log: $(tail -n 5 "$log" | tr '\n' '|')"
			return 1
		fi
		sleep 0.1
	done
	SETUP_ERR="orfad wrote no usable port file in 20 s (port file: '$addr'); log: $(tail -n 5 "$log" | tr '\n' '|')"
	return 1
}

# orfa_mount ADDR MNT LOG OPTIONS
# Runs the client in the foreground (background job) and waits up to 20 s
# for MNT to show up in /proc/mounts and answer statfs.  Sets CLIENT_PID.
# The suite's transport option ($FS_XPORT_OPT) is added unless OPTIONS
# names a transport.  Returns 1 with the reason in SETUP_ERR.
orfa_mount() {
	local addr=$1 mnt=$2 log=$3 opts=$4 end

	case ",$opts," in
	*,transport=*) ;;
	*) [ -n "${FS_XPORT_OPT:-}" ] && opts="${opts:+$opts,}$FS_XPORT_OPT" ;;
	esac

	mkdir -p "$mnt"
	echo "$mnt" >> "$FS_TMP/mounts.list"
	echo "+ orfa $addr:/ $mnt -f -o $opts" > "$log"
	if [ -n "$opts" ]; then
		"$FS_ORFA" "$addr:/" "$mnt" -f -o "$opts" >> "$log" 2>&1 &
	else
		"$FS_ORFA" "$addr:/" "$mnt" -f >> "$log" 2>&1 &
	fi
	CLIENT_PID=$!
	echo "$CLIENT_PID orfa" >> "$FS_TMP/pids.list"
	end=$((SECONDS + 20))
	while [ "$SECONDS" -lt "$end" ]; do
		if mounted "$mnt" && timeout -k 2 10 stat -f "$mnt" > /dev/null 2>&1; then
			return 0
		fi
		if ! kill -0 "$CLIENT_PID" 2>/dev/null; then
			wait "$CLIENT_PID" 2>/dev/null
			SETUP_ERR="orfa exited (status $?) without mounting $mnt; log: $(tail -n 5 "$log" | tr '\n' '|')"
			return 1
		fi
		sleep 0.1
	done
	SETUP_ERR="orfa did not mount $mnt within 20 s; log: $(tail -n 5 "$log" | tr '\n' '|')"
	return 1
}

# proc_wait_exit PID SECONDS: 0 once PID is gone (reaped if our child).
proc_wait_exit() {
	local pid=$1 end=$((SECONDS + $2))

	while kill -0 "$pid" 2>/dev/null; do
		# A zombie child of ours still answers kill -0: reap it.
		if [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
			wait "$pid" 2>/dev/null
			return 0
		fi
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.1
	done
	wait "$pid" 2>/dev/null
	return 0
}

# proc_stop PID: SIGTERM, up to 5 s, then SIGKILL.
proc_stop() {
	kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }
	kill -TERM "$1" 2>/dev/null
	proc_wait_exit "$1" 5 && return 0
	kill -KILL "$1" 2>/dev/null
	proc_wait_exit "$1" 5
}

# fs_unmount MNT: unmount a FUSE mount, lazily if a plain unmount fails.
# Returns 0 when MNT is no longer mounted.
fs_unmount() {
	local m=$1

	mounted "$m" || return 0
	timeout -k 2 10 fusermount3 -u "$m" 2>/dev/null ||
		timeout -k 2 10 umount "$m" 2>/dev/null ||
		timeout -k 2 10 fusermount3 -uz "$m" 2>/dev/null ||
		timeout -k 2 10 umount -l "$m" 2>/dev/null
	! mounted "$m"
}

# orfa_install_bin: a bin directory holding only an "orfa" symlink to the
# built client, for mount(8)/mount.fuse3, which look the program up in PATH.
# Prints the directory.
orfa_install_bin() {
	local d=$FS_TMP/bin

	mkdir -p "$d"
	ln -sf "$FS_ORFA" "$d/orfa"
	echo "$d"
}

# proc_kill_mentioning STRING: SIGKILL every process whose command line
# contains STRING (a unique temporary path of this run), except this
# shell.  For daemons whose pid we never learned (mount.fuse3 daemonizes
# the client).  Pure bash, so the scan itself never matches.
proc_kill_mentioning() {
	local p
	local -a argv
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$p" = "$$" ] || [ "$p" = "$BASHPID" ] && continue
		mapfile -d '' -t argv 2>/dev/null < "/proc/$p/cmdline" || continue
		case " ${argv[*]} " in
		*"$1"*) kill -KILL "$p" 2>/dev/null ;;
		esac
	done
}
