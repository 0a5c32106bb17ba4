/** Small helpers over node:sqlite shared by Kiln's stores. */
import type { DatabaseSync, StatementSync } from "node:sqlite";

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
