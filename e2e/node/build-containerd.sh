#!/usr/bin/env bash
# Builds containerd v2 (containerd, containerd-shim-runc-v2, ctr) from Go modules, for the sandbox's
# real nodes (docs/sandbox.md, "Real nodes"). No wrapper module: `go install module@version`.
#
#   e2e/node/build-containerd.sh OUT_DIR
#
# The binaries are cached under ${FERRY_CACHE:-$HOME/.cache/ferry}/containerd/<sha256 of this script>/,
# so an unchanged script costs three copies instead of a build (about 70 s cold on 2 cores).
set -euo pipefail

version=v2.4.2
commands=(containerd containerd-shim-runc-v2 ctr)

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
out=$1
start=$(date +%s)
key=$(sha256sum <"${BASH_SOURCE[0]}" | cut -d' ' -f1)
cache_dir=${FERRY_CACHE:-$HOME/.cache/ferry}/containerd/$key

if [[ -x $cache_dir/ctr ]]; then
    echo "containerd: using cached build $cache_dir" >&2
else
    echo "containerd: building $version into $cache_dir" >&2
    mkdir -p "$(dirname "$cache_dir")"
    tmp=$(mktemp -d "$(dirname "$cache_dir")/.containerd.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    pkgs=()
    for c in "${commands[@]}"; do
        pkgs+=("github.com/containerd/containerd/v2/cmd/$c@$version")
    done
    # Static binaries without cgo (no btrfs snapshotter; the nodes use overlayfs or native).
    CGO_ENABLED=0 GOFLAGS=-mod=mod GOBIN=$tmp go install -trimpath -buildvcs=false \
        -tags no_btrfs -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$version" "${pkgs[@]}"
    rm -rf "$cache_dir"
    mv "$tmp" "$cache_dir"
    trap - EXIT
fi

mkdir -p "$out"
for c in "${commands[@]}"; do
    cp -f "$cache_dir/$c" "$out/.$c.tmp"
    mv -f "$out/.$c.tmp" "$out/$c"
done
echo "containerd: ${commands[*]} in $out after $(($(date +%s) - start))s" >&2
