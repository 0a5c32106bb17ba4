/**
 * Running an OCI runtime (runc for `oci`, runsc for `gvisor`) on a bundle that oci-bundle.ts wrote:
 * the agent's launcher (`run`), `delete`, the probe's trial container, the runtime's version, and
 * the clean-up of cgroup directories a runtime leaves behind.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Launcher } from "./agent-instance.ts";
import { type OciBundleInput, writeOciBundle } from "./oci-bundle.ts";

const MIB = 1024 * 1024;

import { agentDirIn } from "./oci-rootless.ts";
import { AGENT_DIR } from "./templates.ts";

/**
 * An OCI runtime's command line: `<binary> --root <root> <flags...> <subcommand>`.
 * `root` holds the runtime's container records (Kiln keeps its own, under its data directory).
 */
export interface OciRuntime {
  /** Absolute path of `runc` or `runsc`. */
  binary: string;
  /** The runtime's state directory. */
  root: string;
  /** More global flags (e.g. `--platform=ptrace`). */
  flags: string[];
  /** A command line that `run` is started under (its last word runs the runtime with its arguments). */
  runUnder?: readonly string[];
}

function globalArgs(rt: OciRuntime): string[] {
  return ["--root", rt.root, ...rt.flags];
}

/** The container id of sandbox `id` in the runtime's records. */
export function containerId(id: string): string {
  return `kiln-${id}`;
}

/**
 * A {@link Launcher} that runs the bundle in the foreground (`<runtime> run`,
 * not detached, no terminal): the runtime passes its stdio pipes straight to
 * the agent. `cleanup` deletes the container record and whatever cgroup
 * directories the runtime made in controllers Kiln itself does not manage.
 */
export function ociLauncher(
  rt: OciRuntime,
  bundle: string,
  id: string,
  cgroupsPath: string,
  restoreFrom?: string,
  perRun?: PerRun,
): Launcher {
  let image = restoreFrom;
  return {
    async start() {
      // The first start restores the checkpoint in `restoreFrom`, when given (the runtime hands
      // its own stdio to the restored agent); any later one runs the bundle afresh.
      const restore = image;
      image = undefined;
      let run: ReturnType<PerRun["start"]> | undefined;
      if (perRun) {
        mkdirSync(rt.root, { recursive: true, mode: 0o700 });
        run = perRun.start([rt.root, bundle, ...(restore === undefined ? [] : [restore])]);
      }
      const [root, dir, from] = run?.paths ?? [rt.root, bundle, restore];
      const sub = from === undefined ? ["run"] : ["restore", "--image-path", from];
      const flags = [...rt.flags, ...(run?.flags ?? [])];
      const args = [...globalArgs({ ...rt, root: root!, flags }), ...sub, "--bundle", dir!, containerId(id)];
      const [file, ...pre] = [...(run?.prefix ?? []), ...(rt.runUnder ?? []), rt.binary];
      try {
        return spawn(file!, [...pre, ...args], { stdio: ["pipe", "pipe", "pipe"] });
      } catch (e) {
        perRun?.end();
        throw e;
      }
    },
    // The container's first process (the agent), from the runtime's state.
    async sandboxPid() {
      const r = await runClosed(rt.binary, [...globalArgs(rt), "state", containerId(id)], 30_000);
      try {
        const pid = Number(JSON.parse(r.stdout).pid);
        return pid > 0 ? pid : undefined;
      } catch {
        return undefined;
      }
    },
    async cleanup() {
      try {
        await ociDelete(rt, id);
      } finally {
        removeCgroupDirs(cgroupsPath);
        perRun?.end();
      }
    },
  };
}

/**
 * What each run of a container needs made first and released after (the oci tier's id range:
 * claimed, the bundle written for it, released once the container is gone).
 */
export interface PerRun {
  /**
   * Prepares a run that uses the host paths `paths` (the runtime's state directory, the bundle,
   * a checkpoint); returns a command line the runtime is started under (its last word runs it)
   * and where, under it, each of those paths is (and global flags the runtime needs there).
   */
  start(paths: string[]): { prefix: readonly string[]; paths: string[]; flags?: readonly string[] };
  /** Releases what `start` took. Idempotent. */
  end(): void;
}

/**
 * Checkpoints the running container of sandbox `id` into the directory
 * `imageDir` (`<runtime> checkpoint`); the container then exits.
 * @throws Error with the runtime's message
 */
export async function ociCheckpoint(rt: OciRuntime, id: string, imageDir: string): Promise<void> {
  const r = await runClosed(
    rt.binary,
    [...globalArgs(rt), "checkpoint", "--image-path", imageDir, containerId(id)],
    300_000,
  );
  if (r.code !== 0) throw new Error(`${rt.binary} checkpoint ${containerId(id)}: ${r.stderr.trim()}`);
}

/** Output of a finished program run with closed stdin. */
interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runClosed(file: string, args: string[], timeoutMs: number): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout = (stdout + d.toString("utf8")).slice(-65_536);
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString("utf8")).slice(-65_536);
    });
    child.on("error", (e) => resolve({ code: null, stdout, stderr: stderr || e.message }));
    child.on("close", (code, signal) =>
      resolve({ code, stdout, stderr: stderr || (signal ? `killed by ${signal} (timeout?)` : "") }),
    );
  });
}

/** Deletes the container of sandbox `id` (killing what is left of it). A missing container is fine. */
export async function ociDelete(rt: OciRuntime, id: string): Promise<void> {
  if (!existsSync(rt.root)) return;
  const r = await runClosed(rt.binary, [...globalArgs(rt), "delete", "--force", containerId(id)], 30_000);
  if (r.code === 0) return;
  if (/does not exist|not exist|no such file|not found/i.test(r.stderr)) return;
  throw new Error(`${rt.binary} delete ${containerId(id)}: ${r.stderr.trim()}`);
}

/**
 * Removes the empty cgroup directories `relPath` in every mounted v1
 * hierarchy (runc and runsc make one in each, not only in Kiln's memory, pids
 * and cpu). Busy or missing ones are left alone; the processes in them are
 * killed by {@link SandboxCgroup.destroy}.
 */
export function removeCgroupDirs(relPath: string): void {
  const root = "/sys/fs/cgroup";
  if (!relPath.startsWith("/kiln/") || relPath.includes("..")) return;
  let entries: string[] = [];
  try {
    entries = readdirSync(root);
  } catch {
    return;
  }
  for (const e of entries) {
    try {
      rmdirSync(join(root, e, relPath));
    } catch {
      // Not there, or still busy.
    }
  }
}

/**
 * Runs a throwaway container with the same kind of bundle a sandbox gets (its
 * mounts, namespaces, seccomp policy and cgroup limits) and the agent as its
 * program, on an empty root filesystem. Returns why it failed, or undefined
 * when the agent started and greeted.
 */
export async function ociTrial(
  rt: Omit<OciRuntime, "root">,
  agent: string,
  timeoutMs: number,
  extra: Pick<OciBundleInput, "pidsInside" | "seccompOmit" | "selfMap"> = {},
): Promise<string | undefined> {
  const dir = mkdtempSync(join(tmpdir(), "kiln-oci-probe-"));
  const trial: OciRuntime = { ...rt, root: join(dir, "state") };
  const id = `probe-${process.pid}-${randomBytes(4).toString("hex")}`;
  const cgroupsPath = `/kiln/${id}`;
  try {
    const rootfs = join(dir, "rootfs");
    for (const d of ["proc", "dev", "sys", "tmp", "workspace", AGENT_DIR.slice(1)]) {
      mkdirSync(join(rootfs, d), { recursive: true });
    }
    mkdirSync(join(dir, "workspace"));
    // As an ordinary user (`selfMap`): no cgroup (the runtime is told to ignore them), the agent in a directory of its own.
    const bundle = writeOciBundle(join(dir, "bundle"), {
      rootfs,
      workspace: join(dir, "workspace"),
      agent,
      limits: { memoryBytes: 256 * MIB, pids: 64, cpuCount: 1, diskBytes: 8 * MIB },
      ...(extra.selfMap ? { agentDir: agentDirIn(join(dir, "agent"), agent) } : { cgroupsPath }),
      ...extra,
    });
    const r = await runClosed(
      trial.binary,
      [...globalArgs(trial), "run", "--bundle", bundle, containerId(id)],
      timeoutMs,
    );
    if (r.code === 0 && r.stdout.includes('"protocol"')) return undefined;
    const why =
      r.stderr.trim().split("\n").slice(-3).join(" | ") || `exit ${r.code}, no greeting from the agent`;
    return `a trial container did not run: ${why}`;
  } finally {
    await ociDelete(trial, id).catch(() => {});
    removeCgroupDirs(cgroupsPath);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** First line of `<binary> --version`, e.g. `runc version 1.1.5+ds1`. */
export async function runtimeVersion(binary: string): Promise<string> {
  const r = await runClosed(binary, ["--version"], 10_000);
  return r.stdout.split("\n")[0]?.trim() || binary;
}
