/**
 * One virtual sandbox: a just-bash interpreter over the sandbox's store.
 * Each `spawn` is one `bash.exec` (own variables and cwd, shared files), so
 * commands run concurrently on one sandbox. just-bash returns output when a
 * script ends, and reads stdin as a whole: `stdin: "pipe"` is delivered when
 * it is closed (capabilities say so).
 */
import type { DatabaseSync } from "node:sqlite";
import {
  Bash,
  bytesOutput,
  DefenseInDepthBox,
  defineCommand,
  getCommandNames,
  getJavaScriptCommandNames,
  getNetworkCommandNames,
  latin1FromBytes,
  unsafeBytesFromLatin1,
} from "just-bash";
import { AuditLog } from "../../core/audit-log.ts";
import type {
  ExitStatus,
  Instance,
  InstanceSpec,
  InstanceStats,
  RunCodeRequest,
  SpawnedProcess,
  SpawnRequest,
} from "../../core/backend.ts";
import { SandboxStoppedError, UnsupportedError } from "../../core/errors.ts";
import { limitAuditRate } from "../../network/audit-limit.ts";
import { Egress } from "../../network/egress.ts";
import { egressFetch } from "../../network/fetch.ts";
import { hasEgress, NetworkPolicy, type NetworkSettings, upstreamProxyFor } from "../../network/policy.ts";
import { parseHostMap, Resolver } from "../../network/resolver.ts";
import { readHeaderRules, secretsOf } from "../../network/secrets.ts";
import { exportStoreAsAgentFs } from "../../workspace/agentfs-exchange.ts";
import type { AgentFsStore } from "../../workspace/agentfs-store.ts";
import { SqliteFs } from "../../workspace/sqlite-fs.ts";
import { StoreFileOps } from "../../workspace/store-file-ops.ts";
import { gnuCommands } from "./gnu-commands.ts";
import { limitFromStderr, toJustBashLimits } from "./limits.ts";
import type { PythonRuntime } from "./python-runtime.ts";
import { SystemFs } from "./system-fs.ts";

const EXIT_KILLED = 128 + 9;
const PYTHON_COMMANDS = ["python3", "python"];
/** Every command the shell runs, as /usr/bin lists them. */
const GNU_COMMANDS = gnuCommands();
const COMMAND_NAMES: readonly string[] = [
  ...new Set([
    ...getCommandNames(),
    ...getJavaScriptCommandNames(),
    ...PYTHON_COMMANDS,
    ...GNU_COMMANDS.map((c) => c.name),
  ]),
];
/** The same with the network commands (curl), for a sandbox with egress. */
const COMMAND_NAMES_WITH_NETWORK: readonly string[] = [
  ...new Set([...COMMAND_NAMES, ...getNetworkCommandNames()]),
];

/** A live virtual sandbox. */
export class VirtualInstance implements Instance {
  readonly fs: SqliteFs;
  readonly files: StoreFileOps;
  /** The store's connection; core writes the audit log through it. */
  readonly database: DatabaseSync;
  private readonly store: AgentFsStore;
  private readonly spec: InstanceSpec;
  private bashShell: Bash | undefined;
  private python: Promise<PythonRuntime> | undefined;
  private readonly procs = new Map<number, { abort: AbortController; settle: (s: ExitStatus) => void }>();
  private nextPid = 100;
  private closed = false;

  constructor(spec: InstanceSpec, store: AgentFsStore) {
    this.spec = spec;
    this.store = store;
    this.fs = new SqliteFs(store);
    this.files = new StoreFileOps(store, this.fs);
    this.database = store.db;
  }

  /** The warm Python interpreter, loaded on first use. */
  private pythonRuntime(): Promise<PythonRuntime> {
    this.python ??= import("./python-runtime.ts").then(
      (m) =>
        new m.PythonRuntime({
          databasePath: this.spec.databasePath,
          maxMemoryBytes: this.spec.limits.memoryBytes,
          maxDiskBytes: this.spec.limits.diskBytes,
          // urllib's requests go through the same egress path as curl's, as the policy is now.
          fetch: () => {
            const egress = this.egress();
            return egress ? this.trustedFetch(egressFetch(egress)) : undefined;
          },
        }),
    );
    return this.python;
  }

  private egressPath: Egress | undefined;

  /**
   * Replaces the network policy: the next request (and redirect hop) is
   * checked against it. When egress appears or goes, the interpreter is made
   * anew on next use, so that `curl` appears or goes with it.
   */
  async updateNetwork(settings: NetworkSettings): Promise<void> {
    const had = this.egress() !== undefined;
    const hadSecrets = JSON.stringify(this.spec.network?.secrets ?? {});
    this.spec.network = settings;
    if (this.egressPath) {
      this.egressPath.policy = new NetworkPolicy(settings);
      this.egressPath.secrets = secretsOf(settings, this.spec.stateDir);
      this.egressPath.headerRules = settings.headers ? readHeaderRules(this.spec.stateDir) : [];
      this.egressPath.upstreamProxy = upstreamProxyFor(settings, this.spec.stateDir, this.spec.upstreamProxy);
    }
    // The interpreter's environment holds the placeholders, and curl exists only with egress.
    if (had !== hasEgress(settings) || hadSecrets !== JSON.stringify(settings.secrets ?? {}))
      this.bashShell = undefined;
  }

  /** The egress path of a sandbox whose policy has egress (`curl` goes through it); else undefined. */
  private egress(): Egress | undefined {
    const network = this.spec.network;
    if (!network || !hasEgress(network)) return undefined;
    if (!this.egressPath) {
      const log = new AuditLog(this.database);
      const limits = this.spec.networkLimits;
      const audit = limitAuditRate((e) => log.network(e), limits?.maxAuditEntriesPerSecond);
      this.egressPath = new Egress({
        policy: new NetworkPolicy(network),
        resolver: new Resolver(parseHostMap(this.spec.networkHosts ?? process.env.KILN_NETWORK_HOSTS)),
        audit: (e) => audit.record(e),
        ...(limits?.maxConnections ? { maxConnections: limits.maxConnections } : {}),
        ...(limits?.maxBytesPerSecond ? { maxBytesPerSecond: limits.maxBytesPerSecond } : {}),
        secrets: secretsOf(network, this.spec.stateDir),
        headerRules: network.headers ? readHeaderRules(this.spec.stateDir) : [],
      });
      this.egressPath.upstreamProxy = upstreamProxyFor(network, this.spec.stateDir, this.spec.upstreamProxy);
    }
    return this.egressPath;
  }

  /**
   * The egress fetch runs as host code: Node's TLS reads the environment
   * (NODE_TLS_REJECT_UNAUTHORIZED), which just-bash forbids a script.
   */
  private trustedFetch(f: ReturnType<typeof egressFetch>): ReturnType<typeof egressFetch> {
    return (url, options) => DefenseInDepthBox.runTrustedAsync(() => f(url, options));
  }

  /** The interpreter, made on first use (idle sandboxes cost only their database handle). */
  private bash(): Bash {
    if (this.bashShell) return this.bashShell;
    const python = (name: string) =>
      defineCommand(name, async (args, ctx) => {
        const out: Uint8Array[] = [];
        const err: Uint8Array[] = [];
        const env: Record<string, string> = {};
        for (const [k, v] of ctx.env) env[k] = v;
        const r = await (await this.pythonRuntime()).run(
          {
            mode: "script",
            argv: args,
            cwd: ctx.cwd,
            env,
            stdin: Buffer.from(latin1FromBytes(ctx.stdin), "latin1"),
          },
          {
            onStdout: (c: Uint8Array) => out.push(c),
            onStderr: (c: Uint8Array) => err.push(c),
            // No clock here: core's time limit on the command aborts the shell, hence this signal.
            ...(ctx.signal ? { signal: ctx.signal } : {}),
          },
        );
        return {
          ...bytesOutput(unsafeBytesFromLatin1(Buffer.concat(out).toString("latin1"))),
          stderr: Buffer.concat(err).toString("utf8"),
          exitCode: r.exitCode,
        };
      });
    this.bashShell = new Bash({
      fs: new SystemFs(this.fs, () => (this.egress() ? COMMAND_NAMES_WITH_NETWORK : COMMAND_NAMES)),
      cwd: "/workspace",
      env: {
        HOME: "/home/user",
        PATH: "/usr/bin:/bin",
        LANG: "C.UTF-8",
        ...(this.egress()
          ? Object.fromEntries(
              Object.entries(this.spec.network?.secrets ?? {}).map(([k, s]) => [k, s.placeholder]),
            )
          : {}),
        ...this.spec.env,
      },
      executionLimits: toJustBashLimits(this.spec.limits),
      javascript: true,
      customCommands: [...GNU_COMMANDS, ...PYTHON_COMMANDS.map(python)],
      ...(this.egress() ? { fetch: this.trustedFetch(egressFetch(this.egress()!)) } : {}),
    });
    return this.bashShell;
  }

  async spawn(req: SpawnRequest): Promise<SpawnedProcess> {
    if (req.pty) {
      throw new UnsupportedError(
        "the virtual tier has no terminals (pty): just-bash is an interpreter, not a tty; the namespace, oci and gvisor tiers have them",
      );
    }
    if (this.closed) throw new SandboxStoppedError(this.spec.id);
    const pid = this.nextPid++;
    const abort = new AbortController();
    let settle!: (s: ExitStatus) => void;
    const exited = new Promise<ExitStatus>((r) => {
      settle = r;
    });
    let settled = false;
    const finish = (s: ExitStatus) => {
      if (settled) return;
      settled = true;
      this.procs.delete(pid);
      settle(s);
    };
    this.procs.set(pid, { abort, settle: finish });
    const pending: Uint8Array[] = [];
    let started = false;
    const start = (stdin: Uint8Array | undefined) => {
      if (started) return;
      started = true;
      this.bash()
        .exec(req.command, {
          cwd: req.cwd,
          env: req.env,
          signal: abort.signal,
          rawScript: true,
          ...(stdin && stdin.length > 0
            ? { stdin: Buffer.from(stdin).toString("latin1"), stdinKind: "bytes" }
            : {}),
        })
        .then(
          (r) => {
            if (settled) return;
            const out = Buffer.from(r.stdout, r.stdoutKind === "bytes" ? "latin1" : "utf8");
            if (out.length > 0) req.onStdout(out);
            if (r.stderr.length > 0) req.onStderr(Buffer.from(r.stderr, "utf8"));
            const limit = r.exitCode === 126 ? limitFromStderr(r.stderr, this.spec.limits) : undefined;
            finish({ exitCode: r.exitCode, ...(limit ? { limit } : {}) });
          },
          (e: unknown) => {
            if (settled) return;
            req.onStderr(Buffer.from(`kiln: ${(e as Error)?.message ?? String(e)}\n`));
            const limit = limitFromStderr(String((e as Error)?.message), this.spec.limits);
            finish({ exitCode: limit ? 126 : 1, ...(limit ? { limit } : {}) });
          },
        );
    };
    if (req.stdin !== "pipe") start(req.stdin);
    return {
      pid,
      exited,
      writeStdin: async (data) => {
        if (!started) pending.push(data);
      },
      closeStdin: async () => start(Buffer.concat(pending)),
      kill: async () => {
        abort.abort();
        finish({ exitCode: EXIT_KILLED });
      },
    };
  }

  async runCode(req: RunCodeRequest): Promise<{ exitCode: number }> {
    if (this.closed) throw new SandboxStoppedError(this.spec.id);
    return (await this.pythonRuntime()).run(
      { mode: "repl", code: req.code, context: req.context, cwd: req.cwd, env: req.env },
      {
        onStdout: req.onStdout,
        onStderr: req.onStderr,
        ...(req.onEvent ? { onEvent: req.onEvent } : {}),
        ...(req.signal ? { signal: req.signal } : {}),
      },
    );
  }

  async resetCodeContext(context: string): Promise<void> {
    if (this.closed || !this.python) return;
    await (await this.pythonRuntime()).run(
      { mode: "reset", context, cwd: "/", env: {} },
      { onStdout: () => {}, onStderr: () => {} },
    );
  }

  /** A consistent copy of the store (VACUUM INTO) while commands run, re-rooted at /workspace. */
  async exportAgentFs(dest: string): Promise<void> {
    if (this.closed) throw new SandboxStoppedError(this.spec.id);
    exportStoreAsAgentFs(this.spec.databasePath, dest);
  }

  async stats(): Promise<InstanceStats> {
    return { diskBytes: this.store.usedBytes() };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.procs.values()) {
      p.abort.abort();
      p.settle({ exitCode: EXIT_KILLED });
    }
    this.files.stopWatches();
    this.egressPath?.close();
    await (await this.python?.catch(() => undefined))?.close();
    this.store.close();
  }
}
