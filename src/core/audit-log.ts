/**
 * The audit log: every command run in a sandbox, recorded in the `tool_calls`
 * table of the sandbox's AgentFS database (name `bash`, parameters
 * `{command, cwd, startedAtMs, owner}`, result `{exitCode}`), on every tier.
 * `owner` is the token of the Kiln process that ran it, so that the next
 * process can mark what a crashed one left running as `interrupted`.
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { OWN_PROCESS_TOKEN } from "./process-token.ts";
import { assertNotLockedByAnotherProgram, StatementCache } from "./sqlite.ts";
import type { AuditEntry, NetworkAuditEntry } from "./types.ts";

/** Network entries kept per sandbox; older ones are dropped beyond it (so a flood cannot fill the disk). */
export const MAX_NETWORK_AUDIT_ENTRIES = 10_000;

/** The `tool_calls` table and its indexes (AgentFS's schema). */
export const TOOL_CALLS_SCHEMA = `
CREATE TABLE IF NOT EXISTS tool_calls (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  parameters TEXT,
  result TEXT,
  error TEXT,
  status TEXT NOT NULL DEFAULT 'pending',
  started_at INTEGER NOT NULL,
  completed_at INTEGER,
  duration_ms INTEGER
);
CREATE INDEX IF NOT EXISTS idx_tool_calls_name ON tool_calls(name);
CREATE INDEX IF NOT EXISTS idx_tool_calls_started_at ON tool_calls(started_at);
`;

/** Writes and reads one sandbox's audit log. */
export class AuditLog {
  private readonly db: DatabaseSync;

  private readonly owned: boolean;

  /** Opens the log in the database at `database` (a path), or uses an open handle (which it will not close). */
  constructor(database: string | DatabaseSync) {
    this.owned = typeof database === "string";
    if (typeof database !== "string") {
      this.db = database;
      return;
    }
    assertNotLockedByAnotherProgram(database);
    this.db = new DatabaseSync(database, { timeout: 10_000 });
    this.db.exec("PRAGMA synchronous=NORMAL;");
    // A database made by a tier from its seed has the table already (user_version set).
    if (Number(this.db.prepare("PRAGMA user_version").get()?.user_version) === 0) {
      this.db.exec("PRAGMA journal_mode=WAL;");
      this.db.exec(TOOL_CALLS_SCHEMA);
    }
  }

  /** Records the start of a command; returns the entry id. */
  private cache: StatementCache | undefined;

  private st(sql: string): StatementSync {
    this.cache ??= new StatementCache(this.db);
    return this.cache.get(sql);
  }

  start(command: string, cwd: string, startedAtMs: number): number {
    const r = this.st(
      "INSERT INTO tool_calls (name, parameters, status, started_at) VALUES ('bash', ?, 'pending', ?) RETURNING id",
    ).get(
      JSON.stringify({ command, cwd, startedAtMs, owner: OWN_PROCESS_TOKEN }),
      Math.floor(startedAtMs / 1000),
    );
    return Number(r!.id);
  }

  /** Records the end of a command. */
  finish(id: number, exitCode: number, durationMs: number, error?: string): void {
    this.st(
      "UPDATE tool_calls SET result = ?, error = ?, status = ?, completed_at = ?, duration_ms = ? WHERE id = ?",
    ).run(
      JSON.stringify({ exitCode }),
      error ?? null,
      exitCode === 0 && !error ? "success" : "error",
      Math.floor(Date.now() / 1000),
      Math.round(durationMs),
      id,
    );
  }

  /**
   * Marks the commands that Kiln process `owner` (a process token) left
   * running as `interrupted`: it died before they ended. Returns how many.
   */
  interrupt(owner: string): number {
    const r = this.st(
      "UPDATE tool_calls SET status = 'interrupted', error = ?, completed_at = ? WHERE status = 'pending' AND json_extract(parameters, '$.owner') = ?",
    ).run("interrupted: the Kiln process running it ended", Math.floor(Date.now() / 1000), owner);
    return Number(r.changes);
  }

  private networkWrites = 0;

  /** Records one network connection, request or DNS query (once it has ended). */
  network(entry: Omit<NetworkAuditEntry, "id">): void {
    const { atMs, allowed, durationMs, ...rest } = entry;
    this.st(
      "INSERT INTO tool_calls (name, parameters, result, status, started_at, completed_at, duration_ms) VALUES ('network', ?, ?, ?, ?, ?, ?)",
    ).run(
      JSON.stringify({ ...rest, atMs }),
      JSON.stringify({ allowed }),
      allowed ? "success" : "error",
      Math.floor(atMs / 1000),
      Math.floor((atMs + durationMs) / 1000),
      Math.round(durationMs),
    );
    // Trimmed every 100 writes, not at each one: a flood costs one DELETE per hundred entries.
    if (++this.networkWrites % 100 === 0) {
      this.st(
        "DELETE FROM tool_calls WHERE name = 'network' AND id <= (SELECT id FROM tool_calls WHERE name = 'network' ORDER BY id DESC LIMIT 1 OFFSET ?)",
      ).run(MAX_NETWORK_AUDIT_ENTRIES);
    }
  }

  /** The newest `limit` network entries, oldest first. */
  listNetwork(limit = 1000): NetworkAuditEntry[] {
    return this.db
      .prepare(
        "SELECT * FROM (SELECT * FROM tool_calls WHERE name = 'network' ORDER BY id DESC LIMIT ?) ORDER BY id",
      )
      .all(limit)
      .map((r) => {
        const p = JSON.parse(String(r.parameters ?? "{}"));
        return {
          ...p,
          id: Number(r.id),
          allowed: r.status === "success",
          durationMs: Number(r.duration_ms ?? 0),
        } as NetworkAuditEntry;
      });
  }

  /** The newest `limit` entries, oldest first. */
  list(limit = 1000): AuditEntry[] {
    return this.db
      .prepare(
        "SELECT * FROM (SELECT * FROM tool_calls WHERE name = 'bash' ORDER BY id DESC LIMIT ?) ORDER BY id",
      )
      .all(limit)
      .map((r) => {
        const p = JSON.parse(String(r.parameters ?? "{}"));
        const res = r.result ? JSON.parse(String(r.result)) : null;
        return {
          id: Number(r.id),
          command: String(p.command ?? ""),
          cwd: String(p.cwd ?? ""),
          exitCode: res ? Number(res.exitCode) : null,
          status: String(r.status) as AuditEntry["status"],
          startedAtMs: Number(p.startedAtMs ?? Number(r.started_at) * 1000),
          durationMs: r.duration_ms === null ? null : Number(r.duration_ms),
        };
      });
  }

  close(): void {
    if (this.owned && this.db.isOpen) this.db.close();
  }
}
