#!/usr/bin/env bash
# Sets up a Debian 12 machine (as root, Node 20 present) for gitroot: system packages,
# npm dependencies, the native addon and the TypeScript build. Idempotent and quiet when
# there is nothing to do; safe with no stdin (CI).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages gitroot needs to build, run and be tested:
#   git (commit/fetch plumbing, test servers), fuse3 + libfuse3-dev + pkg-config (the native
#   FUSE binding), attr (getfattr/setfattr in tests), libcap2-bin (setcap in tests),
#   debootstrap (Debian rootfs fixtures), squashfs-tools, make/g++/python3 (node-gyp),
#   util-linux (mount/umount), procps, cpio (initrd fixtures), openssh-client (ssh-keygen:
#   signing keys and the signature cross-checks of the trust tests; not needed at run time),
#   fdisk (sfdisk), mtools, syslinux + syslinux-common (gitroot image: GPT, FAT, BIOS boot code),
#   systemd-boot-efi and ovmf (UEFI boot loader and firmware for image tests under QEMU),
#   xz-utils + zstd + bzip2 (commit --from-tar decompresses through them), libarchive-tools
#   (bsdtar), mmdebstrap + uidmap and acl (setfacl): archives from real tools in the tar tests;
#   mmdebstrap + uidmap also make the Debian 13 build roots and test trees for the Debian package
#   and the kiosk example, in private namespaces (scripts/debian-root.sh; lintian runs inside the
#   trixie build root, so the host needs none).
PACKAGES=(git fuse3 libfuse3-dev pkg-config attr libcap2-bin debootstrap squashfs-tools make g++ python3 util-linux procps cpio initramfs-tools busybox klibc-utils zstd qemu-system-x86 e2fsprogs dracut-core openssh-client fdisk mtools syslinux syslinux-common systemd-boot-efi ovmf xz-utils bzip2 libarchive-tools mmdebstrap uidmap acl nginx openssl)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "setup: installing ${missing[*]} needs root (run as root or with sudo)" >&2; exit 1; }
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || { echo "setup: gitroot needs Node.js 20 or newer (found $(node --version))" >&2; exit 1; }

# npm dependencies: reinstall only when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error </dev/null
fi

# Build the native addon when its sources changed, then the TypeScript.
addon=build/Release/gitroot_native.node
if [ ! -f "$addon" ] || [ -n "$(find native binding.gyp -newer "$addon" 2>/dev/null | head -n1)" ]; then
  echo "setup: building the native addon" >&2
  npx --no-install node-gyp rebuild --silent </dev/null >/dev/null
fi
node scripts/sync-version.mjs
npx --no-install tsc -p tsconfig.json
