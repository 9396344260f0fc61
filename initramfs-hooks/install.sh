#!/bin/sh
# Installs gitroot's boot runtime and one initramfs flavour (named, never probed):
#
#   install.sh initramfs-tools|dracut|runtime|package [--root DIR] [--bundle FILE] [--addon FILE]
#
# runtime installs only the command (no initramfs part): for booted systems and images.
# package installs everything at the paths of the Debian package (scripts/build-deb.sh
# runs it with --root debian/gitroot): this script is the one place that says which file
# goes where, for a checkout install and for the package alike.
#
#   /usr/lib/gitroot/gitroot.cjs            the one-file CLI (npm run bundle -> dist/gitroot.cjs)
#   /usr/lib/gitroot/gitroot_native.node    the FUSE addon (build/Release/gitroot_native.node)
#   /usr/bin/gitroot                        launcher: node + bundle + addon
#   /usr/share/gitroot/boot/                boot loader templates (boot/*.in)
#   /usr/lib/systemd/system/                gitroot's units (boot/*.service, boot/*.timer), not enabled
#   /usr/share/doc/gitroot/                 docs/*.md
#   initramfs-tools: /etc/initramfs-tools/hooks/gitroot, /etc/initramfs-tools/scripts/gitroot
#   dracut:          /usr/lib/dracut/modules.d/95gitroot/, /etc/dracut.conf.d/gitroot.conf
#   package:         the runtime, /usr/share/initramfs-tools/{hooks,scripts}/gitroot,
#                    /usr/lib/dracut/modules.d/95gitroot/, /usr/lib/dracut/dracut.conf.d/90-gitroot.conf
#                    (distribution paths: /etc stays the admin's); the launcher runs /usr/bin/node
#
# A checkout install onto a system where the Debian package is installed is refused: its
# files belong to dpkg (remove the package first, or use it). --root installs into DIR
# instead of / (staging, tests, the package build). Afterwards rebuild the initramfs
# (update-initramfs -u, or dracut -f) and boot with `boot=gitroot gitroot.medium=...` (for
# dracut: `root=gitroot gitroot.medium=...`); see docs/boot.md and docs/packaging.md.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
project=$(dirname "$here")
usage() { echo "usage: $0 initramfs-tools|dracut|runtime|package [--root DIR] [--bundle FILE] [--addon FILE]" >&2; exit 2; }

[ $# -ge 1 ] || usage
flavour=$1; shift
case "$flavour" in initramfs-tools|dracut|runtime|package) ;; *) usage ;; esac
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
# One owner per path: on a live system whose gitroot came from the Debian package, dpkg owns these.
if [ -z "$root" ] && [ "$flavour" != package ] && dpkg-query -S /usr/lib/gitroot/gitroot.cjs >/dev/null 2>&1; then
	echo "install: the gitroot Debian package is installed and owns /usr/lib/gitroot: remove it first (apt remove gitroot) or use the package's files" >&2
	exit 1
fi

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
# The command for the booted system (units, admins): same bundle, same addon. The package
# runs the distribution's node (its Depends); a checkout install the node on PATH.
node=node
[ "$flavour" != package ] || node=/usr/bin/node
cat > "$root/usr/bin/gitroot.tmp" <<EOF
#!/bin/sh
# gitroot: the one-file CLI with its FUSE addon, run by node (see gitroot(1)).
GITROOT_NATIVE_ADDON=/usr/lib/gitroot/gitroot_native.node exec $node /usr/lib/gitroot/gitroot.cjs "\$@"
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
	echo "install: done (runtime only: /usr/bin/gitroot needs node and the libfuse3 it was built against)" >&2
	;;
package)
	# initramfs-tools reads hooks and boot scripts from /usr/share (packages) and /etc (the admin's).
	install -d -m 0755 "$root/usr/share/initramfs-tools/hooks" "$root/usr/share/initramfs-tools/scripts"
	install -m 0755 "$here/initramfs-tools/hooks/gitroot" "$root/usr/share/initramfs-tools/hooks/gitroot"
	install -m 0644 "$here/initramfs-tools/scripts/gitroot" "$root/usr/share/initramfs-tools/scripts/gitroot"
	install -d -m 0755 "$root/usr/lib/dracut/modules.d/95gitroot" "$root/usr/lib/dracut/dracut.conf.d"
	install -m 0755 "$here"/dracut/95gitroot/*.sh "$root/usr/lib/dracut/modules.d/95gitroot/"
	# dracut's own configuration directory names the module (never probed); an admin's
	# omit_dracutmodules+=" gitroot " in /etc/dracut.conf.d takes it out again.
	printf '%s\n' '# gitroot: include the gitroot module (root=gitroot boots a revision; see /usr/share/doc/gitroot/boot.md)' \
		'add_dracutmodules+=" gitroot "' > "$root/usr/lib/dracut/dracut.conf.d/90-gitroot.conf"
	chmod 0644 "$root/usr/lib/dracut/dracut.conf.d/90-gitroot.conf"
	echo "install: done (package layout under ${root:-/})" >&2
	;;
esac
