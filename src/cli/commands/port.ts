/**
 * `kiln port ID PORT`: where a sandbox's port is served (like `docker port`).
 *
 * Prints the address `kiln serve` routes to the port: `{port}-{id}.{domain}`
 * when a domain is known (`--domain`, `KILN_DOMAIN`), else the path form
 * under the server's URL (`--server`, `KILN_SERVER`, default
 * http://127.0.0.1:7070). `--token` adds a per-port token (from the data
 * directory's token secret, bound to the sandbox, the port and `--ttl-ms`).
 * Real sandboxes' processes live in the process that started them, so the
 * port is served by the `kiln serve` that runs the sandbox.
 */
import { type Command, Option } from "commander";
import { InvalidArgumentError, NotFoundError, UnsupportedError } from "../../core/errors.ts";
import { withKiln } from "../context.ts";
import { printJson } from "../output.ts";

/** Registers `port`. */
export function registerPort(program: Command): void {
  program
    .command("port")
    .description("print the address where kiln serve serves a sandbox's port")
    .argument("<id>", "sandbox id")
    .argument("<port>", "port inside the sandbox")
    .addOption(new Option("--domain <name>", "the domain of `kiln serve --domain`").env("KILN_DOMAIN"))
    .addOption(
      new Option("--server <url>", "the URL of kiln serve (for the path form)")
        .env("KILN_SERVER")
        .default("http://127.0.0.1:7070"),
    )
    .option("--token", "also print a per-port token (send as X-Kiln-Port-Token or ?kiln_token=)")
    .option("--ttl-ms <ms>", "the token's lifetime (0: as long as the sandbox)", "3600000")
    .action(async (id: string, portArg: string, flags, cmd: Command) =>
      withKiln(cmd, async (kiln, g) => {
        const { checkPort, checkSandboxDomain, portAccess, sandboxHostName } = await import("../../index.ts");
        const port = checkPort(Number(portArg));
        const info = kiln.record(id);
        if (!(await kiln.backend(info.tier)).capabilities.inboundPorts) {
          throw new UnsupportedError(
            `tier ${info.tier} cannot serve ports (no network stack in the sandbox)`,
          );
        }
        const access = portAccess(info.ports, port);
        if (access === "closed") {
          throw new NotFoundError(`port ${port} of sandbox ${id} is not exposed by its port policy`, {
            resource: "port",
          });
        }
        let server: URL;
        try {
          server = new URL(flags.server);
        } catch {
          throw new InvalidArgumentError(`--server is not a URL: ${flags.server}`);
        }
        const domain = flags.domain ? checkSandboxDomain(flags.domain) : undefined;
        const host = domain ? sandboxHostName(port, id, domain) : null;
        const pathUrl = `${server.origin}/v1/sandboxes/${id}/ports/${port}/proxy/`;
        let token: string | undefined;
        if (flags.token) {
          const ttlMs = Number(flags.ttlMs);
          if (!Number.isSafeInteger(ttlMs) || ttlMs < 0)
            throw new InvalidArgumentError("--ttl-ms must be >= 0");
          const { KeyStore } = await import("../../server/keys.ts");
          const { serverTokens } = await import("../../server/tokens.ts");
          const keys = new KeyStore(kiln.dataDir);
          try {
            token = serverTokens(kiln, keys).issue(
              info,
              `port:${port}`,
              ttlMs === 0 ? undefined : Date.now() + ttlMs,
            );
          } finally {
            keys.close();
          }
        }
        if (g.json)
          return printJson({ sandboxId: id, port, access, host, pathUrl, ...(token ? { token } : {}) });
        process.stdout.write(`${host ?? pathUrl}\n`);
        if (token) process.stdout.write(`token: ${token}\n`);
      }),
    );
}
