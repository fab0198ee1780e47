#!/usr/bin/env bash
# Runs every test of the suite: unit, property and integration tests (cargo), then the
# end-to-end tests against the real kernel, iptables and ipset (scripts/e2e-*.sh).
#
# - As root: everything, including the tests marked #[ignore = "needs root ..."]
#   (cargo test -- --include-ignored) and the end-to-end scripts.
# - As another user: cargo test as usual (tests that need root are listed as ignored, with
#   the reason) and no end-to-end script; a closing summary names everything not run.
# - With CI=true: everything whoever runs it; a test or script that cannot run its oracle
#   (no root, a missing tool) fails instead of being left out.
# Tests that need a tool (tcpdump, gcc with libpcap-dev, shellcheck) fail, naming the package,
# when it is missing: install what the README lists.
set -euo pipefail
cd "$(dirname "$0")/.."

everything=false
if [ "$(id -u)" = 0 ]; then
    everything=true
    why="root"
elif [ "${CI:-}" = true ]; then
    everything=true
    why="CI=true"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

if $everything; then
    echo "test-all: running every test, ignored ones included, and the end-to-end scripts ($why)"
    cargo test --release --all-targets -- --include-ignored 2>&1 | tee "$log"
else
    echo "test-all: not root: tests that need root stay ignored and the end-to-end scripts are not run"
    cargo test --release --all-targets 2>&1 | tee "$log"
fi

# triage against per-packet truth on real-software captures (no root needed).
for lab in testdata/triage-lab/*/; do
    echo "== scripts/eval-triage.sh $lab"
    ./scripts/eval-triage.sh "$lab"
done

# run_bounded SECONDS COMMAND...: runs COMMAND; when it has not ended after SECONDS, prints
# every process (with what it waits on) and the file locks held, stops it and fails, so that a
# hang is reported with what hung instead of running until an outer limit.
E2E_LIMIT=${E2E_LIMIT:-1800}
run_bounded() {
    local limit=$1 pid start=$SECONDS
    shift
    setsid "$@" &
    pid=$!
    # (its own session: an interrupt of this script is passed on to all of it)
    trap 'kill -TERM -- -"$pid" 2>/dev/null; exit 130' INT TERM
    while kill -0 "$pid" 2>/dev/null; do
        if [ $((SECONDS - start)) -ge "$limit" ]; then
            echo "test-all: FAIL: $* has not ended after ${limit}s; the processes and locks:"
            ps -eo pid,ppid,pgid,stat,wchan:24,etimes,args --forest
            cat /proc/locks
            kill -TERM -- -"$pid" 2>/dev/null
            sleep 10
            kill -KILL -- -"$pid" 2>/dev/null
            wait "$pid"
            return 1
        fi
        sleep 1
    done
    trap - INT TERM
    wait "$pid"
}

skipped_scripts=()
for e2e in scripts/e2e-*.sh; do
    [ -e "$e2e" ] || continue
    if $everything; then
        echo "== $e2e"
        run_bounded "$E2E_LIMIT" bash "$e2e"
    else
        skipped_scripts+=("$e2e")
    fi
done

ignored=$(grep -E '^test .* \.\.\. ignored' "$log" || true)
passed=$(grep -Eo '^test result: ok\. [0-9]+ passed' "$log" | awk '{ n += $4 } END { print n + 0 }')
echo
echo "test-all: passed: $passed cargo tests; end-to-end scripts run: $($everything && echo all || echo none)"
if [ -n "$ignored" ] || [ ${#skipped_scripts[@]} -gt 0 ]; then
    echo "test-all: NOT RUN (run as root, or with CI=true, to run them):"
    if [ -n "$ignored" ]; then
        while IFS= read -r line; do echo "  $line"; done <<<"$ignored"
    fi
    for e2e in "${skipped_scripts[@]}"; do
        echo "  script $e2e ... needs root (network namespaces, iptables, ipset)"
    done
else
    echo "test-all: nothing was left out"
fi
