/**
 * Named persistent volumes: a directory on the host per volume
 * (`volumes/<vol_id>/data`), recorded in kiln.db, that outlives every
 * sandbox and is bind-mounted (nosuid, nodev) at a path under `/mnt` of the
 * sandboxes created with it. A sandbox's deletion, pause, snapshot or fork
 * never touches it: snapshots hold the workspace only, and forks mount the
 * same volumes as their parent.
 *
 * Why a directory and not an ext4 image per volume: an image mounted by two
 * sandboxes at once (two kernels' worth of ext4 state on one block device)
 * corrupts it; one directory shared by bind mounts is one filesystem, whose
 * kernel serialises concurrent writers. A symlink planted in a volume
 * resolves inside the sandbox that follows it (its own mount namespace), so
 * it cannot reach another sandbox's files; Kiln's own host-side access to a
 * volume (`volume-fs.ts`) never follows a symlink.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join, posix } from "node:path";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { ConflictError, InvalidArgumentError, NotFoundError } from "./errors.ts";
import { StatementCache } from "./sqlite.ts";

/** A volume as listed. */
export interface VolumeInfo {
  /** Volume id, `vol_` followed by 20 lowercase letters and digits. */
  id: string;
  /** Name, unique per owner: 1–63 of `[A-Za-z0-9._-]`, starting with a letter or digit. */
  name: string;
  /** Labels given at creation (the server's ownership label among them). */
  metadata: Record<string, string>;
  /** Creation time, ISO 8601. */
  createdAt: string;
}

/** A volume mounted into a sandbox, as its record keeps it. */
export interface VolumeMount {
  /** The volume's id. */
  id: string;
  /** The volume's name. */
  name: string;
  /** Absolute path inside the sandbox, under `/mnt`. */
  path: string;
}

/** What `create({ volumes })` takes: a volume (its name or id) and where to mount it. */
export interface VolumeMountOptions {
  /** The volume's name or id (`vol_…`). */
  volume: string;
  /** Absolute path inside the sandbox, below `/mnt` (e.g. `/mnt/data`). */
  path: string;
}

/** Most volumes mounted in one sandbox. */
export const MAX_VOLUME_MOUNTS = 16;

/** Where volumes are mounted: paths below this directory only (the template stays read-only). */
export const VOLUME_ROOT = "/mnt";

const ID_PATTERN = /^vol_[a-z0-9]{20}$/;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS volumes (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  owner TEXT NOT NULL,
  metadata TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (owner, name)
);
`;

/** Checks the shape of a volume id (it is used in paths). @throws InvalidArgumentError */
export function checkVolumeId(id: unknown): string {
  if (typeof id !== "string" || !ID_PATTERN.test(id))
    throw new InvalidArgumentError(`not a volume id: ${JSON.stringify(id)}`);
  return id;
}

/** Checks a volume name. @throws InvalidArgumentError */
export function checkVolumeName(name: unknown): string {
  if (typeof name !== "string" || !NAME_PATTERN.test(name))
    throw new InvalidArgumentError(
      `a volume name is 1 to 63 of A-Z a-z 0-9 . _ -, starting with a letter or digit: ${JSON.stringify(name)}`,
    );
  return name;
}

/**
 * Checks a mount path: absolute, normalised, strictly below `/mnt`, no `..`.
 * @throws InvalidArgumentError
 */
export function checkMountPath(path: unknown): string {
  if (typeof path !== "string" || path.length > 256 || path.includes("\0"))
    throw new InvalidArgumentError(`not a mount path: ${JSON.stringify(path)}`);
  const norm = posix.normalize(path).replace(/\/+$/, "");
  if (
    norm !== path.replace(/\/+$/, "") ||
    !norm.startsWith(`${VOLUME_ROOT}/`) ||
    norm.split("/").includes("..")
  )
    throw new InvalidArgumentError(`a volume is mounted at a normalised path below ${VOLUME_ROOT}/: ${path}`);
  return norm;
}

function toInfo(r: Record<string, unknown>): VolumeInfo {
  return {
    id: String(r.id),
    name: String(r.name),
    metadata: JSON.parse(String(r.metadata)),
    createdAt: new Date(Number(r.created_at)).toISOString(),
  };
}

/** The volumes of one data directory. */
export class Volumes {
  private readonly db: DatabaseSync;
  private readonly cache: StatementCache;
  private readonly dataDir: string;
  /** The metadata key naming an owner (names are unique per owner); undefined: one namespace. */
  private readonly ownerLabel: string | undefined;
  /** Ids of the volumes mounted by some live sandbox record. */
  private readonly mountedBy: (id: string) => string[];

  constructor(
    db: DatabaseSync,
    dataDir: string,
    ownerLabel: string | undefined,
    mountedBy: (id: string) => string[],
  ) {
    this.db = db;
    this.db.exec(SCHEMA);
    this.cache = new StatementCache(db);
    this.dataDir = dataDir;
    this.ownerLabel = ownerLabel;
    this.mountedBy = mountedBy;
  }

  private st(sql: string): StatementSync {
    return this.cache.get(sql);
  }

  private ownerOf(metadata: Record<string, string> | undefined): string {
    return this.ownerLabel === undefined ? "" : (metadata?.[this.ownerLabel] ?? "");
  }

  /** The host directory holding a volume's files. */
  hostPath(id: string): string {
    return join(this.dataDir, "volumes", checkVolumeId(id), "data");
  }

  /**
   * Creates an empty volume. @throws InvalidArgumentError (name), ConflictError (the owner has a
   * volume of that name)
   */
  create(name: string, metadata: Record<string, string> = {}): VolumeInfo {
    checkVolumeName(name);
    const owner = this.ownerOf(metadata);
    if (this.st("SELECT 1 FROM volumes WHERE owner = ? AND name = ?").get(owner, name))
      throw new ConflictError(`a volume named ${name} exists`);
    let id = "vol_";
    for (const b of randomBytes(20)) id += ALPHABET[b % ALPHABET.length];
    const root = join(this.dataDir, "volumes");
    // Only Kiln reaches the directories on the host: a setuid file a sandbox leaves is no one's tool.
    mkdirSync(root, { recursive: true, mode: 0o700 });
    mkdirSync(join(root, id), { mode: 0o700 });
    mkdirSync(join(root, id, "data"), { mode: 0o755 });
    const now = Date.now();
    try {
      this.st("INSERT INTO volumes (id, name, owner, metadata, created_at) VALUES (?, ?, ?, ?, ?)").run(
        id,
        name,
        owner,
        JSON.stringify(metadata),
        now,
      );
    } catch (e) {
      rmSync(join(root, id), { recursive: true, force: true });
      if (/UNIQUE/i.test(String(e))) throw new ConflictError(`a volume named ${name} exists`);
      throw e;
    }
    return { id, name, metadata: { ...metadata }, createdAt: new Date(now).toISOString() };
  }

  /** A volume by id. @throws InvalidArgumentError, NotFoundError */
  get(id: string): VolumeInfo {
    checkVolumeId(id);
    const r = this.st("SELECT * FROM volumes WHERE id = ?").get(id);
    if (!r) throw new NotFoundError(`no volume ${id}`);
    return toInfo(r);
  }

  /** The volumes, oldest first, optionally only those whose metadata has all of these pairs. */
  list(metadata: Record<string, string> = {}): VolumeInfo[] {
    return this.st("SELECT * FROM volumes ORDER BY created_at, id")
      .all()
      .map(toInfo)
      .filter((v) => Object.entries(metadata).every(([k, val]) => v.metadata[k] === val));
  }

  /**
   * Deletes a volume and its files. @throws NotFoundError, ConflictError (a sandbox mounts it:
   * kill those first)
   */
  remove(id: string): void {
    this.get(id);
    const users = this.mountedBy(id);
    if (users.length > 0) throw new ConflictError(`volume ${id} is mounted by ${users.join(", ")}`);
    const dir = join(this.dataDir, "volumes", id);
    const doomed = join(this.dataDir, "volumes", `.removing-${id}`);
    // The record goes first: a crash leaves a directory no record names, swept below.
    this.st("DELETE FROM volumes WHERE id = ?").run(id);
    try {
      renameSync(dir, doomed);
    } catch {
      return;
    }
    rmSync(doomed, { recursive: true, force: true });
  }

  /**
   * The mounts of a new sandbox with `metadata`: each volume looked up by id or by name among its
   * owner's volumes, each path checked, no path inside another.
   * @throws InvalidArgumentError, NotFoundError (a volume that is not there, or another owner's)
   */
  resolve(options: VolumeMountOptions[] | undefined, metadata: Record<string, string>): VolumeMount[] {
    if (options === undefined) return [];
    if (!Array.isArray(options)) throw new InvalidArgumentError("volumes must be an array");
    if (options.length > MAX_VOLUME_MOUNTS)
      throw new InvalidArgumentError(`at most ${MAX_VOLUME_MOUNTS} volumes per sandbox`);
    const owner = this.ownerOf(metadata);
    const mounts: VolumeMount[] = [];
    for (const o of options) {
      if (typeof o !== "object" || o === null)
        throw new InvalidArgumentError("a volume mount is { volume, path }");
      const path = checkMountPath(o.path);
      const ref = o.volume;
      const r = ID_PATTERN.test(String(ref))
        ? this.st("SELECT * FROM volumes WHERE id = ? AND owner = ?").get(ref, owner)
        : this.st("SELECT * FROM volumes WHERE name = ? AND owner = ?").get(checkVolumeName(ref), owner);
      if (!r) throw new NotFoundError(`no volume ${String(ref)}`);
      for (const m of mounts)
        if (m.path === path || m.path.startsWith(`${path}/`) || path.startsWith(`${m.path}/`))
          throw new InvalidArgumentError(`volume mount paths overlap: ${m.path} and ${path}`);
      mounts.push({ id: String(r.id), name: String(r.name), path });
    }
    return mounts;
  }

  /** Removes what a crash in `remove` left. */
  sweep(): void {
    let names: string[] = [];
    try {
      names = readdirSync(join(this.dataDir, "volumes"));
    } catch {
      return;
    }
    for (const n of names)
      if (n.startsWith(".removing-"))
        rmSync(join(this.dataDir, "volumes", n), { recursive: true, force: true });
  }
}
