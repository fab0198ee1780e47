#!/usr/bin/env bash
# Template of the deployment scripts iptables-bpf writes. Everything between the DATA markers
# is replaced by the values of one deployment; the rest is copied as it is. The example data
# below keeps this file a complete script, so that shellcheck can check it on its own.
# Started by another shell (sh ./SCRIPT): run again under bash, before any bash syntax.
# shellcheck disable=SC2128,SC2039,SC3028
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# @BEGIN DATA@
FAMILY=inet
IPT_DEFAULT=iptables
DEPLOYMENT=aaaaaaaaaa
VERSION=bbbbbbbbbb
DEPLOYMENT_NAME='file:/root/bpf_dns_ip4_any_example_uk.sh'
SET=bpf4_any_example_u_aaaaaaaaaa
CHAIN=''
PROTO=udp
COMMENT='bpftools dns *.example.uk'
ADDRESSES=('192.0.2.53')
BYTECODE=(
    '4,48 0 0 0,6 0 0 65535,6 0 0 0,6 0 0 0'
)
TARGETS=(DROP)
WHAT=('*.example.uk')
# @END DATA@

set -euo pipefail
set -o errtrace
umask 077

IPTABLES="${IPTABLES:-$IPT_DEFAULT}"
IPTABLES_RESTORE="${IPTABLES_RESTORE:-${IPTABLES}-restore}"
IPSET="${IPSET:-ipset}"
INPUTPLACE="${INPUTPLACE:-1}"
LOCK_FILE="${LOCK_FILE:-/run/bpftools-iptables.lock}"
LOCK_TIMEOUT="${LOCK_TIMEOUT:-30}"
# Every rule this deployment makes carries this in its comment; nothing else is ever touched.
TAG="bpftools=$DEPLOYMENT/"
TAG_RE="bpftools=$DEPLOYMENT/[^\" ]*"
CHANGED=0
COMMITTED=0
CREATED_SET=0
UNDO_SET=()
PENDING_SIGNAL=

usage() {
    cat <<USAGE
Usage: $0 [ADDRESS...]            apply, and add ADDRESSes to the protected set
       $0 --dry-run [ADDRESS...]  print what applying would change; change nothing
       $0 --status                rules with their packet/byte counters, protected addresses
       $0 --delete                remove every rule, chain and set of this deployment
       $0 --help

Applying makes the rules exactly what this script describes, from any state (nothing, part
of them, duplicates, rules edited by hand, an earlier version of the deployment), in one
iptables-restore transaction: all the new rules appear at once, or none does. Running it
again changes nothing. The rules drop ${PROTO^^} port 53 traffic to the addresses in ipset
$SET that the BPF programs match, on every interface unless DEFAULTINT says one; an empty
set protects nothing.

Addresses: the ones given when the script was generated (iptables-bpf -i) are the set's
preset members: a new version of the script adds the ones it lists and removes the presets
it no longer lists. Addresses given to the script as arguments, or added by hand with
'ipset add $SET ADDRESS', stay until --delete (or 'ipset del $SET ADDRESS'), across new
versions of the deployment too. Addresses are written as ipset lists them: no leading zeros
(ipset would read 010 as octal), a host without /32 (/128), a network at its first address.

Deployment: every rule, chain and set this script makes is tagged with deployment id
$DEPLOYMENT (rule comments hold '$TAG...'; the set and chain names end with
_$DEPLOYMENT and do not change between versions). The id is decided when the script is
generated: from iptables-bpf --deployment NAME if given, else the --chain NAME in chain
mode, else the absolute path of the script file written, else (a script written to stdout)
the rules themselves; the family (IPv4 or IPv6) is part of it. A script re-generated for the
same deployment replaces the rules of the previous version when applied; scripts of other
deployments, and chains or rules made by anything else, are never touched.
This deployment: $DEPLOYMENT_NAME

Backends: --status and --delete look in both iptables-nft and iptables-legacy; applying
refuses while the other backend holds this deployment's rules (and names the command that
removes them).

Environment (read on every run; --delete removes the deployment's objects whatever it says):
  IPTABLES          iptables command (default $IPT_DEFAULT; iptables-legacy/iptables-nft work)
  IPTABLES_RESTORE  its restore command (default \${IPTABLES}-restore)
  IPSET             ipset command (default ipset)
  DEFAULTINT        input interface of the rules: a name (eth0, or eth+ for a prefix), or
                    'any' for every interface; default: the one the deployment's rules have
                    now, else any
  INPUTPLACE        position of the first rule in INPUT when it is inserted (default 1)
  LOCK_FILE         lock serializing the runs (default /run/bpftools-iptables.lock)
  LOCK_TIMEOUT      seconds to wait for it (default 30)

Exit status: 0 done (--status: the protection is what this script describes), 1 failure
(with a message; nothing changed, or the previous state restored), 2 usage error, 3 --status:
the protection is not what this script describes (each difference is printed; applying
repairs it), 129/130/143 stopped by a signal (before the commit: nothing changed; after it:
the new state is in place).
USAGE
}

die() {
    echo "$0: $*" >&2
    exit 1
}

warn() {
    echo "$0: $*" >&2
}

# A command that failed where no failure was expected: say which, then the EXIT trap undoes.
unexpected() {
    local status=$1 line=$2 command=$3
    trap - ERR
    echo "$0: unexpected failure (status $status) at line $line: $command" >&2
    exit 1
}

# Undoes what a failed run did before its rules were committed.
on_exit() {
    local status=$?
    trap - ERR
    if [ "$status" != 0 ] && [ "$COMMITTED" = 0 ]; then
        if [ "$CREATED_SET" = 1 ]; then
            "$IPSET" destroy "$SET" 2>/dev/null || true
        elif [ "${#UNDO_SET[@]}" != 0 ]; then
            printf '%s\n' "${UNDO_SET[@]}" | "$IPSET" restore -exist 2>/dev/null || true
        fi
    fi
    return "$status"
}

on_signal() {
    local code=$1
    if [ "$COMMITTED" = 1 ]; then
        warn "stopped by a signal after the commit: the new rules and set are in place"
    else
        warn "stopped by a signal: nothing changed (what this run had done is undone)"
    fi
    exit "$code"
}

# From just before the first change until the state is recorded, a signal is remembered and
# acted on after (a commit is never followed by the undo of its set); the commands that
# change the kernel ignore it.
hold_signals() {
    trap 'PENDING_SIGNAL=129' HUP
    trap 'PENDING_SIGNAL=130' INT
    trap 'PENDING_SIGNAL=143' TERM
}
release_signals() {
    trap 'on_signal 129' HUP
    trap 'on_signal 130' INT
    trap 'on_signal 143' TERM
    if [ -n "$PENDING_SIGNAL" ]; then
        on_signal "$PENDING_SIGNAL"
    fi
}
# held COMMAND...: runs COMMAND with HUP, INT and TERM ignored (it finishes what it started).
held() {
    (
        trap '' HUP INT TERM
        exec "$@"
    )
}

# NORMAL: $1 written as ipset lists it (an IPv4 or IPv6 address or network of this script's
# family, a host without its prefix, a network at its first address); else false with REASON.
normalize_address() {
    local text=$1 address prefix='' max
    address=${text%%/*}
    if [[ $text == */* ]]; then
        prefix=${text#*/}
        if ! [[ $prefix =~ ^[1-9][0-9]{0,2}$ ]]; then
            REASON="bad prefix length '/$prefix'"
            return 1
        fi
    fi
    if [ "$FAMILY" = inet ]; then
        max=32
        ipv4_value "$address" || return 1
        prefix=${prefix:-32}
        [ "$prefix" -le 32 ] || { REASON="prefix /$prefix is longer than 32"; return 1; }
        local value=$V4 mask
        mask=$(((0xffffffff << (32 - prefix)) & 0xffffffff))
        value=$((value & mask))
        NORMAL="$((value >> 24)).$(((value >> 16) & 255)).$(((value >> 8) & 255)).$((value & 255))"
    else
        max=128
        ipv6_groups "$address" || return 1
        prefix=${prefix:-128}
        [ "$prefix" -le 128 ] || { REASON="prefix /$prefix is longer than 128"; return 1; }
        local i bits
        for i in 0 1 2 3 4 5 6 7; do
            bits=$((prefix - 16 * i))
            if [ "$bits" -le 0 ]; then
                GROUPS6[i]=0
            elif [ "$bits" -lt 16 ]; then
                GROUPS6[i]=$((GROUPS6[i] & ((0xffff << (16 - bits)) & 0xffff)))
            fi
        done
        ipv6_text
    fi
    if [ "$prefix" != "$max" ]; then
        NORMAL+="/$prefix"
    fi
}

# V4: the value of a dotted IPv4 address; refuses leading zeros (ipset reads them as octal).
ipv4_value() {
    local octet
    if ! [[ $1 =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]]; then
        REASON="not an IPv4 address"
        return 1
    fi
    V4=0
    for octet in "${BASH_REMATCH[@]:1}"; do
        if [[ $octet == 0?* ]]; then
            REASON="leading zero in '$octet' (ipset reads it as octal: write $((10#$octet)))"
            return 1
        fi
        [ "$octet" -le 255 ] || { REASON="'$octet' is over 255"; return 1; }
        V4=$((V4 * 256 + octet))
    done
}

# GROUPS6: the eight 16-bit groups of an IPv6 address.
ipv6_groups() {
    local address=$1 head tail group count=0 limit=8 part
    local -a words=() head_words=() tail_words=()
    REASON="not an IPv6 address"
    [[ $address =~ ^[0-9A-Fa-f:.]+$ ]] || return 1
    local v4_tail=
    if [[ $address =~ ^(.*:)([0-9]{1,3}(\.[0-9]{1,3}){3})$ ]]; then
        address=${BASH_REMATCH[1]}
        local dotted=${BASH_REMATCH[2]}
        ipv4_value "$dotted" || return 1
        v4_tail=$V4
        [[ $address == *:: ]] || address=${address%:}
        limit=6
    fi
    case $address in *:::*) return 1 ;; esac
    if [[ $address == *::* ]]; then
        head=${address%%::*}
        tail=${address#*::}
        [[ $tail == *::* ]] && return 1
    else
        head=$address
        tail=
        [[ $head == :* || $head == *: ]] && return 1
    fi
    for part in head tail; do
        local text=${!part}
        [ -z "$text" ] && continue
        [[ $text == :* || $text == *: ]] && return 1
        local IFS=:
        for group in $text; do
            [[ $group =~ ^[0-9A-Fa-f]{1,4}$ ]] || return 1
            count=$((count + 1))
            if [ "$part" = head ]; then head_words+=($((16#$group))); else tail_words+=($((16#$group))); fi
        done
    done
    if [[ $address == *::* ]]; then
        [ "$count" -lt "$limit" ] || return 1
    else
        [ "$count" = "$limit" ] || return 1
    fi
    words=("${head_words[@]+"${head_words[@]}"}")
    for ((group = count; group < limit; group++)); do words+=(0); done
    words+=("${tail_words[@]+"${tail_words[@]}"}")
    if [ -n "$v4_tail" ]; then
        words+=($((v4_tail >> 16)) $((v4_tail & 0xffff)))
    fi
    GROUPS6=("${words[@]}")
}

# NORMAL: GROUPS6 as inet_ntop (and so ipset) writes it: the longest run of two or more zero
# groups (the first of equals) as '::', lower-case hex, and ::a.b.c.d or ::ffff:a.b.c.d.
ipv6_text() {
    local i best=-1 best_len=0 run=-1 run_len=0
    for i in 0 1 2 3 4 5 6 7; do
        if [ "${GROUPS6[i]}" = 0 ]; then
            [ "$run" = -1 ] && run=$i run_len=0
            run_len=$((run_len + 1))
            if [ "$run_len" -gt "$best_len" ]; then best=$run best_len=$run_len; fi
        else
            run=-1
        fi
    done
    if [ "$best_len" -lt 2 ]; then best=-1; fi
    NORMAL=
    for i in 0 1 2 3 4 5 6 7; do
        if [ "$best" != -1 ] && [ "$i" -ge "$best" ] && [ "$i" -lt $((best + best_len)) ]; then
            [ "$i" = "$best" ] && NORMAL+=:
            continue
        fi
        [ "$i" != 0 ] && NORMAL+=:
        if [ "$i" = 6 ] && [ "$best" = 0 ] &&
            { [ "$best_len" = 6 ] || { [ "$best_len" = 5 ] && [ "${GROUPS6[5]}" = 65535 ]; }; }; then
            NORMAL+="$((GROUPS6[6] >> 8)).$((GROUPS6[6] & 255)).$((GROUPS6[7] >> 8)).$((GROUPS6[7] & 255))"
            return 0
        fi
        NORMAL+=$(printf %x "${GROUPS6[i]}")
    done
    if [ "$best" != -1 ] && [ $((best + best_len)) = 8 ]; then NORMAL+=:; fi
}

take_lock() {
    # Opened for reading when it exists: a read-only /run (or file) still serializes the runs.
    if [ -e "$LOCK_FILE" ]; then
        exec {LOCK_FD}<"$LOCK_FILE" || die "cannot open the lock file $LOCK_FILE (set LOCK_FILE)"
    else
        exec {LOCK_FD}>>"$LOCK_FILE" || die "cannot create the lock file $LOCK_FILE (set LOCK_FILE)"
    fi
    if ! flock -w "$LOCK_TIMEOUT" "$LOCK_FD"; then
        die "another bpftools script has held $LOCK_FILE for ${LOCK_TIMEOUT}s; nothing changed (try again, or raise LOCK_TIMEOUT)"
    fi
}

# OTHER_IPTABLES: the other backend's command (iptables-legacy when IPTABLES is nft, and the
# reverse), when it is installed and may hold rules; empty otherwise.
other_backend() {
    OTHER_IPTABLES=
    local version other
    version=$("$IPTABLES" -V 2>/dev/null) || return 0
    if [[ $version == *nf_tables* ]]; then
        other=$IPT_DEFAULT-legacy
        # Listing legacy tables creates them: look only when this namespace has them.
        local names=/proc/net/ip_tables_names
        [ "$FAMILY" = inet6 ] && names=/proc/net/ip6_tables_names
        [ -r "$names" ] && grep -qx filter "$names" || return 0
    elif [[ $version == *legacy* ]]; then
        other=$IPT_DEFAULT-nft
    else
        return 0
    fi
    command -v "$other" >/dev/null || return 0
    OTHER_IPTABLES=$other
}

# holds COMMAND: true when that iptables command lists a rule or chain of this deployment.
holds() {
    local rules
    rules=$("$1" -w -S 2>/dev/null) || return 1
    [[ $rules == *"$TAG"* || $rules =~ -N\ bpf_[a-z0-9_]*_$DEPLOYMENT ]]
}

# What the kernel holds now, through iptables command $1 (default IPTABLES): this
# deployment's rules and chains; and its sets.
read_state() {
    local ipt=${1:-$IPTABLES} rules line chain tag
    rules=$("$ipt" -w -S) || die "cannot list the rules ($ipt -S failed); nothing changed"
    OWNED_LINES=()
    OWNED_CHAINS=()
    INPUT_OWNED=()
    INPUT_OTHERS=0
    FIRST_OWNED_PLACE=0
    KEPT_INTERFACE=
    declare -gA CHAIN_LINES=()
    while IFS= read -r line; do
        case $line in
            "-N "*)
                chain=${line#-N }
                if [[ $chain == bpf_*_"$DEPLOYMENT" ]]; then
                    OWNED_CHAINS+=("$chain")
                    CHAIN_LINES[$chain]=
                fi
                ;;
            "-A "*)
                chain=${line#-A }
                chain=${chain%% *}
                tag=
                if [[ $line =~ $TAG_RE ]]; then
                    tag=${BASH_REMATCH[0]}
                fi
                if [[ $chain == bpf_*_"$DEPLOYMENT" ]]; then
                    CHAIN_LINES[$chain]+="${line#-A "$chain" }"$'\n'
                elif [ -n "$tag" ]; then
                    OWNED_LINES+=("$line")
                    if [ "$chain" = INPUT ]; then
                        INPUT_OWNED+=("${line#-A INPUT }")
                        if [ "$FIRST_OWNED_PLACE" = 0 ]; then
                            FIRST_OWNED_PLACE=$((INPUT_OTHERS + 1))
                            KEPT_INTERFACE=${tag##*/}
                        fi
                    fi
                elif [ "$chain" = INPUT ]; then
                    INPUT_OTHERS=$((INPUT_OTHERS + 1))
                fi
                ;;
        esac
    done <<<"$rules"
    OWNED_SETS=()
    SET_EXISTS=0
    local name
    while IFS= read -r name; do
        if [[ $name == bpf[46]_*_"$DEPLOYMENT" ]]; then
            OWNED_SETS+=("$name")
            if [ "$name" = "$SET" ]; then
                SET_EXISTS=1
            fi
        fi
    done < <("$IPSET" list -n 2>/dev/null || true)
}

# A set of this name made by something else (another type, family, or with timeouts, whose
# members would expire) is never adopted.
check_set() {
    [ "$SET_EXISTS" = 1 ] || return 0
    local header
    header=$("$IPSET" list -t "$SET") || die "cannot read the set $SET ($IPSET list -t failed)"
    if ! grep -qx 'Type: hash:net' <<<"$header" || ! grep -q "^Header: family $FAMILY .*comment" <<<"$header" ||
        grep -q "^Header:.* timeout " <<<"$header"; then
        die "the set $SET exists but is not the set this script makes (hash:net, family $FAMILY, comment, no timeout): $(grep '^\(Type\|Header\):' <<<"$header" | tr '\n' ' ')- remove it (ipset destroy $SET) and run again"
    fi
}

# The rule text as 'iptables -S' prints it (and iptables-restore reads it), quoted strings
# included: desired and present rules are compared as text.
# The rules this script wants: WANT_INPUT (in order), WANT_CHAIN (the chain's rules).
desired_state() {
    local index match
    match=
    if [ "$INTERFACE" != any ]; then
        match="-i $INTERFACE "
    fi
    match+="-p $PROTO -m $PROTO --dport 53 -m set --match-set $SET dst"
    WANT_INPUT=()
    WANT_CHAIN=
    if [ -n "$CHAIN" ]; then
        local tag
        for index in "${!TARGETS[@]}"; do
            tag="${TAG}$VERSION/c$index"
            local rule=
            if [ -n "${BYTECODE[$index]}" ]; then
                rule="-m bpf --bytecode \"${BYTECODE[$index]%,}\" "
            fi
            rule+="-m comment --comment \"$COMMENT $tag\" -j ${TARGETS[$index]}"
            WANT_CHAIN+="$rule"$'\n'
        done
        tag="${TAG}$VERSION/j/$INTERFACE"
        WANT_INPUT+=("$match -m comment --comment \"$COMMENT $tag\" -j $CHAIN")
    else
        for index in "${!TARGETS[@]}"; do
            local tag="${TAG}$VERSION/$index/$INTERFACE"
            WANT_INPUT+=("$match -m bpf --bytecode \"${BYTECODE[$index]%,}\" -m comment --comment \"$COMMENT $tag\" -j ${TARGETS[$index]}")
        done
    fi
}

# PLAN: the iptables-restore lines that take the current state to the desired one.
plan_rules() {
    PLAN=()
    local index chain line
    if [ -n "$CHAIN" ]; then
        if [ -z "${CHAIN_LINES[$CHAIN]+set}" ] || [ "${CHAIN_LINES[$CHAIN]}" != "$WANT_CHAIN" ]; then
            # Declaring the chain creates it, or empties it for its new rules in the same
            # transaction.
            PLAN+=(":$CHAIN - [0:0]")
            while IFS= read -r line; do
                [ -n "$line" ] && PLAN+=("-A $CHAIN $line")
            done <<<"$WANT_CHAIN"
        fi
    fi
    local outside=0
    for line in "${OWNED_LINES[@]+"${OWNED_LINES[@]}"}"; do
        [[ $line == "-A INPUT "* ]] || outside=1
    done
    local have want
    have=$(printf '%s\n' "${INPUT_OWNED[@]+"${INPUT_OWNED[@]}"}")
    want=$(printf '%s\n' "${WANT_INPUT[@]}")
    if [ "$outside" = 1 ] || [ "$have" != "$want" ]; then
        local place=$INPUTPLACE
        if [ "$FIRST_OWNED_PLACE" != 0 ]; then
            # A new version takes the place of the previous one.
            place=$FIRST_OWNED_PLACE
        elif [ "$INPUTPLACE" -gt $((INPUT_OTHERS + 1)) ]; then
            die "INPUTPLACE=$INPUTPLACE is past the end of INPUT ($INPUT_OTHERS rules there); nothing changed"
        fi
        for line in "${OWNED_LINES[@]+"${OWNED_LINES[@]}"}"; do
            PLAN+=("-D ${line#-A }")
        done
        for index in "${!WANT_INPUT[@]}"; do
            PLAN+=("-I INPUT $((place + index)) ${WANT_INPUT[$index]}")
        done
    fi
    for chain in "${OWNED_CHAINS[@]+"${OWNED_CHAINS[@]}"}"; do
        if [ "$chain" != "$CHAIN" ]; then
            PLAN+=("-F $chain" "-X $chain")
        fi
    done
}

# SET_PLAN: the ipset restore lines for the set and its members; UNDO_PLAN reverses them (it
# only removes what this run adds). Members added at run time or by hand to a set of an
# earlier version of the deployment (another name) move to this one. MEMBER_COUNT: members
# afterwards; MISSING_PRESETS and EXTRA_PRESETS: how the presets differ now.
plan_set() {
    SET_PLAN=()
    UNDO_PLAN=()
    if [ "$SET_EXISTS" = 0 ]; then
        SET_PLAN+=("create $SET hash:net family $FAMILY comment")
    fi
    local name lines
    lines=$(
        printf 'P %s\n' "${ADDRESSES[@]+"${ADDRESSES[@]}"}"
        printf 'A %s\n' "${ARG_ADDRESSES[@]+"${ARG_ADDRESSES[@]}"}"
        if [ "$SET_EXISTS" = 1 ]; then
            "$IPSET" save "$SET" || echo "E $SET"
        fi
        for name in "${OWNED_SETS[@]+"${OWNED_SETS[@]}"}"; do
            if [ "$name" != "$SET" ]; then
                "$IPSET" save "$name" | sed 's/^add [^ ]* /O /' || echo "E $name"
            fi
        done
    )
    [[ $lines != *$'\nE '* && $lines != "E "* ]] || die "cannot read the set ($IPSET save failed); nothing changed"
    local out
    out=$(awk -v set="$SET" '
        function comment_of(line) { return match(line, / comment "[^"]*"/) ? substr(line, RSTART + 10, RLENGTH - 11) : "" }
        $1 == "P" { if ($2 != "") preset[$2] = 1; next }
        $1 == "A" { if ($2 != "") arg[$2] = 1; next }
        $1 == "add" { member[$3] = comment_of($0); n++; next }
        $1 == "O" { old[$2] = comment_of($0); next }
        END {
            count = n + 0
            for (a in preset) if (!(a in member)) {
                print "S add " set " " a " comment \"preset\""; print "U del " set " " a
                print "M " a; member[a] = "preset"; count++
            }
            for (a in member) if (member[a] == "preset" && !(a in preset)) {
                print "S del " set " " a; print "U add " set " " a " comment \"preset\""
                print "X " a; count--
            }
            for (a in old) if (old[a] != "preset" && !(a in member)) {
                print "S add " set " " a (old[a] == "" ? "" : " comment \"" old[a] "\"")
                print "U del " set " " a; member[a] = old[a]; count++
            }
            for (a in arg) if (!(a in member)) {
                print "S add " set " " a " comment \"added\""; print "U del " set " " a
                member[a] = "added"; count++
            }
            print "C " count
            print "N " n + 0
        }' <<<"$lines")
    MEMBER_COUNT=0
    CURRENT_COUNT=0
    MISSING_PRESETS=()
    EXTRA_PRESETS=()
    local line
    while IFS= read -r line; do
        case $line in
            "S "*) SET_PLAN+=("${line#S }") ;;
            "U "*) UNDO_PLAN+=("${line#U }") ;;
            "M "*) MISSING_PRESETS+=("${line#M }") ;;
            "X "*) EXTRA_PRESETS+=("${line#X }") ;;
            "C "*) MEMBER_COUNT=${line#C } ;;
            "N "*) CURRENT_COUNT=${line#N } ;;
        esac
    done <<<"$out"
}

# INTERFACE: the rules' input interface: DEFAULTINT, else the one the deployment's rules
# have now, else any.
choose_interface() {
    INTERFACE=${DEFAULTINT:-}
    if [ -z "$INTERFACE" ]; then
        INTERFACE=${KEPT_INTERFACE:-any}
    fi
}

# IFACE_PROBLEM: why the rules' interface cannot receive anything here (empty when it can).
check_interface() {
    IFACE_PROBLEM=
    if [ "$INTERFACE" != any ] && [[ $INTERFACE != *+ ]] && ! ip link show dev "$INTERFACE" >/dev/null 2>&1; then
        IFACE_PROBLEM="the rules are bound to interface '$INTERFACE', which does not exist in this network namespace (DEFAULTINT=NAME for another, DEFAULTINT=any for all)"
    fi
}

interface_words() {
    if [ "$INTERFACE" = any ]; then echo "every interface"; else echo "interface $INTERFACE"; fi
}

# Everything that can be checked before the first change, one clear message each.
preflight() {
    local action=$1
    [ "$(id -u)" = 0 ] || die "must run as root"
    local tool
    for tool in "$IPTABLES" "$IPTABLES_RESTORE" "$IPSET" flock; do
        command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install iptables ipset util-linux)"
    done
    "$IPTABLES" -m bpf --help >/dev/null 2>&1 ||
        die "$IPTABLES has no bpf match (xt_bpf): iptables 1.4.21 or later is needed"
    local matches=/proc/net/ip_tables_matches
    [ "$FAMILY" = inet6 ] && matches=/proc/net/ip6_tables_matches
    if [ -r "$matches" ] && ! grep -qx bpf "$matches"; then
        modprobe -q xt_bpf 2>/dev/null || true
        grep -qx bpf "$matches" || die "the kernel has no xt_bpf match (CONFIG_NETFILTER_XT_MATCH_BPF)"
    fi
    [[ $LOCK_TIMEOUT =~ ^[0-9]{1,5}$ ]] || die "LOCK_TIMEOUT '$LOCK_TIMEOUT' is not a number of seconds"
    # --delete removes what the deployment made whatever the interface is now.
    [ "$action" != delete ] || return 0
    if [ -n "${DEFAULTINT:-}" ]; then
        [ "$DEFAULTINT" = any ] || [[ $DEFAULTINT =~ ^[A-Za-z0-9_.@-]{1,15}\+?$ ]] ||
            die "DEFAULTINT '$DEFAULTINT' is not an interface name"
        command -v ip >/dev/null || die "ip (iproute2) not found: it checks DEFAULTINT"
        if [ "$DEFAULTINT" != any ] && [[ $DEFAULTINT != *+ ]] && ! ip link show dev "$DEFAULTINT" >/dev/null 2>&1; then
            die "DEFAULTINT: no interface '$DEFAULTINT' in this network namespace (DEFAULTINT=any for all)"
        fi
    fi
    [ "$action" != status ] || return 0
    [[ $INPUTPLACE =~ ^[1-9][0-9]{0,5}$ ]] || die "INPUTPLACE '$INPUTPLACE' is not a rule position (1, 2, ...)"
}

# The input of a restore command is made by this shell itself (printf -v, no subshell that a
# signal could cut short: a truncated batch would be committed as it is).
restore_rules() { # restore_rules RESTORE_COMMAND
    local batch
    printf -v batch '%s\n' '*filter' "${PLAN[@]}" COMMIT
    held "$1" -w --noflush <<<"$batch" ||
        die "$1 refused the rules; nothing changed"
}

print_plan() {
    if [ "${#SET_PLAN[@]}" = 0 ] && [ "${#PLAN[@]}" = 0 ]; then
        echo "$0: dry run: nothing to change (rules on $(interface_words))"
        return 0
    fi
    if [ "${#SET_PLAN[@]}" != 0 ]; then
        echo "# $IPSET restore -exist"
        printf '%s\n' "${SET_PLAN[@]}"
    fi
    if [ "${#PLAN[@]}" != 0 ]; then
        echo "# $IPTABLES_RESTORE -w --noflush"
        printf '%s\n' '*filter' "${PLAN[@]}" COMMIT
    fi
}

refuse_other_backend() {
    other_backend
    if [ -n "$OTHER_IPTABLES" ] && holds "$OTHER_IPTABLES"; then
        die "$OTHER_IPTABLES (the other iptables backend) holds rules of this deployment: two copies would filter the traffic. Remove them first: IPTABLES=$OTHER_IPTABLES $0 --delete (or apply with IPTABLES=$OTHER_IPTABLES); nothing changed"
    fi
}

apply() {
    local dry_run=$1
    read_state
    choose_interface
    check_interface
    [ -z "$IFACE_PROBLEM" ] || die "$IFACE_PROBLEM; nothing changed"
    check_set
    desired_state
    plan_rules
    plan_set
    if [ "$dry_run" = 1 ]; then
        print_plan
        return 0
    fi
    refuse_other_backend
    hold_signals
    if [ "${#SET_PLAN[@]}" != 0 ]; then
        [ "$SET_EXISTS" = 0 ] && CREATED_SET=1
        UNDO_SET=("${UNDO_PLAN[@]+"${UNDO_PLAN[@]}"}")
        local batch
        printf -v batch '%s\n' "${SET_PLAN[@]}"
        held "$IPSET" restore -exist <<<"$batch" ||
            die "$IPSET restore failed; nothing changed"
        CHANGED=1
    fi
    if [ "${#PLAN[@]}" != 0 ]; then
        restore_rules "$IPTABLES_RESTORE"
        CHANGED=1
    fi
    COMMITTED=1
    release_signals
    local name
    for name in "${OWNED_SETS[@]+"${OWNED_SETS[@]}"}"; do
        if [ "$name" != "$SET" ]; then
            "$IPSET" destroy "$name" 2>/dev/null || warn "could not remove the old set $name (still used by a rule?)"
        fi
    done
    if [ "$CHANGED" = 1 ]; then
        echo "$0: applied: ${#WANT_INPUT[@]} rule(s) in INPUT on $(interface_words), $MEMBER_COUNT protected address(es) in set $SET"
    else
        echo "$0: already applied: nothing changed (rules on $(interface_words), $MEMBER_COUNT protected address(es) in set $SET)"
    fi
    if [ "$MEMBER_COUNT" = 0 ]; then
        warn "WARNING: the set $SET is empty: these rules protect NOTHING."
        warn "WARNING: add the DNS server's address: $0 ADDRESS (e.g. $0 192.0.2.53)"
    fi
}

# delete_in IPTABLES RESTORE: removes this deployment's rules and chains held by one backend.
delete_in() {
    read_state "$1"
    PLAN=()
    local line chain
    for line in "${OWNED_LINES[@]+"${OWNED_LINES[@]}"}"; do
        PLAN+=("-D ${line#-A }")
    done
    for chain in "${OWNED_CHAINS[@]+"${OWNED_CHAINS[@]}"}"; do
        PLAN+=("-F $chain" "-X $chain")
    done
    if [ "${#PLAN[@]}" != 0 ]; then
        restore_rules "$2"
        DELETED+=("$((${#OWNED_LINES[@]})) rule(s) and ${#OWNED_CHAINS[@]} chain(s) from $1")
    fi
}

delete() {
    DELETED=()
    other_backend
    hold_signals
    delete_in "$IPTABLES" "$IPTABLES_RESTORE"
    if [ -n "$OTHER_IPTABLES" ]; then
        delete_in "$OTHER_IPTABLES" "$OTHER_IPTABLES-restore"
        # read_state ran last for the other backend: the sets are the same.
    fi
    COMMITTED=1
    release_signals
    local name kept=()
    for name in "${OWNED_SETS[@]+"${OWNED_SETS[@]}"}"; do
        if "$IPSET" destroy "$name" 2>/dev/null; then
            DELETED+=("set $name")
        else
            kept+=("$name")
        fi
    done
    if [ "${#DELETED[@]}" = 0 ] && [ "${#kept[@]}" = 0 ]; then
        echo "$0: nothing to delete"
        return 0
    fi
    if [ "${#DELETED[@]}" != 0 ]; then
        local text
        text=$(printf '%s; ' "${DELETED[@]}")
        echo "$0: deleted: ${text%; }"
    fi
    if [ "${#kept[@]}" != 0 ]; then
        warn "WARNING: the rules are removed, but the set ${kept[*]} is still used by a rule of something else ($IPSET list ${kept[0]} shows its references): kept; remove that rule, then run --delete again"
    fi
}

status() {
    local problems=() where=()
    other_backend
    if [ -n "$OTHER_IPTABLES" ] && holds "$OTHER_IPTABLES"; then
        problems+=("$OTHER_IPTABLES (the other backend) holds rules of this deployment (remove them: IPTABLES=$OTHER_IPTABLES $0 --delete)")
        where+=("$OTHER_IPTABLES")
    fi
    read_state
    choose_interface
    check_interface
    [ -z "$IFACE_PROBLEM" ] || problems+=("$IFACE_PROBLEM")
    desired_state
    # The rules' place does not matter to what status compares.
    INPUTPLACE=1
    FIRST_OWNED_PLACE=1
    plan_rules
    ARG_ADDRESSES=()
    plan_set
    if [ "${#OWNED_LINES[@]}" = 0 ] && [ "${#OWNED_CHAINS[@]}" = 0 ]; then
        problems+=("no rule of this deployment in $IPTABLES (apply: $0)")
    else
        where=("$IPTABLES" "${where[@]+"${where[@]}"}")
        if [ "${#PLAN[@]}" != 0 ]; then
            if [[ " ${INPUT_OWNED[*]+"${INPUT_OWNED[*]}"} " == *"/$VERSION/"* ]]; then
                problems+=("the rules differ from this version's (missing, duplicated, edited, or on another interface)")
            else
                problems+=("another version of the deployment is applied")
            fi
        fi
    fi
    if [ "$SET_EXISTS" = 0 ]; then
        problems+=("the set $SET does not exist")
    else
        [ "$CURRENT_COUNT" != 0 ] || problems+=("the set $SET is empty: inert: no protected address (add one: $0 ADDRESS)")
        [ "${#MISSING_PRESETS[@]}" = 0 ] || problems+=("preset address(es) missing from the set: ${MISSING_PRESETS[*]}")
        [ "${#EXTRA_PRESETS[@]}" = 0 ] || problems+=("preset address(es) this version no longer lists: ${EXTRA_PRESETS[*]}")
    fi
    local state=applied
    [ "${#problems[@]}" = 0 ] || state="NOT as this script describes"
    echo "deployment $DEPLOYMENT ($DEPLOYMENT_NAME), version $VERSION: $state"
    echo "rules on $(interface_words); backend(s) holding them: ${where[*]:-none}"
    local problem
    for problem in "${problems[@]+"${problems[@]}"}"; do
        echo "  differs: $problem"
    done
    local ipt rules line tag chain packets bytes index
    for ipt in "${where[@]+"${where[@]}"}"; do
        rules=$("$ipt" -w -S -v 2>/dev/null) || continue
        while IFS= read -r line; do
            [[ $line == "-A "* ]] || continue
            chain=${line#-A }
            chain=${chain%% *}
            if [[ $line =~ $TAG_RE ]]; then
                tag=${BASH_REMATCH[0]}
            elif [[ $chain == bpf_*_"$DEPLOYMENT" ]]; then
                tag=untagged
            else
                continue
            fi
            packets='?' bytes='?'
            if [[ $line =~ \ -c\ ([0-9]+)\ ([0-9]+) ]]; then
                packets=${BASH_REMATCH[1]}
                bytes=${BASH_REMATCH[2]}
            fi
            local what=
            index=${tag#"${TAG}"*/}
            index=${index%%/*}
            index=${index#c}
            if [[ $index =~ ^[0-9]+$ ]] && [ -n "${WHAT[$index]+set}" ]; then
                what=" ${TARGETS[$index]} ${WHAT[$index]}"
                if [[ $line =~ \ -j\ ([^ ]+) ]] && [ "${BASH_REMATCH[1]}" != "${TARGETS[$index]}" ]; then
                    what+=" (but it jumps to ${BASH_REMATCH[1]})"
                fi
            fi
            printf '  %-28s %12s packets %14s bytes  %s%s\n' "$chain" "$packets" "$bytes" "$tag" "$what"
        done <<<"$rules"
    done
    if [ "$SET_EXISTS" = 0 ]; then
        echo "set $SET: absent"
    elif [ "$CURRENT_COUNT" = 0 ]; then
        echo "set $SET: inert: no protected address (add one: $0 ADDRESS)"
    else
        echo "set $SET: $CURRENT_COUNT protected address(es):"
        "$IPSET" save "$SET" | awk '$1 == "add" { c = ""; if (match($0, / comment "[^"]*"/)) c = " (" substr($0, RSTART + 10, RLENGTH - 11) ")"; print "  " $3 c }' | sort
    fi
    if [ "$state" != applied ]; then
        exit 3
    fi
}

main() {
    local action=apply address
    ARG_ADDRESSES=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --delete | --status | --dry-run)
                if [ "$action" != apply ]; then
                    echo "$0: give one of --delete, --status, --dry-run" >&2
                    exit 2
                fi
                action=${1#--}
                ;;
            --help | -h)
                usage
                exit 0
                ;;
            --)
                shift
                ARG_ADDRESSES+=("$@")
                break
                ;;
            -*)
                echo "$0: unknown option '$1' (see $0 --help)" >&2
                exit 2
                ;;
            *) ARG_ADDRESSES+=("$1") ;;
        esac
        shift
    done
    if [ "${#ARG_ADDRESSES[@]}" != 0 ] && [ "$action" != apply ] && [ "$action" != dry-run ]; then
        echo "$0: addresses are given only when applying" >&2
        exit 2
    fi
    local normal=()
    for address in "${ARG_ADDRESSES[@]+"${ARG_ADDRESSES[@]}"}"; do
        REASON=
        if ! normalize_address "$address"; then
            local other=IPv4 this=IPv6
            [ "$FAMILY" = inet ] && other=IPv6 this=IPv4
            echo "$0: '$address' is not an $this address or network: $REASON (this script is for $this; $other needs a script generated for it)" >&2
            exit 2
        fi
        normal+=("$NORMAL")
    done
    ARG_ADDRESSES=("${normal[@]+"${normal[@]}"}")
    trap 'unexpected $? $LINENO "$BASH_COMMAND"' ERR
    preflight "$action"
    trap on_exit EXIT
    release_signals
    case $action in
        apply) take_lock && apply 0 ;;
        dry-run) apply 1 ;;
        delete) take_lock && delete ;;
        status) status ;;
    esac
}

main "$@"
