/**
 * `kiln network show ID` and `kiln network set ID [--allow-host R] [--deny-host R]
 * [--allow-all-egress]`: a sandbox's egress policy, read and replaced while it
 * runs (the whole policy, as at create; no flags: no network). The running
 * sandbox's processes belong to the Kiln process that has it open, so a
 * sandbox served by `kiln serve` is changed through `--server`.
 */
import type { Command } from "commander";
import type { NetworkSettings } from "../../index.ts";
import { type NetworkFlags, networkFromFlags, networkOptions } from "../network-flags.ts";
import { printJson } from "../output.ts";
import { withSandbox } from "../sandbox-access.ts";

function print(settings: NetworkSettings, json: boolean | undefined): void {
  if (json) printJson(settings);
  else
    process.stdout.write(
      `egress: ${settings.egress}\nallow: ${settings.allow.join(" ") || "-"}\ndeny: ${settings.deny.join(" ") || "-"}\n${Object.entries(
        settings.secrets ?? {},
      )
        .map(([name, s]) => `secret: $${name} -> ${s.hosts.join(",")}\n`)
        .join("")}${
        settings.upstreamProxy
          ? `upstream proxy: ${settings.upstreamProxy.url}${settings.upstreamProxy.username !== undefined ? ` (user ${settings.upstreamProxy.username})` : ""}\n`
          : ""
      }${Object.entries(settings.limits ?? {})
        .map(([k, v]) => `limit: ${k} ${v}\n`)
        .join("")}`,
    );
}

/** Registers `network`. */
export function registerNetwork(program: Command): void {
  const network = program.command("network").description("show or change a sandbox's egress policy");
  const server = [
    "--server <url>",
    "through a `kiln serve` (key in $KILN_API_KEY)",
    process.env.KILN_SERVER,
  ] as const;
  network
    .command("show")
    .description("print a sandbox's egress policy")
    .argument("<id>", "sandbox id")
    .option(...server)
    .action(async (id: string, flags: { server?: string }, cmd: Command) =>
      withSandbox(cmd, id, flags.server, async (sb, g) => print(await sb.network.get(), g.json)),
    );
  networkOptions(
    network
      .command("set")
      .description("replace a running sandbox's egress policy (new connections see it; no flags: no network)")
      .argument("<id>", "sandbox id")
      .option(...server),
  ).action(async (id: string, flags: NetworkFlags & { server?: string }, cmd: Command) =>
    withSandbox(cmd, id, flags.server, async (sb, g) =>
      print(await sb.network.update(networkFromFlags(flags) ?? {}), g.json),
    ),
  );
}
