/** `kiln run` (ephemeral sandbox) and `kiln exec` (existing sandbox): run one command, stream its output. */
import type { Command } from "commander";
import { InvalidArgumentError } from "../../core/errors.ts";
import type { Sandbox } from "../../core/sandbox.ts";
import { checkTierName } from "../../core/tier-registry.ts";
import { withKiln } from "../main.ts";
import { collect, keyValues, printJson } from "../output.ts";

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

interface ExecFlags {
  env?: string[];
  cwd?: string;
  timeout?: string;
  stdin?: boolean;
}

/** Runs `words` in `sb`, streaming output; sets the process exit code to the command's. */
async function execIn(sb: Sandbox, words: string[], flags: ExecFlags, json: boolean): Promise<void> {
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
    .option("-t, --timeout <ms>", "command time limit in ms")
    .option("--no-stdin", "do not forward piped stdin");
}

/** Registers `run` and `exec`. */
export function registerExec(program: Command): void {
  execOptions(
    program
      .command("run")
      .description("run a command in a new sandbox, then remove it")
      .option("--tier <tier>", "isolation tier", "virtual")
      .option("--template <name>", "template (root filesystem)", "default")
      .argument("<command...>", "command line (after --)")
      .passThroughOptions(),
  ).action(async (words: string[], flags: ExecFlags & { tier: string; template: string }, cmd: Command) =>
    withKiln(cmd, async (kiln, g) => {
      const sb = await kiln.create({ tier: checkTierName(flags.tier), template: flags.template });
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
