#!/usr/bin/env bash
# Checks that Cargo.toml's rust-version is true for the locked dependencies: no package of
# Cargo.lock (normal, build and dev dependencies, on every target platform) may declare a
# rust-version above the crate's, or a user of that toolchain could not build the tests.
# The crate's own code is checked by clippy's incompatible_msrv lint (on by default; it reads
# the same rust-version), which must not be turned off.
# Needs cargo and jq. Exit 0: consistent; 1: a package needs a newer Rust; 2: cannot check.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v jq >/dev/null || { echo "check-msrv: jq is needed (apt-get install jq)" >&2; exit 2; }

metadata=$(cargo metadata --format-version 1 --locked) || {
    echo "check-msrv: cargo metadata failed (is Cargo.lock up to date?)" >&2
    exit 2
}

report=$(jq -r '
    def v: split(".") | map(tonumber) | (. + [0, 0, 0])[0:3];
    .resolve.root as $root
    | (.resolve.nodes | map(.id)) as $locked
    | (.packages[] | select(.id == $root)) as $crate
    | if $crate.rust_version == null then "error: Cargo.toml has no rust-version"
      else
        ([.packages[] | select(.id as $id | $locked | index($id)) | select(.rust_version != null)]) as $deps
        | ($deps | max_by(.rust_version | v)) as $top
        | "ours \($crate.rust_version)",
          "highest \($top.rust_version) (\($top.name) \($top.version)) over \($deps | length) packages declaring one",
          ($deps[] | select((.rust_version | v) > ($crate.rust_version | v))
           | "above \(.name) \(.version) needs \(.rust_version)")
      end' <<<"$metadata")

if grep -q '^error: ' <<<"$report"; then
    echo "check-msrv: ${report#error: }" >&2
    exit 1
fi
echo "check-msrv: rust-version $(sed -n 's/^ours //p' <<<"$report"); $(sed -n 's/^highest //p' <<<"$report")"
if grep -q '^above ' <<<"$report"; then
    echo "check-msrv: these locked packages need a newer Rust than Cargo.toml's rust-version:" >&2
    sed -n 's/^above /  /p' <<<"$report" >&2
    exit 1
fi

# The lint that holds the crate's own code to rust-version stays on.
places=(src tests benches Cargo.toml)
for config in clippy.toml .clippy.toml; do
    [ -e "$config" ] && places+=("$config")
done
if grep -rnE 'incompatible_msrv|^[[:space:]]*msrv[[:space:]]*=' "${places[@]}"; then
    echo "check-msrv: clippy::incompatible_msrv is configured away above; it must stay on" >&2
    exit 1
fi
