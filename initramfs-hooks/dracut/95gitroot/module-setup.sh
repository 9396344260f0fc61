#!/bin/bash
# dracut module "gitroot": root=gitroot boots a revision of the gitroot home served by
# git-fs with a tmpfs overlay on top, like initramfs-tools' boot=gitroot (docs/boot.md).
# Policy and install steps only: the work is `gitroot boot` (lib/boot/boot-mount.ts).
# Installed to /usr/lib/dracut/modules.d/95gitroot by initramfs-hooks/install.sh dracut,
# which also names the module in /etc/dracut.conf.d/gitroot.conf (never probed), or by the
# Debian package, which names it in /usr/lib/dracut/dracut.conf.d/90-gitroot.conf.
# GITROOT_LIBDIR and GITROOT_NODE override where the runtime comes from (builds elsewhere).

# Only when asked for (add_dracutmodules+=" gitroot "): a machine without a gitroot
# home must not get it by accident.
check() {
    [[ -x ${GITROOT_NODE:-$(command -v node)} ]] || return 1
    [[ -f ${GITROOT_LIBDIR:-/usr/lib/gitroot}/gitroot.cjs ]] || return 1
    return 255
}

depends() {
    # fs-lib: fsck_single, to check the medium before it is mounted read-write.
    echo base fs-lib
}

installkernel() {
    # git-fs needs fuse, the writable layer overlay; ext4 and block drivers carry the medium.
    hostonly='' instmods fuse overlay ext4 vfat nls_cp437 nls_ascii nls_utf8 virtio_blk virtio_pci virtio_scsi sd_mod nvme ahci
}

install() {
    local libdir=${GITROOT_LIBDIR:-/usr/lib/gitroot}
    # node and its libraries; the one-file CLI (nothing else is loaded after the switch).
    local node=${GITROOT_NODE:-$(command -v node)} f
    inst_binary "$node" /usr/bin/node
    # Debian's node reads some of its own JavaScript from /usr/share/nodejs at every start
    # (--shared-builtin-*-path) and aborts without it; node names those files itself.
    for f in $("$node" -p 'process.config.target_defaults.defines.map((d) => /^NODE_SHARED_BUILTIN_\w+_PATH=(.+)$/.exec(d)?.[1]).filter(Boolean).join("\n")'); do
        inst_simple "$f" "$f"
    done
    inst_simple "$libdir/gitroot.cjs" /usr/lib/gitroot/gitroot.cjs
    # The native addon with libfuse3 (dracut-install resolves ELF dependencies).
    inst_binary "$libdir/gitroot_native.node" /usr/lib/gitroot/gitroot_native.node
    inst_multiple mount umount modprobe blkid
    # Checkers for the usual medium file systems (host-only images carry only the host's).
    inst_multiple -o fsck e2fsck fsck.ext2 fsck.ext3 fsck.ext4 fsck.vfat fsck.fat
    # The trust root (docs/trust.md): only revisions signed by its keys boot.
    local signers=${GITROOT_ALLOWED_SIGNERS:-/etc/gitroot/allowed-signers}
    if [[ -f $signers ]]; then
        inst_simple "$signers" /etc/gitroot/allowed-signers
    fi
    inst_hook cmdline 90 "$moddir/parse-gitroot.sh"
    inst_hook mount 90 "$moddir/mount-gitroot.sh"
}
