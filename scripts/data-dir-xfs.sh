#!/usr/bin/env bash
# Puts a Kiln data directory on XFS with reflinks, in a loop-mounted image beside it, so that
# snapshots and forks of real-tier workspaces share extents instead of copying them
# (docs/architecture.md, "Copy-on-write, measured"). Idempotent: mounts an existing image again
# (after a reboot), does nothing when it is mounted.
#   usage: scripts/data-dir-xfs.sh DIR [SIZE]   (SIZE of the sparse image, default 256G)
set -euo pipefail
dir=${1:?usage: data-dir-xfs.sh DIR [SIZE]}
size=${2:-256G}
dir=$(realpath -m "$dir")
image="$dir.xfs.img"
if mountpoint -q "$dir"; then
  echo "kiln: $dir is already a mount point"
  exit 0
fi
mkdir -p "$dir"
if [ ! -e "$image" ]; then
  if [ -n "$(ls -A "$dir")" ]; then
    echo "kiln: $dir is not empty: move its contents away first (mounting would hide them)" >&2
    exit 1
  fi
  command -v mkfs.xfs >/dev/null || { echo "kiln: mkfs.xfs missing (apt-get install xfsprogs)" >&2; exit 1; }
  truncate -s "$size" "$image"
  chmod 600 "$image"
  mkfs.xfs -q -m reflink=1 "$image"
fi
mount -o loop "$image" "$dir"
chmod 700 "$dir"
echo "kiln: $dir is XFS with reflinks (image $image); to mount it at boot:"
echo "  $image $dir xfs loop 0 0   # /etc/fstab"
