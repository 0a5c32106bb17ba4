/**
 * The sandbox registry: one SQLite file (`kiln.db`) in the data directory,
 * shared by every Kiln process on that directory (WAL mode), so that a
 * sandbox created by one process is found by the next.
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { type NetworkSettings, NO_NETWORK } from "../network/policy.ts";
import type { UnenforcedLimit } from "./errors.ts";
import type { Limits } from "./limits.ts";
import { DEFAULT_PORT_POLICY, type PortPolicy } from "./ports.ts";
import { StatementCache } from "./sqlite.ts";
import type { SandboxInfo, SandboxState, TierName } from "./types.ts";
import type { VolumeMount } from "./volumes.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS sandboxes (
  id TEXT PRIMARY KEY,
  tier TEXT NOT NULL,
  template TEXT NOT NULL,
  state TEXT NOT NULL,
  env TEXT NOT NULL,
  cwd TEXT NOT NULL,
  metadata TEXT NOT NULL,
  limits TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS idx_sandboxes_expires ON sandboxes(expires_at);
CREATE INDEX IF NOT EXISTS idx_sandboxes_state ON sandboxes(state);
`;

function toInfo(r: Record<string, unknown>): SandboxInfo {
  return {
    id: String(r.id),
    tier: String(r.tier) as TierName,
    template: String(r.template),
    state: String(r.state) as SandboxState,
    env: JSON.parse(String(r.env)),
    cwd: String(r.cwd),
    metadata: JSON.parse(String(r.metadata)),
    limits: JSON.parse(String(r.limits)) as Limits,
    network: r.network
      ? (JSON.parse(String(r.network)) as NetworkSettings)
      : { ...NO_NETWORK, allow: [], deny: [] },
    ports: typeof r.ports === "string" ? (JSON.parse(r.ports) as PortPolicy) : { ...DEFAULT_PORT_POLICY },
    volumes: typeof r.volumes === "string" ? (JSON.parse(r.volumes) as VolumeMount[]) : [],
    ...(typeof r.unenforced_limits === "string"
      ? { unenforcedLimits: JSON.parse(r.unenforced_limits) as UnenforcedLimit[] }
      : {}),
    createdAt: new Date(Number(r.created_at)).toISOString(),
    expiresAt: r.expires_at === null ? null : new Date(Number(r.expires_at)).toISOString(),
  };
}

/** Sandbox records in `kiln.db`. */
export class RecordStore {
  /** The connection to kiln.db (the state store keeps its tables in the same file). */
  readonly db: DatabaseSync;
  private readonly cache: StatementCache;

  private st(sql: string): StatementSync {
    return this.cache.get(sql);
  }

  constructor(path: string) {
    this.db = new DatabaseSync(path, { timeout: 10_000 });
    this.db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
    this.db.exec(SCHEMA);
    // Columns added after the first schema: a database made before them gets them (null: no
    // network policy, so no network; the default port policy).
    const columns = this.db.prepare("PRAGMA table_info(sandboxes)").all();
    for (const column of ["network", "ports", "volumes", "unenforced_limits"]) {
      if (columns.some((c) => c.name === column)) continue;
      try {
        this.db.exec(`ALTER TABLE sandboxes ADD COLUMN ${column} TEXT`);
      } catch (e) {
        // Another process added it first.
        if (!/duplicate column/i.test(String(e))) throw e;
      }
    }
    this.cache = new StatementCache(this.db);
  }

  insert(info: SandboxInfo): void {
    this.st(
      "INSERT INTO sandboxes (id, tier, template, state, env, cwd, metadata, limits, network, ports, volumes, unenforced_limits, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ).run(
      info.id,
      info.tier,
      info.template,
      info.state,
      JSON.stringify(info.env),
      info.cwd,
      JSON.stringify(info.metadata),
      JSON.stringify(info.limits),
      JSON.stringify(info.network),
      JSON.stringify(info.ports),
      JSON.stringify(info.volumes),
      info.unenforcedLimits?.length ? JSON.stringify(info.unenforcedLimits) : null,
      Date.parse(info.createdAt),
      info.expiresAt === null ? null : Date.parse(info.expiresAt),
    );
  }

  get(id: string): SandboxInfo | undefined {
    const r = this.st("SELECT * FROM sandboxes WHERE id = ?").get(id);
    return r ? toInfo(r) : undefined;
  }

  /**
   * How many sandboxes there are and their summed `limits.memoryBytes`; with
   * `label`, only those whose metadata has that pair. Summed in SQL so that
   * admission, asked at every create, parses no record.
   */
  usage(label?: [string, string]): { count: number; memoryBytes: number } {
    const sum =
      "SELECT COUNT(*) AS n, COALESCE(SUM(json_extract(limits, '$.memoryBytes')), 0) AS m FROM sandboxes";
    const r = label
      ? this.st(`${sum} WHERE json_extract(metadata, ?) = ?`).get(
          `$."${label[0].replace(/"/g, '""')}"`,
          label[1],
        )
      : this.st(sum).get();
    return { count: Number(r?.n ?? 0), memoryBytes: Number(r?.m ?? 0) };
  }

  list(): SandboxInfo[] {
    return this.st("SELECT * FROM sandboxes ORDER BY created_at, id").all().map(toInfo);
  }

  /** Ids of the sandboxes (not killed) that mount volume `volumeId`. */
  mounting(volumeId: string): string[] {
    return this.st(
      "SELECT id FROM sandboxes WHERE state != 'killed' AND volumes IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(volumes) WHERE json_extract(value, '$.id') = ?)",
    )
      .all(volumeId)
      .map((r) => String(r.id));
  }

  /** Sandboxes whose kill has begun but whose teardown has not finished (a crash can leave them). */
  killed(): SandboxInfo[] {
    return this.st("SELECT * FROM sandboxes WHERE state = 'killed' ORDER BY created_at, id")
      .all()
      .map(toInfo);
  }

  /** Ids of sandboxes whose expiry has passed. */
  expired(nowMs: number): string[] {
    return this.st("SELECT id FROM sandboxes WHERE expires_at IS NOT NULL AND expires_at <= ?")
      .all(nowMs)
      .map((r) => String(r.id));
  }

  setExpiry(id: string, expiresAtMs: number | null): void {
    this.st("UPDATE sandboxes SET expires_at = ? WHERE id = ?").run(expiresAtMs, id);
  }

  setPorts(id: string, ports: PortPolicy): void {
    this.st("UPDATE sandboxes SET ports = ? WHERE id = ?").run(JSON.stringify(ports), id);
  }

  setNetwork(id: string, network: NetworkSettings): void {
    this.st("UPDATE sandboxes SET network = ? WHERE id = ?").run(JSON.stringify(network), id);
  }

  setState(id: string, state: SandboxState): void {
    this.st("UPDATE sandboxes SET state = ? WHERE id = ?").run(state, id);
  }

  /** Records a move to `tier`, where `unenforced` are the limits that do not hold (empty: all hold). */
  setTier(id: string, tier: TierName, unenforced: UnenforcedLimit[] = []): void {
    this.st("UPDATE sandboxes SET tier = ?, unenforced_limits = ? WHERE id = ?").run(
      tier,
      unenforced.length ? JSON.stringify(unenforced) : null,
      id,
    );
  }

  delete(id: string): void {
    this.st("DELETE FROM sandboxes WHERE id = ?").run(id);
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}
