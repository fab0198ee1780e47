#!/usr/bin/env bash
# End-to-end test of xdp-bpf on the real kernel: the native DNS matcher attached at XDP
# (native mode) to the server's end of a veth pair, a real DNS server (Knot) behind it, real
# clients (dig, dnsperf, tagged frames from a raw socket) in the other namespace (the
# namespaces and Knot as scripts/e2e-netns.bash makes them), IPv4 and IPv6:
#  1. floods dropped and legitimate names answered, the deciding rules counted, -a, a
#     capture of the client's queries through `xdp-bpf test`; 1b. compiled rules;
#  2. queries in frames with one or two VLAN tags (802.1Q, 802.1ad, QinQ);
#  3. idempotence and convergence: unchanged re-runs, new generations, broken states
#     repaired, programs of another owner and other deployments refused and left alone;
#  4. live add/remove under load without one legitimate query lost;
#  5. concurrent runs; 6. SIGKILL loops during apply, 6b. during add; 7. delete.
# Needs root, iproute2, knot, dnsutils, dnsperf, tcpdump, python3, bpffs on /sys/fs/bpf.
# Skips (exit 0) when not root, except with CI=true (exit 1: CI runs every test).
# Prints one line per check ("ok N - ..." / "not ok N - ..."); exits 1 when one failed.
# Sizes: LOAD (seconds of legitimate load, default 10) and LIVE (add/remove pairs at least
# during it, default 50), ROUNDS (concurrent rounds, default 6), KILLS (SIGKILL rounds
# during apply, default 30), KILL_CHANGES (during add, default 10).
# Compound conditions are given to check as eval 'CONDITION': they expand when the check runs.
# shellcheck disable=SC2016
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ] && [ "${CI:-}" = true ]; then
    echo "e2e-xdp: FAIL: needs root (network namespaces, XDP, bpffs); CI runs every test" >&2
    exit 1
fi
E2E_NAME=e2e-xdp
# The namespaces, the DNS server, srv/cli, answered, flood, wait_bounded, summary.
# shellcheck source=scripts/e2e-netns.bash
source scripts/e2e-netns.bash
for tool in tcpdump timeout stat; do
    command -v "$tool" >/dev/null || { echo "$E2E_NAME: FAIL: $tool is not installed"; exit 1; }
done
[ -x "$BIN/xdp-bpf" ] || { echo "$E2E_NAME: FAIL: no $BIN/xdp-bpf (cargo build --release)"; exit 1; }
if [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != bpf_fs ]; then
    echo "$E2E_NAME: FAIL: /sys/fs/bpf is not a bpffs (mount -t bpf bpf /sys/fs/bpf)"
    exit 1
fi

LIVE=${LIVE:-50}
LOAD=${LOAD:-10}
ROUNDS=${ROUNDS:-6}
KILLS=${KILLS:-30}
KILL_CHANGES=${KILL_CHANGES:-10}
# Every xdp-bpf run ends within this many seconds or fails as hung.
XDP_LIMIT=${XDP_LIMIT:-30}
# This run's own roots: pins (on bpffs) and state (lock, rule lists) never touch the host's.
XDP_PINS=/sys/fs/bpf/bpftools-e2e-xdp-$$
XDP_STATE=$TMP/xdp-state
# A second owner: another pair of roots, whose programs are foreign to the first.
OTHER_PINS=/sys/fs/bpf/bpftools-e2e-xdp-$$-other
OTHER_STATE=$TMP/xdp-state-other
OUT=$TMP/out
RC=0
N=0
SUMMARIZED=false
DEV=v-srv

# Checks numbered as TAP does (these replace e2e-netns.bash's pass and fail; check uses them).
pass() { PASSED=$((PASSED + 1)); N=$((N + 1)); echo "ok $N - $* [${SECONDS}s]"; }
fail() { FAILED=$((FAILED + 1)); N=$((N + 1)); echo "not ok $N - $* [${SECONDS}s]"; }
# note TEXT: a diagnostic line (after a failed check)
note() {
    local line
    while IFS= read -r line; do echo "#   $line"; done <<<"$*"
}

cleanup() {
    local rc=$?
    set +e
    if ! $SUMMARIZED; then
        echo "$E2E_NAME: ABORTED (exit $rc) after $N checks, $FAILED failed [${SECONDS}s]"
        [ "$rc" != 0 ] || rc=1
    fi
    disown -a
    net_down 2>/dev/null
    rm -rf "$XDP_PINS" "$OTHER_PINS" "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "$E2E_NAME: ERROR: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

# xdp_at PINS STATE ARGS...: xdp-bpf ARGS in the server namespace under those roots, bounded.
# nsenter enters only the network namespace: `ip netns exec` would mount a fresh /sys and hide
# the pins under /sys/fs/bpf.
xdp_at() {
    local pins=$1 state=$2 rc=0
    shift 2
    timeout -k 5 "$XDP_LIMIT" nsenter --net="/run/netns/$SRV" \
        env BPFTOOLS_XDP_PINS="$pins" BPFTOOLS_XDP_STATE="$state" "$BIN/xdp-bpf" "$@" || rc=$?
    [ "$rc" != 124 ] || echo "$E2E_NAME: HUNG: xdp-bpf $* did not end in ${XDP_LIMIT}s" >&2
    return "$rc"
}
xdp() { xdp_at "$XDP_PINS" "$XDP_STATE" "$@"; }
xdp_other() { xdp_at "$OTHER_PINS" "$OTHER_STATE" "$@"; }
# run COMMAND...: runs it, its exit status in RC, its output (both streams) in OUT
run() {
    RC=0
    "$@" >"$OUT" 2>&1 || RC=$?
}
has() { grep -q -- "$1" "$OUT"; }
# rc_is N: the last run exited N (else prints its output)
rc_is() {
    [ "$RC" = "$1" ] && return 0
    note "exit $RC, expected $1: $(cat "$OUT")"
    return 1
}
# ran N TEXT: the last run exited N and said TEXT
ran() {
    rc_is "$1" || return 1
    has "$2" && return 0
    note "no '$2' in: $(cat "$OUT")"
    return 1
}
# status_json: the status as JSON (also when it exits 3)
status_json() { xdp status --dev "$DEV" --json 2>/dev/null || true; }
# js EXPR: EXPR (Python, on the status JSON `s`) evaluated
js() {
    status_json | python3 -c 'import json, sys; s = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1" ||
        echo "(no status)"
}
# packets RULE: the packets counted by RULE ("drop *.www.example.net")
packets() { js "sum(r['packets'] for r in s['rules'] if r['rule'] == '$1')"; }
# attached: the id of the XDP program on the server's interface (empty: none)
attached() {
    srv ip -d link show dev "$DEV" | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p' | head -n 1
}
# the interface's directory under a root (the namespace's inode, as xdp-bpf names it)
ns_dir() { echo "$1/net$(stat -L -c %i "/run/netns/$SRV")/$DEV"; }
# gens [PINS]: the generation directories pinned
gens() { { find "$(ns_dir "${1:-$XDP_PINS}")" -mindepth 1 -maxdepth 1 -type d -name 'g*' 2>/dev/null || true; } | wc -l; }
# lists: the rule lists of generations in the state directory
lists() { { find "$(ns_dir "$XDP_STATE")" -mindepth 1 -maxdepth 1 -name 'g*.json' 2>/dev/null || true; } | wc -l; }
# strays: files of the state directory that are neither the lock nor a generation's list
strays() {
    { find "$(ns_dir "$XDP_STATE")" -mindepth 1 ! -name lock ! -name 'g*.json' ! -name '.tmp*' 2>/dev/null ||
        true; } | wc -l
}
# temps: temporary files (of a rule list being written) in the state directory
temps() { { find "$(ns_dir "$XDP_STATE")" -mindepth 1 -name '.tmp*' 2>/dev/null || true; } | wc -l; }
# one_generation: exactly one generation pinned and one rule list, nothing else left
one_generation() {
    local g l s
    g=$(gens) l=$(lists) s=$(strays)
    [ "$g" = 1 ] && [ "$l" = 1 ] && [ "$s" = 0 ] && return 0
    note "pinned generations $g, rule lists $l, other files $s:"
    note "$(find "$(ns_dir "$XDP_PINS")" "$(ns_dir "$XDP_STATE")" 2>&1)"
    return 1
}
# whole [ARGS...]: status (with rules ARGS) exits 0
whole() {
    run xdp status --dev "$DEV" "$@"
    rc_is 0
}
# is_list ARGS...: status with rules ARGS exits 0 (quietly: to find which list is attached)
is_list() { xdp status --dev "$DEV" "$@" >/dev/null 2>&1; }
# not_whole TEXT [ARGS...]: status exits 3 and names the problem TEXT
not_whole() {
    local text=$1
    shift
    run xdp status --dev "$DEV" "$@"
    ran 3 "$text"
}
# lost_is WANT SERVER COUNT [SUFFIX]: a flood of COUNT random names under SUFFIX loses WANT
lost_is() {
    local want=$1 lost
    shift
    lost=$(flood "$@")
    [ "$lost" = "$want" ] && return 0
    note "flood $*: $lost lost, expected $want"
    return 1
}
dropped() { not answered "$@"; }

# --- the network: cli (10.53.1.1, fd53:1::1) <-> srv (10.53.1.2, fd53:1::2), Knot on srv
net_up xdp
check "setup: Knot answers over IPv4 and IPv6 before any program" \
    eval 'answered 10.53.1.2 www.example.net && answered fd53:1::2 www.example.net'

S4=10.53.1.2
S6=fd53:1::2
BASE=(-a "$S4" -a "$S6" --accept www.example.net --drop '*.www.example.net')
# Two rule lists the idempotence, concurrency and kill sections switch between: each drops a
# suffix the other does not (mail.example.net / ns.example.net).
cat >"$TMP/a.rules" <<'RULES'
# list A
accept www.example.net
drop *.www.example.net
drop *.mail.example.net
RULES
cat >"$TMP/b.rules" <<'RULES'
# list B
accept www.example.net
drop *.www.example.net
drop *.ns.example.net
drop *{20-63}.example.net
# compiled (a program reached by a tail call)
drop z?.mail.example.net
RULES
A=(-a "$S4" -a "$S6" --rules "$TMP/a.rules")
B=(-a "$S4" -a "$S6" --rules "$TMP/b.rules")

# --- 1. floods dropped, legitimate names answered, counters, protected addresses
basics() {
    run xdp apply --dev "$DEV" --native "${BASE[@]}"
    check "1: apply --native attaches generation 1 in native mode" ran 0 "generation 1 attached (native mode)"
    check "1: status is whole (exit 0), native" eval 'whole && has "native mode"'
    check "1: the attached program is the one status names" test "$(attached)" = "$(js "s['prog_id']")"
    check "1: IPv4 flood under *.www.example.net dropped (40 of 40)" lost_is 40 "$S4" 40
    check "1: IPv6 flood under *.www.example.net dropped (40 of 40)" lost_is 40 "$S6" 40
    check "1: IPv4 accepted exact name answered" answered "$S4" www.example.net
    check "1: IPv6 accepted exact name answered" answered "$S6" www.example.net
    check "1: IPv4 name outside the rules answered" answered "$S4" mail.example.net
    check "1: IPv6 name outside the rules answered" answered "$S6" mail.example.net
    check "1: a flood name in other case dropped (case ignored)" dropped "$S4" Zz9.WWW.Example.NET
    check "1: the drop rule counted exactly the 81 dropped queries ($(packets 'drop *.www.example.net'))" \
        test "$(packets 'drop *.www.example.net')" = 81
    check "1: the accept rule counted exactly the 2 accepted queries ($(packets 'accept www.example.net'))" \
        test "$(packets 'accept www.example.net')" = 2

    # The capture of what the client sent, run through the deployment's program and the VM.
    local cap=$TMP/client.pcap pid _
    setsid ip netns exec "$CLI" tcpdump -i v-cli -U -w "$cap" 'udp port 53' >"$TMP/tcpdump.log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do grep -q "listening on" "$TMP/tcpdump.log" && break; sleep 0.1; done
    flood "$S4" 10 >/dev/null
    flood "$S6" 10 >/dev/null
    answered "$S4" www.example.net || true
    answered "$S6" mail.example.net || true
    sleep 0.5
    kill -INT "$pid" 2>/dev/null || true
    { wait_bounded "$pid" 10; } 2>/dev/null || true
    run xdp test --dev "$DEV" "$cap"
    check "1: test --dev on the client's capture: the program agrees with the reference" \
        eval 'ran 0 "; 20 dropped, 0 disagreement(s)"'

    # -a: only the protected destinations are filtered.
    run xdp apply --dev "$DEV" -a 10.53.1.99 -a fd53:1::99 --accept www.example.net --drop '*.www.example.net'
    check "1: apply -a another address: new generation" ran 0 "generation 2 attached"
    check "1: -a another address: IPv4 flood to the server answered" lost_is 0 "$S4" 20
    check "1: -a another address: IPv6 flood to the server answered" lost_is 0 "$S6" 20
    run xdp apply --dev "$DEV" -a "$S4" --accept www.example.net --drop '*.www.example.net'
    check "1: apply -a the server's IPv4 address only" rc_is 0
    check "1: -a IPv4 only: IPv4 flood dropped" lost_is 20 "$S4" 20
    check "1: -a IPv4 only: IPv6 flood answered (not protected)" lost_is 0 "$S6" 20
    run xdp add --dev "$DEV" -a "$S6/128"
    check "1: add -a the IPv6 address: changed in place" ran 0 "changed in place"
    check "1: ... now the IPv6 flood is dropped" lost_is 20 "$S6" 20
    run xdp remove --dev "$DEV" -a "$S6"
    check "1: remove -a the IPv6 address" rc_is 0
    check "1: ... IPv6 flood answered again, IPv4 still dropped" \
        eval 'lost_is 0 "$S6" 20 && lost_is 20 "$S4" 20'
    run xdp apply --dev "$DEV" --accept www.example.net --drop '*.www.example.net'
    check "1: no -a: the rules apply to every address (with a note)" ran 0 "every address of $DEV"
    check "1: ... no -a: both floods dropped" eval 'lost_is 20 "$S4" 20 && lost_is 20 "$S6" 20'
}

# --- 1b. rules run as compiled programs (patterns with '?' or '%XX', --drop-bpf)
# answered_norec SERVER NAME: answered to a query without RD (dns_validate --strict refuses RD)
answered_norec() {
    local out
    out=$(cli dig +norec +time=1 +tries=1 @"$1" "$2" A 2>/dev/null) || return 1
    grep -q 'status: ' <<<"$out"
}
compiled() {
    local c=(-a "$S4" -a "$S6" --accept www.example.net --drop 'r?.mail.example.net'
        --drop '%78%79.ns.example.net' --drop-bpf 'dns_validate --strict' --drop '*.www.example.net')
    run xdp apply --dev "$DEV" "${c[@]}"
    check "1b: apply with 3 compiled rules among native ones" ran 0 "2 rule(s) by map lookups, 3 compiled"
    check "1b: status whole, the rules marked compiled" \
        eval 'whole "${c[@]}" && test "$(grep -c " compiled  " "$OUT")" = 3'
    check "1b: r?.mail.example.net drops r1.mail (IPv4, IPv6), not r12.mail" \
        eval 'not answered_norec "$S4" r1.mail.example.net && not answered_norec "$S6" r2.mail.example.net && answered_norec "$S4" r12.mail.example.net'
    check "1b: %78%79.ns.example.net drops xy.ns, not xz.ns" \
        eval 'not answered_norec "$S4" xy.ns.example.net && answered_norec "$S6" xz.ns.example.net'
    check "1b: dns_validate --strict drops a query with RD (mail.example.net), not without" \
        eval 'dropped "$S4" mail.example.net && answered_norec "$S4" mail.example.net'
    check "1b: the accept before it still decides: www.example.net with RD answered" answered "$S6" www.example.net
    check "1b: a native drop after the compiled rules: flood dropped (lost 20 of 20)" lost_is 20 "$S4" 20
    check "1b: each compiled rule counted what it dropped (2, 1, 21 incl. the flood's RD queries)" \
        eval 'test "$(packets "drop r?.mail.example.net")" = 2 && test "$(packets "drop %78%79.ns.example.net")" = 1 && test "$(packets "drop-bpf dns_validate --strict")" = 21'
    check "1b: ... and the native drop after them nothing (dns_validate decided first)" \
        test "$(packets 'drop *.www.example.net')" = 0
    local g
    g=$(js "s['generation']")
    run xdp add --dev "$DEV" --drop 'k?.ns.example.net'
    check "1b: add a compiled rule: made by a new generation" ran 0 "generation $((g + 1)) attached"
    check "1b: ... it drops k1.ns, the others still work, one generation" \
        eval 'not answered_norec "$S4" k1.ns.example.net && not answered_norec "$S4" xy.ns.example.net && answered_norec "$S4" k12.ns.example.net && one_generation'
    run xdp remove --dev "$DEV" --drop 'k?.ns.example.net' --drop-bpf 'dns_validate --strict'
    check "1b: remove two compiled rules" rc_is 0
    check "1b: ... RD queries answered again, r?.mail still dropped" \
        eval 'answered "$S4" mail.example.net && not answered_norec "$S4" r3.mail.example.net && answered_norec "$S4" k1.ns.example.net'
}

# --- 2. VLAN: tagged queries, the program on the veth. The tags are written into the frames
# (a raw socket on the client's veth): the program sees them in the frame's bytes whatever
# the kernel offloads, and no VLAN device is needed (kernels without 802.1Q support run it).
# With VLAN id 0 on every tag (priority tags) the server's stack takes the query once the
# program passes it, and Knot answers; other ids are counted by the rules only (the stack
# drops a frame of a VLAN it has no device for).
write_tagged_sender() {
    cat >"$TMP/tagged.py" <<'PY'
"""tagged.py IF SRC_MAC DST_MAC SRC DST TAGS COUNT NAME: sends COUNT DNS queries (A, RD set)
for NAME ('{}' replaced by a distinct label each time) from SRC to DST port 53 as Ethernet
frames with TAGS ('' or TPID:VID,... outermost first, hex TPID) on IF; prints how many were
answered within WAIT seconds (default 1)."""
import os, random, select, socket, struct, sys, time

ifname, smac, dmac, src, dst, tags, count, name = sys.argv[1:9]
count = int(count)
v6 = ":" in dst
family = socket.AF_INET6 if v6 else socket.AF_INET
rx = socket.socket(family, socket.SOCK_DGRAM)
rx.bind((src, 0))
sport = rx.getsockname()[1]
tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
tx.bind((ifname, 0))


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


link = bytes.fromhex(dmac.replace(":", "")) + bytes.fromhex(smac.replace(":", ""))
for tag in filter(None, tags.split(",")):
    tpid, vid = tag.split(":")
    link += struct.pack("!HH", int(tpid, 16), int(vid))
link += struct.pack("!H", 0x86DD if v6 else 0x0800)
ids = random.sample(range(1, 65536), count)
for i, qid in enumerate(ids):
    qname = name.replace("{}", "q%d%d" % (random.randrange(10**6), i))
    wire = b"".join(bytes([len(l)]) + l.encode() for l in qname.split(".")) + b"\0"
    dns = struct.pack("!6H", qid, 0x0100, 1, 0, 0, 0) + wire + struct.pack("!HH", 1, 1)
    length = 8 + len(dns)
    if v6:
        s, d = socket.inet_pton(family, src), socket.inet_pton(family, dst)
        pseudo = s + d + struct.pack("!I3xB", length, 17)
        udp = struct.pack("!4H", sport, 53, length, 0) + dns
        udp = udp[:6] + struct.pack("!H", checksum(pseudo + udp) or 0xFFFF) + udp[8:]
        packet = struct.pack("!IHBB", 6 << 28, length, 17, 64) + s + d + udp
    else:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, i, 0, 64, 17, 0,
                             socket.inet_aton(src), socket.inet_aton(dst))
        header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
        packet = header + struct.pack("!4H", sport, 53, length, 0) + dns
    tx.send(link + packet)
answered = set()
deadline = time.time() + float(os.environ.get("WAIT", "1"))
while len(answered) < count:
    left = deadline - time.time()
    if left <= 0 or not select.select([rx], [], [], left)[0]:
        break
    data = rx.recv(4096)
    if len(data) >= 2 and struct.unpack("!H", data[:2])[0] in ids:
        answered.add(struct.unpack("!H", data[:2])[0])
print(len(answered))
PY
}
# mac NS DEV: the interface's Ethernet address
mac() { ip -n "$1" link show dev "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }
# tagged SRC DST TAGS COUNT NAME: queries sent in tagged frames; prints how many were answered
tagged() {
    timeout -k 5 20 ip netns exec "$CLI" python3 "$TMP/tagged.py" v-cli "$CLI_MAC" "$SRV_MAC" "$@"
}
# tagged_case TAGS FAMILY: a flood and legitimate names in frames with TAGS
tagged_case() {
    local tags=$1 fam=$2 src dst what drop0 drop1 acc0 acc1 got want
    if [ "$fam" = 4 ]; then src=10.53.1.1 dst=$S4; else src=fd53:1::1 dst=$S6; fi
    what="${tags:-untagged} IPv$fam"
    drop0=$(packets 'drop *.www.example.net')
    got=$(tagged "$src" "$dst" "$tags" 20 '{}.www.example.net')
    drop1=$(packets 'drop *.www.example.net')
    check "2: $what: 20 flood queries dropped and counted (answered $got, counted $drop0 -> $drop1)" \
        eval '[ "$got" = 0 ] && [ "$drop1" = $((drop0 + 20)) ]'
    # answered only when every tag has VLAN id 0 (see above)
    want=5
    [[ ",$tags" =~ :[1-9] ]] && want=0
    acc0=$(packets 'accept www.example.net')
    got=$(tagged "$src" "$dst" "$tags" 5 'www.example.net')
    acc1=$(packets 'accept www.example.net')
    check "2: $what: 5 accepted queries passed and counted (answered $got of $want expected, counted $acc0 -> $acc1)" \
        eval '[ "$got" = "$want" ] && [ "$acc1" = $((acc0 + 5)) ]'
    if [ "$want" = 5 ]; then
        got=$(tagged "$src" "$dst" "$tags" 5 'mail.example.net')
        check "2: $what: 5 queries no rule matches answered ($got)" test "$got" = 5
    fi
}
vlan() {
    write_tagged_sender
    CLI_MAC=$(mac "$CLI" v-cli)
    SRV_MAC=$(mac "$SRV" v-srv)
    run xdp apply --dev "$DEV" --native "${BASE[@]}"
    check "2: apply on the veth" ran 0 "native mode"
    local tags fam
    # untagged first: the sender itself is sound
    for tags in "" 8100:0 8100:10 88a8:0,8100:0 88a8:20,8100:30 9100:7 8100:4094,8100:1; do
        for fam in 4 6; do tagged_case "$tags" "$fam"; done
    done
    local before
    before=$(packets 'drop *.www.example.net')
    tagged 10.53.1.1 "$S4" 8100:0,8100:0,8100:0 5 '{}.www.example.net' >/dev/null
    check "2: three tags: more than the program reads: not matched (no rule counts them)" \
        test "$(packets 'drop *.www.example.net')" = "$before"
}

# --- 3. idempotence and convergence
convergence() {
    local g id id2 old
    run xdp apply --dev "$DEV" "${A[@]}"
    check "3: apply list A" rc_is 0
    g=$(js "s['generation']") id=$(attached)
    run xdp apply --dev "$DEV" "${A[@]}"
    check "3: apply A again: 'unchanged'" ran 0 "generation $g unchanged"
    check "3: ... the same program attached, the same generation" \
        eval 'test "$(attached)" = "$id" && test "$(js "s[\"generation\"]")" = "$g"'
    check "3: status with list A exits 0" whole "${A[@]}"
    check "3: status with list B exits 3 (rules differ)" not_whole "rules differ" "${B[@]}"
    check "3: status with list A but other addresses exits 3" \
        not_whole "addresses differ" -a "$S4" --rules "$TMP/a.rules"
    run xdp apply --dev "$DEV" "${B[@]}"
    check "3: apply list B: a new generation" ran 0 "generation $((g + 1)) attached"
    check "3: ... the old generation's pins and rule list are gone" \
        eval 'test ! -e "$(ns_dir "$XDP_PINS")/g$g" && test ! -e "$(ns_dir "$XDP_STATE")/g$g.json"'
    check "3: ... one generation left" one_generation
    check "3: ... status with list B exits 0" whole "${B[@]}"
    check "3: ... list B behaves: *.ns dropped, *.mail answered" \
        eval 'lost_is 10 "$S4" 10 ns.example.net && lost_is 0 "$S4" 10 mail.example.net'

    # Broken: the program detached behind the tool's back.
    srv ip link set dev "$DEV" xdp off
    check "3: detached by hand: status exits 3" not_whole "no deployment is attached"
    check "3: ... the flood is answered" lost_is 0 "$S4" 10
    run xdp apply --dev "$DEV" "${B[@]}"
    check "3: apply repairs it (the stale generation removed)" ran 0 "attached"
    check "3: ... whole again, one generation, the flood dropped" \
        eval 'whole "${B[@]}" && one_generation && lost_is 10 "$S4" 10'
    # Broken: the rule list of the attached generation lost.
    g=$(js "s['generation']")
    rm -f "$(ns_dir "$XDP_STATE")/g$g.json"
    check "3: rule list removed: status exits 3" not_whole "is missing"
    run xdp apply --dev "$DEV" "${B[@]}"
    check "3: apply repairs it with a new generation" ran 0 "generation $((g + 1)) attached"
    check "3: ... whole, one generation" eval 'whole "${B[@]}" && one_generation'

    # Attach mode: generic and back to native.
    run xdp apply --dev "$DEV" --generic "${B[@]}"
    check "3: apply --generic moves the deployment to generic mode" ran 0 "generic mode"
    check "3: ... the kernel has it in generic mode, status agrees" \
        eval 'srv ip -d link show dev "$DEV" | grep -q "xdpgeneric" && whole "${B[@]}" && has "generic mode"'
    check "3: ... the flood dropped in generic mode" lost_is 10 "$S4" 10
    run xdp apply --dev "$DEV" "${B[@]}"
    check "3: apply without a mode keeps generic: unchanged" ran 0 "unchanged (generic mode)"
    run xdp apply --dev "$DEV" --native "${B[@]}"
    check "3: apply --native moves it back" ran 0 "attached (native mode)"
    check "3: ... whole, one generation, flood dropped" \
        eval 'whole "${B[@]}" && one_generation && lost_is 10 "$S4" 10'

    # Another owner's program (other roots): refused, left alone, in both directions.
    id=$(attached)
    run xdp_other apply --dev "$DEV" "${A[@]}"
    check "3: another owner's apply over ours is refused (exit 2)" ran 2 "did not attach"
    check "3: ... ours stays attached and whole" eval 'test "$(attached)" = "$id" && whole "${B[@]}"'
    check "3: ... the other owner pinned nothing" test "$(gens "$OTHER_PINS")" = 0
    run xdp delete --dev "$DEV"
    check "3: delete ours" rc_is 0
    run xdp_other apply --dev "$DEV" "${A[@]}"
    check "3: the other owner attaches its own" rc_is 0
    id2=$(attached)
    run xdp apply --dev "$DEV" "${B[@]}"
    check "3: apply over a foreign program is refused (exit 2)" ran 2 "did not attach (id $id2"
    check "3: ... the foreign program stays attached" test "$(attached)" = "$id2"
    check "3: ... status exits 3 naming it" not_whole "did not attach"
    run xdp add --dev "$DEV" --drop '*.mail.example.net'
    check "3: ... add refused (exit 2)" ran 2 "did not attach"
    run xdp delete --dev "$DEV"
    check "3: ... delete refused (exit 2), the foreign program left" \
        eval 'ran 2 "did not attach" && test "$(attached)" = "$id2"'
    check "3: ... and it still works (list A: *.mail dropped)" lost_is 10 "$S4" 10 mail.example.net
    run xdp_other delete --dev "$DEV"
    check "3: the other owner deletes its own" eval 'rc_is 0 && test -z "$(attached)"'
    run xdp apply --dev "$DEV" "${B[@]}"
    check "3: ours applies again" eval 'rc_is 0 && whole "${B[@]}" && one_generation'

    # Another deployment name on the same roots: refused, left alone.
    id=$(attached)
    old=$(js "s['generation']")
    check "3: (generation $old, program $id)" test -n "$id"
    run xdp apply --dev "$DEV" --deployment other "${A[@]}"
    check "3: apply --deployment other is refused (exit 2)" ran 2 "carries deployment 'default'"
    run xdp add --dev "$DEV" --deployment other --drop '*.mail.example.net'
    check "3: add --deployment other is refused (exit 2)" ran 2 "carries deployment 'default'"
    run xdp delete --dev "$DEV" --deployment other
    check "3: delete --deployment other is refused (exit 2)" ran 2 "carries deployment 'default'"
    check "3: ... the deployment untouched" \
        eval 'test "$(attached)" = "$id" && whole "${B[@]}" && one_generation && has "generation $old,"'
    check "3: status --deployment other exits 3" \
        not_whole "deployment 'default' is attached, not 'other'" --deployment other "${B[@]}"

    # Rules that cannot be deployed: refused before or after building, nothing changed, nothing
    # left (the 33 compiled rules fail only once the generation is being built).
    local many=() i
    for i in $(seq 33); do many+=(--drop "c$i?.example.net"); done
    for bad in "--drop a.b,c" "--drop-bpf nosuchgenerator" "many"; do
        if [ "$bad" = many ]; then
            run xdp apply --dev "$DEV" "${many[@]}"
            bad="33 compiled rules"
        elif [ "$bad" = "--drop-bpf nosuchgenerator" ]; then
            run xdp apply --dev "$DEV" --drop-bpf nosuchgenerator
        else
            run xdp apply --dev "$DEV" --drop a.b,c
        fi
        check "3: apply $bad refused (exit 2); the deployment untouched, nothing left" \
            eval 'rc_is 2 && test "$(attached)" = "$id" && whole "${B[@]}" && one_generation'
    done
    run xdp add --dev "$DEV" "${many[@]}"
    check "3: add of 33 compiled rules refused (exit 2); untouched, nothing left" \
        eval 'rc_is 2 && test "$(attached)" = "$id" && whole "${B[@]}" && one_generation'
}

# --- 4. live add/remove under load: no legitimate query lost
live() {
    run xdp apply --dev "$DEV" "${BASE[@]}"
    check "4: apply the base list" rc_is 0
    local g id
    g=$(js "s['generation']") id=$(attached)
    check "4: (generation $g, program $id)" test -n "$id"
    local legit=$TMP/legit.txt
    printf '%s\n' "www.example.net A" "www.example.net AAAA" "mail.example.net A" "ns.example.net A" \
        "example.net SOA" "example.net NS" "nothere.example.net A" "WwW.ExAmPlE.NeT A" >"$legit"
    # The load runs LOAD seconds; add/remove pairs run all that time, at least LIVE of them.
    local seconds=$LOAD p4 p6
    setsid ip netns exec "$CLI" dnsperf -s "$S4" -d "$legit" -l "$seconds" -Q 200 -c 1 -q 20 -t 3 \
        >"$TMP/perf4.txt" 2>&1 &
    p4=$!
    setsid ip netns exec "$CLI" dnsperf -s "$S6" -d "$legit" -l "$seconds" -Q 200 -c 1 -q 20 -t 3 \
        >"$TMP/perf6.txt" 2>&1 &
    p6=$!
    sleep 0.5
    local i=0 during=0 start=$SECONDS errors=0 swaps=0 log=$TMP/live.log
    : >"$log"
    while [ "$i" -lt "$LIVE" ] || kill -0 "$p4" 2>/dev/null; do
        i=$((i + 1))
        local rules=(--drop "*.bad$i.example.org" --accept "ok$i.example.org" --drop "junk$i.example.net"
            --drop "spam$i.**" --accept "*.fine$i.example.net" --drop '*{20-63}.example.net')
        local addr=()
        [ $((i % 5)) = 0 ] && addr=(-a "192.0.2.$((i % 250 + 1))")
        xdp add --dev "$DEV" -q "${rules[@]}" "${addr[@]}" >>"$log" 2>&1 || errors=$((errors + 1))
        # the protected addresses themselves, now and then (legitimate queries pass either way)
        if [ $((i % 10)) = 0 ]; then
            xdp remove --dev "$DEV" -q -a "$S4" -a "$S6" >>"$log" 2>&1 || errors=$((errors + 1))
            xdp add --dev "$DEV" -q -a "$S4" -a "$S6" >>"$log" 2>&1 || errors=$((errors + 1))
        fi
        xdp remove --dev "$DEV" -q "${rules[@]}" "${addr[@]}" >>"$log" 2>&1 || errors=$((errors + 1))
        # a compiled rule now and then: added and removed by new generations (program swaps)
        if [ $((i % 10)) = 5 ]; then
            xdp add --dev "$DEV" -q --drop "q?.bad$i.example.org" >>"$log" 2>&1 || errors=$((errors + 1))
            xdp remove --dev "$DEV" -q --drop "q?.bad$i.example.org" >>"$log" 2>&1 || errors=$((errors + 1))
            swaps=$((swaps + 2))
        fi
        if kill -0 "$p4" 2>/dev/null; then during=$i; fi
        [ $((SECONDS - start)) -lt $((seconds + XDP_LIMIT)) ] || break
    done
    check "4: $i add/remove pairs (6 rules each; $swaps compiled-rule swaps) all succeeded" \
        eval '[ "$errors" = 0 ] || { note "$(cat "$log")"; false; }'
    check "4: ... $during of them while the load ran (at least $LIVE)" test "$during" -ge "$LIVE"
    local rc4=0 rc6=0
    wait_bounded "$p4" $((seconds + 30)) || rc4=$?
    wait_bounded "$p6" 30 || rc6=$?
    local f
    for f in perf4 perf6; do
        local sent lost completed
        sent=$(awk '/Queries sent:/ { print $3 }' "$TMP/$f.txt")
        completed=$(awk '/Queries completed:/ { print $3 }' "$TMP/$f.txt")
        lost=$(awk '/Queries lost:/ { print $3 }' "$TMP/$f.txt")
        check "4: $f: every legitimate query answered (sent ${sent:-?}, completed ${completed:-?}, lost ${lost:-?})" \
            eval '[ "$lost" = 0 ] && [ "${sent:-0}" -ge $((seconds * 100)) ] && [ "$completed" = "$sent" ] || { note "$(cat "$TMP/$f.txt")"; false; }'
    done
    check "4: dnsperf runs ended normally" test "$rc4$rc6" = 00
    check "4: changed in place but for the $swaps new generations the compiled rules made" \
        test "$(js "s['generation']")" = $((g + swaps))
    check "4: back to the base list exactly: whole, one generation" eval 'whole "${BASE[@]}" && one_generation'
    check "4: ... and it still drops the flood, answers the legitimate" \
        eval 'lost_is 20 "$S4" 20 && lost_is 20 "$S6" 20 && answered "$S4" www.example.net'

    # Changes that decide names: drop added / removed, an accept added after a drop ranks below.
    check "4: before: flood under mail.example.net answered" lost_is 0 "$S4" 20 mail.example.net
    run xdp add --dev "$DEV" --drop '*.mail.example.net'
    check "4: add --drop '*.mail.example.net'" ran 0 "changed in place"
    check "4: ... its flood dropped (IPv4, IPv6), mail.example.net itself answered" \
        eval 'lost_is 20 "$S4" 20 mail.example.net && lost_is 20 "$S6" 20 mail.example.net && answered "$S4" mail.example.net'
    check "4: ... counted by the added rule" test "$(packets 'drop *.mail.example.net')" = 40
    run xdp add --dev "$DEV" --accept 'keep.mail.example.net' --drop 'mail.example.net'
    check "4: add an accept (after the drop) and a drop of the exact name" rc_is 0
    check "4: ... the accepted name still dropped (the earlier drop decides)" dropped "$S4" keep.mail.example.net
    check "4: ... mail.example.net now dropped" dropped "$S6" mail.example.net
    check "4: ... status lists the rules in order" \
        whole -a "$S4" -a "$S6" --accept www.example.net --drop '*.www.example.net' \
        --drop '*.mail.example.net' --accept keep.mail.example.net --drop mail.example.net
    run xdp remove --dev "$DEV" --drop '*.mail.example.net' --drop mail.example.net
    check "4: remove both drops" rc_is 0
    check "4: ... the flood and the names answered again" \
        eval 'lost_is 0 "$S4" 20 mail.example.net && answered "$S4" keep.mail.example.net && answered "$S6" mail.example.net'
    run xdp remove --dev "$DEV" --drop '*.mail.example.net'
    check "4: removing a rule not in the deployment is refused (exit 2)" ran 2 "is not in the deployment"
    run xdp add --dev "$DEV" --accept www.example.net
    check "4: adding a rule already there changes nothing" ran 0 "unchanged"
    run xdp remove --dev "$DEV" --accept keep.mail.example.net
    check "4: ... back to the base list: whole, one generation" \
        eval 'rc_is 0 && whole "${BASE[@]}" && one_generation'
}

# --- 5. concurrent runs
concurrent() {
    local r ok=0 pa pb ra rb waited=0
    for r in $(seq "$ROUNDS"); do
        setsid nsenter --net="/run/netns/$SRV" env BPFTOOLS_XDP_PINS="$XDP_PINS" BPFTOOLS_XDP_STATE="$XDP_STATE" \
            "$BIN/xdp-bpf" apply --dev "$DEV" "${A[@]}" >"$TMP/ca.txt" 2>&1 &
        pa=$!
        setsid nsenter --net="/run/netns/$SRV" env BPFTOOLS_XDP_PINS="$XDP_PINS" BPFTOOLS_XDP_STATE="$XDP_STATE" \
            "$BIN/xdp-bpf" apply --dev "$DEV" "${B[@]}" >"$TMP/cb.txt" 2>&1 &
        pb=$!
        ra=0 rb=0
        { wait_bounded "$pa" "$XDP_LIMIT"; } 2>/dev/null || ra=$?
        { wait_bounded "$pb" "$XDP_LIMIT"; } 2>/dev/null || rb=$?
        grep -qh "holds the interface's lock: waiting" "$TMP/ca.txt" "$TMP/cb.txt" && waited=$((waited + 1))
        local which=none
        if is_list "${A[@]}"; then which=A; elif is_list "${B[@]}"; then which=B; fi
        if [ "$ra$rb" = 00 ] && [ $which != none ] && is_list && one_generation; then
            ok=$((ok + 1))
        else
            note "round $r: exits $ra $rb, attached list $which: $(cat "$TMP/ca.txt" "$TMP/cb.txt" "$OUT")"
        fi
    done
    check "5: $ROUNDS rounds of two concurrent applies (A, B): both succeed, whole, exactly A or B, one generation ($ok ok; $waited waited for the lock)" \
        test "$ok" = "$ROUNDS"
    # Two concurrent adds: both rules land (no change lost).
    run xdp apply --dev "$DEV" "${A[@]}"
    local p1 p2 r1=0 r2=0
    setsid nsenter --net="/run/netns/$SRV" env BPFTOOLS_XDP_PINS="$XDP_PINS" BPFTOOLS_XDP_STATE="$XDP_STATE" \
        "$BIN/xdp-bpf" add --dev "$DEV" --drop '*.x1.example.org' >"$TMP/c1.txt" 2>&1 &
    p1=$!
    setsid nsenter --net="/run/netns/$SRV" env BPFTOOLS_XDP_PINS="$XDP_PINS" BPFTOOLS_XDP_STATE="$XDP_STATE" \
        "$BIN/xdp-bpf" add --dev "$DEV" --drop '*.x2.example.org' >"$TMP/c2.txt" 2>&1 &
    p2=$!
    wait_bounded "$p1" "$XDP_LIMIT" || r1=$?
    wait_bounded "$p2" "$XDP_LIMIT" || r2=$?
    check "5: two concurrent adds both succeed (exits $r1 $r2)" test "$r1$r2" = 00
    check "5: ... both rules are there, after list A" \
        eval '{ is_list "${A[@]}" --drop "*.x1.example.org" --drop "*.x2.example.org" ||
            whole "${A[@]}" --drop "*.x2.example.org" --drop "*.x1.example.org"; } && one_generation'
}

# --- 6. SIGKILL during apply: the old or the new generation stays attached, whole. Each
# round applies the list not attached (A <-> B) and kills the run at a random moment.
kills() {
    # The kills come at random in 0..SPAN ms: 1.3 times an apply of the same list timed here
    # (most kills then land mid-run), at most 200.
    local t0 t1 t2 span_a span_b span
    t0=$(date +%s%N)
    run xdp apply --dev "$DEV" "${A[@]}"
    t1=$(date +%s%N)
    run xdp apply --dev "$DEV" "${B[@]}"
    t2=$(date +%s%N)
    span_a=$(((t1 - t0) * 13 / 10000000)) span_b=$(((t2 - t1) * 13 / 10000000))
    [ "$span_a" -le 200 ] || span_a=200
    [ "$span_b" -le 200 ] || span_b=200
    check "6: start from list B (applies take $(((t1 - t0) / 1000000)) ms (A), $(((t2 - t1) / 1000000)) ms (B): kills in 0-$span_a ms, 0-$span_b ms)" rc_is 0
    local i target prev=B killed=0 finished=0 ok=0 leftover=0 repairs=0 tmp=0 pid rc delay cur
    for i in $(seq "$KILLS"); do
        # always the list not attached: every run builds and swaps a generation
        if [ "$prev" = B ]; then target=A span=$span_a; else target=B span=$span_b; fi
        local args=(-a "$S4" -a "$S6" --rules "$TMP/${target,,}.rules")
        delay=$((RANDOM % (span + 1)))
        setsid nsenter --net="/run/netns/$SRV" env BPFTOOLS_XDP_PINS="$XDP_PINS" BPFTOOLS_XDP_STATE="$XDP_STATE" \
            "$BIN/xdp-bpf" apply -q --dev "$DEV" "${args[@]}" >"$TMP/kill.txt" 2>&1 &
        pid=$!
        sleep "$(printf '0.%03d' "$delay")"
        kill -KILL "$pid" 2>/dev/null || true
        rc=0
        { wait_bounded "$pid" "$XDP_LIMIT"; } 2>/dev/null || rc=$?
        case $rc in
        0) finished=$((finished + 1)) ;;
        137) killed=$((killed + 1)) ;;
        *) note "$(cat "$TMP/kill.txt")" ;;
        esac
        local problems=""
        run xdp status --dev "$DEV"
        if [ "$RC" = 3 ] && ! grep '^problem:' "$OUT" | grep -vq "map entries differ"; then
            repairs=$((repairs + 1))
        elif [ "$RC" != 0 ]; then
            problems="status exit $RC: $(cat "$OUT")"
        fi
        cur=none
        if is_list "${A[@]}"; then cur=A; elif is_list "${B[@]}"; then cur=B; fi
        [ "$(gens)" -gt 1 ] && leftover=$((leftover + 1))
        [ "$(temps)" = 0 ] || tmp=$((tmp + 1))
        if [ -z "$(attached)" ] || [ "$(attached)" != "$(js "s['prog_id']")" ]; then
            problems+=" attached program not ours"
        fi
        if [ "$cur" != "$prev" ] && [ "$cur" != "$target" ]; then
            problems+=" attached list $cur, expected $prev or $target"
        fi
        # DNS per the attached list: A drops *.mail, B drops *.ns
        local a_name=k$i.mail.example.net b_name=k$i.ns.example.net
        if [ "$cur" = A ] && ! { dropped "$S4" "$a_name" && answered "$S4" "$b_name"; }; then
            problems+=" DNS not as list A"
        elif [ "$cur" = B ] && ! { answered "$S4" "$a_name" && dropped "$S4" "$b_name"; }; then
            problems+=" DNS not as list B"
        fi
        [ "$rc" = 0 ] || [ "$rc" = 137 ] || problems+=" apply exited $rc"
        [ -n "$problems" ] || ok=$((ok + 1))
        [ -z "$problems" ] || note "round $i (apply $target, kill at ${delay}ms, exit $rc):$problems"
        [ "$cur" = none ] || prev=$cur
    done
    check "6: $KILLS applies killed at random: each time exactly our program attached, whole, the old or the new list, DNS as it says ($ok ok)" \
        test "$ok" = "$KILLS"
    check "6: ... the kill landed mid-run in $killed rounds ($finished finished first; after $leftover a stale generation was left, after $tmp a temporary file; $repairs map repairs pending)" \
        test "$killed" -ge $((KILLS / 3))
    run xdp apply --dev "$DEV" "${A[@]}"
    check "6: the next apply converges: list A, whole" eval 'rc_is 0 && whole "${A[@]}"'
    check "6: ... and leaves one generation, nothing else" one_generation
    check "6: ... and no temporary file of a killed run's rule list ($(temps) left)" test "$(temps)" = 0
}

# --- 6b. SIGKILL during add: the rule list is written first, then the maps one key at a time;
# a killed add leaves maps that status reports as differing (exit 3, nothing else wrong),
# legitimate queries pass all along, and running the change again or apply repairs them.
kills_change() {
    run xdp apply --dev "$DEV" "${BASE[@]}"
    check "6b: start from the base list" rc_is 0
    local big=() i t0 t1 span
    for i in $(seq 1000); do big+=(--drop "*.n$i.example.org" --accept "a$i.example.org"); done
    t0=$(date +%s%N)
    run xdp add --dev "$DEV" "${big[@]}"
    t1=$(date +%s%N)
    span=$(((t1 - t0) * 3 / 2000000))
    check "6b: add 2000 rules in one run (takes $(((t1 - t0) / 1000000)) ms: kills in 0-$span ms)" \
        eval 'ran 0 "changed in place" && whole "${BASE[@]}" "${big[@]}"'
    run xdp remove --dev "$DEV" "${big[@]}"
    local r pid rc delay ok=0 differ=0 again=0 killed=0 problems
    for r in $(seq "$KILL_CHANGES"); do
        delay=$((RANDOM % (span + 1)))
        setsid nsenter --net="/run/netns/$SRV" env BPFTOOLS_XDP_PINS="$XDP_PINS" BPFTOOLS_XDP_STATE="$XDP_STATE" \
            "$BIN/xdp-bpf" add -q --dev "$DEV" "${big[@]}" >"$TMP/kill.txt" 2>&1 &
        pid=$!
        sleep "$(printf '0.%03d' "$delay")"
        kill -KILL "$pid" 2>/dev/null || true
        rc=0
        { wait_bounded "$pid" "$XDP_LIMIT"; } 2>/dev/null || rc=$?
        [ "$rc" != 137 ] || killed=$((killed + 1))
        problems=""
        [ "$rc" = 0 ] || [ "$rc" = 137 ] || problems+=" add exited $rc: $(cat "$TMP/kill.txt")"
        # the maps as the kill left them pass legitimate queries
        if ! { answered "$S4" www.example.net && answered "$S6" mail.example.net; }; then
            problems+=" a legitimate query lost"
        fi
        run xdp status --dev "$DEV"
        if [ "$RC" = 3 ] && ! grep '^problem:' "$OUT" | grep -vq "map entries differ"; then
            differ=$((differ + 1))
            # the same add again, as status advises: the maps brought to the list
            xdp add -q --dev "$DEV" "${big[@]}" >/dev/null 2>&1 || problems+=" add again failed"
            if is_list; then
                again=$((again + 1))
            else
                note "round $r: the same add again left the maps differing: $(xdp status --dev "$DEV" | grep '^problem')"
                # apply of the list the state holds (the base list and the change) repairs them
                xdp apply -q --dev "$DEV" "${BASE[@]}" "${big[@]}" >/dev/null 2>&1 || problems+=" apply failed"
                is_list "${BASE[@]}" "${big[@]}" || problems+=" apply did not repair the maps"
            fi
        elif [ "$RC" != 0 ]; then
            problems+=" status exit $RC: $(cat "$OUT")"
        fi
        # back to the base list: remove whatever of the change the list holds
        if ! is_list "${BASE[@]}"; then
            xdp apply -q --dev "$DEV" "${BASE[@]}" >/dev/null 2>&1 || problems+=" apply of the base list failed"
        fi
        is_list "${BASE[@]}" || problems+=" apply did not bring back the base list"
        [ -n "$problems" ] || ok=$((ok + 1))
        [ -z "$problems" ] || note "round $r (kill at ${delay}ms, exit $rc):$problems"
    done
    check "6b: $KILL_CHANGES adds of 2000 rules killed at 0-$span ms ($killed mid-run): status whole or only map differences ($differ times), legitimate queries answered, the differences repaired ($ok ok)" \
        test "$ok" = "$KILL_CHANGES"
    check "6b: ... by the same add run again, as status advises ($again of $differ; else by apply)" \
        test "$again" = "$differ"
    check "6b: ... and apply leaves the base list whole, one generation" \
        eval 'whole "${BASE[@]}" && one_generation'
}

# --- 7. delete
delete() {
    run xdp delete --dev "$DEV"
    check "7: delete detaches and removes" ran 0 "detached and removed"
    check "7: ... no XDP program on the interface" test -z "$(attached)"
    check "7: ... no pins left for the interface" test ! -e "$(ns_dir "$XDP_PINS")"
    check "7: ... no rule lists left" test "$(lists)" = 0
    check "7: ... floods and legitimate names answered (IPv4, IPv6)" \
        eval 'lost_is 0 "$S4" 20 && lost_is 0 "$S6" 20 && answered "$S4" www.example.net && answered "$S6" mail.example.net'
    check "7: status exits 3 (no deployment)" not_whole "no deployment is attached"
    run xdp delete --dev "$DEV"
    check "7: delete again: nothing to do (exit 0)" ran 0 "no deployment attached"
    run xdp add --dev "$DEV" --drop '*.www.example.net'
    check "7: add without a deployment is refused (exit 2)" ran 2 "no deployment on interface"
}

basics
compiled
vlan
convergence
live
concurrent
kills
kills_change
delete

echo "1..$N"
SUMMARIZED=true
summary
