/**
 * Which accelerator runs the guests: KVM when `/dev/kvm` is there and QEMU
 * starts a KVM machine within a time limit, else TCG (QEMU's emulator, tens
 * of times slower, but it needs nothing from the host). Decided once per
 * process; `kiln doctor` shows the choice and why.
 */
import { spawn } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import type { Accel } from "./qemu-args.ts";

/** The chosen accelerator and why. */
export interface AccelChoice {
  accel: Accel;
  reason: string;
}

/** How long QEMU may take to start a KVM machine in the probe, ms. */
const KVM_PROBE_TIMEOUT_MS = 5000;

let chosen: Promise<AccelChoice> | undefined;

/** The accelerator for this host (probed once per process). */
export function chooseAccel(qemu: string): Promise<AccelChoice> {
  chosen ??= probe(qemu);
  return chosen;
}

async function probe(qemu: string): Promise<AccelChoice> {
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return {
      accel: "tcg",
      reason: code === "ENOENT" ? "no /dev/kvm on this host" : `/dev/kvm is not usable (${code})`,
    };
  }
  const failed = await kvmStarts(qemu);
  if (failed) return { accel: "tcg", reason: `KVM probe failed: ${failed}` };
  return { accel: "kvm", reason: "/dev/kvm works" };
}

/**
 * Starts a stopped KVM microvm machine with QMP on stdin/stdout and quits it:
 * undefined when that works within the time limit, else what went wrong.
 */
function kvmStarts(qemu: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn(
      qemu,
      [
        "-M",
        "microvm",
        "-accel",
        "kvm",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-S",
        "-qmp",
        "stdio",
      ],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    let stderr = "";
    let stdout = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve(`QEMU did not start a KVM machine within ${KVM_PROBE_TIMEOUT_MS} ms`);
    }, KVM_PROBE_TIMEOUT_MS);
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString("utf8");
    });
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString("utf8");
      // QEMU greets on QMP only once the machine (and its KVM VM) exists.
      if (stdout.includes('"QMP"')) {
        child.stdin.end('{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n');
      }
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      resolve(e.message);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve(code === 0 && stdout.includes('"QMP"') ? undefined : stderr.trim() || `exit code ${code}`);
    });
  });
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
