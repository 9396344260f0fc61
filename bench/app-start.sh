#!/usr/bin/env bash
# The kiosk-app start workload of `npm run bench`: firefox-esr takes a headless screenshot of
# a local page inside ROOT (a Debian tree with firefox-esr), and this prints the seconds it
# took. With --lower DIR, ROOT is first made the boot layout: a tmpfs overlay on DIR (a git-fs
# mount), mounted at ROOT.
#
#   app-start.sh ROOT [--lower DIR]
#
# Runs itself in a private mount namespace (unshare -m): the overlay, the chroot's own small
# /dev (a tmpfs with a few nodes, never the host's), /proc and /tmp exist only there and
# vanish with it, so nothing is left mounted and nothing is deleted through a mount.
set -euo pipefail
if [ -z "${GITROOT_APP_START_NS:-}" ]; then
	exec env GITROOT_APP_START_NS=1 unshare -m --propagation private bash "$0" "$@"
fi
root=$1; shift
lower=
[ "${1:-}" = --lower ] && lower=$2
if [ -n "$lower" ]; then
	rw=$(mktemp -d /tmp/gitroot-app-rw.XXXXXX)
	mount -t tmpfs -o mode=0755 gitroot-app-rw "$rw"
	mkdir -p "$rw/upper" "$rw/work"
	mount -t overlay -o "lowerdir=$lower,upperdir=$rw/upper,workdir=$rw/work" overlay "$root"
fi
mount -t tmpfs -o mode=0755,size=16m,nosuid gitroot-dev "$root/dev"
while read -r node mode major minor; do
	mknod -m "$mode" "$root/dev/$node" c "$major" "$minor"
done <<'NODES'
null 0666 1 3
zero 0666 1 5
full 0666 1 7
random 0666 1 8
urandom 0666 1 9
tty 0666 5 0
NODES
mkdir -p "$root/dev/shm"
mount -t tmpfs -o mode=1777,size=64m gitroot-shm "$root/dev/shm"
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=1777,size=256m gitroot-tmp "$root/tmp"
printf '<html><body style="background:#246"><h1 style="color:#fff">gitroot kiosk</h1></body></html>\n' > "$root/tmp/page.html"
t0=$(date +%s%N)
chroot "$root" env -i HOME=/tmp PATH=/usr/bin:/bin MOZ_HEADLESS=1 \
	firefox-esr --headless --no-remote --profile /tmp --screenshot /tmp/shot.png file:///tmp/page.html >/dev/null 2>&1
t1=$(date +%s%N)
[ -s "$root/tmp/shot.png" ] || { echo "app-start: firefox-esr wrote no screenshot in $root" >&2; exit 1; }
echo "$(( (t1 - t0) / 1000000 ))"
