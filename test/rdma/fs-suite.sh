#!/usr/bin/env bash
# fs-suite.sh - the mounted-file-system suite (test/fs/harness.sh) over
# transport=rdma, run inside the Soft-RoCE VM by run-in-vm.sh.
#   fs-suite.sh BUILD_DIR native               every test but the bulk ones
#   fs-suite.sh BUILD_DIR ramfs                those of them that move data or
#                                              connections
#   fs-suite.sh BUILD_DIR native bulk          the bulk ones that load the
#                                              transport
# orfad listens on rdma://192.0.2.1 and both mounts use transport=rdma.
# The first form runs every test of the suite except the bulk ones (256 MiB
# and 4 GiB files, 10,000-entry directories, 1 GiB / 10,000-file restarts,
# parallel 8x16 MiB writers, a 100-deep tree), which take long under
# emulation (about 12 min on ramfs, 20 on native).  The second form runs
# those of them that load the transport rather than the metadata path: a
# 256 MiB file's checksum, 8 parallel 16 MiB writers, 1000 open files, and
# orfad killed and restarted in the middle of a 1 GiB copy (about 5 min;
# with the server's RDMA READs one byte short, the writers and the copy
# fail on their checksums).  The
# metadata-bound rest (10,000-entry directories, the 10,000-file untar
# restart, sparse 4 GiB, the deep tree) passes over RDMA too but runs over
# TCP only in CI.
# On ramfs the first form leaves out what only checks metadata semantics
# (tests_attr.sh, tests_ns.sh, tests_time.sh and the perm_* tests): over
# RDMA those are small inline messages, which the native run covers in
# full, and they would add about 8 minutes under emulation.
# The native target of the first form exports a directory of an ext4 file
# system made here (the VM's /tmp is tmpfs, which has no user.* xattrs on
# this kernel); the bulk form needs no xattrs and keeps its files on /tmp,
# a tmpfs of half the VM's memory that must hold the 1 GiB source and its
# copy: run it with ORFA_RDMA_VM_MEM=6144 (with 4096 the copy ends in
# ENOSPC).
set -u
build=$1 target=$2 form=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
bulk=(large_256MiB_sha256 parallel_writers_8x16MiB many_open_files_1000 restart_during_1g_copy)
heavy='^(large_256MiB|sparse_4GiB|dir_10000|rm_rf_large_dir|readdir_long_names_500|many_open_files_1000|parallel_writers_8x16MiB|restart_during_1g_copy|restart_during_10k_untar|deep_tree_depth_100)'
export ORFA_BUILD_DIR=$build ORFA_FS_TRANSPORT=rdma ORFA_FS_HOST=192.0.2.1
export ORFA_FS_RAMFS_SIZE=${ORFA_FS_RAMFS_SIZE:-512M}
if [ "$form" = bulk ]; then
	exec bash "$here/../fs/harness.sh" "$target" "${bulk[@]}"
fi
mapfile -t tests < <(bash "$here/../fs/harness.sh" --list | awk '{print $1}' | grep -Ev "$heavy")
if [ "${#tests[@]}" -lt 100 ]; then
	echo "1..1"
	echo "not ok 1 - listing the suite's tests (got ${#tests[@]})"
	exit 1
fi
if [ "$target" = ramfs ]; then
	declare -A meta=()
	for n in $(grep -h '^fs_test ' "$here"/../fs/tests_attr.sh \
		"$here"/../fs/tests_ns.sh "$here"/../fs/tests_time.sh |
		awk '{print $2}'); do
		meta[$n]=1
	done
	kept=()
	for n in "${tests[@]}"; do
		[ -n "${meta[$n]:-}" ] || [[ $n == perm_* ]] || kept+=("$n")
	done
	if [ "${#meta[@]}" -lt 50 ] || [ "${#kept[@]}" -lt 60 ]; then
		echo "1..1"
		echo "not ok 1 - choosing the data tests (${#kept[@]} of ${#tests[@]}, ${#meta[@]} metadata tests)"
		exit 1
	fi
	tests=("${kept[@]}")
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
