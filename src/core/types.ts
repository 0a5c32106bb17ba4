/** Public data shapes shared by the library, CLI, server and client. */
import type { NetworkOptions, NetworkSettings } from "../network/policy.ts";
import type { UnenforcedLimit } from "./errors.ts";
import type { Limits } from "./limits.ts";
import type { VolumeMount, VolumeMountOptions } from "./volumes.ts";

/** The isolation tiers, weakest to strongest. */
export const TIER_NAMES = ["virtual", "namespace", "oci", "gvisor", "microvm"] as const;
/** One of {@link TIER_NAMES}. */
export type TierName = (typeof TIER_NAMES)[number];

/**
 * Where a sandbox is in its life. `paused`: stopped on purpose, its state on
 * disk (memory and processes too where the tier's `pause` capability says
 * so); any call on it resumes it.
 */
export type SandboxState = "running" | "paused" | "stopped" | "killed";

/** Which ports of a sandbox can be reached through Kiln, and which without credentials. */
export interface PortPolicy {
  /** Ports that may be reached: `all`, or a list (1–65535); default `all`. Others are `not_found`. */
  expose: "all" | number[];
  /**
   * Ports any caller may reach through `kiln serve`, with no key or token: `all`, or a list of
   * exposed ports; default none (every port needs the owner's key or a per-port token).
   */
  public: "all" | number[];
}

/** What `kiln.create` accepts. */
export interface CreateOptions {
  /** Isolation tier; default `virtual`. */
  tier?: TierName;
  /** Template (root filesystem) name; default `default`. */
  template?: string;
  /** Environment variables for every command. */
  env?: Record<string, string>;
  /** Default working directory; default `/workspace`. */
  cwd?: string;
  /** Free-form string labels, used by `list({ metadata })`. */
  metadata?: Record<string, string>;
  /**
   * Lifetime in ms from now, after which the sandbox ends (see `onExpiry`); default 0 (no expiry).
   * Not a command's time limit: that is `limits.timeoutMs`, and `timeoutMs` of each command.
   */
  lifetimeMs?: number;
  /** @deprecated The old name of `lifetimeMs` (give one or the other). */
  timeoutMs?: number;
  /** Limits; unset fields take their defaults (from a snapshot: the snapshot's). */
  limits?: Partial<Limits>;
  /**
   * Create the sandbox even where the tier cannot enforce every limit here (its
   * `TierStatus.unenforcedLimits`, e.g. the namespace tier run by an ordinary user); the sandbox's
   * info lists those it lacks. Default false: such a create throws `UnenforcedLimitsError`.
   */
  allowUnenforcedLimits?: boolean;
  /**
   * Idle time in ms (no call on the sandbox, no command running) after which
   * it is paused to disk and its memory freed; any call resumes it. 0: never.
   * Default: the Kiln's `idleTimeoutMs` on tiers whose pause keeps memory, else never.
   */
  idleTimeoutMs?: number;
  /**
   * What happens when the lifetime (`lifetimeMs`) ends: `kill` (default), `pause` (it can be
   * resumed; memory and processes kept where the tier can) or `pause-files` (a pause that keeps
   * the files only, even where the tier could keep memory).
   */
  onExpiry?: ExpiryAction;
  /** @deprecated The old name of `onExpiry` (give one or the other). */
  onTimeout?: ExpiryAction;
  /**
   * Start from this snapshot's files (`snap_…`): its template, limits, env and
   * cwd unless given here. On another tier than the snapshot's, the files are
   * copied over as `move` does.
   */
  snapshot?: string;
  /** Network policy; default none: no network at all (see docs/network.md). */
  network?: NetworkOptions;
  /** Which ports may be reached through Kiln, and which without credentials; default every port, with credentials. */
  ports?: Partial<PortPolicy>;
  /**
   * Named volumes to mount (nosuid, nodev) at paths below `/mnt`, on a tier whose capabilities say
   * `volumes`; default none. A fork mounts its parent's.
   */
  volumes?: VolumeMountOptions[];
  /**
   * Build the template now if it is missing (`default` and `code-interpreter`, on tiers with
   * templates; minutes, reported through `onProgress`). Without it, a create whose template is
   * missing fails at once with `not_found` naming `kiln template build NAME`. Library only: a
   * server builds templates only when its operator runs that command.
   */
  buildTemplate?: { onProgress?: (progress: TemplateBuildProgress) => void };
  /** Cancels the call. */
  signal?: AbortSignal;
}

/** How far an on-demand template build is. */
export interface TemplateBuildProgress {
  /** From 0 to 1. */
  fraction: number;
  /** What it is doing (`downloading ...`, `unpacking ...`, `already built`). */
  message: string;
}

/** What the end of a sandbox's lifetime does (see `CreateOptions.onExpiry`). */
export type ExpiryAction = "kill" | "pause" | "pause-files";

/** What a snapshot holds: the files, or the memory and processes too. */
export type SnapshotKind = "files" | "memory";

/** A saved state of a sandbox, from which new sandboxes start (`kiln.create({ snapshot })`). */
export interface SnapshotInfo {
  /** Snapshot id, `snap_` followed by 20 lowercase letters and digits. */
  id: string;
  /** Name given at `snapshot({ name })`, or null. */
  name: string | null;
  /** Tier of the sandbox it was taken from. */
  tier: TierName;
  /** Template of that sandbox. */
  template: string;
  /** Id of the sandbox it was taken from (which may be gone since). */
  sandboxId: string;
  /** What it holds. */
  kind: SnapshotKind;
  /** Bytes on disk. */
  sizeBytes: number;
  /** Creation time, ISO 8601. */
  createdAt: string;
  /** Labels (copied from the sandbox at snapshot time). */
  metadata: Record<string, string>;
}

/** A sandbox as stored and listed. */
export interface SandboxInfo {
  /** Sandbox id, `sb_` followed by 20 lowercase letters and digits. */
  id: string;
  /** Isolation tier. */
  tier: TierName;
  /** Template name. */
  template: string;
  /** Life state. */
  state: SandboxState;
  /** Default environment of commands. */
  env: Record<string, string>;
  /** Default working directory. */
  cwd: string;
  /** String labels. */
  metadata: Record<string, string>;
  /** Effective limits. */
  limits: Limits;
  /** The limits that do not hold for this sandbox (created with `allowUnenforcedLimits`); absent: every limit holds. */
  unenforcedLimits?: UnenforcedLimit[];
  /** Network policy, canonical (`egress: "none"` and no `allow` rules: no network). */
  network: NetworkSettings;
  /** The inbound port policy. */
  ports: PortPolicy;
  /** The volumes mounted in it. */
  volumes: VolumeMount[];
  /** Creation time, ISO 8601. */
  createdAt: string;
  /** Expiry time, ISO 8601, or null when the sandbox does not expire. */
  expiresAt: string | null;
}

/** Kinds of filesystem entry. */
export type EntryType = "file" | "dir" | "symlink";

/** One filesystem entry, as `files.stat` and `files.list` return it. */
export interface EntryInfo {
  /** Base name. */
  name: string;
  /** Absolute path inside the sandbox. */
  path: string;
  /** Entry kind (a symlink is not followed). */
  type: EntryType;
  /** Size in bytes (for a symlink, the length of its target). */
  size: number;
  /** Permission bits, e.g. 0o644. */
  mode: number;
  /** Modification time, ms since the epoch. */
  mtimeMs: number;
  /** Target of a symlink. */
  symlinkTarget?: string;
}

export type { CommandEndReason, CommandResult } from "./command-result.ts";

/** One entry of a sandbox's audit log. */
export interface AuditEntry {
  /** Sequence number, increasing. */
  id: number;
  /** The command line. */
  command: string;
  /** Exit code, or null while running. */
  exitCode: number | null;
  /** `success`, `error`, `pending` (running), or `interrupted` (the Kiln process running it ended first). */
  status: "success" | "error" | "pending" | "interrupted";
  /** Start time, ms since the epoch. */
  startedAtMs: number;
  /** Duration in ms, or null while running. */
  durationMs: number | null;
  /** The working directory. */
  cwd: string;
}

/** One network connection, request or DNS query of a sandbox, as its audit log keeps it. */
export interface NetworkAuditEntry {
  /** Sequence number, increasing (shared with the command entries). */
  id: number;
  /** When it started, ms since the epoch. */
  atMs: number;
  /**
   * `http` (one request), `connect` (a proxy tunnel), `tls` and `tcp` (an intercepted connection), `dns` (a query),
   * `inbound` (a connection into one of the sandbox's ports through Kiln: `sandbox.ports` or `kiln serve`),
   * `policy` (the network policy was changed while the sandbox ran; `rule` holds the new one),
   * `audit` (entries over the sandbox's audit rate were dropped; `rule` says how many).
   */
  kind: "http" | "connect" | "tls" | "tcp" | "dns" | "inbound" | "policy" | "audit";
  /** Host name asked for, when one was seen (Host, CONNECT authority, SNI, DNS question). */
  host?: string;
  /** Address dialled (or asked for, when the connection was to an address). */
  address?: string;
  /** Destination port. */
  port?: number;
  /** HTTP method, where visible. */
  method?: string;
  /** HTTP path, where visible (at most 512 characters). */
  path?: string;
  /** HTTP status returned to the sandbox, where visible. */
  status?: number;
  /** Whether the policy let it through. */
  allowed: boolean;
  /** The rule that decided (`allow files.test`, `default deny`, `blocked loopback`, `limit connections`, ...). */
  rule: string;
  /** Bytes sent by the sandbox. */
  bytesUp: number;
  /** Bytes received by the sandbox. */
  bytesDown: number;
  /** How long it lasted, ms. */
  durationMs: number;
}

/** Readiness of a tier on this machine. */
export interface TierStatus {
  /** Tier name. */
  tier: TierName;
  /** True when sandboxes of this tier can be created here. */
  available: boolean;
  /** Why not, when not available; what it runs on, when available. */
  reason: string;
  /**
   * True when the tier runs here only by emulation (a VM without hardware
   * acceleration): it works and is tested, but many times slower, so Kiln
   * never picks it by default (see `Kiln.strongestRealTier`).
   */
  emulated?: boolean;
  /** Limits the tier cannot enforce here, as Kiln runs now (see `CreateOptions.allowUnenforcedLimits`); absent: none. */
  unenforcedLimits?: UnenforcedLimit[];
}
