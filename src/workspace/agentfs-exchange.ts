/**
 * AgentFS files to and from other programs. A virtual sandbox's store has
 * the agent's files at its AgentFS root already, beside the shell's own tree
 * (`/tmp`, `/home`; see `shell-layout.ts`); an AgentFS file made for others
 * has only the agent's files, with the key-value store and the tool-call log.
 *
 * - {@link exportStoreAsAgentFs}: a consistent copy of a live store
 *   (`VACUUM INTO`, one read transaction, while commands keep writing),
 *   without the shell's tree.
 * - {@link agentFsFromTree}: an AgentFS file from a tar of `/workspace` (the
 *   real tiers, whose files are not in SQLite) and the sandbox's audit log.
 * - {@link agentFsTree}: the files of any AgentFS file (Kiln's or another
 *   program's) as a tar, to import into a sandbox's `/workspace`.
 */
import { existsSync, renameSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { InvalidArgumentError } from "../core/errors.ts";
import { assertNotLockedByAnotherProgram } from "../core/sqlite.ts";
import { AgentFsStore, ROOT_INO } from "./agentfs-store.ts";
import { dropShellTree } from "./shell-layout.ts";
import { SqliteFs } from "./sqlite-fs.ts";
import { StoreFileOps } from "./store-file-ops.ts";

/** The tables every AgentFS file has. */
const FS_TABLES = ["fs_config", "fs_inode", "fs_dentry", "fs_data", "fs_symlink"];

/** A temporary name beside `dest`. */
const beside = (dest: string) => `${dest}.kiln-${process.pid}-${Date.now()}.tmp`;

/**
 * Writes to `dest` an AgentFS file of the store at `databasePath` (which may
 * be open and written to meanwhile), without the shell's tree. `dest` is
 * replaced only when complete.
 */
export function exportStoreAsAgentFs(databasePath: string, dest: string): void {
  const tmp = beside(dest);
  try {
    const src = new DatabaseSync(databasePath, { readOnly: true, timeout: 10_000 });
    try {
      src.prepare("VACUUM INTO ?").run(tmp);
    } finally {
      src.close();
    }
    const store = AgentFsStore.open(tmp, { checkForeignLock: false });
    try {
      dropShellTree(store);
      store.db.exec("VACUUM");
    } finally {
      store.close();
    }
    renameSync(tmp, dest);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/**
 * Writes to `dest` an AgentFS file whose root holds the tree in `tar`, and
 * whose key-value store and tool-call log are those of the database at
 * `databasePath` (a real-tier sandbox's audit log). `dest` is replaced only
 * when complete.
 */
export async function agentFsFromTree(
  databasePath: string,
  tar: ReadableStream<Uint8Array>,
  dest: string,
): Promise<void> {
  const tmp = beside(dest);
  try {
    if (existsSync(databasePath)) {
      const src = new DatabaseSync(databasePath, { readOnly: true, timeout: 10_000 });
      try {
        src.prepare("VACUUM INTO ?").run(tmp);
      } finally {
        src.close();
      }
    }
    const store = AgentFsStore.open(tmp);
    try {
      // The audit log's database may hold an old filesystem (a sandbox moved from the virtual tier): start empty.
      dropShellTree(store);
      for (const d of store.readdir(ROOT_INO)) store.removeTree(ROOT_INO, d.name);
      await new StoreFileOps(store, new SqliteFs(store)).importTar("/", tar);
      store.db.exec("VACUUM");
    } finally {
      store.close();
    }
    renameSync(tmp, dest);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/**
 * The files of the AgentFS file at `path` (from its root) as a tar, read from
 * a private copy (the file itself is not changed). Call `done` when the
 * stream has been read or abandoned.
 * @throws InvalidArgumentError when `path` is not an AgentFS file
 */
export async function agentFsTree(
  path: string,
): Promise<{ tar: ReadableStream<Uint8Array>; done: () => void }> {
  if (!existsSync(path)) throw new InvalidArgumentError(`no such file: ${path}`);
  const tmp = beside(path.replace(/\/+$/, ""));
  let store: AgentFsStore | undefined;
  const done = () => {
    store?.close();
    store = undefined;
    rmSync(tmp, { force: true });
    rmSync(`${tmp}-wal`, { force: true });
    rmSync(`${tmp}-shm`, { force: true });
  };
  try {
    assertNotLockedByAnotherProgram(path);
    // A consistent copy even when another program is writing it (VACUUM INTO reads in one transaction).
    const src = new DatabaseSync(path, { readOnly: true, timeout: 2_000 });
    try {
      const tables = new Set(
        src
          .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
          .all()
          .map((r) => String(r.name)),
      );
      const missing = FS_TABLES.filter((t) => !tables.has(t));
      if (missing.length > 0) {
        throw new InvalidArgumentError(`${path} is not an AgentFS file (no table ${missing.join(", ")})`);
      }
      src.prepare("VACUUM INTO ?").run(tmp);
    } catch (e) {
      if (e instanceof InvalidArgumentError) throw e;
      throw new InvalidArgumentError(`${path} is not a readable AgentFS file: ${(e as Error).message}`, {
        cause: e,
      });
    } finally {
      src.close();
    }
    store = AgentFsStore.open(tmp, { checkForeignLock: false });
    // A Kiln workspace file (live, or a snapshot's) gives the agent's files, not the shell's tree.
    dropShellTree(store);
    return { tar: await new StoreFileOps(store, new SqliteFs(store)).exportTar("/"), done };
  } catch (e) {
    done();
    throw e;
  }
}
