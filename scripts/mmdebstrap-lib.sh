# Shell functions shared by the scripts that run mmdebstrap (scripts/debian-root.sh,
# scripts/build-deb.sh, examples/kiosk/build.sh, the package test): where the caches live,
# which mmdebstrap mode this machine allows, and the hook arguments that give a chroot its
# own /dev or start it from a cached tarball. Sourced, not run; bash.

# The cache directory for build roots and downloaded .debs.
gitroot_build_cache() {
	echo "${GITROOT_BUILD_CACHE:-/var/cache/gitroot-build}"
}

# The mmdebstrap mode: unshare (as root a private mount and pid namespace, so nothing it
# mounts is left behind; as another user a user namespace, which needs an /etc/subuid
# entry), else root for a root that may not unshare.
gitroot_mmdebstrap_mode() {
	if [ "$(id -u)" = 0 ]; then
		if unshare --mount --pid --fork true 2>/dev/null; then echo unshare; else echo root; fi
		return
	fi
	if grep -q "^$(id -un):" /etc/subuid 2>/dev/null && command -v newuidmap >/dev/null; then
		echo unshare
		return
	fi
	echo "mmdebstrap: $(id -un) has no /etc/subuid entry (or newuidmap is missing): run as root, or add one (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $(id -un)) and install uidmap" >&2
	return 1
}

# Hook arguments (one per line) that give the chroot its own tmpfs /dev (scripts/chroot-dev.sh)
# instead of mmdebstrap's device handling. Only as root in unshare mode: there the mount is
# private to mmdebstrap's namespace and mknod is allowed. Elsewhere mmdebstrap's own
# handling applies (root mode: nodes made with mknod; a user namespace: single nodes
# bind-mounted inside its private namespace). Extra arguments (--fuse) go to chroot-dev.sh.
gitroot_dev_hook_args() {
	local mode=$1; shift
	[ "$mode" = unshare ] && [ "$(id -u)" = 0 ] || return 0
	local dev
	dev=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/chroot-dev.sh
	echo "--skip=chroot/mount/dev"
	echo "--setup-hook=$dev mount \"\$1\" $*"
}

# A setup hook that unpacks a cached tarball as the start of a new tree (mmdebstrap
# --variant=custom). The tarball's /dev entries are left out: mmdebstrap and chroot-dev.sh
# make their own.
gitroot_tar_in_hook() {
	local tarball=$1
	printf -- '--setup-hook=mmtarfilter "--path-exclude=/dev/*" < %q | tar -C "$1" --numeric-owner --xattrs --xattrs-include="*" -xp\n' "$tarball"
}

# Keeps only the newest .deb of each package in an apt archives cache directory (by
# version sort, close enough to dpkg's order for a cache: a wrong guess costs one download).
gitroot_prune_archives() {
	local dir=$1
	( cd "$dir" && ls -1 -- *.deb 2>/dev/null | LC_ALL=C sort -t_ -k1,1 -k2,2V \
		| awk -F_ '{ if (prev != "" && $1 == name) print prev; name = $1; prev = $0 }' \
		| xargs -r rm -f -- ) || true
}
