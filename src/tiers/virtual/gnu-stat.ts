/**
 * `stat -c FORMAT` / `--printf FORMAT` for the virtual shell, as GNU's: a
 * link is described, not followed, unless -L; %h, %i, %u, %U, %F and the
 * times come from the workspace's inode. Without a format the bundled `stat`
 * runs (its default layout is just-bash's).
 */
import type { Command, CommandContext, ExecResult, FsStat } from "just-bash";
import { defineCommand } from "just-bash";
import { gnuText } from "./gnu-errors.ts";
import { modeString } from "./gnu-ls.ts";

interface FullStat extends FsStat {
  nlink?: number;
  uid?: number;
  gid?: number;
  mtimeNs?: bigint;
}

type Ctx = CommandContext & { origCommand?: (args: string[]) => Promise<ExecResult> };

const S_IFMT = 0o170000;

function typeName(st: FsStat): string {
  if (st.isDirectory) return "directory";
  if (st.isSymbolicLink) return "symbolic link";
  if ((st.mode & S_IFMT) === 0o020000) return "character special file";
  return st.size === 0 ? "regular empty file" : "regular file";
}

/** `2026-12-05 08:08:00.123456789 +0000`, as GNU prints %y in UTC (to the ns when the store has them). */
function humanTime(st: FullStat): string {
  const ns = st.mtimeNs ?? BigInt(st.mtime.getTime()) * 1_000_000n;
  const frac = ((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n;
  const iso = new Date(Number((ns - frac) / 1_000_000n)).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${String(frac).padStart(9, "0")} +0000`;
}

const ESCAPES: Record<string, string> = { n: "\n", t: "\t", "\\": "\\", '"': '"', a: "\x07", r: "\r" };

function render(format: string, name: string, st: FullStat, target: string | undefined): string {
  const owner = (id: number | undefined) => ((id ?? 0) === 0 ? "root" : String(id));
  return format.replace(/%(.)/g, (m, c: string) => {
    switch (c) {
      case "a":
        return (st.mode & 0o7777).toString(8);
      case "A":
        return modeString(st);
      case "s":
        return String(st.size);
      case "n":
        return name;
      case "N":
        return target === undefined ? `'${name}'` : `'${name}' -> '${target}'`;
      case "F":
        return typeName(st);
      case "h":
        return String(st.nlink ?? 1);
      case "i":
        return String(st.ino ?? 0);
      case "u":
        return String(st.uid ?? 0);
      case "g":
        return String(st.gid ?? 0);
      case "U":
        return owner(st.uid);
      case "G":
        return owner(st.gid);
      case "Y":
      case "X":
      case "Z":
        return String(Math.floor(st.mtime.getTime() / 1000));
      case "y":
      case "x":
      case "z":
        return humanTime(st);
      case "%":
        return "%";
      default:
        return m;
    }
  });
}

/** GNU stat with a format. */
export function statCommand(): Command {
  return defineCommand("stat", async (args, ctx: Ctx) => {
    let format: string | undefined;
    let printf = false;
    let follow = false;
    const names: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      if (a === "-c" || a === "--format") format = args[++i];
      else if (a.startsWith("--format=")) format = a.slice(9);
      else if (a === "--printf") {
        format = args[++i];
        printf = true;
      } else if (a.startsWith("--printf=")) {
        format = a.slice(9);
        printf = true;
      } else if (a === "-L" || a === "--dereference") follow = true;
      else if (a.startsWith("-c") && a.length > 2) format = a.slice(2);
      else if (a === "--") names.push(...args.slice(i + 1));
      else if (a.startsWith("-") && a !== "-") format = undefined;
      else names.push(a);
    }
    if (format === undefined || names.length === 0) {
      return ctx.origCommand
        ? ctx.origCommand(args)
        : { stdout: "", stderr: "stat: missing operand\n", exitCode: 1 };
    }
    const fmt = printf ? format.replace(/\\(.)/g, (m, c: string) => ESCAPES[c] ?? m) : `${format}\n`;
    let stdout = "";
    let stderr = "";
    let exitCode = 0;
    for (const name of names) {
      const abs = ctx.fs.resolvePath(ctx.cwd, name);
      try {
        const st = (follow ? await ctx.fs.stat(abs) : await ctx.fs.lstat(abs)) as FullStat;
        const target = st.isSymbolicLink ? await ctx.fs.readlink(abs) : undefined;
        stdout += render(fmt, name, st, target);
      } catch (e) {
        stderr += `stat: cannot statx '${name}': ${gnuText(e)}\n`;
        exitCode = 1;
      }
    }
    return { stdout, stderr, exitCode };
  });
}
