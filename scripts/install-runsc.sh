#!/usr/bin/env bash
# Installs the gVisor runtime that Kiln's gvisor tier prefers: Debian 13's runsc (a static binary
# with the systrap platform, which needs no KVM), pinned by version and SHA-256, unpacked from its
# .deb into a directory of Kiln's own. Nothing else on the system changes: no apt source is added
# and no package is installed. Idempotent; a machine where this cannot run keeps the system's runsc
# (the tier says why when it uses it). Run as root on x86-64.
set -u
VERSION="0.0~20240729.0-4+b7"
SHA256="3c25a5130dfac2f71237d5baad56ac86a255de87a0400f11b36a555156dc325a"
# Must match KILN_RUNSC in src/tiers/gvisor/runtimes.ts.
DEST="/usr/local/lib/kiln/runsc-20240729.0"
MIRROR="${KILN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
URL="$MIRROR/pool/main/g/golang-gvisor-gvisor/runsc_${VERSION}_amd64.deb"

[ -x "$DEST/runsc" ] && exit 0
if [ "$(id -u)" != 0 ] || [ "$(uname -m)" != x86_64 ]; then exit 0; fi
for tool in curl dpkg-deb sha256sum; do
  command -v "$tool" >/dev/null || { echo "kiln: no $tool; not installing runsc $VERSION"; exit 0; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! curl -fsS --max-time 300 -o "$work/runsc.deb" "$URL"; then
  echo "kiln: could not fetch $URL; the gvisor tier keeps the system's runsc"
  exit 0
fi
if ! echo "$SHA256  $work/runsc.deb" | sha256sum -c --quiet - >/dev/null 2>&1; then
  echo "kiln: $URL does not have SHA-256 $SHA256; not installed"
  exit 0
fi
dpkg-deb -x "$work/runsc.deb" "$work/x"
mkdir -p "$DEST"
install -m 0755 "$work/x/usr/bin/runsc" "$DEST/runsc.part"
mv -f "$DEST/runsc.part" "$DEST/runsc"
echo "kiln: installed runsc $VERSION in $DEST"
