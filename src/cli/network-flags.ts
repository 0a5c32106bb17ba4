/** The network flags of `kiln create` and `kiln run`: `--allow-host`, `--deny-host`, `--allow-all-egress`. */
import type { Command } from "commander";
import type { NetworkOptions } from "../index.ts";
import { collect } from "./output.ts";

/** The parsed flags. */
export interface NetworkFlags {
  allowHost?: string[];
  denyHost?: string[];
  allowAllEgress?: boolean;
}

/** Adds the network flags to a command. */
export function networkOptions(cmd: Command): Command {
  return cmd
    .option(
      "--allow-host <rule>",
      "allow egress to a host name (*.example.com, optional :port), address or CIDR (repeatable)",
      collect,
    )
    .option("--deny-host <rule>", "deny egress to a host name, address or CIDR (repeatable)", collect)
    .option("--allow-all-egress", "allow egress to every public address but the denied ones");
}

/** The `network` option the flags ask for, or undefined (no network). Kiln checks the rules. */
export function networkFromFlags(flags: NetworkFlags): NetworkOptions | undefined {
  if (!flags.allowHost && !flags.denyHost && !flags.allowAllEgress) return undefined;
  return {
    egress: flags.allowAllEgress ? "all" : "none",
    ...(flags.allowHost ? { allow: flags.allowHost } : {}),
    ...(flags.denyHost ? { deny: flags.denyHost } : {}),
  };
}
