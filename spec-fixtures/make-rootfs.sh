#!/usr/bin/env bash
# Builds a minimal busybox rootfs for tsrun's tests and demo bundle.
#
#   spec-fixtures/make-rootfs.sh DEST
#
# DEST is removed and recreated each time, so the result never depends on a
# previous run.  The rootfs contains the static Debian busybox (one symlink per
# applet in /bin), a few users/groups the tests rely on, and the static
# in-container probe native/out/tsrun-checker as /bin/checker.
# Prints nothing on success; errors go to stderr.
set -euo pipefail

die() {
	echo "make-rootfs: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: $0 DEST"
DEST=$1
[ -n "$DEST" ] || die "DEST must not be empty"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUSYBOX=/bin/busybox
CHECKER=$REPO/native/out/tsrun-checker

[ -x "$BUSYBOX" ] || die "$BUSYBOX not found; install it with: apt-get install busybox-static"
# A dynamically linked busybox would need the host's libc inside the rootfs
# (Debian's plain "busybox" package).  Only checkable when file(1) exists.
if command -v file >/dev/null 2>&1 &&
	! LC_ALL=C file -L "$BUSYBOX" | grep -q 'statically linked'; then
	die "$BUSYBOX is not statically linked; install it with: apt-get install busybox-static"
fi

# Build (or refresh) the checker; make is a no-op when it is up to date.
make -s -C "$REPO/native" out/tsrun-checker >/dev/null ||
	die "building $CHECKER failed"
[ -x "$CHECKER" ] || die "$CHECKER missing after build"

# Guard against catastrophic rm -rf targets before wiping DEST.
DEST_ABS=$(realpath -m -- "$DEST")
case "$DEST_ABS" in
/ | /bin | /boot | /dev | /etc | /home | /lib* | /proc | /root | /run | /sbin | /sys | /usr | /var | "$REPO")
	die "refusing to use $DEST_ABS as DEST"
	;;
esac
rm -rf -- "$DEST_ABS"
mkdir -p -- "$DEST_ABS"
cd -- "$DEST_ABS"

mkdir -p bin sbin usr/bin usr/sbin etc proc sys dev tmp root home/tester \
	var/tmp var/log run
chmod 0755 . bin sbin usr usr/bin usr/sbin etc proc sys dev home var run
chmod 1777 tmp var/tmp
chmod 0700 root
chown 1000:1000 home/tester
chmod 0755 home/tester

cp -- "$BUSYBOX" bin/busybox
chmod 0755 bin/busybox
# Relative links so they resolve inside the container, not on the host.
for applet in $("$BUSYBOX" --list); do
	[ "$applet" = busybox ] && continue
	ln -sf busybox "bin/$applet"
done

install -m 0755 -- "$CHECKER" bin/checker

cat >etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
tester:x:1000:1000:tester:/home/tester:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD

cat >etc/group <<'GROUP'
root:x:0:
tty:x:5:
tester:x:1000:
extra:x:1001:tester
nogroup:x:65534:
GROUP

echo tsrun >etc/hostname
chmod 0644 etc/passwd etc/group etc/hostname
