/**
 * `KilnClient`: a Kiln server through the same API as the embedded library.
 * Moving code between them changes one line:
 *
 *   const kiln = await Kiln.open({ dataDir: ".kiln" });                  // embedded
 *   const kiln = await KilnClient.open({ url, apiKey });                  // remote
 */
import type { Capabilities } from "../core/backend.ts";
import { InvalidArgumentError, throwIfAborted, UnsupportedError } from "../core/errors.ts";
import type { ListOptions } from "../core/kiln.ts";
import type { CreateOptions, SandboxInfo, SnapshotInfo, TierName, TierStatus } from "../core/types.ts";
import type { VolumeInfo } from "../core/volumes.ts";
import type { BackendInfo, KilnApi } from "./api.ts";
import { Transport } from "./http.ts";
import { RemoteSandbox } from "./sandbox.ts";

/** Options of {@link KilnClient.open}. */
export interface ClientOptions {
  /** Base URL of the server, e.g. `http://127.0.0.1:7070`. */
  url: string;
  /** An API key made by `kiln keys create`. */
  apiKey: string;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

/** A remote Kiln. */
export class KilnClient implements KilnApi {
  /** The server's base URL. */
  readonly url: string;
  private readonly http: Transport;
  private closed = false;

  private constructor(http: Transport) {
    this.http = http;
    this.url = http.url;
  }

  /**
   * A client for a server. Makes no request (a wrong key shows on the first call, as `unauthenticated`).
   * @throws InvalidArgumentError for a malformed URL or a missing key
   */
  static async open(options: ClientOptions): Promise<KilnClient> {
    throwIfAborted(options.signal);
    try {
      new URL(options.url);
    } catch {
      throw new InvalidArgumentError(`not a URL: ${JSON.stringify(options.url)}`);
    }
    if (typeof options.apiKey !== "string" || options.apiKey.length === 0) {
      throw new InvalidArgumentError("apiKey is required");
    }
    return new KilnClient(new Transport(options.url, options.apiKey, options.fetch));
  }

  private check(): Transport {
    if (this.closed) throw new InvalidArgumentError("this KilnClient is closed");
    return this.http;
  }

  /**
   * Creates a sandbox owned by this key.
   * @throws InvalidArgumentError, TierUnavailableError, NotFoundError (template),
   *   LimitExceededError (`limit_exceeded`: the key's `maxSandboxes` or `maxMemoryBytes` quota), AbortedError,
   *   UnsupportedError (`buildTemplate`: a server builds templates only when its operator does)
   */
  async create(options: CreateOptions = {}): Promise<RemoteSandbox> {
    const { signal, buildTemplate, ...body } = options;
    if (buildTemplate) {
      throw new UnsupportedError(
        "a server builds no template on demand: its operator builds it (`kiln template build NAME`)",
      );
    }
    const info = await this.check().json<SandboxInfo>("POST", "/v1/sandboxes", { json: body, signal });
    return new RemoteSandbox(this.http, info.id);
  }

  /** Connects to a sandbox of this key. @throws NotFoundError (`not_found`), InvalidArgumentError (malformed id) */
  async connect(id: string, options: { signal?: AbortSignal } = {}): Promise<RemoteSandbox> {
    const sb = new RemoteSandbox(this.check(), String(id));
    await sb.info(options);
    return sb;
  }

  /** This key's sandboxes, optionally filtered by metadata and state (every page of the server's list). */
  async list(options: ListOptions = {}): Promise<SandboxInfo[]> {
    const metadata = Object.entries(options.metadata ?? {}).map(([k, v]) => `${k}=${v}`);
    const out: SandboxInfo[] = [];
    let nextToken: string | undefined;
    do {
      const res = await this.check().request("GET", "/v1/sandboxes", {
        query: { metadata, state: options.state, nextToken },
        signal: options.signal,
      });
      out.push(...((await res.json()) as SandboxInfo[]));
      nextToken = res.headers.get("x-next-token") ?? undefined;
    } while (nextToken);
    return out;
  }

  /** Kills a sandbox of this key. @throws NotFoundError, InvalidArgumentError */
  async kill(id: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.check().empty("DELETE", `/v1/sandboxes/${encodeURIComponent(String(id))}`, {
      signal: options.signal,
    });
  }

  /** This key's snapshots, oldest first (optionally only those with all of these labels). */
  async snapshots(
    options: { metadata?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<SnapshotInfo[]> {
    const all = await this.check().json<SnapshotInfo[]>("GET", "/v1/snapshots", { signal: options.signal });
    return all.filter((s) => Object.entries(options.metadata ?? {}).every(([k, v]) => s.metadata[k] === v));
  }

  /** One snapshot of this key. @throws NotFoundError, InvalidArgumentError */
  async snapshotInfo(id: string): Promise<SnapshotInfo> {
    return this.check().json<SnapshotInfo>("GET", `/v1/snapshots/${encodeURIComponent(String(id))}`);
  }

  /** Deletes a snapshot of this key. @throws NotFoundError, InvalidArgumentError */
  async removeSnapshot(id: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.check().empty("DELETE", `/v1/snapshots/${encodeURIComponent(String(id))}`, {
      signal: options.signal,
    });
  }

  /** Creates an empty named volume of this key. @throws InvalidArgumentError, ConflictError (the name is taken) */
  async createVolume(
    name: string,
    options: { metadata?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<VolumeInfo> {
    return this.check().json<VolumeInfo>("POST", "/v1/volumes", {
      json: { name, ...(options.metadata ? { metadata: options.metadata } : {}) },
      signal: options.signal,
    });
  }

  /** This key's volumes, oldest first (optionally only those with all of these labels). */
  async volumes(
    options: { metadata?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<VolumeInfo[]> {
    const all = await this.check().json<VolumeInfo[]>("GET", "/v1/volumes", { signal: options.signal });
    return all.filter((v) =>
      Object.entries(options.metadata ?? {}).every(([k, val]) => v.metadata[k] === val),
    );
  }

  /** One volume of this key, by id or name. @throws NotFoundError, InvalidArgumentError */
  async volumeInfo(id: string): Promise<VolumeInfo> {
    return this.check().json<VolumeInfo>("GET", `/v1/volumes/${encodeURIComponent(String(id))}`);
  }

  /** Deletes a volume of this key and its files. @throws NotFoundError, ConflictError (a sandbox mounts it) */
  async removeVolume(id: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.check().empty("DELETE", `/v1/volumes/${encodeURIComponent(String(id))}`, {
      signal: options.signal,
    });
  }

  /** Readiness of every tier on the server's machine. */
  async doctor(options: { signal?: AbortSignal } = {}): Promise<TierStatus[]> {
    return this.check().json<TierStatus[]>("GET", "/v1/doctor", { signal: options.signal });
  }

  /** What a tier can and cannot do on the server. @throws TierUnavailableError, InvalidArgumentError */
  async backend(tier: TierName, options: { signal?: AbortSignal } = {}): Promise<BackendInfo> {
    const capabilities = await this.check().json<Capabilities>(
      "GET",
      `/v1/tiers/${encodeURIComponent(tier)}/capabilities`,
      { signal: options.signal },
    );
    return { capabilities };
  }

  /** Closes the client (sandboxes stay on the server). */
  async close(): Promise<void> {
    this.closed = true;
  }
}
