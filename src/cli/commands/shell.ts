/**
 * `kiln shell ID`: an interactive shell in a sandbox.
 *
 * On a tier with terminals (namespace, oci, gvisor), when this process runs
 * in a terminal, it is a login bash on a real pty in the sandbox, attached to
 * this terminal (raw keystrokes, resizes, Ctrl-C, full-screen programs).
 *
 * Otherwise (the virtual tier, piped input, or `--line`) it is a line shell
 * with line editing and a history file: each line runs as one command; the
 * working directory and exported variables carry over between lines through
 * a small state file in the sandbox's /tmp (saved with `export -p`, restored
 * with `source`), which works the same in just-bash and in real bash.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import type { Kiln } from "../../core/kiln.ts";
import type { Sandbox } from "../../core/sandbox.ts";
import { checkTierName } from "../../core/tier-registry.ts";
import { withKiln } from "../context.ts";
import { reportError } from "../output.ts";
import { runOnTerminal } from "./exec.ts";

const HISTORY_LINES = 1000;

function loadHistory(file: string): string[] {
  try {
    return readFileSync(file, "utf8").split("\n").filter(Boolean).reverse().slice(0, HISTORY_LINES);
  } catch {
    return [];
  }
}

/** Runs the interactive loop on `sb` until end of input or `exit`. */
async function repl(kiln: Kiln, sb: Sandbox): Promise<void> {
  const info = await sb.info();
  const historyFile = join(kiln.dataDir, "shell_history");
  // Loaded by the line shell alone, not by every command that registers it.
  const { createInterface } = await import("node:readline/promises");
  const { cwdFromState, newStateFile, wrapShellLine } = await import("../../core/shell-state.ts");
  const stateFile = newStateFile();
  const rl = createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: Boolean(process.stdin.isTTY),
    history: loadHistory(historyFile),
    historySize: HISTORY_LINES,
  });
  const entered: string[] = [];
  let cwd = info.cwd;
  process.stdout.write(`kiln shell: ${sb.id} (${info.tier}); type 'exit' or press Ctrl-D to leave\n`);
  const prompt = () => {
    rl.setPrompt(`${info.tier}:${cwd}$ `);
    rl.prompt();
  };
  try {
    prompt();
    // The async iterator buffers lines that arrive while a command runs (piped input).
    for await (const line of rl) {
      const trimmed = line.trim();
      if (trimmed === "exit" || trimmed === "logout") break;
      if (trimmed !== "") {
        entered.push(line);
        try {
          await sb.commands.run(wrapShellLine(line, stateFile), {
            cwd,
            onStdout: (d) => process.stdout.write(d),
            onStderr: (d) => process.stderr.write(d),
          });
          const state = await sb.files.read(stateFile).catch(() => "");
          cwd = cwdFromState(state) ?? cwd;
        } catch (e) {
          reportError(e, false);
        }
      }
      prompt();
    }
  } finally {
    rl.close();
    await sb.files.remove(stateFile).catch(() => {});
    if (entered.length) {
      const old = loadHistory(historyFile).reverse();
      writeFileSync(historyFile, `${[...old, ...entered].slice(-HISTORY_LINES).join("\n")}\n`, {
        mode: 0o600,
      });
    }
  }
}

/** Registers `shell`. */
export function registerShell(program: Command): void {
  program
    .command("shell")
    .description("interactive shell in a sandbox (with --demo: in a demo sandbox kept between runs)")
    .argument("[id]", "sandbox id")
    .option("--demo", "open (or create) the demo sandbox")
    .option("--tier <tier>", "tier of a new demo sandbox", "virtual")
    .option("--line", "a line shell even where the tier has terminals")
    .action(
      async (id: string | undefined, flags: { demo?: boolean; tier: string; line?: boolean }, cmd: Command) =>
        withKiln(cmd, async (kiln) => {
          let sb: Sandbox;
          if (id) sb = await kiln.connect(id);
          else if (flags.demo) {
            const existing = (await kiln.list({ metadata: { "kiln-demo": "1" } }))[0];
            sb = existing
              ? await kiln.connect(existing.id)
              : await kiln.create({ tier: checkTierName(flags.tier), metadata: { "kiln-demo": "1" } });
            if (!existing) await sb.files.write("/workspace/README.txt", "This is a Kiln demo sandbox.\n");
          } else {
            throw new (await import("../../core/errors.ts")).InvalidArgumentError(
              "give a sandbox id, or --demo",
            );
          }
          const info = await sb.info();
          const pty = (await kiln.backend(info.tier)).capabilities.pty;
          if (pty && !flags.line && process.stdin.isTTY) {
            process.stderr.write(`kiln shell: ${sb.id} (${info.tier}); exit or Ctrl-D leaves\r\n`);
            process.exitCode = await runOnTerminal(sb, "exec bash -il", { interactive: true });
            return;
          }
          await repl(kiln, sb);
        }),
    );
}
