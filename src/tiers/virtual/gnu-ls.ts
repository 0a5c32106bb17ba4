/**
 * `ls` for the virtual shell, as GNU coreutils prints it when its output is
 * not a terminal (one name a line): true modes, symlinks as links with their
 * targets, hard-link counts, owners, devices. just-bash's own `ls` printed
 * every file as -rw-r--r-- and followed symlinks.
 *
 * Options: -a -A -d -F -h -i -l -n -p -r -R -S -t -1 (and their long names);
 * -C, -x and --color are accepted and ignored (output is never a terminal).
 * Times are shown in UTC.
 */
import { type Command, type CommandContext, defineCommand, type FsStat } from "just-bash";
import { gnuText } from "./gnu-errors.ts";

/** What the workspace's stat adds to just-bash's FsStat (see SqliteFs). */
interface FullStat extends FsStat {
  nlink?: number;
  uid?: number;
  gid?: number;
  rdev?: number;
}

interface Flags {
  all: boolean;
  almostAll: boolean;
  dirSelf: boolean;
  classify: boolean;
  slash: boolean;
  human: boolean;
  inode: boolean;
  long: boolean;
  numeric: boolean;
  reverse: boolean;
  recursive: boolean;
  bySize: boolean;
  byTime: boolean;
}

interface Entry {
  name: string;
  abs: string;
  st: FullStat;
  target?: string;
}

const S_IFMT = 0o170000;
// File type bits to ls's type letter (a Map: an object literal's octal keys do not survive formatting).
const TYPE_CHAR = new Map<number, string>([
  [0o040000, "d"],
  [0o120000, "l"],
  [0o020000, "c"],
  [0o060000, "b"],
  [0o010000, "p"],
  [0o140000, "s"],
]);
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const SIX_MONTHS_MS = (365.2425 / 2) * 24 * 3600 * 1000;

function typeChar(st: FsStat): string {
  if (st.isDirectory) return "d";
  if (st.isSymbolicLink) return "l";
  return TYPE_CHAR.get(st.mode & S_IFMT) ?? "-";
}

/** `drwxr-xr-x`, with setuid/setgid/sticky as s/S, t/T. */
export function modeString(st: FsStat): string {
  const m = st.mode;
  const rwx = (r: number, w: number, x: number, special: boolean, ch: string) =>
    (m & r ? "r" : "-") +
    (m & w ? "w" : "-") +
    (special ? (m & x ? ch : ch.toUpperCase()) : m & x ? "x" : "-");
  return (
    typeChar(st) +
    rwx(0o400, 0o200, 0o100, (m & 0o4000) !== 0, "s") +
    rwx(0o040, 0o020, 0o010, (m & 0o2000) !== 0, "s") +
    rwx(0o004, 0o002, 0o001, (m & 0o1000) !== 0, "t")
  );
}

/** GNU's -h size: 1023, 1.0K, 9.9K, 10K, 1.5M (rounded up). */
export function humanSize(n: number): string {
  if (n < 1024) return String(n);
  const units = ["K", "M", "G", "T", "P", "E"];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  if (v < 10) {
    const r = Math.ceil(v * 10) / 10;
    return r >= 10 ? `10${units[u]}` : `${r.toFixed(1)}${units[u]}`;
  }
  return `${Math.ceil(v)}${units[u]}`;
}

function dateString(d: Date, nowMs: number): string {
  const day = String(d.getUTCDate()).padStart(2, " ");
  const recent = d.getTime() <= nowMs + 60_000 && nowMs - d.getTime() < SIX_MONTHS_MS;
  const tail = recent
    ? `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`
    : ` ${d.getUTCFullYear()}`;
  return `${MONTHS[d.getUTCMonth()]} ${day} ${tail}`;
}

const ownerName = (id: number | undefined, numeric: boolean) =>
  (id ?? 0) === 0 && !numeric ? "root" : String(id ?? 0);
/** 1 KiB blocks the entry takes, in 4 KiB blocks as on ext4 (a directory takes one; a symlink none, as a short one on ext4). */
const blocksOf = (st: FsStat) => (st.isFile || st.isDirectory ? Math.ceil(st.size / 4096) * 4 : 0);

function suffix(e: Entry, f: Flags): string {
  if (f.classify) {
    if (e.st.isDirectory) return "/";
    if (e.st.isSymbolicLink) return f.long ? "" : "@";
    if ((e.st.mode & S_IFMT) === 0o010000) return "|";
    if (e.st.isFile && e.st.mode & 0o111) return "*";
    return "";
  }
  return f.slash && e.st.isDirectory ? "/" : "";
}

function sortEntries(list: Entry[], f: Flags): Entry[] {
  const byName = (a: Entry, b: Entry) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const cmp = f.bySize
    ? (a: Entry, b: Entry) => b.st.size - a.st.size || byName(a, b)
    : f.byTime
      ? (a: Entry, b: Entry) => b.st.mtime.getTime() - a.st.mtime.getTime() || byName(a, b)
      : byName;
  const out = [...list].sort(cmp);
  return f.reverse ? out.reverse() : out;
}

/** Lines for `entries`, long or short. */
function format(entries: Entry[], f: Flags, nowMs: number): string {
  if (!f.long) {
    return entries.map((e) => `${f.inode ? `${e.st.ino ?? 0} ` : ""}${e.name}${suffix(e, f)}\n`).join("");
  }
  const rows = entries.map((e) => {
    const dev = (e.st.mode & S_IFMT) === 0o020000 && e.st.rdev !== undefined;
    return {
      e,
      ino: String(e.st.ino ?? 0),
      links: String(e.st.nlink ?? 1),
      owner: ownerName(e.st.uid, f.numeric),
      group: ownerName(e.st.gid, f.numeric),
      size: dev
        ? `${(e.st.rdev ?? 0) >> 8}, ${(e.st.rdev ?? 0) & 0xff}`
        : f.human
          ? humanSize(e.st.size)
          : String(e.st.size),
    };
  });
  const w = (k: "ino" | "links" | "owner" | "group" | "size") => Math.max(0, ...rows.map((r) => r[k].length));
  const [wi, wl, wo, wg, ws] = [w("ino"), w("links"), w("owner"), w("group"), w("size")];
  return rows
    .map(
      (r) =>
        `${f.inode ? `${r.ino.padStart(wi)} ` : ""}${modeString(r.e.st)} ${r.links.padStart(wl)} ${r.owner.padEnd(wo)} ${r.group.padEnd(wg)} ${r.size.padStart(ws)} ${dateString(r.e.st.mtime, nowMs)} ${r.e.name}${suffix(r.e, f)}${r.e.target !== undefined ? ` -> ${r.e.target}` : ""}\n`,
    )
    .join("");
}

function parse(args: string[]): { flags: Flags; names: string[] } | { error: string } {
  const flags: Flags = {
    all: false,
    almostAll: false,
    dirSelf: false,
    classify: false,
    slash: false,
    human: false,
    inode: false,
    long: false,
    numeric: false,
    reverse: false,
    recursive: false,
    bySize: false,
    byTime: false,
  };
  const LONG: Record<string, keyof Flags> = {
    all: "all",
    "almost-all": "almostAll",
    directory: "dirSelf",
    classify: "classify",
    "human-readable": "human",
    inode: "inode",
    "numeric-uid-gid": "numeric",
    reverse: "reverse",
    recursive: "recursive",
  };
  const SHORT: Record<string, keyof Flags> = {
    a: "all",
    A: "almostAll",
    d: "dirSelf",
    F: "classify",
    p: "slash",
    h: "human",
    i: "inode",
    l: "long",
    n: "numeric",
    r: "reverse",
    R: "recursive",
    S: "bySize",
    t: "byTime",
  };
  const names: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      names.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const name = a.slice(2).split("=")[0]!;
      if (name === "color" || name === "colour") continue;
      const k = LONG[name];
      if (!k) return { error: `ls: unrecognized option '${a}'\nTry 'ls --help' for more information.\n` };
      flags[k] = true;
    } else if (a.startsWith("-") && a.length > 1) {
      for (const c of a.slice(1)) {
        if (c === "1" || c === "C" || c === "x") continue;
        const k = SHORT[c];
        if (!k) return { error: `ls: invalid option -- '${c}'\nTry 'ls --help' for more information.\n` };
        flags[k] = true;
        if (c === "n") flags.long = true;
      }
    } else names.push(a);
  }
  if (flags.bySize) flags.byTime = false;
  return { flags, names };
}

/** GNU ls over the shell's filesystem. */
export function lsCommand(): Command {
  return defineCommand("ls", async (args, ctx: CommandContext) => {
    const p = parse(args);
    if ("error" in p) return { stdout: "", stderr: p.error, exitCode: 2 };
    const { flags: f } = p;
    const fs = ctx.fs;
    const nowMs = Date.now();
    let stderr = "";
    let exitCode = 0;
    const entry = async (name: string, abs: string, follow: boolean): Promise<Entry> => {
      let st = (await fs.lstat(abs)) as FullStat;
      let target: string | undefined;
      if (st.isSymbolicLink) {
        if (follow) {
          try {
            st = (await fs.stat(abs)) as FullStat;
          } catch {}
        }
        if (st.isSymbolicLink && f.long) target = await fs.readlink(abs).catch(() => "");
      }
      return { name, abs, st, ...(target !== undefined ? { target } : {}) };
    };
    const listDir = async (dir: Entry, header: boolean, first: boolean): Promise<string> => {
      let out = header ? `${first ? "" : "\n"}${dir.name}:\n` : "";
      let names: string[];
      try {
        names = await fs.readdir(dir.abs);
      } catch (e) {
        stderr += `ls: cannot open directory '${dir.name}': ${gnuText(e)}\n`;
        exitCode = 2;
        return out;
      }
      if (!f.all && !f.almostAll) names = names.filter((n) => !n.startsWith("."));
      const entries: Entry[] = [];
      for (const n of names) {
        const abs = dir.abs === "/" ? `/${n}` : `${dir.abs}/${n}`;
        try {
          entries.push(await entry(n, abs, false));
        } catch {}
      }
      if (f.all && !f.almostAll) {
        entries.push(await entry(".", dir.abs, true));
        entries.push(await entry("..", fs.resolvePath(dir.abs, ".."), true));
      }
      const sorted = sortEntries(entries, f);
      if (f.long) out += `total ${sorted.reduce((s, e) => s + blocksOf(e.st), 0)}\n`;
      out += format(sorted, f, nowMs);
      if (f.recursive) {
        for (const e of sorted) {
          if (!e.st.isDirectory || e.name === "." || e.name === "..") continue;
          const shown = dir.name.endsWith("/") ? `${dir.name}${e.name}` : `${dir.name}/${e.name}`;
          out += await listDir({ ...e, name: shown }, true, false);
        }
      }
      return out;
    };

    const operands = p.names.length > 0 ? p.names : ["."];
    const files: Entry[] = [];
    const dirs: Entry[] = [];
    // Command-line links are followed unless -l, -d or -F ask about the link itself.
    const follow = !f.long && !f.dirSelf && !f.classify;
    for (const name of operands) {
      try {
        const e = await entry(name, fs.resolvePath(ctx.cwd, name), follow);
        if (e.st.isDirectory && !f.dirSelf) dirs.push(e);
        else files.push(e);
      } catch (err) {
        stderr += `ls: cannot access '${name}': ${gnuText(err)}\n`;
        exitCode = 2;
      }
    }
    let stdout = format(sortEntries(files, f), f, nowMs);
    const header = f.recursive || operands.length > 1;
    const sortedDirs = sortEntries(dirs, f);
    for (let i = 0; i < sortedDirs.length; i++) {
      stdout += await listDir(sortedDirs[i]!, header, i === 0 && files.length === 0);
    }
    return { stdout, stderr, exitCode };
  });
}
