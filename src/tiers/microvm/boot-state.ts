/**
 * Saved boot states, the fast create path of the microvm tier: a booted, idle
 * VM of a template, saved once with QEMU's migration (vm-state.ts) together
 * with the empty workspace image it had mounted, kept in the microvm cache
 * beside the rootfs images. A create copies that workspace image (the saved
 * guest's page cache describes exactly that disk: the two go together) and
 * starts QEMU with `-incoming` from the saved state; the guest runs on from
 * where it was saved, and the host makes it the sandbox's own (clock,
 * hostname, process limit, random pool: the agent's `clock` and `adopt`).
 *
 * A state is keyed by everything the saved machine depends on: the QEMU
 * command line with the per-sandbox parts left out (template image, kernel,
 * initramfs, accelerator and CPU model, RAM, vCPUs, the TSC rate on the
 * kernel line, the network card of a sandbox with egress and its addresses),
 * the workspace image's size, and the QEMU binary.
 *
 * Layout: `<cache>/boot-state/<key>/{vm-state, workspace.img, uses.json, boot-id, ready}`;
 * `ready` is written last, so a state without it is unfinished (its builder
 * died) and is never loaded.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SandboxCgroup } from "../common/cgroups.ts";
import { type QemuInput, qemuArgs } from "./qemu-args.ts";
import { VM_STATE_FILE } from "./vm-state.ts";

/** The empty workspace image the saved guest had mounted. */
const WORKSPACE_FILE = "workspace.img";

/** The saved guest's boot id, which every sandbox restored from the state shares. */
export const BOOT_ID_FILE = "boot-id";

/** Written last: the state is complete. */
const READY_FILE = "ready";

/** The cache files the saved machine was started from (JSON list of paths): when one is gone, so is the state. */
const USES_FILE = "uses.json";

/** A saved boot state's files. */
export interface BootState {
  /** The migration stream (QEMU's `-incoming`). */
  vmState: string;
  /** The workspace image to copy for each sandbox restored from it. */
  workspace: string;
}

/** The per-sandbox inputs of the command line, which the saved machine does not depend on. */
type PerSandbox = "workspaceImage" | "name" | "hostname" | "pids" | "qmpSocket" | "qmpFd";

/**
 * The key of the boot state for a machine: a digest of its command line
 * without the per-sandbox parts, the workspace image's size and the QEMU binary.
 */
export function bootStateKey(
  input: Omit<QemuInput, PerSandbox>,
  diskBytes: number,
  qemuBinary: string,
): string {
  const args = qemuArgs({ ...input, workspaceImage: "/workspace.img", pids: 1, qmpFd: 4 });
  let binary = qemuBinary;
  try {
    const s = statSync(qemuBinary);
    binary = `${qemuBinary}:${s.size}:${s.mtimeMs}`;
  } catch {}
  return createHash("sha256").update(JSON.stringify({ args, diskBytes, binary })).digest("hex").slice(0, 24);
}

/**
 * The sandbox id of the VM that process `pid` boots to save as the state `key` (its cgroup, its
 * QEMU's name): a process of its own per builder, so that two processes building one state never
 * clear each other's cgroup.
 */
export function builderId(key: string, pid = process.pid): string {
  return `kiln-boot-${key.slice(0, 12)}-${pid}`;
}

/** The directory of the boot state `key` in the microvm cache `cacheDir`. */
function stateDir(cacheDir: string, key: string): string {
  return join(cacheDir, "boot-state", key);
}

/** The complete boot state `key`, or undefined when there is none. */
export function findBootState(cacheDir: string, key: string): BootState | undefined {
  const dir = stateDir(cacheDir, key);
  if (!existsSync(join(dir, READY_FILE))) return undefined;
  return { vmState: join(dir, VM_STATE_FILE), workspace: join(dir, WORKSPACE_FILE) };
}

/** Deletes the boot state `key` (one that failed to load is built again). */
export function dropBootState(cacheDir: string, key: string): void {
  rmSync(stateDir(cacheDir, key), { recursive: true, force: true });
}

/** A place to build the boot state `key` in: removed by `discard`, moved into place by `commit`. */
export interface BootStateBuild {
  /** The builder's directory: the VM's state directory, and where `vm-state` is written. */
  dir: string;
  /** Where the migration stream goes. */
  vmState: string;
  /** Makes the state the one of `key`, its workspace image taken from `workspaceImage`; `bootId` is the guest's. */
  commit(workspaceImage: string, bootId: string): void;
  discard(): void;
}

/** True when a file the finished state `dir` was made from is gone (a newer agent's initramfs replaced it, say). */
function outdated(dir: string): boolean {
  try {
    const uses = JSON.parse(readFileSync(join(dir, USES_FILE), "utf8")) as string[];
    return uses.some((p) => !existsSync(p));
  } catch {
    return false;
  }
}

/**
 * Starts building the boot state `key` from the cache files `uses` (kernel, initramfs, template
 * image): a fresh directory beside the finished ones. Unfinished ones of dead processes, and
 * finished ones whose files are gone (no machine of theirs starts any more), are removed.
 */
export function beginBootState(cacheDir: string, key: string, uses: string[]): BootStateBuild {
  const root = join(cacheDir, "boot-state");
  for (const n of existsSync(root) ? readdirSync(root) : []) {
    const m = /^(.+)\.b(\d+)$/.exec(n);
    if (m && !existsSync(`/proc/${m[2]}`)) {
      // Its process died mid-build: its VM, if still there (stopped by the save, say), ends with its cgroup.
      try {
        new SandboxCgroup(builderId(m[1]!, Number(m[2]))).destroy();
      } catch {}
      rmSync(join(root, n), { recursive: true, force: true });
    } else if (!m && outdated(join(root, n))) rmSync(join(root, n), { recursive: true, force: true });
  }
  // Short: the builder's migration socket is in it (a Unix socket path has at most 107 bytes).
  const dir = join(root, `${key}.b${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  return {
    dir,
    vmState: join(dir, VM_STATE_FILE),
    commit(workspaceImage: string, bootId: string) {
      renameSync(workspaceImage, join(dir, WORKSPACE_FILE));
      for (const n of readdirSync(dir)) {
        if (n !== VM_STATE_FILE && n !== WORKSPACE_FILE)
          rmSync(join(dir, n), { recursive: true, force: true });
      }
      writeFileSync(join(dir, USES_FILE), JSON.stringify(uses));
      writeFileSync(join(dir, BOOT_ID_FILE), `${bootId}\n`);
      writeFileSync(join(dir, READY_FILE), "");
      const dest = stateDir(cacheDir, key);
      rmSync(dest, { recursive: true, force: true });
      renameSync(dir, dest);
    },
    discard() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
