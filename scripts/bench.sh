#!/usr/bin/env bash
# Benchmarks on a 1,000,000-packet capture built from testdata/captures/eth-flood-v4.pcap:
#   filter (bpftools)  vs  the libpcap baseline testdata/tools/pcapfilter.c (same program, same output)
#   pcap2hex           vs  tcpdump -r FILE -x (a rough reference: different output format)
# Needs hyperfine, gcc, libpcap-dev, tcpdump. Prints hyperfine's tables and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for tool in hyperfine gcc tcpdump; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is needed (apt-get install $tool)" >&2; exit 2; }
done

cargo build --release --quiet
# shellcheck source=scripts/release-dir.bash
. scripts/release-dir.bash
bin=$(release_dir)
gcc -O2 -o "$work/pcapfilter" testdata/tools/pcapfilter.c -lpcap

# 1,000,000 packets: the flood capture's packets repeated, written by hex2pcap.
"$bin/pcap2hex" -n testdata/captures/eth-flood-v4.pcap > "$work/one.hex"
awk -v n=1000000 '{ line[NR] = $0 } END { for (i = 0; i < n; i++) print line[i % NR + 1] }' \
    "$work/one.hex" > "$work/big.hex"
"$bin/hex2pcap" --ts-step 0.000001 < "$work/big.hex" > "$work/big.pcap"
rm "$work/one.hex" "$work/big.hex"
echo "bench: $(stat -c %s "$work/big.pcap") bytes, 1000000 packets"

program=$("$bin/bpfgen" -o 14 dns -- '*.www.example.net')

# Same program, same packets kept.
"$bin/filter" -b "$program" < "$work/big.pcap" > "$work/ours.pcap"
"$work/pcapfilter" "$program" < "$work/big.pcap" > "$work/theirs.pcap" 2>/dev/null
if ! cmp -s <("$bin/pcap2hex" -n "$work/ours.pcap") <("$bin/pcap2hex" -n "$work/theirs.pcap"); then
    echo "bench: filter and the libpcap baseline kept different packets" >&2
    exit 1
fi
echo "bench: filter and libpcap keep the same $("$bin/pcap2hex" -n "$work/ours.pcap" | wc -l) packets"

hyperfine --warmup 1 --runs 5 --export-json "$work/filter.json" \
    -n filter "$bin/filter -b '$program' < $work/big.pcap > /dev/null" \
    -n libpcap "$work/pcapfilter '$program' < $work/big.pcap > /dev/null 2>&1"
hyperfine --warmup 1 --runs 3 --export-json "$work/hex.json" \
    -n pcap2hex "$bin/pcap2hex $work/big.pcap > /dev/null" \
    -n "tcpdump -x" "tcpdump -r $work/big.pcap -x > /dev/null 2>&1"

ratio() {
    python3 - "$1" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
ours, theirs = results[0], results[1]
print(f"bench: {ours['command']} {ours['mean']:.3f} s, {theirs['command']} {theirs['mean']:.3f} s, "
      f"ratio {ours['mean'] / theirs['mean']:.2f} (below 1 = faster)")
PY
}
ratio "$work/filter.json"
ratio "$work/hex.json"

# parsedns: reports of 10,000 and 1,000,000 packets (the flood capture's packets repeated),
# read from hex lines and from a pcap, as text and as JSON; microseconds per packet.
# PARSEDNS_BASELINE=/path/to/another/parsedns adds that binary on the hex lines (versions
# before pcap input read hex only) and prints the ratio: a before/after figure.
"$bin/pcap2hex" -n testdata/captures/eth-flood-v4.pcap > "$work/dns-one.hex"
for n in 10000 1000000; do
    awk -v n="$n" '{ line[NR] = $0 } END { for (i = 0; i < n; i++) print line[i % NR + 1] }' \
        "$work/dns-one.hex" > "$work/dns.hex"
    "$bin/hex2pcap" --ts-step 0.000001 < "$work/dns.hex" > "$work/dns.pcap"
    [ "$("$bin/parsedns" "$work/dns.pcap" | grep -c '^packet ')" = "$n" ] ||
        { echo "bench: parsedns did not report $n packets" >&2; exit 1; }
    commands=(
        -n "parsedns hex" "$bin/parsedns < $work/dns.hex > /dev/null"
        -n "parsedns pcap" "$bin/parsedns $work/dns.pcap > /dev/null"
        -n "parsedns --json pcap" "$bin/parsedns --json $work/dns.pcap > /dev/null"
    )
    if [ -n "${PARSEDNS_BASELINE:-}" ]; then
        commands+=(-n "baseline hex" "$PARSEDNS_BASELINE < $work/dns.hex > /dev/null")
    fi
    runs=$(( n > 100000 ? 3 : 10 ))
    hyperfine --warmup 1 --runs "$runs" --export-json "$work/parsedns.json" "${commands[@]}"
    python3 - "$work/parsedns.json" "$n" <<'PY'
import json, sys
results = {r["command"]: r["mean"] for r in json.load(open(sys.argv[1]))["results"]}
n = int(sys.argv[2])
for name, mean in results.items():
    print(f"bench: {name}, {n} packets: {mean:.3f} s, {mean / n * 1e6:.2f} us per packet")
if "baseline hex" in results:
    print(f"bench: parsedns hex is {results['baseline hex'] / results['parsedns hex']:.2f}x "
          f"the baseline's speed on {n} packets")
PY
done
rm "$work/dns-one.hex" "$work/dns.hex" "$work/dns.pcap"

# hex2pcap: the 1,000,000 packets as hex lines (plain, and with pcap2hex -t's timestamp
# column) back to pcap: time (hyperfine) and peak memory (/usr/bin/time -v, maximum resident
# set size), also on 4 times the input to show memory does not grow with it.
# HEX2PCAP_BASELINE=/path/to/another/hex2pcap adds that binary on the plain lines and prints
# the ratio: a before/after figure.
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time is needed (apt-get install time)" >&2; exit 2; }
"$bin/pcap2hex" -n "$work/big.pcap" > "$work/big.hex"
"$bin/pcap2hex" -n -t "$work/big.pcap" > "$work/big-ts.hex"
"$bin/hex2pcap" < "$work/big-ts.hex" > "$work/back.pcap"
cmp -s <("$bin/pcap2hex" -n -t "$work/back.pcap") "$work/big-ts.hex" ||
    { echo "bench: hex2pcap did not give back the packets and timestamps" >&2; exit 1; }
echo "bench: hex input $(stat -c %s "$work/big.hex") bytes, with timestamps $(stat -c %s "$work/big-ts.hex") bytes"
commands=(
    -n "hex2pcap" "$bin/hex2pcap < $work/big.hex > /dev/null"
    -n "hex2pcap timestamps" "$bin/hex2pcap < $work/big-ts.hex > /dev/null"
)
if [ -n "${HEX2PCAP_BASELINE:-}" ]; then
    commands+=(-n "baseline" "$HEX2PCAP_BASELINE < $work/big.hex > /dev/null")
fi
hyperfine --warmup 1 --runs 5 --export-json "$work/hex2pcap.json" "${commands[@]}"
python3 - "$work/hex2pcap.json" <<'PY'
import json, sys
results = {r["command"]: r["mean"] for r in json.load(open(sys.argv[1]))["results"]}
ours = results["hex2pcap"]
line = f"bench: hex2pcap {ours:.3f} s ({ours * 1e3:.0f} ns per packet)"
if "baseline" in results:
    line += f", baseline {results['baseline']:.3f} s, ratio {ours / results['baseline']:.2f} (below 1 = faster)"
print(line)
PY
peak() {
    /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ { print $2 }'
}
echo "bench: hex2pcap peak memory $(peak "$bin/hex2pcap" "$work/big.hex") KiB on 1,000,000 lines," \
    "$(peak sh -c "cat $work/big.hex $work/big.hex $work/big.hex $work/big.hex | $bin/hex2pcap") KiB on 4,000,000"
if [ -n "${HEX2PCAP_BASELINE:-}" ]; then
    echo "bench: baseline peak memory $(peak "$HEX2PCAP_BASELINE" "$work/big.hex") KiB on 1,000,000 lines"
fi

# triage: 1,000,000 packets, both passes (counting, then every candidate rule run by the VM),
# and its peak memory. The input is the flood capture repeated; in each repetition the
# flood's random labels get another 3-letter prefix, so they stay rarely repeated names as in
# a real flood (repeated as they are, they would be names asked 166 times: no flood).
"$bin/pcap2hex" -n testdata/captures/eth-flood-v4.pcap > "$work/triage-one.hex"
awk -v n=1000000 '
    function hexbyte(c) { return sprintf("%02x", c) }
    { line[NR] = $0 }
    END {
        tail = "03777777076578616d706c65036e657400"   # www.example.net, then the root
        for (i = 0; i < n; i++) {
            r = int(i / NR); h = line[i % NR + 1]
            # IPv4 without options: the question name starts at byte 54 of the frame.
            len = index("0123456789abcdef", substr(h, 109, 1)) * 16 + index("0123456789abcdef", substr(h, 110, 1)) - 17
            if (len >= 8 && substr(h, 111 + 2 * len, length(tail)) == tail) {
                prefix = hexbyte(97 + int(r / 676) % 26) hexbyte(97 + int(r / 26) % 26) hexbyte(97 + r % 26)
                h = substr(h, 1, 110) prefix substr(h, 117)
            }
            print h
        }
    }' "$work/triage-one.hex" > "$work/triage.hex"
"$bin/hex2pcap" --ts-step 0.00001 < "$work/triage.hex" > "$work/triage.pcap"
rm "$work/triage-one.hex" "$work/triage.hex"
"$bin/triage" --json "$work/triage.pcap" > "$work/triage.json" ||
    { echo "bench: triage found no flood in the repeated capture" >&2; exit 1; }
python3 - "$work/triage.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
packets = report["summary"]["packets"]
for flood in report["floods"]:
    print(f"bench: triage on {packets} packets: {flood['id']} {flood['description']}: "
          f"{flood['dropped']} of {flood['packets']} dropped by the rules")
legit = report["outcome"]
print(f"bench: triage: legitimate packets dropped {legit['legit_dropped']} of {legit['legit_packets']}")
PY
hyperfine --warmup 1 --runs 5 --export-json "$work/triage-time.json" \
    -n triage "$bin/triage $work/triage.pcap > /dev/null"
python3 - "$work/triage-time.json" "$bin/triage" "$work/triage.pcap" <<'PY'
import json, resource, subprocess, sys
mean = json.load(open(sys.argv[1]))["results"][0]["mean"]
# /dev/null opened write-only, as a shell's '> /dev/null' does (read-write looks closed).
with open("/dev/null", "w") as null:
    subprocess.run([sys.argv[2], sys.argv[3]], stdout=null, check=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"bench: triage, 1000000 packets: {mean:.3f} s, {mean * 1e6 / 1000000:.2f} us per packet, "
      f"peak memory {peak / 1024:.1f} MiB")
PY
rm "$work/triage.pcap" "$work/triage.json" "$work/triage-time.json"
