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
        const e2b = await kiln.strongestRealTier({ statuses: tiers });
        if (g.json)
          return printJson({
            dataDir: kiln.dataDir,
            node: process.versions.node,
            tiers,
            e2bTier: e2b.tier,
            ...(e2b.fallback ? { e2bFallback: e2b.fallback } : {}),
          });
        process.stdout.write(`data dir: ${kiln.dataDir}\nnode: ${process.versions.node}\n\n`);
        printTable(
          ["TIER", "STATUS", "DETAIL"],
          tiers.map((t) => [t.tier, t.available ? "ready" : "unavailable", t.reason]),
        );
        for (const t of tiers.filter((s) => s.available && s.unenforcedLimits?.length)) {
          process.stdout.write(
            `\n${t.tier}: limits that do not hold here (a create needs --allow-unenforced-limits):\n`,
          );
          for (const l of t.unenforcedLimits!) process.stdout.write(`  ${l.limit}: ${l.reason}\n`);
        }
        process.stdout.write(
          e2b.fallback
            ? `\nE2B sandboxes (kiln serve): virtual, because ${e2b.fallback}\n`
            : `\nE2B sandboxes (kiln serve): ${e2b.tier}, the strongest real tier here\n`,
        );
      }),
    );
}
