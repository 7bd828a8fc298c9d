#!/usr/bin/env bash
# Builds a release tarball: the stripped static binary, its applet symlinks and a SHA256SUMS.
#   packaging/make-release.sh [OUTPUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/release}
scripts/setup >/dev/null
if [ -f build/build.ninja ]; then meson setup --reconfigure build >/dev/null; else meson setup build >/dev/null; fi
ninja -C build dstack dstack.stripped >/dev/null
version=$(build/dstack --version | awk '{print $2}')
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
name=dstack-$version-linux-$(uname -m)
mkdir -p "$stage/$name/bin"
install -m 0755 build/dstack.stripped "$stage/$name/bin/dstack"
for applet in $(build/dstack --list); do ln -s dstack "$stage/$name/bin/$applet"; done
mkdir -p "$out"
tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name -czf "$out/$name.tar.gz" "$name"
(cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "$out/$name.tar.gz"
cat "$out/$name.tar.gz.sha256"
