/**
 * `kiln run` (ephemeral sandbox) and `kiln exec` (existing sandbox): run one
 * command, stream its output. With `-t` (docker's `--tty`) the command runs on
 * a pseudo-terminal in the sandbox, sized like the caller's terminal and
 * resized with it; with `-i` the caller's keystrokes (raw, when stdin is a
 * terminal) go to it.
 */
import type { Command } from "commander";
import { InvalidArgumentError, isKilnError } from "../../core/errors.ts";
import type { Sandbox } from "../../core/sandbox.ts";
import { checkTierName } from "../../core/tier-registry.ts";
import { withKiln } from "../context.ts";
import { type NetworkFlags, networkFromFlags, networkOptions } from "../network-flags.ts";
import { collect, keyValues, printJson } from "../output.ts";
import { ALLOW_UNENFORCED_HELP, BUILD_TEMPLATE_HELP, withTemplateBuild } from "../progress.ts";

/** Joins argv words into one command line, quoting words that need it. */
export function commandLine(input: string[]): string {
  const words = input[0] === "--" ? input.slice(1) : input;
  if (words.length === 0) throw new InvalidArgumentError("no command given");
  if (words.length === 1) return words[0]!;
  return words
    .map((w) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(w) ? w : `'${w.replace(/'/g, "'\\''")}'`))
    .join(" ");
}

/** Reads all of stdin when it is piped (not a terminal). */
async function pipedStdin(): Promise<Uint8Array | undefined> {
  if (process.stdin.isTTY) return undefined;
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return parts.length ? new Uint8Array(Buffer.concat(parts)) : undefined;
}

export interface ExecFlags {
  env?: string[];
  cwd?: string;
  timeout?: string;
  stdin?: boolean;
  tty?: boolean;
  interactive?: boolean;
}

/** The caller's terminal size (80x24 when stdout is not a terminal). */
function termSize(): { cols: number; rows: number } {
  return { cols: process.stdout.columns || 80, rows: process.stdout.rows || 24 };
}

/**
 * Runs `command` on a pty in `sb`, attached to this process's terminal, and
 * resolves with its exit code. Output is written as the terminal produces it.
 */
export async function runOnTerminal(
  sb: Sandbox,
  command: string,
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number; interactive: boolean },
): Promise<number> {
  const stdin = process.stdin;
  const h = await sb.commands.run(command, {
    background: true,
    pty: termSize(),
    env: { TERM: process.env.TERM || "xterm-256color", ...(options.env ?? {}) },
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    onStdout: (d) => process.stdout.write(d),
  });
  const onResize = () => {
    const { cols, rows } = termSize();
    void h.resize(cols, rows).catch(() => {});
  };
  process.stdout.on("resize", onResize);
  const raw = options.interactive && stdin.isTTY;
  const onData = (d: Buffer) => void h.sendStdin(new Uint8Array(d)).catch(() => {});
  // Piped input that ends is an end of file typed at the terminal (Ctrl-D).
  const onEnd = () => void h.closeStdin().catch(() => {});
  if (options.interactive) {
    if (raw) stdin.setRawMode(true);
    stdin.on("data", onData);
    stdin.once("end", onEnd);
    stdin.resume();
  }
  try {
    return (await h.wait()).exitCode;
  } catch (e) {
    if (isKilnError(e) && e.result) {
      process.stderr.write(`\r\nkiln: ${e.message}\r\n`);
      return e.result.exitCode || 1;
    }
    throw e;
  } finally {
    process.stdout.off("resize", onResize);
    if (options.interactive) {
      stdin.off("data", onData);
      stdin.off("end", onEnd);
      if (raw) stdin.setRawMode(false);
      stdin.pause();
    }
  }
}

/** Runs `words` in `sb`, streaming output; sets the process exit code to the command's. */
async function execIn(sb: Sandbox, words: string[], flags: ExecFlags, json: boolean): Promise<void> {
  if (flags.tty) {
    if (json)
      throw new InvalidArgumentError("--json and -t do not go together (a terminal's output is not JSON)");
    process.exitCode = await runOnTerminal(sb, commandLine(words), {
      env: keyValues(flags.env, "--env"),
      ...(flags.cwd ? { cwd: flags.cwd } : {}),
      ...(flags.timeout ? { timeoutMs: Number(flags.timeout) } : {}),
      interactive: Boolean(flags.interactive),
    });
    return;
  }
  const stdin = flags.stdin === false ? undefined : await pipedStdin();
  const r = await sb.commands.run(commandLine(words), {
    env: keyValues(flags.env, "--env"),
    ...(flags.cwd ? { cwd: flags.cwd } : {}),
    ...(flags.timeout ? { timeoutMs: Number(flags.timeout) } : {}),
    ...(stdin ? { stdin } : {}),
    ...(json
      ? {}
      : {
          onStdout: (d: string) => process.stdout.write(d),
          onStderr: (d: string) => process.stderr.write(d),
        }),
  });
  if (json) printJson(r);
  process.exitCode = r.exitCode;
}

function execOptions(cmd: Command): Command {
  return cmd
    .option("-e, --env <KEY=VALUE>", "environment variable (repeatable)", collect)
    .option("-w, --cwd <dir>", "working directory")
    .option("--timeout <ms>", "command time limit in ms (default: the sandbox's; with -t: none)")
    .option(
      "-t, --tty",
      "run on a pseudo-terminal in the sandbox (tiers with terminals: namespace, oci, gvisor)",
    )
    .option("-i, --interactive", "with -t: send this terminal's keystrokes to the command")
    .option("--no-stdin", "do not forward piped stdin");
}

/** Registers `run` and `exec`. */
export function registerExec(program: Command): void {
  execOptions(
    networkOptions(program.command("run"))
      .description("run a command in a new sandbox, then remove it")
      .option("--tier <tier>", "isolation tier", "virtual")
      .option("--template <name>", "template (root filesystem)", "default")
      .option("--build-template", BUILD_TEMPLATE_HELP)
      .option("--allow-unenforced-limits", ALLOW_UNENFORCED_HELP)
      .argument("<command...>", "command line (after --)")
      .passThroughOptions(),
  ).action(
    async (
      words: string[],
      flags: ExecFlags &
        NetworkFlags & {
          tier: string;
          template: string;
          buildTemplate?: boolean;
          allowUnenforcedLimits?: boolean;
        },
      cmd: Command,
    ) =>
      withKiln(cmd, async (kiln, g) => {
        const network = networkFromFlags(flags);
        const sb = await withTemplateBuild(Boolean(flags.buildTemplate), Boolean(g.json), (buildTemplate) =>
          kiln.create({
            tier: checkTierName(flags.tier),
            template: flags.template,
            ...(network ? { network } : {}),
            ...(buildTemplate ? { buildTemplate } : {}),
            ...(flags.allowUnenforcedLimits ? { allowUnenforcedLimits: true } : {}),
          }),
        );
        try {
          await execIn(sb, words, flags, Boolean(g.json));
        } finally {
          await sb.kill();
        }
      }),
  );

  execOptions(
    program
      .command("exec")
      .description("run a command in an existing sandbox")
      .argument("<id>", "sandbox id")
      .argument("<command...>", "command line (after --)")
      .passThroughOptions(),
  ).action(async (id: string, words: string[], flags: ExecFlags, cmd: Command) =>
    withKiln(cmd, async (kiln, g) => execIn(await kiln.connect(id), words, flags, Boolean(g.json))),
  );
}
