/**
 * Which accelerator runs the guests: KVM when `/dev/kvm` is there and the
 * guest kernel boots under it within a time limit, else TCG (QEMU's
 * emulator, tens of times slower, but it needs nothing from the host).
 * Opening /dev/kvm is not enough: a nested host (a VM that offers /dev/kvm)
 * may refuse the host CPU model's MSRs or never get a guest past its
 * real-mode setup, so the probe boots the real kernel to its init.
 * Decided once per process and remembered in the cache directory for the
 * host's boot; `kiln doctor` shows the choice and why.
 */
import { spawn } from "node:child_process";
import { accessSync, constants, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Accel } from "./qemu-args.ts";

/** The chosen accelerator, the CPU model QEMU is given with it, and why. */
export interface AccelChoice {
  accel: Accel;
  /** QEMU's `-cpu` value. */
  cpu: string;
  reason: string;
}

/** The guest's kernel and initramfs, which the probe boots. */
export interface ProbeBoot {
  kernel: string;
  initramfs: string;
}

/** How long the guest kernel may take to boot to its init under KVM in the probe, ms (it takes well under 1 s). */
const KVM_BOOT_PROBE_MS = 10_000;

/**
 * CPU models tried under KVM, best first. The host's own model passes every
 * feature through; a nested KVM host may refuse to set some of the MSRs that
 * model brings (IA32_ARCH_CAPABILITIES, 0x10a, aborts QEMU at the vCPU's
 * first run), so the second leaves that one out: the guest kernel then
 * assumes the CPU vulnerable and turns its mitigations on.
 */
export const KVM_CPU_MODELS = ["host", "host,-arch-capabilities"] as const;
/** The CPU model under TCG. */
export const TCG_CPU_MODEL = "max";

let chosen: Promise<AccelChoice> | undefined;

/**
 * The accelerator for this host: probed once per process, and remembered in
 * `cacheDir` for this boot of the host, this QEMU and this kernel.
 */
export function chooseAccel(qemu: string, boot: ProbeBoot, cacheDir: string): Promise<AccelChoice> {
  chosen ??= remembered(qemu, boot, cacheDir);
  return chosen;
}

async function remembered(qemu: string, boot: ProbeBoot, cacheDir: string): Promise<AccelChoice> {
  const key = probeKey(qemu, boot);
  const file = join(cacheDir, "accel.json");
  try {
    const saved = JSON.parse(readFileSync(file, "utf8")) as { key: string; choice: AccelChoice };
    if (saved.key === key && (saved.choice.accel === "kvm" || saved.choice.accel === "tcg")) {
      return { ...saved.choice, reason: `${saved.choice.reason} (probed earlier in this boot of the host)` };
    }
  } catch {}
  const choice = await probe(qemu, boot);
  try {
    mkdirSync(cacheDir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ key, choice }));
    renameSync(tmp, file);
  } catch {}
  return choice;
}

/** What the probe's answer depends on: the host's boot, QEMU, the kernel and /dev/kvm's presence. */
function probeKey(qemu: string, boot: ProbeBoot): string {
  const read = (f: string) => {
    try {
      return readFileSync(f, "utf8").trim();
    } catch {
      return "";
    }
  };
  const stamp = (f: string) => {
    try {
      const st = statSync(f);
      return `${f}@${st.size}:${st.mtimeMs}`;
    } catch {
      return `${f}@none`;
    }
  };
  return [read("/proc/sys/kernel/random/boot_id"), stamp(qemu), stamp(boot.kernel), stamp("/dev/kvm")].join(
    "|",
  );
}

async function probe(qemu: string, boot: ProbeBoot): Promise<AccelChoice> {
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return {
      accel: "tcg",
      cpu: TCG_CPU_MODEL,
      reason: code === "ENOENT" ? "no /dev/kvm on this host" : `/dev/kvm is not usable (${code})`,
    };
  }
  const failures: string[] = [];
  for (const cpu of KVM_CPU_MODELS) {
    const failed = await kvmBoots(qemu, cpu, boot);
    if (!failed) {
      const before = failures.length ? `; ${failures.join("; ")}` : "";
      return { accel: "kvm", cpu, reason: `the guest boots under KVM with CPU model ${cpu}${before}` };
    }
    failures.push(`CPU model ${cpu}: ${failed}`);
    // A guest that hung will hang with the next model too: one time limit is enough.
    if (failed.startsWith("timeout")) break;
  }
  return { accel: "tcg", cpu: TCG_CPU_MODEL, reason: `KVM boot probe failed: ${failures.join("; ")}` };
}

/**
 * Boots the guest kernel under KVM with CPU model `cpu` to an init that
 * exits at once (the guest then panics, and -no-reboot ends QEMU with 0):
 * undefined when that happens within the time limit, else what went wrong.
 */
function kvmBoots(qemu: string, cpu: string, boot: ProbeBoot): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn(
      qemu,
      [
        "-M",
        "microvm,x-option-roms=off,isa-serial=on,rtc=on",
        "-accel",
        "kvm",
        "-cpu",
        cpu,
        "-m",
        "256M",
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        boot.kernel,
        "-initrd",
        boot.initramfs,
        "-append",
        "console=ttyS0 panic=-1 quiet loglevel=1 pci=off rdinit=/bin/sh -- -c exit",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, KVM_BOOT_PROBE_MS);
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString("utf8");
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      resolve(e.message);
    });
    child.on("close", (code, sig) => {
      clearTimeout(timer);
      if (timedOut) resolve(`timeout: the guest did not boot to its init within ${KVM_BOOT_PROBE_MS} ms`);
      else resolve(code === 0 ? undefined : qemuError(stderr) || `QEMU ended with ${code ?? sig}`);
    });
  });
}

/** QEMU's `error:` line in `s` (it comes before an assertion's abort message), else the last line. */
function qemuError(s: string): string {
  const lines = s.trim().split("\n").filter(Boolean);
  return lines.find((l) => l.includes("error:"))?.trim() ?? lines.at(-1)?.trim() ?? "";
}

/**
 * The host's TSC frequency in kHz, from /proc/cpuinfo (on a host whose TSC
 * has a known, constant rate, "cpu MHz" is that rate). A TCG guest reads the
 * host's TSC; microvm has no PIT gate to calibrate it against.
 */
export function hostTscKhz(): number | undefined {
  try {
    const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    return m ? Math.round(Number(m[1]) * 1000) : undefined;
  } catch {
    return undefined;
  }
}
