#!/bin/bash
# Run one command inside a QEMU VM (cgroup v2 with all controllers; under
# --systemd also hybrid or pure v1), and hand back its output and exit status.
#
#   test/vm/run.sh [options] -- COMMAND [ARGS...]
#
#   --timeout SECONDS  kill the VM after this long (default 600); exit 124
#   --cwd DIR          directory to run in, as the guest sees it (default: the
#                      current one; note /tmp and /run are empty in the guest)
#   --env K=V          set a variable for the command (repeatable); CI is
#                      passed through when set
#   --modules "A B"    modprobe these guest kernel modules first (e.g. veth)
#   --mem MB           guest memory (default 2048); the guest's writes, to
#                      any path, live in RAM
#   --smp N            guest CPUs (default 2)
#   --log FILE         keep the VM's serial console log in FILE
#   --systemd          boot systemd as PID 1 and run the command as a
#                      oneshot service of it (the systemd cgroup manager's tests)
#   --hybrid           with --systemd: the v1 controllers and systemd's
#                      hybrid layout (cgroup2 at /sys/fs/cgroup/unified, no
#                      controllers in it), as on a host like this one
#   --legacy           with --systemd: pure cgroup v1, systemd's legacy layout
#                      (no cgroup2 tree at all)
#   -v                 say on stderr what happens and how long the boot took
#
# The command's stdout+stderr come out on stdout, as they are produced. The
# exit status is the command's, or 124 on timeout, or 125 when the VM failed
# (the tail of its serial log then goes to stderr).
#
# The guest sees the host's whole / read-only through 9p, under an overlay
# whose upper layer is a tmpfs: writes never reach the host. Results come back
# through a second, writable 9p share: a fresh temp dir holding job.sh (what
# to run), output, status. Nothing is mounted on the host, and the temp dir
# and the qemu process are gone when this script exits.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${TSRUN_VM_CACHE:-/var/cache/tsrun-vm}

usage() { sed -n '4,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 125; }
say() { if [ "$verbose" = 1 ]; then echo "tsrun-vm: $*" >&2; fi; }

timeout=600 cwd=$PWD mem=2048 smp=2 modules="" keep_log="" verbose=0 systemd=0 hybrid=0 legacy=0
envs=()
while [ $# -gt 0 ]; do
	case "$1" in
	--timeout) timeout=$2; shift 2 ;;
	--cwd) cwd=$2; shift 2 ;;
	--env) envs+=("$2"); shift 2 ;;
	--modules) modules=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--log) keep_log=$2; shift 2 ;;
	--systemd) systemd=1; shift ;;
	--hybrid) hybrid=1; shift ;;
	--legacy) hybrid=1; legacy=1; shift ;;
	-v) verbose=1; shift ;;
	--) shift; break ;;
	*) usage ;;
	esac
done
[ $# -gt 0 ] || usage
[[ $timeout =~ ^[0-9]+$ ]] || usage
if [ "$hybrid" = 1 ] && [ "$systemd" = 0 ]; then
	echo "tsrun-vm: --hybrid and --legacy need --systemd (systemd mounts those layouts)" >&2
	exit 125
fi

# Build (or check) the kernel and initramfs; quiet when there is nothing to do.
bash "$HERE/build.sh"
# shellcheck source=/dev/null
. "$CACHE/vm.env"

work=$(mktemp -d /tmp/tsrun-vm.XXXXXX)
share=$work/share
serial=$work/serial.log
mkdir "$share"
qpid=""
stop_qemu() {
	# Only our own qemu, by pid. $qpid is the `timeout` wrapping it (see
	# below), which passes a TERM on to qemu. Should qemu linger, KILL it
	# (the wrapper's child) before the wrapper, so it is never orphaned.
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill "$qpid" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$qpid" 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 "$qpid" 2>/dev/null; then
			pkill -KILL -P "$qpid" 2>/dev/null || true
			kill -KILL "$qpid" 2>/dev/null || true
		fi
	fi
	if [ -n "$qpid" ]; then wait "$qpid" 2>/dev/null || true; fi
}
cleanup() {
	stop_qemu
	if [ -n "$keep_log" ] && [ -f "$serial" ]; then cp "$serial" "$keep_log" || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Quote one word for sh: '...' with each ' written as '\''. Plain POSIX, so
# any sh reads it back exactly, whatever the bytes.
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

{
	echo "# written by test/vm/run.sh"
	if [ -n "${CI:-}" ]; then echo "export CI=$(q "$CI")"; fi
	for kv in "${envs[@]+"${envs[@]}"}"; do
		[[ $kv == *=* ]] || { echo "tsrun-vm: --env wants K=V, got $kv" >&2; exit 125; }
		echo "export $(q "$kv")"
	done
	# /tmp and /run are fresh in the guest: a cwd below them comes back as a
	# writable overlay of the host's directory (tools such as tap write there).
	case "$cwd" in
	/tmp/* | /run/*)
		echo "mkdir -p /run/.cwd/upper /run/.cwd/work $(q "$cwd")"
		echo "mount -t overlay -o lowerdir=$(q "/run/.hostroot$cwd"),upperdir=/run/.cwd/upper,workdir=/run/.cwd/work overlay $(q "$cwd") || exit 125"
		;;
	esac
	echo "cd $(q "$cwd") || { echo \"tsrun-vm: cannot cd to \"$(q "$cwd")\" in the guest\" >&2; exit 125; }"
	printf 'exec'
	for a in "$@"; do printf ' %s' "$(q "$a")"; done
	echo
} >"$share/job.sh"
if [ -n "$modules" ]; then echo "$modules" >"$share/modules"; fi

# Kernel command line:
#   cgroup_no_v1=all   no v1 hierarchy may take a controller: all go to v2;
#   panic=-1           a panic reboots at once, and -no-reboot turns that
#                      into qemu exiting, so a broken boot ends fast;
#   loglevel=4         warnings and worse on the serial log, not the chatter;
#   mitigations=off    the CPU is emulated; the mitigations only slow it.
#   apparmor=0         no LSM, as on this host: Debian's kernel would enable
#                      AppArmor, podman would then ask for its profile, and
#                      tsrun refuses AppArmor profiles by name (not supported yet);
#   (--hybrid: v1 is allowed, and systemd is asked for its hybrid layout.)
if [ "$hybrid" = 1 ]; then
	append="console=ttyS0 systemd.unified_cgroup_hierarchy=0 apparmor=0 panic=-1 loglevel=4 mitigations=off"
else
	append="console=ttyS0 cgroup_no_v1=all apparmor=0 panic=-1 loglevel=4 mitigations=off"
fi
if [ "$legacy" = 1 ]; then append="$append systemd.legacy_systemd_cgroup_controller=1"; fi
# tsrun.systemd: /init hands over to systemd (test/vm/init, stage 1).
if [ "$systemd" = 1 ]; then append="$append tsrun.systemd=1 systemd.show_status=0"; fi

# TCG, not KVM: nested KVM is there but the guest hangs at boot on it.
# thread=multi gives each guest CPU its own host thread.
# -nodefaults etc.: no VGA, NIC, monitor or stdio: only the serial log.
# multidevs=remap: the host's / spans several filesystems; this keeps their
# inode numbers from colliding in the guest.
qemu=(qemu-system-x86_64
	-accel tcg,thread=multi -cpu max -m "$mem" -smp "$smp"
	-nodefaults -no-user-config -display none -monitor none
	-serial "file:$serial" -no-reboot
	-kernel "$VMLINUZ" -initrd "$INITRD" -append "$append"
	-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
	-virtfs "local,path=$share,mount_tag=results,security_model=none,multidevs=remap"
)
say "booting kernel $KVER (timeout ${timeout}s)"
start=$(date +%s.%N)
elapsed() { awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
# `timeout` is a backstop: should this script itself be SIGKILLed (so its
# cleanup never runs), qemu still dies shortly after the deadline.
timeout -k 10 $((timeout + 30)) "${qemu[@]}" </dev/null >"$work/qemu.out" 2>&1 &
qpid=$!

# Stream share/output to stdout while the VM runs: print whatever bytes were
# added since the last look. After qemu has exited, one last look catches the
# rest, so the whole file is printed exactly once.
off=0
flush_output() {
	local f=$share/output size
	[ -f "$f" ] || return 0
	size=$(stat -c %s "$f")
	if [ "$size" -gt "$off" ]; then
		# Exactly the bytes [off, size): the file may grow meanwhile, and
		# those bytes are left for the next look.
		dd if="$f" iflag=skip_bytes,count_bytes skip="$off" count=$((size - off)) \
			bs=1M status=none
		off=$size
	fi
}
booted=0
timed_out=0
deadline=$(($(date +%s) + timeout))
while kill -0 "$qpid" 2>/dev/null; do
	if [ "$booted" = 0 ] && [ -f "$share/output" ]; then
		booted=1
		say "job started after $(elapsed) s"
	fi
	flush_output
	if [ "$(date +%s)" -ge "$deadline" ]; then
		timed_out=1
		break
	fi
	sleep 0.2
done
qrc=0
if [ "$timed_out" = 1 ]; then
	stop_qemu
else
	wait "$qpid" 2>/dev/null || qrc=$?
fi
qpid=""
flush_output
say "VM ran for $(elapsed) s"

tail_log() {
	echo "--- last lines of the VM's serial log ---" >&2
	tail -n 40 "$serial" >&2 2>/dev/null || true
	if [ -s "$work/qemu.out" ]; then
		echo "--- qemu said ---" >&2
		tail -n 20 "$work/qemu.out" >&2
	fi
}

if [ "$timed_out" = 1 ]; then
	echo "tsrun-vm: timed out after ${timeout}s; VM killed" >&2
	[ "$verbose" = 1 ] && tail_log
	exit 124
fi
if [ -f "$share/status" ]; then
	exit "$(cat "$share/status")"
fi
if [ -f "$share/vm-error" ]; then
	echo "tsrun-vm: VM failed: $(cat "$share/vm-error")" >&2
else
	echo "tsrun-vm: VM ended without a result (qemu exit $qrc)" >&2
fi
tail_log
exit 125
