/**
 * An OCI runtime run by an ordinary user (gVisor's runsc; runc needs root): the runtime runs
 * as that user, without `--rootless` (which refuses `create` and `restore`), on a bundle with
 * a user namespace of its own whose only id, 0, is the user's uid and gid (`selfMap`), and
 * with `--ignore-cgroups`: the limits are those of the sandbox's cgroup in the subtree an
 * administrator delegated to the user (rootless-parts.ts), which the runtime is started in.
 * runsc writes that one-id map with `newuidmap`/`newgidmap` whenever it is not root, so they
 * must be installed (Debian's `uidmap`; not setuid for a map of the user's own id).
 */
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { SandboxCgroup } from "./cgroups.ts";
import { which } from "./host.ts";

/** Global flags of every runtime call as an ordinary user: Kiln's cgroup, not the runtime's. */
export const ROOTLESS_FLAGS: readonly string[] = Object.freeze(["--ignore-cgroups"]);

/** Why the runtime cannot run as this ordinary user here, or undefined when it can. */
export function rootlessRuntimeMissing(): string | undefined {
  const missing = ["newuidmap", "newgidmap"].filter((b) => !which(b));
  if (missing.length === 0) return undefined;
  return `${missing.join(" and ")} not installed (apt-get install uidmap): runsc run by an ordinary user writes its user namespace's id map with them`;
}

/** This process's uid and gid: a sandbox's only ids on the host. */
export function selfIds(): { uid: number; gid: number } {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

/**
 * A directory below `parent` holding only a copy of the agent binary `agent` (one per build of
 * it), to be bound at /.kiln: the runtime, not being root, cannot make a mount point for the
 * file in a template it does not own. Made once, atomically (a rename), so sandboxes starting
 * together share it.
 * @throws Error from the file system (`parent` not writable)
 */
export function agentDirIn(parent: string, agent: string): string {
  const s = statSync(agent);
  const dir = join(parent, `agent-${s.size}-${Math.trunc(s.mtimeMs)}`);
  if (existsSync(join(dir, "agent"))) return dir;
  mkdirSync(parent, { recursive: true, mode: 0o755 });
  const tmp = `${dir}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { mode: 0o755 });
  copyFileSync(agent, join(tmp, "agent"));
  try {
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    // Another process made it first.
    if (!existsSync(join(dir, "agent"))) throw e;
  }
  return dir;
}

/** The command line the runtime is started under: it joins the sandbox's cgroup first, if it has one. */
export function rootlessRunUnder(cgroup: SandboxCgroup | undefined): readonly string[] {
  return cgroup ? ["sh", "-c", `${cgroup.joinScript()} && exec "$@"`, "sh"] : [];
}
