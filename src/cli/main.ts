#!/usr/bin/env node
/**
 * The `kiln` command line: docker-style verbs over the library
 * (`run`, `create`, `exec`, `shell`, `ls`, `rm`, `cp`, `logs`, `move`, `doctor`),
 * tables by default and `--json` everywhere. Errors are one line and a
 * non-zero exit; a sandboxed command's own exit code passes through.
 */
import { Command, Option } from "commander";
import { InvalidArgumentError } from "../core/errors.ts";
import { registerAgentFs } from "./commands/agentfs.ts";
import { registerCopy } from "./commands/copy.ts";
import { registerDoctor } from "./commands/doctor.ts";
import { registerExec } from "./commands/exec.ts";
import { registerKeys } from "./commands/keys.ts";
import { registerLifecycle } from "./commands/lifecycle.ts";
import { registerMcp } from "./commands/mcp.ts";
import { registerNetwork } from "./commands/network.ts";
import { registerPort } from "./commands/port.ts";
import { registerServe } from "./commands/serve.ts";
import { registerShell } from "./commands/shell.ts";
import { registerState } from "./commands/state.ts";
import { registerStats } from "./commands/stats.ts";
import { registerTemplate } from "./commands/template.ts";
import { registerWatch } from "./commands/watch.ts";
import { reportError } from "./output.ts";

/** The last message commander wrote for a usage error (printed by main() as one line). */
const USAGE = { last: "" };

function buildProgram(): Command {
  const program = new Command("kiln")
    .description(
      "Kiln: sandboxes for AI agents and untrusted code, from an in-process interpreter to a microVM",
    )
    .version("0.1.0")
    .addOption(new Option("--data-dir <dir>", "data directory").env("KILN_DATA_DIR"))
    .option("--json", "print JSON instead of tables")
    .enablePositionalOptions()
    // Set before the subcommands exist, so that they inherit both: a usage error in any of them
    // is thrown to main(), which prints it as one line (or JSON) and exits 2.
    .exitOverride()
    .configureOutput({
      writeErr: (s) => {
        USAGE.last = s;
      },
    });
  registerExec(program);
  registerLifecycle(program);
  registerState(program);
  registerShell(program);
  registerCopy(program);
  registerAgentFs(program);
  registerWatch(program);
  registerStats(program);
  registerPort(program);
  registerNetwork(program);
  registerDoctor(program);
  registerMcp(program);
  registerTemplate(program);
  registerServe(program);
  registerKeys(program);
  return program;
}

/**
 * Moves global options given after a subcommand (`kiln ls --json`) to the
 * front, as commander wants them; nothing after `--` is touched.
 */
export function hoistGlobals(argv: string[]): string[] {
  const front: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === "--json") front.push(a);
    else if (a === "--data-dir" && i + 1 < argv.length) front.push(a, argv[++i]!);
    else if (a.startsWith("--data-dir=")) front.push(a);
    else rest.push(a);
  }
  return [...front, ...rest];
}

/** Runs the CLI with `argv` (without the node and script paths); resolves to the exit code. */
export async function main(rawArgv: string[]): Promise<number> {
  const argv = hoistGlobals(rawArgv);
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return Number(process.exitCode ?? 0);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "commander.helpDisplayed" || code === "commander.version" || code === "commander.help")
      return 0;
    if (typeof code === "string" && code.startsWith("commander.")) {
      const message = (e as Error).message.replace(/^error: /, "").trim() || USAGE.last.trim();
      const sub = argv.find((a, i) => !a.startsWith("-") && argv[i - 1] !== "--data-dir");
      const help =
        sub && program.commands.some((c) => c.name() === sub) ? `kiln ${sub} --help` : "kiln --help";
      return reportError(new InvalidArgumentError(`${message} (see ${help})`), argv.includes("--json"));
    }
    return reportError(e, argv.includes("--json"));
  }
}

/**
 * Ends the process with `code` as soon as stdout and stderr have taken what was
 * written: handles a finished command leaves behind (a sandbox runtime's pipes
 * closing, a WASM worker winding down) must not keep it alive, not even briefly.
 */
export function exitWhenFlushed(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write("", done);
  process.stderr.write("", done);
}

if (import.meta.main) exitWhenFlushed(await main(process.argv.slice(2)));
