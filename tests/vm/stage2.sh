#!/bin/sh
# PID 1 after switch_root: runs the per-run command with the host tree's
# /bin/sh, then reports its status and powers off with the busybox copied here.
B=/run/minibox-vm/busybox
. /run/minibox-vm/vm.env
/bin/sh /run/minibox-vm/vm-run.sh
rc=$?
$B sync
echo "MINIBOX-VM-EXIT $TOKEN $rc"
$B poweroff -f
