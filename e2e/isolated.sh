#!/usr/bin/env bash
# Runs a command in a fresh network namespace where only loopback exists, so nothing it starts (control
# planes, movers, pods, tests) can reach an address outside the namespace's own loopback: a wrong address
# fails at once with "Network is unreachable" instead of leaving through the default route.
#
#   e2e/isolated.sh COMMAND [ARG...]
#
# As root: `unshare --net`; otherwise `unshare --map-root-user --net` (a user namespace, where the
# kernel allows it). Inside, `lo` is brought up, the isolation is checked (no interface but `lo`, no
# route but loopback's) and COMMAND runs with FERRY_ISOLATED=1 (and FERRY_ISOLATED_USERNS=1 when a
# user namespace was needed). From another shell, `nsenter --net=/proc/PID/ns/net CMD` (as root) or
# `nsenter --target PID --user --net --preserve-credentials CMD` runs CMD next to process PID.
# Already inside (FERRY_ISOLATED=1): checks, then runs COMMAND as it is. FERRY_ALLOW_NETWORK=1 runs
# COMMAND without isolation: UNSAFE, a test or a mover dialling a wrong address may then reach a real host.
# See docs/sandbox.md, "Network isolation".
set -euo pipefail

me=e2e/isolated.sh
fail() {
    echo "$me: $*" >&2
    exit 1
}
override="set FERRY_ALLOW_NETWORK=1 to run without isolation (unsafe: wrong addresses may reach real hosts)"

# Fails unless this network namespace has nothing but lo: no other interface, no IPv4 route in the main
# table (loopback's are in the local one), IPv6 routes only on lo and no default but the kernel's
# unreachable ::/0 (flag RTF_REJECT, 0x200).
check_isolated() {
    local interfaces=() name dest dest_len flags device
    while IFS=: read -r name _; do
        interfaces+=("${name// /}")
    done < <(tail -n +3 /proc/net/dev)
    [[ ${interfaces[*]} == lo ]] || fail "$1 has interfaces other than lo: ${interfaces[*]}"
    [[ -z $(tail -n +2 /proc/net/route) ]] || fail "$1 has IPv4 routes"
    [[ -e /proc/net/ipv6_route ]] || return 0
    while read -r dest dest_len _ _ _ _ _ _ flags device; do
        [[ $device == lo ]] || fail "$1 has an IPv6 route on $device"
        if [[ $dest =~ ^0+$ && $dest_len == 00 ]] && (((16#$flags & 0x200) == 0)); then
            fail "$1 has an IPv6 default route"
        fi
    done </proc/net/ipv6_route
}

if [[ ${1:-} == --in-namespace ]]; then
    # Second stage, inside the new namespace (see the exec at the end).
    shift
    ip link set lo up || fail "cannot bring up lo in the new network namespace; $override"
    check_isolated "the new network namespace"
    export FERRY_ISOLATED=1
    exec "$@"
fi

(($#)) || fail "usage: $me COMMAND [ARG...]"
if [[ ${FERRY_ISOLATED:-} == 1 ]]; then
    check_isolated "FERRY_ISOLATED=1 is set, but this network namespace"
    exec "$@"
fi
if [[ ${FERRY_ALLOW_NETWORK:-} == 1 ]]; then
    echo "$me: FERRY_ALLOW_NETWORK=1: running WITHOUT network isolation;" \
        "the sandbox can reach other hosts" >&2
    exec "$@"
fi

command -v unshare >/dev/null ||
    fail "unshare (util-linux) is missing, so the sandbox cannot be isolated; $override"
command -v ip >/dev/null ||
    fail "ip (iproute2) is missing, so lo cannot be brought up in a network namespace; $override"
if ((EUID == 0)); then
    flags=(--net)
else
    # Unprivileged: the namespace belongs to a new user namespace, which `nsenter` must enter too
    # (`ferry demo --keep` reads FERRY_ISOLATED_USERNS to print the right command).
    flags=(--map-root-user --net)
    export FERRY_ISOLATED_USERNS=1
fi
# A dry run first, so a refusal (no CAP_SYS_ADMIN, user namespaces disabled) gives one clear line.
if ! why=$(unshare "${flags[@]}" true 2>&1); then
    fail "cannot create a network namespace (unshare ${flags[*]}: ${why##*: }); $override"
fi
exec unshare "${flags[@]}" -- "$BASH" "$0" --in-namespace "$@"
