#!/usr/bin/env bash
# fs-suite.sh - the mounted-file-system suite (test/fs/harness.sh) over
# transport=rdma, run inside the Soft-RoCE VM by run-in-vm.sh.
#   fs-suite.sh BUILD_DIR ramfs|native
# orfad listens on rdma://192.0.2.1 and both mounts use transport=rdma.
# Every test of the suite runs except the bulk ones (256 MiB and 4 GiB
# files, 10,000-entry directories, 1 GiB / 10,000-file restarts, parallel
# 8x16 MiB writers, a 100-deep tree): they exercise sizes, not the
# transport, which test/fs covers over TCP and rdma_transport covers up
# to 16 MiB messages, and under emulation they would take long.
# The native target exports a directory of an ext4 file system made here
# (the VM's /tmp is tmpfs, which has no user.* xattrs on this kernel).
set -u
build=$1 target=$2
here=$(cd "$(dirname "$0")" && pwd)
heavy='^(large_256MiB|sparse_4GiB|dir_10000|rm_rf_large_dir|readdir_long_names_500|many_open_files_1000|parallel_writers_8x16MiB|restart_during_1g_copy|restart_during_10k_untar|deep_tree_depth_100)'
export ORFA_BUILD_DIR=$build ORFA_FS_TRANSPORT=rdma ORFA_FS_HOST=192.0.2.1
export ORFA_FS_RAMFS_SIZE=${ORFA_FS_RAMFS_SIZE:-512M}
mapfile -t tests < <(bash "$here/../fs/harness.sh" --list | awk '{print $1}' | grep -Ev "$heavy")
if [ "${#tests[@]}" -lt 100 ]; then
	echo "1..1"
	echo "not ok 1 - listing the suite's tests (got ${#tests[@]})"
	exit 1
fi
if [ "$target" = native ]; then
	img=/var/tmp/orfa-ext4.img mnt=/var/tmp/orfa-ext4
	# shellcheck disable=SC2317  # run by the EXIT trap
	cleanup() { umount "$mnt" 2> /dev/null; rm -f "$img"; }
	trap cleanup EXIT
	modprobe loop 2> /dev/null
	if ! truncate -s 2G "$img" || ! mkfs.ext4 -q -F "$img" ||
		! mkdir -p "$mnt" || ! mount -o loop "$img" "$mnt"; then
		echo "1..1"
		echo "not ok 1 - an ext4 file system for the native export"
		exit 1
	fi
	export ORFA_FS_TMPDIR=$mnt
	bash "$here/../fs/harness.sh" "$target" "${tests[@]}"
	exit
fi
exec bash "$here/../fs/harness.sh" "$target" "${tests[@]}"
