#!/usr/bin/env bash
# Builds one release of a small Debian 13 kiosk OS and commits it into a gitroot repository:
#
#   build.sh REPO.git [--remote URL] [--sign-key KEY] [--label TEXT] [--deb FILE] [--overlay DIR]...
#
# The release: Debian 13 (trixie) made with mmdebstrap, with linux-image-amd64, systemd,
# systemd-boot, the gitroot Debian package (whose initramfs-tools hook puts gitroot into the
# initrd), /etc/gitroot/gitroot.conf naming the update remote, an allowed-signers file
# (with --sign-key: the key's public half, baked into the initramfs too) and a kiosk
# service that shows the label and the booted revision full-screen on tty1, with a health
# check that keeps a release whose kiosk program does not run from being marked good. It is committed
# with `gitroot commit` (signed with --sign-key) on the repository's master branch, on top
# of the previous release; the new commit's SHA is the last line printed.
#
# Caches (under /var/cache/gitroot-build, see scripts/debian-root.sh): the downloaded
# .debs, the base system keyed by its package list, and the base with gitroot installed
# and its initramfs built, keyed by the .deb and the signers file. A release that changes
# only its label or remote reuses both and takes well under a minute plus the commit.
# mmdebstrap runs in --mode=unshare (as root: private namespaces, nothing left mounted;
# as another user: needs an /etc/subuid entry), or --mode=root where root cannot unshare.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
# shellcheck source=../../scripts/mmdebstrap-lib.sh
. "$project/scripts/mmdebstrap-lib.sh"

usage() { echo "usage: $0 REPO.git [--remote URL] [--sign-key KEY] [--label TEXT] [--deb FILE] [--overlay DIR]..." >&2; exit 2; }
[ $# -ge 1 ] || usage
repo=$1; shift
remote= signkey= label="gitroot kiosk" deb=
overlays=()
while [ $# -gt 0 ]; do
	case "$1" in
	--remote) remote=$2; shift 2 ;;
	--sign-key) signkey=$(realpath "$2"); shift 2 ;;
	--label) label=$2; shift 2 ;;
	--deb) deb=$(realpath "$2"); shift 2 ;;
	# Your own files over the release (units, settings, a changed program), in order.
	--overlay) [ -d "$2" ] || { echo "kiosk: --overlay $2 is not a directory" >&2; exit 2; }; overlays+=("$(realpath "$2")"); shift 2 ;;
	*) usage ;;
	esac
done
suite=trixie
case "$repo" in /*) ;; *) repo=$PWD/$repo ;; esac
command -v mmdebstrap >/dev/null || { echo "kiosk: mmdebstrap is missing: run scripts/setup.sh (or apt-get install mmdebstrap)" >&2; exit 1; }
[ -f "$project/dist/bin/gitroot.js" ] || { echo "kiosk: gitroot is not built: run scripts/setup.sh first" >&2; exit 1; }
[ -z "$signkey" ] || [ -f "$signkey" ] || { echo "kiosk: signing key $signkey does not exist: name an unencrypted OpenSSH ed25519 private key" >&2; exit 1; }
# The remote goes into a config file: one URL, no blanks (a newline would add settings).
case "$remote" in *[[:space:]]*) echo "kiosk: --remote must be one URL without blanks" >&2; exit 2 ;; esac
# A label goes into a file and onto the screen, one line of printable text.
case "$label" in *[![:print:]]*|"") echo "kiosk: --label must be one line of printable text" >&2; exit 2 ;; esac
gitroot() { node "$project/dist/bin/gitroot.js" "$@"; }
mode=$(gitroot_mmdebstrap_mode)
cache=$(gitroot_build_cache)
mkdir -p "$cache/kiosk" "$cache/apt/$suite"

work=$(mktemp -d "${TMPDIR:-/tmp}/gitroot-kiosk.XXXXXX")
# Nothing is ever mounted under $work: mmdebstrap works in its own namespace and temp dir,
# and the tree extracted for the commit fallback below is a plain directory.
trap 'rm -rf --one-file-system "$work"' EXIT
chmod 0755 "$work"
step() { echo "kiosk: $*" >&2; }

# 1. The gitroot package for this release (built in a trixie build root, reused when unchanged).
if [ -z "$deb" ]; then
	step "building the gitroot package (npm run deb; cached)"
	deb=$(bash "$project/scripts/build-deb.sh" --suite "$suite" --out "$work/deb" | tail -n 1)
fi
[ -f "$deb" ] || { echo "kiosk: $deb does not exist: build it with npm run deb" >&2; exit 1; }

# 2. The base system, cached by its package list: a kernel, systemd with systemd-boot (UEFI)
# and extlinux with syslinux-common (BIOS: gitroot image --firmware bios takes the boot loader
# from the release), the tools the initramfs and the medium need, and what the gitroot
# package depends on.
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -E 's/\(.*\)//; s/\|.*//; s/[[:space:]]//g; /^$/d' | paste -sd, -)
base=$(bash "$project/scripts/debian-root.sh" --name kiosk-base --suite "$suite" --variant apt \
	--include "linux-image-amd64,systemd,systemd-sysv,systemd-boot,systemd-boot-efi,extlinux,syslinux-common,udev,dbus,initramfs-tools,kmod,e2fsprogs,dosfstools,iproute2,procps,$depends")

# 3. The base with gitroot installed and its initramfs built (the slow part: node goes into
# the initrd), cached by the base, the .deb and the signers file the hook bakes in.
signers=$work/allowed-signers
if [ -n "$signkey" ]; then
	# One key, for commits (namespace git): the format of ssh-keygen's and git's allowed signers.
	echo "kiosk-release namespaces=\"git\" $(ssh-keygen -y -f "$signkey")" > "$signers"
else
	: > "$signers"
fi
syskey=$( { basename "$base"; sha256sum < "$deb"; sha256sum < "$signers"; echo "kiosk-system v1"; } | sha256sum | cut -c1-16)
system=$cache/kiosk/system-$suite-$syskey.tar
mapfile -t devargs < <(gitroot_dev_hook_args "$mode")
exec 9>"$cache/kiosk/.lock"
flock 9
if [ ! -s "$system" ]; then
	step "installing gitroot into the base and building the initramfs (cached afterwards)"
	cp "$deb" "$work/gitroot.deb"
	chmod a+r "$work/gitroot.deb" "$signers"
	hooks=(--customize-hook='mkdir -p "$1/tmp/kiosk" "$1/etc/gitroot" "$1/var/cache/apt/archives"'
		--customize-hook="upload $work/gitroot.deb /tmp/kiosk/gitroot.deb"
		--customize-hook="sync-in $cache/apt/$suite /var/cache/apt/archives/")
	# The trust root before the package: its trigger's update-initramfs copies it into the initrd.
	[ -z "$signkey" ] || hooks+=(--customize-hook="upload $signers /etc/gitroot/allowed-signers")
	hooks+=(--customize-hook='chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive sh -c "apt-get update -qq && apt-get install -y -qq /tmp/kiosk/gitroot.deb"'
		--customize-hook="sync-out /var/cache/apt/archives $cache/apt/$suite")
	log=$work/system.log
	mmdebstrap --mode="$mode" --variant=custom --skip=update --skip=chroot/mount/sys \
		"$(gitroot_tar_in_hook "$base")" "${devargs[@]}" "${hooks[@]}" \
		--format=tar '' "$system.tmp" >"$log" 2>&1 \
		|| { rm -f "$system.tmp"; grep -v '^I: ' "$log" | tail -n 20 >&2; echo "kiosk: installing gitroot into the base failed (above)" >&2; exit 1; }
	mv "$system.tmp" "$system"
	# Only the newest system tree is kept.
	for old in "$cache/kiosk/system-$suite-"*.tar; do [ "$old" = "$system" ] || rm -f "$old"; done
	gitroot_prune_archives "$cache/apt/$suite"
fi
flock -u 9

# 4. This release: its settings, the kiosk service and its label, from the cached system.
cat > "$work/gitroot.conf" <<EOF
# gitroot settings of this kiosk image (see /usr/share/doc/gitroot/config.md).
${remote:+gitroot.remote=$remote}
# systemd-boot entries with boot counting, on the EFI system partition mounted at /efi.
gitroot.bootloader=bls
gitroot.boot=/efi
${signkey:+gitroot.allowed-signers=/etc/gitroot/allowed-signers}
EOF
printf '%s\n' "$label" > "$work/kiosk-label"
chmod a+r "$work/gitroot.conf" "$work/kiosk-label"
# The build already ran what ConditionNeedsUpdate= units (ldconfig, the hwdb and journal
# catalog updates) would run at every boot of a tree newer than its /etc/.updated and
# /var/.updated: git-fs gives every file the commit's time, so these two files say "done".
overlayhooks=()
for o in "${overlays[@]}"; do overlayhooks+=(--customize-hook="sync-in $o /"); done
log=$work/release.log
step "building the release \"$label\""
mmdebstrap --mode="$mode" --variant=custom --skip=update --skip=chroot/mount/sys \
	"$(gitroot_tar_in_hook "$system")" "${devargs[@]}" \
	--customize-hook='mkdir -p "$1/etc/gitroot" "$1/usr/local/lib/kiosk" "$1/efi"' \
	--customize-hook="upload $work/gitroot.conf /etc/gitroot/gitroot.conf" \
	--customize-hook="upload $work/kiosk-label /etc/kiosk-label" \
	--customize-hook="upload $here/kiosk-display.sh /usr/local/lib/kiosk/kiosk-display" \
	--customize-hook="upload $here/kiosk.service /etc/systemd/system/kiosk.service" \
	--customize-hook="upload $here/fstab /etc/fstab" \
	--customize-hook='mkdir -p "$1/etc/gitroot/health.d"' \
	--customize-hook="upload $here/health-kiosk.sh /etc/gitroot/health.d/20-kiosk" \
	--customize-hook='chmod 0755 "$1/usr/local/lib/kiosk/kiosk-display" "$1/etc/gitroot/health.d/20-kiosk"; chmod 0644 "$1/etc/gitroot/gitroot.conf" "$1/etc/kiosk-label" "$1/etc/systemd/system/kiosk.service" "$1/etc/fstab"' \
	--customize-hook='echo kiosk > "$1/etc/hostname"' \
	--customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 kiosk\n" > "$1/etc/hosts"' \
	--customize-hook='rm -f "$1/etc/resolv.conf"' \
	--customize-hook='chroot "$1" systemctl enable kiosk.service' \
	--customize-hook='chroot "$1" systemctl mask getty@tty1.service' \
	--customize-hook='touch "$1/etc/.updated" "$1/var/.updated"' \
	"${overlayhooks[@]}" \
	--format=tar '' "$work/release.tar" >"$log" 2>&1 \
	|| { grep -v '^I: ' "$log" | tail -n 20 >&2; echo "kiosk: building the release failed (above)" >&2; exit 1; }

# 5. Commit the release on top of the previous one.
message="kiosk: $label (Debian 13 $suite, $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version))"
sign=()
[ -z "$signkey" ] || sign=(--sign-key "$signkey")
step "committing into $repo"
if gitroot commit --help 2>/dev/null | grep -q -- '--from-tar'; then
	sha=$(gitroot commit --from-tar "$work/release.tar" --repo "$repo" -m "$message" "${sign[@]}")
else
	# FALLBACK until `gitroot commit --from-tar` exists: extract as root, commit the directory.
	# When it lands, the branch above is taken and this one can go.
	[ "$(id -u)" = 0 ] || { echo "kiosk: committing without 'gitroot commit --from-tar' needs root (to extract owners and device nodes): run as root" >&2; exit 1; }
	mkdir "$work/tree"
	tar --numeric-owner --xattrs --xattrs-include='*' -C "$work/tree" -xpf "$work/release.tar"
	sha=$(gitroot commit "$work/tree" --repo "$repo" -m "$message" "${sign[@]}")
fi
echo "$sha"
