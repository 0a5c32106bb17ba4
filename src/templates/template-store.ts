/**
 * The template store: read-only root filesystems for the real-binary tiers
 * (namespace, oci, gvisor), shared by every sandbox that uses them.
 *
 * Layout of the store root (see {@link defaultTemplateDir}):
 *   blobs/<hex>/rootfs/          the root filesystem
 *   blobs/<hex>/manifest.json    its {@link BlobManifest}
 *   names/<name>.json            `{ name, digest, createdAt }`: a name points at a blob
 *   tmp/<pid>-<random>/          staging of builds and imports in progress
 *   locks/<key>.lock             inter-process locks (pid inside)
 *
 * Blobs are content-addressed: `<hex>` is the sha256 of a debootstrap recipe
 * or of an image's config, so two names for the same content share one blob.
 * A blob appears by one rename of a complete staging directory (manifest
 * included), and a name by one rename of its file, so a reader never sees a
 * half-built template and a crash leaves only a `tmp/` entry that
 * {@link TemplateStore.prune} removes.
 */
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  AbortedError,
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  throwIfAborted,
} from "../core/errors.ts";
import { defaultDataDir } from "../core/kiln.ts";
import { removeTree, treeSize } from "./fs-util.ts";

/** Where a template came from. */
export type TemplateSource = "debootstrap" | "oci-import";

/** The parts of an image's config a tier uses when it runs the image. */
export interface ImageConfig {
  env: string[];
  cmd: string[];
  entrypoint: string[];
  workingDir: string;
  user: string;
  architecture?: string;
  os?: string;
  /** Tags the image was saved with (`docker save` only). */
  repoTags?: string[];
}

/** What a blob's `manifest.json` holds. */
export interface BlobManifest {
  /** `sha256:<hex>`; `<hex>` is the blob's directory name. */
  digest: string;
  source: TemplateSource;
  /** Packages asked for (debootstrap; empty for an import). */
  packages: string[];
  /** ISO time the blob was built. */
  createdAt: string;
  /** Apparent size of the root filesystem, bytes (hard links counted once). */
  sizeBytes: number;
  /** debootstrap: suite, variant, architecture, mirror and recipe version. */
  recipe?: { suite: string; variant: string; arch: string; mirror: string; version: number };
  /** oci-import: the image's config. */
  image?: ImageConfig;
}

/** A template's manifest: its blob's manifest and the name it was looked up by. */
export interface TemplateManifest extends BlobManifest {
  name: string;
}

/** A template as {@link TemplateStore.get} returns it. */
export interface Template extends TemplateManifest {
  /** Absolute path of the root filesystem on the host. Read-only by convention: never write into it. */
  rootfs: string;
}

interface NameRecord {
  name: string;
  digest: string;
  createdAt: string;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const HEX_RE = /^[0-9a-f]{64}$/;

/** Checks a template name (the same rule as `Kiln.create`'s `template`). */
export function checkTemplateName(name: unknown): string {
  if (typeof name !== "string" || !NAME_RE.test(name))
    throw new InvalidArgumentError(`invalid template name: ${JSON.stringify(name)} (letters, digits, . _ -)`);
  return name;
}

function hexOf(digest: string): string {
  const hex = digest.startsWith("sha256:") ? digest.slice(7) : digest;
  if (!HEX_RE.test(hex)) throw new InvalidArgumentError(`invalid digest: ${JSON.stringify(digest)}`);
  return hex;
}

/**
 * The default store root: `$KILN_TEMPLATE_DIR`, else `<dataDir>/templates`.
 * A template is large (the default one is a few hundred MB) and slow to build
 * (a minute or more from the network), and it depends only on its recipe, not
 * on any sandbox. So pointing `KILN_TEMPLATE_DIR` at one shared directory
 * (e.g. `/var/cache/kiln/templates`) lets every data directory on a machine,
 * every test run and every CI job reuse the same build: the default template
 * is built once per machine, not once per test.
 */
export function defaultTemplateDir(dataDir?: string): string {
  const env = process.env.KILN_TEMPLATE_DIR;
  if (env) return resolve(env);
  return join(resolve(dataDir ?? defaultDataDir()), "templates");
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A content-addressed store of root filesystems in one directory. */
export class TemplateStore {
  /** Absolute store root. */
  readonly root: string;

  /** Opens (creating if needed) a store; default root: {@link defaultTemplateDir}. */
  constructor(root?: string) {
    this.root = resolve(root ?? defaultTemplateDir());
    for (const d of ["blobs", "names", "tmp", "locks"]) mkdirSync(join(this.root, d), { recursive: true });
  }

  private namePath(name: string): string {
    return join(this.root, "names", `${checkTemplateName(name)}.json`);
  }

  /** The digest a name points at now, or undefined (a quick, synchronous read of one small file). */
  digestOf(name: string): string | undefined {
    try {
      return (JSON.parse(readFileSync(this.namePath(name), "utf8")) as NameRecord).digest;
    } catch {
      return undefined;
    }
  }

  /** Host directory of a blob. */
  blobDir(digest: string): string {
    return join(this.root, "blobs", hexOf(digest));
  }

  private async readName(name: string): Promise<NameRecord | undefined> {
    try {
      const rec = JSON.parse(await readFile(this.namePath(name), "utf8")) as NameRecord;
      return rec;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw e;
    }
  }

  /** The manifest of a blob, or undefined when the store does not hold it. */
  async blob(digest: string): Promise<BlobManifest | undefined> {
    try {
      return JSON.parse(await readFile(join(this.blobDir(digest), "manifest.json"), "utf8")) as BlobManifest;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw e;
    }
  }

  private template(name: string, m: BlobManifest): Template {
    return { name, ...m, rootfs: join(this.blobDir(m.digest), "rootfs") };
  }

  /** True when a template of this name exists. */
  async has(name: string): Promise<boolean> {
    const rec = await this.readName(name);
    return rec !== undefined && (await this.blob(rec.digest)) !== undefined;
  }

  /** A template by name. @throws NotFoundError, InvalidArgumentError (bad name) */
  async get(name: string): Promise<Template> {
    const rec = await this.readName(name);
    if (!rec) throw new NotFoundError(`template not found: ${name}`, { resource: "template" });
    const m = await this.blob(rec.digest);
    if (!m)
      throw new NotFoundError(`template ${name} points at a missing blob ${rec.digest}`, {
        resource: "template",
      });
    return this.template(name, m);
  }

  /** The absolute root filesystem path of a template. @throws NotFoundError */
  async resolve(name: string): Promise<string> {
    return (await this.get(name)).rootfs;
  }

  /** Every named template, sorted by name. Names whose blob is missing are left out. */
  async list(): Promise<Template[]> {
    const out: Template[] = [];
    for (const f of (await readdir(join(this.root, "names"))).sort()) {
      if (!f.endsWith(".json") || f.startsWith(".")) continue;
      const name = f.slice(0, -5);
      if (!NAME_RE.test(name)) continue;
      const rec = await this.readName(name);
      const m = rec && (await this.blob(rec.digest));
      if (m) out.push(this.template(name, m));
    }
    return out;
  }

  /**
   * Points `name` at a blob the store holds (an alias, or a rebuilt template).
   * @throws NotFoundError when the blob is missing; ConflictError when the name points elsewhere and `replace` is not set
   */
  async tag(name: string, digest: string, options: { replace?: boolean } = {}): Promise<Template> {
    checkTemplateName(name);
    return this.withLock("names", async () => {
      const m = await this.blob(digest);
      if (!m) throw new NotFoundError(`no template blob ${digest}`);
      const old = await this.readName(name);
      if (old && old.digest !== m.digest && !options.replace)
        throw new ConflictError(
          `template ${name} exists with different content (${old.digest.slice(0, 19)})`,
        );
      if (old?.digest !== m.digest) {
        await this.writeName({ name, digest: m.digest, createdAt: new Date().toISOString() });
        if (old) await this.gcBlob(old.digest);
      }
      return this.template(name, m);
    });
  }

  /**
   * Throws the ConflictError {@link tag} would throw, before a build spends minutes on content the name cannot take.
   */
  async checkTaggable(name: string, digest: string, options: { replace?: boolean } = {}): Promise<void> {
    const old = await this.readName(checkTemplateName(name));
    if (old && hexOf(old.digest) !== hexOf(digest) && !options.replace)
      throw new ConflictError(
        `template ${name} exists with different content (${old.digest.slice(0, 19)}); remove it or replace it`,
      );
  }

  private async writeName(rec: NameRecord): Promise<void> {
    const tmp = join(this.root, "names", `.${rec.name}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
    await writeFile(tmp, `${JSON.stringify(rec, null, 2)}\n`);
    await rename(tmp, this.namePath(rec.name));
  }

  /**
   * Removes a name, and its blob when no other name points at it.
   * @throws NotFoundError
   */
  async remove(name: string): Promise<{ name: string; digest: string; blobRemoved: boolean }> {
    checkTemplateName(name);
    return this.withLock("names", async () => {
      const rec = await this.readName(name);
      if (!rec) throw new NotFoundError(`template not found: ${name}`, { resource: "template" });
      await rm(this.namePath(name), { force: true });
      const blobRemoved = await this.gcBlob(rec.digest);
      return { name, digest: rec.digest, blobRemoved };
    });
  }

  /** Digests some name points at. */
  private async referenced(): Promise<Set<string>> {
    const refs = new Set<string>();
    for (const f of await readdir(join(this.root, "names"))) {
      if (!f.endsWith(".json") || f.startsWith(".")) continue;
      const rec = await this.readName(f.slice(0, -5)).catch(() => undefined);
      if (rec) refs.add(hexOf(rec.digest));
    }
    return refs;
  }

  /** Removes a blob if no name points at it. Call under the "names" lock. */
  private async gcBlob(digest: string): Promise<boolean> {
    const hex = hexOf(digest);
    if ((await this.referenced()).has(hex)) return false;
    const dir = this.blobDir(hex);
    // Out of blobs/ in one rename first, so no reader sees a half-removed template.
    const trash = this.tmpPath("gc");
    try {
      await rename(dir, trash);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw e;
    }
    await removeTree(trash);
    return true;
  }

  /**
   * Removes blobs no name points at and staging directories left by dead
   * processes. Returns what it removed.
   */
  async prune(): Promise<{ blobs: string[]; staging: string[] }> {
    const removed = { blobs: [] as string[], staging: [] as string[] };
    await this.withLock("names", async () => {
      const refs = await this.referenced();
      for (const hex of await readdir(join(this.root, "blobs"))) {
        if (HEX_RE.test(hex) && !refs.has(hex) && (await this.gcBlob(hex)))
          removed.blobs.push(`sha256:${hex}`);
      }
    });
    for (const d of await readdir(join(this.root, "tmp"))) {
      const pid = Number(d.split("-")[0]);
      if (pid === process.pid || pidAlive(pid)) continue;
      await removeTree(join(this.root, "tmp", d));
      removed.staging.push(d);
    }
    return removed;
  }

  private tmpPath(tag: string): string {
    return join(this.root, "tmp", `${process.pid}-${tag}-${randomBytes(6).toString("hex")}`);
  }

  /** A fresh staging directory under `tmp/` (same filesystem as `blobs/`, so commit is a rename). */
  async stagingDir(tag: string): Promise<string> {
    const dir = this.tmpPath(tag);
    await mkdir(dir, { mode: 0o755 });
    return dir;
  }

  /**
   * Moves a finished staging directory (holding `rootfs/`) into `blobs/` as
   * `blob`, and points `name` at it. When the blob already exists (another
   * process built it meanwhile) the staging directory is discarded. Sizes the
   * rootfs and stamps `createdAt` itself.
   */
  async commit(
    name: string,
    staging: string,
    blob: Omit<BlobManifest, "sizeBytes" | "createdAt">,
    options: { replace?: boolean } = {},
  ): Promise<Template> {
    checkTemplateName(name);
    const hex = hexOf(blob.digest);
    if (!(await this.blob(hex))) {
      const full: BlobManifest = {
        ...blob,
        digest: `sha256:${hex}`,
        createdAt: new Date().toISOString(),
        sizeBytes: await treeSize(join(staging, "rootfs")),
      };
      await writeFile(join(staging, "manifest.json"), `${JSON.stringify(full, null, 2)}\n`);
      try {
        await rename(staging, this.blobDir(hex));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== "EEXIST" && code !== "ENOTEMPTY") throw e;
      }
    }
    await removeTree(staging);
    return this.tag(name, hex, options);
  }

  /**
   * Runs `fn` holding an inter-process lock named `key` (a file under
   * `locks/` with the holder's pid; a lock whose holder died is taken over).
   * Waits while another live process holds it.
   */
  async withLock<T>(key: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const path = join(this.root, "locks", `${key}.lock`);
    for (;;) {
      throwIfAborted(signal);
      try {
        const fd = openSync(path, "wx");
        writeSync(fd, String(process.pid));
        closeSync(fd);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      let holder = Number.NaN;
      try {
        holder = Number(readFileSync(path, "utf8"));
      } catch {}
      if (holder === 0 || (!Number.isNaN(holder) && !pidAlive(holder))) {
        // Stale: its holder died. Whoever unlinks it first retries first; harmless either way.
        try {
          unlinkSync(path);
        } catch {}
        continue;
      }
      try {
        await sleep(200, undefined, signal ? { signal } : {});
      } catch {
        throw new AbortedError(undefined, { cause: signal?.reason });
      }
    }
    try {
      return await fn();
    } finally {
      try {
        unlinkSync(path);
      } catch {}
    }
  }
}
