#!/usr/bin/env bash
# Delegates a cgroup subtree to an ordinary user, so that Kiln run by that user can hold its
# sandboxes' memory, pids and CPU limits (src/tiers/common/cgroups.ts). Run once as root:
#   scripts/delegate-cgroups.sh USER
# cgroup v1: makes kiln-user-<uid> in each controller Kiln uses (memory, pids, cpu, and cpuacct
# when mounted apart), owned by the user with its cgroup.procs and tasks, so that the user can make
# children, set their limits and move its own processes into them. cgroup v2: makes
# kiln-user-<uid> owned by the user with the controllers enabled below it; Kiln must then be
# started inside it (v2 moves a process only within a subtree the mover runs in).
# Idempotent. A reboot empties cgroupfs: run it again at boot.
set -euo pipefail
user="${1:?usage: delegate-cgroups.sh USER}"
uid="$(id -u "$user")"
gid="$(id -g "$user")"
name="kiln-user-$uid"
root=/sys/fs/cgroup
own() { chown "$uid:$gid" "$@"; }
if [ -f "$root/cgroup.controllers" ]; then
  echo "+memory +pids +cpu" >"$root/cgroup.subtree_control" 2>/dev/null || true
  mkdir -p "$root/$name"
  own "$root/$name" "$root/$name/cgroup.procs" "$root/$name/cgroup.subtree_control" "$root/$name/cgroup.threads"
  echo "+memory +pids +cpu" >"$root/$name/cgroup.subtree_control"
  echo "kiln: delegated $root/$name to $user"
  exit 0
fi
controllers=(memory pids cpu)
if [ -f "$root/cpuacct/cgroup.procs" ] && [ "$(realpath "$root/cpuacct")" != "$(realpath "$root/cpu")" ]; then
  controllers+=(cpuacct)
fi
for c in "${controllers[@]}"; do
  d="$root/$c/$name"
  if [ ! -f "$root/$c/cgroup.procs" ]; then
    echo "kiln: no cgroup v1 hierarchy for $c at $root/$c" >&2
    exit 1
  fi
  mkdir -p "$d"
  own "$d" "$d/cgroup.procs" "$d/tasks"
done
echo "kiln: delegated $name in ${controllers[*]} to $user"
