#!/usr/bin/env bash
# Builds the sandbox's container images as OCI image-layout tars, without Docker or a registry, for
# `ctr -n k8s.io images import` on the real nodes (docs/sandbox.md, "Real nodes"). Reproducible: the
# same inputs give the same bytes (sorted tar entries, mtime 0, owner 0:0, no atime/ctime).
#
#   e2e/images/build.sh ferry FERRY_BINARY OUT.tar NAME   the controller/mover image
#   e2e/images/build.sh pause OUT.tar NAME                  the pod sandbox image (e2e/images/pause)
#   e2e/images/build.sh app OUT.tar NAME                    busybox-static, USER 999:999, for the example app
#   e2e/images/build.sh hook OUT.tar NAME SCRIPT            busybox-static, USER 65532:65532, SCRIPT as the
#                                                           entrypoint: a MigHook's custom image (e2e tests)
#
# The ferry image has ONE definition, the Dockerfile's last stage: this script reads from it the Debian
# packages its `apt-get install` names, where its `COPY --from=build` puts the binary, its USER and its
# ENTRYPOINT, and fails when it cannot. The rootfs holds the binary at that path, the files of those
# packages as this machine (Debian bookworm) has them installed (docs and man pages left out), the
# shared libraries the binary and the packages' programs link (ldd), Debian's CA bundle when
# ca-certificates is listed, /etc/passwd and /etc/group, and /tmp.
set -euo pipefail

me=e2e/images/build.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
fail() {
    echo "$me: $*" >&2
    exit 1
}
default_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Reproducible tar of directory $1 into file $2.
repro_tar() {
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$1" -cf "$2" .
}

# A fresh rootfs in $1 with Debian's merged-/usr links, /etc, /tmp.
new_rootfs() {
    mkdir -p "$1"/usr/{bin,sbin,lib,lib64} "$1"/etc "$1"/tmp "$1"/root
    chmod 0755 "$1"
    chmod 1777 "$1/tmp"
    chmod 0700 "$1/root"
    for d in bin sbin lib lib64; do ln -s "usr/$d" "$1/$d"; done
}

# Copies file $2 (an absolute path of this machine) into rootfs $1 at the same path, keeping a symlink
# as a symlink and copying what it points to as well.
copy_in() {
    local root=$1 path=$2 real
    [[ -e $path || -L $path ]] || return 0
    real=$(readlink -f "$path")
    if [[ $real != "$path" ]]; then
        mkdir -p "$root$(dirname "$real")"
        cp -a "$real" "$root$real"
        local dir
        dir=$(readlink -f "$(dirname "$path")")
        if [[ $dir/$(basename "$path") != "$real" && ! -e $root$dir/$(basename "$path") ]]; then
            mkdir -p "$root$dir"
            ln -s "$real" "$root$dir/$(basename "$path")"
        fi
    else
        mkdir -p "$root$(dirname "$path")"
        cp -a "$path" "$root$path"
    fi
}

# Copies the shared libraries ELF file $2 links (and its interpreter) into rootfs $1.
copy_libs() {
    local lib
    # `ldd` lines: "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)".
    while read -r lib; do
        copy_in "$1" "$lib"
    done < <(ldd "$2" 2>/dev/null | sed -n -e 's/.*=> \(\/[^ ]*\) .*/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p')
}

# Writes /etc/passwd and /etc/group into rootfs $1: root, nobody, and user $2 (uid:gid) named $3.
write_users() {
    local uid=${2%%:*} gid=${2##*:}
    {
        echo "root:x:0:0:root:/root:/usr/sbin/nologin"
        [[ $uid == 0 ]] || echo "$3:x:$uid:$gid:$3:/tmp:/usr/sbin/nologin"
        echo "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"
    } >"$1/etc/passwd"
    {
        echo "root:x:0:"
        [[ $gid == 0 ]] || echo "$3:x:$gid:"
        echo "nogroup:x:65534:"
    } >"$1/etc/group"
}

# Packs rootfs $1 as a one-layer OCI image named $3 into the tar $2. $4: USER; $5: ENTRYPOINT as a
# JSON array; $6: CMD as a JSON array ("null" for none).
oci_pack() {
    local root=$1 out=$2 name=$3 user=$4 entrypoint=$5 cmd=$6
    local work
    work=$(mktemp -d)
    mkdir -p "$work/oci/blobs/sha256"
    repro_tar "$root" "$work/layer.tar"
    local layer_digest layer_size
    layer_digest=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
    layer_size=$(stat -c %s "$work/layer.tar")
    mv "$work/layer.tar" "$work/oci/blobs/sha256/$layer_digest"
    printf '{"architecture":"amd64","os":"linux","config":{"User":"%s","Env":["PATH=%s"],"Entrypoint":%s,"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"%s","created":"1970-01-01T00:00:00Z"}],"created":"1970-01-01T00:00:00Z"}' \
        "$user" "$default_path" "$entrypoint" "$cmd" "$layer_digest" "$me" >"$work/config.json"
    local config_digest config_size
    config_digest=$(sha256sum "$work/config.json" | cut -d' ' -f1)
    config_size=$(stat -c %s "$work/config.json")
    mv "$work/config.json" "$work/oci/blobs/sha256/$config_digest"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
        "$config_digest" "$config_size" "$layer_digest" "$layer_size" >"$work/manifest.json"
    local manifest_digest manifest_size
    manifest_digest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
    manifest_size=$(stat -c %s "$work/manifest.json")
    mv "$work/manifest.json" "$work/oci/blobs/sha256/$manifest_digest"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
        "$manifest_digest" "$manifest_size" "$name" "${name##*:}" >"$work/oci/index.json"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
    mkdir -p "$(dirname "$out")"
    repro_tar "$work/oci" "$out.tmp"
    mv -f "$out.tmp" "$out"
    rm -rf "$work"
    echo "$me: $name -> $out ($(du -h "$out" | cut -f1), manifest sha256:$manifest_digest)" >&2
}

# The Dockerfile's last stage, the definition of the ferry image.
dockerfile_stage() {
    awk '/^FROM /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$repo/Dockerfile" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta'
}

build_ferry() {
    local binary=$1 out=$2 name=$3 stage packages dest user entrypoint
    [[ -x $binary ]] || fail "ferry binary $binary is not executable"
    stage=$(dockerfile_stage)
    packages=$(sed -n 's/.*apt-get install -y --no-install-recommends \([^&]*\).*/\1/p' <<<"$stage" | head -1)
    dest=$(sed -n 's/^COPY --from=build [^ ]* \(\/[^ ]*\)$/\1/p' <<<"$stage" | head -1)
    user=$(sed -n 's/^USER \([0-9]*:[0-9]*\)$/\1/p' <<<"$stage" | head -1)
    entrypoint=$(sed -n 's/^ENTRYPOINT \(\[.*\]\)$/\1/p' <<<"$stage" | head -1)
    [[ -n $packages && -n $dest && -n $user && -n $entrypoint ]] ||
        fail "cannot read the packages, the binary's COPY destination, USER uid:gid and ENTRYPOINT [..] from the Dockerfile's last stage"
    local root pkg path
    root=$(mktemp -d)
    new_rootfs "$root"
    for pkg in $packages; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" ||
            fail "Debian package $pkg (the Dockerfile installs it) is not installed here: apt-get install $pkg"
        # Regular files in one tar pipe (thousands for tzdata); links one by one, with what they name.
        local files=()
        while read -r path; do
            case $path in
            /usr/share/doc/* | /usr/share/man/* | /usr/share/lintian/* | /usr/share/bug/*) continue ;;
            esac
            [[ -d $path ]] && continue # directories (and links to them, such as /lib) come with their files
            if [[ -L $path || ! -e $path ]]; then
                copy_in "$root" "$path"
                continue
            fi
            files+=("${path#/}")
            if [[ -x $path ]] && head -c4 "$path" | grep -q ELF; then
                copy_libs "$root" "$path"
            fi
        done < <(dpkg -L "$pkg")
        if ((${#files[@]})); then
            printf '%s\0' "${files[@]}" | tar -C / --null --no-recursion -T - -cf - |
                tar -C "$root" --keep-directory-symlink -xpf -
        fi
        if [[ $pkg == ca-certificates && -f /etc/ssl/certs/ca-certificates.crt ]]; then
            copy_in "$root" /etc/ssl/certs/ca-certificates.crt
        fi
    done
    mkdir -p "$root$(dirname "$dest")"
    cp "$binary" "$root$dest"
    chmod 0755 "$root$dest"
    copy_libs "$root" "$binary"
    write_users "$root" "$user" nonroot
    oci_pack "$root" "$out" "$name" "$user" "$entrypoint" null
    rm -rf "$root"
}

build_pause() {
    local out=$1 name=$2 root
    root=$(mktemp -d)
    new_rootfs "$root"
    (cd "$here/pause" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags='-s -w' -o "$root/pause" .)
    write_users "$root" 65535:65535 pause
    oci_pack "$root" "$out" "$name" 65535:65535 '["/pause"]' null
    rm -rf "$root"
}

# Debian's static busybox with its applets into rootfs $1.
busybox_rootfs() {
    local root=$1 applet
    [[ -x /bin/busybox ]] || fail "/bin/busybox is missing: apt-get install busybox-static"
    file_is_static=$(ldd /bin/busybox 2>&1 || true)
    [[ $file_is_static == *"not a dynamic executable"* ]] || fail "/bin/busybox is not static: apt-get install busybox-static"
    new_rootfs "$root"
    cp /bin/busybox "$root/usr/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [[ -e $root/usr/bin/$applet ]] || ln -s busybox "$root/usr/bin/$applet"
    done
}

build_app() {
    local out=$1 name=$2 root
    root=$(mktemp -d)
    busybox_rootfs "$root"
    write_users "$root" 999:999 app
    oci_pack "$root" "$out" "$name" 999:999 null '["/bin/sh"]'
    rm -rf "$root"
}

# A hook image as MigHooks with `custom: true` run it: its own entrypoint (the script), no CMD, so what
# it does is the image's, as with a real hook image; the Job's env (MIGRATION_*) reaches the script.
build_hook() {
    local out=$1 name=$2 script=$3 root
    [[ -f $script ]] || fail "hook script $script is missing"
    root=$(mktemp -d)
    busybox_rootfs "$root"
    install -m 0755 "$script" "$root/hook.sh"
    write_users "$root" 65532:65532 hook
    oci_pack "$root" "$out" "$name" 65532:65532 '["/bin/sh","/hook.sh"]' null
    rm -rf "$root"
}

case ${1:-} in
ferry) (($# == 4)) || fail "usage: $me ferry FERRY_BINARY OUT.tar NAME"; build_ferry "$2" "$3" "$4" ;;
pause) (($# == 3)) || fail "usage: $me pause OUT.tar NAME"; build_pause "$2" "$3" ;;
app) (($# == 3)) || fail "usage: $me app OUT.tar NAME"; build_app "$2" "$3" ;;
hook) (($# == 4)) || fail "usage: $me hook OUT.tar NAME SCRIPT"; build_hook "$2" "$3" "$4" ;;
*) fail "usage: $me ferry|pause|app|hook ..." ;;
esac
