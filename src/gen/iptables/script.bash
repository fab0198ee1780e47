#!/usr/bin/env bash
# Template of the deployment scripts iptables-bpf writes. Everything between the DATA markers
# is replaced by the values of one deployment; the rest is copied as it is. The example data
# below keeps this file a complete script, so that shellcheck can check it on its own.
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

usage() {
    cat <<USAGE
Usage: $0 [ADDRESS...]            apply, and add ADDRESSes to the protected set
       $0 --dry-run [ADDRESS...]  print what applying would change; change nothing
       $0 --status                rules with their packet/byte counters, protected addresses
       $0 --delete                remove every rule, chain and set of this deployment
       $0 --help

Applying makes the rules exactly what this script describes, from any state (nothing, part
of them, duplicates, an earlier version of the deployment), in one iptables-restore
transaction: all the new rules appear at once, or none does. Running it again changes
nothing. The rules drop ${PROTO^^} port 53 traffic to the addresses in ipset $SET that the BPF
programs match; an empty set protects nothing.

Addresses: the ones given when the script was generated (iptables-bpf -i) are the set's
preset members: a new version of the script adds the ones it lists and removes the presets
it no longer lists. Addresses given to the script as arguments, or added by hand with
'ipset add $SET ADDRESS', stay until --delete (or 'ipset del $SET ADDRESS').

Deployment: every rule, chain and set this script makes is tagged with deployment id
$DEPLOYMENT (rule comments hold '$TAG...'; the set and chain names end with
_$DEPLOYMENT). The id is decided when the script is generated: from iptables-bpf
--deployment NAME if given, else the --chain NAME in chain mode, else the absolute path of
the script file written, else (a script written to stdout) the rules themselves; the
family (IPv4 or IPv6) is part of it. A script re-generated for the same deployment replaces
the rules of the previous version when applied; scripts of other deployments, and chains
or rules made by anything else, are never touched.
This deployment: $DEPLOYMENT_NAME

Environment (read on every run; --delete removes the deployment's objects whatever it says):
  IPTABLES          iptables command (default $IPT_DEFAULT; iptables-legacy/iptables-nft work)
  IPTABLES_RESTORE  its restore command (default \${IPTABLES}-restore)
  IPSET             ipset command (default ipset)
  DEFAULTINT        input interface of the rules (default: the default route's; 'any': all)
  INPUTPLACE        position of the first rule in INPUT when it is inserted (default 1)
  LOCK_FILE         lock serializing the runs (default /run/bpftools-iptables.lock)
  LOCK_TIMEOUT      seconds to wait for it (default 30)

Exit status: 0 done (--status: applied, current version), 1 failure (nothing changed, or
the previous state restored), 2 usage error, 3 --status: not applied or not current.
USAGE
}

die() {
    echo "$0: $*" >&2
    exit 1
}

warn() {
    echo "$0: $*" >&2
}

# Undoes what a failed run did before its rules were committed.
on_exit() {
    local status=$?
    if [ "$status" != 0 ] && [ "$COMMITTED" = 0 ]; then
        if [ "$CREATED_SET" = 1 ]; then
            "$IPSET" destroy "$SET" 2>/dev/null || true
        elif [ "${#UNDO_SET[@]}" != 0 ]; then
            printf '%s\n' "${UNDO_SET[@]}" | "$IPSET" restore -exist 2>/dev/null || true
        fi
    fi
    return "$status"
}

detect_interface() {
    local route
    if [ "$FAMILY" = inet6 ]; then
        route=$(ip -6 route show default 2>/dev/null | head -n 1)
    else
        route=$(ip -4 route show default 2>/dev/null | head -n 1)
    fi
    # "default via X dev IFACE ...": the word after "dev".
    awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }' <<<"$route"
}

# True when $1 is an address or network of this script's family.
valid_address() {
    local text=$1 address prefix max octet
    address=${text%%/*}
    prefix=
    if [[ $text == */* ]]; then
        prefix=${text#*/}
    fi
    if [ "$FAMILY" = inet ]; then
        max=32
        [[ $address =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || return 1
        for octet in "${BASH_REMATCH[@]:1}"; do
            [ "$((10#$octet))" -le 255 ] || return 1
        done
    else
        max=128
        valid_ipv6 "$address" || return 1
    fi
    if [ -n "$prefix" ] || [[ $text == */ ]]; then
        [[ $prefix =~ ^[0-9]{1,3}$ ]] || return 1
        [ "$((10#$prefix))" -ge 1 ] && [ "$((10#$prefix))" -le "$max" ] || return 1
    fi
    return 0
}

valid_ipv6() {
    local address=$1 head tail groups=0 group limit=8
    [[ $address =~ ^[0-9A-Fa-f:.]+$ ]] || return 1
    if [[ $address =~ ^(.*:)([0-9]{1,3}(\.[0-9]{1,3}){3})$ ]]; then
        # An embedded IPv4 address takes the room of two groups (the check of it runs a
        # regular expression of its own, which replaces BASH_REMATCH: keep the head first).
        address=${BASH_REMATCH[1]}
        FAMILY=inet valid_address "${BASH_REMATCH[2]}" || return 1
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
    fi
    local part
    for part in "$head" "$tail"; do
        [ -z "$part" ] && continue
        local IFS=:
        for group in $part; do
            [[ $group =~ ^[0-9A-Fa-f]{1,4}$ ]] || return 1
            groups=$((groups + 1))
        done
        [[ $part == :* || $part == *: ]] && return 1
    done
    if [[ $address == *::* ]]; then
        [ "$groups" -lt "$limit" ]
    else
        [ "$groups" = "$limit" ]
    fi
}

take_lock() {
    exec {LOCK_FD}>>"$LOCK_FILE" || die "cannot open the lock file $LOCK_FILE (set LOCK_FILE)"
    if ! flock -w "$LOCK_TIMEOUT" "$LOCK_FD"; then
        die "another bpftools script has held $LOCK_FILE for ${LOCK_TIMEOUT}s; nothing changed (try again, or raise LOCK_TIMEOUT)"
    fi
}

# What the kernel holds now: this deployment's rules, chains and set.
read_state() {
    local rules line chain tag
    rules=$("$IPTABLES" -w -S) || die "cannot list the rules ($IPTABLES -S failed)"
    OWNED_LINES=()
    OWNED_CHAINS=()
    INPUT_TAGS=()
    INPUT_OTHERS=0
    FIRST_OWNED_PLACE=0
    declare -gA CHAIN_TAGS=()
    while IFS= read -r line; do
        case $line in
            "-N "*)
                chain=${line#-N }
                if [[ $chain == bpf_*_"$DEPLOYMENT" ]]; then
                    OWNED_CHAINS+=("$chain")
                    CHAIN_TAGS[$chain]=
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
                    CHAIN_TAGS[$chain]+="$tag "
                elif [ -n "$tag" ]; then
                    OWNED_LINES+=("$line")
                    if [ "$chain" = INPUT ]; then
                        INPUT_TAGS+=("$tag")
                        if [ "$FIRST_OWNED_PLACE" = 0 ]; then
                            FIRST_OWNED_PLACE=$((INPUT_OTHERS + 1))
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
            [ "$name" = "$SET" ] && SET_EXISTS=1
        fi
    done < <("$IPSET" list -n 2>/dev/null || true)
}

# The set's members and their comments (preset, added, or none when added by hand).
read_members() {
    declare -gA MEMBERS=()
    [ "$SET_EXISTS" = 1 ] || return 0
    local line pattern="^add [^ ]+ ([^ ]+)( comment \"([^\"]*)\")?"
    while IFS= read -r line; do
        if [[ $line =~ $pattern ]]; then
            MEMBERS[${BASH_REMATCH[1]}]=${BASH_REMATCH[3]}
        fi
    done < <("$IPSET" save "$SET")
}

# QUOTED: the words as iptables-restore reads them (set here: no subshell per rule).
quote_words() {
    local word out=
    for word in "$@"; do
        if [[ -z $word || $word == *" "* ]]; then
            out+=" \"$word\""
        else
            out+=" $word"
        fi
    done
    QUOTED=${out# }
}

# The rules this script wants: WANT_INPUT (in order), WANT_CHAIN (the chain's rules), with
# the tags their comments carry.
desired_state() {
    local index words=()
    if [ "$DEFAULTINT" != any ]; then
        words=(-i "$DEFAULTINT")
    fi
    words+=(-p "$PROTO" --dport 53 -m set --match-set "$SET" dst)
    WANT_INPUT=()
    WANT_INPUT_TAGS=()
    WANT_CHAIN=()
    WANT_CHAIN_TAGS=
    if [ -n "$CHAIN" ]; then
        local tag
        for index in "${!TARGETS[@]}"; do
            tag="${TAG}$VERSION/c$index"
            local rule=()
            if [ -n "${BYTECODE[$index]}" ]; then
                rule=(-m bpf --bytecode "${BYTECODE[$index]}")
            fi
            rule+=(-m comment --comment "$COMMENT $tag" -j "${TARGETS[$index]}")
            quote_words "${rule[@]}"
            WANT_CHAIN+=("$QUOTED")
            WANT_CHAIN_TAGS+="$tag "
        done
        tag="${TAG}$VERSION/j/$DEFAULTINT"
        quote_words "${words[@]}" -m comment --comment "$COMMENT $tag" -j "$CHAIN"
        WANT_INPUT+=("$QUOTED")
        WANT_INPUT_TAGS+=("$tag")
    else
        for index in "${!TARGETS[@]}"; do
            local tag="${TAG}$VERSION/$index/$DEFAULTINT"
            quote_words "${words[@]}" -m bpf --bytecode "${BYTECODE[$index]}" \
                -m comment --comment "$COMMENT $tag" -j "${TARGETS[$index]}"
            WANT_INPUT+=("$QUOTED")
            WANT_INPUT_TAGS+=("$tag")
        done
    fi
}

# PLAN: the iptables-restore lines that take the current state to the desired one.
plan_rules() {
    PLAN=()
    local index chain line
    if [ -n "$CHAIN" ]; then
        if [ -z "${CHAIN_TAGS[$CHAIN]+set}" ] || [ "${CHAIN_TAGS[$CHAIN]}" != "$WANT_CHAIN_TAGS" ]; then
            # Declaring the chain creates it, or empties it for its new rules in the same
            # transaction.
            PLAN+=(":$CHAIN - [0:0]")
            for line in "${WANT_CHAIN[@]}"; do
                PLAN+=("-A $CHAIN $line")
            done
        fi
    fi
    local outside=0
    for line in "${OWNED_LINES[@]+"${OWNED_LINES[@]}"}"; do
        [[ $line == "-A INPUT "* ]] || outside=1
    done
    if [ "$outside" = 1 ] || [ "${INPUT_TAGS[*]+"${INPUT_TAGS[*]}"}" != "${WANT_INPUT_TAGS[*]}" ]; then
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

# SET_PLAN: the ipset restore lines for the set and its members; UNDO_PLAN reverses them.
plan_set() {
    SET_PLAN=()
    UNDO_PLAN=()
    local address
    declare -A wanted=()
    if [ "$SET_EXISTS" = 0 ]; then
        SET_PLAN+=("create $SET hash:net family $FAMILY comment")
    fi
    for address in "${ADDRESSES[@]+"${ADDRESSES[@]}"}"; do
        wanted[$address]=1
        if [ -z "${MEMBERS[$address]+set}" ]; then
            SET_PLAN+=("add $SET $address comment \"preset\"")
            UNDO_PLAN+=("del $SET $address")
        fi
    done
    for address in "${!MEMBERS[@]}"; do
        if [ "${MEMBERS[$address]}" = preset ] && [ -z "${wanted[$address]+set}" ]; then
            SET_PLAN+=("del $SET $address")
            UNDO_PLAN+=("add $SET $address comment \"preset\"")
        fi
    done
    for address in "${ARG_ADDRESSES[@]+"${ARG_ADDRESSES[@]}"}"; do
        if [ -z "${MEMBERS[$address]+set}" ]; then
            SET_PLAN+=("add $SET $address comment \"added\"")
            UNDO_PLAN+=("del $SET $address")
        fi
    done
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
    if [ -z "${DEFAULTINT:-}" ] && [ "$action" = status ]; then
        DEFAULTINT=$(detect_interface)
        DEFAULTINT=${DEFAULTINT:-any}
    fi
    if [ -z "${DEFAULTINT:-}" ]; then
        command -v ip >/dev/null || die "ip (iproute2) not found: set DEFAULTINT"
        DEFAULTINT=$(detect_interface)
        [ -n "$DEFAULTINT" ] || die "cannot find the input interface from the default route: set DEFAULTINT (or DEFAULTINT=any)"
    fi
    [ "$DEFAULTINT" = any ] || [[ $DEFAULTINT =~ ^[A-Za-z0-9_.@-]{1,15}\+?$ ]] ||
        die "DEFAULTINT '$DEFAULTINT' is not an interface name"
    if [ "$DEFAULTINT" != any ] && [[ $DEFAULTINT != *+ ]] && [ ! -e "/sys/class/net/$DEFAULTINT" ]; then
        die "DEFAULTINT: no interface '$DEFAULTINT' here (DEFAULTINT=any for all)"
    fi
    [[ $INPUTPLACE =~ ^[1-9][0-9]{0,5}$ ]] || die "INPUTPLACE '$INPUTPLACE' is not a rule position (1, 2, ...)"
}

restore_rules() {
    printf '%s\n' '*filter' "${PLAN[@]}" COMMIT | "$IPTABLES_RESTORE" -w --noflush ||
        die "$IPTABLES_RESTORE refused the rules; nothing changed"
}

print_plan() {
    if [ "${#SET_PLAN[@]}" = 0 ] && [ "${#PLAN[@]}" = 0 ]; then
        echo "$0: dry run: nothing to change"
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

apply() {
    local dry_run=$1
    read_state
    read_members
    desired_state
    plan_rules
    plan_set
    if [ "$dry_run" = 1 ]; then
        print_plan
        return 0
    fi
    if [ "${#SET_PLAN[@]}" != 0 ]; then
        [ "$SET_EXISTS" = 0 ] && CREATED_SET=1
        UNDO_SET=("${UNDO_PLAN[@]+"${UNDO_PLAN[@]}"}")
        printf '%s\n' "${SET_PLAN[@]}" | "$IPSET" restore -exist ||
            die "$IPSET restore failed; nothing changed"
        CHANGED=1
    fi
    if [ "${#PLAN[@]}" != 0 ]; then
        restore_rules
        CHANGED=1
    fi
    COMMITTED=1
    local name
    for name in "${OWNED_SETS[@]+"${OWNED_SETS[@]}"}"; do
        if [ "$name" != "$SET" ]; then
            "$IPSET" destroy "$name" 2>/dev/null || warn "could not remove the old set $name"
        fi
    done
    local count=${#MEMBERS[@]}
    if [ "${#SET_PLAN[@]}" != 0 ]; then
        count=$("$IPSET" save "$SET" | grep -c "^add $SET " || true)
    fi
    if [ "$CHANGED" = 1 ]; then
        echo "$0: applied: ${#WANT_INPUT[@]} rule(s) in INPUT, $count protected address(es) in set $SET"
    else
        echo "$0: already applied: nothing changed ($count protected address(es) in set $SET)"
    fi
    if [ "$count" = 0 ]; then
        warn "WARNING: the set $SET is empty: these rules protect NOTHING."
        warn "WARNING: add the DNS server's address: $0 ADDRESS (e.g. $0 192.0.2.53)"
    fi
}

delete() {
    read_state
    PLAN=()
    local line chain name
    for line in "${OWNED_LINES[@]+"${OWNED_LINES[@]}"}"; do
        PLAN+=("-D ${line#-A }")
    done
    for chain in "${OWNED_CHAINS[@]+"${OWNED_CHAINS[@]}"}"; do
        PLAN+=("-F $chain" "-X $chain")
    done
    if [ "${#PLAN[@]}" = 0 ] && [ "${#OWNED_SETS[@]}" = 0 ]; then
        echo "$0: nothing to delete"
        return 0
    fi
    if [ "${#PLAN[@]}" != 0 ]; then
        restore_rules
    fi
    COMMITTED=1
    for name in "${OWNED_SETS[@]+"${OWNED_SETS[@]}"}"; do
        "$IPSET" destroy "$name" || die "the rules are removed but the set $name is not (still used by a rule of another program?)"
    done
    echo "$0: deleted"
}

status() {
    read_state
    read_members
    desired_state
    local rules line tag chain packets bytes index state have want
    have="${INPUT_TAGS[*]+"${INPUT_TAGS[*]}"}"
    want="${WANT_INPUT_TAGS[*]}"
    if [ -z "$DEFAULTINT_GIVEN" ]; then
        # Without DEFAULTINT, rules on any interface count as applied.
        have=$(printf '%s\n' "${INPUT_TAGS[@]+"${INPUT_TAGS[@]}"}" | sed 's|/[^/]*$||')
        want=$(printf '%s\n' "${WANT_INPUT_TAGS[@]}" | sed 's|/[^/]*$||')
    fi
    if [ "${#OWNED_LINES[@]}" = 0 ] && [ "${#OWNED_CHAINS[@]}" = 0 ]; then
        state="not applied"
    elif [ "$have" = "$want" ] &&
        { [ -z "$CHAIN" ] || [ "${CHAIN_TAGS[$CHAIN]-}" = "$WANT_CHAIN_TAGS" ]; } &&
        [ "${#OWNED_LINES[@]}" = "${#WANT_INPUT[@]}" ] &&
        [ "${#OWNED_CHAINS[@]}" = "$([ -n "$CHAIN" ] && echo 1 || echo 0)" ]; then
        state="applied"
    elif [[ " ${INPUT_TAGS[*]+"${INPUT_TAGS[*]}"} " == *"/$VERSION/"* ]]; then
        state="partly applied, or applied on another interface (run $0 to repair)"
    else
        state="another version is applied (run $0 to replace it)"
    fi
    echo "deployment $DEPLOYMENT ($DEPLOYMENT_NAME), version $VERSION: $state"
    rules=$("$IPTABLES" -w -S -v)
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
        fi
        printf '  %-28s %12s packets %14s bytes  %s%s\n' "$chain" "$packets" "$bytes" "$tag" "$what"
    done <<<"$rules"
    if [ "$SET_EXISTS" = 0 ]; then
        echo "set $SET: absent"
    elif [ "${#MEMBERS[@]}" = 0 ]; then
        echo "set $SET: inert: no protected address (add one: $0 ADDRESS)"
    else
        echo "set $SET: ${#MEMBERS[@]} protected address(es):"
        local address
        for address in "${!MEMBERS[@]}"; do
            echo "  $address${MEMBERS[$address]:+ (${MEMBERS[$address]})}"
        done | sort
    fi
    [ "$state" = applied ] || return 3
}

main() {
    local action=apply address
    ARG_ADDRESSES=()
    DEFAULTINT_GIVEN=${DEFAULTINT:+1}
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
    for address in "${ARG_ADDRESSES[@]+"${ARG_ADDRESSES[@]}"}"; do
        if ! valid_address "$address"; then
            local other=IPv4 this=IPv6
            [ "$FAMILY" = inet ] && other=IPv6 this=IPv4
            echo "$0: '$address' is not an $this address or network (this script is for $this; $other needs a script generated for it)" >&2
            exit 2
        fi
    done
    preflight "$action"
    trap on_exit EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
    case $action in
        apply) take_lock && apply 0 ;;
        dry-run) apply 1 ;;
        delete) take_lock && delete ;;
        status) status ;;
    esac
}

main "$@"
