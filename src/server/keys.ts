/**
 * API keys: stored hashed in the data directory's `kiln.db` (table
 * `api_keys`), shared by `kiln keys` and every running `kiln serve`, so a
 * revocation takes effect on the next request.
 *
 * A key is `kiln_<id>_<secret>`: the id (public, 12 characters) finds the row,
 * the secret (32 random bytes, base64url) is compared by its SHA-256 in
 * constant time. The secret is printed once, at creation, and never stored.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { InvalidArgumentError, NotFoundError } from "../core/errors.ts";
import { StatementCache } from "../index.ts";

/** An API key as listed (never with its secret). */
export interface ApiKeyInfo {
  /** Public key id, `key_` and 12 characters. */
  id: string;
  /** Free-form name. */
  name: string;
  /** Creation time, ISO 8601. */
  createdAt: string;
  /** Revocation time, ISO 8601, or null while the key is valid. */
  revokedAt: string | null;
  /** Most live sandboxes this key may own at once; null: no quota. */
  maxSandboxes: number | null;
  /** Most total `limits.memoryBytes` of this key's live sandboxes; null: no quota. */
  maxMemoryBytes: number | null;
  /** Most bytes of this key's snapshots and pause images; null: the server's default. */
  maxDiskBytes: number | null;
}

/** Options of {@link KeyStore.create}. */
export interface CreateKeyOptions {
  name?: string;
  maxSandboxes?: number | null;
  maxMemoryBytes?: number | null;
  maxDiskBytes?: number | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  secret_sha256 BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER,
  max_sandboxes INTEGER,
  max_memory_bytes INTEGER
);
`;

const KEY_PATTERN = /^kiln_(key_[a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

function sha256(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

function toInfo(r: Record<string, unknown>): ApiKeyInfo {
  return {
    id: String(r.id),
    name: String(r.name),
    createdAt: new Date(Number(r.created_at)).toISOString(),
    revokedAt: r.revoked_at === null ? null : new Date(Number(r.revoked_at)).toISOString(),
    maxSandboxes: r.max_sandboxes === null ? null : Number(r.max_sandboxes),
    maxMemoryBytes: r.max_memory_bytes === null ? null : Number(r.max_memory_bytes),
    maxDiskBytes:
      r.max_disk_bytes === null || r.max_disk_bytes === undefined ? null : Number(r.max_disk_bytes),
  };
}

function checkQuota(name: string, v: number | null | undefined): number | null {
  if (v === undefined || v === null) return null;
  if (!Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError(`${name} must be an integer >= 0`);
  return v;
}

/** The API keys of one data directory. */
export class KeyStore {
  private readonly db: DatabaseSync;
  // Every request is verified: its lookup is compiled once, not per request.
  private readonly statements: StatementCache;

  /** Opens (creating if needed) the key table in `<dataDir>/kiln.db`. */
  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.db = new DatabaseSync(join(dataDir, "kiln.db"), { timeout: 10_000 });
    this.db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
    this.db.exec(SCHEMA);
    // A column added after the first schema: a database made before it gets it (null: the default).
    if (
      !this.db
        .prepare("PRAGMA table_info(api_keys)")
        .all()
        .some((c) => c.name === "max_disk_bytes")
    ) {
      try {
        this.db.exec("ALTER TABLE api_keys ADD COLUMN max_disk_bytes INTEGER");
      } catch (e) {
        if (!/duplicate column/i.test(String(e))) throw e;
      }
    }
    this.statements = new StatementCache(this.db);
  }

  /**
   * Creates a key. The returned `key` is the only time the secret exists in clear.
   * @throws InvalidArgumentError (`invalid_argument`) for a bad quota
   */
  create(options: CreateKeyOptions = {}): { key: string; info: ApiKeyInfo } {
    const maxSandboxes = checkQuota("maxSandboxes", options.maxSandboxes);
    const maxMemoryBytes = checkQuota("maxMemoryBytes", options.maxMemoryBytes);
    const maxDiskBytes = checkQuota("maxDiskBytes", options.maxDiskBytes);
    let id = "key_";
    for (const b of randomBytes(12)) id += ALPHABET[b % ALPHABET.length];
    const secret = randomBytes(32).toString("base64url");
    const now = Date.now();
    this.db
      .prepare(
        "INSERT INTO api_keys (id, name, secret_sha256, created_at, revoked_at, max_sandboxes, max_memory_bytes, max_disk_bytes) VALUES (?, ?, ?, ?, NULL, ?, ?, ?)",
      )
      .run(id, options.name ?? "", sha256(secret), now, maxSandboxes, maxMemoryBytes, maxDiskBytes);
    return { key: `kiln_${id}_${secret}`, info: this.get(id)! };
  }

  /** A key's record, or undefined. */
  get(id: string): ApiKeyInfo | undefined {
    const r = this.db.prepare("SELECT * FROM api_keys WHERE id = ?").get(id);
    return r ? toInfo(r) : undefined;
  }

  /** Every key, oldest first. */
  list(): ApiKeyInfo[] {
    return this.db.prepare("SELECT * FROM api_keys ORDER BY created_at, id").all().map(toInfo);
  }

  /** Revokes a key (idempotent). @throws NotFoundError (`not_found`) */
  revoke(id: string): ApiKeyInfo {
    const r = this.db
      .prepare("UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?")
      .run(Date.now(), id);
    if (Number(r.changes) === 0) throw new NotFoundError(`no API key ${id}`);
    return this.get(id)!;
  }

  /** The valid (known, unrevoked) key that `presented` is, or undefined. Compares in constant time. */
  verify(presented: string): ApiKeyInfo | undefined {
    const m = KEY_PATTERN.exec(presented);
    if (!m) return undefined;
    const r = this.statements.get("SELECT * FROM api_keys WHERE id = ?").get(m[1]!);
    if (!r) return undefined;
    const stored = Buffer.from(r.secret_sha256 as Uint8Array);
    const given = sha256(m[2]!);
    if (stored.length !== given.length || !timingSafeEqual(stored, given)) return undefined;
    if (r.revoked_at !== null) return undefined;
    return toInfo(r);
  }

  /** Closes the database. */
  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}
