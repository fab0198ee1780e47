#!/usr/bin/env bash
# triage under load: wall time and peak memory (GNU time's maximum resident set size) on
#   lab       the real-software capture testdata/triage-lab/example-net/sub-dual repeated to
#             1,000,000 packets (queries and responses; the flood's labels made unique per
#             repetition, so they stay names without evidence as in a real flood);
#   twice     1,000,000 queries for 500,000 random names, each asked twice (the name table's
#             worst case: every name repeats, nothing is forgotten cheaply);
#   prints    1,000,000 queries with 1,000,000 distinct fingerprints (flags, EDNS size, type);
#   deep      1,000,000 queries for distinct names of 60 labels (every suffix a parent);
#   zone      the lab capture with a zone file of 1,000,000 names (--zone).
# Needs python3 (packet and zone generation) and GNU time. Prints one line per case; with
# TRIAGE_BASELINE=PATH (another build's triage), that one too, each stopped after 300 s.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v python3 >/dev/null || { echo "bench-triage: python3 is needed" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench-triage: GNU time is needed (apt-get install time)" >&2; exit 2; }
cargo build --release --quiet --bin triage --bin pcap2hex --bin hex2pcap
# shellcheck source=scripts/release-dir.bash
. scripts/release-dir.bash
bin=$(release_dir)

gzip -dc testdata/triage-lab/example-net/sub-dual.pcap.gz > "$work/sub-dual.pcap"
"$bin/pcap2hex" -n "$work/sub-dual.pcap" > "$work/one.hex"
python3 - "$work/one.hex" "$work" <<'PY'
import random, struct, sys
one, work = sys.argv[1], sys.argv[2]
lines = [l.split()[0] if l.strip() else "" for l in open(one)]
N = 1_000_000

def csum_free_udp(src, dst, payload, v6=False):
    udp = struct.pack("!HHHH", 40000 + (src & 0xfff), 53, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     struct.pack("!I", src), struct.pack("!I", dst))
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + udp

def query(name, qtype=1, flags=0x0100, edns=None):
    labels = b"".join(bytes([len(l)]) + l for l in name.split(b".")) + b"\x00"
    msg = struct.pack("!HHHHHH", random.getrandbits(16), flags, 1, 0, 0, 1 if edns else 0)
    msg += labels + struct.pack("!HH", qtype, 1)
    if edns:
        msg += b"\x00" + struct.pack("!HHIH", 41, edns, 0, 0)
    return msg

def write(name, packets):
    with open(f"{work}/{name}.hex", "w") as out:
        for p in packets:
            out.write(p.hex() + "\n")

def random_label(k):
    return "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(k)).encode()

random.seed(7)
# lab: flood names rewritten per repetition so they stay unique: regenerate the flood part.
with open(f"{work}/lab.hex", "w") as out:
    count = 0
    rep = 0
    while count < N:
        for line in lines:
            if count == N:
                break
            frame = bytes.fromhex(line)
            if rep > 0 and b"\x03api\x07example\x03net" in frame.lower():
                i = frame.lower().find(b"\x03api\x07example\x03net")
                # the random label right before 'api': last length byte that ends at i
                j = i - 1
                while j > 0 and j + 1 + frame[j] != i:
                    j -= 1
                if j > 0 and frame[j] >= 4:
                    frame = frame[:j + 1] + f"{rep:04x}".encode() + frame[j + 5:]
            out.write(frame.hex() + "\n")
            count += 1
        rep += 1

dst = 0x0A580002
write("twice", (csum_free_udp(0x64000000 + (i % 5000), dst, query(f"n{(i // 2):07d}x.example.net".encode())) for i in range(N)))
write("prints", (csum_free_udp(0x64000000 + (i % 5000), dst,
                  query(b"www.example.net", qtype=i % 65536, flags=(i * 7919) & 0x07f0,
                        edns=512 + (i // 65536) * 97 % 60000)) for i in range(N)))
write("deep", (csum_free_udp(0x64000000 + (i % 5000), dst,
                query(b".".join([f"l{i:07d}".encode()] + [b"a"] * 58 + [b"net"]))) for i in range(N)))
with open(f"{work}/zone.zone", "w") as z:
    z.write("$ORIGIN example.net.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n")
    for i in range(N):
        z.write(f"h{i:07d} IN A 192.0.2.1\n")
PY
for case in lab twice prints deep; do
    "$bin/hex2pcap" --ts-step 0.00001 < "$work/$case.hex" > "$work/$case.pcap"
    rm "$work/$case.hex"
done
one() { # LABEL TRIAGE NAME ARGS...
    local label=$1 triage=$2 name=$3; shift 3
    local start end rc=0
    start=$(date +%s.%N)
    timeout 300 /usr/bin/time -f '%M' -o "$work/rss" "$triage" "$@" > "$work/out.txt" 2> "$work/err.txt" || rc=$?
    end=$(date +%s.%N)
    if [ "$rc" -eq 124 ]; then
        echo "bench-triage: $name ($label): stopped after 300 s"
        return
    fi
    [ "$rc" -le 1 ] || { echo "bench-triage: $name ($label): triage failed (exit $rc): $(head -2 "$work/err.txt")" >&2; exit 1; }
    awk -v n="$name" -v l="$label" -v s="$start" -v e="$end" -v rss="$(tail -1 "$work/rss")" -v rc="$rc" \
        'BEGIN { printf "bench-triage: %-7s (%s) %.2f s wall, peak memory %.1f MiB, exit %d\n", n, l, e - s, rss / 1024, rc }'
}
run() { # NAME ARGS...
    one this "$bin/triage" "$@"
    if [ -n "${TRIAGE_BASELINE:-}" ]; then
        one baseline "$TRIAGE_BASELINE" "$@"
    fi
}
run lab "$work/lab.pcap"
run twice "$work/twice.pcap"
run prints "$work/prints.pcap"
run deep "$work/deep.pcap"
run zone --zone "$work/zone.zone" "$work/lab.pcap"
