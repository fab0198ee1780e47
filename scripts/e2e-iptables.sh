#!/usr/bin/env bash
# End-to-end test of iptables-bpf on the real kernel: two network namespaces joined by a veth
# pair, a real DNS server (Knot) in one, real clients (dig, dnsperf) in the other, IPv4 and IPv6.
# Needs root, iproute2, iptables, ipset, knot, dnsutils, dnsperf. Skips (exit 0) when not root,
# except with CI=true (exit 1: CI runs every test).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

if [ "$(id -u)" != 0 ] && [ "${CI:-}" = true ]; then
    echo "e2e-iptables: FAIL: needs root (network namespaces, iptables); CI runs every test" >&2
    exit 1
fi
E2E_NAME=e2e-iptables
# The namespaces, the DNS server, pass/fail/check, srv/cli, answered, flood, summary.
# shellcheck source=scripts/e2e-netns.bash
source scripts/e2e-netns.bash
for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || { echo "e2e-iptables: FAIL: $tool is not installed"; exit 1; }
done
MARKER=$TMP/pwned

# --- the network: cli (10.53.1.1, fd53:1::1) <-> srv (10.53.1.2, fd53:1::2), Knot serving
# example.net; the scripts run with their default iptables and ip6tables commands
net_up "$(iptables -V | grep -q nf_tables && echo nft || echo legacy)"

# --- helpers
# dropped_by COMMAND: total packets counted by the INPUT rules that use the bpf match
# (directly or through a jump to a chain)
bpf_packets() {
    srv "$1" -w -L INPUT -v -x -n | awk 'NR > 2 && /match-set/ { sum += $1 } END { print sum + 0 }'
}
rules_with() { srv "$1"-save | grep -c -- "$2"; }
sets_named() { srv ipset list -n | grep -c "^bpf"; }

# run_case FAMILY SERVER IPTABLES SCRIPT_ARGS...: apply twice, flood, legit, delete, flood again
run_case() {
    local family=$1 server=$2 ipt=$3
    shift 3
    # Cases named *-detect run without DEFAULTINT: the rules are on every interface.
    local envs=(DEFAULTINT=v-srv)
    [[ $family == *detect* ]] && envs=()
    local dir=$TMP/$family-$RANDOM
    mkdir -p "$dir"
    local generated
    generated=$(cd "$dir" && "$BIN/iptables-bpf" "$@") || { fail "$family: iptables-bpf $*"; return; }
    local script=$dir/${generated#Generated file \'}
    script=${script%\'}
    check "$family: script written with mode 0750 ($*)" test "$(stat -c %a "$script")" = 750
    check "$family: script applies" env "${envs[@]+"${envs[@]}"}" ip netns exec "$SRV" "$script"
    check "$family: second run is idempotent" env "${envs[@]+"${envs[@]}"}" ip netns exec "$SRV" "$script"
    if [[ $family == *detect* ]]; then
        check "$family: without DEFAULTINT the rule is on every interface" test "$(rules_with "$ipt" ' -i ')" = 0
    else
        check "$family: the rule is on the input interface" test "$(rules_with "$ipt" '-i v-srv')" -ge 1
    fi
    check "$family: exactly one ipset" test "$(sets_named)" = 1
    local before lost after
    before=$(bpf_packets "$ipt")
    lost=$(flood "$server" 50)
    after=$(bpf_packets "$ipt")
    check "$family: 50 flood queries unanswered (lost $lost)" test "$lost" = 50
    check "$family: iptables counted the 50 flood queries ($((after - before)))" test $((after - before)) = 50
    check "$family: legitimate query answered" answered "$server" www.example.net
    check "$family: --delete" env "${envs[@]+"${envs[@]}"}" ip netns exec "$SRV" "$script" --delete
    check "$family: no bpf rule left" test "$(rules_with "$ipt" 'bpf')" = 0
    check "$family: no match-set rule left" test "$(rules_with "$ipt" 'match-set')" = 0
    check "$family: no ipset left" test "$(sets_named)" = 0
    lost=$(flood "$server" 20)
    check "$family: flood answered again after --delete (lost $lost)" test "$lost" = 0
}

# --- IPv4 and IPv6, one pattern
run_case ipv4 10.53.1.2 iptables -i 10.53.1.2 dns -- '*.www.example.net'
run_case ipv6 fd53:1::2 ip6tables -6 -i fd53:1::2 dns -- '*.www.example.net'
run_case ipv4-detect 10.53.1.2 iptables -i 10.53.1.2 dns -- '*.www.example.net'
run_case ipv6-detect fd53:1::2 ip6tables -6 -i fd53:1::2 dns -- '*.www.example.net'

# --- addresses added later: the script given an address, then a script regenerated into the
# same file with one more -i: same deployment, same set, still one rule
run_add_later() {
    local dir=$TMP/later
    mkdir -p "$dir"
    (cd "$dir" && "$BIN/iptables-bpf" -i 10.53.1.2 -w guard.sh dns -- '*.www.example.net' >/dev/null) ||
        { fail "add later: generate"; return; }
    local set
    set=$(sed -n 's/^SET=//p' "$dir/guard.sh")
    check "add later: first version applies" env DEFAULTINT=v-srv ip netns exec "$SRV" "$dir/guard.sh"
    check "add later: ./SCRIPT ADDRESS adds it" env DEFAULTINT=v-srv ip netns exec "$SRV" "$dir/guard.sh" 10.53.1.77
    (cd "$dir" && "$BIN/iptables-bpf" --force -i 10.53.1.2 -i 10.53.1.99 -w guard.sh dns -- '*.www.example.net' >/dev/null) ||
        { fail "add later: regenerate"; return; }
    check "add later: same set name" test "$set" = "$(sed -n 's/^SET=//p' "$dir/guard.sh")"
    check "add later: second version applies" env DEFAULTINT=v-srv ip netns exec "$SRV" "$dir/guard.sh"
    check "add later: the set holds the three addresses" test "$(srv ipset list "$set" | grep -c '^10\.53\.1\.')" = 3
    check "add later: still one rule" test "$(rules_with iptables 'bpf')" = 1
    check "add later: --delete" env DEFAULTINT=v-srv ip netns exec "$SRV" "$dir/guard.sh" --delete
    check "add later: nothing left" test "$(rules_with iptables 'bpf')" = 0 -a "$(sets_named)" = 0
}
run_add_later

# --- environment overrides are checked before anything is applied
run_env_checks() {
    local dir=$TMP/env
    mkdir -p "$dir"
    "$BIN/iptables-bpf" -i 10.53.1.2 -w "$dir/s.sh" dns -- '*.www.example.net' >/dev/null ||
        { fail "env: generate"; return; }
    check "env: DEFAULTINT with a quote is refused" \
        bash -c "! env DEFAULTINT='v-srv\" -j ACCEPT' ip netns exec $SRV $dir/s.sh 2>$dir/err"
    check "env: ... with a clear message" grep -q "is not an interface name" "$dir/err"
    check "env: INPUTPLACE that is not a position is refused" \
        bash -c "! env DEFAULTINT=v-srv INPUTPLACE='1 -j ACCEPT' ip netns exec $SRV $dir/s.sh 2>$dir/err"
    check "env: ... with a clear message" grep -q "is not a rule position" "$dir/err"
    check "env: nothing was applied" test "$(rules_with iptables 'bpf')" = 0 -a "$(sets_named)" = 0
}
run_env_checks

# --- bytecode text at iptables-restore's limit: 1023 characters load, 1024 do not
run_restore_limit() {
    local dir=$TMP/limit base
    mkdir -p "$dir"
    base=$(for i in $(seq 0 18); do
        printf 'ip[%d:4] & %d = %d or ' $((60000 + 4 * i)) $((4000000000 + i)) $((4000000000 + i))
    done)
    local at_limit="${base}ip[60:4] & 4000000000 = 40000000"
    local over="${base}ip[600:4] & 4000000000 = 40000000"
    local text
    text=$("$BIN/bpfgen" tcpdump -- "$at_limit" | tr -d '\n')
    check "limit: the test program is 1023 characters (${#text})" test "${#text}" = 1023
    text=$("$BIN/bpfgen" tcpdump -- "$over" | tr -d '\n')
    check "limit: the longer one is 1024 characters (${#text})" test "${#text}" = 1024
    check "limit: iptables-restore refuses 1024 characters (Parameter too long)" bash -c \
        "printf '*filter\n-A INPUT -m bpf --bytecode \"%s\" -j DROP\nCOMMIT\n' '$text' | ip netns exec $SRV iptables-restore --test 2>&1 | grep -q 'Parameter too long'"
    check "limit: iptables-bpf refuses it too" bash -c \
        "! '$BIN/iptables-bpf' -w '$dir/over.sh' tcpdump -- '$over' 2>/dev/null && test ! -e '$dir/over.sh'"
    "$BIN/iptables-bpf" -i 10.53.1.2 -w "$dir/at.sh" tcpdump -- "$at_limit" >/dev/null ||
        { fail "limit: generate at the limit"; return; }
    check "limit: a 1023-character rule applies" env DEFAULTINT=v-srv ip netns exec "$SRV" "$dir/at.sh"
    check "limit: the rule is there" test "$(rules_with iptables 'bpf')" = 1
    check "limit: --delete" env DEFAULTINT=v-srv ip netns exec "$SRV" "$dir/at.sh" --delete
    check "limit: nothing left" test "$(rules_with iptables 'bpf')" = 0 -a "$(sets_named)" = 0
}
run_restore_limit

# --- the 64-instruction split: many patterns, several rules, same packets dropped
many=()
for i in $(seq 1 9); do many+=("*.host$i.example.org"); done
many+=('*.www.example.net')
run_case ipv4-split 10.53.1.2 iptables -i 10.53.1.2 dns -- "${many[@]}"
split_rules=$(cd "$TMP" && "$BIN/iptables-bpf" -w - dns -- "${many[@]}" | grep -c "^    '[0-9]")
check "split: the patterns need $split_rules rules (more than one)" test "$split_rules" -gt 1
# IPv6 with 17 patterns: one program for all cannot even encode its jumps; split all the same.
many6=()
for i in $(seq 1 16); do many6+=("*.host$i.example.org"); done
many6+=('*.www.example.net')
run_case ipv6-split fd53:1::2 ip6tables -6 -i fd53:1::2 dns -- "${many6[@]}"

# --- negated split: drop everything except the listed names (chain of RETURNs, then DROP)
run_negated() {
    local dir=$TMP/negated
    mkdir -p "$dir"
    local keep=(www.example.net mail.example.net ns.example.net)
    for i in $(seq 1 9); do keep+=("host$i.example.org"); done
    (cd "$dir" && "$BIN/iptables-bpf" -n -i 10.53.1.2 -w negated.sh dns -- "${keep[@]}") >/dev/null || { fail "negated: generate"; return; }
    check "negated: applies" env DEFAULTINT=v-srv ip netns exec "$SRV" "$dir/negated.sh"
    check "negated: uses a chain of several RETURN rules" test "$(rules_with iptables '-j RETURN')" -gt 1
    check "negated: listed name answered" answered 10.53.1.2 www.example.net
    check "negated: listed name answered (last group)" answered 10.53.1.2 host9.example.org
    local lost
    lost=$(flood 10.53.1.2 30)
    check "negated: other names dropped (lost $lost)" test "$lost" = 30
    check "negated: --delete" env DEFAULTINT=v-srv ip netns exec "$SRV" "$dir/negated.sh" --delete
    check "negated: nothing left" test "$(rules_with iptables 'bpf')" = 0 -a "$(sets_named)" = 0
}
run_negated

# --- chain mode
run_chain() {
    local dir=$TMP/chain
    mkdir -p "$dir"
    (cd "$dir" && "$BIN/iptables-bpf" -i 10.53.1.2 -w chain.sh --chain DNSGUARD --accept www.example.net --drop '*.www.example.net' any) >/dev/null ||
        { fail "chain: generate"; return; }
    check "chain: applies" env DEFAULTINT=v-srv ip netns exec "$SRV" "$dir/chain.sh"
    check "chain: idempotent" env DEFAULTINT=v-srv ip netns exec "$SRV" "$dir/chain.sh"
    check "chain: one jump to the deployment's chain" test "$(rules_with iptables '-j bpf_dnsguard_')" = 1
    check "chain: accepted name answered" answered 10.53.1.2 www.example.net
    local lost
    lost=$(flood 10.53.1.2 30)
    check "chain: flood dropped (lost $lost)" test "$lost" = 30
    check "chain: --delete" env DEFAULTINT=v-srv ip netns exec "$SRV" "$dir/chain.sh" --delete
    check "chain: nothing left" test "$(srv iptables-save | grep -ci dnsguard)" = 0 -a "$(sets_named)" = 0
}
run_chain

# --- hostile input: nothing may run
run_hostile() {
    local dir=$TMP/hostile
    mkdir -p "$dir"
    local evil=("\$(touch $MARKER)" "\`touch $MARKER\`" "a'b\"c" $'x\ny.example.net' 'a;touch;b' "\$(touch${IFS}$MARKER).www.example.net")
    local pattern generated
    for pattern in "${evil[@]}"; do
        generated=$(cd "$dir" && "$BIN/iptables-bpf" -i 10.53.1.2 --force -w evil.sh dns -- "$pattern" 2>&1) || continue
        if shellcheck -V >/dev/null 2>&1; then
            check "hostile: shellcheck clean for $(printf %q "$pattern")" shellcheck "$dir/evil.sh"
        fi
        env DEFAULTINT=v-srv ip netns exec "$SRV" "$dir/evil.sh" >/dev/null 2>&1
        env DEFAULTINT=v-srv ip netns exec "$SRV" "$dir/evil.sh" --delete >/dev/null 2>&1
    done
    for comment in "\$(touch $MARKER)" "\`touch $MARKER\`" "it's" $'two\nlines' 'a;b'; do
        if (cd "$dir" && "$BIN/iptables-bpf" --force -w evil.sh -c "$comment" dns -- x.example.net) >/dev/null 2>&1; then
            fail "hostile comment accepted: $(printf %q "$comment")"
        else
            pass "hostile comment refused: $(printf %q "$comment")"
        fi
    done
    check "hostile: no command ran (no marker file)" test ! -e "$MARKER"
    check "hostile: nothing left behind" test "$(rules_with iptables 'bpf')" = 0 -a "$(sets_named)" = 0
}
run_hostile

summary
