#!/usr/bin/env bash
# Regenerate docker-default.json: the linux.seccomp section equivalent to
# Docker's default seccomp profile for an x86_64 container with Docker's
# default capability set.
#
# Allowed = every syscall in the x86_64 kernel header, minus the blocked set
# below, minus the syscalls that get an argument rule, minus names libseccomp
# cannot resolve for SCMP_ARCH_X86_64.
#
# Usage: bash spec-fixtures/seccomp/make-docker-default.sh [unistd_64.h] [out.json]
# Needs: node, a C compiler and libseccomp headers (already needed to build tsrun).
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
header=${1:-/usr/include/x86_64-linux-gnu/asm/unistd_64.h}
out=${2:-$here/docker-default.json}

# Blocked: the table "Significant syscalls blocked by the default profile" of
# docs.docker.com/engine/security/seccomp/ (clone and personality are handled
# by argument rules below instead).
documented_blocked="
acct add_key bpf clock_adjtime clock_settime create_module delete_module
finit_module get_kernel_syms get_mempolicy init_module ioperm iopl kcmp
kexec_file_load kexec_load keyctl lookup_dcookie mbind mount move_pages
nfsservctl open_by_handle_at perf_event_open pivot_root process_vm_readv
process_vm_writev ptrace query_module quotactl reboot request_key
set_mempolicy setns settimeofday swapon swapoff sysfs _sysctl umount2 unshare
uselib userfaultfd ustat
"
# Documented too, but they do not exist on x86_64 (blocked there by the
# default action anyway).
documented_not_x86_64="stime umount vm86 vm86old"

# Blocked for the same documented reasons: they need a capability outside
# Docker's default set (CAP_SYS_ADMIN, CAP_SYSLOG, CAP_DAC_READ_SEARCH,
# CAP_SYS_TTY_CONFIG), change NUMA settings, or are never implemented.
same_reasons_blocked="
name_to_handle_at
fsopen fsconfig fsmount fspick open_tree move_mount mount_setattr
quotactl_fd fanotify_init sethostname setdomainname
syslog
vhangup
migrate_pages set_mempolicy_home_node
afs_syscall getpmsg putpmsg security tuxcall vserver
"

# Syscalls that get their own argument rule(s), not the plain allow.
arg_ruled="clone clone3 personality socket"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

sed -n 's/^#define __NR_\([a-z0-9_]*\)[[:space:]].*/\1/p' "$header" | sort -u >"$tmp/all"
[ -s "$tmp/all" ] || { echo "no syscalls found in $header" >&2; exit 1; }

printf '%s\n' $documented_blocked $same_reasons_blocked | sort -u >"$tmp/blocked"
missing=$(comm -23 "$tmp/blocked" "$tmp/all")
[ -z "$missing" ] || { echo "blocked names not in $header: $missing" >&2; exit 1; }
printf '%s\n' $arg_ruled | sort -u >"$tmp/argruled"
missing=$(comm -23 "$tmp/argruled" "$tmp/all")
[ -z "$missing" ] || { echo "argument-ruled names not in $header: $missing" >&2; exit 1; }

cat "$tmp/blocked" "$tmp/argruled" | sort -u | comm -23 "$tmp/all" - >"$tmp/candidates"

# Keep only the names libseccomp resolves for x86_64.
cat >"$tmp/resolve.c" <<'EOF'
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = 0;
    if (!*line) continue;
    int nr = seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, line);
    printf("%s %s\n", nr == __NR_SCMP_ERROR ? "unknown" : "ok", line);
  }
  return 0;
}
EOF
${CC:-cc} -o "$tmp/resolve" "$tmp/resolve.c" -lseccomp
"$tmp/resolve" <"$tmp/candidates" >"$tmp/resolved"
sed -n 's/^unknown //p' "$tmp/resolved" | while read -r n; do
  echo "dropped (unknown to libseccomp): $n" >&2
done
sed -n 's/^ok //p' "$tmp/resolved" | sort >"$tmp/allowed"

node - "$tmp/allowed" "$out" <<'EOF'
const fs = require("fs");
const [allowedFile, out] = process.argv.slice(2);
const names = fs.readFileSync(allowedFile, "utf8").split("\n").filter(Boolean);
const CLONE_NS_FLAGS = 0x7e020000; // CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
const AF_VSOCK = 40;
const ENOSYS = 38;
const seccomp = {
  defaultAction: "SCMP_ACT_ERRNO",
  defaultErrnoRet: 1,
  architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  syscalls: [
    { names, action: "SCMP_ACT_ALLOW" },
    {
      names: ["clone"],
      action: "SCMP_ACT_ALLOW",
      args: [{ index: 0, value: CLONE_NS_FLAGS, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }],
    },
    { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS },
    ...[0x0, 0x8, 0x20000, 0x20008, 0xffffffff].map((value) => ({
      names: ["personality"],
      action: "SCMP_ACT_ALLOW",
      args: [{ index: 0, value, op: "SCMP_CMP_EQ" }],
    })),
    {
      names: ["socket"],
      action: "SCMP_ACT_ALLOW",
      args: [{ index: 0, value: AF_VSOCK, op: "SCMP_CMP_NE" }],
    },
  ],
};
fs.writeFileSync(out, JSON.stringify(seccomp, null, 2) + "\n");
console.error(`wrote ${out}: ${names.length} allowed syscalls`);
EOF
