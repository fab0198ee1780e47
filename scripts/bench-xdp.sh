#!/usr/bin/env bash
# The XDP mitigation against today's iptables + xt_bpf deployment, live: the flood rate at
# which a DNS server still answers at least 99% of legitimate queries, with no filter, with
# the 200-pattern deployment `iptables-bpf` writes (its script, applied with iptables-nft),
# and with the native XDP matcher dropping the same 200 patterns, in one run.
#
# Set-up (scripts/e2e-netns.bash): a client and a server namespace joined by a veth pair, Knot
# serving example.net on 10.53.1.2. The server's end of the veth is made to receive as a NIC
# does: frames go through its ring (veth's NAPI mode: GRO and UDP GRO forwarding on, so that
# every frame takes it; 256 frames), which a NAPI thread of the server empties, running XDP
# and the whole receive path after it (iptables included); that thread runs at real-time
# priority (SCHED_FIFO 50, as softirq work preempts processes) and, with Knot, on the server's
# CPU (SERVER_CPU, 1); the clients run on the other (CLIENT_CPU, 0). A frame that finds the
# ring full is dropped, legitimate ones with the flood, and Knot gets the CPU the receive path
# leaves. (Without this, veth hands each frame to the stack on the sender's CPU, and a slow
# filter slows the sender instead of losing queries.)
#
# Each step: `dnsperf` sends legitimate queries (www, mail, ns, the apex's SOA) at LEGIT_RATE
# (200/s, timeout 1 s) for STEP_SECONDS (3), while `examples/dns_flood.rs` sends
# queries for random names under www.example.net (matched by the last of the 200 patterns) at
# the step's rate (`max`: as fast as one client CPU sends; dnsperf cannot flood a filter that
# drops everything: it waits for each query until its timeout). Printed per step: the flood rate
# sent, the legitimate queries answered, the server CPU's busy share, frames dropped at the
# ring, flood queries answered (0 when the filter drops them all). A set-up's steps stop after
# two in a row below 99%. Its found rate is the flood rate of the last step before the first
# one below 99% (`>=` the highest sent when none is).
#
# Each deployment is one function pair (iptables_apply / iptables_remove, xdp_apply /
# xdp_remove): the iptables side runs the script `iptables-bpf -i 10.53.1.2 dns -- -i P...`
# writes, the XDP side `xdp-bpf apply --native --dev v-srv -a 10.53.1.2 --drop P...` (names
# ignore case on both), run with nsenter (the host's bpffs, where xdp-bpf pins).
#
# Needs root, iproute2, iptables, ipset, knot, dnsutils, dnsperf, ethtool, util-linux (taskset,
# chrt), and 2 CPUs. Exits 2 when not root. Environment: RATES (the steps), STEP_SECONDS,
# LEGIT_RATE, SERVER_CPU, CLIENT_CPU, BPFTOOLS_BIN (as for the e2e scripts), DNS_FLOOD (a
# built examples/dns_flood).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
if [ "$(id -u)" != 0 ]; then
    echo "bench-xdp: needs root (network namespaces, iptables, XDP)" >&2
    exit 2
fi
for tool in ethtool taskset chrt; do
    command -v "$tool" >/dev/null || { echo "bench-xdp: $tool is not installed" >&2; exit 2; }
done
E2E_NAME=bench-xdp
E2E_NS=${E2E_NS:-bpfbx}
# shellcheck source=scripts/e2e-netns.bash
source scripts/e2e-netns.bash

RATES=${RATES:-"0 10000 14000 20000 28000 40000 56000 80000 113000 160000 226000 320000 max"}
STEP_SECONDS=${STEP_SECONDS:-3}
LEGIT_RATE=${LEGIT_RATE:-200}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
SERVER=10.53.1.2
DEV=v-srv

# The 200 patterns of scripts/e2e-scale.sh: the flood's comes last.
PATTERNS=()
for i in $(seq 2 200); do PATTERNS+=("*.host$i.example.org"); done
PATTERNS+=('*.www.example.net')

# The flood's sender.
if [ -n "${DNS_FLOOD:-}" ]; then
    FLOOD=$DNS_FLOOD
else
    cargo build --release --quiet --example dns_flood || exit 2
    # shellcheck source=scripts/release-dir.bash
    . scripts/release-dir.bash
    FLOOD=$(release_dir)/examples/dns_flood || exit 2
fi
# xdp-bpf's state (rule lists, lock) and pins are this run's own, removed at the end whatever
# happens.
export BPFTOOLS_XDP_STATE=$TMP/xdp-state
export BPFTOOLS_XDP_PINS=/sys/fs/bpf/bench-xdp-$$
cleanup() {
    [ -n "$SRV" ] && [ -e "/run/netns/$SRV" ] && xdp_remove >/dev/null 2>&1
    rm -rf "$BPFTOOLS_XDP_PINS"
    finish
}
trap cleanup EXIT

# srvn COMMAND...: in the server's network namespace only (nsenter keeps the host's /sys and
# bpffs, where pins made by xdp-bpf must live).
srvn() { nsenter --net="/run/netns/$SRV" "$@"; }

# --- The XDP deployment.
xdp_apply() {
    local args=() p
    for p in "${PATTERNS[@]}"; do args+=("--drop=$p"); done
    srvn "$BIN/xdp-bpf" apply --quiet --native --dev "$DEV" --deployment bench-xdp \
        -a "$SERVER" "${args[@]}"
}
xdp_remove() { srvn "$BIN/xdp-bpf" delete --dev "$DEV" --deployment bench-xdp >/dev/null; }
xdp_status() { srvn "$BIN/xdp-bpf" status --dev "$DEV" --deployment bench-xdp >/dev/null; }
xdp_attached() { srv ip link show "$DEV" | grep -q 'xdp'; }
# xdp_counted: the flood's rule (the last) counted packets (xdp-bpf status's counters)
xdp_counted() {
    srvn "$BIN/xdp-bpf" status --dev "$DEV" --deployment bench-xdp |
        awk -v rule="drop ${PATTERNS[-1]}" 'index($0, rule) && $2 > 0 { found = 1 } END { exit !found }'
}

# --- Today's deployment: the script iptables-bpf writes.
GUARD=
iptables_apply() {
    GUARD=$(gen "$TMP/guard" guard.sh -i "$SERVER" dns -- -i "${PATTERNS[@]}") || return 1
    run_s "$GUARD" >/dev/null
}
iptables_remove() { run_s "$GUARD" --delete >/dev/null; }

# --- The server's receive path on its own CPU.
NAPI_BEFORE=
NAPI_PIDS=
napi_threads() { ps -eo pid=,comm= | awk -v dev="napi/$DEV-" 'index($2, dev) == 1 { print $1 }'; }
server_setup() {
    NAPI_BEFORE=$(napi_threads | tr '\n' ' ')
    srv ethtool -K "$DEV" gro on rx-udp-gro-forwarding on >/dev/null || return 1
    srv sh -c "echo 1 > /sys/class/net/$DEV/threaded" || return 1
    pin_server
}
# pin_server: Knot and the server end's NAPI threads (the ones this run made) on SERVER_CPU,
# the NAPI threads at SCHED_FIFO 50.
pin_server() {
    local pid pinned=0
    NAPI_PIDS=
    for pid in $(ip netns pids "$SRV"); do
        taskset -a -p -c "$SERVER_CPU" "$pid" >/dev/null || return 1
    done
    for pid in $(napi_threads); do
        case " $NAPI_BEFORE " in *" $pid "*) continue ;; esac
        taskset -p -c "$SERVER_CPU" "$pid" >/dev/null && chrt -f -p 50 "$pid" || return 1
        pinned=$((pinned + 1))
        NAPI_PIDS="$NAPI_PIDS $pid"
    done
    [ "$pinned" -gt 0 ] || { echo "bench-xdp: no NAPI thread of $DEV found" >&2; return 1; }
}

# napi_ns: nanoseconds the server end's NAPI threads have run (the receive path: XDP, the
# stack, iptables), from their schedstat
napi_ns() {
    local pid total=0 ns
    for pid in $NAPI_PIDS; do
        read -r ns _ <"/proc/$pid/schedstat" || return 1
        total=$((total + ns))
    done
    echo "$total"
}
# Frames the client's end could not put in the server end's ring.
ring_drops() { cli cat /sys/class/net/v-cli/statistics/tx_dropped; }

LEGIT_FILE=$TMP/legit.txt
printf '%s\n' 'www.example.net A' 'mail.example.net A' 'ns.example.net A' 'example.net SOA' >"$LEGIT_FILE"

ROWS=()
FOUND=()
# measure SETUP: the steps of RATES, one row each; the found rate into FOUND
measure() {
    local setup=$1 rate flood_rate out legit_pid n0 n1 s0 s1 d0 d1 sent completed pct reached
    local answered flood_sent napi_pct per_frame found="" found_frame=- failed=false below=0
    local highest=0 highest_frame=-
    out=$TMP/step
    for rate in $RATES; do
        [ "$below" -ge 2 ] && break
        [ "$rate" = max ] && flood_rate=0 || flood_rate=$rate
        cli taskset -c "$CLIENT_CPU" dnsperf -s "$SERVER" -d "$LEGIT_FILE" -l "$STEP_SECONDS" \
            -Q "$LEGIT_RATE" -c 1 -q $((LEGIT_RATE * 2 + 10)) -t 1 >"$out.legit" 2>&1 &
        legit_pid=$!
        n0=$(napi_ns)
        s0=$(date +%s%N)
        d0=$(ring_drops)
        if [ "$rate" = 0 ]; then
            sleep "$STEP_SECONDS"
            echo "sent=0 seconds=$STEP_SECONDS rate=0 answered=0 blocked=0 errors=0" >"$out.flood"
        else
            cli taskset -c "$CLIENT_CPU" "$FLOOD" "$SERVER" --rate "$flood_rate" \
                --seconds "$STEP_SECONDS" --zone www.example.net >"$out.flood" 2>&1
        fi
        n1=$(napi_ns)
        s1=$(date +%s%N)
        d1=$(ring_drops)
        wait_bounded "$legit_pid" 60
        sent=$(awk '/Queries sent:/ { print $3 }' "$out.legit")
        completed=$(awk '/Queries completed:/ { print $3 }' "$out.legit")
        reached=$(sed -n 's/.* rate=\([0-9]*\) .*/\1/p' "$out.flood")
        answered=$(sed -n 's/.* answered=\([0-9]*\) .*/\1/p' "$out.flood")
        flood_sent=$(sed -n 's/^sent=\([0-9]*\) .*/\1/p' "$out.flood")
        if [ -z "$sent" ] || [ -z "$completed" ] || [ -z "$reached" ] || [ "$sent" = 0 ]; then
            fail "$setup at $rate: no figures (dnsperf: $(tr '\n' ' ' <"$out.legit" | cut -c1-200); flood: $(cut -c1-200 "$out.flood"))"
            continue
        fi
        pct=$(awk -v c="$completed" -v s="$sent" 'BEGIN { printf "%.2f", 100 * c / s }')
        # The receive path's CPU: its share of the step, and per flood frame it took in.
        napi_pct=$(awk -v n=$((n1 - n0)) -v t=$((s1 - s0)) 'BEGIN { printf "%.0f", 100 * n / t }')
        per_frame=$(awk -v n=$((n1 - n0)) -v f=$((flood_sent - (d1 - d0))) 'BEGIN { if (f > 0) printf "%.2f", n / f / 1000; else printf "-" }')
        ROWS+=("$(printf '%-9s %8s %9s %9s %8s%% %6s%% %8s %10s %10s' "$setup" "$rate" "$reached" \
            "$completed/$sent" "$pct" "$napi_pct" "$per_frame" $((d1 - d0)) "$answered")")
        echo "$E2E_NAME: ${ROWS[-1]}"
        if awk -v p="$pct" 'BEGIN { exit !(p >= 99) }'; then
            below=0
            if ! $failed; then
                found=$reached
                found_frame=$per_frame
                if [ "$reached" -gt "$highest" ]; then
                    highest=$reached
                    highest_frame=$per_frame
                fi
            fi
        else
            below=$((below + 1))
            failed=true
        fi
    done
    if $failed; then
        FOUND+=("$setup ${found:-0} exact $found_frame")
    else
        FOUND+=("$setup $highest lower $highest_frame")
    fi
}

net_up nft
check "server end in threaded NAPI mode, Knot and NAPI on CPU $SERVER_CPU" server_setup
check "a legitimate query is answered" answered "$SERVER" www.example.net

# 1. No filter.
lost=$(flood "$SERVER" 30)
check "no filter: the flood is answered (lost $lost of 30)" test "$lost" = 0
measure none

# 2. Today's deployment.
check "iptables-bpf: 200 patterns applied" iptables_apply
check "iptables-bpf: converged ($(sed -n 's/^TARGETS=(\(.*\))$/\1/p' "$GUARD" | wc -w) rules)" converged "$GUARD"
lost=$(flood "$SERVER" 30)
check "iptables-bpf: the flood is dropped (lost $lost of 30)" test "$lost" = 30
check "iptables-bpf: a legitimate query is answered" answered "$SERVER" www.example.net
measure iptables
check "iptables-bpf: the rules counted the flood ($(counted "$GUARD") packets)" test "$(counted "$GUARD")" -gt 0
check "iptables-bpf: --delete leaves nothing" iptables_remove
check "iptables-bpf: nothing left" nothing_of "$GUARD"

# 3. The XDP matcher.
check "xdp-bpf: 200 patterns applied natively on $DEV" xdp_apply
check "xdp-bpf: attached, status whole" xdp_status
check "xdp: attached" xdp_attached
check "xdp: NAPI threads pinned again" pin_server
lost=$(flood "$SERVER" 30)
check "xdp: the flood is dropped (lost $lost of 30)" test "$lost" = 30
check "xdp: a legitimate query is answered" answered "$SERVER" www.example.net
xdp_drops0=$(srv ethtool -S "$DEV" | awk '/rx_queue_0_xdp_drops:/ { print $2 }')
measure xdp
xdp_drops1=$(srv ethtool -S "$DEV" | awk '/rx_queue_0_xdp_drops:/ { print $2 }')
check "xdp: the program dropped the flood ($((xdp_drops1 - xdp_drops0)) frames)" test $((xdp_drops1 - xdp_drops0)) -gt 0
check "xdp-bpf: the last rule counted the flood" xdp_counted
check "xdp-bpf: delete" xdp_remove
check "xdp: nothing attached" not xdp_attached
check "xdp-bpf: no pin left" test -z "$(find "$BPFTOOLS_XDP_PINS" -type f 2>/dev/null)"
net_down

echo
echo "$E2E_NAME: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$E2E_NAME: legitimate queries at $LEGIT_RATE/s, flood under www.example.net (the last of 200 patterns), $STEP_SECONDS s per step"
printf '%-9s %8s %9s %19s %7s %8s %10s %10s\n' setup "asked/s" "flood/s" "legitimate answered" "rx CPU" "us/frame" "ring drops" "flood ans"
printf '%s\n' "${ROWS[@]}"
echo
declare -A rate_of kind_of frame_of
for line in "${FOUND[@]}"; do
    read -r setup rate kind frame <<<"$line"
    rate_of[$setup]=$rate
    kind_of[$setup]=$kind
    frame_of[$setup]=$frame
    if [ "$kind" = lower ]; then
        echo "$E2E_NAME: $setup: legitimate queries answered >= 99% up to the highest flood sent, ${rate}/s (a lower bound); receive path ${frame} us per flood frame there"
    else
        echo "$E2E_NAME: $setup: legitimate queries answered >= 99% up to a flood of ${rate}/s; receive path ${frame} us per flood frame there"
    fi
done
if [ -n "${rate_of[iptables]:-}" ] && [ -n "${rate_of[xdp]:-}" ] && [ "${rate_of[iptables]}" -gt 0 ]; then
    factor=$(awk -v x="${rate_of[xdp]}" -v i="${rate_of[iptables]}" 'BEGIN { printf "%.1f", x / i }')
    bound=""
    [ "${kind_of[xdp]}" = lower ] && bound=">= "
    echo "$E2E_NAME: XDP / iptables + xt_bpf: ${bound}${factor}x the flood rate with >= 99% of legitimate queries answered"
    awk -v x="${frame_of[xdp]}" -v i="${frame_of[iptables]}" -v name="$E2E_NAME" \
        'BEGIN { if (x > 0 && i > 0) printf "%s: receive-path CPU per flood frame, iptables + xt_bpf / XDP: %.1fx\n", name, i / x }'
fi
summary
