#!/usr/bin/env bash
# Installs the Debian packages that Kiln's real-binary tiers need, when run as
# root on a machine with apt. Idempotent and quick when everything is present.
# The virtual tier needs none of this (pyflakes3 lints its Python driver in the tests).
# KILN_CGROUP_USERS (comma-separated): ordinary users to delegate a cgroup subtree to
# (scripts/delegate-cgroups.sh), so that their namespace sandboxes hold memory, pids and CPU limits.
set -u
KILN_CGROUP_USERS="${KILN_CGROUP_USERS:-}"
PACKAGES=(bubblewrap runc runsc uidmap debootstrap e2fsprogs chromium curl pyflakes3 iproute2 openssl xfsprogs qemu-system-x86 busybox-static)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Sandbox users map to host ids of their own: subordinate ids for root (1024 sandbox ranges of 65,536
# from 1,000,000), added where root has none (an administrator's own entries are kept).
if [ "$(id -u)" = 0 ]; then
  for f in /etc/subuid /etc/subgid; do
    grep -qE '^(root|0):' "$f" 2>/dev/null || echo "root:1000000:67108864" >>"$f"
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "kiln: not root or no apt-get; not installing: ${missing[*]}"
  else
    echo "kiln: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
bash "$(dirname "$0")/install-runsc.sh"
# Ordinary users whose Kiln should hold memory, pids and CPU limits get a cgroup subtree of their own.
if [ "$(id -u)" = 0 ]; then
  for u in ${KILN_CGROUP_USERS//,/ }; do
    bash "$(dirname "$0")/delegate-cgroups.sh" "$u" || echo "kiln: could not delegate cgroups to $u"
  done
fi
exit 0
