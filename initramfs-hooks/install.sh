#!/bin/sh
# Installs gitroot's boot runtime and one initramfs flavour (named, never probed):
#
#   install.sh initramfs-tools|dracut|runtime [--root DIR] [--bundle FILE] [--addon FILE]
#
# runtime installs only the command (no initramfs part): for booted systems and images.
#
#   /usr/lib/gitroot/gitroot.cjs            the one-file CLI (npm run bundle -> dist/gitroot.cjs)
#   /usr/lib/gitroot/gitroot_native.node    the FUSE addon (build/Release/gitroot_native.node)
#   /usr/bin/gitroot                        wrapper: node + bundle + addon
#   /usr/share/gitroot/boot/                boot loader templates (boot/*.in)
#   /usr/lib/systemd/system/                gitroot's units (boot/*.service, boot/*.timer), not enabled
#   /usr/share/doc/gitroot/                 docs/*.md
#   initramfs-tools: /etc/initramfs-tools/hooks/gitroot, /etc/initramfs-tools/scripts/gitroot
#   dracut:          /usr/lib/dracut/modules.d/95gitroot/, /etc/dracut.conf.d/gitroot.conf
#
# --root installs into DIR instead of / (staging, tests). Afterwards rebuild the initramfs
# (update-initramfs -u, or dracut -f) and boot with `boot=gitroot gitroot.medium=...` (for
# dracut: `root=gitroot gitroot.medium=...`); see docs/boot.md.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
project=$(dirname "$here")
usage() { echo "usage: $0 initramfs-tools|dracut|runtime [--root DIR] [--bundle FILE] [--addon FILE]" >&2; exit 2; }

[ $# -ge 1 ] || usage
flavour=$1; shift
case "$flavour" in initramfs-tools|dracut|runtime) ;; *) usage ;; esac
root=
bundle=$project/dist/gitroot.cjs
addon=$project/build/Release/gitroot_native.node
while [ $# -gt 0 ]; do
	case "$1" in
	--root) root=${2%/}; shift 2 ;;
	--bundle) bundle=$2; shift 2 ;;
	--addon) addon=$2; shift 2 ;;
	*) usage ;;
	esac
done
for f in "$bundle" "$addon"; do
	[ -f "$f" ] || { echo "install: $f is missing: run 'npm run build && npm run bundle' first" >&2; exit 1; }
done

install -d -m 0755 "$root/usr/lib/gitroot" "$root/usr/bin" "$root/usr/share/gitroot/boot"
install -m 0644 "$bundle" "$root/usr/lib/gitroot/gitroot.cjs"
install -m 0755 "$addon" "$root/usr/lib/gitroot/gitroot_native.node"
install -m 0644 "$project"/boot/*.in "$root/usr/share/gitroot/boot/"
# systemd units (fetch timer, mark-good, fsck timer) and the documents they point to; enabling
# is the admin's choice (systemctl enable gitroot-fetch.timer gitroot-mark-good.service gitroot-fsck.timer).
for unit in "$project"/boot/*.service "$project"/boot/*.timer; do
	[ -f "$unit" ] || continue
	install -d -m 0755 "$root/usr/lib/systemd/system"
	install -m 0644 "$unit" "$root/usr/lib/systemd/system/"
done
install -d -m 0755 "$root/usr/share/doc/gitroot"
install -m 0644 "$project"/docs/*.md "$root/usr/share/doc/gitroot/"
# The command for the booted system (units, admins): same bundle, same addon.
cat > "$root/usr/bin/gitroot.tmp" <<'EOF'
#!/bin/sh
GITROOT_NATIVE_ADDON=/usr/lib/gitroot/gitroot_native.node exec node /usr/lib/gitroot/gitroot.cjs "$@"
EOF
chmod 0755 "$root/usr/bin/gitroot.tmp"
mv "$root/usr/bin/gitroot.tmp" "$root/usr/bin/gitroot"

case "$flavour" in
initramfs-tools)
	install -d -m 0755 "$root/etc/initramfs-tools/hooks" "$root/etc/initramfs-tools/scripts"
	install -m 0755 "$here/initramfs-tools/hooks/gitroot" "$root/etc/initramfs-tools/hooks/gitroot"
	# Scripts are sourced by /init, not run: no execute bit needed.
	install -m 0644 "$here/initramfs-tools/scripts/gitroot" "$root/etc/initramfs-tools/scripts/gitroot"
	echo "install: done; now run 'update-initramfs -u' and boot with boot=gitroot gitroot.medium=..." >&2
	;;
dracut)
	install -d -m 0755 "$root/usr/lib/dracut/modules.d/95gitroot"
	install -m 0755 "$here"/dracut/95gitroot/*.sh "$root/usr/lib/dracut/modules.d/95gitroot/"
	# The module only goes in when named (its check() returns 255).
	install -d -m 0755 "$root/etc/dracut.conf.d"
	echo 'add_dracutmodules+=" gitroot "' > "$root/etc/dracut.conf.d/gitroot.conf"
	echo "install: done; now run 'dracut -f' and boot with root=gitroot gitroot.medium=..." >&2
	;;
runtime)
	echo "install: done (runtime only: /usr/bin/gitroot needs node and libfuse3-3)" >&2
	;;
esac
