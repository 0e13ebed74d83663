#!/usr/bin/env bash
# fs-suite.sh - the mounted-file-system suite (test/fs/harness.sh) over
# transport=rdma, run inside the Soft-RoCE VM by run-in-vm.sh.
#   fs-suite.sh BUILD_DIR ramfs|native
# orfad listens on rdma://192.0.2.1 and both mounts use transport=rdma.
# Every test of the suite runs except the bulk ones (256 MiB and 4 GiB
# files, 10,000-entry directories, 1 GiB / 10,000-file restarts, parallel
# 8x16 MiB writers): under the VM's software emulation they would take the
# better part of an hour, and they exercise sizes, not the transport,
# which test/fs covers over TCP and rdma_transport covers up to 16 MiB
# messages.
set -u
build=$1 target=$2
here=$(cd "$(dirname "$0")" && pwd)
heavy='^(large_256MiB|sparse_4GiB|dir_10000|rm_rf_large_dir|readdir_long_names_500|many_open_files_1000|parallel_writers_8x16MiB|restart_during_1g_copy|restart_during_10k_untar|deep_tree_depth_100)'
export ORFA_BUILD_DIR=$build ORFA_FS_TRANSPORT=rdma ORFA_FS_HOST=192.0.2.1
export ORFA_FS_RAMFS_SIZE=${ORFA_FS_RAMFS_SIZE:-512M}
mapfile -t tests < <(bash "$here/../fs/harness.sh" --list | awk '{print $1}' | grep -Ev "$heavy")
exec bash "$here/../fs/harness.sh" "$target" "${tests[@]}"
