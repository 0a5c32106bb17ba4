/**
 * Kiln started as an ordinary user from a test that runs as root: the user
 * (`KILN_TEST_USER`, default `kiln-test`, which CI makes), its ids, a folder it
 * owns, and the checkout at a path it can read. A checkout where the user
 * cannot go (under a home folder, say) is bound into a scratch folder, as
 * scripts/test-unprivileged.mjs does.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const CHECKOUT = join(dirname(fileURLToPath(import.meta.url)), "..");

export interface OrdinaryUser {
  user: string;
  uid: number;
  gid: number;
  /** A folder the user owns: its HOME, and room for Kiln's data. */
  home: string;
  /** The checkout, at a path the user can read. */
  repo: string;
  /** This Node, at a path the user can run. */
  node: string;
  /** Unbinds the checkout and removes the scratch folder. */
  dispose(): void;
}

function canRead(user: string, path: string): boolean {
  return spawnSync("runuser", ["-u", user, "--", "test", "-r", path]).status === 0;
}

/** Whether `path` is a mount point in this process's mount namespace. */
export function isMountPoint(path: string): boolean {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((line) => line.split(" ")[4] === path);
}

/**
 * Removes a scratch folder that may hold a bind mount of something precious: the mount is
 * detached first (lazily, so a busy one goes too), and the folder is left in place when the
 * mount is still there, since removing it would remove what is bound through it.
 */
export function removeAround(scratch: string, bound: string | undefined): void {
  if (bound) {
    spawnSync("umount", ["--lazy", bound]);
    if (isMountPoint(bound)) {
      console.error(`# ${bound} is still mounted: ${scratch} is left in place`);
      return;
    }
  }
  rmSync(scratch, { recursive: true, force: true });
}

/** The ordinary user, ready; or why it cannot be had here. */
export function ordinaryUser(prefix: string): OrdinaryUser | string {
  if (process.getuid?.() !== 0) return "runs as root, to start Kiln as an ordinary user";
  const user = process.env.KILN_TEST_USER ?? "kiln-test";
  const id = spawnSync("id", ["-u", user], { encoding: "utf8" });
  if (id.status !== 0) return `no user ${user} (KILN_TEST_USER)`;
  const uid = Number(id.stdout);
  const gid = Number(spawnSync("id", ["-g", user], { encoding: "utf8" }).stdout);
  const scratch = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(scratch, 0o755);
  const home = join(scratch, "home");
  mkdirSync(home);
  chownSync(home, uid, gid);
  let repo = CHECKOUT;
  let bound: string | undefined;
  if (!canRead(user, join(CHECKOUT, "src", "index.ts"))) {
    bound = join(scratch, "repo");
    mkdirSync(bound);
    const ok =
      spawnSync("mount", ["--bind", CHECKOUT, bound]).status === 0 &&
      canRead(user, join(bound, "src", "index.ts"));
    if (!ok) {
      removeAround(scratch, isMountPoint(bound) ? bound : undefined);
      return `${user} cannot read the checkout, nor a bind of it`;
    }
    repo = bound;
  }
  const inCheckout = !relative(CHECKOUT, process.execPath).startsWith("..");
  const node = inCheckout ? join(repo, relative(CHECKOUT, process.execPath)) : process.execPath;
  return { user, uid, gid, home, repo, node, dispose: () => removeAround(scratch, bound) };
}
