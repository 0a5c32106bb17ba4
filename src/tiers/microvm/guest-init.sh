#!/bin/busybox sh
# PID 1 of a microvm sandbox's initramfs (Kiln's own; no udev, no device
# scanning, nothing waits on a timeout). It loads the virtio modules, mounts
# the template read-only at / and the workspace image read-write at
# /workspace, puts itself in the guest cgroup that holds the sandbox's process
# limit, then becomes the agent, whose stdin/stdout is the virtio-serial port
# named kiln.agent (QEMU's end of it is Kiln's pipe). With --vm the agent
# starts every program without capabilities, and on exit syncs and powers off.
# Kernel command line: kiln.pids=N (the sandbox's process limit), kiln.hostname=NAME (the sandbox's
# hostname; default kiln), kiln.trace (print each step's time), kiln.ip=A kiln.gw=G (a sandbox with
# egress: its network card eth0 gets address A, its one route 198.18.0.0/15 through G, and DNS at G;
# the same as the other tiers' sandboxes get from src/tiers/common/egress-netns.ts).
bb=/bin/busybox
$bb mkdir -p /proc /sys /dev /newroot
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
exec 2>/dev/console
fail() {
  echo "kiln-init: $*" >&2
  $bb poweroff -f
}
pids=max
host=kiln
trace=
ip=
gw=
for w in $($bb cat /proc/cmdline); do
  case "$w" in
    kiln.pids=*) pids="${w#kiln.pids=}" ;;
    kiln.hostname=*) host="${w#kiln.hostname=}" ;;
    kiln.trace) trace=1 ;;
    kiln.ip=*) ip="${w#kiln.ip=}" ;;
    kiln.gw=*) gw="${w#kiln.gw=}" ;;
  esac
done
# kiln.trace on the kernel line: each step's time since the kernel started, on the console.
step() {
  [ -n "$trace" ] && echo "kiln-init: $($bb cut -d' ' -f1 /proc/uptime) s: $*" >&2
  :
}
step "init started"
for m in $($bb cat /modules.order); do
  $bb insmod "/modules/$m.ko" || fail "cannot load $m"
done
if [ -n "$ip" ]; then
  for m in $($bb cat /modules-net.order); do
    $bb insmod "/modules/$m.ko" || fail "cannot load $m"
  done
fi
step "modules loaded"
# Drivers probe during insmod; their device nodes follow on devtmpfs's thread within moments.
port=
n=0
while :; do
  for p in /sys/class/virtio-ports/*; do
    [ -r "$p/name" ] && [ "$($bb cat "$p/name")" = kiln.agent ] && port=/dev/${p##*/}
  done
  [ -n "$port" ] && [ -e "$port" ] && [ -e /dev/vda ] && [ -e /dev/vdb ] \
    && { [ -z "$ip" ] || [ -e /sys/class/net/eth0 ]; } && break
  n=$((n + 1))
  [ $n -gt 2000 ] && fail "the virtio devices did not appear"
  $bb usleep 1000
done
step "devices ready"
$bb mount -t ext4 -o ro,noatime /dev/vda /newroot || fail "cannot mount the template"
$bb mount -t ext4 -o nosuid,nodev,noatime /dev/vdb /newroot/workspace || fail "cannot mount the workspace"
$bb mount -t proc proc /newroot/proc
$bb mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /newroot/sys
$bb mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /newroot/sys/fs/cgroup || fail "cannot mount cgroup2"
cg=/newroot/sys/fs/cgroup
echo "+pids +memory" >$cg/cgroup.subtree_control
$bb mkdir $cg/kiln
echo "$pids" >$cg/kiln/pids.max || fail "cannot set the process limit"
echo $$ >$cg/kiln/cgroup.procs || fail "cannot join the sandbox's cgroup"
$bb mount -t devtmpfs devtmpfs /newroot/dev
$bb mkdir -p /newroot/dev/pts /newroot/dev/shm
$bb mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /newroot/dev/pts
$bb ln -sf pts/ptmx /newroot/dev/ptmx 2>/dev/null
$bb mount -t tmpfs -o nosuid,nodev tmpfs /newroot/dev/shm
$bb mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /newroot/tmp
$bb mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs /newroot/run
$bb mount -t tmpfs -o size=16m,mode=755 tmpfs /newroot/.kiln
$bb cp /kiln-agent /newroot/.kiln/agent
# The sandbox is a host of its own: its name resolves to itself without DNS (the template's files are read-only).
echo "$host" >/newroot/.kiln/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$host" >/newroot/.kiln/hosts
for f in hostname hosts; do
  [ -f "/newroot/etc/$f" ] && [ ! -L "/newroot/etc/$f" ] && $bb mount -o bind "/newroot/.kiln/$f" "/newroot/etc/$f"
done
if [ -n "$ip" ]; then
  printf 'nameserver %s\noptions ndots:0 attempts:1 timeout:2\n' "$gw" >/newroot/.kiln/resolv.conf
  [ -f /newroot/etc/resolv.conf ] && [ ! -L /newroot/etc/resolv.conf ] \
    && $bb mount -o bind /newroot/.kiln/resolv.conf /newroot/etc/resolv.conf
fi
$bb mount -o remount,ro /newroot/.kiln
# Namespaces are for the guest's own kernel to hand out; a sandbox has no use for new user namespaces.
echo 0 >/proc/sys/user/max_user_namespaces
$bb hostname "$host"
$bb ip link set lo up || fail "cannot bring up the loopback interface"
if [ -n "$ip" ]; then
  # No IPv6 at all (no link-local address either): the egress path is IPv4 only.
  for f in /proc/sys/net/ipv6/conf/all/disable_ipv6 /proc/sys/net/ipv6/conf/default/disable_ipv6 \
    /proc/sys/net/ipv6/conf/eth0/disable_ipv6; do
    [ -w "$f" ] && echo 1 >"$f"
  done
  $bb ip addr add "$ip" peer "$gw" dev eth0 || fail "cannot set the network address"
  $bb ip link set eth0 up || fail "cannot bring up the network card"
  # The range Kiln's DNS gives allowed names from; no default route.
  $bb ip route add 198.18.0.0/15 via "$gw" dev eth0 || fail "cannot set the network route"
fi
step "mounts done, starting the agent"
$bb umount /proc /sys
cd /newroot/workspace
exec 0<>"$port" 1>&0
exec $bb switch_root /newroot /usr/bin/env -i \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /.kiln/agent --vm
