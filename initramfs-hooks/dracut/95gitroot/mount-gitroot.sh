#!/bin/sh
# dracut mount hook: mount the medium under /run/gitroot (moved into the new root with /run),
# then `gitroot boot` serves the chosen revision with git-fs and leaves a writable overlay
# of it at $NEWROOT. Its daemon runs as @gitroot, which systemd spares at switch-root.
[ "$root" = gitroot ] || return 0
# Progress with the uptime on the console (the kernel log: under systemd, a hook's stdout
# only reaches the journal).
gitroot_say() {
    read -r gitroot_up _ < /proc/uptime
    echo "gitroot: $* [uptime $gitroot_up]" > /dev/kmsg 2>/dev/null || echo "gitroot: $* [uptime $gitroot_up]"
}
gitroot_say "start"
gitroot_medium=$(getarg gitroot.medium=)
gitroot_dir=$(getarg gitroot.dir=)
gitroot_dir=${gitroot_dir:-/gitroot}
gitroot_dev=$(label_uuid_to_dev "$gitroot_medium")
# Check the medium first, like initramfs-tools' checkfs does (a power cut while the fetcher
# wrote it is the common case; git's own objects are verified separately by git-fs).
# Uncorrected errors are reported, not fatal: an unattended machine still tries to boot.
type fsck_single > /dev/null 2>&1 || . /lib/fs-lib.sh
fsck_single "$gitroot_dev" auto "" ""
gitroot_fsck=$?
case $gitroot_fsck in
    0 | 1 | 255) ;;
    *) gitroot_say "warning: fsck of the medium $gitroot_dev returned $gitroot_fsck (uncorrected errors?); mounting it anyway" ;;
esac
gitroot_say "medium $gitroot_medium checked (fsck $gitroot_fsck)"
# Read-write: the fetcher stages new revisions there and the boot counts tries.
mkdir -p /run/gitroot/medium
mount -o rw "$gitroot_dev" /run/gitroot/medium \
    || die "gitroot: cannot mount the medium $gitroot_dev ($gitroot_medium) read-write"
gitroot_say "medium $gitroot_medium ($gitroot_dev) mounted"
modprobe -q fuse
modprobe -q overlay
# The trust root module-setup.sh baked in, if any: only revisions signed by its keys boot.
gitroot_trust=
if [ -f /etc/gitroot/allowed-signers ]; then
    gitroot_trust="--allowed-signers /etc/gitroot/allowed-signers"
fi
GITROOT_NATIVE_ADDON=/usr/lib/gitroot/gitroot_native.node \
    /usr/bin/node /usr/lib/gitroot/gitroot.cjs boot \
    --dir "/run/gitroot/medium$gitroot_dir" --cmdline /proc/cmdline \
    --target "$NEWROOT" --run-dir /run/gitroot $gitroot_trust \
    || die "gitroot: could not mount the root (see the message above)"
gitroot_say "root mounted at $NEWROOT"
