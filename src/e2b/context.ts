/**
 * What every part of the E2B surface shares: the Kiln, the authenticator,
 * defaults, the access tokens, and the table of extra process facts (the
 * argv, envs and tag an E2B client started a process with).
 */
import type { Kiln } from "../core/kiln.ts";
import type { TierName } from "../core/types.ts";
import type { SandboxTokens } from "../tokens/index.ts";

/** Resolves an API key to its owner; undefined rejects the key. */
export type Authenticate = (apiKey: string) => Promise<{ owner: string } | undefined>;

/** How an E2B client started a process, as `commands.list` reports it. */
export interface ProcessFacts {
  cmd: string;
  args: string[];
  envs: Record<string, string>;
  cwd?: string;
  tag?: string;
  /** Started on a terminal: its output is `pty` data. */
  pty?: boolean;
}

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
  /** Process facts by `<sandboxId>:<pid>`, dropped when the process ends. */
  processes: Map<string, ProcessFacts>;
  /** Request body limit of the REST API and envd's RPCs, in bytes. */
  maxBodyBytes: number;
}
