#!/usr/bin/env bash
# Evaluates triage on labelled captures: for each DIR/NAME.pcap with DIR/NAME.truth.tsv
# (a header line, then "packet-number<TAB>label" per packet, label "legit" or "flood:ID"),
# runs 'triage --json', builds every suggested rule with 'bpfgen -o 14', applies the rules in
# order (the first match decides, no match passes) and prints, per scenario, the share of each
# flood dropped and of legitimate packets dropped.
#
# The evaluation does not use triage's counts: each rule's program is run by 'filter' on the
# packets still undecided, as iptables would apply it: a rule sees UDP packets to port 53 of
# its family only ('-6' rules IPv6, the others IPv4; read here from the Ethernet frames that
# pcap2hex writes, IPv6 without extension headers). Packets are matched back to their labels
# by their bytes (pcap2hex's hex line).
#
# Pass: every flood >= 99% dropped, legitimate <= 0.1% dropped, and no drop rule at all when
# the capture has no flood. Exit status 0 when every scenario passes, 1 otherwise, 2 on error.
set -euo pipefail
if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 DIR   (DIR holds NAME.pcap and NAME.truth.tsv)" >&2
    exit 2
fi
dir=$1
cd "$(dirname "$0")/.."
bin=${BPFTOOLS_BIN:-}
if [ -z "$bin" ]; then
    cargo build --release --quiet --bin triage --bin bpfgen --bin filter --bin pcap2hex --bin hex2pcap
    # shellcheck source=scripts/release-dir.bash
    . scripts/release-dir.bash
    bin=$(release_dir)
fi
command -v jq >/dev/null || { echo "eval-triage: jq is needed (apt-get install jq)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=0
found=0
for pcap in "$dir"/*.pcap; do
    name=$(basename "$pcap" .pcap)
    truth="$dir/$name.truth.tsv"
    [ -f "$truth" ] || continue
    found=$((found + 1))
    rc=0
    "$bin/triage" --json "$pcap" > "$work/triage.json" || rc=$?
    if [ "$rc" -gt 1 ]; then
        echo "$name: triage failed (exit $rc)"
        failed=1
        continue
    fi
    # label <TAB> family (4, 6, or - when no rule applies) <TAB> hex, one line per packet.
    "$bin/pcap2hex" "$pcap" > "$work/all.hex"
    tail -n +2 "$truth" | cut -f2 | paste - "$work/all.hex" | awk -F'\t' '
        function nibble(c) { return index("0123456789abcdef", tolower(c)) - 1 }
        function byte(h, i) { return nibble(substr(h, 2 * i + 1, 1)) * 16 + nibble(substr(h, 2 * i + 2, 1)) }
        {
            hex = $2; fam = "-"
            type = substr(hex, 25, 4)
            if (type == "0800" && byte(hex, 23) == 17) {
                ihl = (byte(hex, 14) % 16) * 4
                frag = (byte(hex, 20) % 32) * 256 + byte(hex, 21)
                if (frag == 0 && byte(hex, 14 + ihl + 2) * 256 + byte(hex, 14 + ihl + 3) == 53) fam = "4"
            } else if (type == "86dd" && byte(hex, 20) == 17) {
                if (byte(hex, 56) * 256 + byte(hex, 57) == 53) fam = "6"
            }
            print $1 "\t" fam "\t" hex
        }' > "$work/state.tsv"
    # Each line gains a decision column: "-" (undecided), "accept" or "drop".
    awk -F'\t' '{ print $0 "\t-" }' "$work/state.tsv" > "$work/decided.tsv"
    rules=$(jq '.rules | length' "$work/triage.json")
    drops=$(jq '[.rules[] | select(.action == "drop")] | length' "$work/triage.json")
    for ((i = 0; i < rules; i++)); do
        action=$(jq -r ".rules[$i].action" "$work/triage.json")
        mapfile -t args < <(jq -r ".rules[$i].bpfgen[]" "$work/triage.json")
        fam=4
        [ "${args[0]}" = "-6" ] && fam=6
        program=$("$bin/bpfgen" -o 14 "${args[@]}")
        # The undecided packets this rule sees, through filter.
        awk -F'\t' -v fam="$fam" '$4 == "-" && $2 == fam { print $3 }' "$work/decided.tsv" \
            | "$bin/hex2pcap" > "$work/seen.pcap"
        "$bin/filter" -b "$program" "$work/seen.pcap" > "$work/hit.pcap" || [ $? -eq 1 ]
        "$bin/pcap2hex" "$work/hit.pcap" > "$work/hit.hex"
        awk -F'\t' -v OFS='\t' -v fam="$fam" -v action="$action" '
            NR == FNR { hit[$1]++; next }
            $4 == "-" && $2 == fam && hit[$3] > 0 { hit[$3]--; $4 = action }
            { print }' "$work/hit.hex" "$work/decided.tsv" > "$work/next.tsv"
        mv "$work/next.tsv" "$work/decided.tsv"
    done
    awk -F'\t' -v name="$name" -v rules="$rules" -v drops="$drops" '
        { total[$1]++; if ($4 == "drop") dropped[$1]++ }
        END {
            ok = 1; line = sprintf("%-14s rules %d (drop %d)", name, rules, drops)
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
            line = line sprintf("  legit %d/%d %.3f%%", dropped["legit"], total["legit"], legit)
            if (legit > 0.1) ok = 0
            if (floods == 0 && drops > 0) ok = 0
            print line "  " (ok ? "PASS" : "FAIL")
            exit ok ? 0 : 1
        }' "$work/decided.tsv" || failed=1
done
if [ "$found" -eq 0 ]; then
    echo "eval-triage: no NAME.pcap with NAME.truth.tsv in $dir" >&2
    exit 2
fi
exit "$failed"
