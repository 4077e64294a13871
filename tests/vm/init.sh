#!/bin/sh
# PID 1 of the test VM (busybox sh). Mounts the host's / read-only over 9p
# with a tmpfs overlay on top, so tests see the host's exact tree (python,
# the venv, the worktree) but every write stays in guest RAM; mounts a pure
# cgroup v2 hierarchy; switches root to it and runs /vm-run.sh (appended per
# run); prints the exit marker; powers off. Any failure before the command prints the
# marker with 125 so the harness never waits for a timeout needlessly.
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
. /vm.env
echo "MINIBOX-VM-BOOTED $TOKEN"

die() {
    echo "vm init: $*"
    echo "MINIBOX-VM-EXIT $TOKEN 125"
    poweroff -f
}

while read -r m; do
    err=$(insmod "/lib/modules/$m.ko" 2>&1) || echo "vm init: insmod $m: $err"
done < /modules.load

mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host || die "9p mount of the host / failed"
mount -t tmpfs -o mode=755 rw /rw || die "tmpfs /rw"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work overlay /newroot || die "overlay root failed"
R=/newroot
mount -t proc proc $R/proc || die "proc"
mount -t sysfs sysfs $R/sys || die "sysfs"
mount -t cgroup2 -o nsdelegate cgroup2 $R/sys/fs/cgroup || die "cgroup2"
mount -t devtmpfs devtmpfs $R/dev || die "devtmpfs"
mkdir -p $R/dev/pts $R/dev/shm $R/dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t mqueue mqueue $R/dev/mqueue
mount -t tmpfs -o mode=1777 tmp $R/tmp
mount -t tmpfs -o mode=755 run $R/run
# Overlayfs cannot use an overlay as upperdir, so the directories where tests
# and minibox build container layers get a fresh tmpfs (not the host's content:
# other runs on the host may be using theirs right now).
for d in $TMPFS_DIRS; do
    mkdir -p "$R$d" 2>/dev/null
    mount -t tmpfs -o mode=700 tmpfs "$R$d" || die "tmpfs on $d"
done
chmod 1777 $R/var/tmp 2>/dev/null
# The tests run from the host's cwd; if a fresh tmpfs above now hides it (a
# checkout under /tmp, as CI may use), show the host's copy there again.
if [ -n "$HOST_CWD" ] && [ ! -d "$R$HOST_CWD" ] && [ -d "/host$HOST_CWD" ]; then
    mkdir -p "$R$HOST_CWD" && mount --bind "/host$HOST_CWD" "$R$HOST_CWD" || die "bind $HOST_CWD"
fi
hostname minibox-vm
ip link set lo up 2>/dev/null
# switch_root (not chroot): it moves the overlay onto /, so the mount
# namespace's root is the host tree. setns(CLONE_NEWNS) puts a process at its
# namespace's root, so under a chroot "minibox exec" would land in this initramfs.
S=$R/run/minibox-vm
mkdir -p $S
cp /bin/busybox /vm-run.sh /vm.env /stage2.sh $S/ || die "copy stage 2"
exec switch_root $R /run/minibox-vm/busybox sh /run/minibox-vm/stage2.sh
