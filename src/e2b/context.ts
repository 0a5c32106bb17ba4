/**
 * What every part of the E2B surface shares: the Kiln, the authenticator,
 * defaults and the access tokens. Processes live in core's table (each
 * sandbox's `commands`); how an E2B client started one rides in its labels.
 */
import type { Kiln } from "../core/kiln.ts";
import type { TierName } from "../core/types.ts";
import type { SandboxTokens } from "../tokens/index.ts";

/** Resolves an API key to its owner; undefined rejects the key. */
export type Authenticate = (apiKey: string) => Promise<{ owner: string } | undefined>;

/** Shared state of one E2B handler. */
export interface E2bContext {
  kiln: Kiln;
  authenticate: Authenticate;
  /** Tier of sandboxes that do not name one (resolved once, on first use). */
  defaultTier(): Promise<TierName>;
  /** Sandbox lifetime when `Sandbox.create` passes no `timeoutMs`. */
  defaultTimeoutMs: number;
  /** The envd version reported to the SDK (it gates SDK features). */
  envdVersion: string;
  /** The sandbox-scoped tokens (envd access tokens, signed URLs). */
  tokens: SandboxTokens;
  /** Request body limit of the REST API and envd's RPCs, in bytes. */
  maxBodyBytes: number;
  /** The domain sandboxes' ports are served under, or null. */
  sandboxDomain: string | null;
  /** Egress when E2B's fields say nothing about the internet (`none` unless the server's owner opens it). */
  defaultEgress: "none" | "all";
}
