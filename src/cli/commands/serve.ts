/**
 * `kiln serve`: the HTTP API (docs/server.md) on a loopback port unless told
 * otherwise. SIGTERM or SIGINT: stop accepting, let running commands end
 * within the grace period, end the rest as interrupted, close Kiln (sandboxes
 * persist), exit 0.
 */
import { type Command, Option } from "commander";
import { InvalidArgumentError } from "../../core/errors.ts";
import { checkTierName } from "../../core/tier-registry.ts";
import type { GlobalOptions } from "../context.ts";

/** Registers `serve`. */
export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("serve the Kiln HTTP API (authenticated with keys from `kiln keys create`)")
    .option("--port <port>", "TCP port (0: any free port)", "7070")
    .option("--host <address>", "address to bind (default loopback only)", "127.0.0.1")
    .option("--grace-ms <ms>", "how long a shutdown waits for running commands", "10000")
    .option(
      "--warm-pool <n>",
      "real-tier sandboxes kept started ahead, per tier/template/limits in use (0: off)",
      process.env.KILN_WARM_POOL ?? "1",
    )
    // No commander default: the server's (24 h) applies, and `--help` need not load the server.
    .option(
      "--max-lifetime-ms <ms>",
      "longest sandbox lifetime on every interface; a timeout of 0 means this much (default 24 h)",
    )
    .option(
      "--network-host <NAME=ADDRESS>",
      "resolve NAME to ADDRESS for sandboxes' egress, never by DNS (repeatable; air-gapped setups)",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      "--idle-timeout-ms <ms>",
      "hibernate a sandbox idle this long, on tiers whose pause keeps memory; 0: off (default 10 min)",
    )
    .option("--max-sandboxes <n>", "host budget: most live sandboxes over every key (default 1000)")
    .option(
      "--max-memory-bytes <n>",
      "host budget: most summed limits.memoryBytes of live sandboxes (default twice the RAM)",
    )
    .option("--key-max-sandboxes <n>", "quota of a key that sets none: most live sandboxes (default 100)")
    .option(
      "--key-max-memory-bytes <n>",
      "quota of a key that sets none: most summed limits.memoryBytes (default the RAM)",
    )
    .option(
      "--key-max-disk-bytes <n>",
      "quota of a key that sets none: most bytes of snapshots and pause images (default 16 GiB)",
    )
    .addOption(
      new Option(
        "--domain <name>",
        "domain of sandbox ports: {port}-{id}.<name> routes to that port (point a wildcard DNS name, or *.localhost, here)",
      ).env("KILN_DOMAIN"),
    )
    .option(
      "--e2b-tier <tier>",
      "tier of E2B sandboxes that name none (`base`, the default template): a tier, or `strongest`, the strongest real tier that runs here",
      "strongest",
    )
    .addOption(
      new Option(
        "--e2b-egress <egress>",
        "egress of E2B sandboxes that say nothing about the internet: none, or all public addresses (E2B's default)",
      )
        .choices(["none", "all"])
        .default("none"),
    )
    .addOption(
      new Option(
        "--upstream-proxy <url>",
        "proxy (http:// CONNECT or socks5://, optional user:password@) that sandboxes' egress leaves through when their policy names none; failing closed",
      ).env("KILN_UPSTREAM_PROXY"),
    )
    .option(
      "--egress-max-connections <n>",
      "cap of every sandbox: egress connections open at once (default 256)",
    )
    .option(
      "--egress-max-bytes-per-second <n>",
      "cap of every sandbox: egress bytes a second each way (default none)",
    )
    .option(
      "--audit-max-entries-per-second <n>",
      "cap of every sandbox: network audit entries written a second, the rest counted (default 200)",
    )
    .action(async (flags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const count = (v: string | undefined, flag: string): number | undefined => {
        if (v === undefined) return undefined;
        const n = Number(v);
        if (!Number.isSafeInteger(n) || n < 0)
          throw new InvalidArgumentError(`${flag} must be an integer >= 0`);
        return n;
      };
      const budget = {
        maxSandboxes: count(flags.maxSandboxes, "--max-sandboxes"),
        maxMemoryBytes: count(flags.maxMemoryBytes, "--max-memory-bytes"),
      };
      const keyQuota = {
        maxSandboxes: count(flags.keyMaxSandboxes, "--key-max-sandboxes"),
        maxMemoryBytes: count(flags.keyMaxMemoryBytes, "--key-max-memory-bytes"),
        maxDiskBytes: count(flags.keyMaxDiskBytes, "--key-max-disk-bytes"),
      };
      const port = Number(flags.port);
      const graceMs = Number(flags.graceMs);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new InvalidArgumentError("--port must be 0-65535");
      if (!Number.isFinite(graceMs) || graceMs < 0) throw new InvalidArgumentError("--grace-ms must be >= 0");
      const warmPool = Number(flags.warmPool);
      if (!Number.isInteger(warmPool) || warmPool < 0 || warmPool > 64)
        throw new InvalidArgumentError("--warm-pool must be an integer from 0 to 64");
      const maxLifetimeMs = flags.maxLifetimeMs === undefined ? undefined : Number(flags.maxLifetimeMs);
      if (maxLifetimeMs !== undefined && (!Number.isSafeInteger(maxLifetimeMs) || maxLifetimeMs <= 0))
        throw new InvalidArgumentError("--max-lifetime-ms must be a positive integer");
      const e2bTier = flags.e2bTier === "strongest" ? "strongest" : checkTierName(flags.e2bTier);
      const { startServer } = await import("../../server/server.ts");
      const { defaultHostBudget, defaultKeyQuota } = await import("../../server/quotas.ts");
      const server = await startServer({
        budget: withDefaults(budget, defaultHostBudget()),
        keyQuota: withDefaults(keyQuota, defaultKeyQuota()),
        ...(maxLifetimeMs !== undefined ? { maxLifetimeMs } : {}),
        ...(flags.idleTimeoutMs !== undefined ? { idleTimeoutMs: Number(flags.idleTimeoutMs) } : {}),
        ...(flags.networkHost ? { networkHosts: networkHosts(flags.networkHost) } : {}),
        ...(g.dataDir ? { dataDir: g.dataDir } : {}),
        port,
        host: flags.host,
        graceMs,
        warmPool,
        e2bTier,
        e2bEgress: flags.e2bEgress,
        ...(flags.upstreamProxy ? { upstreamProxy: flags.upstreamProxy } : {}),
        networkLimits: {
          ...(flags.egressMaxConnections !== undefined
            ? { maxConnections: Number(flags.egressMaxConnections) }
            : {}),
          ...(flags.egressMaxBytesPerSecond !== undefined
            ? { maxBytesPerSecond: Number(flags.egressMaxBytesPerSecond) }
            : {}),
          ...(flags.auditMaxEntriesPerSecond !== undefined
            ? { maxAuditEntriesPerSecond: Number(flags.auditMaxEntriesPerSecond) }
            : {}),
        },
        ...(flags.domain ? { domain: flags.domain } : {}),
      });
      const statuses = await server.kiln.doctor();
      const ready = statuses.filter((t) => t.available).map((t) => t.tier);
      const e2b =
        e2bTier === "strongest" ? await server.kiln.strongestRealTier({ statuses }) : { tier: e2bTier };
      const line = {
        url: server.url,
        dataDir: server.kiln.dataDir,
        tiers: ready,
        e2bTier: e2b.tier,
        ...(e2b.fallback ? { e2bFallback: e2b.fallback } : {}),
        pid: process.pid,
      };
      if (g.json) process.stdout.write(`${JSON.stringify(line)}\n`);
      else
        process.stdout.write(
          `kiln: serving ${server.url} (data dir ${line.dataDir}; tiers: ${ready.join(", ")}; ` +
            `E2B sandboxes: ${e2b.tier}${e2b.fallback ? `, because ${e2b.fallback}` : ""})\n`,
        );
      // A missing template fails creates at once (never a silent build): say so before the first one.
      const e2bBackend = await server.kiln.backend(e2b.tier);
      if (
        e2bBackend.capabilities.templates &&
        e2bBackend.templateDigest?.(server.kiln.dataDir, "default") === undefined
      ) {
        process.stderr.write(
          `kiln: template default is not built: E2B sandboxes on ${e2b.tier} fail with not_found until \`kiln template build default\` has run\n`,
        );
      }
      if (server.kiln.dataDir && server.keys.list().every((k) => k.revokedAt !== null)) {
        process.stderr.write("kiln: no valid API key yet; create one with `kiln keys create`\n");
      }
      await new Promise<void>((resolve) => {
        const stop = (sig: NodeJS.Signals) => {
          process.stderr.write(`kiln: ${sig}: shutting down (grace ${graceMs} ms)\n`);
          void server.close().then(({ interrupted }) => {
            if (interrupted) process.stderr.write(`kiln: interrupted ${interrupted} running command(s)\n`);
            resolve();
          });
        };
        process.once("SIGTERM", stop);
        process.once("SIGINT", stop);
      });
      process.exitCode = 0;
    });
}

/** Flags given, the rest from the server's defaults. */
function withDefaults(
  flags: {
    maxSandboxes: number | undefined;
    maxMemoryBytes: number | undefined;
    maxDiskBytes?: number | undefined;
  },
  defaults: { maxSandboxes: number; maxMemoryBytes: number; maxDiskBytes?: number },
): { maxSandboxes: number; maxMemoryBytes: number; maxDiskBytes?: number } {
  const maxDiskBytes = flags.maxDiskBytes ?? defaults.maxDiskBytes;
  return {
    maxSandboxes: flags.maxSandboxes ?? defaults.maxSandboxes,
    maxMemoryBytes: flags.maxMemoryBytes ?? defaults.maxMemoryBytes,
    ...(maxDiskBytes !== undefined ? { maxDiskBytes } : {}),
  };
}

/** `NAME=ADDRESS` flags as a map of names to addresses (checked by Kiln). */
function networkHosts(pairs: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const p of pairs) {
    const i = p.indexOf("=");
    if (i <= 0)
      throw new InvalidArgumentError(`--network-host must be NAME=ADDRESS, got ${JSON.stringify(p)}`);
    const name = p.slice(0, i);
    out[name] = [...(out[name] ?? []), p.slice(i + 1)];
  }
  return out;
}
