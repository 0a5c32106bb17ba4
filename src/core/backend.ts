/**
 * The Backend interface: what every tier implements. Core (Sandbox, Kiln) is
 * written against this file only; tiers never import each other.
 *
 * A tier has two halves:
 *  - `Backend`: the driver, one per tier per process. It probes the machine
 *    and creates or reattaches instances.
 *  - `Instance`: one live sandbox. It spawns processes and serves file
 *    operations on paths that core has already validated and normalized.
 *
 * Core owns everything that is the same on every tier: ids, records,
 * expiry, the audit log, path checks, command timeouts, output caps,
 * background process tables, and error mapping.
 */
import type { DatabaseSync } from "node:sqlite";
import type { Duplex } from "node:stream";
import type { NetworkSettings, ServerNetworkLimits } from "../network/policy.ts";
import type { UnenforcedLimit } from "./errors.ts";
import type { CellEvent } from "./execution.ts";
import type { Limits } from "./limits.ts";
import type { EntryInfo, TemplateBuildProgress, TierName, TierStatus } from "./types.ts";

/** What a backend needs to build an instance. */
export interface InstanceSpec {
  /** Sandbox id. */
  id: string;
  /** Template name. */
  template: string;
  /** Effective limits. */
  limits: Limits;
  /** Default environment. */
  env: Record<string, string>;
  /** Private directory of this sandbox on the host; the backend may keep state here. */
  stateDir: string;
  /** Path of the sandbox's AgentFS database (shared with the audit log). */
  databasePath: string;
  /** The data directory of the Kiln instance (templates live below it). */
  dataDir: string;
  /** Network policy (see src/network/policy.ts); absent or without egress: no network at all. */
  network?: NetworkSettings;
  /** Host names resolved to these addresses by the egress path, never by DNS (see `OpenOptions.networkHosts`). */
  networkHosts?: Readonly<Record<string, readonly string[]>>;
  /** The server's caps on the sandbox's egress (see `OpenOptions.networkLimits`); absent: the defaults. */
  networkLimits?: ServerNetworkLimits;
  /** The server's upstream proxy for sandboxes whose policy names none (see `OpenOptions.upstreamProxy`). */
  upstreamProxy?: string;
  /**
   * Host directories to bind at paths below `/mnt` (only when the tier's capabilities say
   * `volumes`), mounted nosuid and nodev, shared with other sandboxes, never removed by the tier.
   */
  volumes?: { hostPath: string; path: string }[];
  /** At create only: build a missing template now, reporting here (see `CreateOptions.buildTemplate`). */
  buildTemplate?: { onProgress?: (progress: TemplateBuildProgress) => void };
}

/** What a tier can and cannot do; the conformance suite reads these. */
export interface Capabilities {
  /** Real binaries from a root filesystem (false for the interpreter tier). */
  realBinaries: boolean;
  /** stdin reaches a running process as it is sent (false: delivered when closed). */
  interactiveStdin: boolean;
  /** Output is delivered as it is produced (false: when the command ends). */
  streamingOutput: boolean;
  /** Processes survive the Kiln process that started them. */
  processesSurviveRestart: boolean;
  /** Commands can run on a pseudo-terminal (`pty`), for interactive programs. */
  pty: boolean;
  /** Sandboxes can be started ahead of demand and handed out by the warm pool. */
  warmable: boolean;
  /** Sandboxes run a root filesystem from Kiln's template store (false: one built-in environment, `default`). */
  templates: boolean;
  /**
   * What `pause` keeps: `memory` (memory and running processes too: they run
   * on after `resume`, even in another Kiln process) or `files` (the
   * workspace; processes end at pause).
   */
  pause: "memory" | "files";
  /**
   * Sandboxes can be given a `network` policy with egress, enforced by Kiln's egress path
   * (false: a sandbox of this tier never has any network, and asking for egress is `unsupported`).
   */
  egress: boolean;
  /** A port a process listens on inside the sandbox can be reached through Kiln (`Instance.connectPort`). */
  inboundPorts: boolean;
  /** Named volumes can be mounted (`InstanceSpec.volumes`); absent: false (`create` with volumes is `unsupported`). */
  volumes?: boolean;
}

/** A tier's driver. */
export interface Backend {
  /** Tier name. */
  readonly tier: TierName;
  /** Static facts about the tier. */
  readonly capabilities: Capabilities;
  /** Checks whether the tier can run here, and if not exactly why. Never throws. */
  probe(signal?: AbortSignal): Promise<TierStatus>;
  /**
   * The limits this tier cannot enforce on this host as Kiln runs now (as an ordinary user,
   * say), each with its reason; absent or empty: every limit holds. Cheap: core asks at every
   * create, and refuses one that does not pass `allowUnenforcedLimits` when this is not empty.
   */
  unenforcedLimits?(): UnenforcedLimit[];
  /**
   * Builds a new instance with an empty `/workspace`.
   * @throws TierUnavailableError, NotFoundError (template), LimitExceededError
   */
  create(spec: InstanceSpec, signal?: AbortSignal): Promise<Instance>;
  /**
   * Reattaches an instance created earlier (possibly by another process), with its workspace intact.
   * @throws TierUnavailableError, NotFoundError
   */
  open(spec: InstanceSpec, signal?: AbortSignal): Promise<Instance>;
  /** Removes whatever `create` made outside `spec.stateDir`. Idempotent. */
  destroy(spec: InstanceSpec): Promise<void>;
  /**
   * Cleans up after Kiln process `owner` (a process token), which had this
   * sandbox open and died without closing it: the temporary files of its
   * unfinished writes and imports, and, when `alone` (no live process has
   * the sandbox open), what its instance held on the host (mounts, cgroups,
   * runtime state). The workspace is kept: `open` starts again from it.
   * Idempotent.
   */
  recover?(spec: InstanceSpec, owner: string, alone: boolean): Promise<void>;
  /** Releases process-wide resources (workers, pools). */
  close?(): Promise<void>;
  /**
   * Copies the sandbox's files (its workspace), consistent even while it
   * runs, into the empty directory `dir`, as files only this tier's
   * `createFrom` reads. Returns the bytes written.
   */
  saveFiles(spec: InstanceSpec, dir: string): Promise<number>;
  /**
   * Like `create`, but `/workspace` starts as the copy that `saveFiles` wrote in `dir`
   * (checked by core beforehand). @throws as `create`
   */
  createFrom(spec: InstanceSpec, dir: string, signal?: AbortSignal): Promise<Instance>;
  /**
   * Only when `capabilities.pause` is `memory`: saves the live instance's
   * memory and processes into the empty directory `dir` and stops it (its
   * workspace stays on disk).
   */
  suspend?(spec: InstanceSpec, instance: Instance, dir: string): Promise<void>;
  /** Starts an instance again from what `suspend` wrote in `dir`, its processes running on. */
  resume?(spec: InstanceSpec, dir: string, signal?: AbortSignal): Promise<Instance>;
  /**
   * What an instance of `template` would start from if created now (the
   * template's digest), or undefined. A warm instance started from something
   * else (the name was re-pointed since) is not handed out.
   */
  templateDigest?(dataDir: string, template: string): string | undefined;
}

/** What `Instance.spawn` runs. */
export interface SpawnRequest {
  /** A bash command line. */
  command: string;
  /** Absolute working directory. */
  cwd: string;
  /** Full environment of the process. */
  env: Record<string, string>;
  /** Whether stdin stays open for `writeStdin` (else it is closed at once, or fed `stdin`). */
  stdin: Uint8Array | "pipe" | undefined;
  /**
   * Run on a new pseudo-terminal of this size (only when the tier's
   * capabilities say `pty`): stdin, stdout and stderr are the terminal, all
   * output arrives as stdout, and the process leads its own session.
   */
  pty?: { cols: number; rows: number };
  /** Called with output as the tier produces it. */
  onStdout(chunk: Uint8Array): void;
  /** Called with error output as the tier produces it. */
  onStderr(chunk: Uint8Array): void;
}

/** How a spawned process ended, as the tier reports it. */
export interface ExitStatus {
  /** Exit code; 128+N after signal N. */
  exitCode: number;
  /** Set when a tier-enforced limit ended the process. */
  limit?: { limit: string; value: number; message: string };
}

/** A process running inside an instance. */
export interface SpawnedProcess {
  /** Process id within the sandbox. */
  readonly pid: number;
  /** Resolves when the process has ended and all of its output was delivered. */
  readonly exited: Promise<ExitStatus>;
  /** Sends bytes to stdin (only when spawned with `stdin: "pipe"`). */
  writeStdin(data: Uint8Array): Promise<void>;
  /** Closes stdin. */
  closeStdin(): Promise<void>;
  /** Sends a signal (default SIGKILL) to the process and its children. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Sets the terminal's size (processes spawned with `pty`). */
  resize?(cols: number, rows: number): Promise<void>;
}

/** One change under a watched directory, as E2B's envd names them. */
export interface WatchEvent {
  /** What happened: created (or moved in), written, removed, moved away, attributes changed. */
  type: "create" | "write" | "remove" | "rename" | "chmod";
  /** The entry's path relative to the watched directory (`sub/file.txt` in a recursive watch). */
  name: string;
}

/** A directory watch in progress. */
export interface Watching {
  /** Resolves when the watch ends: stopped, the directory removed, or the sandbox gone. */
  readonly ended: Promise<void>;
  /** Stops watching; idempotent. */
  stop(): void;
}

/** Backend-level file operations. Paths are absolute, normalized and inside the sandbox. */
export interface FileOps {
  /** Entry at `path`, without following a final symlink. @throws NotFoundError */
  stat(path: string): Promise<EntryInfo>;
  /** Entries below `path`, to `depth` levels (1 = children only). @throws NotFoundError */
  list(path: string, depth: number): Promise<EntryInfo[]>;
  /** The file's bytes as a stream. @throws NotFoundError, InvalidArgumentError (a directory) */
  read(path: string): Promise<ReadableStream<Uint8Array>>;
  /** Writes (replacing) a file, creating parents. @throws LimitExceededError (maxFileBytes, diskBytes) */
  write(path: string, data: ReadableStream<Uint8Array>, maxBytes: number): Promise<EntryInfo>;
  /** Creates a directory and its parents; false when it existed. */
  mkdir(path: string): Promise<boolean>;
  /** Removes a file, symlink or directory tree. @throws NotFoundError */
  remove(path: string): Promise<void>;
  /** Renames; replaces a file at `to`. @throws NotFoundError, ConflictError */
  rename(from: string, to: string): Promise<void>;
  /** Creates a symlink at `path` pointing to `target`. @throws ConflictError */
  symlink(target: string, path: string): Promise<void>;
  /** The tree at `path` as a tar stream (modes, mtimes, symlinks kept). */
  exportTar(path: string): Promise<ReadableStream<Uint8Array>>;
  /** Unpacks a tar stream under `path`. @throws InvalidArgumentError for entries escaping `path` */
  importTar(path: string, tar: ReadableStream<Uint8Array>): Promise<void>;
  /**
   * Watches the directory `path` (and every directory below it when
   * `recursive`), calling `onEvent` for each change until stopped; resolves
   * once the watch is in place, so that a change made after it is seen.
   * @throws NotFoundError, InvalidArgumentError (ENOTDIR: not a directory)
   */
  watch(path: string, recursive: boolean, onEvent: (e: WatchEvent) => void): Promise<Watching>;
}

/** Live usage figures of one instance; fields a tier cannot measure are omitted. */
export interface InstanceStats {
  /** Memory in use, bytes. */
  memoryBytes?: number;
  /** CPU time used, ms. */
  cpuMs?: number;
  /** Workspace size, bytes. */
  diskBytes?: number;
}

/** A piece of code for a tier's warm interpreter. */
export interface RunCodeRequest {
  /** Source code. */
  code: string;
  /** Language of `code`. */
  language: "python";
  /** Name of the persistent context (globals survive between calls); default `default`. */
  context: string;
  /** Working directory. */
  cwd: string;
  /** Environment. */
  env: Record<string, string>;
  onStdout(chunk: Uint8Array): void;
  onStderr(chunk: Uint8Array): void;
  /**
   * Structured events of the cell (results, the error, the execution count), for a tier whose
   * interpreter reports them; without an `error` event, a non-zero exit is read as a traceback on stderr.
   */
  onEvent?(event: CellEvent): void;
  /**
   * Ends the cell: its code is interrupted (KeyboardInterrupt) and, when it does not stop, the
   * interpreter is killed. Core aborts it for the caller's signal and at the cell's time limit,
   * which it keeps itself, as for commands: a tier keeps no clock of its own.
   */
  signal?: AbortSignal;
}

/** One live sandbox on one tier. */
export interface Instance {
  /**
   * The tier's own open handle on the sandbox database (`InstanceSpec.databasePath`), when it
   * keeps one: core then writes the audit log through it instead of opening a second connection.
   */
  readonly database?: DatabaseSync;
  /** Runs code in a warm interpreter whose state persists per context; absent when the tier has none. */
  runCode?(request: RunCodeRequest): Promise<{ exitCode: number }>;
  /** Forgets a context of `runCode` (its globals), when the tier has `runCode`. */
  resetCodeContext?(context: string): Promise<void>;
  /** File operations on the sandbox's filesystem. */
  readonly files: FileOps;
  /**
   * Opens a TCP connection to `port` on the sandbox's own loopback (only when the tier's
   * capabilities say `inboundPorts`). @throws PortClosedError when nothing listens, SandboxStoppedError
   */
  connectPort?(port: number): Promise<Duplex>;
  /**
   * Writes an AgentFS file (AgentFS's schema, 0.4) to the host path `dest`: the sandbox's
   * `/workspace` at its root, with the key-value store and the audit log (`tool_calls`).
   * `dest` is replaced only when complete.
   */
  exportAgentFs?(dest: string): Promise<void>;
  /**
   * Replaces the network policy of the running sandbox: new connections,
   * requests and DNS questions are checked against it; open ones stay. Present
   * on every tier whose capabilities say `egress`.
   * @throws UnsupportedError when this sandbox cannot be given egress while it runs
   */
  updateNetwork?(settings: NetworkSettings): Promise<void>;
  /** Starts a process. @throws SandboxStoppedError */
  spawn(request: SpawnRequest): Promise<SpawnedProcess>;
  /** Current resource use. */
  stats(): Promise<InstanceStats>;
  /**
   * Stops processes and detaches; the workspace stays for a later `open`.
   * With `discard`, the sandbox is being destroyed next (its state is deleted):
   * nothing needs to be made durable first.
   */
  close(options?: CloseOptions): Promise<void>;
}

/** Options of {@link Instance.close}. */
export interface CloseOptions {
  /** The sandbox is about to be destroyed: skip flushing state to disk. Default false. */
  discard?: boolean;
}
