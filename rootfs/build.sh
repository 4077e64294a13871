#!/bin/sh
# Build rootfs/busybox.tar: a flat root filesystem from Debian's busybox-static.
#
# The tarball is reproducible (sorted names, fixed mtimes, numeric owners), so
# `minibox import` gives the same image id on every machine.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/busybox.tar}
busybox=${BUSYBOX:-/bin/busybox}

if ! "$busybox" --list >/dev/null 2>&1; then
    echo "rootfs: $busybox is missing or broken: apt-get install busybox-static" >&2
    exit 1
fi
# A dynamic busybox would need the host's libc inside the image.
if LC_ALL=C ldd "$busybox" >/dev/null 2>&1; then
    echo "rootfs: $busybox is dynamically linked: apt-get install busybox-static" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
r=$work/root
mkdir -p "$r"
for d in bin sbin usr/bin usr/sbin etc root home tmp var/tmp var/log var/run var/www proc sys dev run mnt opt srv; do
    mkdir -p "$r/$d"
done
chmod 1777 "$r/tmp" "$r/var/tmp"
chmod 0700 "$r/root"
cp "$busybox" "$r/bin/busybox"
chmod 0755 "$r/bin/busybox"
# One hard link per applet would be smaller, but docker's busybox image uses
# links too and relative symlinks survive any unpacking.
for applet in $("$busybox" --list-full); do
    case "$applet" in bin/busybox) continue ;; esac
    dir=$(dirname "$applet")
    up=$(echo "$dir" | sed 's|[^/][^/]*|..|g')
    [ -e "$r/$applet" ] || ln -s "$up/bin/busybox" "$r/$applet"
done

cat >"$r/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
P
cat >"$r/etc/group" <<'G'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
www-data:x:33:
users:x:100:
nogroup:x:65534:
G
cat >"$r/etc/hosts" <<'H'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
H
echo "hosts: files dns" >"$r/etc/nsswitch.conf"
: >"$r/etc/resolv.conf"
echo "minibox" >"$r/etc/hostname"
echo 'minibox busybox image' >"$r/var/www/index.html"

tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -C "$r" -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "rootfs: wrote $out ($(du -h "$out" | cut -f1))"
