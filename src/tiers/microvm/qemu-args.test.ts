import assert from "node:assert/strict";
import { test } from "node:test";
import { field } from "./guest-limits.ts";
import { hasNetworkCard, kernelCmdline, type QemuInput, qemuArgs, withBootFiles } from "./qemu-args.ts";

const base: QemuInput = {
  accel: "tcg",
  cpu: "max",
  kernel: "/k/vmlinuz",
  initramfs: "/k/initramfs.cpio.gz",
  rootfsImage: "/t/rootfs.ext4",
  workspaceImage: "/s/ws/workspace.img",
  memoryBytes: 256 * 1024 * 1024,
  vcpus: 2,
  pids: 64,
  tscKhz: 2_000_000,
};

/** The value after each occurrence of `flag`. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

test("qemu args: no defaults, no network, QEMU's seccomp sandbox on, guest RAM is the memory limit", () => {
  const a = qemuArgs(base);
  for (const f of ["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"]) assert.ok(a.includes(f), f);
  assert.deepEqual(values(a, "-sandbox"), [
    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
  ]);
  assert.deepEqual(values(a, "-m"), ["256M"]);
  assert.deepEqual(values(a, "-smp"), ["2"]);
  assert.ok(!a.some((x) => /netdev|virtio-net|-nic/.test(x)), "no network device");
  assert.ok(!a.some((x) => /virtfs|9p|vhost-user-fs|-fsdev/.test(x)), "no host directory shared");
  assert.match(values(a, "-M")[0]!, /^microvm,/);
});

test("qemu args: the template image is read-only, the workspace image is the only writable disk", () => {
  const drives = values(qemuArgs(base), "-drive");
  assert.equal(drives.length, 2);
  assert.match(drives[0]!, /^file=\/t\/rootfs\.ext4,.*readonly=on/);
  assert.match(drives[1]!, /^file=\/s\/ws\/workspace\.img,/);
  assert.doesNotMatch(drives[1]!, /readonly/);
});

test("qemu args: TCG gets a bounded translation cache and the host's TSC rate; KVM gets neither", () => {
  const tcg = qemuArgs(base);
  assert.match(values(tcg, "-accel")[0]!, /^tcg,tb-size=\d+$/);
  assert.match(kernelCmdline(base), /tsc_early_khz=2000000/);
  const kvm = qemuArgs({ ...base, accel: "kvm", cpu: "host,-arch-capabilities" });
  assert.deepEqual(values(kvm, "-accel"), ["kvm"]);
  assert.deepEqual(values(kvm, "-cpu"), ["host,-arch-capabilities"]);
  assert.doesNotMatch(kernelCmdline({ ...base, accel: "kvm" }), /tsc_early_khz/);
});

test("qemu args: the process limit reaches the guest's init; paths with commas cannot add options", () => {
  assert.match(kernelCmdline(base), /(^| )kiln\.pids=64( |$)/);
  assert.match(kernelCmdline({ ...base, hostname: "sb-abc123" }), /(^| )kiln\.hostname=sb-abc123( |$)/);
  for (const bad of ["a b", "x;reboot", "-lead", "a".repeat(64), ""])
    assert.throws(() => qemuArgs({ ...base, hostname: bad }), { code: "invalid_argument" }, bad);
  assert.throws(() => qemuArgs({ ...base, workspaceImage: "/s/a,readonly=off/workspace.img" }), {
    code: "invalid_argument",
  });
});

test("guest counters: a field of a `key value` file, 0 when absent", () => {
  assert.equal(field("pgfault 10\noom_kill 3\nfoo 1\n", "oom_kill"), 3);
  assert.equal(field("max 0\n", "max"), 0);
  assert.equal(field("other 5\n", "max"), 0);
  assert.equal(field("max_x 5\n", "max"), 0);
});

test("a saved command line keeps its kernel and initramfs, or takes the current ones when they are gone", () => {
  const saved = ["-kernel", "/old/vmlinuz", "-initrd", "/old/initramfs-a.cpio.gz", "-m", "512M"];
  const boot = { kernel: "/new/vmlinuz", initramfs: "/new/initramfs-b.cpio.gz" };
  assert.deepEqual(
    withBootFiles(saved, boot, () => true),
    saved,
  );
  assert.deepEqual(
    withBootFiles(saved, boot, (p) => p !== "/old/initramfs-a.cpio.gz"),
    ["-kernel", "/old/vmlinuz", "-initrd", "/new/initramfs-b.cpio.gz", "-m", "512M"],
  );
});

test("qemu args: with egress, one virtio-net card on a tap, its addresses on the kernel line", () => {
  const network = { tap: "tap0", address: "198.18.0.2", gateway: "198.18.0.1" };
  const a = qemuArgs({ ...base, network });
  assert.ok(hasNetworkCard(a));
  assert.ok(!hasNetworkCard(qemuArgs(base)));
  assert.deepEqual(values(a, "-netdev"), ["tap,id=net0,ifname=tap0,script=no,downscript=no"]);
  assert.equal(values(a, "-device").filter((d) => d.startsWith("virtio-net-device,netdev=net0")).length, 1);
  const line = kernelCmdline({ ...base, network });
  assert.match(line, /(^| )kiln\.ip=198\.18\.0\.2( |$)/);
  assert.match(line, /(^| )kiln\.gw=198\.18\.0\.1( |$)/);
  for (const bad of [
    { ...network, tap: "tap0,script=/x" },
    { ...network, address: "198.18.0.2 init=/bin/sh" },
    { ...network, gateway: "::1" },
  ]) {
    assert.throws(() => qemuArgs({ ...base, network: bad }), { code: "invalid_argument" });
  }
});
