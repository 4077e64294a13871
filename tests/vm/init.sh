#!/bin/sh
# PID 1 of the test VM (busybox sh). Mounts the host's / read-only over 9p
# with a tmpfs overlay on top, so tests see the host's exact tree (python,
# the venv, the worktree) but every write stays in guest RAM; mounts a pure
# cgroup v2 hierarchy; runs /vm-run.sh (appended per run) chrooted; prints
# the exit marker; powers off. Any failure before the command prints the
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
mkdir -p /rw/upper /rw/work /rw/keep
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
# Overlayfs cannot use an overlay as upperdir, so directories where tests
# build overlays of their own get a real tmpfs, seeded with the host's content.
for d in $KEEP; do
    if [ -d "$R$d" ]; then
        mkdir -p "/rw/keep$d"
        cp -a "$R$d/." "/rw/keep$d/"
        mount --bind "/rw/keep$d" "$R$d"
    fi
done
hostname minibox-vm
ip link set lo up 2>/dev/null
cp /vm-run.sh $R/run/minibox-vm-run.sh
chroot $R /bin/sh /run/minibox-vm-run.sh
rc=$?
sync
echo "MINIBOX-VM-EXIT $TOKEN $rc"
poweroff -f
