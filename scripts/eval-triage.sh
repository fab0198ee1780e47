#!/usr/bin/env bash
# Evaluates triage against per-packet truth: for each DIR/NAME.pcap (or NAME.pcap.gz) with
# DIR/NAME.truth.tsv(.gz) (a header line, then "packet<TAB>label[<TAB>dir]" per packet, label
# "legit" or "flood:ID", dir "q" for a query to the server, "r" for a response), runs
# 'triage --json' on the whole capture (queries and responses: the responses are evidence),
# with the options in DIR/NAME.args when that file exists (e.g. "--zone example.net.zone",
# relative to DIR), builds every suggested rule with 'bpfgen -o 14', applies the rules in order
# (the first match decides, no match passes) and prints, per capture, the share of each flood
# and of legitimate queries dropped. Only queries count (rows with dir "q", or every row when
# the truth has no dir column): responses never meet an input rule.
#
# The evaluation does not use triage's counts: each rule's program is run by 'filter' on the
# packets still undecided, as iptables would apply it: a rule sees UDP packets to port 53 of
# its family only ('-6' rules IPv6, the others IPv4; read here from the Ethernet frames that
# pcap2hex writes, IPv6 without extension headers). Packets are matched back to their labels
# by their bytes (pcap2hex's hex line).
#
# Pass: every flood >= 99% dropped; legitimate queries <= 0.5% dropped (LEGIT_MAX, percent);
# no drop rule at all and exit 1 when the capture has no flood; triage's reported bound
# (outcome.legit_dropped_share) not below the true share; every deploy command generates
# (deploy_checks empty); every destination of each flood's queries named with -i in a deploy
# command of its family. Exit status 0 when every capture passes, 1 otherwise, 2 on error.
set -euo pipefail
if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 DIR   (DIR holds NAME.pcap[.gz] and NAME.truth.tsv[.gz])" >&2
    exit 2
fi
dir=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
legit_max=${LEGIT_MAX:-0.5}
if [ -z "${BPFTOOLS_BIN:-}" ]; then
    cargo build --release --quiet --bin triage --bin bpfgen --bin filter --bin pcap2hex --bin hex2pcap
    # shellcheck source=scripts/release-dir.bash
    . scripts/release-dir.bash
    bin=$(release_dir)
else
    bin=$(cd "$BPFTOOLS_BIN" && pwd)
fi
command -v jq >/dev/null || { echo "eval-triage: jq is needed (apt-get install jq)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

expand6() { # an IPv6 address as 32 hex digits
    local addr=$1 head tail groups=() out="" g n i
    if [[ $addr == *::* ]]; then head=${addr%%::*}; tail=${addr#*::}; else head=$addr; tail=""; fi
    local -a h t
    IFS=: read -r -a h <<< "$head"
    IFS=: read -r -a t <<< "$tail"
    [[ $addr == *::* ]] || t=()
    n=$((8 - ${#h[@]} - ${#t[@]}))
    groups=("${h[@]}")
    for ((i = 0; i < n; i++)); do groups+=(0); done
    groups+=("${t[@]}")
    for g in "${groups[@]}"; do out+=$(printf '%04x' "0x${g:-0}"); done
    echo "$out"
}

plain() { # FILE OUT: FILE, gunzipped when it is gzip'ed
    if [ "$(head -c 2 "$1" | od -An -tx1 | tr -d ' ')" = 1f8b ]; then gzip -dc "$1" > "$2"; else cp "$1" "$2"; fi
}

failed=0
found=0
for pcap in "$dir"/*.pcap "$dir"/*.pcap.gz; do
    [ -e "$pcap" ] || continue
    name=$(basename "$pcap"); name=${name%.gz}; name=${name%.pcap}
    truth="$dir/$name.truth.tsv"
    [ -f "$truth" ] || truth="$truth.gz"
    [ -f "$truth" ] || continue
    found=$((found + 1))
    plain "$pcap" "$work/capture.pcap"
    plain "$truth" "$work/truth.tsv"
    args=()
    if [ -f "$dir/$name.args" ]; then
        read -r -a args < "$dir/$name.args"
    fi
    rc=0
    (cd "$dir" && "$bin/triage" --json "${args[@]}" "$work/capture.pcap") > "$work/triage.json" || rc=$?
    if [ "$rc" -gt 1 ]; then
        echo "$name: triage failed (exit $rc)"
        failed=1
        continue
    fi
    # label <TAB> family (4, 6, or - when no rule applies) <TAB> is-query <TAB> dst <TAB> hex.
    "$bin/pcap2hex" "$work/capture.pcap" > "$work/all.hex"
    tail -n +2 "$work/truth.tsv" | awk -F'\t' '{ print $2 "\t" (NF >= 3 ? $3 : "q") }' \
        | paste - "$work/all.hex" | awk -F'\t' '
        function nibble(c) { return index("0123456789abcdef", tolower(c)) - 1 }
        function byte(h, i) { return nibble(substr(h, 2 * i + 1, 1)) * 16 + nibble(substr(h, 2 * i + 2, 1)) }
        {
            hex = $3; fam = "-"; dst = "-"
            type = substr(hex, 25, 4)
            if (type == "0800" && byte(hex, 23) == 17) {
                ihl = (byte(hex, 14) % 16) * 4
                frag = (byte(hex, 20) % 32) * 256 + byte(hex, 21)
                if (frag == 0 && byte(hex, 14 + ihl + 2) * 256 + byte(hex, 14 + ihl + 3) == 53) fam = "4"
                dst = byte(hex, 30) "." byte(hex, 31) "." byte(hex, 32) "." byte(hex, 33)
            } else if (type == "86dd" && byte(hex, 20) == 17) {
                if (byte(hex, 56) * 256 + byte(hex, 57) == 53) fam = "6"
                dst = substr(hex, 77, 32)
            }
            print $1 "\t" fam "\t" $2 "\t" dst "\t" hex
        }' > "$work/state.tsv"
    # Each line gains a decision column: "-" (undecided), "accept" or "drop".
    awk -F'\t' '{ print $0 "\t-" }' "$work/state.tsv" > "$work/decided.tsv"
    rules=$(jq '.rules | length' "$work/triage.json")
    drops=$(jq '[.rules[] | select(.action == "drop")] | length' "$work/triage.json")
    for ((i = 0; i < rules; i++)); do
        action=$(jq -r ".rules[$i].action" "$work/triage.json")
        mapfile -t gen < <(jq -r ".rules[$i].bpfgen[]" "$work/triage.json")
        fam=4
        [ "${gen[0]}" = "-6" ] && fam=6
        program=$("$bin/bpfgen" -o 14 "${gen[@]}")
        # The undecided packets this rule sees, through filter.
        awk -F'\t' -v fam="$fam" '$6 == "-" && $2 == fam { print $5 }' "$work/decided.tsv" \
            | "$bin/hex2pcap" > "$work/seen.pcap"
        "$bin/filter" -q -b "$program" "$work/seen.pcap" > "$work/hit.pcap" || [ $? -eq 1 ]
        "$bin/pcap2hex" "$work/hit.pcap" > "$work/hit.hex"
        awk -F'\t' -v OFS='\t' -v fam="$fam" -v action="$action" '
            FILENAME == ARGV[1] { hit[$1]++; next }
            $6 == "-" && $2 == fam && hit[$5] > 0 { hit[$5]--; $6 = action }
            { print }' "$work/hit.hex" "$work/decided.tsv" > "$work/next.tsv"
        mv "$work/next.tsv" "$work/decided.tsv"
    done
    # The addresses the deploy commands protect (IPv6 as 32 hex digits, as above).
    jq -r '.deploy[]' "$work/triage.json" | { grep -oE -- ' -i [^ ]+' || true; } | awk '{ print $2 }' | while read -r addr; do
        case $addr in
            *:*) expand6 "$addr" ;;
            *) echo "$addr" ;;
        esac
    done | sort -u > "$work/protected"
    echo "none" >> "$work/protected"
    bound=$(jq '.outcome.legit_dropped_share // 0' "$work/triage.json")
    checks=$(jq '[.deploy_checks[]? | select(. != "")] | length' "$work/triage.json")
    awk -F'\t' -v name="$name" -v rules="$rules" -v drops="$drops" -v rc="$rc" \
        -v legit_max="$legit_max" -v bound="$bound" -v checks="$checks" '
        FILENAME == ARGV[1] { protected[$1] = 1; next }
        $3 != "q" { next }
        {
            total[$1]++; if ($6 == "drop") dropped[$1]++
            if ($1 != "legit" && $2 != "-" && !protected[$4]) unprotected[$4] = 1
        }
        END {
            ok = 1; line = sprintf("%-16s exit %d, rules %d (drop %d)", name, rc, rules, drops)
            floods = 0
            n = 0
            for (l in total) labels[++n] = l
            for (a = 2; a <= n; a++)
                for (b = a; b > 1 && labels[b - 1] > labels[b]; b--) {
                    t = labels[b]; labels[b] = labels[b - 1]; labels[b - 1] = t
                }
            for (k = 1; k <= n; k++) {
                l = labels[k]; if (l == "legit") continue
                floods++
                share = 100 * dropped[l] / total[l]
                line = line sprintf("  %s %d/%d %.2f%%", l, dropped[l], total[l], share)
                if (share < 99) ok = 0
            }
            legit = 100 * dropped["legit"] / (total["legit"] ? total["legit"] : 1)
            line = line sprintf("  legit %d/%d %.3f%% (bound %.3f%%)", dropped["legit"], total["legit"], legit, 100 * bound)
            if (legit > legit_max) { ok = 0; line = line " LEGIT-OVER" }
            if (100 * bound + 1e-6 < legit) { ok = 0; line = line " BOUND-BELOW-TRUTH" }
            if (floods == 0 && (drops > 0 || rc != 1)) ok = 0
            if (floods > 0 && rc != 0) ok = 0
            if (checks > 0) { ok = 0; line = line " DEPLOY-DOES-NOT-GENERATE" }
            for (a in unprotected) { ok = 0; line = line " UNPROTECTED:" a }
            print line "  " (ok ? "PASS" : "FAIL")
            exit ok ? 0 : 1
        }' "$work/protected" "$work/decided.tsv" || failed=1
done
if [ "$found" -eq 0 ]; then
    echo "eval-triage: no NAME.pcap with NAME.truth.tsv in $dir" >&2
    exit 2
fi
exit "$failed"
