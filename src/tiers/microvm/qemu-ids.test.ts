import assert from "node:assert/strict";
import { test } from "node:test";
import { IDMAP_STAGE } from "../common/id-stage.ts";
import { mapQemuPaths, qemuArgs } from "./qemu-args.ts";
import { mappedQemu, qemuIdsUnavailable } from "./qemu-ids.ts";

const input = {
  accel: "tcg" as const,
  cpu: "max",
  kernel: "/k/vmlinuz",
  initramfs: "/k/initramfs.cpio.gz",
  rootfsImage: "/t/rootfs.ext4",
  workspaceImage: "/s/box/workspace.img",
  memoryBytes: 256 * 1024 * 1024,
  vcpus: 1,
  pids: 64,
  qmpFd: 4,
  qmpSocket: "/s/box/qemu/qmp.sock",
};

/** The value after each occurrence of `flag`. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

test("mapQemuPaths: every host path QEMU opens is mapped, and nothing else", () => {
  const a = qemuArgs(input);
  const seen: string[] = [];
  const m = mapQemuPaths(a, (p, use) => {
    seen.push(`${use} ${p}`);
    return `/x${p}`;
  });
  assert.deepEqual(seen.sort(), [
    "file /k/initramfs.cpio.gz",
    "file /k/vmlinuz",
    "file /s/box/workspace.img",
    "file /t/rootfs.ext4",
    "socket /s/box/qemu/qmp.sock",
  ]);
  assert.deepEqual(values(m, "-kernel"), ["/x/k/vmlinuz"]);
  assert.deepEqual(values(m, "-drive"), [
    "file=/x/t/rootfs.ext4,format=raw,if=none,id=rootfs,readonly=on",
    "file=/x/s/box/workspace.img,format=raw,if=none,id=workspace,discard=unmap",
  ]);
  assert.deepEqual(values(m, "-qmp"), ["unix:/x/s/box/qemu/qmp.sock,server=on,wait=off"]);
  assert.equal(m.length, a.length);
  assert.deepEqual(
    m.filter((x, i) => x !== a[i]),
    [
      "/x/k/vmlinuz",
      "/x/k/initramfs.cpio.gz",
      "file=/x/t/rootfs.ext4,format=raw,if=none,id=rootfs,readonly=on",
      "file=/x/s/box/workspace.img,format=raw,if=none,id=workspace,discard=unmap",
      "unix:/x/s/box/qemu/qmp.sock,server=on,wait=off",
    ],
  );
});

test("mappedQemu: each file staged by itself, once; sockets through their folder; tun only with a network card", () => {
  const tail = [
    "unshare",
    "--net",
    "--",
    "/usr/bin/qemu",
    ...qemuArgs({ ...input, initramfs: "/k/vmlinuz" }),
  ];
  const m = mappedQemu("/a/agent", { base: 131072, count: 65536 }, "/s/box/qemu", tail, 4);
  const sep = m.command.indexOf("--");
  assert.deepEqual(m.command.slice(0, sep), [
    "/a/agent",
    "--idmap-exec",
    "131072",
    "65536",
    IDMAP_STAGE,
    "/s/box/qemu",
    "/k/vmlinuz",
    "/t/rootfs.ext4",
    "/s/box/workspace.img",
  ]);
  assert.equal(m.socketDir, `${IDMAP_STAGE}/0`);
  const q = m.command.slice(sep + 1);
  assert.deepEqual(q.slice(0, 4), ["unshare", "--net", "--", "/usr/bin/qemu"]);
  assert.deepEqual(values(q, "-kernel"), [`${IDMAP_STAGE}/1`]);
  assert.deepEqual(values(q, "-initrd"), [`${IDMAP_STAGE}/1`]);
  assert.ok(q.includes(`file=${IDMAP_STAGE}/3,format=raw,if=none,id=workspace,discard=unmap`));
  assert.deepEqual(values(q, "-qmp"), [`unix:${IDMAP_STAGE}/0/qmp.sock,server=on,wait=off`]);
  assert.ok(!m.command.includes("--device"), "no device without a network card");
  // A VM saved by an earlier Kiln listened in the state directory itself: that folder is staged.
  const old = mappedQemu(
    "/a/agent",
    { base: 131072, count: 65536 },
    "/s/box/qemu",
    ["-qmp", "unix:/s/box/qmp.sock,server=on"],
    0,
  );
  assert.ok(old.command.includes("/s/box"));
  assert.ok(old.command.includes(`unix:${IDMAP_STAGE}/1/qmp.sock,server=on`));
  const withCard = qemuArgs({ ...input, network: { tap: "tap0", address: "10.0.0.2", gateway: "10.0.0.1" } });
  const n = mappedQemu("/a/agent", { base: 131072, count: 65536 }, "/s/box/qemu", ["qemu", ...withCard], 1);
  assert.deepEqual(n.command.slice(1, 4), ["--idmap-exec", "--device", "/dev/net/tun"]);
});

test("qemuIdsUnavailable: KVM keeps QEMU host root", () => {
  assert.match(qemuIdsUnavailable("kvm") ?? "", /kvm/);
});
