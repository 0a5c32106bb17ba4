/**
 * The QEMU command line of a microvm sandbox: QEMU's `microvm` machine (no
 * PCI, no firmware scan, no legacy devices but the serial console), direct
 * kernel boot, two virtio-blk disks (the template's rootfs image read-only,
 * the workspace image read-write), one virtio-serial port for the agent on
 * QEMU's stdio, QEMU's own seccomp sandbox, and a virtio-net card only for a
 * sandbox with egress (its tap device is in QEMU's own network namespace,
 * which Kiln's egress path wires; see backend.ts).
 */

import { InvalidArgumentError } from "../../core/errors.ts";

/** An accelerator QEMU runs the guest with. */
export type Accel = "kvm" | "tcg";

/** What the command line is built from. */
export interface QemuInput {
  accel: Accel;
  /** QEMU's `-cpu` value (chosen with the accelerator by the probe). */
  cpu: string;
  kernel: string;
  initramfs: string;
  /** The template's rootfs image (ext4, read-only). */
  rootfsImage: string;
  /** The sandbox's workspace image (ext4, read-write). */
  workspaceImage: string;
  /** Guest RAM, bytes (the sandbox's memory limit). */
  memoryBytes: number;
  /** Virtual CPUs. */
  vcpus: number;
  /** The sandbox's process limit, held by a cgroup inside the guest. */
  pids: number;
  /** The host's TSC frequency, kHz, handed to a TCG guest (microvm has no PIT gate to calibrate against). */
  tscKhz?: number;
  /** QEMU's QMP control socket (a Unix socket path). */
  qmpSocket?: string;
  /** An inherited fd of a connected stream socket to speak QMP on (pause saves the VM through it). */
  qmpFd?: number;
  /** A name for the VM (shown by `ps` as QEMU's process name). */
  name?: string;
  /** The guest's hostname (the sandbox's own; its init writes /etc/hostname and /etc/hosts for it). */
  hostname?: string;
  /** A network card on a tap device, and the addresses the guest's init gives it; default none. */
  network?: GuestNetwork;
}

/** The guest's network card: where QEMU plugs it, and the guest's addresses. */
export interface GuestNetwork {
  /** The tap device QEMU opens (made by QEMU in its own network namespace). */
  tap: string;
  /** The guest's address (IPv4). */
  address: string;
  /** The gateway: the guest's only route, its DNS server and its proxy (IPv4). */
  gateway: string;
}

/** One MAC for every guest: each is alone on its link. */
const GUEST_MAC = "52:54:00:4b:4c:4e";

const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$/;
const TAP = /^[a-z][a-z0-9]{0,14}$/;

/** A hostname the guest's init accepts: one DNS label. */
const HOSTNAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Size of TCG's translation cache, MiB (QEMU's default is 1 GiB, most of it never used by one small guest). */
export const TCG_TB_MIB = 64;

/** The guest's kernel command line. */
export function kernelCmdline(i: QemuInput): string {
  return [
    "console=ttyS0",
    // The agent is PID 1: when it exits the guest panics, and -no-reboot turns that into QEMU's exit.
    "panic=-1",
    "quiet",
    "loglevel=1",
    // No PCI on microvm: do not look for it.
    "pci=off",
    // The TCG guest reads the host's TSC; its jiffies (the watchdog's reference) lose ticks on a busy host.
    ...(i.accel === "tcg" && i.tscKhz ? [`tsc_early_khz=${i.tscKhz}`, "tsc=reliable"] : []),
    `kiln.pids=${i.pids}`,
    ...(i.hostname ? [`kiln.hostname=${i.hostname}`] : []),
    ...(i.network ? [`kiln.ip=${i.network.address}`, `kiln.gw=${i.network.gateway}`] : []),
  ].join(" ");
}

/**
 * Arguments for `qemu-system-x86_64`.
 * @throws InvalidArgumentError (`invalid_argument`) for a path with a comma (QEMU's option separator)
 */
export function qemuArgs(i: QemuInput): string[] {
  if (i.hostname !== undefined && !HOSTNAME.test(i.hostname))
    throw new InvalidArgumentError(`not a hostname: ${JSON.stringify(i.hostname)}`);
  const n = i.network;
  if (n && (!IPV4.test(n.address) || !IPV4.test(n.gateway) || !TAP.test(n.tap)))
    throw new InvalidArgumentError(`not a guest network: ${JSON.stringify(n)}`);
  for (const p of [i.kernel, i.initramfs, i.rootfsImage, i.workspaceImage, i.qmpSocket ?? ""]) {
    if (p.includes(",")) throw new InvalidArgumentError(`a path QEMU is given has a comma: ${p}`);
  }
  const mib = Math.max(64, Math.floor(i.memoryBytes / (1024 * 1024)));
  return [
    ...(i.name ? ["-name", `${i.name},process=kiln-vm`] : []),
    "-M",
    "microvm,x-option-roms=off,isa-serial=on,rtc=on",
    "-accel",
    i.accel === "tcg" ? `tcg,tb-size=${TCG_TB_MIB}` : "kvm",
    "-cpu",
    i.cpu,
    "-m",
    `${mib}M`,
    "-smp",
    String(Math.max(1, i.vcpus)),
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-no-reboot",
    "-sandbox",
    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    "-kernel",
    i.kernel,
    "-initrd",
    i.initramfs,
    "-append",
    kernelCmdline(i),
    // The guest's console (kernel errors, the init's failures) goes to QEMU's stderr.
    "-chardev",
    "socket,id=console,fd=3",
    "-serial",
    "chardev:console",
    "-drive",
    `file=${i.rootfsImage},format=raw,if=none,id=rootfs,readonly=on`,
    "-device",
    "virtio-blk-device,drive=rootfs",
    "-drive",
    `file=${i.workspaceImage},format=raw,if=none,id=workspace,discard=unmap`,
    "-device",
    "virtio-blk-device,drive=workspace",
    "-device",
    "virtio-serial-device,max_ports=2",
    "-chardev",
    "stdio,id=agent,signal=off",
    "-device",
    "virtserialport,chardev=agent,name=kiln.agent",
    ...(n
      ? [
          "-netdev",
          `tap,id=net0,ifname=${n.tap},script=no,downscript=no`,
          "-device",
          `virtio-net-device,netdev=net0,mac=${GUEST_MAC}`,
        ]
      : []),
    ...(i.qmpSocket ? ["-qmp", `unix:${i.qmpSocket},server=on,wait=off`] : []),
    ...(i.qmpFd !== undefined
      ? ["-chardev", `socket,id=qmp,fd=${i.qmpFd}`, "-mon", "chardev=qmp,mode=control"]
      : []),
  ];
}

/** Whether a command line gives the guest a network card. */
export function hasNetworkCard(args: readonly string[]): boolean {
  return args.includes("-netdev");
}

/**
 * A saved command line with its kernel and initramfs replaced by `boot`'s where
 * `exists` says the saved ones are gone (a newer agent's initramfs replaced
 * them). A restored guest reads neither again: QEMU only loads them into RAM
 * that the saved state then overwrites. Everything else is kept as saved.
 */
export function withBootFiles(
  args: readonly string[],
  boot: { kernel: string; initramfs: string },
  exists: (path: string) => boolean,
): string[] {
  const out = [...args];
  for (const [flag, now] of [
    ["-kernel", boot.kernel],
    ["-initrd", boot.initramfs],
  ] as const) {
    const i = out.indexOf(flag);
    if (i >= 0 && i + 1 < out.length && !exists(out[i + 1]!)) out[i + 1] = now;
  }
  return out;
}

/** What QEMU does with a host path of its command line: opens a file, or makes a socket there. */
export type QemuPathUse = "file" | "socket";

/**
 * A command line with every host path QEMU opens (kernel, initramfs, disk
 * images, the QMP socket it listens on) replaced by `to(path, use)`, for a
 * QEMU that sees the host's files elsewhere (at the id-mapped stage: see
 * qemu-ids.ts). Fds, options and everything else are kept.
 */
export function mapQemuPaths(
  args: readonly string[],
  to: (path: string, use: QemuPathUse) => string,
): string[] {
  const out = [...args];
  for (let i = 0; i + 1 < out.length; i++) {
    const flag = out[i];
    const v = out[i + 1]!;
    if (flag === "-kernel" || flag === "-initrd") out[i + 1] = to(v, "file");
    else if (flag === "-drive")
      out[i + 1] = v.replace(/^file=([^,]*)/, (_, p: string) => `file=${to(p, "file")}`);
    else if (flag === "-qmp")
      out[i + 1] = v.replace(/^unix:([^,]*)/, (_, p: string) => `unix:${to(p, "socket")}`);
  }
  return out;
}
