#!/usr/bin/env bash
# Builds what a microvm sandbox boots, into a cache directory:
#   kernel/<version>/vmlinuz   Debian's cloud kernel (linux-image-cloud-amd64), unpacked from its package
#   initramfs-<hash>.cpio.gz   Kiln's initramfs: static busybox, the virtio modules, the init, the agent
# and prints two lines, `kernel <path>` and `initramfs <path>`. Idempotent: a
# second run with the same inputs only prints. Usage:
#   scripts/build-microvm-guest.sh CACHE_DIR AGENT_BINARY
set -euo pipefail
cache="$1"
agent="$2"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
init="$root/src/tiers/microvm/guest-init.sh"
busybox=/bin/busybox
# Loaded in this order; ext4 and the 8250 console are built into the cloud kernel.
MODULES=(virtio_ring virtio virtio_mmio virtio_blk virtio_console)
# Loaded after them, only by a guest with a network card (a sandbox with egress).
NET_MODULES=(failover net_failover virtio_net)

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

kdir="$(ls -d "$cache"/kernel/*/ 2>/dev/null | sort -V | tail -n 1 || true)"
# A kernel unpacked before a module was added to the lists: the missing ones come from the same
# package, or, when the archive no longer has it, a newer kernel is fetched below.
if [[ -n "$kdir" && -f "$kdir/vmlinuz" ]]; then
  version="$(cat "$kdir/version")"
  missing=()
  for m in "${MODULES[@]}" "${NET_MODULES[@]}"; do [[ -f "$kdir/modules/$m.ko" ]] || missing+=("$m"); done
  if ((${#missing[@]} > 0)); then
    tmp="$(mktemp -d "$cache/.kernel-XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    if (cd "$tmp" && apt-get download -q "linux-image-$version" >/dev/null 2>&1); then
      dpkg-deb -x "$tmp"/*.deb "$tmp/x"
      for m in "${missing[@]}"; do
        f="$(find "$tmp/x/lib/modules/$version" -name "$m.ko" | head -n 1)"
        [[ -n "$f" ]] || { echo "build-microvm-guest: $m.ko is not in linux-image-$version" >&2; exit 1; }
        cp "$f" "$kdir/modules/.$m.ko.tmp" && mv "$kdir/modules/.$m.ko.tmp" "$kdir/modules/$m.ko"
      done
    else
      kdir=""
    fi
    rm -rf "$tmp"
    trap - EXIT
  fi
fi
if [[ -z "$kdir" || ! -f "$kdir/vmlinuz" ]]; then
  command -v apt-get >/dev/null || { echo "build-microvm-guest: apt-get not found (a Debian host is needed for the guest kernel)" >&2; exit 1; }
  pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
  if [[ -z "$pkg" ]]; then
    apt-get update -qq >/dev/null 2>&1 || true
    pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
  fi
  [[ -n "$pkg" ]] || { echo "build-microvm-guest: no linux-image-cloud-amd64 in apt's lists" >&2; exit 1; }
  tmp="$(mktemp -d "$cache/.kernel-XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1) || { echo "build-microvm-guest: apt-get download $pkg failed" >&2; exit 1; }
  dpkg-deb -x "$tmp"/*.deb "$tmp/x"
  version="$(ls "$tmp/x/lib/modules")"
  out="$tmp/k"
  mkdir -p "$out/modules"
  cp "$tmp/x/boot/vmlinuz-$version" "$out/vmlinuz"
  cp "$tmp/x/boot/config-$version" "$out/config"
  for m in "${MODULES[@]}" "${NET_MODULES[@]}"; do
    f="$(find "$tmp/x/lib/modules/$version" -name "$m.ko" | head -n 1)"
    [[ -n "$f" ]] || { echo "build-microvm-guest: $m.ko is not in $pkg" >&2; exit 1; }
    cp "$f" "$out/modules/"
  done
  printf '%s\n' "$version" >"$out/version"
  mkdir -p "$cache/kernel"
  rm -rf "$cache/kernel/$version"
  mv "$out" "$cache/kernel/$version"
  kdir="$cache/kernel/$version/"
fi
kdir="${kdir%/}"
version="$(cat "$kdir/version")"
[[ -x "$busybox" ]] && ! ldd "$busybox" 2>&1 | grep -q '=>' || { echo "build-microvm-guest: a static busybox is needed (apt-get install busybox-static)" >&2; exit 1; }
hash="$( (cat "$init" "$agent" "$busybox" "$kdir/version"; echo "${MODULES[*]}"; echo "${NET_MODULES[*]}") | sha256sum | cut -c1-16)"
initrd="$cache/initramfs-$hash.cpio.gz"
if [[ ! -f "$initrd" ]]; then
  stage="$(mktemp -d "$cache/.initramfs-XXXXXX")"
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage/bin" "$stage/modules" "$stage/dev" "$stage/proc" "$stage/sys" "$stage/newroot"
  cp "$busybox" "$stage/bin/busybox"
  ln -s busybox "$stage/bin/sh"
  install -m 0755 "$init" "$stage/init"
  install -m 0755 "$agent" "$stage/kiln-agent"
  for m in "${MODULES[@]}" "${NET_MODULES[@]}"; do cp "$kdir/modules/$m.ko" "$stage/modules/"; done
  printf '%s\n' "${MODULES[@]}" >"$stage/modules.order"
  printf '%s\n' "${NET_MODULES[@]}" >"$stage/modules-net.order"
  # Fixed owners and times, so that the same inputs give the same archive.
  find "$stage" -exec touch -h -d @0 {} +
  (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | "$busybox" cpio -o -H newc -R 0:0 2>/dev/null | gzip -n -1 >"$initrd.tmp")
  mv "$initrd.tmp" "$initrd"
  # Older initramfs files of other agents are not used any more.
  find "$cache" -maxdepth 1 -name 'initramfs-*.cpio.gz' ! -name "initramfs-$hash.cpio.gz" -mmin +60 -delete 2>/dev/null || true
fi
echo "kernel $kdir/vmlinuz"
echo "initramfs $initrd"
echo "version $version"
