#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs gitroot's whole test suite: real FUSE
# mounts, real git, real Debian root filesystems. Needs root. Ends with the line
# "N passed, N failed" and exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
npx --no-install tap "$@" </dev/null 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
summary=$(grep -E '^# \{ total: [0-9]+' "$out" | tail -n1)
total=$(sed -nE 's/.*total: ([0-9]+).*/\1/p' <<<"$summary")
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
skip=$(sed -nE 's/.*skip: ([0-9]+).*/\1/p' <<<"$summary")
total=${total:-0}; pass=${pass:-0}; skip=${skip:-0}
fail=$((total - pass - skip))
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
echo "${pass} passed, ${fail} failed, ${skip} skipped"
exit "$status"
