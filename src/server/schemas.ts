/**
 * The zod schemas of the HTTP API: request validation and the OpenAPI
 * document are generated from these same objects.
 */
import { z } from "@hono/zod-openapi";
import { TIER_NAMES } from "../core/types.ts";

const Str = z.string();
const StrMap = z.record(z.string(), z.string());
const NonNeg = z.number().finite().nonnegative();

export const TierSchema = z.enum(TIER_NAMES).openapi("Tier");

export const LimitsSchema = z
  .object({
    timeoutMs: NonNeg,
    maxOutputBytes: NonNeg,
    maxLoopIterations: NonNeg,
    maxCommandCount: NonNeg,
    maxCallDepth: NonNeg,
    memoryBytes: NonNeg,
    cpuCount: NonNeg,
    pids: NonNeg,
    diskBytes: NonNeg,
    maxFileBytes: NonNeg,
  })
  .openapi("Limits");

export const ErrorSchema = z
  .object({
    error: z
      .object({
        code: z.enum([
          "not_found",
          "invalid_argument",
          "timeout",
          "limit_exceeded",
          "tier_unavailable",
          "conflict",
          "aborted",
          "sandbox_stopped",
          "unsupported",
          "internal",
          "unauthenticated",
          "port_closed",
          "unenforced_limits",
        ]),
        message: z.string(),
      })
      .catchall(z.unknown()),
  })
  .openapi("Error");

const NetworkRules = z.array(Str).openapi({
  description: "host names (`files.example.com`, `*.example.com`, optional `:port`), addresses and CIDRs",
});

const NetworkFields = {
  egress: z.enum(["none", "all"]).openapi({
    description: "beyond the allow rules: none (default) or all public addresses but the deny rules",
  }),
  allow: NetworkRules,
  deny: NetworkRules,
  limits: z
    .object({
      maxConnections: z
        .number()
        .int()
        .optional()
        .openapi({ description: "open connections at once (default 256)" }),
      maxBytesPerSecond: z
        .number()
        .int()
        .optional()
        .openapi({ description: "bytes a second each way over all connections (default none)" }),
    })
    .strict()
    .optional()
    .openapi({ description: "per-sandbox caps, within the server's (docs/network.md#caps)" }),
};

/** A sandbox's network policy as given (docs/network.md); rules are checked and canonicalised by Kiln. */
export const NetworkSchema = z
  .object({
    egress: NetworkFields.egress.optional(),
    allow: NetworkFields.allow.optional(),
    deny: NetworkFields.deny.optional(),
    secrets: z
      .record(
        z.string(),
        z
          .object({
            value: z.string().openapi({ description: "the real value (given, never answered)" }),
            hosts: z.array(Str).openapi({ description: "host names it may be sent to" }),
            headers: z.array(Str).optional().openapi({ description: "headers it may go in (default any)" }),
          })
          .strict(),
      )
      .optional()
      .openapi({
        description: "NAME -> a secret the sandbox uses through a placeholder (docs/network.md#secrets)",
      }),
    headers: z.record(z.string(), z.record(z.string(), z.string())).optional().openapi({
      description: "host -> headers the host side sets on requests to it (docs/network.md#header-rules)",
    }),
    upstreamProxy: z
      .union([
        Str,
        z.object({ url: Str, username: z.string().optional(), password: z.string().optional() }).strict(),
      ])
      .optional()
      .openapi({
        description:
          "proxy that allowed traffic leaves through: http:// (CONNECT) or socks5://, optional user:password@ (docs/network.md#upstream-proxy)",
      }),
    limits: NetworkFields.limits,
  })
  .strict()
  .openapi("Network");

/** A sandbox's network policy as stored and answered: secrets without their values. */
export const NetworkSettingsSchema = z
  .object({
    ...NetworkFields,
    secrets: z
      .record(
        z.string(),
        z.object({
          hosts: z.array(Str),
          headers: z.array(Str).optional(),
          placeholder: z.string().openapi({ description: "what the sandbox holds as $NAME" }),
        }),
      )
      .optional(),
    headers: z
      .record(z.string(), z.array(z.string()))
      .optional()
      .openapi({ description: "host -> the names of the headers set (values never answered)" }),
    upstreamProxy: z
      .object({ url: Str, username: z.string().optional() })
      .optional()
      .openapi({ description: "the upstream proxy, without its password" }),
  })
  .openapi("NetworkSettings");
const PortList = z.union([z.literal("all"), z.array(z.number().int().min(1).max(65535))]);

export const PortPolicySchema = z
  .object({
    expose: PortList.openapi({ description: 'ports that may be reached: "all" (default) or a list' }),
    public: PortList.openapi({ description: "ports reachable without a key or token (default none)" }),
  })
  .openapi("PortPolicy");

const UnenforcedLimitsSchema = z
  .object({ limit: z.enum(["memoryBytes", "cpuCount", "pids", "diskBytes"]), reason: Str })
  .array();

export const SandboxInfoSchema = z
  .object({
    id: Str,
    tier: TierSchema,
    template: Str,
    state: z.enum(["running", "paused", "stopped", "killed"]),
    env: StrMap,
    cwd: Str,
    metadata: StrMap,
    limits: LimitsSchema,
    unenforcedLimits: UnenforcedLimitsSchema.optional().openapi({
      description: "the limits that do not hold for this sandbox (absent: every limit holds)",
    }),
    network: NetworkSettingsSchema,
    ports: PortPolicySchema,
    volumes: z
      .object({ id: Str, name: Str, path: Str })
      .array()
      .openapi({ description: "the volumes mounted in it" }),
    createdAt: Str,
    expiresAt: Str.nullable(),
  })
  .openapi("SandboxInfo");

export const CreateSandboxBody = z
  .object({
    tier: TierSchema.optional(),
    template: Str.optional(),
    env: StrMap.optional(),
    cwd: Str.optional(),
    metadata: StrMap.optional(),
    lifetimeMs: NonNeg.optional().openapi({
      description: "lifetime in ms, after which the sandbox ends (onExpiry); 0 or absent: no expiry",
    }),
    timeoutMs: NonNeg.optional().openapi({ deprecated: true, description: "the old name of lifetimeMs" }),
    limits: LimitsSchema.partial().strict().optional(),
    allowUnenforcedLimits: z.boolean().optional().openapi({
      description:
        "create it even where the tier cannot enforce every limit here (the refusal is unenforced_limits, 422)",
    }),
    snapshot: Str.optional().openapi({ description: "start from this snapshot's files (`snap_…`)" }),
    idleTimeoutMs: NonNeg.optional().openapi({
      description: "idle time after which the sandbox is paused (any call resumes it); 0: never",
    }),
    onExpiry: z.enum(["kill", "pause", "pause-files"]).optional().openapi({
      description:
        "what the end of its lifetime does: kill (default), pause, or pause keeping the files only",
    }),
    onTimeout: z
      .enum(["kill", "pause", "pause-files"])
      .optional()
      .openapi({ deprecated: true, description: "the old name of onExpiry" }),
    network: NetworkSchema.optional(),
    ports: PortPolicySchema.partial().strict().optional(),
    volumes: z
      .object({
        volume: Str.openapi({ description: "a volume of this key: its name or id (`vol_…`)" }),
        path: Str.openapi({ description: "where: a path below /mnt" }),
      })
      .strict()
      .array()
      .max(16)
      .optional()
      .openapi({ description: "named volumes to mount (nosuid, nodev); not on the virtual tier" }),
  })
  .strict()
  .openapi("CreateSandbox");

export const SnapshotInfoSchema = z
  .object({
    id: Str,
    name: Str.nullable(),
    tier: TierSchema,
    template: Str,
    sandboxId: Str,
    kind: z.enum(["files", "memory"]),
    sizeBytes: z.number(),
    createdAt: Str,
    metadata: StrMap,
  })
  .openapi("SnapshotInfo");
export const SnapshotBody = z
  .object({ name: z.string().min(1).max(128).optional() })
  .strict()
  .openapi("CreateSnapshot");
export const ForkBody = z
  .object({ count: z.number().int().min(1).max(64).optional() })
  .strict()
  .openapi("Fork");
export const PauseBody = z
  .object({
    keepMemory: z
      .boolean()
      .optional()
      .openapi({ description: "false: keep the files only, even on a tier that keeps memory; default true" }),
  })
  .strict()
  .openapi("Pause");
export const SnapshotParams = z.object({
  snapshotId: Str.openapi({
    param: { name: "snapshotId", in: "path" },
    example: "snap_0123456789abcdefghij",
  }),
});

export const ListSandboxesQuery = z.object({
  metadata: z
    .union([Str, z.array(Str)])
    .optional()
    .openapi({ description: "`key=value`, repeatable: only sandboxes with all these labels" }),
  state: z.enum(["running", "paused", "stopped", "killed"]).optional(),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .optional()
    .openapi({ description: "most sandboxes in this page (1-1000, default 1000)" }),
  nextToken: Str.optional().openapi({
    description: "the `X-Next-Token` of the previous page; absent for the first page",
  }),
});

export const IdParams = z.object({
  id: Str.openapi({ param: { name: "id", in: "path" }, example: "sb_0123456789abcdefghij" }),
});
export const PidParams = IdParams.extend({
  pid: z.coerce
    .number()
    .int()
    .nonnegative()
    .openapi({ param: { name: "pid", in: "path" }, type: "integer" }),
});
export const TierParams = z.object({ tier: TierSchema.openapi({ param: { name: "tier", in: "path" } }) });

export const LifetimeBody = z.object({ lifetimeMs: NonNeg }).strict().openapi("SetLifetime");
export const TimeoutBody = z.object({ timeoutMs: NonNeg }).strict().openapi("SetTimeout");
export const MoveBody = z
  .object({
    tier: TierSchema,
    allowUnenforcedLimits: z.boolean().optional().openapi({
      description: "move even where the target tier cannot enforce every limit here (as at create)",
    }),
  })
  .strict()
  .openapi("Move");

export const VolumeInfoSchema = z
  .object({ id: Str, name: Str, metadata: StrMap, createdAt: Str })
  .openapi("VolumeInfo");
export const CreateVolumeBody = z
  .object({ name: Str, metadata: StrMap.optional() })
  .strict()
  .openapi("CreateVolume");
export const VolumeParams = z.object({
  volumeId: Str.openapi({
    param: { name: "volumeId", in: "path" },
    example: "vol_0123456789abcdefghij",
  }),
});

export const TierStatusSchema = z
  .object({
    tier: TierSchema,
    available: z.boolean(),
    reason: Str,
    emulated: z.boolean().optional(),
    unenforcedLimits: UnenforcedLimitsSchema.optional().openapi({
      description: "limits the tier cannot enforce here (a create must pass allowUnenforcedLimits)",
    }),
  })
  .openapi("TierStatus");
export const CapabilitiesSchema = z
  .object({
    realBinaries: z.boolean(),
    interactiveStdin: z.boolean(),
    streamingOutput: z.boolean(),
    processesSurviveRestart: z.boolean(),
    pty: z.boolean(),
    warmable: z.boolean(),
    templates: z.boolean(),
    pause: z.enum(["memory", "files"]),
    egress: z.boolean(),
    volumes: z.boolean().optional(),
  })
  .openapi("Capabilities");

export const NetworkAuditEntrySchema = z
  .object({
    id: z.number(),
    atMs: z.number(),
    kind: z.enum(["http", "connect", "tls", "tcp", "dns", "inbound", "policy", "audit"]),
    host: Str.optional(),
    address: Str.optional(),
    port: z.number().optional(),
    method: Str.optional(),
    path: Str.optional(),
    status: z.number().optional(),
    allowed: z.boolean(),
    rule: Str,
    bytesUp: z.number(),
    bytesDown: z.number(),
    durationMs: z.number(),
  })
  .openapi("NetworkAuditEntry");

export const AuditEntrySchema = z
  .object({
    id: z.number(),
    command: Str,
    exitCode: z.number().nullable(),
    status: z.enum(["success", "error", "pending", "interrupted"]),
    startedAtMs: z.number(),
    durationMs: z.number().nullable(),
    cwd: Str,
  })
  .openapi("AuditEntry");
export const LogsQuery = z.object({ limit: z.coerce.number().int().positive().optional() });
export const StatsSchema = z
  .object({
    memoryBytes: z.number().optional(),
    cpuMs: z.number().optional(),
    diskBytes: z.number().optional(),
  })
  .openapi("Stats");

export const EntryInfoSchema = z
  .object({
    name: Str,
    path: Str,
    type: z.enum(["file", "dir", "symlink"]),
    size: z.number(),
    mode: z.number(),
    mtimeMs: z.number(),
    symlinkTarget: Str.optional(),
  })
  .openapi("EntryInfo");
export const PathQuery = z.object({ path: Str.openapi({ description: "path inside the sandbox" }) });
export const ListQuery = PathQuery.extend({ depth: z.coerce.number().int().positive().optional() });
export const WatchQuery = PathQuery.extend({
  recursive: z
    .enum(["true", "false"])
    .optional()
    .openapi({ description: "watch every directory below too (default false)" }),
});
export const WatchLineSchema = z
  .object({
    type: z.enum(["watching", "change", "exit"]),
    change: z
      .object({ type: z.enum(["create", "write", "remove", "rename", "chmod"]), name: z.string() })
      .optional(),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
  })
  .openapi("WatchLine");
export const PathBody = z.object({ path: Str }).strict().openapi("PathBody");
export const RenameBody = z.object({ from: Str, to: Str }).strict().openapi("Rename");
export const SymlinkBody = z.object({ target: Str, path: Str }).strict().openapi("Symlink");
export const MkdirResult = z.object({ created: z.boolean() }).openapi("MkdirResult");

export const RunCommandBody = z
  .object({
    command: Str,
    cwd: Str.optional(),
    env: StrMap.optional(),
    stdin: Str.optional().openapi({ description: "text for stdin (closed after it)" }),
    stdinBase64: Str.optional().openapi({ description: "bytes for stdin, base64" }),
    timeoutMs: NonNeg.optional(),
    background: z.boolean().optional(),
    openStdin: z.boolean().optional(),
    labels: StrMap.optional().openapi({ description: "the caller's own facts, shown by the command list" }),
    pty: z
      .object({ cols: z.number().int().min(1).max(4096), rows: z.number().int().min(1).max(4096) })
      .strict()
      .optional()
      .openapi({
        description: "with background: run on a terminal of this size (tiers with the pty capability)",
      }),
  })
  .strict()
  .openapi("RunCommand");
export const ResizeBody = z
  .object({ cols: z.number().int().min(1).max(4096), rows: z.number().int().min(1).max(4096) })
  .strict()
  .openapi("Resize");
export const ProcessInfoSchema = z
  .object({
    pid: z.number(),
    command: Str,
    cwd: Str,
    startedAtMs: z.number(),
    pty: z.boolean(),
    labels: StrMap,
    exitCode: z.number().optional().openapi({ description: "set once it ended (with ended=true)" }),
  })
  .openapi("ProcessInfo");
export const ListCommandsQuery = z.object({
  ended: z
    .enum(["true", "false"])
    .optional()
    .openapi({ description: "true: also the ended commands still kept (10 minutes, 64 at most)" }),
});
export const StartedSchema = z.object({ pid: z.number() }).openapi("Started");
export const KilledSchema = z.object({ killed: z.boolean() }).openapi("Killed");
export const StdinBody = z
  .object({ data: Str.optional(), dataBase64: Str.optional(), close: z.boolean().optional() })
  .strict()
  .openapi("Stdin");
export const RunCodeBody = z
  .object({
    code: Str,
    language: Str.optional(),
    context: Str.optional(),
    cwd: Str.optional(),
    env: StrMap.optional(),
    timeoutMs: NonNeg.optional(),
  })
  .strict()
  .openapi("RunCode");

/** A code context's path parameters. */
export const ContextParams = IdParams.extend({
  context: Str.openapi({ param: { name: "context", in: "path" }, example: "default" }),
});
export const CodeContextSchema = z
  .object({ id: Str, language: z.enum(["python", "js", "ts", "bash"]), cwd: Str })
  .openapi("CodeContext");
export const CreateCodeContextBody = z
  .object({ language: Str.optional(), cwd: Str.optional(), id: Str.optional() })
  .strict()
  .openapi("CreateCodeContext");

/** One line of a command or code stream (NDJSON). */
export const StreamEventSchema = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("start"), pid: z.number() }),
    z.object({ type: z.literal("stdout"), data: Str }),
    z.object({ type: z.literal("stderr"), data: Str }),
    z.object({ type: z.literal("result"), result: z.record(z.string(), z.unknown()) }),
    z.object({ type: z.literal("cell_error"), error: z.record(z.string(), z.unknown()) }),
    z.object({
      type: z.literal("exit"),
      result: z.record(z.string(), z.unknown()).optional(),
      error: ErrorSchema.shape.error.optional(),
    }),
  ])
  .openapi("StreamEvent");

export const OkSchema = z.object({ ok: z.literal(true) }).openapi("Ok");
