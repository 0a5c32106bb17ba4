/**
 * `kiln serve` as a library: opens Kiln and the key store on a data
 * directory, serves the app on a loopback port (unless told otherwise), and
 * shuts down gracefully.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import type { Budget, ServerNetworkLimits, TierName } from "../index.ts";
import { checkSandboxDomain, checkTierName, Kiln } from "../index.ts";
import { createApp } from "./app.ts";
import { DEFAULT_MAX_BODY_BYTES } from "./body-limit.ts";
import type { App, ServerState } from "./context.ts";
import { createHostRouter, type HostRouter } from "./host-router/index.ts";
import { KeyStore } from "./keys.ts";
import { withE2b } from "./mounts.ts";
import { defaultHostBudget, defaultKeyQuota, serverAdmission } from "./quotas.ts";
import { StreamTracker } from "./streaming.ts";
import { attachTerminal } from "./terminal/index.ts";
import { serverTokens } from "./tokens.ts";

/** Options of {@link startServer}. */
export interface ServeOptions {
  /** Data directory; default `$KILN_DATA_DIR` or `./.kiln`. */
  dataDir?: string;
  /** TCP port; 0 picks a free one. Default 7070. */
  port?: number;
  /** Address to bind; default 127.0.0.1 (loopback only). */
  host?: string;
  /** How long a shutdown waits for running commands, in ms; default 10,000. */
  graceMs?: number;
  /** Warm sandboxes per tier, template and limits (`Kiln.open`'s `warmPool`); default `$KILN_WARM_POOL` or 0. */
  warmPool?: number;
  /**
   * Longest lifetime of a sandbox, in ms, on every interface (REST, E2B, MCP):
   * a timeout of 0 means this much, a longer one is refused. Default 86,400,000 (24 h).
   */
  maxLifetimeMs?: number;
  /** Names the egress path resolves without DNS (`Kiln.open`'s `networkHosts`); default `$KILN_NETWORK_HOSTS`. */
  networkHosts?: Record<string, string[]>;
  /**
   * Idle time after which a sandbox on a tier whose pause keeps memory is
   * hibernated (`Kiln.open`'s `idleTimeoutMs`); 0: off. Default 10 minutes.
   */
  idleTimeoutMs?: number;
  /**
   * The domain sandboxes' ports are served under: `{port}-{sandboxId}.{domain}` routes to that
   * port (`49983`: E2B's envd), and the E2B API answers it as each sandbox's `domain`. Default:
   * none, and any `{port}-{sandboxId}.` name is routed. A wildcard DNS name for it (or
   * `*.localhost`) makes sandbox ports their own origins (docs/network.md).
   */
  domain?: string;
  /** Request body limit of every endpoint but streamed uploads, in bytes; default 1,048,576 (1 MiB). */
  maxBodyBytes?: number;
  /**
   * The host's budget of live sandboxes and summed `limits.memoryBytes`, over
   * every key; beyond it a create is `limit_exceeded` (`hostMaxSandboxes`,
   * `hostMaxMemoryBytes`). Default 1000 sandboxes and twice the machine's RAM.
   */
  budget?: Budget;
  /**
   * The quota of a key that sets none of its own (`kiln keys create
   * --max-sandboxes/--max-memory-bytes`); beyond it `limit_exceeded`
   * (`maxSandboxes`, `maxMemoryBytes`). Default 100 sandboxes and the machine's RAM.
   */
  keyQuota?: Budget;
  /**
   * Tier of sandboxes the E2B API creates without naming one (E2B's default
   * template and `base`). Default `strongest`: the strongest real tier that
   * runs here, probed like `kiln doctor` on first use (virtual only where none
   * runs). Kiln's own API keeps its default (virtual).
   */
  e2bTier?: TierName | "strongest";
  /**
   * Egress of a sandbox the E2B API creates without saying anything about the internet:
   * `none` (default: unlike E2B's cloud, nothing is open unless asked for) or `all` public
   * addresses (E2B's default; the blocked ranges stay blocked).
   */
  e2bEgress?: "none" | "all";
  /** The upstream proxy of sandboxes whose policy names none (`Kiln.open`'s `upstreamProxy`); default `$KILN_UPSTREAM_PROXY`. */
  upstreamProxy?: string;
  /** Caps on every sandbox's egress (`Kiln.open`'s `networkLimits`). */
  networkLimits?: ServerNetworkLimits;
}

/** The default of {@link ServeOptions.idleTimeoutMs}: 10 minutes. */
export const DEFAULT_IDLE_TIMEOUT_MS = 10 * 60 * 1000;

/** The default of {@link ServeOptions.maxLifetimeMs}: 24 hours. */
export const DEFAULT_MAX_LIFETIME_MS = 24 * 3_600_000;

/** A running server. */
export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:7070`. */
  readonly url: string;
  /** The bound port. */
  readonly port: number;
  readonly kiln: Kiln;
  readonly keys: KeyStore;
  readonly app: App;
  /**
   * Stops accepting requests, waits up to `graceMs` for streamed commands to
   * end, ends the rest with an interrupted `exit` event, then closes Kiln
   * (sandboxes persist). Resolves with how many streams were interrupted.
   */
  close(graceMs?: number): Promise<{ interrupted: number }>;
}

/**
 * Starts a server.
 * @throws the listen error (e.g. EADDRINUSE) as is; InvalidArgumentError (an unknown `e2bTier`)
 */
export async function startServer(options: ServeOptions = {}): Promise<RunningServer> {
  const domain = options.domain === undefined ? undefined : checkSandboxDomain(options.domain);
  const e2bTier =
    options.e2bTier === undefined || options.e2bTier === "strongest"
      ? "strongest"
      : checkTierName(options.e2bTier);
  let keyStore: KeyStore | undefined;
  const admission = serverAdmission(
    () => keyStore!,
    options.budget ?? defaultHostBudget(),
    options.keyQuota ?? defaultKeyQuota(),
  );
  const kiln = await Kiln.open({
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    admission,
    ...(options.warmPool !== undefined ? { warmPool: options.warmPool } : {}),
    maxLifetimeMs: options.maxLifetimeMs ?? DEFAULT_MAX_LIFETIME_MS,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    ...(options.networkHosts ? { networkHosts: options.networkHosts } : {}),
    ...(options.upstreamProxy ? { upstreamProxy: options.upstreamProxy } : {}),
    ...(options.networkLimits ? { networkLimits: options.networkLimits } : {}),
  });
  const keys = new KeyStore(kiln.dataDir);
  keyStore = keys;
  const state: ServerState = {
    kiln,
    keys,
    tokens: serverTokens(kiln, keys),
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    e2bTier,
    e2bEgress: options.e2bEgress ?? "none",
    ...(domain ? { domain } : {}),
    streams: new StreamTracker(),
    draining: false,
  };
  const app = createApp(state);
  const host = options.host ?? "127.0.0.1";
  let server: Server;
  let router: HostRouter | undefined;
  /** Upgrades the router took (the terminal leaves them alone). */
  const routed = new WeakSet<object>();
  try {
    server = await new Promise<Server>((resolve, reject) => {
      // The E2B API shares the port: its requests are dispatched before Kiln's app (src/server/mounts.ts).
      const fetch = withE2b((req) => app.fetch(req), state);
      const listener = getRequestListener(fetch);
      // Sandboxes' ports and envd by Host (and ports by path) come first (src/server/host-router).
      router = createHostRouter({
        state,
        envd: listener,
        fallback: listener,
        ...(state.domain ? { domain: state.domain } : {}),
      });
      const s = createServer(router.request);
      s.on("upgrade", (req, socket, head) => {
        if (router?.upgrade(req, socket, head)) routed.add(req);
      });
      s.once("listening", () => resolve(s));
      s.once("error", reject);
      s.listen(options.port ?? 7070, host);
    });
  } catch (e) {
    keys.close();
    await kiln.close();
    throw e;
  }
  server.keepAliveTimeout = 5_000;
  // The dashboard's terminal WebSocket (/v1/sandboxes/{id}/terminal; docs/dashboard.md).
  attachTerminal(server, state, (req) => routed.has(req));
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  let closing: Promise<{ interrupted: number }> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    kiln,
    keys,
    app,
    close(graceMs = options.graceMs ?? 10_000) {
      closing ??= (async () => {
        state.draining = true;
        const stopped = new Promise<void>((r) => server.close(() => r()));
        server.closeIdleConnections();
        const interrupted = await state.streams.drain(graceMs);
        // Let the interrupted streams' last lines reach their clients.
        await new Promise((r) => setTimeout(r, 50));
        server.closeAllConnections();
        // Upgraded connections (WebSockets to sandbox ports) are not node:http's to close.
        router?.close();
        await stopped;
        await kiln.close();
        keys.close();
        return { interrupted };
      })();
      return closing;
    },
  };
}
