/**
 * The `virtual` tier: just-bash, an in-process bash interpreter, over the
 * sandbox's SQLite workspace (AgentFS schema); Python in a warm CPython-WASM
 * worker over the same database; JavaScript through just-bash's QuickJS
 * `js-exec`. Needs nothing from the machine but Node.
 */

import { copyFileSync, existsSync, statSync } from "node:fs";
import { chmod, copyFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { Backend, Capabilities, Instance, InstanceSpec } from "../../core/backend.ts";
import type { TierStatus } from "../../core/types.ts";
import { AgentFsStore, SCHEMA_USER_VERSION } from "../../workspace/agentfs-store.ts";
import { adoptShellLayout } from "../../workspace/shell-layout.ts";
import { DEV_NULL, SqliteFs } from "../../workspace/sqlite-fs.ts";
import { VirtualInstance } from "./instance.ts";

const CAPABILITIES: Capabilities = {
  realBinaries: false,
  interactiveStdin: false,
  pty: false,
  streamingOutput: false,
  processesSurviveRestart: false,
  warmable: false,
  egress: true,
  templates: false,
  pause: "files",
  inboundPorts: false,
};

/** The file of a saved workspace in a state directory. */
const SAVED_DB = "workspace.db";

/** Directories every virtual sandbox starts with, beside `/workspace` (AgentFS's root: `adoptShellLayout`). */
const LAYOUT = ["/tmp", "/home", "/home/user", "/dev"];

/** The virtual tier's driver. */
export class VirtualBackend implements Backend {
  readonly tier = "virtual" as const;
  readonly capabilities = CAPABILITIES;

  async probe(): Promise<TierStatus> {
    return {
      tier: "virtual",
      available: true,
      reason: `in-process just-bash on Node ${process.versions.node}`,
    };
  }

  async create(spec: InstanceSpec): Promise<Instance> {
    if (existsSync(spec.databasePath)) {
      // A sandbox moving back here: its database holds the audit log; lay out the filesystem again.
      const store = AgentFsStore.open(spec.databasePath, { maxBytes: spec.limits.diskBytes });
      adoptShellLayout(store);
      const fs = new SqliteFs(store);
      for (const dir of LAYOUT) await fs.mkdir(dir, { recursive: true });
      if (!(await fs.exists(DEV_NULL))) fs.openForWrite(DEV_NULL, true);
      return new VirtualInstance(spec, store);
    }
    // The seed holds the schema and the starting layout; it lives in the data dir, per schema version.
    const seed = join(spec.dataDir, `virtual-seed-v${SCHEMA_USER_VERSION}.db`);
    const store = AgentFsStore.createFromSeed(
      spec.databasePath,
      seed,
      (s) => {
        adoptShellLayout(s);
        const fs = new SqliteFs(s);
        for (const dir of LAYOUT) fs.mkdirSync(dir);
        fs.openForWrite(DEV_NULL, true);
      },
      { maxBytes: spec.limits.diskBytes },
    );
    return new VirtualInstance(spec, store);
  }

  /**
   * Copies the sandbox's database file as it is (a file copy: about six times
   * faster than `VACUUM INTO`, which rebuilds every page), consistent while
   * commands write: the write-ahead log is folded in first, then the copy is
   * made holding the database's write lock (`BEGIN IMMEDIATE`), with the log
   * too if a write slipped in between; this thread does it in one synchronous
   * step, so no write of this process can wait on the lock it holds. A
   * checkpoint by another connection during the copy changes only pages the
   * copied log restores. The copy's log is folded into it and its audit log
   * emptied (a sandbox made from it starts its own).
   */
  async saveFiles(spec: InstanceSpec, dir: string): Promise<number> {
    const dest = join(dir, SAVED_DB);
    const wal = `${spec.databasePath}-wal`;
    const src = new DatabaseSync(spec.databasePath, { timeout: 10_000 });
    try {
      src.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      src.exec("BEGIN IMMEDIATE");
      try {
        copyFileSync(spec.databasePath, dest);
        if (existsSync(wal) && statSync(wal).size > 0) copyFileSync(wal, `${dest}-wal`);
      } finally {
        src.exec("COMMIT");
      }
    } finally {
      src.close();
    }
    const copy = new DatabaseSync(dest);
    try {
      try {
        copy.exec("DELETE FROM tool_calls;");
      } catch {
        // No audit log in it yet.
      }
      copy.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } finally {
      copy.close();
    }
    return (await stat(dest)).size;
  }

  /** A new sandbox whose database is a copy of the one `saveFiles` wrote. */
  async createFrom(spec: InstanceSpec, dir: string): Promise<Instance> {
    await copyFile(join(dir, SAVED_DB), spec.databasePath);
    await chmod(spec.databasePath, 0o600);
    return this.create(spec);
  }

  async open(spec: InstanceSpec): Promise<Instance> {
    const store = AgentFsStore.open(spec.databasePath, { maxBytes: spec.limits.diskBytes });
    // A workspace made before the agent's files moved to the AgentFS root is converted here.
    try {
      adoptShellLayout(store);
    } catch (e) {
      store.close();
      throw e;
    }
    return new VirtualInstance(spec, store);
  }

  /** Removes the temporary files of `owner`'s unfinished writes and imports (the store has no host resources). */
  async recover(spec: InstanceSpec, owner: string): Promise<void> {
    if (!existsSync(spec.databasePath)) return;
    const store = AgentFsStore.open(spec.databasePath, { maxBytes: spec.limits.diskBytes });
    try {
      adoptShellLayout(store);
      store.sweepTemporary(owner);
    } finally {
      store.close();
    }
  }

  /**
   * Empties the filesystem tables; the database file itself (with the audit log) belongs to core.
   * Nothing to do when core has deleted it already (a kill).
   */
  async destroy(spec: InstanceSpec): Promise<void> {
    if (!existsSync(spec.databasePath)) return;
    let store: AgentFsStore | undefined;
    try {
      store = AgentFsStore.open(spec.databasePath);
      // Emptied tables need no fsync: a crash before the next checkpoint leaves them full, and the
      // next destroy (or the kill that deletes the file) empties them again. On a busy server these
      // syncs, on the event loop, were a large part of every kill.
      store.db.exec("PRAGMA synchronous=OFF;");
      store.db.exec(
        "DELETE FROM fs_data; DELETE FROM fs_symlink; DELETE FROM fs_dentry; DELETE FROM fs_inode WHERE ino <> 1;",
      );
    } catch {
      // The database is gone already: nothing to destroy.
    } finally {
      store?.close();
    }
  }
}
