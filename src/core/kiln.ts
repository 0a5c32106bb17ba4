/**
 * Kiln: the entry point. Opens a data directory, creates, finds, lists,
 * moves and kills sandboxes on any registered tier.
 *
 * Data directory layout:
 *   kiln.db                        sandbox records (shared by every process on this directory)
 *   sandboxes/<id>/workspace.db    AgentFS database: the audit log, and the virtual tier's files
 *   sandboxes/<id>/...             tier-private state
 *   sandboxes/<id>/warm.json       set while the sandbox is warm (started, not yet handed out)
 *   sandboxes/<id>/creating.json   set while the sandbox is being made (see creating.ts)
 *   snapshots/<id>/                a snapshot's files (see sandbox-state.ts)
 *   templates/                     root filesystems of the real-binary tiers
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import {
  hasKeptNetworkValues,
  type KeptNetworkValues,
  readKeptNetworkValues,
  writeKeptNetworkValues,
} from "../network/kept-values.ts";
import {
  hasEgress,
  headerRuleValues,
  type NetworkOptions,
  type NetworkSettings,
  parseServerNetworkLimits,
  resolveNetwork,
  type ServerNetworkLimits,
  secretValues,
  upstreamProxyPassword,
} from "../network/policy.ts";
import { parseHostMap } from "../network/resolver.ts";
import { defaultUpstreamProxy } from "../network/upstream-proxy.ts";
import { Admission, type AdmissionOptions } from "./admission.ts";
import { AuditLog } from "./audit-log.ts";
import type { Backend, InstanceSpec } from "./backend.ts";
import type { CommandHandle, ProcessInfo } from "./commands.ts";
import { clearCreating, makeStampedDir, unfinishedCreates } from "./creating.ts";
import { checkEnv } from "./env.ts";
import {
  AbortedError,
  InvalidArgumentError,
  LimitExceededError,
  NotFoundError,
  TierUnavailableError,
  throwIfAborted,
  type UnenforcedLimit,
  UnenforcedLimitsError,
  UnsupportedError,
} from "./errors.ts";
import { Hibernation } from "./hibernation.ts";
import { checkSandboxId, newSandboxId } from "./ids.ts";
import { checkTimeoutMs, type Limits, MAX_SANDBOX_TIMEOUT_MS, resolveLimits } from "./limits.ts";
import { sandboxPath, WORKSPACE } from "./paths.ts";
import { checkPortPolicy, type PortPolicy } from "./ports.ts";
import { OWN_PROCESS_TOKEN, processAlive } from "./process-token.ts";
import { RecordStore } from "./record-store.ts";
import { Sandbox, type SnapshotOptions } from "./sandbox.ts";
import { checkSnapshotId, publicSnapshot, SandboxStates } from "./sandbox-state.ts";
import { checkEnvSize, checkMetadataSize } from "./sizes.ts";
import { type SnapshotRecord, StateStore } from "./state-store.ts";
import { type BackendFactory, checkTierName, registeredTiers } from "./tier-registry.ts";
import { traced, tracedSync } from "./trace.ts";
import {
  type CreateOptions,
  type ExpiryAction,
  type SandboxInfo,
  type SandboxState,
  type SnapshotInfo,
  TIER_NAMES,
  type TierName,
  type TierStatus,
} from "./types.ts";
import { VolumeFiles } from "./volume-files.ts";
import { type VolumeInfo, Volumes } from "./volumes.ts";
import { WarmPool, type WarmShape } from "./warm-pool.ts";

/** The metadata key naming a sandbox's or a volume's owner, as the server and the E2B API write it. */
const OWNER_METADATA_KEY = "kiln.owner";

/** Forks started at once. */
const FORK_PARALLEL = 4;

/** A fork's network: its parent's policy and the values it keeps on the host. */
interface InheritedNetwork {
  settings: NetworkSettings;
  values: KeptNetworkValues;
}

/** The values a policy as given keeps on the host. */
function keptValuesOf(options: NetworkOptions | undefined): KeptNetworkValues {
  return {
    secrets: secretValues(options),
    headers: headerRuleValues(options),
    proxyPassword: upstreamProxyPassword(options),
  };
}

/** How long after a failed pause at expiry (no memory image, no files-only pause either) it is tried again. */
const EXPIRY_RETRY_MS = 10_000;

/** The folder of a sandbox's state directory that names the live processes that have it open. */
const OPEN_BY = "open-by";

/** Options of {@link Kiln.open}. */
export interface OpenOptions {
  /** Data directory; default `$KILN_DATA_DIR` or `./.kiln`. */
  dataDir?: string;
  /** Backends to use instead of the registered ones (tests, embedding). */
  backends?: Partial<Record<TierName, BackendFactory>>;
  /**
   * Sandboxes to keep started ahead of demand on the real-binary tiers, per
   * tier, template and limits recently created (see `warm-pool.ts`); default
   * `$KILN_WARM_POOL` or 0 (off).
   */
  warmPool?: number;
  /**
   * Longest lifetime a sandbox may be given, in ms, at create and by
   * `setTimeout`; a timeout of 0 ("no expiry") then means this maximum, and a
   * longer one is refused (`limit_exceeded`, limit `lifetimeMs`). Default:
   * none (the library's sandboxes may live for ever); `kiln serve` sets 24 h.
   */
  maxLifetimeMs?: number;
  /**
   * Admission control (`src/core/admission.ts`): the host's budget of live
   * sandboxes and summed `limits.memoryBytes`, and per-owner quotas; beyond
   * either, `create` is `limit_exceeded`. Default: none; `kiln serve` sets both.
   */
  admission?: AdmissionOptions;
  /**
   * Idle time in ms after which a sandbox on a tier whose pause keeps memory
   * is paused to disk (hibernated); any call resumes it. A sandbox's own
   * `idleTimeoutMs` overrides it (on any tier). Default 0 (off); `kiln serve` sets 10 minutes.
   */
  idleTimeoutMs?: number;
  /**
   * Host names the egress path resolves to these addresses, never asking DNS
   * (air-gapped setups, tests): `{ "files.test": ["198.51.100.10"] }`.
   * Default: `$KILN_NETWORK_HOSTS` (`name=address,...`), else none.
   * @throws InvalidArgumentError for a bad name or address
   */
  networkHosts?: Record<string, string[]>;
  /**
   * The upstream proxy (`http://` for CONNECT, or `socks5://`, with optional
   * `user:password@`) that the egress of every sandbox whose policy names none
   * leaves through, failing closed. Default: `$KILN_UPSTREAM_PROXY`, else none (direct).
   * @throws InvalidArgumentError for a bad URL
   */
  upstreamProxy?: string;
  /**
   * Caps on every sandbox's egress, so that one cannot starve the others: open
   * connections (default 256), bytes a second each way (default none), network
   * audit entries a second (default 200). A sandbox's policy (`network.limits`) may only lower them.
   * @throws InvalidArgumentError
   */
  networkLimits?: ServerNetworkLimits;
  signal?: AbortSignal;
}

/** Options of {@link Kiln.list}. */
export interface ListOptions {
  /** Only sandboxes whose metadata has all of these pairs. */
  metadata?: Record<string, string>;
  /** Only sandboxes in this state. */
  state?: SandboxState;
  signal?: AbortSignal;
}

/** The checked `networkHosts` option, or `$KILN_NETWORK_HOSTS`, as a plain map. @throws InvalidArgumentError */
function hostsOption(given: Record<string, string[]> | undefined): Record<string, string[]> {
  const map = parseHostMap(given ?? process.env.KILN_NETWORK_HOSTS);
  return Object.fromEntries([...map].map(([name, addresses]) => [name, addresses.map((a) => a.toString())]));
}

/** The default data directory. */
export function defaultDataDir(): string {
  return resolve(process.env.KILN_DATA_DIR ?? ".kiln");
}

/** A Kiln instance over one data directory. */
export class Kiln {
  /** Absolute data directory. */
  readonly dataDir: string;
  private readonly records: RecordStore;
  private readonly factories: Map<TierName, BackendFactory>;
  private readonly backends = new Map<TierName, Promise<Backend>>();
  private readonly live = new Map<string, Sandbox>();
  /** Told of every command started on a sandbox of this Kiln ({@link Kiln.watchCommands}). */
  private readonly commandWatchers = new Set<
    (sandboxId: string, handle: CommandHandle, info: ProcessInfo) => void
  >();
  /** Records of live sandboxes, so that commands do not read kiln.db each time. */
  private readonly cache = new Map<string, SandboxInfo>();
  private readonly tearingDown = new Set<string>();
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>();
  private readonly warm: WarmPool;
  private readonly admission: Admission;
  private readonly states: SandboxStates;
  private readonly stateStore: StateStore;
  private readonly hibernation: Hibernation;
  private readonly volumeStore: Volumes;
  /** Default idle time before hibernation, ms (see {@link OpenOptions.idleTimeoutMs}). */
  private idleTimeoutMs = 0;
  private closed = false;
  /** Longest lifetime in ms (see {@link OpenOptions.maxLifetimeMs}); undefined: none. */
  readonly maxLifetimeMs: number | undefined;
  /** Names the egress path resolves without DNS (see {@link OpenOptions.networkHosts}). */
  private networkHosts: Record<string, string[]> = {};
  /** The server's upstream proxy (see {@link OpenOptions.upstreamProxy}). */
  private upstreamProxy: string | undefined;
  /** The server's caps on egress (see {@link OpenOptions.networkLimits}). */
  private networkLimits: ServerNetworkLimits = {};

  private constructor(
    dataDir: string,
    factories: Map<TierName, BackendFactory>,
    warmPool: number,
    maxLifetimeMs: number | undefined,
    admission: AdmissionOptions,
  ) {
    this.dataDir = dataDir;
    this.maxLifetimeMs = maxLifetimeMs;
    mkdirSync(join(dataDir, "sandboxes"), { recursive: true, mode: 0o700 });
    this.records = new RecordStore(join(dataDir, "kiln.db"));
    this.admission = new Admission(
      admission,
      (label) => this.records.usage(label),
      (label) => this.stateStore.stateBytes(label),
    );
    const records = this.records;
    this.stateStore = new StateStore(records.db);
    // Volumes are scoped by the owner label every surface writes (`kiln.owner`), admission or not.
    this.volumeStore = new Volumes(records.db, dataDir, admission.ownerLabel ?? OWNER_METADATA_KEY, (id) =>
      records.mounting(id),
    );
    this.hibernation = new Hibernation({
      idleTimeoutMs: (id) => this.idleTimeoutOf(id),
      busy: async (id) => this.live.get(id)?.commands.busy() ?? false,
      pause: async (id, stillIdle) => {
        if (this.closed) return;
        await this.states.pause(id, undefined, true, stillIdle);
      },
    });
    this.states = new SandboxStates({
      dataDir,
      records,
      store: this.stateStore,
      backend: (tier) => this.backend(tier),
      spec: (info) => this.spec(info),
      record: (id) => {
        const r = records.get(id);
        if (!r || r.state === "killed") throw new NotFoundError(`no sandbox ${id}`);
        return r;
      },
      live: (id) => this.live.get(id),
      invalidate: (id) => this.cache.delete(id),
      checkDisk: (metadata, addBytes) => this.admission.checkDisk(metadata, addBytes),
    });
    this.factories = factories;
    this.warm = new WarmPool(
      {
        dataDir,
        backend: (tier) => this.backend(tier),
        spec: (info) => this.spec(info),
        hasRecord: (id) => records.get(id) !== undefined,
      },
      warmPool,
    );
  }

  /** Opens (creating if needed) a data directory and reaps expired sandboxes. */
  static async open(options: OpenOptions = {}): Promise<Kiln> {
    throwIfAborted(options.signal);
    const factories = registeredTiers();
    for (const [tier, f] of Object.entries(options.backends ?? {})) if (f) factories.set(tier as TierName, f);
    const warm = options.warmPool ?? Number(process.env.KILN_WARM_POOL ?? 0);
    if (!Number.isInteger(warm) || warm < 0 || warm > 64)
      throw new InvalidArgumentError("warmPool (or $KILN_WARM_POOL) must be an integer from 0 to 64");
    const max = options.maxLifetimeMs;
    if (max !== undefined && (!Number.isSafeInteger(max) || max <= 0))
      throw new InvalidArgumentError("maxLifetimeMs must be a positive integer of ms");
    const kiln = new Kiln(
      resolve(options.dataDir ?? defaultDataDir()),
      factories,
      warm,
      max,
      options.admission ?? {},
    );
    const idle = options.idleTimeoutMs ?? 0;
    checkTimeoutMs("idleTimeoutMs", idle, MAX_SANDBOX_TIMEOUT_MS);
    kiln.idleTimeoutMs = idle;
    kiln.networkHosts = hostsOption(options.networkHosts);
    kiln.upstreamProxy = options.upstreamProxy ?? (process.env.KILN_UPSTREAM_PROXY || undefined);
    defaultUpstreamProxy(kiln.upstreamProxy);
    kiln.networkLimits = parseServerNetworkLimits(options.networkLimits);
    kiln.volumeStore.sweep();
    await kiln.reapUnfinishedCreates();
    await kiln.recoverCrashed();
    await kiln.states.recover();
    await kiln.reapExpired();
    await kiln.warm.reapOrphaned();
    for (const r of kiln.records.list()) kiln.armExpiry(r.id, r.expiresAt);
    return kiln;
  }

  /** The backend of a tier. @throws TierUnavailableError when no backend is registered for it */
  async backend(tier: TierName): Promise<Backend> {
    let b = this.backends.get(tier);
    if (!b) {
      const f = this.factories.get(tier);
      if (!f) throw new TierUnavailableError(tier, "this build of Kiln has no backend for it");
      b = f();
      this.backends.set(tier, b);
      b.catch(() => this.backends.delete(tier));
    }
    return b;
  }

  /** Readiness of every tier on this machine, and why a tier is not ready. */
  async doctor(options: { signal?: AbortSignal } = {}): Promise<TierStatus[]> {
    return Promise.all(
      TIER_NAMES.map(async (tier): Promise<TierStatus> => {
        try {
          return await (await this.backend(tier)).probe(options.signal);
        } catch (e) {
          return { tier, available: false, reason: e instanceof TierUnavailableError ? e.reason : String(e) };
        }
      }),
    );
  }

  /**
   * The strongest tier that runs here with real binaries from templates (a
   * real Linux), as {@link doctor} probes them ({@link TIER_NAMES} is ordered
   * weakest to strongest); `virtual`, with `fallback` saying why, when none
   * runs (a tier that runs here only emulated, or that cannot enforce every limit here, is passed
   * over: no caller of this asked for a sandbox without a limit). Pass `statuses` to reuse a {@link doctor} answer instead of probing again.
   */
  async strongestRealTier(
    options: { signal?: AbortSignal; statuses?: TierStatus[] } = {},
  ): Promise<{ tier: TierName; fallback?: string }> {
    const statuses = options.statuses ?? (await this.doctor(options));
    for (const tier of [...TIER_NAMES].reverse()) {
      const status = statuses.find((s) => s.tier === tier);
      if (!status?.available || status.emulated || status.unenforcedLimits?.length) continue;
      const caps = (await this.backend(tier)).capabilities;
      if (caps.realBinaries && caps.templates) return { tier };
    }
    const why = statuses
      .filter((s) => !s.available || s.unenforcedLimits?.length)
      .map((s) =>
        s.available
          ? `${s.tier}: cannot enforce ${s.unenforcedLimits!.map((l) => l.limit).join(", ")} here`
          : `${s.tier}: ${s.reason}`,
      )
      .join("; ");
    return { tier: "virtual", fallback: `no real tier runs here (${why})` };
  }

  private spec(info: SandboxInfo): InstanceSpec {
    const stateDir = join(this.dataDir, "sandboxes", info.id);
    return {
      id: info.id,
      template: info.template,
      limits: info.limits,
      env: info.env,
      stateDir,
      databasePath: join(stateDir, "workspace.db"),
      dataDir: this.dataDir,
      network: info.network,
      networkHosts: this.networkHosts,
      ...(this.upstreamProxy ? { upstreamProxy: this.upstreamProxy } : {}),
      ...(Object.keys(this.networkLimits).length > 0 ? { networkLimits: this.networkLimits } : {}),
      ...(info.volumes.length > 0
        ? { volumes: info.volumes.map((v) => ({ hostPath: this.volumeStore.hostPath(v.id), path: v.path })) }
        : {}),
    };
  }

  /**
   * Creates a sandbox.
   * @throws InvalidArgumentError, TierUnavailableError (with the reason), NotFoundError (template), AbortedError,
   * LimitExceededError (`limit_exceeded`: an owner's quota or the host's budget, see {@link OpenOptions.admission})
   */
  async create(options: CreateOptions = {}): Promise<Sandbox> {
    if (options.snapshot !== undefined) return this.createFromSnapshot(options);
    const limits = resolveLimits(options.limits);
    const release = this.admission.admit(options.metadata ?? {}, limits.memoryBytes);
    try {
      return await this.admitted(options, limits);
    } finally {
      release();
    }
  }

  /**
   * Creates a sandbox from a snapshot's files, on the snapshot's tier, then moves it when another
   * tier is asked for. Fork passes its own snapshot (`fork`: the record and the directory it has
   * just written, and the parent's network), and its sandboxes stay stamped as being made until
   * the whole fork is.
   * @throws as {@link create}; NotFoundError (snapshot), KilnError `internal` (digest)
   */
  private async createFromSnapshot(
    options: CreateOptions,
    fork?: { rec: SnapshotRecord; dir: string; network: InheritedNetwork },
  ): Promise<Sandbox> {
    const snap = fork?.rec ?? this.states.snapshotRecord(options.snapshot!);
    const diskBytes = options.limits?.diskBytes;
    if (diskBytes !== undefined && diskBytes !== snap.limits.diskBytes)
      throw new InvalidArgumentError(
        `a sandbox from snapshot ${snap.id} has its disk size (${snap.limits.diskBytes} bytes)`,
      );
    const limits = resolveLimits({ ...snap.limits, ...(options.limits ?? {}) });
    const to = options.tier === undefined ? snap.tier : checkTierName(options.tier);
    const release = this.admission.admit(options.metadata ?? {}, limits.memoryBytes);
    let sb: Sandbox;
    try {
      if (options.template !== undefined && options.template !== snap.template)
        throw new InvalidArgumentError(`snapshot ${snap.id} is of template ${snap.template}`);
      const dir = fork?.dir ?? (await this.states.verifySnapshot(snap));
      sb = await this.admitted(
        {
          ...options,
          tier: snap.tier,
          template: snap.template,
          env: options.env ?? snap.env,
          cwd: options.cwd ?? snap.cwd,
        },
        limits,
        dir,
        fork !== undefined,
        fork?.network,
      );
    } finally {
      release();
    }
    if (to === snap.tier) return sb;
    try {
      return await this.move(sb.id, to, options.signal ? { signal: options.signal } : {});
    } catch (e) {
      await this.kill(sb.id).catch(() => {});
      throw e;
    }
  }

  /**
   * Makes a sandbox; `pending`: it stays stamped as being made (see `creating.ts`) until the caller
   * clears it; `inherited`: a fork's network, its parent's policy and host-kept values, in place of
   * `options.network`.
   */
  private async admitted(
    options: CreateOptions,
    limits: Limits,
    fromDir?: string,
    pending = false,
    inherited?: InheritedNetwork,
  ): Promise<Sandbox> {
    throwIfAborted(options.signal);
    this.checkOpen();
    const tier = checkTierName(options.tier ?? "virtual");
    const template = options.template ?? "default";
    if (typeof template !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(template)) {
      throw new InvalidArgumentError(`invalid template name: ${JSON.stringify(template)}`);
    }
    const cwd = sandboxPath(options.cwd ?? WORKSPACE, "/");
    const lifetimeMs = this.lifetime(renamed(options, "lifetimeMs", "timeoutMs") ?? 0);
    if (options.idleTimeoutMs !== undefined)
      checkTimeoutMs("idleTimeoutMs", options.idleTimeoutMs, MAX_SANDBOX_TIMEOUT_MS);
    const onExpiry = renamed(options, "onExpiry", "onTimeout");
    if (onExpiry !== undefined && onExpiry !== "kill" && onExpiry !== "pause" && onExpiry !== "pause-files")
      throw new InvalidArgumentError('onExpiry must be "kill", "pause" or "pause-files"');
    checkMetadataSize(options.metadata);
    checkEnvSize(options.env);
    const env = checkEnv(options.env);
    const network = inherited ? structuredClone(inherited.settings) : resolveNetwork(options.network);
    const backend = await this.backend(tier);
    if (hasEgress(network) && !backend.capabilities.egress)
      throw new UnsupportedError(`the ${tier} tier cannot give a sandbox network egress`, { tier });
    const volumes = this.volumeStore.resolve(options.volumes, options.metadata ?? {});
    if (volumes.length > 0 && !backend.capabilities.volumes)
      throw new UnsupportedError(`the ${tier} tier cannot mount volumes`, { tier });
    const unenforced = unenforcedOrRefuse(backend, options.allowUnenforcedLimits);
    const now = Date.now();
    const info: SandboxInfo = {
      id: newSandboxId(),
      tier,
      template,
      state: "running",
      env,
      cwd,
      metadata: { ...(options.metadata ?? {}) },
      limits,
      ...(unenforced.length > 0 ? { unenforcedLimits: unenforced } : {}),
      network,
      ports: checkPortPolicy(options.ports),
      volumes,
      createdAt: new Date(now).toISOString(),
      expiresAt: lifetimeMs > 0 ? new Date(now + lifetimeMs).toISOString() : null,
    };
    let instance: Awaited<ReturnType<Backend["create"]>>;
    const shape: WarmShape = { tier, template, limits: info.limits };
    // Warm sandboxes start without network or volumes: one with either is made for it.
    const warm =
      !fromDir && !hasEgress(network) && volumes.length === 0
        ? this.warm.claim(shape, backend, (id) => {
            info.id = id;
            this.records.insert(info);
          })
        : undefined;
    if (warm) {
      instance = warm.instance;
    } else {
      const spec = {
        ...this.spec(info),
        ...(options.buildTemplate ? { buildTemplate: options.buildTemplate } : {}),
      };
      tracedSync("create.state-dir", info.id, () => makeStampedDir(spec.stateDir, info));
      try {
        // The values stay on the host, beside the record; the egress path reads them there. The
        // directory is new: there is nothing to remove where there is nothing to write.
        const kept = inherited?.values ?? keptValuesOf(options.network);
        if (hasKeptNetworkValues(kept)) writeKeptNetworkValues(spec.stateDir, kept);
        instance = await traced("create.tier", info.id, () =>
          fromDir ? backend.createFrom(spec, fromDir, options.signal) : backend.create(spec, options.signal),
        );
      } catch (e) {
        await backend.destroy(spec).catch(() => {});
        rmSync(spec.stateDir, { recursive: true, force: true });
        throw e;
      }
      tracedSync("create.record", info.id, () => {
        this.records.insert(info);
        if (!pending) clearCreating(spec.stateDir);
      });
    }
    if (!fromDir) this.warm.created(shape, backend);
    if (options.idleTimeoutMs !== undefined || onExpiry !== undefined)
      this.stateStore.setLifecycle(info.id, options.idleTimeoutMs ?? null, onExpiry ?? "kill");
    this.cache.set(info.id, info);
    const sb = this.attach(info, Promise.resolve(instance));
    this.armExpiry(info.id, info.expiresAt);
    return sb;
  }

  /**
   * Destroys the sandboxes whose making a dead process left unfinished (see
   * `creating.ts`): half-made ones, which have no record, and those of a fork
   * cut short, which have one. No caller ever got them.
   */
  private async reapUnfinishedCreates(): Promise<void> {
    for (const info of unfinishedCreates(join(this.dataDir, "sandboxes"))) {
      const rec = this.records.get(info.id);
      try {
        if (rec) {
          this.records.setState(info.id, "killed");
          await this.teardown(rec);
          continue;
        }
        await (await this.backend(info.tier)).destroy(this.spec(info));
      } catch {
        // Left for the next process (the tier may be unavailable to this one).
        continue;
      }
      rmSync(this.spec(info).stateDir, { recursive: true, force: true });
    }
  }

  /**
   * Cleans up after Kiln processes that died (SIGKILL, a crash) with
   * sandboxes open. Each process that opens a sandbox stamps it
   * (`sandboxes/<id>/open-by/<token>`) until it closes it; for every stamp
   * whose process is gone, the commands it left running become `interrupted`
   * in the audit log and the tier removes its temporary files and, when no
   * live process has the sandbox open, releases its mounts and cgroups
   * (`Backend.recover`). A stamp whose clean-up failed stays, to be tried by
   * the next process.
   */
  private async recoverCrashed(): Promise<void> {
    for (const r of this.records.list()) {
      const dir = join(this.spec(r).stateDir, OPEN_BY);
      let owners: string[];
      try {
        owners = readdirSync(dir);
      } catch {
        continue;
      }
      const dead = owners.filter((o) => o !== OWN_PROCESS_TOKEN && !processAlive(o));
      const alone = dead.length === owners.length;
      for (const owner of dead) {
        try {
          const spec = this.spec(r);
          if (existsSync(spec.databasePath)) {
            const log = new AuditLog(spec.databasePath);
            try {
              log.interrupt(owner);
            } finally {
              log.close();
            }
          }
          await (await this.backend(r.tier)).recover?.(spec, owner, alone);
          rmSync(join(dir, owner), { force: true });
        } catch {
          // Left for the next process (the tier may be unavailable to this one).
        }
      }
    }
  }

  /**
   * Starts warm sandboxes of this tier, template and limits now, rather than
   * after the first `create` asks for them (a no-op when the warm pool is off).
   * Resolves once they are ready, with the number of warm sandboxes in all.
   */
  async prewarm(
    options: Pick<CreateOptions, "tier" | "template" | "limits" | "signal"> = {},
  ): Promise<number> {
    throwIfAborted(options.signal);
    this.checkOpen();
    const tier = checkTierName(options.tier ?? "virtual");
    this.warm.prewarm(
      { tier, template: options.template ?? "default", limits: resolveLimits(options.limits) },
      await this.backend(tier),
    );
    return this.warmed();
  }

  /**
   * Calls `fn` for every command started from now on, on any sandbox this Kiln holds (live
   * events, dashboards). Returns the function that stops it.
   */
  watchCommands(fn: (sandboxId: string, handle: CommandHandle, info: ProcessInfo) => void): () => void {
    this.commandWatchers.add(fn);
    return () => this.commandWatchers.delete(fn);
  }

  /** Waits for warm sandboxes being started; resolves with the number ready. */
  async warmed(): Promise<number> {
    await this.warm.settled();
    return this.warm.count();
  }

  private attach(info: SandboxInfo, instance?: Promise<import("./backend.ts").Instance>): Sandbox {
    const spec = this.spec(info);
    const host = {
      record: (id: string) => this.record(id),
      setLifetime: (id: string, ms: number) => this.setLifetime(id, ms),
      setPorts: (id: string, ports: PortPolicy) => this.setPorts(id, ports),
      setNetwork: (id: string, network: NetworkOptions, signal?: AbortSignal) =>
        this.setNetwork(id, network, signal),
      kill: (id: string, signal?: AbortSignal) => this.kill(id, { signal }),
      move: async (id: string, tier: TierName, signal?: AbortSignal, allowUnenforcedLimits?: boolean) => {
        await this.move(id, tier, { signal, ...(allowUnenforcedLimits ? { allowUnenforcedLimits } : {}) });
      },
      snapshot: (id: string, o: SnapshotOptions) => this.snapshot(id, o),
      fork: (id: string, n: number, signal?: AbortSignal) => this.fork(id, n, { signal }),
      pause: (id: string, signal?: AbortSignal, keepMemory?: boolean) =>
        this.pause(id, { signal, ...(keepMemory === undefined ? {} : { keepMemory }) }),
      resume: async (id: string, signal?: AbortSignal) => {
        await this.resume(id, { signal });
      },
      touch: (id: string) => this.hibernation.touch(id),
      commandStarted: (id: string, handle: CommandHandle, info: ProcessInfo) => {
        for (const watch of this.commandWatchers) watch(id, handle, info);
      },
    };
    const sb = new Sandbox(info.id, host, spec.databasePath, async () => {
      // Any call on a paused sandbox resumes it (one arriving during a pause waits for it first).
      await this.states.settled(info.id);
      if (this.record(info.id).state === "paused") {
        const restored = await this.states.resumeInstance(info.id);
        if (restored) return restored;
      }
      const rec = this.record(info.id);
      return (await this.backend(rec.tier)).open(this.spec(rec));
    });
    if (instance) sb.swapInstance(instance);
    this.live.set(info.id, sb);
    // Open in this process until it closes the sandbox: a crash leaves the stamp for recoverCrashed.
    mkdirSync(join(spec.stateDir, OPEN_BY), { recursive: true });
    writeFileSync(join(spec.stateDir, OPEN_BY, OWN_PROCESS_TOKEN), "");
    return sb;
  }

  /** The stored record of a sandbox. @throws NotFoundError */
  record(id: string): SandboxInfo {
    const cached = this.cache.get(id);
    if (cached) return cached;
    const r = this.records.get(id);
    if (!r || r.state === "killed") throw new NotFoundError(`no sandbox ${id}`);
    if (this.live.has(id)) this.cache.set(id, r);
    return r;
  }

  /**
   * Connects to an existing sandbox (made by this process or an earlier one).
   * @throws NotFoundError (`not_found`), InvalidArgumentError for a malformed id
   */
  async connect(id: string, options: { signal?: AbortSignal } = {}): Promise<Sandbox> {
    throwIfAborted(options.signal);
    this.checkOpen();
    checkSandboxId(id);
    await this.reapExpired();
    const info = this.record(id);
    return this.live.get(id) ?? this.attach(info);
  }

  /** Lists sandboxes, optionally filtered by metadata and state. */
  async list(options: ListOptions = {}): Promise<SandboxInfo[]> {
    throwIfAborted(options.signal);
    this.checkOpen();
    checkMetadataSize(options.metadata, "metadata filter");
    await this.reapExpired();
    return this.records.list().filter((r) => {
      if (r.state === "killed") return false;
      if (options.state && r.state !== options.state) return false;
      for (const [k, v] of Object.entries(options.metadata ?? {})) if (r.metadata[k] !== v) return false;
      return true;
    });
  }

  /** Replaces a sandbox's port policy (checked by `sandbox.ports.update`). @throws NotFoundError */
  private setPorts(id: string, ports: PortPolicy): void {
    this.record(id);
    this.records.setPorts(id, ports);
    this.cache.delete(id);
  }

  /**
   * Replaces a sandbox's network policy: the running instance first (so that a
   * tier that cannot take it leaves the record as it was), then the record, which
   * a later start or resume reads.
   * @throws InvalidArgumentError, UnsupportedError, NotFoundError
   */
  private async setNetwork(
    id: string,
    options: NetworkOptions,
    signal?: AbortSignal,
  ): Promise<NetworkSettings> {
    this.checkOpen();
    const info = this.record(id);
    const settings = resolveNetwork(options, info.network);
    const backend = await this.backend(info.tier);
    if (hasEgress(settings) && !backend.capabilities.egress)
      throw new UnsupportedError(`the ${info.tier} tier cannot give a sandbox network egress`, {
        tier: info.tier,
      });
    // A pause or resume under way finishes first: the instance it leaves is the one to change.
    await this.states.settled(id);
    throwIfAborted(signal);
    const started = this.live.get(id)?.started;
    const instance = started ? await started.catch(() => undefined) : undefined;
    const stateDir = this.spec(info).stateDir;
    const before = readKeptNetworkValues(stateDir);
    writeKeptNetworkValues(stateDir, keptValuesOf(options));
    try {
      if (instance?.updateNetwork) await instance.updateNetwork(settings);
    } catch (e) {
      writeKeptNetworkValues(stateDir, before);
      throw e;
    }
    this.records.setNetwork(id, settings);
    this.cache.delete(id);
    return settings;
  }

  /**
   * Sets a sandbox's lifetime to `lifetimeMs` from now (0: no expiry).
   * @throws NotFoundError, InvalidArgumentError, LimitExceededError (`lifetimeMs`, past the maximum)
   */
  setLifetime(id: string, lifetimeMs: number): void {
    lifetimeMs = this.lifetime(lifetimeMs);
    this.record(id);
    const at = lifetimeMs > 0 ? Date.now() + lifetimeMs : null;
    this.records.setExpiry(id, at);
    this.cache.delete(id);
    this.armExpiry(id, at === null ? null : new Date(at).toISOString());
  }

  /**
   * A requested lifetime (0: no expiry) within the maximum.
   * @throws InvalidArgumentError (not a number >= 0), LimitExceededError (`lifetimeMs`)
   */
  private lifetime(lifetimeMs: number): number {
    checkTimeoutMs("lifetimeMs", lifetimeMs, MAX_SANDBOX_TIMEOUT_MS);
    const max = this.maxLifetimeMs;
    if (max === undefined) return lifetimeMs;
    if (lifetimeMs === 0) return max;
    if (lifetimeMs > max) {
      throw new LimitExceededError(
        "lifetimeMs",
        max,
        `lifetimeMs ${lifetimeMs} exceeds this server's maximum sandbox lifetime (${max} ms)`,
      );
    }
    return lifetimeMs;
  }

  /** @deprecated The old name of {@link setLifetime}. */
  setTimeout(id: string, lifetimeMs: number): void {
    this.setLifetime(id, lifetimeMs);
  }

  private armExpiry(id: string, expiresAt: string | null): void {
    clearTimeout(this.expiryTimers.get(id));
    this.expiryTimers.delete(id);
    if (expiresAt === null) return;
    const delay = Math.max(0, Math.min(Date.parse(expiresAt) - Date.now(), 2 ** 31 - 1));
    const t = setTimeout(() => {
      // A timer may fire a little before the wall clock says the expiry has passed (timers run on
      // a monotonic clock): the sandbox would not be expired yet, and nothing would look again.
      if (Date.parse(expiresAt) > Date.now()) return this.armExpiry(id, expiresAt);
      void this.reapExpired().catch(() => {});
    }, delay);
    t.unref();
    this.expiryTimers.set(id, t);
  }

  private async reapExpired(): Promise<void> {
    for (const id of this.records.expired(Date.now())) {
      const on = this.stateStore.lifecycle(id)?.onTimeout;
      if (on === "pause" || on === "pause-files") await this.pauseAtExpiry(id, on);
      else await this.kill(id).catch(() => {});
    }
    // Sandboxes whose teardown a crashed process left unfinished.
    // Asked on every request: only the killed rows are read, not every record.
    for (const r of this.records.killed()) await this.teardown(r).catch(() => {});
  }

  /**
   * E2B's autoPause: the lifetime ends in a pause, and a resume starts the sandbox again. A memory
   * pause that fails falls back to a files-only pause (a sandbox is never left running past its
   * lifetime for want of a memory image); when no pause can be taken, it is tried again later.
   */
  private async pauseAtExpiry(id: string, on: "pause" | "pause-files"): Promise<void> {
    this.records.setExpiry(id, null);
    this.cache.delete(id);
    const attempts: boolean[] = on === "pause" ? [true, false] : [false];
    const failures: string[] = [];
    for (const keepMemory of attempts) {
      try {
        await this.pause(id, { keepMemory });
        if (failures.length)
          process.emitWarning(
            `sandbox ${id}: paused at expiry with its files only (${failures.join("; ")})`,
            {
              code: "KILN_EXPIRY_PAUSE",
            },
          );
        return;
      } catch (e) {
        if (e instanceof NotFoundError || this.closed) return;
        failures.push(`${keepMemory ? "memory" : "files-only"} pause failed: ${(e as Error).message}`);
      }
    }
    process.emitWarning(
      `sandbox ${id}: no pause at expiry (${failures.join("; ")}); trying again in ${EXPIRY_RETRY_MS} ms`,
      { code: "KILN_EXPIRY_PAUSE" },
    );
    const at = Date.now() + EXPIRY_RETRY_MS;
    this.records.setExpiry(id, at);
    this.armExpiry(id, new Date(at).toISOString());
  }

  /** Kills a sandbox: stops it and deletes its workspace and record. @throws NotFoundError */
  async kill(id: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(options.signal);
    checkSandboxId(id);
    const info = this.record(id);
    // Gone for every caller at once (teardown can take a second on some tiers); a teardown that
    // a crash interrupts is finished by the next Kiln on this data directory.
    this.records.setState(id, "killed");
    this.cache.delete(id);
    await this.teardown(info);
  }

  /** Stops a sandbox's instance, destroys its tier state, and deletes its record and directory. */
  private async teardown(info: SandboxInfo): Promise<void> {
    const id = info.id;
    if (this.tearingDown.has(id)) return;
    this.tearingDown.add(id);
    try {
      await this.teardownNow(info);
    } finally {
      this.tearingDown.delete(id);
    }
  }

  private async teardownNow(info: SandboxInfo): Promise<void> {
    const id = info.id;
    const live = this.live.get(id);
    this.live.delete(id);
    this.cache.delete(id);
    clearTimeout(this.expiryTimers.get(id));
    this.expiryTimers.delete(id);
    await live?.closeDiscarding();
    this.states.forget(id);
    this.hibernation.forget(id);
    const spec = this.spec(info);
    // The database (files of the virtual tier, the audit log of every tier) is core's and goes
    // first, so that no tier reopens it only to empty it.
    for (const f of [spec.databasePath, `${spec.databasePath}-wal`, `${spec.databasePath}-shm`])
      rmSync(f, { force: true });
    try {
      await (await this.backend(info.tier)).destroy(spec);
    } catch (e) {
      if (!(e instanceof TierUnavailableError)) throw e;
    }
    this.records.delete(id);
    rmSync(spec.stateDir, { recursive: true, force: true });
  }

  /**
   * Moves a sandbox's workspace to another tier. The new instance is filled
   * first; the old one is destroyed only once the copy is complete.
   * `allowUnenforcedLimits`: as at create (`CreateOptions.allowUnenforcedLimits`).
   * @throws TierUnavailableError, NotFoundError, AbortedError, UnsupportedError (a sandbox with
   * network egress, to a tier that cannot give it), UnenforcedLimitsError
   */
  async move(
    id: string,
    tier: TierName,
    options: { signal?: AbortSignal; allowUnenforcedLimits?: boolean } = {},
  ): Promise<Sandbox> {
    throwIfAborted(options.signal);
    const to = checkTierName(tier);
    const info = this.record(id);
    if (info.tier === to) return this.connect(id);
    const sb = this.live.get(id) ?? this.attach(info);
    const from = await this.backend(info.tier);
    const target = await this.backend(to);
    if (hasEgress(info.network) && !target.capabilities.egress)
      throw new UnsupportedError(`the ${to} tier cannot give a sandbox network egress`, { tier: to });
    if (info.volumes.length > 0 && !target.capabilities.volumes)
      throw new UnsupportedError(`the ${to} tier cannot mount volumes`, { tier: to });
    const unenforced = unenforcedOrRefuse(target, options.allowUnenforcedLimits);
    const oldInstance = await sb.instance();
    await sb.commands.killAll();
    const spec = this.spec({ ...info, tier: to });
    const next = await target.create(spec, options.signal);
    try {
      const tar = await oldInstance.files.exportTar(WORKSPACE);
      await next.files.importTar(WORKSPACE, tar);
      if (options.signal?.aborted) throw new AbortedError("move aborted");
    } catch (e) {
      await next.close().catch(() => {});
      await target.destroy(spec).catch(() => {});
      throw e;
    }
    this.records.setTier(id, to, unenforced);
    this.cache.delete(id);
    sb.swapInstance(Promise.resolve(next));
    await oldInstance.close();
    await from.destroy(this.spec(info));
    return sb;
  }

  /**
   * Saves a sandbox's files as a snapshot, consistent while it runs (see {@link Sandbox.snapshot}).
   * @throws NotFoundError, InvalidArgumentError
   */
  async snapshot(id: string, options: SnapshotOptions = {}): Promise<SnapshotInfo> {
    throwIfAborted(options.signal);
    this.checkOpen();
    checkSandboxId(id);
    return publicSnapshot(
      await this.states.snapshot(id, options.name === undefined ? {} : { name: options.name }),
    );
  }

  /** The snapshots, oldest first, optionally only those whose metadata has all of these pairs. */
  async snapshots(
    options: { metadata?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<SnapshotInfo[]> {
    throwIfAborted(options.signal);
    this.checkOpen();
    return this.states
      .list()
      .filter((s) => Object.entries(options.metadata ?? {}).every(([k, v]) => s.metadata[k] === v));
  }

  /** One snapshot. @throws InvalidArgumentError, NotFoundError */
  async snapshotInfo(id: string): Promise<SnapshotInfo> {
    this.checkOpen();
    return publicSnapshot(this.states.snapshotRecord(checkSnapshotId(id)));
  }

  /** Deletes a snapshot (sandboxes made from it are not affected). @throws NotFoundError */
  async removeSnapshot(id: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(options.signal);
    this.checkOpen();
    await this.states.removeSnapshot(id);
  }

  /**
   * `count` new sandboxes from a sandbox's files as they are now (see {@link Sandbox.fork}):
   * all of them, or none (a refused one, say by a quota, removes those made before it).
   * @throws InvalidArgumentError, NotFoundError, LimitExceededError
   */
  async fork(id: string, count = 1, options: { signal?: AbortSignal } = {}): Promise<Sandbox[]> {
    throwIfAborted(options.signal);
    this.checkOpen();
    checkSandboxId(id);
    if (!Number.isInteger(count) || count < 1 || count > 64)
      throw new InvalidArgumentError("fork count must be an integer from 1 to 64");
    const parent = this.record(id);
    const source = await this.states.forkSource(id);
    // The parent's policy, with the values kept on the host (secrets, header rules, the proxy's
    // password): the forks' egress works as the parent's does now.
    const network = { settings: parent.network, values: readKeptNetworkValues(this.spec(parent).stateDir) };
    const made: Sandbox[] = [];
    const one = () =>
      this.createFromSnapshot(
        {
          snapshot: source.rec.id,
          metadata: parent.metadata,
          // The same volumes, shared: a fork never copies one.
          volumes: parent.volumes.map((v) => ({ volume: v.id, path: v.path })),
          // A parent made without some limits was asked for so; its children are too.
          ...(parent.unenforcedLimits ? { allowUnenforcedLimits: true } : {}),
          ...(parent.expiresAt === null
            ? {}
            : { lifetimeMs: Math.max(1, Date.parse(parent.expiresAt) - Date.now()) }),
        },
        { ...source, network },
      );
    let failure: unknown;
    try {
      // The owner's disk quota has room for the n copies.
      this.admission.checkDisk(parent.metadata, count * source.rec.sizeBytes);
      // A few at a time: a real tier's start waits on its runtime more than on the CPU.
      let next = 0;
      const worker = async () => {
        while (failure === undefined && next < count) {
          next++;
          throwIfAborted(options.signal);
          made.push(await one());
        }
      };
      await Promise.all(
        Array.from({ length: Math.min(count, FORK_PARALLEL) }, () =>
          worker().catch((e: unknown) => {
            failure ??= e;
          }),
        ),
      );
      if (failure !== undefined) throw failure;
      // Handed out together, with no await between: a crash before this leaves the next Kiln none of them.
      for (const sb of made) clearCreating(this.spec(this.record(sb.id)).stateDir);
      return made;
    } catch (e) {
      await Promise.all(made.map((sb) => this.kill(sb.id).catch(() => {})));
      throw e;
    } finally {
      await this.states.removeForkSource(source.dir);
    }
  }

  /**
   * Bytes a sandbox takes on disk: the blocks allocated under its state directory (the workspace
   * database or image, a pause image, the runtime's files), on that directory's filesystem only
   * (a mounted workspace is not walked again), links not followed. @throws NotFoundError
   */
  async diskBytes(id: string): Promise<number> {
    const info = this.record(id);
    const root = this.spec(info).stateDir;
    let total = 0;
    const walk = async (dir: string, dev: number): Promise<void> => {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        return;
      }
      for (const n of names) {
        const p = join(dir, n);
        let st: Awaited<ReturnType<typeof lstat>>;
        try {
          st = await lstat(p);
        } catch {
          continue;
        }
        if (st.dev !== dev) continue;
        total += st.blocks * 512;
        if (st.isDirectory()) await walk(p, dev);
      }
    };
    try {
      await walk(root, (await lstat(root)).dev);
    } catch {
      // Gone meanwhile.
    }
    return total;
  }

  /**
   * Creates an empty named volume (see `volumes.ts`); `metadata` labels it (the server's owner
   * label scopes its name). @throws InvalidArgumentError, ConflictError (the name is taken)
   */
  async createVolume(
    name: string,
    options: { metadata?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<VolumeInfo> {
    throwIfAborted(options.signal);
    this.checkOpen();
    checkMetadataSize(options.metadata);
    return this.volumeStore.create(name, { ...(options.metadata ?? {}) });
  }

  /** The volumes, oldest first, optionally only those whose metadata has all of these pairs. */
  async volumes(
    options: { metadata?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<VolumeInfo[]> {
    throwIfAborted(options.signal);
    this.checkOpen();
    return this.volumeStore.list(options.metadata);
  }

  /** One volume. @throws InvalidArgumentError, NotFoundError */
  async volumeInfo(id: string): Promise<VolumeInfo> {
    return this.volumeRecord(id);
  }

  /** One volume, read at once from kiln.db. @throws InvalidArgumentError, NotFoundError */
  volumeRecord(id: string): VolumeInfo {
    this.checkOpen();
    return this.volumeStore.get(id);
  }

  /** The host directory of a volume's files. @throws InvalidArgumentError, NotFoundError */
  volumeHostPath(id: string): string {
    this.volumeStore.get(id);
    return this.volumeStore.hostPath(id);
  }

  /**
   * Kiln's host-side access to a volume's files, which never follows a link a sandbox planted
   * (`volume-files.ts`). @throws InvalidArgumentError, NotFoundError
   */
  volumeFiles(id: string): VolumeFiles {
    return new VolumeFiles(this.volumeHostPath(id));
  }

  /**
   * Deletes a volume and its files. @throws NotFoundError, ConflictError (a sandbox mounts it)
   */
  async removeVolume(id: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(options.signal);
    this.checkOpen();
    await this.reapExpired();
    this.volumeStore.remove(id);
  }

  /**
   * Pauses a sandbox (see {@link Sandbox.pause}); idempotent.
   * @throws NotFoundError, ConflictError (another process is pausing or resuming it)
   */
  async pause(id: string, options: { keepMemory?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    this.checkOpen();
    checkSandboxId(id);
    this.record(id);
    await this.states.pause(id, options.signal, options.keepMemory ?? true);
  }

  /**
   * Resumes a paused sandbox (a no-op when it runs): its processes run on where the tier kept them.
   * @throws NotFoundError, ConflictError, KilnError `internal` (the image failed its digest check)
   */
  async resume(id: string, options: { signal?: AbortSignal } = {}): Promise<Sandbox> {
    throwIfAborted(options.signal);
    const sb = await this.connect(id, options);
    await sb.instance();
    return sb;
  }

  /** What the end of a sandbox's lifetime does (`onExpiry` at create; default `kill`). @throws NotFoundError */
  expiryAction(id: string): ExpiryAction {
    this.record(id);
    return this.stateStore.lifecycle(id)?.onTimeout ?? "kill";
  }

  /** A sandbox's idle time before hibernation (0: never). */
  private async idleTimeoutOf(id: string): Promise<number> {
    const own = this.stateStore.lifecycle(id)?.idleTimeoutMs;
    if (own !== undefined && own !== null) return own;
    if (this.idleTimeoutMs === 0) return 0;
    // By default only where a pause loses nothing: elsewhere it would end the sandbox's processes.
    const b = await this.backend(this.record(id).tier);
    return b.capabilities.pause === "memory" ? this.idleTimeoutMs : 0;
  }

  private checkOpen(): void {
    if (this.closed) throw new InvalidArgumentError("this Kiln instance is closed");
  }

  /** Detaches from every sandbox (they stay, with their files) and releases resources. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.expiryTimers.values()) clearTimeout(t);
    this.hibernation.close();
    await Promise.all([...this.live.values()].map((s) => s.close().catch(() => {})));
    for (const id of this.live.keys()) {
      const rec = this.records.get(id);
      if (rec) rmSync(join(this.spec(rec).stateDir, OPEN_BY, OWN_PROCESS_TOKEN), { force: true });
    }
    this.live.clear();
    this.cache.clear();
    await this.warm.drain();
    for (const b of this.backends.values()) await (await b.catch(() => undefined))?.close?.();
    this.records.close();
  }
}

/**
 * An option given under its name or its old one (not both, unless equal).
 * @throws InvalidArgumentError when both are given with different values
 */
function renamed<K extends keyof CreateOptions>(
  options: CreateOptions,
  name: K,
  old: keyof CreateOptions,
): CreateOptions[K] | undefined {
  const now = options[name];
  const before = options[old] as CreateOptions[K] | undefined;
  if (now !== undefined && before !== undefined && now !== before)
    throw new InvalidArgumentError(`give ${String(name)} or its old name ${String(old)}, not both`);
  return now ?? before;
}

/**
 * The limits `backend` cannot enforce here; refuses a sandbox without them unless `allowed`.
 * @throws UnenforcedLimitsError (`unenforced_limits`)
 */
function unenforcedOrRefuse(backend: Backend, allowed: boolean | undefined): UnenforcedLimit[] {
  const unenforced = backend.unenforcedLimits?.() ?? [];
  if (unenforced.length > 0 && allowed !== true) throw new UnenforcedLimitsError(backend.tier, unenforced);
  return unenforced;
}
