/**
 * The records of saved state, in kiln.db beside the sandbox records: the
 * snapshots, and the pause of each paused sandbox with its phase. Each
 * record holds the digest of its directory, so that what Kiln restores is
 * exactly what it wrote (the directory and its digest are never in one place).
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Limits } from "./limits.ts";
import { StatementCache } from "./sqlite.ts";
import type { ExpiryAction, SnapshotInfo, SnapshotKind, TierName } from "./types.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS snapshots (
  id TEXT PRIMARY KEY,
  name TEXT,
  tier TEXT NOT NULL,
  template TEXT NOT NULL,
  sandbox_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  metadata TEXT NOT NULL,
  limits TEXT NOT NULL,
  env TEXT NOT NULL,
  cwd TEXT NOT NULL,
  digest TEXT NOT NULL,
  hidden INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS lifecycle (
  id TEXT PRIMARY KEY,
  idle_timeout_ms INTEGER,
  on_timeout TEXT NOT NULL DEFAULT 'kill'
);
CREATE TABLE IF NOT EXISTS pauses (
  id TEXT PRIMARY KEY,
  phase TEXT NOT NULL,
  kind TEXT NOT NULL,
  digest TEXT,
  size_bytes INTEGER NOT NULL DEFAULT 0,
  at INTEGER NOT NULL,
  owner TEXT NOT NULL
);
`;

/** A snapshot as stored: what `create` needs besides the public record. */
export interface SnapshotRecord extends SnapshotInfo {
  limits: Limits;
  env: Record<string, string>;
  cwd: string;
  /** SHA-256 of the snapshot's directory (see state-files.ts). */
  digest: string;
  /** Made by `fork` for its own use: not listed. */
  hidden: boolean;
}

/** Where a pause is: being written, done, or being undone by `resume`. */
export type PausePhase = "pausing" | "paused" | "resuming";

/** A paused (or pausing) sandbox. */
export interface PauseRecord {
  id: string;
  phase: PausePhase;
  kind: SnapshotKind;
  /** Digest of the pause directory (kind `memory`), else null. */
  digest: string | null;
  sizeBytes: number;
  atMs: number;
  /** The process (token) that began the current phase. */
  owner: string;
}

function toSnapshot(r: Record<string, unknown>): SnapshotRecord {
  return {
    id: String(r.id),
    name: r.name === null ? null : String(r.name),
    tier: String(r.tier) as TierName,
    template: String(r.template),
    sandboxId: String(r.sandbox_id),
    kind: String(r.kind) as SnapshotKind,
    sizeBytes: Number(r.size_bytes),
    createdAt: new Date(Number(r.created_at)).toISOString(),
    metadata: JSON.parse(String(r.metadata)),
    limits: JSON.parse(String(r.limits)),
    env: JSON.parse(String(r.env)),
    cwd: String(r.cwd),
    digest: String(r.digest),
    hidden: Number(r.hidden) === 1,
  };
}

function toPause(r: Record<string, unknown>): PauseRecord {
  return {
    id: String(r.id),
    phase: String(r.phase) as PausePhase,
    kind: String(r.kind) as SnapshotKind,
    digest: r.digest === null ? null : String(r.digest),
    sizeBytes: Number(r.size_bytes),
    atMs: Number(r.at),
    owner: String(r.owner),
  };
}

/** Snapshot and pause records on one kiln.db connection. */
export class StateStore {
  private readonly db: DatabaseSync;
  private readonly cache: StatementCache;

  constructor(db: DatabaseSync) {
    this.db = db;
    db.exec(SCHEMA);
    this.cache = new StatementCache(db);
  }

  private st(sql: string): StatementSync {
    return this.cache.get(sql);
  }

  /** Runs `fn` in one transaction (with the sandbox records, which share the connection). */
  transaction<T>(fn: () => T): T {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const r = fn();
      this.db.exec("COMMIT");
      return r;
    } catch (e) {
      this.db.exec("ROLLBACK");
      throw e;
    }
  }

  insertSnapshot(s: SnapshotRecord): void {
    this.st(
      "INSERT INTO snapshots (id, name, tier, template, sandbox_id, kind, size_bytes, created_at, metadata, limits, env, cwd, digest, hidden) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ).run(
      s.id,
      s.name,
      s.tier,
      s.template,
      s.sandboxId,
      s.kind,
      s.sizeBytes,
      Date.parse(s.createdAt),
      JSON.stringify(s.metadata),
      JSON.stringify(s.limits),
      JSON.stringify(s.env),
      s.cwd,
      s.digest,
      s.hidden ? 1 : 0,
    );
  }

  snapshot(id: string): SnapshotRecord | undefined {
    const r = this.st("SELECT * FROM snapshots WHERE id = ?").get(id);
    return r ? toSnapshot(r) : undefined;
  }

  /**
   * Bytes of state images of the sandboxes whose metadata has `label`: their snapshots (whose
   * metadata is the sandbox's, copied; hidden ones too) and the pause images of those paused.
   */
  stateBytes(label: [string, string]): number {
    const path = `$."${label[0].replace(/"/g, '""')}"`;
    const snaps = this.st(
      "SELECT COALESCE(SUM(size_bytes), 0) AS n FROM snapshots WHERE json_extract(metadata, ?) = ?",
    ).get(path, label[1]);
    const pauses = this.st(
      "SELECT COALESCE(SUM(p.size_bytes), 0) AS n FROM pauses p JOIN sandboxes s ON s.id = p.id WHERE json_extract(s.metadata, ?) = ?",
    ).get(path, label[1]);
    return Number(snaps?.n ?? 0) + Number(pauses?.n ?? 0);
  }

  /** Snapshots, oldest first (hidden ones too when `all`). */
  snapshots(all = false): SnapshotRecord[] {
    return this.st(`SELECT * FROM snapshots ${all ? "" : "WHERE hidden = 0"} ORDER BY created_at, id`)
      .all()
      .map(toSnapshot);
  }

  /** Deletes a snapshot's record; true when there was one. */
  deleteSnapshot(id: string): boolean {
    return Number(this.st("DELETE FROM snapshots WHERE id = ?").run(id).changes) > 0;
  }

  pause(id: string): PauseRecord | undefined {
    const r = this.st("SELECT * FROM pauses WHERE id = ?").get(id);
    return r ? toPause(r) : undefined;
  }

  pauses(): PauseRecord[] {
    return this.st("SELECT * FROM pauses ORDER BY at, id").all().map(toPause);
  }

  /** Starts a pause (phase `pausing`) by process `owner`. @returns false when the sandbox has a pause record already */
  beginPause(id: string, kind: SnapshotKind, owner: string): boolean {
    const r = this.st(
      "INSERT OR IGNORE INTO pauses (id, phase, kind, digest, size_bytes, at, owner) VALUES (?, 'pausing', ?, NULL, 0, ?, ?)",
    ).run(id, kind, Date.now(), owner);
    return Number(r.changes) > 0;
  }

  /**
   * Moves a pause to `phase` (from `from`), setting its digest and size when given, and its
   * owner when given; false when it was not in `from`.
   */
  setPhase(
    id: string,
    from: PausePhase,
    phase: PausePhase,
    digest?: string | null,
    sizeBytes?: number,
    owner?: string,
  ): boolean {
    const p = this.pause(id);
    if (!p || p.phase !== from) return false;
    const r = this.st(
      "UPDATE pauses SET phase = ?, digest = ?, size_bytes = ?, owner = ? WHERE id = ? AND phase = ?",
    ).run(
      phase,
      digest === undefined ? p.digest : digest,
      sizeBytes ?? p.sizeBytes,
      owner ?? p.owner,
      id,
      from,
    );
    return Number(r.changes) > 0;
  }

  deletePause(id: string): void {
    this.st("DELETE FROM pauses WHERE id = ?").run(id);
  }

  /** Sets a sandbox's hibernation and end-of-life settings (`idleTimeoutMs` null: the Kiln's default). */
  setLifecycle(id: string, idleTimeoutMs: number | null, onTimeout: ExpiryAction): void {
    this.st(
      "INSERT INTO lifecycle (id, idle_timeout_ms, on_timeout) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET idle_timeout_ms = excluded.idle_timeout_ms, on_timeout = excluded.on_timeout",
    ).run(id, idleTimeoutMs, onTimeout);
  }

  /** A sandbox's settings, when any were given at create. */
  lifecycle(id: string): { idleTimeoutMs: number | null; onTimeout: ExpiryAction } | undefined {
    const r = this.st("SELECT * FROM lifecycle WHERE id = ?").get(id);
    if (!r) return undefined;
    const on = String(r.on_timeout);
    return {
      idleTimeoutMs: r.idle_timeout_ms === null ? null : Number(r.idle_timeout_ms),
      onTimeout: on === "pause" || on === "pause-files" ? on : "kill",
    };
  }

  /** Forgets everything about a sandbox being deleted. */
  forgetSandbox(id: string): void {
    this.st("DELETE FROM pauses WHERE id = ?").run(id);
    this.st("DELETE FROM lifecycle WHERE id = ?").run(id);
  }
}
