/**
 * Sandbox state per tier: snapshot, fork of 10, pause and resume of a sandbox
 * with a 10 MB workspace, each beside the raw tool doing the same in the same
 * run: a file copy of the workspace (the SQLite file on the virtual tier, the
 * sparse ext4 image on the real tiers), and on gVisor `runsc checkpoint` /
 * `runsc restore` of a container like the sandbox's. Where pause keeps memory,
 * also the pause image's size beside the sandbox's memory limit (on microvm:
 * QEMU's migration stream of a guest with that much RAM).
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kiln, type TierName } from "../src/index.ts";
import { step } from "./progress.ts";
import { quantile, type Row } from "./stats.ts";

const RUNS = 5;
const MB10 = 10 * 1024 * 1024;
const p50 = (xs: number[]) => quantile(xs, 0.5);

async function ms(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** `cp` of `file` `count` times (sparse, as Kiln copies), in ms. */
function copyMs(file: string, dir: string, count: number): number {
  const t = performance.now();
  for (let i = 0; i < count; i++) execFileSync("cp", ["--sparse=always", file, join(dir, `copy-${i}`)]);
  const d = performance.now() - t;
  for (let i = 0; i < count; i++) rmSync(join(dir, `copy-${i}`), { force: true });
  return d;
}

/** Drops the files under `dir` (or the file `dir`) from the page cache, so that the next read is from disk. */
export function dropFromPageCache(path: string): void {
  const files = statSync(path).isDirectory() ? readdirSync(path).map((n) => join(path, n)) : [path];
  execFileSync("sync");
  // GNU dd: with `iflag=nocache count=0` it only advises the kernel to drop the whole file's cache.
  for (const f of files) execFileSync("dd", [`if=${f}`, "iflag=nocache", "count=0", "status=none"]);
}

/** Bytes of the files directly in `dir`. */
function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

/** One frame of the agent protocol (docs/protocol.md). */
function frame(type: number, id: number, json: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(json));
  const head = Buffer.alloc(9);
  head.writeUInt32BE(5 + payload.length, 0);
  head.writeUInt8(type, 4);
  head.writeUInt32BE(id, 5);
  return Buffer.concat([head, payload]);
}

/** `runsc delete --force` of a sandbox's container, tried again while runsc's own deadline runs out (a loaded machine). */
function deleteContainer(flags: string[], id: string): void {
  for (let i = 0; ; i++) {
    try {
      execFileSync("runsc", [...flags, "delete", "--force", `kiln-${id}`], { stdio: "pipe" });
      return;
    } catch (e) {
      if (i >= 4) throw e;
      execFileSync("sleep", ["1"]);
    }
  }
}

/**
 * Raw gVisor: `runsc checkpoint` of a sandbox's container, then `runsc restore` until its agent
 * answers a ping; `cold`: with the image dropped from the page cache between the two.
 */
export async function rawRunsc(
  dataDir: string,
  id: string,
  cold = false,
): Promise<{ checkpointMs: number; restoreMs: number }> {
  const root = join(dataDir, "runsc");
  const flags = ["--root", root, "--network=none", "--platform=ptrace", "--oci-seccomp"];
  const image = mkdtempSync(join(tmpdir(), "kiln-bench-ckpt-"));
  try {
    const checkpointMs = await ms(async () =>
      execFileSync("runsc", [...flags, "checkpoint", "--image-path", image, `kiln-${id}`]),
    );
    deleteContainer(flags, id);
    if (cold) dropFromPageCache(image);
    const bundle = join(dataDir, "sandboxes", id, "oci-bundle");
    const t = performance.now();
    const child = spawn(
      "runsc",
      [...flags, "restore", "--image-path", image, "--bundle", bundle, `kiln-${id}`],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        if (d.includes('"version"')) resolve();
      });
      child.once("exit", () => reject(new Error(`runsc restore exited: ${stderr}`)));
      child.stdin.write(frame(0x02, 0x7fff0001, { op: "ping" }));
    });
    const restoreMs = performance.now() - t;
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    deleteContainer(flags, id);
    return { checkpointMs, restoreMs };
  } finally {
    rmSync(image, { recursive: true, force: true });
  }
}

/** The state rows of every tier that runs here. */
export async function benchState(): Promise<{ tier: TierName; rows: Row[] }[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-state-"));
  const scratch = mkdtempSync(join(tmpdir(), "kiln-bench-copies-"));
  const kiln = await Kiln.open({ dataDir });
  const out: { tier: TierName; rows: Row[] }[] = [];
  try {
    const only = process.env.KILN_BENCH_TIERS?.split(",");
    for (const status of await kiln.doctor()) {
      if (!status.available || (only && !only.includes(status.tier))) continue;
      const tier = status.tier;
      step(`${tier} tier`);
      const caps = (await kiln.backend(tier)).capabilities;
      const sb = await kiln.create({ tier });
      await sb.files.write("/workspace/data.bin", randomBytes(MB10));
      if (caps.realBinaries) await sb.commands.run("nohup sleep 100000 >/dev/null 2>&1 &");
      // The file a raw copy copies: what Kiln's snapshot copies.
      const file = caps.realBinaries
        ? join(dataDir, "sandboxes", sb.id, "ws", "workspace.img")
        : join(dataDir, "sandboxes", sb.id, "workspace.db");
      const snap: number[] = [];
      const raw: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        let id = "";
        snap.push(await ms(async () => (id = (await sb.snapshot()).id)));
        await kiln.removeSnapshot(id);
        raw.push(copyMs(file, scratch, 1));
      }
      const rows: Row[] = [
        {
          metric: "snapshot (10 MB workspace), p50",
          kiln: p50(snap),
          raw: p50(raw),
          unit: "ms",
          rawLabel: "`cp --sparse=always` of the workspace file",
        },
      ];
      let forks: Awaited<ReturnType<typeof sb.fork>> = [];
      const forkMs = await ms(async () => (forks = await sb.fork(10)));
      rows.push({
        metric: "fork of 10 (ready to run)",
        kiln: forkMs,
        raw: copyMs(file, scratch, 10),
        unit: "ms",
        rawLabel: "10 copies of the workspace file",
        ...(caps.realBinaries ? { note: "Kiln also starts 10 runtimes" } : {}),
      });
      for (const f of forks) await f.kill();
      const pause: number[] = [];
      const resume: number[] = [];
      const imageMiB: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        await sb.commands.run("true");
        pause.push(await ms(() => sb.pause()));
        if (caps.pause === "memory")
          imageMiB.push(dirBytes(join(dataDir, "sandboxes", sb.id, "pause")) / 1024 / 1024);
        resume.push(await ms(() => sb.resume()));
      }
      let rawPause = Number.NaN;
      let rawResume = Number.NaN;
      const runsc = tier === "gvisor";
      if (runsc) {
        const probe = await kiln.create({ tier });
        await probe.commands.run("nohup sleep 100000 >/dev/null 2>&1 &");
        const r = await rawRunsc(dataDir, probe.id);
        rawPause = r.checkpointMs;
        rawResume = r.restoreMs;
        await probe.kill().catch(() => {});
      }
      const what = caps.pause === "memory" ? "memory and processes" : "files; processes end";
      rows.push(
        {
          metric: `pause (${what}), p50`,
          kiln: p50(pause),
          raw: rawPause,
          unit: "ms",
          rawLabel: runsc ? "`runsc checkpoint`" : "no raw equivalent measured",
        },
        {
          metric: "resume, p50",
          kiln: p50(resume),
          raw: rawResume,
          unit: "ms",
          rawLabel: runsc ? "`runsc restore` until the agent answers" : "no raw equivalent measured",
        },
      );
      if (caps.pause === "memory") {
        rows.push({
          metric: "pause image (memory kept), p50",
          kiln: p50(imageMiB),
          raw: (await sb.info()).limits.memoryBytes / 1024 / 1024,
          unit: "MiB",
          rawLabel: "the sandbox's memory limit",
        });
      }
      await sb.kill();
      out.push({ tier, rows });
    }
  } finally {
    await kiln.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  }
  return out;
}

/** Fork of 10 of a 1 GiB namespace workspace holding 512 MB, in `dataDir`: Kiln, and 10 `cp` of its image. */
async function forkOfLarge(dataDir: string): Promise<{ kiln: number; raw: number }> {
  const kiln = await Kiln.open({ dataDir });
  try {
    const sb = await kiln.create({ tier: "namespace", limits: { diskBytes: 1024 ** 3 } });
    const w = await sb.commands.run("head -c 512M /dev/urandom > /workspace/big && sync", {
      timeoutMs: 600_000,
    });
    if (w.exitCode !== 0) throw new Error(`writing the workspace failed: ${w.stderr}`);
    let forks: Awaited<ReturnType<typeof sb.fork>> = [];
    const forkMs = await ms(async () => (forks = await sb.fork(10)));
    for (const f of forks) await f.kill();
    const image = join(dataDir, "sandboxes", sb.id, "ws", "workspace.img");
    const t = performance.now();
    for (let i = 0; i < 10; i++)
      execFileSync("cp", ["--sparse=always", "--reflink=auto", image, join(dataDir, `copy-${i}`)]);
    const raw = performance.now() - t;
    for (let i = 0; i < 10; i++) rmSync(join(dataDir, `copy-${i}`), { force: true });
    await sb.kill();
    return { kiln: forkMs, raw };
  } finally {
    await kiln.close();
  }
}

/**
 * Where fork's copies go (docs/architecture.md, "Copy-on-write, measured"): fork of 10 of a 1 GiB
 * namespace workspace holding 512 MB with the data directory on the temporary directory's
 * filesystem (ext4 here: sparse copies), then on XFS with reflinks in a loop image (when
 * `mkfs.xfs` is installed and this process is root). Empty when the namespace tier cannot run.
 */
export async function benchForkStorage(): Promise<Row[]> {
  const probe = mkdtempSync(join(tmpdir(), "kiln-bench-probe-"));
  const k = await Kiln.open({ dataDir: probe });
  const ns = (await k.doctor()).find((s) => s.tier === "namespace");
  await k.close();
  rmSync(probe, { recursive: true, force: true });
  if (!ns?.available) return [];
  const rows: Row[] = [];
  const plain = mkdtempSync(join(tmpdir(), "kiln-bench-fork-"));
  try {
    const fsType = execFileSync("df", ["--output=fstype", plain]).toString().trim().split("\n").at(-1);
    const r = await forkOfLarge(plain);
    rows.push({
      metric: `fork of 10, 1 GiB workspace with 512 MB written, data directory on ${fsType}`,
      ...r,
      unit: "ms",
      rawLabel: "10 `cp --sparse=always --reflink=auto` of the image",
      note: "Kiln also starts 10 runtimes",
    });
  } finally {
    rmSync(plain, { recursive: true, force: true });
  }
  let mkfs = true;
  try {
    execFileSync("mkfs.xfs", ["-V"], { stdio: "ignore" });
  } catch {
    mkfs = false;
  }
  if (!mkfs || process.getuid?.() !== 0) return rows;
  const base = mkdtempSync(join(tmpdir(), "kiln-bench-xfs-"));
  const image = join(base, "xfs.img");
  const mnt = join(base, "mnt");
  execFileSync("mkdir", [mnt]);
  execFileSync("truncate", ["-s", "8G", image]);
  execFileSync("mkfs.xfs", ["-q", "-m", "reflink=1", image]);
  execFileSync("mount", ["-o", "loop", image, mnt]);
  try {
    const r = await forkOfLarge(join(mnt, "data"));
    rows.push({
      metric: "fork of 10, 1 GiB workspace with 512 MB written, data directory on XFS (reflinks, loop image)",
      ...r,
      unit: "ms",
      rawLabel: "10 `cp --sparse=always --reflink=auto` of the image",
      note: "Kiln also starts 10 runtimes",
    });
  } finally {
    execFileSync("umount", ["-l", mnt]);
    rmSync(base, { recursive: true, force: true });
  }
  return rows;
}

if (import.meta.main) {
  const { markdownTable } = await import("./stats.ts");
  for (const { tier, rows } of await benchState())
    process.stdout.write(`${markdownTable(`state: ${tier}`, rows)}\n\n`);
  const storage = await benchForkStorage();
  if (storage.length > 0)
    process.stdout.write(`${markdownTable("fork storage: namespace tier", storage)}\n\n`);
}
