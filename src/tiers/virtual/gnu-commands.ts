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
 * - `ls` is Kiln's own (see gnu-ls.ts): true modes, symlinks with targets.
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

/** How GNU quotes a file name in a message: curly quotes in a UTF-8 locale, as coreutils' quote() does. */
export function gnuQuote(name: string, env: Map<string, string>): string {
  const locale = env.get("LC_ALL") || env.get("LC_MESSAGES") || env.get("LANG") || "";
  return /utf-?8/i.test(locale) ? `‘${name}’` : `'${name}'`;
}

// Node's message for an errno, as the store and just-bash's own filesystems phrase it.
const NODE_ERRNO = /\b(E[A-Z]+): [a-z][a-z ]*(?:, [a-z_]+ '[^'\n]*'(?: -> '[^'\n]*')?)?/g;
// A line that blames a path for ENOENT: `cmd: 'path': No such…` or `cmd: path: No such…`.
const NO_SUCH_FILE = /^(.*?)(?:'([^'\n]+)'|(?<=: )([^:'\n]+)): No such file or directory$/gm;

/** The errno `path` (relative to cwd) really fails with, if not ENOENT. */
async function realErrno(fs: IFileSystem, cwd: string, path: string): Promise<string | undefined> {
  try {
    await fs.stat(fs.resolvePath(cwd, path));
    return undefined;
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
  let stderr = r.stderr.replace(/^(cp: '[^'\n]*' and )'[^'\n]*'( are the same file)$/m, `$1'${shown}'$2`);
  if (stderr.includes(`cp: cannot stat '${src}': No such file or directory`)) {
    let srcExists = true;
    try {
      await ctx.fs.stat(ctx.fs.resolvePath(ctx.cwd, src));
    } catch {
      srcExists = false;
    }
    if (srcExists) {
      const code = await realErrno(ctx.fs, ctx.cwd, posix.dirname(ctx.fs.resolvePath(ctx.cwd, shown)));
      const why = GNU_ERRNO_TEXT[code ?? "ENOENT"];
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

/** Kiln's commands over just-bash's: the GNU layer described in the module comment. */
export function gnuCommands(): Command[] {
  const own: Command[] = [lsCommand(), mkdirCommand(), sedCommand(), wrapped("cp", fixCp)];
  const taken = new Set(own.map((c) => c.name));
  return [
    ...own,
    ...getCommandNames()
      .filter((n) => !taken.has(n))
      .map((n) => wrapped(n)),
  ];
}
