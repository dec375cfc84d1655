#!/usr/bin/env bash
# Proves the release binaries rebuild bit for bit: builds TARGETs with
# scripts/build-dist.sh here and in a fresh clone of the same commit at
# another path (another length too, so a leaked path cannot hide), then
# compares the two SHA256SUMS lines of each target.
#
# Usage: scripts/check-reproducible.sh [TARGET...]   (default: all four)
# CI checks the cheapest target (tests/run-all.sh); a release checks all.
#
# Needs a tree with no uncommitted changes to tracked files: the clone
# builds the commit, so anything uncommitted would differ by design.
# Here the build is usually a no-op (static-arm-builds just made it).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl
             armv7-unknown-linux-musleabihf arm-unknown-linux-musleabi)
fi
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "check-reproducible: uncommitted changes here; commit them first (the clone builds HEAD)" >&2
    exit 1
fi

work=$(mktemp -d /tmp/tcpcan-repro-XXXXXX)
trap 'rm -rf "$work"' EXIT
clone=$work/a-longer-directory-name/tcpcan-clone
git clone --quiet --no-local . "$clone"

# The same cargo home (crates are not fetched twice); separate target dirs.
unset CARGO_TARGET_DIR
scripts/build-dist.sh "${targets[@]}" >"$work/here.log" 2>&1 ||
    { cat "$work/here.log" >&2; echo "check-reproducible: the build here failed" >&2; exit 1; }
(cd "$clone" && scripts/build-dist.sh "${targets[@]}") >"$work/clone.log" 2>&1 ||
    { cat "$work/clone.log" >&2; echo "check-reproducible: the build in $clone failed" >&2; exit 1; }

version=$(cargo pkgid | sed 's/.*[#@]//')
fail=0
for t in "${targets[@]}"; do
    name=tcpcan-$version-$t
    a=$(grep " $name\$" dist/SHA256SUMS | cut -d' ' -f1)
    b=$(grep " $name\$" "$clone/dist/SHA256SUMS" | cut -d' ' -f1)
    if [ -n "$a" ] && [ "$a" = "$b" ]; then
        echo "ok - $t: identical from $PWD and $clone ($a)"
    else
        echo "not ok - $t: $PWD gives ${a:-nothing}, $clone gives ${b:-nothing}"
        fail=1
    fi
done
exit "$fail"
