#!/usr/bin/env bash
# Gives a chroot its own small /dev, never the host's: a tmpfs holding only the nodes
# package scripts, builds and a FUSE mount use. Run as an mmdebstrap setup hook inside its
# private mount namespace (scripts/mmdebstrap-lib.sh, --mode=unshare as root, with
# --skip=chroot/mount/dev): the mounts exist only there and vanish with the namespace, even
# if the build dies, and mmdebstrap removes its temporary tree from a new namespace, so
# nothing is ever deleted through them.
#
#   chroot-dev.sh mount ROOT [--fuse]    tmpfs at ROOT/dev (--fuse adds /dev/fuse)
#
# Why not the host's /dev: a bind mount of it left in place when a tree is removed with
# rm -rf deletes the host's device nodes (devtmpfs is one instance).
set -euo pipefail

usage() { echo "usage: $0 mount ROOT [--fuse]" >&2; exit 2; }
[ $# -ge 2 ] && [ "$1" = mount ] || usage
root=$2; shift 2
fuse=0
for a in "$@"; do
	case "$a" in --fuse) fuse=1 ;; *) usage ;; esac
done
# Refuse to run where a mount would outlive the build: only inside mmdebstrap's namespace.
[ -n "${MMDEBSTRAP_HOOK:-}" ] || { echo "chroot-dev: run only as an mmdebstrap hook (its private mount namespace)" >&2; exit 2; }
dev=$root/dev

mkdir -p "$dev"
mount -t tmpfs -o mode=0755,size=16m,nosuid gitroot-dev "$dev"
# name, mode, major, minor: the character devices of a minimal Linux system.
while read -r node mode major minor; do
	mknod -m "$mode" "$dev/$node" c "$major" "$minor"
done <<'NODES'
null 0666 1 3
zero 0666 1 5
full 0666 1 7
random 0666 1 8
urandom 0666 1 9
tty 0666 5 0
NODES
# The FUSE device (misc 229), for mounting git-fs inside the chroot.
[ "$fuse" = 0 ] || mknod -m 0666 "$dev/fuse" c 10 229
# Shared memory and a private pty instance (never the host's /dev/pts). mmdebstrap itself
# adds the fd, stdin, stdout and stderr symlinks.
mkdir -p "$dev/shm" "$dev/pts"
mount -t tmpfs -o mode=1777,size=64m,nosuid,nodev gitroot-shm "$dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 gitroot-pts "$dev/pts"
ln -s pts/ptmx "$dev/ptmx"
