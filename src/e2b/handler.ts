/**
 * `createE2bHandler`: the E2B-compatible API over a Kiln, as one Web-standard
 * `(Request) => Promise<Response>` handler that serves both halves of what
 * the `e2b` SDK calls:
 *
 * - the REST API (`apiUrl`: `/v2/sandboxes`, `/sandboxes/:id`...), rest.ts;
 * - envd, the in-sandbox daemon (`sandboxUrl`: Connect RPC and `/files`),
 *   envd/router.ts.
 *
 * Point both `E2B_API_URL` and `E2B_SANDBOX_URL` at the same mount. A request
 * is envd's when it names a sandbox (`E2b-Sandbox-Id` header, sent by the SDK
 * on every envd call, or a `49983-<id>.<domain>` host), else the REST API's.
 * See docs/e2b.md.
 */
import type { Kiln } from "../core/kiln.ts";
import { checkTierName } from "../core/tier-registry.ts";
import type { TierName } from "../core/types.ts";
import { loadTokenSecret, recordOrUndefined, SandboxTokens } from "../tokens/index.ts";
import { CODE_INTERPRETER_PORT, envdSandboxIdOf, sandboxPortOf } from "./auth.ts";
import { handleCodeInterpreter } from "./code-interpreter.ts";
import type { Authenticate, E2bContext } from "./context.ts";
import { createEnvdHandler, signedUrlOf } from "./envd/router.ts";
import { errorResponse, restErrorResponse } from "./errors.ts";
import { createRestApp } from "./rest.ts";
import { createVolumeContentApp } from "./volumes.ts";

/** The envd version reported to the SDK: new enough for stdin close and raw uploads, below file metadata (0.6.2), which Kiln does not store. */
export const KILN_ENVD_VERSION = "0.5.7";

/** Options of {@link createE2bHandler}. */
export interface E2bHandlerOptions {
  /** The Kiln whose sandboxes are served; the caller opens and closes it. */
  kiln: Kiln;
  /**
   * Resolves an API key (`X-API-KEY`) to the owner whose sandboxes it may
   * see; undefined rejects it (401, the SDK's `AuthenticationError`).
   */
  authenticate: Authenticate;
  /**
   * Tier of sandboxes that name none (E2B's default template and `base`; see
   * docs/e2b.md). Default `strongest`: the strongest real tier that runs here
   * ({@link Kiln.strongestRealTier}, probed on first use), virtual only where none runs.
   */
  defaultTier?: TierName | "strongest";
  /** Lifetime of a sandbox created without `timeoutMs`, in ms; default 300,000 (E2B's 5 minutes). */
  defaultTimeoutMs?: number;
  /**
   * The token service that issues and checks envd access tokens and signed
   * URLs (`kiln serve` passes its own, tied to its key store). Default: one
   * with the secret `tokenSecret` and the owners judged by `ownerActive`.
   */
  tokens?: SandboxTokens;
  /**
   * Secret for the default token service (at least 16 bytes). Default: a
   * random key kept in `<dataDir>/tokens.key`, so tokens survive restarts.
   */
  tokenSecret?: Uint8Array;
  /**
   * Whether an owner (as `authenticate` returned it) is still allowed; asked
   * on every envd request, so that ending an owner ends its tokens. Default: always.
   */
  ownerActive?: (owner: string) => boolean;
  /**
   * Request body limit of the REST API and of envd's RPCs, in bytes (413
   * beyond it); default 1,048,576 (1 MiB). File uploads stream instead, up to
   * the sandbox's `maxFileBytes`.
   */
  maxBodyBytes?: number;
  /**
   * The domain sandboxes' ports are served under (`{port}-{id}.{domain}`), answered as the
   * sandbox's `domain` so that the SDK's `getHost` builds names under it; default none (the
   * SDK's own `domain` / `E2B_DOMAIN`).
   */
  sandboxDomain?: string;
  /**
   * Egress of a sandbox whose create (or `updateNetwork`) says nothing about the internet
   * (no `allowInternetAccess`, no "all traffic" entry): `none` (default; E2B's cloud opens it)
   * or `all` public addresses. See src/e2b/network.ts.
   */
  defaultEgress?: "none" | "all";
}

/**
 * The default tier as a memoized lookup: a named tier is checked at once;
 * `strongest` is probed on first use, and probed again after a failed probe.
 * @throws InvalidArgumentError (an unknown tier name)
 */
export function defaultTierOf(kiln: Kiln, choice: TierName | "strongest"): () => Promise<TierName> {
  if (choice !== "strongest") {
    const tier = checkTierName(choice);
    return async () => tier;
  }
  let found: Promise<TierName> | undefined;
  return () => {
    found ??= kiln.strongestRealTier().then((r) => r.tier);
    found.catch(() => {
      found = undefined;
    });
    return found;
  };
}

/** A Web-standard request handler. */
export type E2bHandler = (req: Request) => Promise<Response>;

/** Creates the E2B-compatible handler. */
export function createE2bHandler(options: E2bHandlerOptions): E2bHandler {
  const defaultTimeoutMs = options.defaultTimeoutMs ?? 300_000;
  if (!Number.isFinite(defaultTimeoutMs) || defaultTimeoutMs < 0) {
    throw new RangeError("defaultTimeoutMs must be >= 0");
  }
  const ctx: E2bContext = {
    kiln: options.kiln,
    authenticate: options.authenticate,
    defaultTier: defaultTierOf(options.kiln, options.defaultTier ?? "strongest"),
    defaultTimeoutMs,
    envdVersion: KILN_ENVD_VERSION,
    tokens:
      options.tokens ??
      new SandboxTokens({
        secret: options.tokenSecret ?? loadTokenSecret(options.kiln.dataDir),
        record: (id) => recordOrUndefined(options.kiln, id),
        ownerActive: options.ownerActive ?? (() => true),
        volume: (id) => options.kiln.volumeRecord(id),
      }),
    maxBodyBytes: options.maxBodyBytes ?? 1024 * 1024,
    sandboxDomain: options.sandboxDomain ?? null,
    defaultEgress: options.defaultEgress ?? "none",
  };
  const rest = createRestApp(ctx);
  const volumeContent = createVolumeContentApp(ctx);
  const envd = createEnvdHandler(ctx);
  return async (req) => {
    try {
      const sandboxId = envdSandboxIdOf(req);
      if (sandboxId !== undefined) {
        if (sandboxPortOf(req) === CODE_INTERPRETER_PORT)
          return await handleCodeInterpreter(ctx, req, sandboxId);
        return await envd(req, sandboxId);
      }
      // A signed URL made against one `sandboxUrl` names no sandbox: the one whose token signs it.
      const signed = signedUrlOf(req);
      if (signed) {
        const ids = (await ctx.kiln.list({ signal: req.signal })).map((r) => r.id);
        let id: string;
        try {
          id = ctx.tokens.findE2bSignature(ids, signed).id;
        } catch {
          return errorResponse(404, "no sandbox for this signed URL (expired, revoked, or not valid)");
        }
        return await envd(req, id);
      }
      if (new URL(req.url).pathname.startsWith("/volumecontent/")) return await volumeContent.fetch(req);
      return await rest.fetch(req);
    } catch (e) {
      return restErrorResponse(e);
    }
  };
}
