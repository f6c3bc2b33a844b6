#!/bin/busybox sh
# PID 1 of the test VM (runs from the initramfs machine.py builds). It loads the drivers the
# distribution kernel has as modules, mounts the host's / read-only over 9p under a tmpfs overlay,
# puts the kernel's own modules and headers where bcc looks for them, mounts the filesystems a
# tracer needs, and runs the host-written script $SHARE/run.sh chrooted in that root. Its exit
# code goes to $SHARE/rc; then the machine powers off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do insmod "/modules/$m.ko" || echo "vm: insmod $m failed"; done
mkdir -p /results /host /ovl /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results /results || poweroff -f
. /results/vm.conf  # SHARE (host path of /results), KROOT, MODULES, RELEASE, VMHOST
fail() { echo "vm: $*"; echo 125 > /results/rc; sync; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host \
  || fail "cannot mount the host's root"
mount -t tmpfs -o mode=755 tmpfs /ovl
mkdir -p /ovl/upper /ovl/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/ovl/upper,workdir=/ovl/work /newroot \
  || fail "cannot mount the overlay"
R=/newroot
mount -t tmpfs tmpfs "$R/tmp"  # empty, as on a booted host (the share may live under it)
mkdir -p "$R$SHARE" "$R/lib/modules/$RELEASE"
mount --bind /results "$R$SHARE"
mount --bind "$R$MODULES" "$R/lib/modules/$RELEASE"
for d in "$R$KROOT"/usr/src/* "$R$KROOT"/usr/lib/linux-kbuild-*; do
  [ -d "$d" ] || continue
  target="$R${d#"$R$KROOT"}"
  mkdir -p "$target" && mount --bind "$d" "$target"
done
mount -t proc proc "$R/proc"
mount -t sysfs sys "$R/sys"
mount -t devtmpfs dev "$R/dev"
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"
mount -t tmpfs tmpfs "$R/dev/shm"
mount -t tracefs tracefs "$R/sys/kernel/tracing"
mount -t debugfs debugfs "$R/sys/kernel/debug"
mount -t bpf bpf "$R/sys/fs/bpf"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
hostname "$VMHOST"
ifconfig lo 127.0.0.1 up
chroot "$R" /bin/sh "$SHARE/run.sh" > /results/run.log 2>&1
echo $? > /results/rc
sync
poweroff -f
