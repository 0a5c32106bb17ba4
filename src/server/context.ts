/** What every route sees: the Kiln, the caller's key, the server's registries, and the route helper. */
import type { OpenAPIHono, RouteConfig, RouteHandler } from "@hono/zod-openapi";
import type { Kiln } from "../core/kiln.ts";
import type { Sandbox } from "../core/sandbox.ts";
import type { TierName } from "../core/types.ts";
import type { SandboxTokens } from "../tokens/index.ts";
import type { ApiKeyInfo, KeyStore } from "./keys.ts";
import type { StreamTracker } from "./streaming.ts";

/** Shared server state. */
export interface ServerState {
  kiln: Kiln;
  keys: KeyStore;
  /** Sandbox-scoped tokens (E2B access tokens, signed URLs), derived from keys. */
  tokens: SandboxTokens;
  streams: StreamTracker;
  /** The request body limit of every endpoint but the streamed uploads, in bytes. */
  maxBodyBytes: number;
  /** Tier of E2B sandboxes that name none: a tier, or `strongest` (the strongest real tier that runs here). */
  e2bTier: TierName | "strongest";
  /** Egress of E2B sandboxes whose create says nothing about the internet. */
  e2bEgress: "none" | "all";
  /** The domain sandboxes' ports are served under (`{port}-{id}.{domain}`); undefined: any. */
  domain?: string;
  /** True once shutdown began: new requests get 503. */
  draining: boolean;
}

/** Hono environment of the app. */
export interface AppEnv {
  Variables: {
    state: ServerState;
    /** The authenticated key. */
    key: ApiKeyInfo;
    /** The sandbox named by `{id}`, owned by `key` (set by the ownership middleware). */
    sandbox: Sandbox;
  };
}

/** The app type. */
export type App = OpenAPIHono<AppEnv>;

type Ctx<R extends RouteConfig> = Parameters<RouteHandler<R, AppEnv>>[0];

/**
 * Registers a route described by `route` (validated by its zod schemas and
 * listed in the OpenAPI document). Handlers return plain Responses.
 */
export function addRoute<R extends RouteConfig>(
  app: App,
  route: R,
  handler: (c: Ctx<R>) => Response | Promise<Response>,
): void {
  app.openapi(route, handler as never);
}

/** JSON content for a response or request body. */
export function json<S>(schema: S, description: string) {
  return { description, content: { "application/json": { schema } } };
}
