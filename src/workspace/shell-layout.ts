/**
 * Kiln's layout of a virtual sandbox's store: AgentFS's root directory
 * (inode 1) holds the agent's files, so AgentFS's own tools show the
 * workspace as the agent sees it (`/hello.txt`, not `/workspace/hello.txt`).
 * The shell's whole tree (`/tmp`, `/home`, `/dev`, and `/workspace`, an entry
 * naming inode 1) hangs from another directory, the shell root, named by
 * fs_config `kiln.shell_root`; AgentFS's tools start from inode 1 and never
 * see it.
 *
 * ```
 *   shell root (ino S) ── tmp/ home/ dev/ workspace ──┐
 *                                                     ▼
 *   AgentFS root (ino 1) ── hello.txt  src/ ...   (what AgentFS tools list)
 * ```
 *
 * Stores made before this layout (the shell's root at inode 1, the agent's
 * files under `/workspace`) are converted when opened, in one transaction:
 * only directory entries move, so every file keeps its inode.
 */
import { type AgentFsStore, isDir, ROOT_INO, S_IFDIR, SHELL_ROOT_KEY } from "./agentfs-store.ts";

/** The name of the agent's directory (AgentFS's root) in the shell's root. */
export const AGENT_DIR_NAME = "workspace";

/**
 * Puts `store` in Kiln's layout (see the module comment), converting a store
 * in the old layout or with no layout yet; the store's paths then start at
 * the shell root. Returns true when it changed the store.
 */
export function adoptShellLayout(store: AgentFsStore): boolean {
  if (store.root !== ROOT_INO && isDir(Number(inodeMode(store, store.root)))) return false;
  store.tx(() => {
    const db = store.db;
    // The shell root takes the old root's attributes; AgentFS's root takes the old /workspace's.
    const shell = Number(
      db
        .prepare(
          `INSERT INTO fs_inode (mode, nlink, uid, gid, atime, mtime, ctime, atime_nsec, mtime_nsec, ctime_nsec)
           SELECT ? | (mode & 4095), 1, uid, gid, atime, mtime, ctime, atime_nsec, mtime_nsec, ctime_nsec
           FROM fs_inode WHERE ino = ? RETURNING ino`,
        )
        .get(S_IFDIR, ROOT_INO)!.ino,
    );
    const old = db
      .prepare(
        "SELECT d.ino AS ino, i.mode AS mode FROM fs_dentry d JOIN fs_inode i ON i.ino = d.ino WHERE d.parent_ino = ? AND d.name = ?",
      )
      .get(ROOT_INO, AGENT_DIR_NAME);
    db.prepare("UPDATE fs_dentry SET parent_ino = ? WHERE parent_ino = ?").run(shell, ROOT_INO);
    if (old && isDir(Number(old.mode))) {
      const ws = Number(old.ino);
      db.prepare("UPDATE fs_dentry SET parent_ino = ? WHERE parent_ino = ?").run(ROOT_INO, ws);
      db.prepare(
        `UPDATE fs_inode SET (mode, uid, gid, atime, mtime, ctime, atime_nsec, mtime_nsec, ctime_nsec) =
          (SELECT mode, uid, gid, atime, mtime, ctime, atime_nsec, mtime_nsec, ctime_nsec FROM fs_inode WHERE ino = ?)
         WHERE ino = ?`,
      ).run(ws, ROOT_INO);
      db.prepare("DELETE FROM fs_dentry WHERE parent_ino = ? AND ino = ?").run(shell, ws);
      db.prepare("DELETE FROM fs_inode WHERE ino = ?").run(ws);
    } else if (old) {
      // Not a directory (no Kiln store has this): kept, beside the agent's directory.
      db.prepare("UPDATE fs_dentry SET name = ? WHERE parent_ino = ? AND name = ?").run(
        `${AGENT_DIR_NAME}~`,
        shell,
        AGENT_DIR_NAME,
      );
    }
    db.prepare("INSERT INTO fs_dentry (name, parent_ino, ino) VALUES (?, ?, ?)").run(
      AGENT_DIR_NAME,
      shell,
      ROOT_INO,
    );
    db.prepare("UPDATE fs_inode SET nlink = 2 WHERE ino = ?").run(ROOT_INO);
    db.prepare("INSERT OR REPLACE INTO fs_config (key, value) VALUES (?, ?)").run(
      SHELL_ROOT_KEY,
      String(shell),
    );
    store.setRoot(shell);
  });
  return true;
}

/**
 * Removes the shell's tree from `store` (a copy made for AgentFS's tools) when
 * it is in Kiln's layout, so that only AgentFS's root and what is below it
 * remain, and paths start at inode 1. Any other AgentFS file is left as it is.
 */
export function dropShellTree(store: AgentFsStore): void {
  const row = store.db.prepare("SELECT value FROM fs_config WHERE key = ?").get(SHELL_ROOT_KEY);
  if (row === undefined) return;
  const shell = Number(row.value);
  store.tx(() => {
    store.setRoot(shell);
    for (const d of store.readdir(shell)) if (d.ino !== ROOT_INO) store.removeTree(shell, d.name);
    store.db.prepare("DELETE FROM fs_dentry WHERE ino = ?").run(ROOT_INO);
    store.db.prepare("UPDATE fs_inode SET nlink = 1 WHERE ino = ?").run(ROOT_INO);
    if (shell !== ROOT_INO) store.db.prepare("DELETE FROM fs_inode WHERE ino = ?").run(shell);
    store.db.prepare("DELETE FROM fs_config WHERE key = ?").run(SHELL_ROOT_KEY);
    store.setRoot(ROOT_INO);
  });
}

function inodeMode(store: AgentFsStore, ino: number): unknown {
  return store.db.prepare("SELECT mode FROM fs_inode WHERE ino = ?").get(ino)?.mode;
}
