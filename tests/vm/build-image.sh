#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# build-image.sh OUTDIR: the kernel and the base initramfs the VM tests
# boot, built once into OUTDIR (the build tree's tests/vm) and rebuilt
# only when an input changes:
#
#   OUTDIR/vmlinuz        Debian 12's cloud kernel (linux-image-cloud-amd64,
#                         resolved to its versioned package through apt,
#                         fetched with apt-get download, unpacked with
#                         dpkg-deb -x, never installed)
#   OUTDIR/base.cpio.gz   /init (tests/vm/init), static busybox, the
#                         modules the guest needs (virtio-net, virtio-blk,
#                         nbd) in their load order, nbd-client, mke2fs,
#                         e2fsck and debugfs with their shared libraries
#   OUTDIR/stamp          what they were built from
#
# A test boots base.cpio.gz with a small archive of its own appended
# (see vm-functions.sh).  Exit 0 when the image is ready, 77 with the
# reason on stderr when something it needs is missing here, 1 on an
# error.  Concurrent callers wait for each other (flock on OUTDIR/lock).

set -euo pipefail

out=${1:?usage: build-image.sh OUTDIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

skip () { echo "build-image.sh: $*" >&2; exit 77; }
die () { echo "build-image.sh: $*" >&2; exit 1; }

for cmd in apt-get apt-cache dpkg-deb dpkg-query cpio gzip ldd flock; do
    command -v "$cmd" >/dev/null || skip "needs $cmd"
done
busybox=/bin/busybox
# Only the static busybox works in an initramfs without its libraries.
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null |
    grep -q 'install ok installed' ||
    skip "needs busybox-static (apt-get install busybox-static)"
guest_progs=(nbd-client mke2fs e2fsck debugfs)
for p in "${guest_progs[@]}"; do
    command -v "$p" >/dev/null || PATH=$PATH:/usr/sbin:/sbin command -v "$p" >/dev/null ||
        skip "needs $p on the host to copy into the guest"
done
# Modules to load in the guest, and everything they depend on.
want_modules=(virtio_pci virtio_net virtio_blk virtio_console nbd)

exec 9>"$out/lock"
flock -w 600 9 || die "could not lock $out/lock within 600 s"

# The versioned kernel package, from apt's lists (no network needed).
kpkg=$(apt-cache depends --important linux-image-cloud-amd64 2>/dev/null |
       sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -1)
if [ -z "$kpkg" ]; then
    # Already fetched once: keep using it.
    kpkg=$(cat "$out/kernel-package" 2>/dev/null || :)
fi
[ -n "$kpkg" ] ||
    skip "apt does not know linux-image-cloud-amd64 (run apt-get update)"
kver=$(apt-cache policy "$kpkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')

# Everything the image is made of; a change rebuilds it.
stamp=$(
    echo "kernel $kpkg $kver"
    for p in busybox-static nbd-client e2fsprogs libc6 socat; do
        dpkg-query -W -f='${Package} ${Version}\n' "$p" 2>/dev/null || echo "$p none"
    done
    sha256sum "$here/build-image.sh" "$here/init" | sed 's/ .*\// /'
)
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] &&
   [ -s "$out/vmlinuz" ] && [ -s "$out/base.cpio.gz" ]; then
    exit 0
fi
echo "build-image.sh: building the VM image in $out" >&2
rm -f "$out/stamp"

# The kernel: fetched once per package version.
kdir=$out/kernel
deb=$(ls "$kdir/${kpkg}_"*.deb 2>/dev/null | head -1 || :)
if [ -z "$deb" ]; then
    rm -rf "$kdir"
    mkdir -p "$kdir"
    # apt-get download writes into the current directory.
    (cd "$kdir" && apt-get -q -o APT::Sandbox::User=root download "$kpkg") >&2 ||
        skip "apt-get download $kpkg failed (no network or no apt lists?)"
    deb=$(ls "$kdir/${kpkg}_"*.deb | head -1)
fi
echo "$kpkg" > "$out/kernel-package"
rm -rf "$kdir/root"
dpkg-deb -x "$deb" "$kdir/root"
vmlinuz=$(ls "$kdir/root/boot/vmlinuz-"* | head -1)
moddir=$(ls -d "$kdir/root/lib/modules/"* | head -1)
[ -f "$vmlinuz" ] && [ -d "$moddir" ] || die "$deb has no kernel or modules"

# The load order: the package has no modules.dep (and there is no
# depmod), so follow each module's depends= from its .modinfo section.
declare -A modpath=() loaded=()
while read -r rel; do
    name=$(basename "$rel" .ko)
    modpath[$name]=$moddir/$rel
    modpath[${name//-/_}]=$moddir/$rel
done < "$moddir/modules.order"
order=()
add_module ()
{
    local m=$1 d deps
    [ -n "${loaded[$m]:-}" ] && return 0
    loaded[$m]=1
    if [ -z "${modpath[$m]:-}" ]; then
        grep -q "/$m\.ko\$" "$moddir/modules.builtin" && return 0
        die "module $m is neither in modules.order nor built in"
    fi
    deps=$(tr '\0' '\n' < "${modpath[$m]}" | sed -n 's/^depends=//p' | head -1)
    for d in ${deps//,/ }; do
        add_module "$d"
    done
    order+=("$m")
}
for m in "${want_modules[@]}"; do
    add_module "$m"
done

root=$out/root
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,mnt,lib/modules,lib64,run}
cp "$busybox" "$root/bin/busybox"
for m in "${order[@]}"; do
    cp "${modpath[$m]}" "$root/lib/modules/$m.ko"
    echo "$m" >> "$root/lib/modules/order"
done

# Dynamically linked programs and their libraries, at the paths ldd
# names (the loader's own path is what the programs were linked with).
# copy_prog ROOT PROG: into ROOT, with the libraries that neither ROOT
# nor the base image ($root) has yet.
copy_prog ()
{
    local dest=$1 path lib
    path=$(PATH=$PATH:/usr/sbin:/sbin command -v "$2")
    mkdir -p "$dest/sbin"
    cp -L "$path" "$dest/sbin/$2"
    while read -r lib; do
        [ -e "$root$lib" ] || [ -e "$dest$lib" ] && continue
        mkdir -p "$dest$(dirname "$lib")"
        cp -L "$lib" "$dest$lib"
    done < <(ldd "$path" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p')
}
for p in "${guest_progs[@]}"; do
    copy_prog "$root" "$p"
done
# mke2fs picks the file system type from its name.
ln -s mke2fs "$root/sbin/mkfs.ext4"
ln -s e2fsck "$root/sbin/fsck.ext4"
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/"
echo 'root:x:0:0:root:/:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
cp "$here/init" "$root/init"
chmod 755 "$root/init"
# Busybox applets as commands.
for a in $("$busybox" --list); do
    [ -e "$root/bin/$a" ] || [ -e "$root/sbin/$a" ] || ln -s busybox "$root/bin/$a"
done

make_cpio ()
{
    (cd "$1" && find . -print0 | LC_ALL=C sort -z |
         cpio --null -o -H newc --quiet) | gzip -1 > "$2.new"
    mv "$2.new" "$2"
}
make_cpio "$root" "$out/base.cpio.gz"
# socat (the no-network scenario's bridge from a virtio-serial port to
# a Unix socket) with its libraries, in an archive of its own that only
# that scenario appends: the base stays small for every other boot.
rm -f "$out/socat.cpio.gz"
if command -v socat >/dev/null; then
    rm -rf "$out/socat-root"
    copy_prog "$out/socat-root" socat
    make_cpio "$out/socat-root" "$out/socat.cpio.gz"
    rm -rf "$out/socat-root"
fi
cp "$vmlinuz" "$out/vmlinuz"
rm -rf "$root" "$kdir/root"
echo "$stamp" > "$out/stamp"
echo "build-image.sh: kernel $kpkg, modules ${order[*]}" >&2
