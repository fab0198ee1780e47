# Shared by the end-to-end scripts of the deployment scripts (sourced, not run): a server
# namespace running Knot and a client namespace with dig and dnsperf, joined by a veth pair;
# helpers to run generated scripts in the server namespace with one iptables backend, and to
# count and compare what they made. Traffic goes only between the two namespaces.
# shellcheck shell=bash

E2E_NAME=${E2E_NAME:-e2e}
if [ "$(id -u)" != 0 ]; then
    echo "$E2E_NAME: SKIP: needs root (network namespaces, iptables)"
    exit 0
fi
for tool in ip iptables-nft iptables-legacy ip6tables-nft ip6tables-legacy ipset knotd dig dnsperf setsid flock nsenter python3; do
    command -v "$tool" >/dev/null || { echo "$E2E_NAME: FAIL: $tool is not installed"; exit 1; }
done

# BPFTOOLS_BIN: a directory of already built binaries (default: build them here).
if [ -n "${BPFTOOLS_BIN:-}" ]; then
    BIN=$BPFTOOLS_BIN
else
    cargo build --release --quiet || exit 1
    # shellcheck source=scripts/release-dir.bash
    . "$(dirname "${BASH_SOURCE[0]}")/release-dir.bash"
    BIN=$(release_dir) || exit 1
fi
TMP=$(mktemp -d)
# The scripts' lock (LOCK_FILE, default /run/bpftools-iptables.lock) is this run's own: runs
# of this test serialize with each other as in production, but never wait on the host's.
export LOCK_FILE=$TMP/deploy.lock
PASSED=0
FAILED=0
SRV=
CLI=

pass() { PASSED=$((PASSED + 1)); echo "ok: $* [${SECONDS}s]"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
srv() { ip netns exec "$SRV" "$@"; }
# hung WHAT: prints what every process of the test's namespaces is doing and the file locks
# held, for a run that did not end in time.
hung() {
    echo "$E2E_NAME: HUNG: $*"
    local pid
    for pid in $(ip netns pids "$SRV" 2>/dev/null) $(ip netns pids "$CLI" 2>/dev/null); do
        ps -o pid=,ppid=,pgid=,stat=,wchan:24=,etimes=,args= -p "$pid" 2>/dev/null
    done
    echo "$E2E_NAME: file locks (/proc/locks):"
    cat /proc/locks
}
# wait_bounded PID [SECONDS]: waits for a background run like `wait PID`, but at most SECONDS
# (default 120): then it reports what hangs (hung), kills the run's process group and fails.
wait_bounded() {
    local pid=$1 limit=${2:-120} start=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
        if [ $((SECONDS - start)) -ge "$limit" ]; then
            hung "process $pid still running after ${limit}s"
            kill -KILL -- -"$pid" 2>/dev/null
            kill -KILL "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            return 124
        fi
        sleep 0.05
    done
    wait "$pid" 2>/dev/null
}
not() { ! "$@"; }
# with VAR=VALUE COMMAND...: COMMAND (run_s) with one more variable in the script's environment
with() {
    local E2E_ENV=$1
    shift
    "$@"
}
cli() { ip netns exec "$CLI" "$@"; }

net_down() {
    local pid
    for pid in $(ip netns pids "$SRV" 2>/dev/null) $(ip netns pids "$CLI" 2>/dev/null); do
        kill -9 "$pid" 2>/dev/null
    done
    [ -n "$SRV" ] && ip netns del "$SRV" 2>/dev/null
    [ -n "$CLI" ] && ip netns del "$CLI" 2>/dev/null
    SRV=""
    CLI=""
}
finish() {
    net_down
    rm -rf "$TMP"
}
trap finish EXIT

# net_up BACKEND: fresh namespaces, the DNS server running, scripts run with BACKEND (nft or
# legacy): cli (10.53.1.1, fd53:1::1) <-> srv (10.53.1.2, fd53:1::2)
net_up() {
    BACKEND=$1
    IPT4=iptables-$BACKEND
    IPT6=ip6tables-$BACKEND
    SRV=${E2E_NS:-bpfe2e}-srv-$$-$BACKEND
    CLI=${E2E_NS:-bpfe2e}-cli-$$-$BACKEND
    ip netns add "$SRV" && ip netns add "$CLI" || exit 1
    ip link add v-cli netns "$CLI" type veth peer name v-srv netns "$SRV" || exit 1
    cli ip link set lo up
    srv ip link set lo up
    cli ip addr add 10.53.1.1/24 dev v-cli
    srv ip addr add 10.53.1.2/24 dev v-srv
    cli ip -6 addr add fd53:1::1/64 dev v-cli nodad
    srv ip -6 addr add fd53:1::2/64 dev v-srv nodad
    cli ip link set v-cli up
    srv ip link set v-srv up
    srv ip route add default via 10.53.1.1 dev v-srv
    srv ip -6 route add default via fd53:1::1 dev v-srv
    local zone=$TMP/zone-$BACKEND
    mkdir -p "$zone"
    cat >"$zone/example.net.zone" <<'ZONE'
$ORIGIN example.net.
$TTL 300
@       SOA ns hostmaster 1 3600 600 86400 300
@       NS  ns
ns      A   10.53.1.2
www     A   192.0.2.2
www     AAAA 2001:db8::2
mail    A   192.0.2.3
ZONE
    cat >"$zone/knot.conf" <<CONF
server:
    rundir: "$zone"
    listen: [ 10.53.1.2@53, fd53:1::2@53 ]
log:
  - target: stderr
    any: warning
database:
    storage: "$zone"
zone:
  - domain: example.net
    file: "$zone/example.net.zone"
CONF
    ip netns exec "$SRV" knotd -c "$zone/knot.conf" >"$zone/knotd.log" 2>&1 </dev/null &
    local _
    for _ in $(seq 50); do
        cli dig +time=1 +tries=1 @10.53.1.2 www.example.net A +short 2>/dev/null | grep -q 192.0.2.2 && break
        sleep 0.2
    done
}

# gen DIR FILE ARGS...: iptables-bpf -w DIR/FILE ARGS (run in DIR); prints the path
gen() {
    local dir=$1 file=$2
    shift 2
    mkdir -p "$dir"
    (cd "$dir" && "$BIN/iptables-bpf" --force -w "$file" "$@" >/dev/null 2>"$dir/gen.err") || return 1
    echo "$dir/$file"
}

# The iptables command of a script's family.
ipt_of() {
    if grep -q '^FAMILY=inet6$' "$1"; then echo "$IPT6"; else echo "$IPT4"; fi
}

# run_s SCRIPT ARGS...: runs a generated script in the server namespace with this backend
# (DEFAULTINT=v-srv unless the environment sets it)
run_s() {
    local script=$1
    shift
    ip netns exec "$SRV" env IPTABLES="$(ipt_of "$script")" DEFAULTINT="${DEFAULTINT:-v-srv}" \
        ${E2E_ENV:+$E2E_ENV} "$script" "$@"
}

# owned SCRIPT: the rules the script's deployment owns, in order, as "chain tag" lines
owned() {
    local deployment
    deployment=$(sed -n 's/^DEPLOYMENT=//p' "$1")
    srv "$(ipt_of "$1")" -w -S | sed -n "s/^-A \([^ ]*\) .*\(bpftools=$deployment\/[^\" ]*\).*/-A \1  \2/p"
}
# wanted SCRIPT: the rules the script wants (its tags, as the script computes them), in order
wanted() {
    # Build them from the data block: one rule per target, in INPUT or in the chain.
    local deployment version chain n i iface=${DEFAULTINT:-v-srv}
    deployment=$(sed -n 's/^DEPLOYMENT=//p' "$1")
    version=$(sed -n 's/^VERSION=//p' "$1")
    chain=$(sed -n "s/^CHAIN='\(.*\)'$/\1/p" "$1")
    n=$(sed -n 's/^TARGETS=(\(.*\))$/\1/p' "$1" | wc -w)
    if [ -n "$chain" ]; then
        echo "-A INPUT  bpftools=$deployment/$version/j/$iface"
        for ((i = 0; i < n; i++)); do echo "-A $chain  bpftools=$deployment/$version/c$i"; done
    else
        for ((i = 0; i < n; i++)); do echo "-A INPUT  bpftools=$deployment/$version/$i/$iface"; done
    fi
}
# converged SCRIPT: the script's deployment holds exactly its rules, in order, and its set
converged() {
    [ "$(owned "$1")" = "$(wanted "$1")" ] && set_of_exists "$1"
}
# nothing_of SCRIPT: nothing of the script's deployment is left (rules, chains, sets)
nothing_of() {
    local deployment
    deployment=$(sed -n 's/^DEPLOYMENT=//p' "$1")
    ! srv "$(ipt_of "$1")" -w -S | grep -q -- "$deployment" &&
        ! srv ipset list -n | grep -q -- "$deployment"
}
set_of_exists() {
    srv ipset list -n | grep -qx -- "$(sed -n 's/^SET=//p' "$1")"
}
set_members() {
    srv ipset list "$(sed -n 's/^SET=//p' "$1")" | sed -n '/^Members:/,$p' | tail -n +2 | grep -c .
}

# answered SERVER NAME: true when the server answers the query
answered() {
    local out
    out=$(cli dig +time=1 +tries=1 @"$1" "$2" A 2>/dev/null) || return 1
    grep -q 'status: ' <<<"$out"
}
# flood SERVER COUNT [SUFFIX]: COUNT random-name queries under SUFFIX (www.example.net);
# prints how many got no answer
flood() {
    local server=$1 count=$2 suffix=${3:-www.example.net} file=$TMP/flood.txt i
    : >"$file"
    for i in $(seq "$count"); do echo "r$RANDOM$i.$suffix A" >>"$file"; done
    cli dnsperf -s "$server" -d "$file" -c 1 -n 1 -t 1 -q 20 2>/dev/null |
        awk '/Queries lost:/ { print $3; found = 1 } END { if (!found) print -1 }'
}
# counted SCRIPT: packets counted by the script's DROP rules
counted() {
    local deployment
    deployment=$(sed -n 's/^DEPLOYMENT=//p' "$1")
    srv "$(ipt_of "$1")" -w -S -v | grep -- "bpftools=$deployment/" | grep -- '-j DROP' |
        sed -n 's/.* -c \([0-9]*\) [0-9]*.*/\1/p' | awk '{ sum += $1 } END { print sum + 0 }'
}

summary() {
    echo "$E2E_NAME: ${SECONDS}s"
    echo "$E2E_NAME: $PASSED passed, $FAILED failed"
    [ "$FAILED" = 0 ]
}
