#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs gitroot's whole test suite: real FUSE
# mounts, real git, real Debian root filesystems, real kernels under QEMU. Needs root. Ends
# with the line "N passed, N failed, N skipped" and exits non-zero if anything failed.
#
# Without arguments the QEMU boot tests (test/boot-qemu-*.test.ts: one TCG guest at a time,
# mostly one CPU) run beside the rest of the suite, in a second tap process, so the suite
# fits the CI budget; their output follows the rest's. With arguments, tap runs exactly
# those, in one process.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
# The linter and the formatter first (eslint.config.js, .prettierrc.json); their verdict counts like a
# failed test, but the tests still run.
lint=0
npx --no-install eslint lib bin test bench fixtures scripts </dev/null || { lint=1; echo "lint: eslint found problems (above): fix them or run 'npm run lint'"; }
npx --no-install prettier --check . </dev/null >/dev/null || { lint=1; echo "lint: files not in prettier's layout (npx prettier --check . lists them): run 'npm run format'"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ $# -gt 0 ]; then
	npx --no-install tap "$@" </dev/null 2>&1 | tee "$tmp/main.log"
	status=${PIPESTATUS[0]}
	logs=("$tmp/main.log")
else
	qemu=(test/boot-qemu-*.test.ts)
	rest=()
	for f in test/*.test.ts; do
		case $f in test/boot-qemu-*) ;; *) rest+=("$f") ;; esac
	done
	# Both groups unpack the cached Debian minbase tree; build it once first, so two
	# first-time builds never race for the same cache file.
	warm=$(mktemp -d)
	bash ../shared/fixtures/debian-rootfs.sh "$warm/root" >/dev/null || { rm -rf "$warm"; exit 1; }
	rm -rf "$warm"
	npx --no-install tap "${qemu[@]}" </dev/null >"$tmp/qemu.log" 2>&1 &
	qpid=$!
	npx --no-install tap "${rest[@]}" </dev/null 2>&1 | tee "$tmp/main.log"
	status=${PIPESTATUS[0]}
	wait "$qpid"
	qstatus=$?
	echo
	echo "# QEMU boot tests (run beside the rest):"
	cat "$tmp/qemu.log"
	[ "$status" -ne 0 ] || status=$qstatus
	logs=("$tmp/main.log" "$tmp/qemu.log")
fi

total=0; pass=0; skip=0
for log in "${logs[@]}"; do
	summary=$(grep -aE '^# \{ total: [0-9]+' "$log" | tail -n1)
	t=$(sed -nE 's/.*total: ([0-9]+).*/\1/p' <<<"$summary")
	p=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
	s=$(sed -nE 's/.*skip: ([0-9]+).*/\1/p' <<<"$summary")
	total=$((total + ${t:-0})); pass=$((pass + ${p:-0})); skip=$((skip + ${s:-0}))
done
fail=$((total - pass - skip))
if [ "$lint" -ne 0 ]; then fail=$((fail + 1)); [ "$status" -ne 0 ] || status=1; fi
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
echo "${pass} passed, ${fail} failed, ${skip} skipped"
exit "$status"
