/**
 * The shape shared by the library and the client: code written against these
 * types runs on an embedded `Kiln` or a remote `KilnClient` unchanged.
 */
import type { Capabilities } from "../core/backend.ts";
import type { CodeContext } from "../core/code-contexts.ts";
import type { Commands } from "../core/commands.ts";
import type { Files } from "../core/files.ts";
import type { Kiln, ListOptions } from "../core/kiln.ts";
import type { Sandbox } from "../core/sandbox.ts";
import type { CreateOptions, TierName } from "../core/types.ts";

/** `sandbox.commands`. */
export type CommandsApi = Pick<Commands, "run" | "list" | "connect" | "kill">;

/** `sandbox.files`. */
export type FilesApi = Pick<
  Files,
  | "read"
  | "write"
  | "writeFiles"
  | "list"
  | "makeDir"
  | "remove"
  | "rename"
  | "exists"
  | "stat"
  | "symlink"
  | "exportTar"
  | "importTar"
  | "watch"
>;

/** `sandbox.codeContexts` (the library's `list` answers at once, the client's after a request). */
export interface CodeContextsApi {
  create(options?: { language?: string; cwd?: string; id?: string }): Promise<CodeContext>;
  list(): CodeContext[] | Promise<CodeContext[]>;
  restart(id: string): Promise<void>;
  remove(id: string): Promise<void>;
}

/** A sandbox. */
export interface SandboxApi
  extends Pick<
    Sandbox,
    | "id"
    | "info"
    | "setLifetime"
    | "setTimeout"
    | "kill"
    | "move"
    | "isRunning"
    | "logs"
    | "stats"
    | "runCode"
    | "snapshot"
    | "pause"
    | "resume"
    | "network"
  > {
  readonly commands: CommandsApi;
  readonly files: FilesApi;
  readonly codeContexts: CodeContextsApi;
  /** New sandboxes from this one's files as they are now (see `Sandbox.fork`). */
  fork(count?: number, options?: { signal?: AbortSignal }): Promise<SandboxApi[]>;
}

/** What a tier's backend tells about itself (through a client: only its capabilities). */
export interface BackendInfo {
  readonly capabilities: Capabilities;
}

/** A Kiln: embedded (`Kiln`) or remote (`KilnClient`). */
export interface KilnApi
  extends Pick<
    Kiln,
    | "doctor"
    | "close"
    | "snapshots"
    | "snapshotInfo"
    | "removeSnapshot"
    | "createVolume"
    | "volumes"
    | "volumeInfo"
    | "removeVolume"
  > {
  create(options?: CreateOptions): Promise<SandboxApi>;
  connect(id: string, options?: { signal?: AbortSignal }): Promise<SandboxApi>;
  list(options?: ListOptions): ReturnType<Kiln["list"]>;
  kill(id: string, options?: { signal?: AbortSignal }): Promise<void>;
  backend(tier: TierName): Promise<BackendInfo>;
}
