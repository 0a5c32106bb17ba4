/** `kiln doctor`: which tiers work on this machine, and exactly why a tier does not. */
import type { Command } from "commander";
import { withKiln } from "../context.ts";
import { printJson, printTable } from "../output.ts";

/** Registers `doctor`. */
export function registerDoctor(program: Command): void {
  program
    .command("doctor")
    .description("check which tiers can run here")
    .action(async (_flags, cmd: Command) =>
      withKiln(cmd, async (kiln, g) => {
        const tiers = await kiln.doctor();
        if (g.json) return printJson({ dataDir: kiln.dataDir, node: process.versions.node, tiers });
        process.stdout.write(`data dir: ${kiln.dataDir}\nnode: ${process.versions.node}\n\n`);
        printTable(
          ["TIER", "STATUS", "DETAIL"],
          tiers.map((t) => [t.tier, t.available ? "ready" : "unavailable", t.reason]),
        );
      }),
    );
}
