#!/bin/bash
# Installs tsrun from this built checkout (npm run build, or scripts/setup.sh,
# first): PREFIX/bin/tsrun, a link to dist/tsrun (the executable finds its
# addon and static helpers in this checkout, so the checkout stays where it
# is), the man pages in PREFIX/share/man/man1, and the bash, zsh and fish
# completions where those shells look under PREFIX.  PREFIX defaults to
# /usr/local.  Run it again after a build; uninstall with --uninstall.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$(pwd)
uninstall=0
if [ "${1:-}" = --uninstall ]; then uninstall=1; shift; fi
prefix=${1:-/usr/local}

bin=$prefix/bin/tsrun
man=$prefix/share/man/man1
bash_completion=$prefix/share/bash-completion/completions/tsrun
zsh_completion=$prefix/share/zsh/site-functions/_tsrun
fish_completion=$prefix/share/fish/vendor_completions.d/tsrun.fish

if [ "$uninstall" = 1 ]; then
  rm -f "$bin" "$man"/tsrun.1 "$man"/tsrun-*.1 "$bash_completion" "$zsh_completion" "$fish_completion"
  echo "install: removed tsrun from $prefix"
  exit 0
fi
if [ ! -x dist/tsrun ]; then
  echo "install: dist/tsrun is missing: run npm run build (or scripts/setup.sh) first" >&2
  exit 1
fi
# Root (and every engine) will run dist/tsrun and load the addon and the
# helpers from this checkout: if another user could change any of them, or
# any directory above them, that user would become root.  Each must be
# root's, and writable by no one else (a sticky directory such as /tmp may
# be, since no one else can rename or remove what root owns in it).
root_only() {
  local p=$1 uid mode
  while :; do
    read -r uid mode < <(stat -c '%u %a' "$p")
    if [ "$uid" != 0 ]; then
      echo "install: $p belongs to uid $uid, and root would run what is under it: build tsrun in a checkout only root can change" >&2
      return 1
    fi
    if (( (8#$mode & 8#022) != 0 && (8#$mode & 8#1000) == 0 )); then
      echo "install: $p is writable by others (mode $mode), and root would run what is under it: build tsrun in a checkout only root can change" >&2
      return 1
    fi
    [ "$p" = / ] && return 0
    p=$(dirname "$p")
  done
}
for f in "$checkout/dist/tsrun" "$checkout/build/Release/tsrun_native.node" "$checkout"/native/out/tsrun-*; do
  root_only "$(readlink -f "$f")" || exit 1
done
mkdir -p "$(dirname "$bin")" "$man" "$(dirname "$bash_completion")" "$(dirname "$zsh_completion")" "$(dirname "$fish_completion")"
ln -sfn "$checkout/dist/tsrun" "$bin"
node scripts/man.js "$man"
"$bin" completion bash > "$bash_completion"
"$bin" completion zsh > "$zsh_completion"
"$bin" completion fish > "$fish_completion"
echo "install: $bin -> $checkout/dist/tsrun, man pages in $man, completions for bash, zsh and fish"
