#!/bin/bash
# Installs what tsrun needs on Debian 12 (as root), builds it, and builds the
# busybox rootfs of the default bundle.  Safe to run again: it skips what is
# already there.  uidmap: newuidmap and newgidmap, which map a rootless
# container's ranges of subordinate ids (src/lib/idmap.ts).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential python3 make musl-tools busybox-static libseccomp-dev pkg-config iproute2 util-linux uidmap)
# --engines: also the engines the tests run on tsrun (test/engines/), from Debian too: podman with
# conmon, containerd (ctr and the runc v2 shim), and docker.io; tini is the subreaper they run under;
# runc, the reference test/compat/ runs every scenario under beside tsrun; skopeo, which writes
# OCI layouts the way users make them (test/integration/image-names); zsh and fish, which run
# tsrun's completion scripts (test/integration/cli-docs); clang-format, which the fast check
# (scripts/check.sh) runs on native/; docker-registry (the CNCF distribution registry) and openssl,
# the registries test/image/registry*.test.ts start on 127.0.0.1 and their certificates; criu, which
# checkpoint and restore drive (test/integration/checkpoint*.test.ts: the refusal on this host's kernel,
# the whole of it in the VM on Debian's).
if [ "${1:-}" = --engines ]; then
  packages+=(podman conmon containerd docker.io tini runc skopeo zsh fish clang-format docker-registry openssl criu)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
node_major() { node -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt 20 ]; then
  # Debian 12's own nodejs is 18; its npm can install Node 20 from the npm registry.
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The package enables a registry on :5000 for every address; the tests start their own, on loopback.
if [[ " ${missing[*]} " == *" docker-registry "* ]]; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
  update-rc.d docker-registry disable >/dev/null 2>&1 || true
  service docker-registry stop >/dev/null 2>&1 || true
fi
if [ "$(node_major)" -lt 20 ]; then
  echo "setup: installing Node 20 from the npm registry"
  npm install -g --no-audit --no-fund node@20 >/dev/null
  hash -r
fi

# Builds the addon and the static helpers (node-gyp) and compiles the TypeScript (prepare).
npm install --no-audit --no-fund --loglevel=error
bash spec-fixtures/make-rootfs.sh spec-fixtures/busybox/rootfs
