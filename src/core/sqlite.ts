/** Small helpers over node:sqlite shared by Kiln's stores. */
import { readFileSync, statSync } from "node:fs";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { ConflictError } from "./errors.ts";

/** Prepared statements of one connection, compiled once per SQL text. */
export class StatementCache {
  private readonly db: DatabaseSync;
  private readonly stmts = new Map<string, StatementSync>();

  constructor(db: DatabaseSync) {
    this.db = db;
  }

  /** The prepared statement for `sql`. */
  get(sql: string): StatementSync {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }
}

/**
 * Throws ConflictError when a program that does not speak SQLite's locking
 * protocol holds the database file at `path` locked: AgentFS's tools (the
 * Turso engine) lock the whole file for as long as they have it open, and
 * SQLite would wait out its busy timeout and then fail with "database is
 * locked". SQLite itself never locks byte 0 of a database file, so a lock
 * there is another program's. Reads /proc/locks (Linux); elsewhere it checks
 * nothing.
 * @throws ConflictError
 */
export function assertNotLockedByAnotherProgram(path: string): void {
  let st: { dev: number; ino: number };
  let locks: string;
  try {
    st = statSync(path);
    locks = readFileSync("/proc/locks", "utf8");
  } catch {
    return;
  }
  // The kernel's dev_t: major in bits 8-19 (and 32+), minor in bits 0-7 (and 12-31).
  const major = ((st.dev >> 8) & 0xfff) | (Math.floor(st.dev / 2 ** 32) & ~0xfff);
  const minor = (st.dev & 0xff) | ((st.dev >> 12) & ~0xff);
  const id = `${major.toString(16).padStart(2, "0")}:${minor.toString(16).padStart(2, "0")}:${st.ino}`;
  for (const line of locks.split("\n")) {
    // "1: POSIX  ADVISORY  WRITE 8429 fe:00:2147391 0 EOF" (a blocked waiter's line starts "1: -> ").
    const f = line.trim().split(/\s+/);
    if (f[1] === "->") continue;
    const [kind, , , pid, file, start] = f.slice(1);
    if (file !== id || start !== "0" || Number(pid) === process.pid) continue;
    if (kind !== "POSIX" && kind !== "OFDLCK" && kind !== "FLOCK") continue;
    throw new ConflictError(
      `${path} is locked by another program (process ${pid}; an AgentFS tool that has it open?): close it, then retry`,
    );
  }
}
