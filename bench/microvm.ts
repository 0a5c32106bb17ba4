/**
 * The microvm tier beside raw QEMU, in one run:
 *  - cold create + first exec through Kiln vs `qemu-system-x86_64` booting the same kernel and
 *    initramfs (same machine, accelerator and devices but no disks) to a shell that exits at once;
 *  - create + first exec from the warm pool (a booted VM handed over);
 *  - create + first exec from the saved boot state (a booted, idle VM restored with QEMU's
 *    `-incoming`; every other create here boots cold, KILN_MICROVM_BOOT_STATE=off);
 *  - warm exec p50/p95 through the agent vs the same exec timed inside the guest;
 *  - idle memory: RSS of QEMU vs the guest's RAM.
 * Few samples: under TCG (no /dev/kvm) each boot costs seconds.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kiln } from "../src/index.ts";
import { agentBinary, which } from "../src/tiers/common/host.ts";
import { type AccelChoice, chooseAccel, hostTscKhz } from "../src/tiers/microvm/accel.ts";
import type { MicrovmBackend } from "../src/tiers/microvm/backend.ts";
import { guestBoot, microvmCacheDir } from "../src/tiers/microvm/guest.ts";
import { kernelCmdline, qemuArgs } from "../src/tiers/microvm/qemu-args.ts";
import { quantile, type Row, timeIt } from "./stats.ts";

const exited = (c: ChildProcess) => new Promise((r) => c.once("exit", r));

/** RSS in bytes of the process whose command line names `needle` (the sandbox's QEMU). */
function rssOf(needle: string): number {
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, "utf8");
      if (!cmd.startsWith("qemu-system") && !cmd.includes("/qemu-system")) continue;
      if (!cmd.includes(needle)) continue;
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, "utf8"));
      return m ? Number(m[1]) * 1024 : 0;
    } catch {
      // Gone meanwhile.
    }
  }
  return 0;
}

/** Boots the guest kernel and initramfs with a shell as init that exits at once; resolves when QEMU is gone. */
async function rawBoot(
  qemu: string,
  boot: { kernel: string; initramfs: string },
  accel: AccelChoice,
): Promise<void> {
  const tscKhz = hostTscKhz();
  const input = {
    accel: accel.accel,
    cpu: accel.cpu,
    kernel: boot.kernel,
    initramfs: boot.initramfs,
    rootfsImage: "/dev/null",
    workspaceImage: "/dev/null",
    memoryBytes: 512 * 1024 * 1024,
    vcpus: 1,
    pids: 256,
    ...(tscKhz ? { tscKhz } : {}),
  };
  // Kiln's machine, accelerator and kernel line, without disks and agent port; the shell is PID 1.
  const args = qemuArgs(input);
  const cut = args.indexOf("-chardev");
  // Everything after `--` on the kernel line is init's argv: the shell runs `exit`, and as PID 1
  // its exit ends the guest (panic=-1 with -no-reboot: QEMU exits).
  const base = args
    .slice(0, cut)
    .map((a) => (a === kernelCmdline(input) ? `${a} rdinit=/bin/sh -- -c exit` : a));
  const child = spawn(qemu, base, { stdio: "ignore" });
  await exited(child);
}

/** Rows of the microvm section, or undefined when the tier does not run here. */
export async function benchMicrovm(): Promise<{ accel: string; rows: Row[] } | undefined> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-microvm-"));
  const kiln = await Kiln.open({ dataDir });
  const stateWas = process.env.KILN_MICROVM_BOOT_STATE;
  // Cold boots everywhere but in the saved-state row.
  process.env.KILN_MICROVM_BOOT_STATE = "off";
  try {
    const status = (await kiln.doctor()).find((s) => s.tier === "microvm");
    const qemu = which("qemu-system-x86_64");
    if (!status?.available || !qemu) return undefined;
    const boot = await guestBoot(microvmCacheDir(dataDir), agentBinary());
    const accel = await chooseAccel(qemu, boot, microvmCacheDir(dataDir));
    // The template's image is made on first use: not timed.
    await (await kiln.create({ tier: "microvm" })).kill();
    const n = accel.accel === "kvm" ? 10 : 3;
    process.stderr.write("microvm bench: raw boots\n");
    const raw = await timeIt(n, () => rawBoot(qemu, boot, accel), 1);
    process.stderr.write("microvm bench: cold creates\n");
    const cold = await timeIt(
      n,
      async () => {
        await new Promise((r) => setTimeout(r, 300));
        const sb = await kiln.create({ tier: "microvm" });
        await sb.commands.run("echo hi");
        await sb.kill();
      },
      0,
    );
    process.stderr.write("microvm bench: warm pool\n");
    const warmKiln = await Kiln.open({ dataDir, warmPool: 1 });
    const warm: number[] = [];
    try {
      await warmKiln.prewarm({ tier: "microvm" });
      for (let i = 0; i < n; i++) {
        await warmKiln.warmed();
        const t = performance.now();
        const w = await warmKiln.create({ tier: "microvm" });
        await w.commands.run("echo hi");
        warm.push(performance.now() - t);
        await w.kill();
      }
    } finally {
      await warmKiln.close();
    }
    process.stderr.write("microvm bench: saved boot state\n");
    delete process.env.KILN_MICROVM_BOOT_STATE;
    // The first create of the machine has its boot state saved in the background (not timed).
    await (await kiln.create({ tier: "microvm" })).kill();
    await ((await kiln.backend("microvm")) as MicrovmBackend).bootStatesBuilt();
    const restored = await timeIt(
      n,
      async () => {
        await new Promise((r) => setTimeout(r, 300));
        const sb = await kiln.create({ tier: "microvm" });
        await sb.commands.run("echo hi");
        await sb.kill();
      },
      0,
    );
    process.env.KILN_MICROVM_BOOT_STATE = "off";
    process.stderr.write("microvm bench: warm exec\n");
    const sb = await kiln.create({ tier: "microvm" });
    const exec = await timeIt(30, () => sb.commands.run("echo hi"), 3);
    // The same command started inside the guest, by bash, 20 times: the exec without the agent's trip.
    const inside = await sb.commands.run(
      "s=$(date +%s%N); for i in $(seq 20); do bash -c 'echo hi' >/dev/null; done; e=$(date +%s%N); echo $(( (e - s) / 20000 ))",
    );
    const insideMs = Number(inside.stdout.trim()) / 1000;
    await new Promise((r) => setTimeout(r, 2000));
    const rss = rssOf(sb.id);
    const ramMiB = (await sb.info()).limits.memoryBytes / 2 ** 20;
    await sb.kill();
    const rawLabel = `raw \`qemu-system-x86_64\` (${accel.accel}), same kernel + initramfs, shell as init that exits`;
    return {
      accel: `${accel.accel} (${accel.reason})`,
      rows: [
        {
          metric: "cold create + first exec, p50",
          kiln: quantile(cold, 0.5),
          raw: quantile(raw, 0.5),
          unit: "ms",
          rawLabel,
        },
        {
          metric: "create + first exec, warm pool, p50",
          kiln: quantile(warm, 0.5),
          raw: quantile(raw, 0.5),
          unit: "ms",
          rawLabel,
        },
        {
          metric: "create + first exec, saved boot state, p50",
          kiln: quantile(restored, 0.5),
          raw: quantile(raw, 0.5),
          unit: "ms",
          rawLabel,
        },
        {
          metric: "warm exec (`echo hi`) through the agent, p50",
          kiln: quantile(exec, 0.5),
          raw: insideMs,
          unit: "ms",
          rawLabel: "`bash -c 'echo hi'` timed inside the guest",
        },
        {
          metric: "warm exec, p95",
          kiln: quantile(exec, 0.95),
          raw: insideMs,
          unit: "ms",
          rawLabel: "`bash -c 'echo hi'` timed inside the guest",
        },
        {
          metric: "idle memory per sandbox (RSS of QEMU)",
          kiln: rss / 2 ** 20,
          raw: ramMiB,
          unit: "MiB",
          rawLabel: "the guest's RAM (the memory limit)",
        },
      ],
    };
  } finally {
    if (stateWas === undefined) delete process.env.KILN_MICROVM_BOOT_STATE;
    else process.env.KILN_MICROVM_BOOT_STATE = stateWas;
    await kiln.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
