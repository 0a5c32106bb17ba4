/** A remote sandbox: the same shape as the library's `Sandbox`. */
import type { InstanceStats } from "../core/backend.ts";
import { InvalidArgumentError, throwIfAborted } from "../core/errors.ts";
import type { Execution } from "../core/execution.ts";
import type { RunCodeOptions } from "../core/sandbox.ts";
import type {
  AuditEntry,
  NetworkAuditEntry,
  PortPolicy,
  SandboxInfo,
  SnapshotInfo,
  TierName,
} from "../core/types.ts";
import type { NetworkOptions, NetworkSettings, SandboxNetwork } from "../index.ts";
import type { SandboxApi } from "./api.ts";
import { RemoteCodeContexts } from "./code-contexts.ts";
import { RemoteCommands } from "./commands.ts";
import { RemoteFiles } from "./files.ts";
import type { Transport } from "./http.ts";
import { consume } from "./ndjson.ts";

/** A sandbox on a Kiln server. Every method takes an AbortSignal and throws the library's KilnErrors. */
export class RemoteSandbox implements SandboxApi {
  /** Sandbox id. */
  readonly id: string;
  /** Running commands. */
  readonly commands: RemoteCommands;
  /** The sandbox's files. */
  readonly files: RemoteFiles;
  /** Its inbound ports: the policy and per-port tokens (the server serves the ports themselves). */
  readonly ports: RemotePorts;
  /** Its egress policy, changeable while it runs (see the library's `sandbox.network`). */
  readonly network: SandboxNetwork;
  /** Its code contexts (the interpreters `runCode` runs cells in). */
  readonly codeContexts: RemoteCodeContexts;
  private readonly http: Transport;
  private readonly path: string;

  /** @internal Made by KilnClient. */
  constructor(http: Transport, id: string) {
    this.http = http;
    this.id = id;
    this.path = `/v1/sandboxes/${encodeURIComponent(id)}`;
    this.commands = new RemoteCommands(http, this.path);
    this.files = new RemoteFiles(http, this.path);
    this.ports = new RemotePorts(http, this.path);
    this.network = {
      get: (options = {}) =>
        http.json<NetworkSettings>("GET", `${this.path}/network`, { signal: options.signal }),
      update: (network: NetworkOptions, options = {}) =>
        http.json<NetworkSettings>("PUT", `${this.path}/network`, { json: network, signal: options.signal }),
    };
    this.codeContexts = new RemoteCodeContexts(http, this.path);
  }

  /**
   * Where the server serves `port` of this sandbox: `{port}-{id}.{domain}` when it has a domain
   * (`kiln serve --domain`), else the path form's URL under the server's.
   * @throws NotFoundError, InvalidArgumentError
   */
  async getHost(port: number, options: { signal?: AbortSignal } = {}): Promise<string> {
    const { domain } = await this.http.json<{ domain: string | null }>("GET", `${this.path}/ports`, {
      signal: options.signal,
    });
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new InvalidArgumentError(`a port must be an integer from 1 to 65535, not ${port}`);
    }
    return domain ? `${port}-${this.id}.${domain}` : `${this.http.url}${this.path}/ports/${port}/proxy/`;
  }

  /** The sandbox's record. @throws NotFoundError when it was killed */
  async info(options: { signal?: AbortSignal } = {}): Promise<SandboxInfo> {
    return this.http.json<SandboxInfo>("GET", this.path, { signal: options.signal });
  }

  /**
   * Sets the lifetime to `lifetimeMs` from now (0: no expiry).
   * @throws NotFoundError, InvalidArgumentError, LimitExceededError (`lifetimeMs`, past the server's maximum)
   */
  async setLifetime(lifetimeMs: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.http.json("POST", `${this.path}/lifetime`, { json: { lifetimeMs }, signal: options.signal });
  }

  /** @deprecated The old name of {@link setLifetime}. */
  async setTimeout(lifetimeMs: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.setLifetime(lifetimeMs, options);
  }

  /** Kills the sandbox: stops its processes and deletes its workspace. @throws NotFoundError */
  async kill(options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.http.empty("DELETE", this.path, { signal: options.signal });
  }

  /** Moves the workspace to another tier. @throws TierUnavailableError, NotFoundError, AbortedError */
  async move(
    tier: TierName,
    options: { signal?: AbortSignal; allowUnenforcedLimits?: boolean } = {},
  ): Promise<void> {
    const json = { tier, ...(options.allowUnenforcedLimits ? { allowUnenforcedLimits: true } : {}) };
    await this.http.json("POST", `${this.path}/move`, { json, signal: options.signal });
  }

  /** Saves the sandbox's files as a snapshot. @throws NotFoundError, InvalidArgumentError */
  async snapshot(options: { name?: string; signal?: AbortSignal } = {}): Promise<SnapshotInfo> {
    const { signal, ...body } = options;
    return this.http.json<SnapshotInfo>("POST", `${this.path}/snapshots`, { json: body, signal });
  }

  /** `count` new sandboxes from this one's files as they are now. @throws LimitExceededError, InvalidArgumentError */
  async fork(count = 1, options: { signal?: AbortSignal } = {}): Promise<RemoteSandbox[]> {
    const infos = await this.http.json<SandboxInfo[]>("POST", `${this.path}/fork`, {
      json: { count },
      signal: options.signal,
    });
    return infos.map((i) => new RemoteSandbox(this.http, i.id));
  }

  /** Stops the sandbox keeping its state on disk; any later call resumes it. @throws NotFoundError */
  async pause(options: { keepMemory?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    const { signal, ...body } = options;
    await this.http.json("POST", `${this.path}/pause`, { json: body, signal });
  }

  /** Starts a paused sandbox again. @throws NotFoundError */
  async resume(options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.http.json("POST", `${this.path}/resume`, { json: {}, signal: options.signal });
  }

  /** Whether the sandbox is still alive (false once killed or expired). */
  async isRunning(options: { signal?: AbortSignal } = {}): Promise<boolean> {
    throwIfAborted(options.signal);
    try {
      return (await this.info(options)).state === "running";
    } catch (e) {
      if ((e as { code?: string }).code === "not_found") return false;
      throw e;
    }
  }

  /** The network audit log: the newest `limit` connections, requests and DNS queries, oldest first. @throws NotFoundError */
  async networkLogs(options: { limit?: number; signal?: AbortSignal } = {}): Promise<NetworkAuditEntry[]> {
    return this.http.json<NetworkAuditEntry[]>("GET", `${this.path}/network-logs`, {
      query: { limit: options.limit },
      signal: options.signal,
    });
  }

  /** The audit log: the newest `limit` commands, oldest first. @throws NotFoundError */
  async logs(options: { limit?: number; signal?: AbortSignal } = {}): Promise<AuditEntry[]> {
    return this.http.json<AuditEntry[]>("GET", `${this.path}/logs`, {
      query: { limit: options.limit },
      signal: options.signal,
    });
  }

  /** Current resource use. @throws NotFoundError */
  async stats(options: { signal?: AbortSignal } = {}): Promise<InstanceStats> {
    return this.http.json<InstanceStats>("GET", `${this.path}/stats`, { signal: options.signal });
  }

  /**
   * Runs a code cell in a code context, streaming its output and results.
   * @throws UnsupportedError (`unsupported`) on a tier without one; InvalidArgumentError; AbortedError
   */
  async runCode(code: string, options: RunCodeOptions = {}): Promise<Execution> {
    throwIfAborted(options.signal);
    const { onStdout, onStderr, onResult, onError, signal, ...rest } = options;
    const res = await this.http.request("POST", `${this.path}/code`, { json: { code, ...rest }, signal });
    const end = await consume(
      res,
      {
        ...(onStdout ? { onStdout } : {}),
        ...(onStderr ? { onStderr } : {}),
        ...(onResult ? { onResult } : {}),
        ...(onError ? { onError } : {}),
      },
      signal,
    );
    if (end.error) throw end.error;
    return end.result as unknown as Execution;
  }
}

/** A per-port token, as the server issues it. */
export interface PortToken {
  /** Send as `X-Kiln-Port-Token`, or `?kiln_token=` (browsers, WebSockets). */
  token: string;
  port: number;
  /** ISO 8601, or null: it lives as long as the sandbox. */
  expiresAt: string | null;
  /** `{port}-{id}.{domain}` when the server has a domain. */
  host: string | null;
  /** The path form's URL, with the token in its query. */
  pathUrl: string;
}

/** `sandbox.ports` over HTTP. */
export class RemotePorts {
  private readonly http: Transport;
  private readonly path: string;

  /** @internal */
  constructor(http: Transport, path: string) {
    this.http = http;
    this.path = `${path}/ports`;
  }

  /** The port policy. @throws NotFoundError */
  async policy(options: { signal?: AbortSignal } = {}): Promise<PortPolicy> {
    return (await this.http.json<{ policy: PortPolicy }>("GET", this.path, { signal: options.signal }))
      .policy;
  }

  /** Changes the policy for new connections; unset fields stay. @throws InvalidArgumentError, NotFoundError */
  async update(policy: Partial<PortPolicy>, options: { signal?: AbortSignal } = {}): Promise<PortPolicy> {
    return (
      await this.http.json<{ policy: PortPolicy }>("PATCH", this.path, {
        json: policy,
        signal: options.signal,
      })
    ).policy;
  }

  /**
   * A token that reaches `port` only, for `ttlMs` (default 1 hour; 0: as long as the sandbox).
   * Revoking the key or deleting the sandbox ends it. @throws InvalidArgumentError, NotFoundError
   */
  async token(port: number, options: { ttlMs?: number; signal?: AbortSignal } = {}): Promise<PortToken> {
    const { signal, ...body } = options;
    return this.http.json<PortToken>("POST", `${this.path}/${port}/token`, { json: body, signal });
  }
}
