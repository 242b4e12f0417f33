#!/bin/bash
# Set everything up, then run the whole test suite: the fast check first (types, lint, format, unit
# tests: scripts/check.sh), then integration,
# security, compat (tsrun beside runc) and engine (podman, containerd, docker) tests on this host, then the cgroup suite (and the exec placement
# test of test/security) again inside a VM running pure cgroup v2 (test/vm/), since a hybrid host cannot exercise the v2 driver,
# and the systemd cgroup manager's tests, and podman and containerd driving tsrun with it, in a VM where systemd is
# PID 1 (test/vm --systemd), which this host's init is not, on cgroup v2, on systemd's hybrid layout (--hybrid) and, for the manager's own tests, pure v1 (--legacy).
# TSRUN_SKIP_VM=1 skips the VM part (quick local runs).  The reliability tests run their long
# variants here (1,000 lifecycles each; test/reliability/soak.test.ts): TSRUN_LONG=0 shortens them.
set -euo pipefail
export TSRUN_LONG=${TSRUN_LONG:-1}
cd "$(dirname "$0")/.."
bash scripts/setup.sh --engines

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
status=0

echo "== check (no root) =="
# A type, lint or format error fails the run before the long root suite starts.
bash scripts/check.sh 2>&1 | tee "$logs/check" || exit 1

echo "== host ($(uname -r)) =="
npx tap dist/test/integration dist/test/security dist/test/compat dist/test/reliability dist/test/engines 2>&1 | tee "$logs/host" || status=$?

if [ "${TSRUN_SKIP_VM:-}" != 1 ]; then
  echo "== cgroup v2, in a VM (test/vm) =="
  # loop, crc32c_generic (ext4's checksums) and ext4: a user's image store there is an ext4 image (the VM's root is overlayfs, and its
  # tmpfs keeps no user.* attributes before Linux 6.6; test/integration/rootless-image.test.ts).
  # Checkpoint and restore run here too: CRIU 3.17 cannot dump on this host's kernel but can on the VM's 6.1.  It needs
  # nf_tables (after crc32c_generic: busybox's modprobe ignores soft dependencies), nf_conntrack_netlink and the
  # socket-diag modules, without which CRIU cannot lock or dump a network namespace or its sockets.
  # 600 s a file: under TCG, two files at once (CRIU's among them), cgroups and rootless-image take 5 minutes and more.
  bash test/vm/run.sh --timeout 2700 \
    --modules "loop crc32c_generic ext4 nf_tables nf_conntrack_netlink unix_diag netlink_diag af_packet_diag inet_diag tcp_diag udp_diag raw_diag" \
    --cwd "$PWD" -- \
    npx tap --timeout 600 dist/test/integration/cgroups.test.js dist/test/integration/devices-bpf.test.js dist/test/integration/exec.test.js \
      dist/test/security/exec-paused-cgroups.test.js dist/test/integration/rootless.test.js \
      dist/test/integration/rootless-image.test.js dist/test/integration/checkpoint.test.js \
      dist/test/integration/checkpoint-flags.test.js \
      dist/test/engines/podman-checkpoint.test.js \
    2>&1 | tee "$logs/vm" || status=$?
  echo "== systemd as PID 1, in a VM (test/vm --systemd) =="
  # The engines there use the systemd cgroup manager (test/engine-helpers.ts, CGROUP_MANAGER).  An engine
  # file takes 4-5 minutes under TCG, past tap's 300 s on a loaded machine: 600 s each there.
  systemd_tests=(dist/test/integration/systemd-cgroup.test.js dist/test/integration/rootless-systemd.test.js
    dist/test/engines/containerd.test.js dist/test/engines/podman.test.js)
  # Rootless podman with the user's own systemd manager needs cgroup v2: this run only.  So does the CRI test
  # (a node as Kubernetes sets one up: systemd, cgroup v2, SystemdCgroup); its CNI bridge needs bridge and veth.
  # And checkpoint with the systemd cgroup manager, with CRIU's modules (see the v2 run above).
  bash test/vm/run.sh --systemd --timeout 2100 \
    --modules "bridge veth crc32c_generic nf_tables nf_conntrack_netlink unix_diag netlink_diag af_packet_diag inet_diag tcp_diag udp_diag raw_diag" \
    --cwd "$PWD" -- npx tap --timeout 600 \
    "${systemd_tests[@]}" dist/test/engines/podman-rootless.test.js dist/test/engines/cri.test.js \
    dist/test/integration/checkpoint-systemd.test.js \
    2>&1 | tee "$logs/vm-systemd" || status=$?
  echo "== systemd as PID 1, hybrid cgroups (v1 controllers), in a VM (test/vm --systemd --hybrid) =="
  bash test/vm/run.sh --systemd --hybrid --timeout 1500 --cwd "$PWD" -- npx tap --timeout 600 "${systemd_tests[@]}" \
    2>&1 | tee "$logs/vm-systemd-hybrid" || status=$?
  echo "== systemd as PID 1, pure cgroup v1, in a VM (test/vm --systemd --legacy) =="
  bash test/vm/run.sh --systemd --legacy --timeout 900 --cwd "$PWD" -- npx tap dist/test/integration/systemd-cgroup.test.js \
    2>&1 | tee "$logs/vm-systemd-legacy" || status=$?
fi

# One closing line any CI can read: "N passed, N failed", over both runs.
total=0 pass=0 fail=0
for log in "$logs"/*; do
  summary=$(grep -E '^# \{ total: ' "$log" | tail -1 || true)
  [ -n "$summary" ] || { echo "no test summary in the $(basename "$log") run"; status=1; continue; }
  total=$((total + $(sed -nE 's/.*total: ([0-9]+).*/\1/p' <<<"$summary")))
  pass=$((pass + $(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")))
  fail=$((fail + $(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary" | grep . || echo 0)))
done
if [ "$total" -eq 0 ]; then
  echo "no tests ran"
  exit 1
fi
echo "$pass passed, $fail failed"
exit $status
