#!/bin/bash
# Set up everything test/vm/run.sh needs to boot a pure-cgroup-v2 QEMU VM:
#   - Debian packages: qemu-system-x86, busybox-static, xz-utils, cpio;
#   - a Debian 6.1 kernel package, fetched with `apt-get download` and
#     unpacked with `dpkg-deb -x` (never installed: the host keeps its kernel);
#   - an initramfs: static busybox + test/vm/init + the modules that init needs.
#
# Everything lives in a cache dir OUTSIDE the repo (TSRUN_VM_CACHE, default
# /var/cache/tsrun-vm) and comes from Debian's packages only. Idempotent: each
# step is skipped when its result is already there, so run.sh calls it every
# time. At the end it writes $CACHE/vm.env, which run.sh sources.
#
# Refreshing: `rm -rf /var/cache/tsrun-vm` picks the newest kernel again.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${TSRUN_VM_CACHE:-/var/cache/tsrun-vm}

log() { echo "tsrun-vm build: $*" >&2; }
die() { echo "tsrun-vm build: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get, mknod)"
mkdir -p "$CACHE"

# Two run.sh started at once must not build into the same dir together.
exec 9>"$CACHE/.lock"
flock 9

export DEBIAN_FRONTEND=noninteractive

# --- 1. Debian packages ------------------------------------------------------
# Only the missing ones are installed. `apt-get update` runs only if the
# install fails, since a stale or empty package list is the usual cause.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in qemu-system-x86 busybox-static xz-utils cpio; do
	installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	# --no-install-recommends: skips the GUI, audio and firmware extras that
	# qemu-system-x86 recommends; a headless TCG VM needs none of them.
	if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
		apt-get update >&2
		apt-get install -y --no-install-recommends "${missing[@]}" >&2
	fi
fi

# --- 2. The kernel -----------------------------------------------------------
# The first kernel unpacked is kept (recorded in $CACHE/kernel-version), so a
# later build does not switch kernels just because the mirror moved on.
# TSRUN_VM_KERNEL=6.1.0-NN-amd64 picks a specific one.
pick_kernel() {
	# The plain generic flavour: -rt changes scheduling, and -cloud is trimmed
	# for cloud hypervisors (it may lack 9p). apt-cache search matches the
	# description too, so only the package name (first field) is kept.
	apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' |
		awk '{print $1}' | sed 's/^linux-image-//' | sort -V | tail -n 1
}
if [ -n "${TSRUN_VM_KERNEL:-}" ]; then
	KVER=$TSRUN_VM_KERNEL
elif [ -s "$CACHE/kernel-version" ]; then
	KVER=$(cat "$CACHE/kernel-version")
else
	KVER=$(pick_kernel)
	if [ -z "$KVER" ]; then
		apt-get update >&2
		KVER=$(pick_kernel)
	fi
	[ -n "$KVER" ] || die "no linux-image-6.1.0-NN-amd64 package found in apt"
fi

KDIR=$CACHE/kernel/$KVER       # the unpacked package
VMLINUZ=$KDIR/boot/vmlinuz-$KVER
MODROOT=$KDIR/lib/modules/$KVER
if [ ! -f "$KDIR/.unpacked" ]; then
	log "fetching linux-image-$KVER"
	dl=$CACHE/download
	rm -rf "$dl" "$KDIR"
	mkdir -p "$dl" "$KDIR"
	# APT::Sandbox::User=root: apt otherwise downloads as the _apt user, which
	# cannot write into this root-owned cache dir (it then falls back with a
	# warning; this just says so up front).
	(cd "$dl" && apt-get download -o APT::Sandbox::User=root "linux-image-$KVER" >&2) ||
		{ apt-get update >&2; (cd "$dl" && apt-get download -o APT::Sandbox::User=root "linux-image-$KVER" >&2); }
	dpkg-deb -x "$dl"/linux-image-"$KVER"_*.deb "$KDIR"
	rm -rf "$dl"
	[ -f "$VMLINUZ" ] || die "package has no $VMLINUZ"
	# Debian may ship modules xz-compressed; busybox insmod/modprobe may not
	# decompress them, so decompress the whole tree once here.
	find "$MODROOT" -name '*.ko.xz' -exec xz -d {} +
	# The package has no modules.dep (depmod runs at install time, which we
	# skip). busybox depmod writes one, so modprobe works inside the VM
	# (run.sh --modules) for modules the tests might want, e.g. veth.
	busybox depmod -b "$KDIR" "$KVER"
	touch "$KDIR/.unpacked"
fi
echo "$KVER" >"$CACHE/kernel-version"

# --- 3. The initramfs --------------------------------------------------------
# In load order. virtio and 9p carry the host root; overlay puts a tmpfs on top
# of it. Any that this kernel has built in (modules.builtin) is skipped.
MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
netfs fscache 9pnet 9pnet_virtio 9p overlay"

BUSYBOX=$(command -v busybox)
INITRD=$CACHE/initramfs-$KVER.cpio.gz
# Rebuilt whenever an input changes: init, busybox, the kernel, the list.
stamp=$( { sha256sum "$HERE/init" "$BUSYBOX"; echo "$KVER $MODULES"; } | sha256sum | cut -d' ' -f1)
if [ ! -f "$INITRD" ] || [ "$(cat "$INITRD.stamp" 2>/dev/null)" != "$stamp" ]; then
	log "building $INITRD"
	stage=$(mktemp -d "$CACHE/initramfs.XXXXXX")
	trap 'rm -rf "$stage"' EXIT
	mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,lower,rw,newroot,lib/modules}
	cp "$BUSYBOX" "$stage/bin/busybox"
	ln -s busybox "$stage/bin/sh"
	cp "$HERE/init" "$stage/init"
	chmod 755 "$stage/init"
	# init prints to the console before it mounts devtmpfs.
	mknod -m 600 "$stage/dev/console" c 5 1
	: >"$stage/modules.list"
	for m in $MODULES; do
		# Module file names use either - or _ ; find whichever exists.
		pat=$(echo "$m" | sed 's/[-_]/[-_]/g')
		ko=$(find "$MODROOT/kernel" -regex ".*/$pat\.ko" | head -n 1)
		if [ -n "$ko" ]; then
			cp "$ko" "$stage/lib/modules/$m.ko"
			echo "$m" >>"$stage/modules.list"
		elif grep -Eq "/$pat\.ko$" "$MODROOT/modules.builtin"; then
			log "  $m is built in"
		else
			die "module $m is neither in $MODROOT nor built in"
		fi
	done
	# Where init finds the full module tree (through the 9p host root) to
	# bind-mount it at /lib/modules/$KVER in the guest.
	echo "$MODROOT" >"$stage/modules.tree"
	(cd "$stage" && find . | cpio -o -H newc --quiet) | gzip -1 >"$INITRD.tmp"
	mv "$INITRD.tmp" "$INITRD"
	echo "$stamp" >"$INITRD.stamp"
	rm -rf "$stage"
	trap - EXIT
fi

# --- 4. What run.sh needs ----------------------------------------------------
cat >"$CACHE/vm.env.tmp" <<EOF
KVER=$KVER
VMLINUZ=$VMLINUZ
INITRD=$INITRD
EOF
mv "$CACHE/vm.env.tmp" "$CACHE/vm.env"
