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
    wait "$pid" 2>/dev/null
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
