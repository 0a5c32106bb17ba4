/**
 * Translation between E2B's sandbox vocabulary and Kiln's: templates and
 * tiers on the way in, sandbox records on the way out.
 *
 * Tier choice, first match wins:
 *  1. metadata `kiln.tier` at create time (`{ metadata: { "kiln.tier": "namespace" } }`);
 *  2. a template prefixed with a tier name: `namespace/base`, `gvisor/python`;
 *  3. the handler's `defaultTier` (default: the strongest real tier that runs
 *     here, as `kiln doctor` probes them; virtual only where none runs).
 *
 * Templates: E2B's default template `base` is Kiln's `default`; any other
 * name must be a Kiln template (`kiln template build|import`). The virtual
 * tier (any tier whose capabilities say `templates: false`) has one built-in
 * environment and accepts only `base` / `default`. A
 * name Kiln does not have (an E2B-hosted template such as
 * `code-interpreter-v1`) is refused with a 404 that says so.
 */
import { InvalidArgumentError, NotFoundError } from "../core/errors.ts";
import type { Kiln } from "../core/kiln.ts";
import type { SandboxInfo, SnapshotInfo, TierName } from "../core/types.ts";
import { TIER_NAMES } from "../core/types.ts";
import { OWNER_KEY, publicMetadata } from "../mcp/access.ts";
import { CODE_INTERPRETER_PORT } from "./auth.ts";
import type { E2bContext } from "./context.ts";
import { e2bNetworkInfo } from "./network.ts";

/** The metadata key that picks a sandbox's tier at create time. */
export const TIER_KEY = "kiln.tier";

/** E2B's default template name. */
export const E2B_DEFAULT_TEMPLATE = "base";

/** `@e2b/code-interpreter`'s default template, Kiln's `code-interpreter`. */
export const E2B_CODE_INTERPRETER_TEMPLATE = "code-interpreter-v1";

/** Kiln's template for code cells (numpy, pandas, matplotlib): `kiln template build code-interpreter`. */
export const CODE_INTERPRETER_TEMPLATE = "code-interpreter";

/** An expiry far in the future, for sandboxes that never expire. */
const NEVER = "9999-12-31T23:59:59.999Z";

function isTier(s: string): s is TierName {
  return (TIER_NAMES as readonly string[]).includes(s);
}

/**
 * The Kiln tier and template for an E2B `templateID` and create metadata.
 * @throws InvalidArgumentError (unknown or conflicting tier), NotFoundError (a template the virtual tier does not have)
 */
export function resolveTemplate(
  templateId: string | undefined,
  metadata: Record<string, string>,
  defaultTier: TierName,
): { tier: TierName; template: string } {
  let name = templateId && templateId.length > 0 ? templateId : E2B_DEFAULT_TEMPLATE;
  let fromTemplate: TierName | undefined;
  const slash = name.indexOf("/");
  if (slash > 0 && isTier(name.slice(0, slash))) {
    fromTemplate = name.slice(0, slash) as TierName;
    name = name.slice(slash + 1) || E2B_DEFAULT_TEMPLATE;
  }
  const fromMetadata = metadata[TIER_KEY];
  if (fromMetadata !== undefined && !isTier(fromMetadata)) {
    throw new InvalidArgumentError(`${TIER_KEY} must be one of ${TIER_NAMES.join(", ")}`);
  }
  if (fromMetadata && fromTemplate && fromMetadata !== fromTemplate) {
    throw new InvalidArgumentError(
      `the template names tier ${fromTemplate} but ${TIER_KEY} is ${fromMetadata}; name one tier`,
    );
  }
  const tier = (fromMetadata as TierName | undefined) ?? fromTemplate ?? defaultTier;
  // E2B template ids may carry a team (`team/name`) or a tag (`name:tag`); Kiln templates have neither.
  if (name.includes(":") || name.includes("/")) {
    throw new NotFoundError(
      `template ${name} is an E2B-hosted template name (team or tag); Kiln has no such template: use a Kiln template name`,
    );
  }
  const template =
    name === E2B_DEFAULT_TEMPLATE
      ? "default"
      : name === E2B_CODE_INTERPRETER_TEMPLATE
        ? CODE_INTERPRETER_TEMPLATE
        : name;
  return { tier, template };
}

/**
 * Refuses a template on a tier that runs no templates (one built-in environment, E2B's `base`).
 * @throws NotFoundError
 */
export async function checkTemplateOnTier(kiln: Kiln, tier: TierName, template: string): Promise<void> {
  if (template === CODE_INTERPRETER_TEMPLATE) return;
  if (template === "default" || (await kiln.backend(tier)).capabilities.templates) return;
  throw new NotFoundError(
    `template ${template} is not available on the ${tier} tier (it has one built-in environment, \`base\`); ` +
      `E2B-hosted templates are not part of Kiln: build or import it (\`kiln template build|import\`) and use a tier that runs templates`,
    { resource: "template" },
  );
}

/** Rewrites Kiln's "no template" error into one that says E2B-hosted templates are not available. */
export function templateError(e: unknown, template: string): unknown {
  if (e instanceof NotFoundError && e.resource === "template") {
    if (template === CODE_INTERPRETER_TEMPLATE) {
      return new NotFoundError(
        `template ${CODE_INTERPRETER_TEMPLATE} (E2B's ${E2B_CODE_INTERPRETER_TEMPLATE}) is not built in this Kiln; ` +
          `build it once with \`kiln template build ${CODE_INTERPRETER_TEMPLATE}\` (about 1.4 GB, several minutes)`,
        { cause: e, resource: "template" },
      );
    }
    if (template === "default") {
      return new NotFoundError(
        "template default (E2B's base) is not built in this Kiln; " +
          "build it once with `kiln template build default` (a few minutes)",
        { cause: e, resource: "template" },
      );
    }
    return new NotFoundError(
      `template ${template} does not exist in this Kiln; E2B-hosted templates are not available, ` +
        `build or import it with \`kiln template build|import ${template}\``,
      { cause: e, resource: "template" },
    );
  }
  return e;
}

/** The owner recorded on a sandbox ("" when unowned). */
export function ownerOf(info: SandboxInfo): string {
  return info.metadata[OWNER_KEY] ?? "";
}

/** What create and connect answer (E2B's `Sandbox` schema). */
export function sandboxCreated(ctx: E2bContext, info: SandboxInfo): Record<string, unknown> {
  return {
    sandboxID: info.id,
    templateID: info.template,
    alias: info.template,
    clientID: "kiln",
    envdVersion: ctx.envdVersion,
    envdAccessToken: ctx.tokens.issue(info, "e2b-envd"),
    // `@e2b/code-interpreter` sends it with every call to port 49999 (its contexts calls carry no other credential).
    trafficAccessToken: ctx.tokens.issue(info, `port:${CODE_INTERPRETER_PORT}`),
    domain: ctx.sandboxDomain,
  };
}

/** E2B's `ListedSandbox` / `SandboxDetail` fields of a record. */
export function sandboxListed(ctx: E2bContext, info: SandboxInfo): Record<string, unknown> {
  return {
    sandboxID: info.id,
    templateID: info.template,
    alias: info.template,
    clientID: "kiln",
    startedAt: info.createdAt,
    endAt: info.expiresAt ?? NEVER,
    cpuCount: Math.max(1, Math.ceil(info.limits.cpuCount)),
    memoryMB: Math.round(info.limits.memoryBytes / (1024 * 1024)),
    diskSizeMB: Math.round(info.limits.diskBytes / (1024 * 1024)),
    metadata: publicMetadata(info.metadata),
    state: info.state === "running" ? "running" : "paused",
    envdVersion: ctx.envdVersion,
    volumeMounts: info.volumes.map((v) => ({ name: v.name, path: v.path })),
  };
}

/** The detail of one sandbox (`getInfo`). */
export function sandboxDetail(ctx: E2bContext, info: SandboxInfo): Record<string, unknown> {
  return {
    ...sandboxListed(ctx, info),
    envdAccessToken: ctx.tokens.issue(info, "e2b-envd"),
    // `@e2b/code-interpreter` sends it with every call to port 49999 (its contexts calls carry no other credential).
    trafficAccessToken: ctx.tokens.issue(info, `port:${CODE_INTERPRETER_PORT}`),
    domain: ctx.sandboxDomain,
    // Kiln resumes a paused sandbox on any call: autoResume is always on.
    lifecycle: { onTimeout: ctx.kiln.expiryAction(info.id) === "kill" ? "kill" : "pause", autoResume: true },
    ...detailNetwork(info),
  };
}

/** `allowInternetAccess` and `network` of `getInfo`, from the sandbox's policy and port policy. */
function detailNetwork(info: SandboxInfo): Record<string, unknown> {
  const { allowInternetAccess, allowOut, denyOut, egressProxy } = e2bNetworkInfo(info.network);
  return {
    allowInternetAccess,
    network: {
      allowOut,
      denyOut,
      ...(egressProxy ? { egressProxy } : {}),
      allowPublicTraffic: info.ports.public === "all",
    },
  };
}

/** Seconds (E2B's unit for `timeout`) to ms; undefined stays undefined. */
export function secondsToMs(v: unknown, field = "timeout"): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw new InvalidArgumentError(`${field} must be a number of seconds >= 0`);
  }
  return Math.round(v * 1000);
}

/** String-valued metadata from a request body. @throws InvalidArgumentError */
export function stringRecord(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw new InvalidArgumentError(`${field} must be an object`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== "string") throw new InvalidArgumentError(`${field}.${k} must be a string`);
    out[k] = val;
  }
  return out;
}

/** E2B's `SnapshotInfo`: the id (which `Sandbox.create` takes as a template) and its names. */
export function snapshotListed(s: SnapshotInfo): Record<string, unknown> {
  return { snapshotID: s.id, names: s.name ? [s.name] : [] };
}

/**
 * The template a sandbox of `tier` starts from: `code-interpreter` on a tier
 * without templates (the virtual tier) is its one built-in environment, whose
 * cells offer what that tier's Python offers.
 */
export async function templateOnTier(kiln: Kiln, tier: TierName, template: string): Promise<string> {
  if (template !== CODE_INTERPRETER_TEMPLATE) return template;
  return (await kiln.backend(tier)).capabilities.templates ? template : "default";
}
