/**
 * What a microvm sandbox boots: Debian's cloud kernel and Kiln's initramfs
 * (scripts/build-microvm-guest.sh fetches and builds them into a cache beside
 * the templates), and the template's root filesystem as an ext4 image, made
 * once per template digest and shared read-only by every VM.
 */
import { spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  truncateSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { defaultTemplateDir } from "../../templates/template-store.ts";
import { REPO_ROOT, run, which } from "../common/host.ts";

/** The kernel and initramfs of the guest. */
export interface GuestBoot {
  kernel: string;
  initramfs: string;
  /** The guest kernel's release, e.g. `6.1.0-57-cloud-amd64`. */
  version: string;
}

/** The microvm cache of a data directory: `<template dir>/microvm`. */
export function microvmCacheDir(dataDir?: string): string {
  return join(defaultTemplateDir(dataDir), "microvm");
}

const building = new Map<string, Promise<GuestBoot>>();

/**
 * The guest's kernel and initramfs for `agent`, built into `cacheDir` on
 * first use (the kernel is fetched once with apt; later calls only look).
 * @throws Error with the build script's message when it cannot build them
 */
export function guestBoot(cacheDir: string, agent: string): Promise<GuestBoot> {
  const key = `${cacheDir}\0${agent}`;
  let b = building.get(key);
  if (!b) {
    b = buildGuest(cacheDir, agent);
    building.set(key, b);
    b.catch(() => building.delete(key));
  }
  return b;
}

async function buildGuest(cacheDir: string, agent: string): Promise<GuestBoot> {
  const script = join(REPO_ROOT, "scripts", "build-microvm-guest.sh");
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn("bash", [script, cacheDir, agent], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString("utf8");
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString("utf8");
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(stderr.trim() || `exit code ${code}`)),
    );
  });
  const field = (name: string): string => {
    const line = out.split("\n").find((l) => l.startsWith(`${name} `));
    if (!line) throw new Error(`build-microvm-guest.sh printed no ${name}`);
    return line.slice(name.length + 1).trim();
  };
  return { kernel: field("kernel"), initramfs: field("initramfs"), version: field("version") };
}

/** Bytes of the files below `dir` (apparent sizes), as `du` counts them. */
async function treeBytes(dir: string): Promise<number> {
  const { stdout } = await run("du", ["-sb", "--", dir], { timeoutMs: 300_000 });
  return Number(stdout.split("\t")[0]);
}

const imaging = new Map<string, Promise<string>>();

/**
 * The read-only ext4 image of a template's rootfs directory, made on first
 * use into `<cacheDir>/rootfs/<blob>.ext4` (`<blob>` is the template's
 * content digest, so a rebuilt template gets a new image). The image has no
 * journal (it is never written) and room for nothing more than the files.
 */
export function rootfsImage(cacheDir: string, rootfs: string): Promise<string> {
  const blob = basename(dirname(rootfs));
  const dest = join(cacheDir, "rootfs", `${blob}.ext4`);
  if (existsSync(dest)) return Promise.resolve(dest);
  let p = imaging.get(dest);
  if (!p) {
    p = makeRootfsImage(rootfs, dest).finally(() => imaging.delete(dest));
    imaging.set(dest, p);
  }
  return p;
}

async function makeRootfsImage(rootfs: string, dest: string): Promise<string> {
  mkdirSync(dirname(dest), { recursive: true });
  // Another process's unfinished image (it died) is never renamed into place: sweep old ones.
  for (const n of readdirSync(dirname(dest))) {
    if (n.includes(".tmp-") && !existsSync(`/proc/${n.split(".tmp-")[1]}`))
      rmSync(join(dirname(dest), n), { force: true });
  }
  const tmp = `${dest}.tmp-${process.pid}`;
  const bytes = await treeBytes(rootfs);
  // Room for ext4's own structures (inodes, directories, the block groups' tables).
  const size = Math.ceil((bytes * 1.25 + 64 * 1024 * 1024) / (1024 * 1024)) * 1024 * 1024;
  rmSync(tmp, { force: true });
  closeSync(openSync(tmp, "w"));
  truncateSync(tmp, size);
  try {
    await run(
      which("mkfs.ext4") ?? "mkfs.ext4",
      ["-q", "-F", "-O", "^has_journal", "-m", "0", "-E", "root_owner=0:0", "-d", rootfs, tmp],
      { timeoutMs: 600_000 },
    );
    renameSync(tmp, dest);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  return dest;
}
