#!/usr/bin/env bash
# Builds the in-process Kubernetes control plane used by the e2e tests.
#
#   e2e/controlplane/build.sh OUT_PATH
#
# The binary is cached under ${FERRY_CACHE:-$HOME/.cache/ferry}/controlplane/<key>/,
# where <key> is the sha256 of go.mod, go.sum and the *.go files, so an
# unchanged source tree costs one copy instead of a long build.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUT_PATH" >&2
    exit 2
fi
out=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
start=$(date +%s)

cd "$here"
key=$(
    for f in build.sh go.mod go.sum $(LC_ALL=C ls -1 -- *.go); do
        printf '%s\n' "== $f"
        cat -- "$f"
    done | sha256sum | cut -d' ' -f1
)
cache_dir=${FERRY_CACHE:-$HOME/.cache/ferry}/controlplane/$key
cached=$cache_dir/controlplane

if [[ -x $cached ]]; then
    echo "controlplane: using cached build $cached" >&2
else
    echo "controlplane: building $cached (several minutes on a cold Go build cache)" >&2
    mkdir -p "$cache_dir"
    go mod download
    tmp=$(mktemp "$cache_dir/.controlplane.XXXXXX")
    trap 'rm -f "$tmp"' EXIT
    # Stamp the Kubernetes version the module requires, as release builds do, so /version is truthful.
    k8s_version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
    ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$k8s_version")"
    go build -trimpath -buildvcs=false -ldflags="$ldflags" -o "$tmp" .
    chmod 0755 "$tmp"
    mv -f "$tmp" "$cached"
    trap - EXIT
fi

mkdir -p "$(dirname -- "$out")"
tmp_out=$(mktemp "$(dirname -- "$out")/.controlplane.XXXXXX")
cp -f "$cached" "$tmp_out"
chmod 0755 "$tmp_out"
mv -f "$tmp_out" "$out"
echo "controlplane: $out ready after $(( $(date +%s) - start ))s"
