/**
 * Kiln's layer over just-bash's commands, so that what they print matches
 * GNU coreutils on a real disk (the namespace tier's Debian):
 * - every bundled command's errors say GNU's words (`No such file or
 *   directory`, `Not a directory`), never Node's (`ENOENT: no such file or
 *   directory, open '/workspace/x'`), and blame the errno the path really
 *   has (just-bash says "No such file" for any failed open);
 * - `cp` names the destination it could not create, and the operand as typed;
 * - `mkdir` is GNU's (`-p` under a file is `Not a directory`, naming it);
 * - `sed -i` replaces a symlink operand with a regular file, as GNU sed does
 *   (just-bash writes through it);
 * - `ls` is Kiln's own (see gnu-ls.ts): true modes, symlinks with targets;
 *   so are `realpath` (missing from just-bash) and `stat -c` (gnu-stat.ts);
 * - `head`, `sort`, `find`, `mv` word their errors as GNU's; `uniq -c` pads
 *   counts to seven columns; `sed -iSUFFIX` keeps the backup.
 */
import { posix } from "node:path";
import {
  type Command,
  type CommandContext,
  defineCommand,
  type ExecResult,
  getCommandNames,
  type IFileSystem,
} from "just-bash";
import { errnoOf, GNU_ERRNO_TEXT, gnuText } from "./gnu-errors.ts";
import { lsCommand } from "./gnu-ls.ts";
import { statCommand } from "./gnu-stat.ts";

/** How GNU quotes a file name in a message: curly quotes in a UTF-8 locale, as coreutils' quote() does. */
export function gnuQuote(name: string, env: Map<string, string>): string {
  const locale = env.get("LC_ALL") || env.get("LC_MESSAGES") || env.get("LANG") || "";
  return /utf-?8/i.test(locale) ? `‘${name}’` : `'${name}'`;
}

// Node's message for an errno, as the store and just-bash's own filesystems phrase it.
const NODE_ERRNO = /\b(E[A-Z]+): [a-z][a-z ]*(?:, [a-z_]+ '[^'\n]*'(?: -> '[^'\n]*')?)?/g;
// A line that blames a path for ENOENT: `cmd: 'path': No such…` or `cmd: path: No such…`.
const NO_SUCH_FILE = /^(.*?)(?:'([^'\n]+)'|(?<=: )([^:'\n]+)): No such file or directory$/gm;

/** The errno `path` (relative to cwd) really fails with when read, if not ENOENT (a directory: EISDIR). */
async function realErrno(fs: IFileSystem, cwd: string, path: string): Promise<string | undefined> {
  try {
    return (await fs.stat(fs.resolvePath(cwd, path))).isDirectory ? "EISDIR" : undefined;
  } catch (e) {
    const code = errnoOf(e);
    return code === "ENOENT" ? undefined : code;
  }
}

/** Rewrites a command's stderr into GNU's words (see the module comment). */
export async function gnuStderr(stderr: string, fs: IFileSystem, cwd: string): Promise<string> {
  if (stderr.length === 0) return stderr;
  let out = stderr.replace(NODE_ERRNO, (m, code: string) => GNU_ERRNO_TEXT[code] ?? m);
  if (!out.includes("No such file or directory")) return out;
  const fixes = new Map<string, string>();
  for (const m of out.matchAll(NO_SUCH_FILE)) {
    const path = m[2] ?? m[3];
    if (!path || fixes.has(m[0])) continue;
    const code = await realErrno(fs, cwd, path);
    if (code && GNU_ERRNO_TEXT[code])
      fixes.set(m[0], m[0].replace(/No such file or directory$/, GNU_ERRNO_TEXT[code]));
  }
  for (const [from, to] of fixes) out = out.split(from).join(to);
  return out;
}

type Ctx = CommandContext & { origCommand?: (args: string[]) => Promise<ExecResult> };

/** Runs the bundled command this one shadows. */
async function original(name: string, args: string[], ctx: Ctx): Promise<ExecResult> {
  if (!ctx.origCommand) return { stdout: "", stderr: `${name}: not available\n`, exitCode: 127 };
  return ctx.origCommand(args);
}

/** The bundled command `name`, its stderr in GNU's words. */
function wrapped(
  name: string,
  fix?: (r: ExecResult, args: string[], ctx: Ctx) => Promise<ExecResult>,
): Command {
  return defineCommand(name, async (args, ctx: Ctx) => {
    let r = await original(name, args, ctx);
    if (fix) r = await fix(r, args, ctx);
    const stderr = await gnuStderr(r.stderr, ctx.fs, ctx.cwd);
    return stderr === r.stderr ? r : { ...r, stderr };
  });
}

/** Operands of a coreutils-style command line (options start with `-`, until `--`). */
function operands(args: string[]): string[] {
  const i = args.indexOf("--");
  const before = i < 0 ? args : args.slice(0, i);
  return [...before.filter((a) => !a.startsWith("-") || a === "-"), ...(i < 0 ? [] : args.slice(i + 1))];
}

/** cp: the destination as typed in "same file" errors, and the destination blamed when it cannot be created. */
async function fixCp(r: ExecResult, args: string[], ctx: Ctx): Promise<ExecResult> {
  if (r.exitCode === 0 || r.stderr.length === 0) return r;
  const ops = operands(args);
  if (ops.length !== 2) return r;
  const [src, dest] = ops as [string, string];
  const destAbs = ctx.fs.resolvePath(ctx.cwd, dest);
  let destIsDir = false;
  try {
    destIsDir = (await ctx.fs.stat(destAbs)).isDirectory;
  } catch {}
  const shown = destIsDir ? `${dest.replace(/\/+$/, "")}/${posix.basename(src)}` : dest;
  let stderr = r.stderr
    .replace(/^(cp: '[^'\n]*' and )'[^'\n]*'( are the same file)$/m, `$1'${shown}'$2`)
    .replace(
      /^cp: cannot copy ('[^'\n]*') into itself, '[^'\n]*'$/m,
      `cp: cannot copy a directory, $1, into itself, '${shown}'`,
    );
  if (stderr.includes(`cp: cannot stat '${src}': No such file or directory`)) {
    let srcExists = true;
    try {
      await ctx.fs.stat(ctx.fs.resolvePath(ctx.cwd, src));
    } catch {
      srcExists = false;
    }
    if (srcExists) {
      const code = await realErrno(ctx.fs, ctx.cwd, posix.dirname(ctx.fs.resolvePath(ctx.cwd, shown)));
      const why = GNU_ERRNO_TEXT[code === undefined || code === "EISDIR" ? "ENOENT" : code];
      stderr = stderr.replace(
        `cp: cannot stat '${src}': No such file or directory`,
        `cp: cannot create regular file '${shown}': ${why}`,
      );
    }
  }
  return { ...r, stderr };
}

/** sed: with -i, a symlink operand becomes a regular file holding the edit (GNU sed renames over the link). */
function sedCommand(): Command {
  return defineCommand("sed", async (args, ctx: Ctx) => {
    const inPlace = args.some(
      (a) => a === "--in-place" || a.startsWith("--in-place=") || /^-[a-zA-Z]*i/.test(a),
    );
    const links: { abs: string; target: string }[] = [];
    if (inPlace && !args.includes("--follow-symlinks")) {
      for (const file of sedFiles(args)) {
        const abs = ctx.fs.resolvePath(ctx.cwd, file);
        try {
          if (!(await ctx.fs.lstat(abs)).isSymbolicLink) continue;
          const target = await ctx.fs.readlink(abs);
          const st = await ctx.fs.stat(abs);
          const data = await ctx.fs.readFileBuffer(abs);
          await ctx.fs.rm(abs);
          await ctx.fs.writeFile(abs, data);
          await ctx.fs.chmod(abs, st.mode & 0o7777);
          links.push({ abs, target });
        } catch {
          // A dangling or unreadable link: sed reports it itself.
        }
      }
    }
    // -iSUFFIX / --in-place=SUFFIX: keep each file's old content beside it (just-bash ignores the suffix).
    const suffix = args
      .map((a) => (a.startsWith("--in-place=") ? a.slice(11) : /^-[a-zA-Z]*i(.+)$/.exec(a)?.[1]))
      .find((s) => s !== undefined);
    if (inPlace && suffix) {
      for (const file of sedFiles(args)) {
        const abs = ctx.fs.resolvePath(ctx.cwd, file);
        const backup = suffix.includes("*")
          ? suffix.replaceAll("*", posix.basename(abs))
          : `${posix.basename(abs)}${suffix}`;
        try {
          await ctx.fs.writeFile(posix.join(posix.dirname(abs), backup), await ctx.fs.readFileBuffer(abs));
        } catch {
          // A missing file: sed reports it itself.
        }
      }
    }
    const r = await original("sed", args, ctx);
    if (r.exitCode !== 0) {
      // sed stopped (a bad script, a missing file): put back the links it had not yet replaced.
      for (const l of links) {
        try {
          await ctx.fs.rm(l.abs);
          await ctx.fs.symlink(l.target, l.abs);
        } catch {}
      }
    }
    const stderr = await gnuStderr(r.stderr, ctx.fs, ctx.cwd);
    return stderr === r.stderr ? r : { ...r, stderr };
  });
}

/** The file operands of a sed command line. */
function sedFiles(args: string[]): string[] {
  const files: string[] = [];
  let script = false;
  let rest = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (rest || a === "-" || !a.startsWith("-")) {
      files.push(a);
      continue;
    }
    if (a === "--") rest = true;
    else if (a === "-e" || a === "-f" || a === "--expression" || a === "--file" || a === "-l") {
      if (a !== "-l") script = true;
      i++;
    } else if (a.startsWith("--expression=") || a.startsWith("--file=") || /^-[a-zA-Z]*[ef]./.test(a)) {
      script = true;
    } else if (/^-[a-zA-Z]*[ef]$/.test(a)) {
      script = true;
      i++;
    }
  }
  return script ? files : files.slice(1);
}

/** mkdir, as GNU's: -p, -m MODE (octal), -v; errors name the component that failed. */
function mkdirCommand(): Command {
  return defineCommand("mkdir", async (args, ctx) => {
    let parents = false;
    let verbose = false;
    let mode: number | undefined;
    const names: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      if (a === "--") {
        names.push(...args.slice(i + 1));
        break;
      }
      if (a === "--parents") parents = true;
      else if (a === "--verbose") verbose = true;
      else if (a === "-m" || a === "--mode" || a.startsWith("--mode=") || /^-[pv]*m/.test(a)) {
        const inline = a.startsWith("--mode=") ? a.slice(7) : /^-[pv]*m(.+)$/.exec(a)?.[1];
        if (/^-[pv]*m/.test(a)) {
          parents ||= a.includes("p");
          verbose ||= a.includes("v");
        }
        const v = inline ?? args[++i] ?? "";
        if (!/^[0-7]{1,4}$/.test(v))
          return { stdout: "", stderr: `mkdir: invalid mode ${gnuQuote(v, ctx.env)}\n`, exitCode: 1 };
        mode = Number.parseInt(v, 8);
      } else if (/^-[pv]+$/.test(a)) {
        parents ||= a.includes("p");
        verbose ||= a.includes("v");
      } else if (a.startsWith("-") && a !== "-") {
        return {
          stdout: "",
          stderr: `mkdir: invalid option -- '${a.replace(/^-+/, "")[0]}'\nTry 'mkdir --help' for more information.\n`,
          exitCode: 1,
        };
      } else names.push(a);
    }
    if (names.length === 0) {
      return {
        stdout: "",
        stderr: "mkdir: missing operand\nTry 'mkdir --help' for more information.\n",
        exitCode: 1,
      };
    }
    let stdout = "";
    let stderr = "";
    let exitCode = 0;
    const made = async (shown: string, abs: string, finalMode: number | undefined) => {
      await ctx.fs.mkdir(abs);
      if (finalMode !== undefined) await ctx.fs.chmod(abs, finalMode);
      if (verbose) stdout += `mkdir: created directory ${gnuQuote(shown, ctx.env)}\n`;
    };
    for (const name of names) {
      const abs = ctx.fs.resolvePath(ctx.cwd, name);
      if (!parents) {
        try {
          await made(name, abs, mode);
        } catch (e) {
          stderr += `mkdir: cannot create directory ${gnuQuote(name, ctx.env)}: ${gnuText(e)}\n`;
          exitCode = 1;
        }
        continue;
      }
      // -p: each missing component in turn; an existing one must be a directory.
      const parts = name.split("/");
      let shown = "";
      for (let k = 0; k < parts.length; k++) {
        const part = parts[k]!;
        shown = k === 0 ? part : `${shown}/${part}`;
        if (part === "" || part === "." || part === "..") continue;
        const at = ctx.fs.resolvePath(ctx.cwd, shown || "/");
        const last = parts.slice(k + 1).every((p) => p === "");
        try {
          const st = await ctx.fs.stat(at);
          if (st.isDirectory) continue;
          stderr += `mkdir: cannot create directory ${gnuQuote(shown, ctx.env)}: ${last ? "File exists" : "Not a directory"}\n`;
          exitCode = 1;
          break;
        } catch (e) {
          if (errnoOf(e) !== "ENOENT") {
            stderr += `mkdir: cannot create directory ${gnuQuote(shown, ctx.env)}: ${gnuText(e)}\n`;
            exitCode = 1;
            break;
          }
        }
        try {
          await made(shown, at, last ? mode : undefined);
        } catch (e) {
          stderr += `mkdir: cannot create directory ${gnuQuote(shown, ctx.env)}: ${gnuText(e)}\n`;
          exitCode = 1;
          break;
        }
      }
    }
    return { stdout, stderr, exitCode };
  });
}

/** mv: GNU's words for a move into itself, naming the destination as typed. */
async function fixMv(r: ExecResult, args: string[], ctx: Ctx): Promise<ExecResult> {
  const ops = operands(args);
  if (r.exitCode === 0 || ops.length !== 2) return r;
  const [src, dest] = ops as [string, string];
  let destIsDir = false;
  try {
    destIsDir = (await ctx.fs.stat(ctx.fs.resolvePath(ctx.cwd, dest))).isDirectory;
  } catch {}
  const shown = destIsDir ? `${dest.replace(/\/+$/, "")}/${posix.basename(src)}` : dest;
  const stderr = r.stderr.replace(
    /^mv: cannot move ('[^'\n]*') into itself, '[^'\n]*'$/m,
    `mv: cannot move $1 to a subdirectory of itself, '${shown}'`,
  );
  return { ...r, stderr };
}

/** Rewrites `cmd: NAME: <errno text>` lines of a command's stderr with `to(name, text)`. */
function fixLines(
  cmd: string,
  to: (name: string, text: string, env: Map<string, string>) => string,
  exitCode?: number,
) {
  return async (r: ExecResult, _args: string[], ctx: Ctx): Promise<ExecResult> => {
    if (r.exitCode === 0) return r;
    const fixed = await gnuStderr(r.stderr, ctx.fs, ctx.cwd);
    const re = new RegExp(`^${cmd}: ([^:\n]+): (${Object.values(GNU_ERRNO_TEXT).join("|")})$`, "gm");
    const stderr = fixed.replace(re, (_m, name: string, text: string) => to(name, text, ctx.env));
    return stderr === r.stderr ? r : { ...r, stderr, ...(exitCode !== undefined ? { exitCode } : {}) };
  };
}

/** realpath: the canonical path of each operand (all of it must exist). */
function realpathCommand(): Command {
  return defineCommand("realpath", async (args, ctx) => {
    let stdout = "";
    let stderr = "";
    let exitCode = 0;
    for (const name of operands(args)) {
      const abs = ctx.fs.resolvePath(ctx.cwd, name);
      try {
        stdout += `${await ctx.fs.realpath(abs).catch(async (e) => {
          // As GNU's (-E): every component but the last must exist.
          if (errnoOf(e) !== "ENOENT" || abs === "/") throw e;
          const dir = await ctx.fs.realpath(posix.dirname(abs));
          return posix.join(dir, posix.basename(abs));
        })}\n`;
      } catch (e) {
        stderr += `realpath: ${name}: ${gnuText(e)}\n`;
        exitCode = 1;
      }
    }
    if (operands(args).length === 0) {
      return {
        stdout: "",
        stderr: "realpath: missing operand\nTry 'realpath --help' for more information.\n",
        exitCode: 1,
      };
    }
    return { stdout, stderr, exitCode };
  });
}

/** uniq -c: counts in GNU's seven columns. */
async function fixUniq(r: ExecResult, args: string[]): Promise<ExecResult> {
  if (!args.some((a) => a === "-c" || a === "--count" || /^-[a-zA-Z]*c/.test(a))) return r;
  return { ...r, stdout: r.stdout.replace(/^ *(\d+) /gm, (_m, n: string) => `${n.padStart(7)} `) };
}

/** Kiln's commands over just-bash's: the GNU layer described in the module comment (with every bundled command). */
export function gnuCommands(): Command[] {
  const own: Command[] = [
    lsCommand(),
    mkdirCommand(),
    sedCommand(),
    realpathCommand(),
    statCommand(),
    wrapped("cp", fixCp),
    wrapped("mv", fixMv),
    wrapped("uniq", fixUniq),
    wrapped(
      "head",
      fixLines("head", (name, text) => `head: cannot open '${name}' for reading: ${text}`),
    ),
    wrapped(
      "sort",
      fixLines("sort", (name, text) => `sort: cannot read: ${name}: ${text}`, 2),
    ),
    wrapped(
      "find",
      fixLines("find", (name, text, env) => `find: ${gnuQuote(name, env)}: ${text}`),
    ),
  ];
  const taken = new Set(own.map((c) => c.name));
  return [
    ...own,
    ...getCommandNames()
      .filter((n) => !taken.has(n))
      .map((n) => wrapped(n)),
  ];
}
