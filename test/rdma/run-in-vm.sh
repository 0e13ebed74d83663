#!/bin/sh
# run-in-vm.sh - run one TAP test command inside the Soft-RoCE VM
# (scripts/rdma-vm) and pass its TAP through.  Skips (1..0 # SKIP, exit 77)
# only when qemu, busybox-static or a kernel image with rdma_rxe is
# missing; a test that skips *inside* the VM (no RDMA device there) is a
# failure, since the VM exists to provide one.
#   run-in-vm.sh COMMAND [ARG]...
src=${ORFA_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
vm=$src/scripts/rdma-vm

if ! why=$("$vm" --check 2>&1); then
	echo "1..0 # SKIP ${why#rdma-vm: }"
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
