/**
 * Sandboxes being made. Before a tier makes anything for a new sandbox
 * (a workspace, a mount, a cgroup, a runtime's container), its state
 * directory is made stamped `creating.json` with the record it will have and
 * the process that makes it (made under a temporary name that names that
 * process, and renamed: the directory never exists without its stamp); the stamp is removed once the sandbox is handed out
 * (for a fork: once every sandbox of the fork is made, since a fork gives all
 * of them or none). A stamp whose process is dead marks a sandbox that no
 * caller ever got: the next Kiln destroys it (`Kiln.open`), record or not.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { OWN_PROCESS_TOKEN, processAlive } from "./process-token.ts";
import type { SandboxInfo } from "./types.ts";

/** The stamp's file in a sandbox's state directory: `{ owner, info }`. */
const STAMP = "creating.json";

/** Prefix of a state directory being stamped, before its process token. */
const NEW_PREFIX = ".new-";

/** Makes the state directory `stateDir` of a sandbox this process is making, stamped with the record it will have. */
export function makeStampedDir(stateDir: string, info: SandboxInfo): void {
  const tmp = join(dirname(stateDir), `${NEW_PREFIX}${OWN_PROCESS_TOKEN}_${basename(stateDir)}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { mode: 0o700 });
  writeFileSync(join(tmp, STAMP), JSON.stringify({ owner: OWN_PROCESS_TOKEN, info }), { mode: 0o600 });
  renameSync(tmp, stateDir);
}

/** Removes the stamp: the sandbox is handed out. */
export function clearCreating(stateDir: string): void {
  rmSync(join(stateDir, STAMP), { force: true });
}

/**
 * The sandboxes under `sandboxesDir` whose making a process that is now dead
 * left unfinished; removes the directories such a process had not yet renamed.
 */
export function unfinishedCreates(sandboxesDir: string): SandboxInfo[] {
  const out: SandboxInfo[] = [];
  for (const id of readdirSync(sandboxesDir)) {
    const m = /^\.new-(\d+-\d+)_/.exec(id);
    if (m) {
      if (!processAlive(m[1]!)) rmSync(join(sandboxesDir, id), { recursive: true, force: true });
      continue;
    }
    let stamp: { owner: string; info: SandboxInfo };
    try {
      stamp = JSON.parse(readFileSync(join(sandboxesDir, id, STAMP), "utf8"));
    } catch {
      continue;
    }
    if (stamp.info?.id === id && !processAlive(stamp.owner)) out.push(stamp.info);
  }
  return out;
}
