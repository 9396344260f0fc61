#!/usr/bin/env bash
# Builds the gitroot Debian package for one Debian release (npm run deb):
#
#   build-deb.sh [--suite trixie] [--out DIR]    -> DIR/gitroot_VERSION_ARCH.deb (DIR: dist)
#
# The FUSE addon links the release's own libfuse3 (trixie: libfuse3.so.4 from libfuse3-4,
# bookworm: libfuse3.so.3 from libfuse3-3), so the package is built inside a build root of
# that release, made with mmdebstrap and cached (scripts/debian-root.sh) with
# packaging/debian/control's Build-Depends and lintian. There debhelper compiles the addon
# against the release's node headers, checks that it loads in the release's node, computes
# Depends from its ELF dependencies (dh_shlibdeps) and packs the files
# initramfs-hooks/install.sh puts in place; then lintian checks the package and the build
# fails on any lintian error. The JavaScript bundle (architecture independent) is built here
# first, with the project's esbuild. A build whose inputs (sources, bundle, build root) are
# unchanged is reused from the cache. Prints the path of the .deb last; lintian's report is
# beside it (.lintian). See docs/packaging.md. Needs root, or an /etc/subuid entry.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(dirname "$here")
# shellcheck source=scripts/mmdebstrap-lib.sh
. "$here/mmdebstrap-lib.sh"

usage() { echo "usage: $0 [--suite SUITE] [--out DIR]" >&2; exit 2; }
suite=trixie
out=$project/dist
while [ $# -gt 0 ]; do
	case "$1" in
	--suite) suite=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) usage ;;
	esac
done
command -v mmdebstrap >/dev/null || { echo "build-deb: mmdebstrap is missing: run scripts/setup.sh (or apt-get install mmdebstrap)" >&2; exit 1; }
[ -d "$project/node_modules/esbuild" ] || { echo "build-deb: npm dependencies are missing: run scripts/setup.sh (or npm ci) first" >&2; exit 1; }

# The upstream version is package.json's; debian/changelog must have an entry for it.
upstream=$(node -p 'require(process.argv[1]).version' "$project/package.json")
debversion=$(sed -nE '1s/^gitroot \(([^)]+)\).*/\1/p' "$project/packaging/debian/changelog")
case "$debversion" in
"$upstream"-*) ;;
*) echo "build-deb: packaging/debian/changelog's newest entry is $debversion, package.json says $upstream: add a changelog entry for $upstream-1 (dch -v $upstream-1)" >&2; exit 1 ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/gitroot-deb.XXXXXX")
# Nothing is mounted under $work (mmdebstrap works in its own namespace and temp dir).
trap 'rm -rf --one-file-system "$work"' EXIT
# mmdebstrap's unshared user (non-root builds) must be able to read the sources.
chmod 0755 "$work"
src=$work/gitroot-$upstream

# 1. The source tree debhelper builds from: what the package is made of, and debian/.
mkdir -p "$src/dist"
( cd "$project" && cp -r --parents binding.gyp native boot initramfs-hooks docs README.md "$src/" )
cp -r "$project/packaging/debian" "$src/debian"
node "$project/scripts/build-bundle.mjs" --out "$src/dist/gitroot.cjs" --metafile "$work/meta.json" 2>/dev/null
# debian/copyright names every npm package inside the bundle (from esbuild's metafile).
node "$project/packaging/copyright.mjs" "$work/meta.json" "$src/debian/copyright"

# 2. The build root: Build-Depends (debhelper-compat is provided by debhelper) and lintian.
builddeps=$(awk '/^Build-Depends:/ { on = 1; sub(/^Build-Depends:/, ""); print; next }
	on && /^[ \t]/ { print; next } { on = 0 }' "$src/debian/control" \
	| tr ',' '\n' | sed -E 's/\(.*\)//; s/[[:space:]]//g; /^$/d; s/^debhelper-compat$/debhelper/' | paste -sd, -)
rootfs=$(bash "$here/debian-root.sh" --name deb-build --suite "$suite" --variant buildd --include "$builddeps,lintian")

# 3. Reuse a package built from exactly these inputs.
key=$( { ( cd "$work" && find "gitroot-$upstream" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum ); echo "$rootfs"; } | sha256sum | cut -c1-16)
cached=$(gitroot_build_cache)/debs/$suite-$key
mkdir -p "$out"
if [ -n "$(ls "$cached"/*.deb 2>/dev/null)" ]; then
	echo "build-deb: inputs unchanged, reusing $cached" >&2
else
	echo "build-deb: building gitroot $debversion for $suite" >&2
	mode=$(gitroot_mmdebstrap_mode)
	mapfile -t devargs < <(gitroot_dev_hook_args "$mode")
	mkdir -p "$work/out"
	log=$work/build.log
	# In the build root: dpkg-buildpackage (binary only, unsigned), then lintian on the .deb;
	# results to /build/out, copied back out.
	build='set -e; cd /build/gitroot-'"$upstream"'
		dpkg-buildpackage -b -us -uc
		mkdir -p /build/out && mv ../*.deb ../*.buildinfo ../*.changes /build/out/
		cd /build/out
		# lintian as nobody: it warns when run as root, and needs no privileges.
		chmod -R a+rX /build/out
		status=0; setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp \
			lintian --display-info --fail-on error ./*.deb > lintian.txt 2>&1 || status=$?
		echo "$status" > lintian.status'
	if ! mmdebstrap --mode="$mode" --variant=custom --skip=update --skip=chroot/mount/sys \
		"$(gitroot_tar_in_hook "$rootfs")" "${devargs[@]}" \
		--customize-hook='mkdir -p "$1/build"' \
		--customize-hook="copy-in $src /build" \
		--customize-hook="chroot \"\$1\" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 sh -c '$build'" \
		--customize-hook="copy-out /build/out $work" \
		'' /dev/null >"$log" 2>&1; then
		grep -vE '^I: ' "$log" | tail -n 30 >&2
		echo "build-deb: the package build failed in the $suite build root (the output above says why)" >&2
		exit 1
	fi
	if [ "$(cat "$work/out/lintian.status")" != 0 ]; then
		cat "$work/out/lintian.txt" >&2
		echo "build-deb: lintian reports errors (above): fix them in packaging/debian or initramfs-hooks/install.sh" >&2
		exit 1
	fi
	rm -rf --one-file-system "$cached.tmp"
	mkdir -p "$cached.tmp"
	cp "$work/out/"*.deb "$work/out/"*.buildinfo "$work/out/lintian.txt" "$cached.tmp/"
	rm -rf --one-file-system "$cached"
	mv "$cached.tmp" "$cached"
	# Packages of superseded inputs are not needed again.
	find "$(dirname "$cached")" -mindepth 1 -maxdepth 1 -type d -name "$suite-*" ! -name "$suite-$key" -exec rm -rf --one-file-system {} +
fi
deb=$(ls "$cached"/gitroot_*.deb | head -n1)
cp "$deb" "$out/"
cp "$cached/lintian.txt" "$out/$(basename "$deb" .deb).lintian"
echo "$out/$(basename "$deb")"
