#!/usr/bin/env bash
# Builds (or reuses) a Debian root filesystem tarball with mmdebstrap and prints its path:
#
#   debian-root.sh --name NAME --suite SUITE --variant VARIANT [--include a,b,...]
#
# The tarball is cached under $GITROOT_BUILD_CACHE (default /var/cache/gitroot-build) as
# roots/NAME-SUITE-KEY.tar, KEY being a hash of everything that decides its content (suite,
# variant, the sorted package list, the mirror, this recipe's version), so a changed
# package list builds a new tree and an unchanged one is reused at once. Older tarballs of
# the same NAME-SUITE are removed. Downloaded .debs are kept in apt/SUITE/ and reused, so
# a rebuild downloads only what changed. Used by the Debian package build
# (scripts/build-deb.sh), its test and examples/kiosk/build.sh.
#
# mmdebstrap runs in --mode=unshare: as root that is a private mount and pid namespace (no
# user namespace needed), so every mount it makes vanishes with it; as another user it
# needs an /etc/subuid entry. Where root cannot unshare, --mode=root is used instead.
# Chroot /dev: as root in unshare mode the tree gets its own small tmpfs /dev
# (scripts/chroot-dev.sh), never the host's.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/mmdebstrap-lib.sh
. "$here/mmdebstrap-lib.sh"

usage() { echo "usage: $0 --name NAME --suite SUITE --variant VARIANT [--include a,b,...]" >&2; exit 2; }
name= suite= variant= include=
while [ $# -gt 0 ]; do
	case "$1" in
	--name) name=$2; shift 2 ;;
	--suite) suite=$2; shift 2 ;;
	--variant) variant=$2; shift 2 ;;
	--include) include=$2; shift 2 ;;
	*) usage ;;
	esac
done
[ -n "$name" ] && [ -n "$suite" ] && [ -n "$variant" ] || usage
command -v mmdebstrap >/dev/null || { echo "debian-root: mmdebstrap is missing: run scripts/setup.sh (or apt-get install mmdebstrap)" >&2; exit 1; }

mirror=${GITROOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=$(gitroot_build_cache)
# The package list sorted and de-duplicated, so the key does not depend on its order.
packages=$(tr ',' '\n' <<<"$include" | sed '/^$/d' | LC_ALL=C sort -u | paste -sd, -)
# Bump when the way the tree is made changes (hooks, cleanup), so old caches are not reused.
recipe="debian-root v1|$suite|$variant|$packages|$mirror"
key=$(printf '%s' "$recipe" | sha256sum | cut -c1-16)
tarball=$cache/roots/$name-$suite-$key.tar
mkdir -p "$cache/roots" "$cache/apt/$suite"

# One builder at a time per cache: a second caller waits, then finds the tarball made.
exec 9>"$cache/roots/.lock"
flock 9
if [ ! -s "$tarball" ]; then
	echo "debian-root: building $name ($suite, $variant${packages:+, $packages}); cached afterwards" >&2
	mode=$(gitroot_mmdebstrap_mode)
	args=(--mode="$mode" --variant="$variant" ${packages:+--include="$packages"})
	# Keep the downloaded .debs (essential/unlink would delete them) and share them between builds.
	args+=(--skip=essential/unlink --skip=chroot/mount/sys)
	args+=(--setup-hook='mkdir -p "$1/var/cache/apt/archives"')
	args+=(--setup-hook="sync-in $cache/apt/$suite /var/cache/apt/archives/")
	mapfile -t devargs < <(gitroot_dev_hook_args "$mode")
	args+=("${devargs[@]}")
	args+=(--customize-hook="sync-out /var/cache/apt/archives $cache/apt/$suite")
	log=$(mktemp "$cache/roots/build.XXXXXX.log")
	if ! mmdebstrap "${args[@]}" --format=tar "$suite" "$tarball.tmp" "$mirror" >"$log" 2>&1; then
		rm -f "$tarball.tmp"
		tail -n 15 "$log" >&2
		echo "debian-root: mmdebstrap failed for $name ($suite); the log above says why (log: $log)" >&2
		exit 1
	fi
	rm -f "$log"
	mv "$tarball.tmp" "$tarball"
	# Older trees of the same name and suite are superseded by this one.
	for old in "$cache/roots/$name-$suite-"*.tar; do
		[ "$old" = "$tarball" ] || rm -f "$old"
	done
	# .debs of versions the tree no longer has are never needed again: keep only the newest per package.
	gitroot_prune_archives "$cache/apt/$suite"
fi
echo "$tarball"
