/**
 * The network flags of `kiln create`, `kiln run` and `kiln network set`: `--allow-host`,
 * `--deny-host`, `--allow-all-egress`, `--secret NAME@HOST[,HOST...]` (the value is read from
 * the variable NAME of the CLI's own environment, never from its command line),
 * `--upstream-proxy URL` (a password from `$KILN_UPSTREAM_PROXY_PASSWORD`, not the command line),
 * `--max-connections N`, `--max-bytes-per-second N`.
 */
import type { Command } from "commander";
import { InvalidArgumentError } from "../core/errors.ts";
import type { NetworkOptions } from "../index.ts";
import { collect } from "./output.ts";

/** The parsed flags. */
export interface NetworkFlags {
  allowHost?: string[];
  denyHost?: string[];
  allowAllEgress?: boolean;
  secret?: string[];
  upstreamProxy?: string;
  maxConnections?: string;
  maxBytesPerSecond?: string;
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
    .option("--allow-all-egress", "allow egress to every public address but the denied ones")
    .option(
      "--secret <NAME@host,...>",
      "give the sandbox $NAME as a placeholder; Kiln sends the value of this process's $NAME to those hosts only (repeatable)",
      collect,
    )
    .option(
      "--upstream-proxy <url>",
      "send allowed egress through this proxy (http:// CONNECT or socks5://, optional user@; password from $KILN_UPSTREAM_PROXY_PASSWORD)",
    )
    .option("--max-connections <n>", "most egress connections open at once (within the server's cap)")
    .option("--max-bytes-per-second <n>", "egress bandwidth cap each way (within the server's)");
}

/** The `network` option the flags ask for, or undefined (no network). Kiln checks the rules. */
export function networkFromFlags(flags: NetworkFlags): NetworkOptions | undefined {
  if (!flags.allowHost && !flags.denyHost && !flags.allowAllEgress && !flags.secret) return undefined;
  const password = process.env.KILN_UPSTREAM_PROXY_PASSWORD;
  const int = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const limits = {
    ...(flags.maxConnections !== undefined ? { maxConnections: int(flags.maxConnections) } : {}),
    ...(flags.maxBytesPerSecond !== undefined ? { maxBytesPerSecond: int(flags.maxBytesPerSecond) } : {}),
  };
  const secrets: NonNullable<NetworkOptions["secrets"]> = {};
  for (const s of flags.secret ?? []) {
    const at = s.indexOf("@");
    const name = at > 0 ? s.slice(0, at) : "";
    const value = name ? process.env[name] : undefined;
    if (!name || at === s.length - 1)
      throw new InvalidArgumentError(`--secret must be NAME@host[,host...], got ${JSON.stringify(s)}`);
    if (value === undefined)
      throw new InvalidArgumentError(`--secret ${name}: $${name} is not set in this environment`);
    secrets[name] = { value, hosts: s.slice(at + 1).split(",") };
  }
  return {
    egress: flags.allowAllEgress ? "all" : "none",
    ...(flags.allowHost ? { allow: flags.allowHost } : {}),
    ...(flags.denyHost ? { deny: flags.denyHost } : {}),
    ...(flags.secret ? { secrets } : {}),
    ...(flags.upstreamProxy
      ? { upstreamProxy: { url: flags.upstreamProxy, ...(password !== undefined ? { password } : {}) } }
      : {}),
    ...(Object.keys(limits).length > 0 ? { limits: limits as NetworkOptions["limits"] } : {}),
  };
}
