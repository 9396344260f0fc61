#!/usr/bin/env bash
# The gitroot demo. Needs root (Debian 12 with the packages scripts/setup.sh installs).
#
#   bash scripts/demo.sh           the main job, on the example kiosk OS under QEMU: builds it
#                                  (examples/kiosk/build.sh; cached after the first run, which
#                                  takes a few minutes more), makes its disk image with
#                                  `gitroot image`, boots it (UEFI firmware, systemd-boot,
#                                  gitroot boot, systemd) and shows the kiosk up, an update
#                                  published, fetched and booted, a broken update rolled back,
#                                  and `gitroot status` at each step. About 20 minutes under
#                                  TCG on a 2-core machine. [WORKDIR] (default
#                                  /var/tmp/gitroot-demo) keeps the machine's disk image.
#   bash scripts/demo.sh --quick   a minute: builds a small OS tree with the things a root
#                                  filesystem needs and git cannot store, commits two releases,
#                                  serves each over FUSE and shows that what is served is
#                                  exactly what was committed. Cleans up after.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
--quick) shift ;;
-h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*)
	[ "$(id -u)" = 0 ] || { echo "demo: run it as root (it builds Debian trees and boots them under QEMU)" >&2; exit 1; }
	bash scripts/setup.sh
	exec node dist/fixtures/qemu/kiosk-demo.js "$@"
	;;
esac
bash scripts/setup.sh
gitroot() { node "$PWD/dist/bin/gitroot.js" "$@"; }

work=$(mktemp -d /tmp/gitroot-demo.XXXXXX)
mnt=$work/mnt
cleanup() {
  mountpoint -q "$mnt" 2>/dev/null && gitroot umount "$mnt" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. Build a small OS tree in $work/os"
os=$work/os
mkdir -p "$os"/{etc,tmp,dev,usr/bin,usr/lib,var/empty,home/kiosk}
echo 'PRETTY_NAME="gitroot demo OS 1.0"' > "$os/etc/os-release"
printf 'root:*:19000:0:99999:7:::\nkiosk:*:19000:0:99999:7:::\n' > "$os/etc/shadow"
chown 0:42 "$os/etc/shadow"; chmod 0640 "$os/etc/shadow"
chmod 1777 "$os/tmp"
mknod "$os/dev/null" c 1 3; chmod 666 "$os/dev/null"
mknod "$os/dev/zero" c 1 5; chmod 666 "$os/dev/zero"
cp /usr/bin/id "$os/usr/bin/id"; cp /usr/bin/id "$os/usr/bin/id-setuid"; chmod 4755 "$os/usr/bin/id-setuid"
cp /usr/bin/ping "$os/usr/bin/ping" 2>/dev/null || cp /usr/bin/true "$os/usr/bin/ping"
setcap cap_net_raw+ep "$os/usr/bin/ping"
echo "shared library bytes" > "$os/usr/lib/libdemo.so.1"; ln "$os/usr/lib/libdemo.so.1" "$os/usr/lib/libdemo-hardlink.so.1"
ln -s libdemo.so.1 "$os/usr/lib/libdemo.so"
chown 1000:1000 "$os/home/kiosk"; chmod 0700 "$os/home/kiosk"
ls -la "$os" "$os/dev" "$os/usr/bin"

say "2. Commit it as release 1"
repo=$work/os.git
rel1=$(gitroot commit "$os" --repo "$repo" -m "release 1")
echo "release 1 is commit $rel1"
echo "what git cannot store went into the manifest:"
git -C "$repo" show "$rel1:.gitroot.mtree"

say "3. Release 2 changes one file"
echo 'PRETTY_NAME="gitroot demo OS 2.0"' > "$os/etc/os-release"
rel2=$(gitroot commit "$os" --repo "$repo" -m "release 2")
echo "release 2 is commit $rel2"
git -C "$repo" log --oneline

say "4. Serve release 1 read-only at $mnt"
mkdir -p "$mnt"
gitroot mount "$mnt" --repo "$repo" --rev "$rel1" --json
ls -la "$mnt" "$mnt/dev" "$mnt/usr/bin"
echo "os-release: $(cat "$mnt/etc/os-release")"
echo "/etc/shadow: $(stat -c '%A %u:%g' "$mnt/etc/shadow")   /tmp: $(stat -c '%A' "$mnt/tmp")"
echo "hardlinks share an inode: $(stat -c '%i %h %n' "$mnt/usr/lib/libdemo.so.1" "$mnt/usr/lib/libdemo-hardlink.so.1" | tr '\n' ' ')"
echo "capability on ping: $(getcap "$mnt/usr/bin/ping")"
echo "device node works: $(head -c 8 "$mnt/dev/zero" | od -An -tx1)"
echo "setuid works (run as nobody): $(setpriv --reuid=65534 --regid=65534 --clear-groups "$mnt/usr/bin/id-setuid")"
echo "it is read-only: $(touch "$mnt/etc/x" 2>&1 || true)"
grep " $mnt " /proc/mounts
gitroot umount "$mnt"

say "5. Serve release 2 (the branch tip)"
gitroot mount "$mnt" --repo "$repo"
echo "os-release: $(cat "$mnt/etc/os-release")"
gitroot umount "$mnt"

say "Done: both releases served from one repo, no checkout."
