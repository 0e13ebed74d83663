#!/bin/sh
# run-in-vm.sh - run one TAP test command inside the Soft-RoCE VM
# (scripts/rdma-vm) and pass its TAP through.  Skips only when qemu,
# busybox-static or a kernel image with rdma_rxe is missing: prints
# "1..0 # SKIP reason" and exits 77, or 0 under meson (ORFA_BUILD_DIR set),
# whose TAP parser counts any non-zero status as an error and reports a
# 1..0 # SKIP plan as skipped.  A test that skips *inside* the VM (no RDMA
# device there) is a failure, since the VM exists to provide one.
#   run-in-vm.sh COMMAND [ARG]...
src=${ORFA_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
vm=$src/scripts/rdma-vm

if ! why=$("$vm" --check 2>&1); then
	echo "1..0 # SKIP ${why#rdma-vm: }"
	[ -n "${ORFA_BUILD_DIR:-}" ] && exit 0
	exit 77
fi
"$vm" --timeout "${ORFA_RDMA_VM_TIMEOUT:-1200}" -- "$@"
rc=$?
if [ "$rc" = 77 ]; then
	echo "not ok - the test skipped itself inside the VM (no RDMA device?)"
	echo "1..1"
	exit 1
fi
exit "$rc"
