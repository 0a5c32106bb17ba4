/**
 * Host id ranges for sandboxes: each running sandbox's users are mapped to a
 * range of 65,536 host uids and gids of its own, carved from the subordinate
 * ids `/etc/subuid` and `/etc/subgid` give the user Kiln runs as. A range is
 * claimed by an exclusive file under a host-wide directory on tmpfs (so that
 * every Kiln process on the host shares the claims, and a reboot, which ends
 * every sandbox process, clears them) and released when the sandbox's
 * runtime ends. Files keep the ids the sandbox sees (idmapped mounts), so a
 * range holds nothing once its processes are gone, and is then free again.
 */
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";

/** Ids per sandbox: a whole 16-bit range, as a container image expects. */
export const IDS_PER_SANDBOX = 65536;
/** Where claims live (tmpfs: cleared at boot, as the processes that held the ranges are). */
const CLAIMS_DIR = "/run/kiln/id-ranges";

/** A range of host ids, `count` from `base`. */
export interface IdRange {
  base: number;
  count: number;
}

/** The subordinate ranges a subid file (`name:start:count` lines) gives `user` (by name or uid). */
export function subordinateRanges(text: string, user: { name: string; uid: number }): IdRange[] {
  const out: IdRange[] = [];
  for (const line of text.split("\n")) {
    const [who, start, count] = line.trim().split(":");
    if (who !== user.name && who !== String(user.uid)) continue;
    const base = Number(start);
    const n = Number(count);
    if (Number.isSafeInteger(base) && Number.isSafeInteger(n) && base > 0 && n > 0)
      out.push({ base, count: n });
  }
  return out;
}

/** The slots (whole sandbox ranges, never below 65,536) that both uid and gid ranges hold at the same ids. */
export function slots(uids: IdRange[], gids: IdRange[]): number[] {
  const bases: number[] = [];
  const inside = (rs: IdRange[], b: number) =>
    rs.some((r) => b >= r.base && b + IDS_PER_SANDBOX <= r.base + r.count);
  for (const r of uids) {
    const first = Math.ceil(Math.max(r.base, IDS_PER_SANDBOX) / IDS_PER_SANDBOX) * IDS_PER_SANDBOX;
    for (
      let b = first;
      b + IDS_PER_SANDBOX <= r.base + r.count && b + IDS_PER_SANDBOX <= 2 ** 32;
      b += IDS_PER_SANDBOX
    )
      if (inside(gids, b)) bases.push(b);
  }
  return bases;
}

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** This host's sandbox ranges for the user Kiln runs as (empty: none configured). */
export function hostSlots(): number[] {
  const u = userInfo();
  const who = { name: u.username, uid: u.uid };
  return slots(subordinateRanges(read("/etc/subuid"), who), subordinateRanges(read("/etc/subgid"), who));
}

/**
 * Whether id mapping is turned off (`KILN_IDMAP=off`, read at each start: the benchmark's
 * unmapped runs; sandbox root is then host root, as on a host without subordinate ids).
 */
function turnedOff(): boolean {
  return process.env.KILN_IDMAP === "off";
}

/** Why sandboxes cannot get a range of their own here, or undefined when they can. */
export function idRangesUnavailable(): string | undefined {
  if (turnedOff()) return "id mapping turned off (KILN_IDMAP=off)";
  if (hostSlots().length > 0) return undefined;
  const name = userInfo().username;
  return `no subordinate id range of ${IDS_PER_SANDBOX} for ${name} in both /etc/subuid and /etc/subgid (the setup adds ${name}:1000000:${1024 * IDS_PER_SANDBOX})`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Where the next claim starts looking: just past the last range this process claimed. Starting
 * from the first range every time made each claim fail on every range held before it (live
 * sandboxes, and claims of dead processes, which are swept only once all are taken): with 180
 * held, about 4 ms of failed opens per create.
 */
let cursor = 0;

/**
 * Claims a free range for sandbox `id`, or returns undefined when the host
 * has none configured (or mapping is turned off).
 * @throws Error when every range is taken
 */
export function claimIdRange(id: string): { range: IdRange; release: () => void } | undefined {
  if (turnedOff()) return undefined;
  const bases = hostSlots();
  if (bases.length === 0) return undefined;
  mkdirSync(CLAIMS_DIR, { recursive: true, mode: 0o700 });
  for (let pass = 0; pass < 2; pass++) {
    for (let k = 0; k < bases.length; k++) {
      const i = (cursor + k) % bases.length;
      const base = bases[i]!;
      const file = join(CLAIMS_DIR, String(base));
      try {
        const fd = openSync(file, "wx", 0o600);
        writeSync(fd, `${process.pid} ${id}\n`);
        closeSync(fd);
        cursor = i + 1;
        let released = false;
        return {
          range: { base, count: IDS_PER_SANDBOX },
          release: () => {
            if (released) return;
            released = true;
            rmSync(file, { force: true });
          },
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
    }
    // Every range is claimed: free those whose Kiln process is gone (its sandboxes died with it).
    for (const name of readdirSync(CLAIMS_DIR)) {
      const pid = Number(read(join(CLAIMS_DIR, name)).split(" ")[0]);
      if (Number.isSafeInteger(pid) && pid > 0 && !alive(pid))
        rmSync(join(CLAIMS_DIR, name), { force: true });
    }
  }
  throw new Error(
    `every sandbox id range is in use (${bases.length}); add subordinate ids to /etc/subuid and /etc/subgid`,
  );
}
