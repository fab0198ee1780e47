#!/usr/bin/env bash
# End-to-end test of the deployment scripts under operational events, on the real kernel, with
# iptables-nft and iptables-legacy (each in namespaces of its own): the original usage, each
# situation that used to go wrong (silent no-op, chain clobbering, concurrent runs, partial
# states, environment-dependent identity, name collisions, kills, slow re-runs), the start
# states apply and --delete must converge from, SIGKILL loops and concurrent runs.
# Needs root, iproute2, iptables, ipset, knot, dnsutils, dnsperf. Skips (exit 0) when not root.
# Loop sizes: KILLS (default 50) and PAIRS (default 20).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
E2E_NAME=e2e-deploy
# shellcheck source=scripts/e2e-netns.bash
source scripts/e2e-netns.bash

KILLS=${KILLS:-50}
PAIRS=${PAIRS:-20}
SPLIT=()
for i in $(seq 1 9); do SPLIT+=("*.host$i.example.org"); done
SPLIT+=('*.www.example.net')

# --- 1. silent no-op; the original usage
finding_1() {
    local dir=$TMP/f1-$BACKEND s out
    s=$(gen "$dir" guard.sh dns -- '*.www.example.net') || { fail "f1: generate"; return; }
    check "f1: generating without -i says the script protects nothing" grep -q "protects nothing" "$dir/gen.err"
    out=$(run_s "$s" 2>&1)
    check "f1: applying with an empty set warns loudly, naming the command" \
        grep -q "WARNING: add the DNS server's address: $s ADDRESS" <<<"$out"
    out=$(run_s "$s" --status 2>&1)
    check "f1: --status says inert" grep -q "inert: no protected address" <<<"$out"
    check "f1: an empty set drops nothing (lost $(flood 10.53.1.2 10))" test "$(flood 10.53.1.2 10)" = 0
    check "f1: original usage ./SCRIPT 10.53.1.2/32" run_s "$s" 10.53.1.2/32
    local lost
    lost=$(flood 10.53.1.2 40)
    check "f1: now the flood is dropped (lost $lost of 40)" test "$lost" = 40
    check "f1: and counted ($(counted "$s"))" test "$(counted "$s")" -ge 40
    check "f1: legitimate query answered" answered 10.53.1.2 www.example.net
    out=$(run_s "$s" --status 2>&1)
    check "f1: --status says applied" grep -q ": applied$" <<<"$out"
    check "f1: --status lists the rule with its counters" grep -qE "INPUT +[0-9]+ packets +[0-9]+ bytes .* DROP " <<<"$out"
    check "f1: --status lists the address" grep -q "10.53.1.2 (added)" <<<"$out"
    check "f1: original usage ./SCRIPT --delete" run_s "$s" --delete
    check "f1: nothing left" nothing_of "$s"
    check "f1: the address after the generator is refused" \
        not "$BIN/iptables-bpf" -w "$dir/x.sh" dns -- '*.example.uk' -i 10.53.1.2 2>"$dir/err"
    check "f1: ... no script written, the hint given" \
        bash -c "test ! -e '$dir/x.sh' && grep -q 'before the generator' '$dir/err'"
}

# --- 2. chain mode: user chains untouched, no clobbering, case-insensitive by default
finding_2() {
    local dir=$TMP/f2-$BACKEND before after lost
    srv "$IPT4" -w -N MYCHAIN
    srv "$IPT4" -w -A MYCHAIN -s 198.51.100.7 -j RETURN
    srv "$IPT4" -w -A INPUT -p tcp --dport 9 -j MYCHAIN
    before=$(srv "$IPT4" -w -S MYCHAIN)
    local a b c
    a=$(gen "$dir" a.sh -i 10.53.1.2 --chain MYCHAIN --accept www.example.net --drop any)
    b=$(gen "$dir" b.sh -i 10.53.1.2 --chain MYCHAIN --accept www.example.net mail.example.net --drop any)
    c=$(gen "$dir" c.sh -i 10.53.1.2 --deployment other --chain MYCHAIN --accept www.example.net --drop any)
    check "f2: chain a applies" run_s "$a"
    check "f2: the user's chain is untouched" test "$(srv "$IPT4" -w -S MYCHAIN)" = "$before"
    check "f2: 0x20 case accepted (case-insensitive by default)" answered 10.53.1.2 WwW.ExAmPlE.NeT
    lost=$(flood 10.53.1.2 30)
    check "f2: flood dropped (lost $lost of 30)" test "$lost" = 30
    check "f2: b (same --chain: same deployment) replaces a" run_s "$b"
    check "f2: ... exactly b's rules" converged "$b"
    check "f2: ... one jump to the chain" test "$(srv "$IPT4" -w -S INPUT | grep -c -- "-j $(sed -n "s/^CHAIN='\(.*\)'$/\1/p" "$b")")" = 1
    check "f2: c (another deployment, same NAME) applies beside b" run_s "$c"
    check "f2: ... b still exactly applied" converged "$b"
    check "f2: ... c exactly applied" converged "$c"
    check "f2: --delete of b" run_s "$b" --delete
    check "f2: ... removes b's objects" nothing_of "$b"
    check "f2: ... c untouched" converged "$c"
    lost=$(flood 10.53.1.2 30)
    check "f2: ... c still drops the flood (lost $lost of 30)" test "$lost" = 30
    check "f2: --delete of c" run_s "$c" --delete
    after=$(srv "$IPT4" -w -S MYCHAIN)
    check "f2: the user's chain and its jump are untouched" \
        test "$after" = "$before" -a "$(srv "$IPT4" -w -S INPUT | grep -c -- '-j MYCHAIN')" = 1
    local exact
    exact=$(gen "$dir" e.sh -i 10.53.1.2 --chain MYCHAIN --match-case --accept www.example.net --drop any)
    run_s "$exact" >/dev/null
    check "f2: --match-case: 0x20 case dropped" not answered 10.53.1.2 WwW.ExAmPlE.NeT
    check "f2: --match-case: exact case answered" answered 10.53.1.2 www.example.net
    run_s "$exact" --delete >/dev/null
    srv "$IPT4" -w -D INPUT -p tcp --dport 9 -j MYCHAIN
    srv "$IPT4" -w -F MYCHAIN
    srv "$IPT4" -w -X MYCHAIN
}

# --- 4. partial states and failing commands
finding_4() {
    local dir=$TMP/f4-$BACKEND s
    s=$(gen "$dir" split.sh -i 10.53.1.2 dns -- "${SPLIT[@]}")
    run_s "$s" >/dev/null
    # A wrapper whose listing fails once: the run stops before changing anything.
    cat >"$dir/flaky" <<WRAP
#!/bin/bash
if [ "\$1 \$2" = "-w -S" ] && [ ! -e "$dir/failed-once" ]; then touch "$dir/failed-once"; exit 4; fi
exec $IPT4 "\$@"
WRAP
    chmod +x "$dir/flaky"
    check "f4: a failing listing stops the run" \
        not ip netns exec "$SRV" env IPTABLES="$dir/flaky" IPTABLES_RESTORE="$IPT4-restore" DEFAULTINT=v-srv "$s" 2>"$dir/err"
    check "f4: ... saying so" grep -q "cannot list the rules" "$dir/err"
    check "f4: ... rules unchanged" converged "$s"
    check "f4: the next run through it changes nothing" \
        ip netns exec "$SRV" env IPTABLES="$dir/flaky" IPTABLES_RESTORE="$IPT4-restore" DEFAULTINT=v-srv "$s"
    check "f4: ... still exactly the rules" converged "$s"
    # The last split rule missing: repaired, and its patterns dropped again.
    local last
    last=$(srv "$IPT4" -w -S INPUT | grep -- "$(sed -n 's/^DEPLOYMENT=//p' "$s")" | tail -n 1)
    eval "srv $IPT4 -w ${last/-A/-D}"
    check "f4: last split rule removed by hand" not converged "$s"
    check "f4: www.example.net (last group) answered meanwhile" answered 10.53.1.2 x.www.example.net
    check "f4: re-run repairs" run_s "$s"
    check "f4: ... exactly the rules" converged "$s"
    check "f4: ... the last group's pattern dropped again" not answered 10.53.1.2 x.www.example.net
    run_s "$s" --delete >/dev/null
}

# --- 5. identity does not depend on the environment
finding_5() {
    local dir=$TMP/f5-$BACKEND s
    s=$(gen "$dir" guard.sh -i 10.53.1.2 dns -- '*.www.example.net')
    check "f5: applied on v-srv" run_s "$s"
    check "f5: DEFAULTINT=any --delete removes it" with DEFAULTINT=any run_s "$s" --delete
    check "f5: ... nothing left" nothing_of "$s"
    run_s "$s" >/dev/null
    check "f5: DEFAULTINT=any apply after v-srv" with DEFAULTINT=any run_s "$s"
    check "f5: ... replaces the rule (one rule, on any interface)" \
        test "$(srv "$IPT4" -w -S INPUT | grep -c -- "$(sed -n 's/^DEPLOYMENT=//p' "$s")")" = 1 -a \
        "$(srv "$IPT4" -w -S INPUT | grep -c -- '-i v-srv')" = 0
    run_s "$s" --delete >/dev/null
}

# --- 6. names: comments tell deployments apart; a re-generated -w file replaces its rules
finding_6() {
    local dir=$TMP/f6-$BACKEND a b lost
    a=$(gen "$dir" a.sh -i 10.53.1.2 -c 'flood A' dns -- '*.www.example.net')
    b=$(gen "$dir" b.sh -i 10.53.1.2 -c 'flood B' dns -- '*.www.example.net')
    run_s "$a" >/dev/null
    run_s "$b" >/dev/null
    check "f6: 'flood A' and 'flood B' have their own sets" \
        test "$(sed -n 's/^SET=//p' "$a")" != "$(sed -n 's/^SET=//p' "$b")"
    check "f6: --delete of A" run_s "$a" --delete
    check "f6: ... A gone" nothing_of "$a"
    check "f6: ... B intact" converged "$b"
    lost=$(flood 10.53.1.2 20)
    check "f6: ... B still drops (lost $lost of 20)" test "$lost" = 20
    run_s "$b" --delete >/dev/null
    local v1 v2
    v1=$(gen "$dir" w.sh -i 10.53.1.2 dns -- '*.www.example.net')
    run_s "$v1" >/dev/null
    v2=$(gen "$dir" w.sh -i 10.53.1.2 dns -- '*.mail.example.net' '*.www.example.net' 'www.example.net')
    check "f6: the re-generated -w file applies" run_s "$v2"
    check "f6: ... its rules replace the old ones" converged "$v2"
    check "f6: ... www.example.net now dropped" not answered 10.53.1.2 www.example.net
    check "f6: --delete" run_s "$v2" --delete
    check "f6: ... nothing left" nothing_of "$v2"
}

# --- 7. checks before the first change
finding_7() {
    local dir=$TMP/f7-$BACKEND s
    s=$(gen "$dir" guard.sh -i 10.53.1.2 dns -- '*.www.example.net')
    check "f7: INPUTPLACE past the end is refused" not with INPUTPLACE=99 run_s "$s" 2>"$dir/err"
    check "f7: ... saying so" grep -q "past the end of INPUT" "$dir/err"
    check "f7: ... and leaves nothing (no set)" nothing_of "$s"
    check "f7: a missing restore command is refused" not with IPTABLES_RESTORE=/nonexistent/iptables-restore run_s "$s" 2>"$dir/err"
    check "f7: ... saying so" grep -q "/nonexistent/iptables-restore not found" "$dir/err"
    check "f7: ... and leaves nothing" nothing_of "$s"
    check "f7: a DEFAULTINT that does not exist is refused" not with DEFAULTINT=nosuch0 run_s "$s" 2>"$dir/err"
    check "f7: ... saying so" grep -q "no interface 'nosuch0'" "$dir/err"
    check "f7: IPTABLES_RESTORE is documented" bash -c "'$s' --help | grep -q IPTABLES_RESTORE"
    # iptables-restore refusing the rules (a program xt_bpf refuses: the bytecode changed by
    # hand) leaves nothing: the set it created is removed again.
    sed -i "s/^    '[0-9]*,/    '1,/" "$s"
    check "f7: refused rules fail the run" not run_s "$s" 2>"$dir/err"
    check "f7: ... and leave nothing (trap removed the new set)" nothing_of "$s"
}

# --- 8. minor: -6 hint, no-op re-runs make no ipset change, fewer -i removes addresses
finding_8() {
    local dir=$TMP/f8-$BACKEND s
    check "f8: -6 -i 10.0.0.1 says to generate without -6" \
        bash -c "'$BIN/iptables-bpf' -w - -6 -i 10.0.0.1 dns -- x.example 2>&1 >/dev/null | grep -q 'without -6'"
    s=$(gen "$dir" guard.sh -i 10.53.1.2 -i 10.53.1.50 -i 10.53.1.51 dns -- '*.www.example.net')
    run_s "$s" >/dev/null
    run_s "$s" 10.53.1.60 >/dev/null
    cat >"$dir/ipset-log" <<WRAP
#!/bin/bash
echo "\$*" >>"$dir/ipset-calls"
exec ipset "\$@"
WRAP
    chmod +x "$dir/ipset-log"
    : >"$dir/ipset-calls"
    with "IPSET=$dir/ipset-log" run_s "$s" >/dev/null
    check "f8: a no-op re-run changes no set member (calls: $(tr '\n' ';' <"$dir/ipset-calls"))" \
        bash -c "! grep -qE '^(add|del|restore|create)' '$dir/ipset-calls'"
    s=$(gen "$dir" guard.sh -i 10.53.1.2 dns -- '*.www.example.net')
    run_s "$s" >/dev/null
    check "f8: re-generated with fewer -i: the dropped presets are removed, added ones kept" \
        test "$(srv ipset list "$(sed -n 's/^SET=//p' "$s")" | grep -c '^10\.53\.1\.')" = 2
    run_s "$s" --delete >/dev/null
}

# --- issue 19: protection that cannot lapse silently, a status that tells the truth
setof() { sed -n 's/^SET=//p' "$1"; }
depof() { sed -n 's/^DEPLOYMENT=//p' "$1"; }
in_set() { srv ipset test "$1" "$2" >/dev/null 2>&1; } # in_set SET ADDRESS
# status_code SCRIPT [ENV]: the exit code of --status
status_code() { run_s "$@" --status >/dev/null 2>&1; echo $?; }

# 1, 2: a new version that changes the set's old name, and the addresses added at run time
i19_rename() {
    local dir=$TMP/i19r-$BACKEND a b out rc old
    a=$(gen "$dir" a.sh -i 10.53.1.2 --deployment guard dns -- '*.www.example.net')
    b=$(gen "$dir" b.sh -i 10.53.1.2 --deployment guard --chain G --accept www.example.net --drop '*.www.example.net')
    check "i19-1: versions of a deployment keep the set's name (chain mode or not)" test "$(setof "$a")" = "$(setof "$b")"
    run_s "$a" >/dev/null
    run_s "$a" 10.53.1.77 >/dev/null
    srv ipset add "$(setof "$a")" 10.53.1.78
    # A set of an earlier version under another name (as older versions named it), listed last.
    old=bpf4_zz_old_$(depof "$a")
    srv ipset create "$old" hash:net family inet comment
    srv ipset add "$old" 10.53.1.79 comment added
    srv ipset add "$old" 10.53.1.80 comment preset
    for action in --dry-run --status; do
        out=$(run_s "$b" $action 2>&1)
        rc=$?
        check "i19-1: $action with two sets of the deployment says something and exits 0 or 3 (rc $rc)" \
            test -n "$out" -a \( $rc = 0 -o $rc = 3 \)
    done
    out=$(run_s "$b" 2>&1)
    rc=$?
    check "i19-1: the new version applies over two sets (rc $rc: $out)" test "$rc" = 0
    check "i19-1: ... exactly its rules" converged "$b"
    check "i19-2: addresses added by the script survive" in_set "$(setof "$b")" 10.53.1.77
    check "i19-2: addresses added by hand survive" in_set "$(setof "$b")" 10.53.1.78
    check "i19-2: addresses added to the old-named set move over" in_set "$(setof "$b")" 10.53.1.79
    check "i19-2: ... but not the old set's presets" not in_set "$(setof "$b")" 10.53.1.80
    check "i19-2: the old-named set is gone" not srv ipset list -n "$old"
    check "i19-1: --status exits 0" test "$(status_code "$b")" = 0
    local lost
    lost=$(flood 10.53.1.2 20)
    check "i19-1: the new version drops the flood (lost $lost of 20)" test "$lost" = 20
    run_s "$b" --delete >/dev/null
    check "i19-1: --delete leaves nothing" nothing_of "$b"
    # --delete (and --status) with two sets of the deployment, the old-named one listed last.
    run_s "$b" >/dev/null
    srv ipset create "$old" hash:net family inet comment
    out=$(run_s "$b" --delete 2>&1)
    rc=$?
    check "i19-1: --delete with two sets of the deployment: exit 0 (rc $rc: $out)" test "$rc" = 0
    check "i19-1: ... nothing left" nothing_of "$b"
}

# 3: a signal during the commit never leaves new rules with the old set
i19_signals() {
    local dir=$TMP/i19s-$BACKEND v1 v2 i st bad=0 n=${SIGNALS:-40} how pid kinds
    v1=$(gen "$dir" d.sh -i 10.53.1.2 dns -- '*.mail.example.net')
    cp "$v1" "$dir/v1.sh"
    v1=$dir/v1.sh
    v2=$(gen "$dir" d.sh -i 10.53.1.2 -i 10.53.1.3 dns -- '*.www.example.net')
    declare -A kinds=()
    for how in TERM INT-group; do
        for i in $(seq "$n"); do
            run_s "$v2" --delete >/dev/null 2>&1
            run_s "$v1" >/dev/null 2>&1
            if [ "$how" = TERM ]; then
                ip netns exec "$SRV" env IPTABLES="$IPT4" DEFAULTINT=v-srv "$v2" >/dev/null 2>&1 &
                pid=$!
                sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", (r % 250) / 1000 }')"
                kill -TERM "$pid" 2>/dev/null
            else
                # (a background job starts with SIGINT ignored: restore it, as a terminal's job has it)
                setsid env --default-signal=INT ip netns exec "$SRV" env IPTABLES="$IPT4" DEFAULTINT=v-srv "$v2" >/dev/null 2>&1 &
                pid=$!
                sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", (r % 250) / 1000 }')"
                kill -INT -- -"$pid" 2>/dev/null
            fi
            wait_bounded "$pid"
            [ $? = 124 ] && bad=$((bad + 1))
            st=$(rules_state "$v1" "$v2")
            kinds[$how-$st]=$((${kinds[$how-$st]:-0} + 1))
            case $st in
                new) in_set "$(setof "$v2")" 10.53.1.3 ;;
                old) in_set "$(setof "$v2")" 10.53.1.2 ;;
                *) false ;;
            esac || {
                bad=$((bad + 1))
                { echo "$how $st"; owned "$v2"; srv ipset list; } >"$dir/bad-$how-$i"
                echo "i19-3: inconsistent after $how: $dir/bad-$how-$i"
                cat "$dir/bad-$how-$i"
            }
        done
    done
    check "i19-3: $n SIGTERMs and $n group SIGINTs during apply: new rules always with the new set, old with the old ($(for k in "${!kinds[@]}"; do printf '%s %s, ' "$k" "${kinds[$k]}"; done)bad $bad)" test "$bad" = 0
    run_s "$v2" --delete >/dev/null 2>&1
}

# 4: addresses normalized once: octal refused, x/32 is x, ::a.b.c.d as ipset lists it
i19_addresses() {
    local dir=$TMP/i19a-$BACKEND s s6 out rc set
    s=$(gen "$dir" s.sh -i 10.53.1.2 dns -- '*.www.example.net')
    run_s "$s" >/dev/null
    set=$(setof "$s")
    out=$(run_s "$s" 010.053.001.002 2>&1)
    rc=$?
    check "i19-4: a leading-zero address is refused (rc $rc: $out)" test "$rc" = 2 -a -n "$out"
    check "i19-4: ... 8.43.1.2 not added" not in_set "$set" 8.43.1.2
    check "i19-4: 10.53.1.2/32 (a preset) applies" run_s "$s" 10.53.1.2/32
    # A failed run (the rules must change, the restore fails) given the preset as x/32.
    srv "$IPT4" -w -D INPUT "$(srv "$IPT4" -w -S INPUT | grep -n -- "$(depof "$s")" | head -n 1 | cut -d: -f1 | awk '{ print $1 - 1 }')"
    check "i19-4: a failing run given 10.53.1.2/32 fails" not with IPTABLES_RESTORE=false run_s "$s" 10.53.1.2/32 10.53.1.40
    check "i19-4: ... and keeps the preset 10.53.1.2" in_set "$set" 10.53.1.2
    check "i19-4: ... and removes what it added" not in_set "$set" 10.53.1.40
    run_s "$s" >/dev/null
    local lost
    lost=$(flood 10.53.1.2 20)
    check "i19-4: the flood to the preset is dropped (lost $lost of 20)" test "$lost" = 20
    run_s "$s" --delete >/dev/null
    s6=$(gen "$dir" s6.sh -6 -i ::10.53.1.9 -i fd53:1::2 dns -- '*.www.example.net')
    run_s "$s6" >/dev/null
    out=$(run_s "$s6" ::10.53.1.10 2>&1)
    out=$(run_s "$s6" 2>&1)
    check "i19-4: ::10.53.1.9 presets: a re-run changes nothing ($out)" grep -q "already applied" <<<"$out"
    check "i19-4: ... ::10.53.1.9 is in the set" in_set "$(setof "$s6")" ::10.53.1.9
    check "i19-4: ... ::10.53.1.10 given at run time is in the set" in_set "$(setof "$s6")" ::10.53.1.10
    run_s "$s6" --delete >/dev/null
}

# 5: --status exits 3 whenever the protection is not what the script describes
i19_status() {
    local dir=$TMP/i19t-$BACKEND s set line out
    s=$(gen "$dir" s.sh -i 10.53.1.2 -i 10.53.1.5 dns -- '*.www.example.net')
    run_s "$s" >/dev/null
    set=$(setof "$s")
    check "i19-5: applied: --status 0" test "$(status_code "$s")" = 0
    srv ipset flush "$set"
    check "i19-5: set flushed: --status 3" test "$(status_code "$s")" = 3
    run_s "$s" >/dev/null
    check "i19-5: apply repairs: --status 0" test "$(status_code "$s")" = 0
    srv ipset del "$set" 10.53.1.5
    check "i19-5: a preset deleted: --status 3" test "$(status_code "$s")" = 3
    run_s "$s" >/dev/null
    line=$(srv "$IPT4" -w -S INPUT | grep -- "$(depof "$s")")
    line=${line/-j DROP/-j ACCEPT}
    eval "srv $IPT4 -w ${line/-A INPUT/-R INPUT 1}"
    out=$(run_s "$s" --status 2>&1)
    check "i19-5: a rule edited to -j ACCEPT keeping its comment: --status 3" test "$(status_code "$s")" = 3
    check "i19-5: ... saying so" grep -q "differs" <<<"$out"
    check "i19-5: ... apply repairs it" run_s "$s"
    check "i19-5: ... back to DROP" bash -c "ip netns exec '$SRV' $IPT4 -S INPUT | grep -- '$(depof "$s")' | grep -q -- '-j DROP'"
    local lost
    lost=$(flood 10.53.1.2 20)
    check "i19-5: ... the flood dropped again (lost $lost of 20)" test "$lost" = 20
    # The interface renamed: the rule still says -i v-srv.
    srv ip link set v-srv down
    srv ip link set v-srv name v-ren
    srv ip link set v-ren up
    srv ip route add default via 10.53.1.1 dev v-ren 2>/dev/null
    out=$(ip netns exec "$SRV" env IPTABLES="$IPT4" "$s" --status 2>&1)
    check "i19-5: the interface renamed: --status 3 ($(grep differs <<<"$out" | head -n 1))" \
        test "$(ip netns exec "$SRV" env IPTABLES="$IPT4" "$s" --status >/dev/null 2>&1; echo $?)" = 3
    check "i19-5: ... apply without DEFAULTINT refuses (the interface is gone)" \
        not ip netns exec "$SRV" env IPTABLES="$IPT4" "$s"
    srv ip link set v-ren down
    srv ip link set v-ren name v-srv
    srv ip link set v-srv up
    # (a link going down loses its IPv6 addresses)
    srv ip -6 addr add fd53:1::2/64 dev v-srv nodad 2>/dev/null
    srv ip route add default via 10.53.1.1 dev v-srv 2>/dev/null
    srv ip -6 route add default via fd53:1::1 dev v-srv 2>/dev/null
    run_s "$s" --delete >/dev/null
    check "i19-5: nothing applied: --status 3" test "$(status_code "$s")" = 3
}

# 6: both backends: status and delete look in both, apply refuses a second copy
i19_backends() {
    local dir=$TMP/i19b-$BACKEND s other out rc lost
    other=iptables-legacy
    [ "$BACKEND" = legacy ] && other=iptables-nft
    s=$(gen "$dir" s.sh -i 10.53.1.2 dns -- '*.www.example.net')
    run_s "$s" >/dev/null
    out=$(with IPTABLES=$other run_s "$s" 2>&1)
    rc=$?
    check "i19-6: applying with $other while $IPT4 holds the rules is refused (rc $rc)" test "$rc" = 1
    check "i19-6: ... naming the command that removes them" grep -q "IPTABLES=$IPT4 .* --delete" <<<"$out"
    check "i19-6: ... and no second copy" not bash -c "ip netns exec '$SRV' $other -S 2>/dev/null | grep -q '$(depof "$s")'"
    out=$(with IPTABLES=$other run_s "$s" --status 2>&1)
    check "i19-6: --status through $other names $IPT4 as holding the rules" grep -q "holds rules of this deployment" <<<"$out"
    out=$(with IPTABLES=$other run_s "$s" --delete 2>&1)
    check "i19-6: --delete through $other removes the rules from $IPT4 ($out)" nothing_of "$s"
    lost=$(flood 10.53.1.2 10)
    check "i19-6: ... the flood is answered again (lost $lost)" test "$lost" = 0
}

# 7: the rules match on the set alone, on every interface, unless DEFAULTINT says one
i19_interface() {
    local dir=$TMP/i19i-$BACKEND s out lost
    s=$(gen "$dir" s.sh -i 10.53.1.2 dns -- '*.www.example.net')
    # The default route on another interface: the flood comes in through v-srv anyway.
    srv ip link add v-other type veth peer name v-other-peer
    srv ip link set v-other up
    srv ip link set v-other-peer up
    srv ip addr add 10.99.0.1/24 dev v-other
    srv ip route replace default via 10.99.0.2 dev v-other
    out=$(ip netns exec "$SRV" env IPTABLES="$IPT4" "$s" 2>&1)
    check "i19-7: apply without DEFAULTINT says every interface ($out)" grep -q "on every interface" <<<"$out"
    check "i19-7: ... no -i in the rule" not bash -c "ip netns exec '$SRV' $IPT4 -S INPUT | grep -- '$(depof "$s")' | grep -q -- ' -i '"
    srv ip route replace default via 10.53.1.1 dev v-srv
    srv ip link del v-other
    lost=$(flood 10.53.1.2 20)
    check "i19-7: ... the flood is dropped (lost $lost of 20)" test "$lost" = 20
    run_s "$s" >/dev/null
    out=$(ip netns exec "$SRV" env IPTABLES="$IPT4" "$s" 10.53.1.6 2>&1)
    check "i19-7: a later run without DEFAULTINT keeps v-srv ($out)" grep -q "on interface v-srv" <<<"$out"
    out=$(ip netns exec "$SRV" env IPTABLES="$IPT4" "$s" --status 2>&1)
    check "i19-7: --status names the interface" grep -q "rules on interface v-srv" <<<"$out"
    check "i19-7: DEFAULTINT=v-srv under nsenter --net (the namespace's own interface)" \
        nsenter --net="/var/run/netns/$SRV" env IPTABLES="$IPT4" DEFAULTINT=v-srv "$s"
    local host_only
    host_only=$(ip -o link show | awk -F': ' '$2 != "lo" { sub(/@.*/, "", $2); print $2; exit }')
    if [ -n "$host_only" ] && ! srv ip link show dev "$host_only" >/dev/null 2>&1; then
        check "i19-7: DEFAULTINT=$host_only (a host interface) refused under nsenter --net" \
            not nsenter --net="/var/run/netns/$SRV" env IPTABLES="$IPT4" DEFAULTINT="$host_only" "$s"
    fi
    run_s "$s" --delete >/dev/null
}

# 8: chain mode's accepted names go on through INPUT's later rules
i19_chain_accept() {
    local dir=$TMP/i19c-$BACKEND s f
    s=$(gen "$dir" s.sh -i 10.53.1.2 --chain GUARD --accept www.example.net --drop any)
    run_s "$s" >/dev/null
    srv "$IPT4" -w -A INPUT -s 10.53.1.1 -p udp --dport 53 -j DROP
    check "i19-8: an accepted name from a client a later host rule drops is dropped" not answered 10.53.1.2 www.example.net
    f=$(gen "$dir" f.sh -i 10.53.1.2 --chain GUARD --accept-final --accept www.example.net --drop any)
    run_s "$f" >/dev/null
    check "i19-8: --accept-final: accepted at once (the old behaviour)" answered 10.53.1.2 www.example.net
    srv "$IPT4" -w -D INPUT -s 10.53.1.1 -p udp --dport 53 -j DROP
    check "i19-8: without the host rule the accepted name is answered" answered 10.53.1.2 www.example.net
    run_s "$f" --delete >/dev/null
}

# 10: an IPv6 query behind more extension headers than the walk skips
ext6_query() { # ext6_query HEADERS: sends www.example.net behind HEADERS destination options headers; true if answered
    cli python3 - "$1" <<'PY'
import socket, struct, sys
count = int(sys.argv[1])
src, dst = "fd53:1::1", "fd53:1::2"
qname = b"".join(bytes([len(l)]) + l for l in b"x.www.example.net".split(b".")) + b"\0"
dns = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
listen = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
listen.bind((src, 0))
sport = listen.getsockname()[1]
listen.settimeout(1.5)
length = 8 + len(dns)
pseudo = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + struct.pack("!IxxxB", length, 17)
udp = struct.pack("!HHHH", sport, 53, length, 0) + dns
data = pseudo + udp + (b"\0" if len(udp) % 2 else b"")
total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
while total >> 16:
    total = (total & 0xffff) + (total >> 16)
udp = udp[:6] + struct.pack("!H", (~total & 0xffff) or 0xffff) + udp[8:]
headers = b""
kinds = [0] + [60] * (count - 1)
for i in range(count):
    following = kinds[i + 1] if i + 1 < count else 17
    headers += bytes([following, 0, 1, 4, 0, 0, 0, 0])
first = kinds[0] if count else 17
ip = struct.pack("!IHBB", 6 << 28, len(headers) + len(udp), first, 64) + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
raw.sendto(ip + headers + udp, (dst, 0))
try:
    listen.recvfrom(4096)
    sys.exit(0)
except socket.timeout:
    sys.exit(1)
PY
}
i19_ext_headers() {
    local dir=$TMP/i19e-$BACKEND s p
    s=$(gen "$dir" s.sh -6 -i fd53:1::2 dns -- '*.www.example.net')
    check "i19-10: a query behind 3 extension headers reaches the server without rules" ext6_query 3
    run_s "$s" >/dev/null
    check "i19-10: ... behind 1 extension header it is dropped" not ext6_query 1
    check "i19-10: ... behind 3 (more than the walk's 2) it is dropped too" not ext6_query 3
    run_s "$s" --delete >/dev/null
    p=$(gen "$dir" p.sh -6 -i fd53:1::2 dns -- --unwalked-pass '*.www.example.net')
    run_s "$p" >/dev/null
    check "i19-10: dns --unwalked-pass: behind 3 it passes (the old behaviour)" ext6_query 3
    run_s "$p" --delete >/dev/null
}

# 11: the smaller ones; every failure says why
i19_small() {
    local dir=$TMP/i19m-$BACKEND s out rc n bad=0 silent=0
    s=$(gen "$dir" s.sh -i 10.53.1.2 dns -- '*.www.example.net')
    out=$(ip netns exec "$SRV" env IPTABLES="$IPT4" DEFAULTINT=v-srv sh "$s" 2>&1)
    check "i19-11: sh ./SCRIPT applies (re-run under bash: $out)" grep -q "applied" <<<"$out"
    check "i19-11: --status ignores a bad INPUTPLACE it does not use" with INPUTPLACE=bogus run_s "$s" --status
    mkdir -p "$dir/ro"
    mount -t tmpfs tmpfs "$dir/ro"
    touch "$dir/ro/lock"
    mount -o remount,ro "$dir/ro"
    check "i19-11: a lock file on a read-only file system is used" with LOCK_FILE="$dir/ro/lock" run_s "$s" 10.53.1.8
    umount "$dir/ro"
    srv "$IPT4" -w -A FORWARD -m set --match-set "$(setof "$s")" dst -j ACCEPT
    out=$(run_s "$s" --delete 2>&1)
    rc=$?
    check "i19-11: --delete with the set used by another rule: exit 0 (rc $rc), the rules removed" test "$rc" = 0
    check "i19-11: ... saying the set is kept" grep -q "still used" <<<"$out"
    srv "$IPT4" -w -D FORWARD -m set --match-set "$(setof "$s")" dst -j ACCEPT
    run_s "$s" --delete >/dev/null
    srv ipset create "$(setof "$s")" hash:net family inet comment timeout 60
    out=$(run_s "$s" 2>&1)
    rc=$?
    check "i19-11: a set of the same name with timeouts is not adopted (rc $rc)" test "$rc" = 1
    check "i19-11: ... saying so" grep -q "not the set this script makes" <<<"$out"
    srv ipset destroy "$(setof "$s")"
    # A failure injected at each external command in turn: a message and exit status 1.
    local v1 v2
    v1=$(gen "$dir" d.sh -i 10.53.1.2 dns -- '*.mail.example.net')
    cp "$v1" "$dir/v1.sh"
    v1=$dir/v1.sh
    v2=$(gen "$dir" d.sh -i 10.53.1.2 -i 10.53.1.3 dns -- "${SPLIT[@]}")
    local name real
    for name in ipt ipset restore; do
        case $name in
            ipt) real=$(command -v "$IPT4") ;;
            ipset) real=$(command -v ipset) ;;
            restore) real=$(command -v "$IPT4-restore") ;;
        esac
        cat >"$dir/fail-$name" <<WRAP
#!/bin/bash
n=\$(cat "$dir/count")
echo \$((n + 1)) >"$dir/count"
[ "\$n" = "\$(cat "$dir/at")" ] && exit 7
exec $real "\$@"
WRAP
    done
    chmod +x "$dir/fail-ipt" "$dir/fail-ipset" "$dir/fail-restore"
    for n in $(seq 0 14); do
        run_s "$v2" --delete >/dev/null 2>&1
        run_s "$v1" >/dev/null 2>&1
        echo 0 >"$dir/count"
        echo "$n" >"$dir/at"
        out=$(ip netns exec "$SRV" env IPTABLES="$dir/fail-ipt" IPTABLES_RESTORE="$dir/fail-restore" IPSET="$dir/fail-ipset" DEFAULTINT=v-srv "$v2" 2>&1)
        rc=$?
        if [ "$rc" != 0 ]; then
            [ "$rc" = 1 ] || bad=$((bad + 1))
            [ -n "$out" ] || silent=$((silent + 1))
            converged "$v1" || converged "$v2" || bad=$((bad + 1))
        fi
        run_s "$v2" >/dev/null 2>&1 && converged "$v2" || bad=$((bad + 1))
    done
    check "i19-11: a failure at each of the first 15 commands: exit 1, a message, old or new rules (bad $bad, silent $silent)" test "$bad" = 0 -a "$silent" = 0
    run_s "$v2" --delete >/dev/null 2>&1
}

issue19() {
    i19_rename
    i19_addresses
    i19_status
    i19_backends
    i19_interface
    i19_chain_accept
    i19_ext_headers
    i19_small
    i19_signals
}

# --- start states: apply and --delete reach the right state from each
start_states() {
    local dir=$TMP/states-$BACKEND s old other line state
    old=$(gen "$dir" deploy.sh -i 10.53.1.2 dns -- '*.mail.example.net')
    s=$(gen "$dir" next.sh -i 10.53.1.2 dns -- "${SPLIT[@]}")
    # The previous version: the same file, regenerated (old keeps its text under another name).
    cp "$old" "$dir/previous.sh"
    old=$dir/previous.sh
    s=$(gen "$dir" deploy.sh -i 10.53.1.2 dns -- "${SPLIT[@]}")
    other=$(gen "$dir" other.sh -i 10.53.1.2 dns -- '*.host1.example.org')
    for state in nothing applied split-rule-missing duplicate-rule previous-version other-deployment user-chain; do
        case $state in
            nothing) ;;
            applied) run_s "$s" >/dev/null ;;
            split-rule-missing)
                run_s "$s" >/dev/null
                line=$(srv "$IPT4" -w -S INPUT | grep -- "$(sed -n 's/^DEPLOYMENT=//p' "$s")" | sed -n 2p)
                eval "srv $IPT4 -w ${line/-A/-D}"
                ;;
            duplicate-rule)
                run_s "$s" >/dev/null
                line=$(srv "$IPT4" -w -S INPUT | grep -- "$(sed -n 's/^DEPLOYMENT=//p' "$s")" | sed -n 1p)
                eval "srv $IPT4 -w $line"
                ;;
            previous-version) run_s "$old" >/dev/null ;;
            other-deployment) run_s "$other" >/dev/null ;;
            user-chain)
                srv "$IPT4" -w -N "$(sed -n "s/^CHAIN='\(.*\)'$/\1/p" "$s")" 2>/dev/null
                srv "$IPT4" -w -N deploy
                srv "$IPT4" -w -A deploy -j RETURN
                ;;
        esac
        check "state $state: apply" run_s "$s"
        check "state $state: exactly the desired rules" converged "$s"
        if [ "$state" = previous-version ]; then
            check "state $state: the previous version's rules are gone" \
                bash -c "! ip netns exec '$SRV' $IPT4 -S | grep -q '$(sed -n 's/^VERSION=//p' "$old")'"
        fi
        if [ "$state" = other-deployment ]; then
            check "state $state: the other deployment is untouched" converged "$other"
        fi
        check "state $state: --delete" run_s "$s" --delete
        check "state $state: nothing of the deployment left" nothing_of "$s"
        case $state in
            other-deployment)
                check "state $state: the other deployment is still there" converged "$other"
                run_s "$other" --delete >/dev/null
                ;;
            user-chain)
                check "state $state: the user's chain is still there" \
                    bash -c "ip netns exec '$SRV' $IPT4 -S deploy | grep -q -- '-A deploy -j RETURN'"
                srv "$IPT4" -w -F deploy
                srv "$IPT4" -w -X deploy
                ;;
        esac
        # An owned-looking empty chain made by hand is the deployment's: --delete took it.
    done
}

# --- SIGKILL of the whole process group at random moments
kill_at_random() { # kill_at_random MAX_MS SCRIPT ARGS...
    local max=$1
    shift
    local script=$1
    shift
    setsid ip netns exec "$SRV" env IPTABLES="$(ipt_of "$script")" DEFAULTINT=v-srv "$script" "$@" >/dev/null 2>&1 &
    local pid=$!
    sleep "$(awk -v r="$RANDOM" -v m="$max" 'BEGIN { printf "%.3f", (r % m) / 1000 }')"
    kill -KILL -- -"$pid" 2>/dev/null
    # (the shell's "Killed" notice of the job is not wanted: the kill is the test)
    { wait_bounded "$pid"; } 2>/dev/null
}
# rules_state OLD NEW: "old", "new", "none" or "mixed"
rules_state() {
    local old=$1 new=$2 have
    have=$(owned "$new")
    if [ -z "$have" ]; then echo none
    elif [ "$have" = "$(wanted "$new")" ]; then echo new
    elif [ "$have" = "$(wanted "$old" | sed "s/$(sed -n 's/^DEPLOYMENT=//p' "$old")/$(sed -n 's/^DEPLOYMENT=//p' "$new")/")" ]; then echo old
    else echo mixed
    fi
}
kill_loops() {
    local dir=$TMP/kills-$BACKEND v1 v2 i st bad=0 seen_set=0 counts
    v1=$(gen "$dir" d.sh -i 10.53.1.2 dns -- '*.mail.example.net')
    cp "$v1" "$dir/v1.sh"
    v1=$dir/v1.sh
    v2=$(gen "$dir" d.sh -i 10.53.1.2 -i 10.53.1.3 dns -- "${SPLIT[@]}")
    # Apply v2 over v1, killed.
    declare -A counts=()
    for i in $(seq "$KILLS"); do
        run_s "$v1" >/dev/null 2>&1
        kill_at_random 250 "$v2"
        st=$(rules_state "$v1" "$v2")
        counts[$st]=$((${counts[$st]:-0} + 1))
        [ "$st" = mixed ] && { bad=$((bad + 1)); owned "$v2" >"$dir/mixed-$i"; }
        if ! run_s "$v2" >/dev/null 2>&1 || ! converged "$v2"; then bad=$((bad + 1)); fi
    done
    check "kills: $KILLS SIGKILLs during apply: rules all old or all new (old ${counts[old]:-0}, new ${counts[new]:-0}, none ${counts[none]:-0}, mixed ${counts[mixed]:-0}), each re-run converges" test "$bad" = 0
    # From nothing, killed: a set without rules only, which the next run uses.
    bad=0
    declare -A counts=()
    for i in $(seq "$KILLS"); do
        run_s "$v2" --delete >/dev/null 2>&1
        kill_at_random 250 "$v2"
        st=$(rules_state "$v1" "$v2")
        if [ "$st" = none ] && set_of_exists "$v2"; then seen_set=$((seen_set + 1)); fi
        counts[$st]=$((${counts[$st]:-0} + 1))
        case $st in none | new) ;; *) bad=$((bad + 1)) ;; esac
        if [ $((i % 2)) = 0 ]; then
            # Every other time, --delete cleans up from there.
            run_s "$v2" --delete >/dev/null 2>&1 && nothing_of "$v2" || bad=$((bad + 1))
        else
            run_s "$v2" >/dev/null 2>&1 && converged "$v2" || bad=$((bad + 1))
        fi
    done
    check "kills: $KILLS SIGKILLs of a first apply: none or all (none ${counts[none]:-0} of which $seen_set left a set, new ${counts[new]:-0}); next run or --delete converges" test "$bad" = 0
    # --delete, killed.
    bad=0
    declare -A counts=()
    for i in $(seq "$KILLS"); do
        run_s "$v2" >/dev/null 2>&1
        kill_at_random 200 "$v2" --delete
        st=$(rules_state "$v1" "$v2")
        counts[$st]=$((${counts[$st]:-0} + 1))
        case $st in none | new) ;; *) bad=$((bad + 1)) ;; esac
        if [ $((i % 2)) = 0 ]; then
            run_s "$v2" --delete >/dev/null 2>&1 && nothing_of "$v2" || bad=$((bad + 1))
        else
            run_s "$v2" >/dev/null 2>&1 && converged "$v2" || bad=$((bad + 1))
            run_s "$v2" --delete >/dev/null 2>&1
        fi
    done
    check "kills: $KILLS SIGKILLs during --delete: all rules or none (all ${counts[new]:-0}, none ${counts[none]:-0}, other $((${counts[old]:-0} + ${counts[mixed]:-0}))); the next run converges" test "$bad" = 0
}

# --- concurrent runs
pairs() {
    local dir=$TMP/pairs-$BACKEND v2 other i bad=0
    v2=$(gen "$dir" d.sh -i 10.53.1.2 dns -- "${SPLIT[@]}")
    other=$(gen "$dir" o.sh -i 10.53.1.2 dns -- '*.www.example.net')
    for i in $(seq "$PAIRS"); do
        run_s "$v2" --delete >/dev/null 2>&1
        # (wait for these runs only: the DNS server runs in the background too)
        local pids=()
        run_s "$v2" >/dev/null 2>&1 &
        pids+=($!)
        run_s "$v2" >/dev/null 2>&1 &
        pids+=($!)
        run_s "$other" >/dev/null 2>&1 &
        pids+=($!)
        wait "${pids[@]}"
        converged "$v2" && converged "$other" || bad=$((bad + 1))
        pids=()
        run_s "$v2" --delete >/dev/null 2>&1 &
        pids+=($!)
        run_s "$v2" --delete >/dev/null 2>&1 &
        pids+=($!)
        wait "${pids[@]}"
        nothing_of "$v2" && converged "$other" || bad=$((bad + 1))
    done
    check "pairs: $PAIRS pairs of concurrent runs (and of --delete) end with exactly the desired rules" test "$bad" = 0
    run_s "$other" --delete >/dev/null
}

for backend in nft legacy; do
    net_up "$backend"
    echo "== $backend"
    if [ -n "${ONLY:-}" ]; then
        $ONLY
        net_down
        continue
    fi
    issue19
    finding_1
    finding_2
    finding_4
    finding_5
    finding_6
    finding_7
    finding_8
    start_states
    pairs
    kill_loops
    check "$backend: no bpftools rule or set left" \
        bash -c "! ip netns exec '$SRV' $IPT4 -S | grep -q bpftools && ! ip netns exec '$SRV' ipset list -n | grep -q ."
    net_down
done

summary
