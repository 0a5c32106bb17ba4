/**
 * `kiln export --agentfs ID FILE` and `kiln import --agentfs FILE`: a
 * sandbox's files as an AgentFS file (AgentFS's SQLite schema, the agent's
 * files at its root, with the key-value store and the audit log), and a new
 * sandbox from an AgentFS file made elsewhere (by AgentFS's own tools too).
 */
import { resolve } from "node:path";
import type { Command } from "commander";
import { InvalidArgumentError } from "../../core/errors.ts";
import { checkTierName } from "../../core/tier-registry.ts";
import { withKiln } from "../context.ts";
import { printJson } from "../output.ts";

/** Registers `export` and `import`. */
export function registerAgentFs(program: Command): void {
  program
    .command("export")
    .description(
      "write a sandbox's files to FILE as an AgentFS file (consistent while it runs on the virtual tier)",
    )
    .argument("<id>", "sandbox id")
    .argument("<file>", "host path of the AgentFS file to write (replaced when complete)")
    .option("--agentfs", "AgentFS's SQLite format (the only one)")
    .action(async (id: string, file: string, flags, cmd: Command) =>
      withKiln(cmd, async (kiln, g) => {
        if (!flags.agentfs) throw new InvalidArgumentError("kiln export needs a format: --agentfs");
        const dest = resolve(file);
        await (await kiln.connect(id)).exportAgentFs(dest);
        if (g.json) printJson({ id, file: dest });
        else process.stdout.write(`${dest}\n`);
      }),
    );

  program
    .command("import")
    .description("create a sandbox whose /workspace holds the files of an AgentFS FILE; prints its id")
    .argument("<file>", "host path of an AgentFS file")
    .option("--agentfs", "AgentFS's SQLite format (the only one)")
    .option("--tier <tier>", "isolation tier", "virtual")
    .option("--template <name>", "template (root filesystem)", "default")
    .action(async (file: string, flags, cmd: Command) =>
      withKiln(cmd, async (kiln, g) => {
        if (!flags.agentfs) throw new InvalidArgumentError("kiln import needs a format: --agentfs");
        const { agentFsTree } = await import("../../workspace/agentfs-exchange.ts");
        // Read (and checked) before the sandbox exists: a file that is not AgentFS leaves nothing behind.
        const { tar, done } = await agentFsTree(resolve(file));
        try {
          const sb = await kiln.create({ tier: checkTierName(flags.tier), template: flags.template });
          try {
            await sb.files.importTar("/workspace", tar);
          } catch (e) {
            await sb.kill().catch(() => {});
            throw e;
          }
          if (g.json) printJson(await sb.info());
          else process.stdout.write(`${sb.id}\n`);
        } finally {
          done();
        }
      }),
    );
}
