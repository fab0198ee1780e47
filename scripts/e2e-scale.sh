#!/usr/bin/env bash
# Deployment scripts at scale, on the real kernel: 10,000 protected addresses and 200 patterns,
# IPv4 and IPv6, iptables-nft and iptables-legacy. Checks that the rules converge and drop the
# flood, that a first apply takes less than 2 s and a no-op re-run less than 1 s (median of 5;
# FIRST_MS and NOOP_MS change the limits), and prints those times and that of --delete.
# Needs root, iproute2, iptables, ipset, knot, dnsutils, dnsperf. Skips (exit 0) when not root.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
E2E_NAME=e2e-scale
# shellcheck source=scripts/e2e-netns.bash
source scripts/e2e-netns.bash

ADDRESSES=${ADDRESSES:-10000}
FIRST_MS=${FIRST_MS:-2000}
NOOP_MS=${NOOP_MS:-1000}
PATTERNS=${PATTERNS:-200}

ms_of() { # ms_of COMMAND...: runs it, prints its wall time in milliseconds
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1 || return 1
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

FIGURES=()
scale_case() { # scale_case FAMILY SERVER
    local family=$1 server=$2 dir=$TMP/scale-$BACKEND-$1 args=() i
    if [ "$family" = ipv6 ]; then
        args+=(-6 -i "$server")
        for i in $(seq 2 "$ADDRESSES"); do args+=(-i "fd60::$(printf %x "$i")"); done
    else
        args+=(-i "$server")
        for i in $(seq 2 "$ADDRESSES"); do args+=(-i "10.60.$((i / 250)).$((i % 250 + 1))"); done
    fi
    args+=(dns --)
    for i in $(seq 2 "$PATTERNS"); do args+=("*.host$i.example.org"); done
    args+=('*.www.example.net')
    local s first noop=() del rules
    s=$(gen "$dir" scale.sh "${args[@]}") || { fail "$BACKEND $family: generate"; return; }
    rules=$(sed -n 's/^TARGETS=(\(.*\))$/\1/p' "$s" | wc -w)
    first=$(ms_of run_s "$s") || { fail "$BACKEND $family: first apply"; return; }
    check "$BACKEND $family: $ADDRESSES addresses, $PATTERNS patterns in $rules rules: converged" converged "$s"
    check "$BACKEND $family: the set holds $ADDRESSES addresses" test "$(set_members "$s")" = "$ADDRESSES"
    for i in 1 2 3 4 5; do noop+=("$(ms_of run_s "$s")"); done
    check "$BACKEND $family: re-runs change nothing" converged "$s"
    local median_noop
    median_noop=$(printf '%s\n' "${noop[@]}" | median)
    check "$BACKEND $family: first apply in $first ms (< $FIRST_MS)" test "$first" -lt "$FIRST_MS"
    check "$BACKEND $family: no-op re-run in $median_noop ms (median of ${noop[*]}; < $NOOP_MS)" test "$median_noop" -lt "$NOOP_MS"
    local lost
    lost=$(flood "$server" 30)
    check "$BACKEND $family: flood dropped (lost $lost of 30)" test "$lost" = 30
    check "$BACKEND $family: legitimate query answered" answered "$server" mail.example.net
    del=$(ms_of run_s "$s" --delete)
    check "$BACKEND $family: --delete leaves nothing" nothing_of "$s"
    FIGURES+=("$(printf '%-8s %-5s %6s rules  first apply %6s ms  no-op re-run %5s ms (median of 5: %s)  --delete %6s ms' \
        "$BACKEND" "$family" "$rules" "$first" "$median_noop" "${noop[*]}" "$del")")
}

for backend in nft legacy; do
    net_up "$backend"
    scale_case ipv4 10.53.1.2
    scale_case ipv6 fd53:1::2
    net_down
done
echo "$E2E_NAME: $ADDRESSES addresses, $PATTERNS patterns:"
printf '  %s\n' "${FIGURES[@]}"
summary
