# Where cargo puts this workspace's release binaries (sourced, not run): the target directory
# cargo itself uses, so CARGO_TARGET_DIR, a relative one included, and build.target-dir in a
# cargo config are honoured.
# shellcheck shell=bash

# release_dir: prints the absolute path of the release directory; fails when cargo cannot say.
release_dir() {
    local metadata target
    metadata=$(cargo metadata --format-version 1 --no-deps --offline) || return 1
    target=$(printf '%s' "$metadata" | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    [ -n "$target" ] || { echo "cannot find cargo's target directory" >&2; return 1; }
    printf '%s/release\n' "$target"
}
