#!/usr/bin/env bash
# Builds Argo CD (application controller, repo-server, askpass; see main.go) for the sandbox's real Argo CD.
#
#   e2e/argocd/build.sh OUT_PATH
#
# writes the binary to OUT_PATH and, beside it, what upstream's image ships with it and the sandbox needs
# (crates/sandbox/src/argocd_real.rs): Argo CD's CRDs in crds/ (the module's manifests/crds) and the
# repo-server's hack/git-verify-wrapper.sh, which it runs for every manifest generation. The binary is cached under ${FERRY_CACHE:-$HOME/.cache/ferry}/argocd/<key>/, where <key> is the sha256
# of build.sh, go.mod, go.sum and the *.go files, so an unchanged source tree costs one copy instead of a
# long build. Argo CD v3.6 needs Go 1.27: the go command fetches that toolchain from the module proxy.
set -euo pipefail
export GOTOOLCHAIN=go1.27.3

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUT_PATH" >&2
    exit 2
fi
# Absolute: the build runs in this script's directory.
out=$(realpath -m -- "$1")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
start=$(date +%s)

cd "$here"
key=$(
    for f in build.sh go.mod go.sum $(LC_ALL=C ls -1 -- *.go); do
        printf '%s\n' "== $f"
        cat -- "$f"
    done | sha256sum | cut -d' ' -f1
)
cache_dir=${FERRY_CACHE:-$HOME/.cache/ferry}/argocd/$key
cached=$cache_dir/argocd

if [[ -x $cached ]]; then
    echo "argocd: using cached build $cached" >&2
else
    echo "argocd: building $cached (tens of minutes on a cold Go build cache and 2 cores)" >&2
    mkdir -p "$cache_dir"
    go mod download
    tmp=$(mktemp "$cache_dir/.argocd.XXXXXX")
    trap 'rm -f "$tmp"' EXIT
    # Static (no cgo) as upstream's release builds; the version stamped as upstream's Makefile does, so
    # the logs and the clusters' reported info are truthful.
    version=$(go list -m -f '{{.Version}}' github.com/argoproj/argo-cd/v3)
    ldflags="-s -w -X github.com/argoproj/argo-cd/v3/common.version=${version#v}"
    CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="$ldflags" -o "$tmp" .
    chmod 0755 "$tmp"
    module_dir=$(go list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v3)
    rm -rf "$cache_dir/crds"
    mkdir -p "$cache_dir/crds"
    cp -f "$module_dir"/manifests/crds/application-crd.yaml "$module_dir"/manifests/crds/appproject-crd.yaml \
        "$cache_dir/crds/"
    chmod 0644 "$cache_dir"/crds/*
    install -m 0755 "$module_dir"/hack/git-verify-wrapper.sh "$cache_dir/"
    mv -f "$tmp" "$cached"
    trap - EXIT
fi

mkdir -p "$(dirname -- "$out")"
tmp_out=$(mktemp "$(dirname -- "$out")/.argocd.XXXXXX")
cp -f "$cached" "$tmp_out"
chmod 0755 "$tmp_out"
mv -f "$tmp_out" "$out"
mkdir -p "$(dirname -- "$out")/crds"
cp -f "$cache_dir"/crds/*.yaml "$(dirname -- "$out")/crds/"
install -m 0755 "$cache_dir"/git-verify-wrapper.sh "$(dirname -- "$out")/"
echo "argocd: $out ready after $(( $(date +%s) - start ))s"
