#!/usr/bin/env bash
# Runs every test of the suite: unit, property and integration tests (cargo), then the
# end-to-end tests against the real kernel, iptables and ipset (they need root and say so
# when they skip).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --release --all-targets

for e2e in scripts/e2e-*.sh; do
    [ -e "$e2e" ] || continue
    echo "== $e2e"
    bash "$e2e"
done
