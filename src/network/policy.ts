/**
 * A sandbox's network policy: what it may reach outside.
 *
 * Default deny. `egress: "none"` (the default) with no `allow` entries means
 * no network at all, exactly as a sandbox without a `network` option.
 * Otherwise a connection or request is allowed when an `allow` rule matches
 * it (allow wins over deny, as in E2B), or when `egress` is `"all"` and no
 * `deny` rule matches it. Addresses in the blocked ranges (loopback,
 * link-local, private, the host's own, ...: see `address.ts`) stay out of
 * reach unless an address or CIDR `allow` rule names them: a host-name rule
 * never opens them, so a name that resolves to 10.0.0.1 stays blocked.
 */
import { InvalidArgumentError } from "../core/errors.ts";
import { type Address, blockedRange } from "./address.ts";
import { parseRule, type Rule, ruleMatches, type Target } from "./rules.ts";
import { makeHeaderRule, makeSecret, newPlaceholder } from "./secrets.ts";
import {
  defaultUpstreamProxy,
  parseUpstreamProxy,
  readProxyPassword,
  type UpstreamProxy,
  type UpstreamProxyOption,
  type UpstreamProxySettings,
  upstreamProxyOf,
} from "./upstream-proxy.ts";

/** The `network` option of a sandbox, as callers give it. */
export interface NetworkOptions {
  /** Outbound traffic beyond the `allow` rules: `"none"` (default) or `"all"` public addresses but the `deny` rules. */
  egress?: "none" | "all";
  /** Rules that allow (host names, `*.` wildcards, optional `:port`, addresses, CIDRs); they win over `deny`. */
  allow?: string[];
  /** Rules that deny, in the same forms (meaningful with `egress: "all"`). */
  deny?: string[];
  /**
   * Secrets the sandbox uses without holding them: NAME -> the value, the host names it may
   * be sent to, and the headers it may go in (default any header that carries the placeholder).
   * The sandbox's environment holds NAME=placeholder; docs/network.md#secrets.
   */
  secrets?: Record<string, { value: string; hosts: string[]; headers?: string[] }>;
  /**
   * Header rules: host name (exact, or `*.` wildcard; an exact name wins, then the longest
   * wildcard) -> headers the host side adds to, or replaces in, every request to it (over TLS
   * that Kiln terminates). The values never enter the sandbox. They allow nothing by themselves.
   */
  headers?: Record<string, Record<string, string>>;
  /**
   * A proxy that every allowed connection leaves through (`http://` for CONNECT, `socks5://`),
   * with optional credentials (`user:password@` in the URL, or `username` and `password`).
   * Failing closed: proxy down or refusing, the connection is refused. Default: the server's, else none.
   */
  upstreamProxy?: UpstreamProxyOption;
  /** Per-sandbox caps, within the server's (a larger value means the server's). */
  limits?: NetworkLimits;
}

/** Per-sandbox caps on egress, so that one sandbox cannot starve the others. */
export interface NetworkLimits {
  /** Connections open at once from the sandbox; more are refused (reset). Default 256 (the server's). */
  maxConnections?: number;
  /** Bytes per second each way, summed over the sandbox's connections. Default: the server's, else none. */
  maxBytesPerSecond?: number;
}

/** The server's caps on every sandbox's egress (`Kiln.open`'s `networkLimits`): a policy may only lower them. */
export interface ServerNetworkLimits extends NetworkLimits {
  /** Network audit entries written a second per sandbox (more are counted, then summarised). Default 200. */
  maxAuditEntriesPerSecond?: number;
}

/**
 * Checked server caps (`Kiln.open`'s `networkLimits`).
 * @throws InvalidArgumentError
 */
export function parseServerNetworkLimits(value: unknown): ServerNetworkLimits {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value))
    throw new InvalidArgumentError("networkLimits must be an object");
  const { maxAuditEntriesPerSecond: audit, ...rest } = value as Record<string, unknown>;
  if (audit !== undefined && (typeof audit !== "number" || !Number.isSafeInteger(audit) || audit < 1))
    throw new InvalidArgumentError("networkLimits.maxAuditEntriesPerSecond must be a positive integer");
  return {
    ...parseNetworkLimits(rest, "networkLimits"),
    ...(audit !== undefined ? { maxAuditEntriesPerSecond: audit as number } : {}),
  };
}

/** A secret as stored and shown: never its value. */
export interface SecretSettings {
  /** Host rules, canonical. */
  hosts: string[];
  /** Header names (lower case); absent: any header. */
  headers?: string[];
  /** What the sandbox holds as `$NAME`. */
  placeholder: string;
}

/** The network policy in canonical form, as stored with the sandbox. */
export interface NetworkSettings {
  /** `"none"` or `"all"`. */
  egress: "none" | "all";
  /** Allow rules, canonical spelling. */
  allow: string[];
  /** Deny rules, canonical spelling. */
  deny: string[];
  /** Secrets by name, without their values (which are kept apart, on the host); absent: none. */
  secrets?: Record<string, SecretSettings>;
  /** Header rules: host -> the names of the headers set (values kept apart, on the host); absent: none. */
  headers?: Record<string, string[]>;
  /** The upstream proxy, without its password (kept apart, on the host); absent: the server's default, if any. */
  upstreamProxy?: UpstreamProxySettings;
  /** Per-sandbox caps; absent: the server's. */
  limits?: NetworkLimits;
}

/** At most this many rules in each list. */
export const MAX_NETWORK_RULES = 1000;

/** No network at all: the default. */
export const NO_NETWORK: Readonly<NetworkSettings> = Object.freeze({ egress: "none", allow: [], deny: [] });

function parseList(value: unknown, name: string): Rule[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new InvalidArgumentError(`network.${name} must be an array of strings`);
  if (value.length > MAX_NETWORK_RULES)
    throw new InvalidArgumentError(`network.${name} has more than ${MAX_NETWORK_RULES} rules`);
  return value.map(parseRule);
}

/**
 * Checks and canonicalises a `network` option (undefined: no network).
 * @throws InvalidArgumentError (`invalid_argument`) naming the bad field or rule
 */
export function resolveNetwork(options: unknown, previous?: NetworkSettings): NetworkSettings {
  if (options === undefined || options === null) return { ...NO_NETWORK, allow: [], deny: [] };
  if (typeof options !== "object" || Array.isArray(options))
    throw new InvalidArgumentError("network must be an object");
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o))
    if (!["egress", "allow", "deny", "secrets", "headers", "upstreamProxy", "limits"].includes(key))
      throw new InvalidArgumentError(`network.${key} is not an option`);
  const egress = o.egress ?? "none";
  if (egress !== "none" && egress !== "all")
    throw new InvalidArgumentError(`network.egress must be "none" or "all"`);
  const dedupe = (rules: Rule[]) => [...new Set(rules.map((r) => r.text))];
  const secrets = parseSecrets(o.secrets, previous?.secrets);
  const headers = parseHeaderRules(o.headers);
  const upstreamProxy =
    o.upstreamProxy === undefined || o.upstreamProxy === null
      ? undefined
      : parseUpstreamProxy(o.upstreamProxy).settings;
  const limits = parseNetworkLimits(o.limits);
  return {
    egress,
    allow: dedupe(parseList(o.allow, "allow")),
    deny: dedupe(parseList(o.deny, "deny")),
    ...(secrets ? { secrets } : {}),
    ...(headers ? { headers } : {}),
    ...(upstreamProxy ? { upstreamProxy } : {}),
    ...(limits ? { limits } : {}),
  };
}

/**
 * Checked caps (undefined when none is given).
 * @throws InvalidArgumentError
 */
export function parseNetworkLimits(value: unknown, field = "network.limits"): NetworkLimits | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value))
    throw new InvalidArgumentError(`${field} must be an object`);
  const out: NetworkLimits = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const [min, max] =
      k === "maxConnections" ? [1, 65_536] : k === "maxBytesPerSecond" ? [1024, 2 ** 40] : [0, -1];
    if (max < 0) throw new InvalidArgumentError(`${field}.${k} is not an option`);
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max)
      throw new InvalidArgumentError(`${field}.${k} must be an integer from ${min} to ${max}`);
    out[k as keyof NetworkLimits] = v;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** The password of an option's upstream proxy, if it has one (checked by {@link resolveNetwork}). */
export function upstreamProxyPassword(options: NetworkOptions | undefined): string | undefined {
  const p = options?.upstreamProxy;
  return p === undefined || p === null ? undefined : parseUpstreamProxy(p).password;
}

/**
 * The upstream proxy of a sandbox: its policy's (password from `stateDir`, its address
 * checked against the blocked ranges), else the server's default, else none (direct).
 * @throws InvalidArgumentError for a bad server default
 */
export function upstreamProxyFor(
  settings: NetworkSettings,
  stateDir: string,
  serverDefault: UpstreamProxyOption | undefined,
): UpstreamProxy | undefined {
  if (settings.upstreamProxy)
    return upstreamProxyOf(settings.upstreamProxy, readProxyPassword(stateDir), true);
  return defaultUpstreamProxy(serverDefault);
}

/** Header rules of an option (with values) or of stored settings (names only), as stored. @throws InvalidArgumentError */
function parseHeaderRules(value: unknown): Record<string, string[]> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value))
    throw new InvalidArgumentError("network.headers must be an object");
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return undefined;
  if (entries.length > MAX_SECRETS)
    throw new InvalidArgumentError(`network.headers has more than ${MAX_SECRETS} hosts`);
  const out: Record<string, string[]> = {};
  for (const [host, h] of entries) {
    const given = Array.isArray(h)
      ? Object.fromEntries(h.map((k) => [String(k), ""]))
      : (h as Record<string, string>);
    const rule = makeHeaderRule(host, given);
    out[rule.rule.text] = rule.headers.map(([k]) => k);
  }
  return out;
}

/** An option's header rules with their values, by canonical host (checked by {@link resolveNetwork}). */
export function headerRuleValues(
  options: NetworkOptions | undefined,
): Record<string, Record<string, string>> {
  return Object.fromEntries(
    Object.entries(options?.headers ?? {}).map(([host, h]) => {
      const rule = makeHeaderRule(host, h);
      return [rule.rule.text, Object.fromEntries(rule.headers)];
    }),
  );
}

/** At most this many secrets. */
export const MAX_SECRETS = 64;

/**
 * The secrets of an option (with values) or of stored settings (with
 * placeholders), as stored: without values. A name kept from `previous`
 * keeps its placeholder, so that the sandbox's `$NAME` stays good.
 * @throws InvalidArgumentError
 */
function parseSecrets(
  value: unknown,
  previous: Record<string, SecretSettings> | undefined,
): Record<string, SecretSettings> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value))
    throw new InvalidArgumentError("network.secrets must be an object");
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return undefined;
  if (entries.length > MAX_SECRETS)
    throw new InvalidArgumentError(`network.secrets has more than ${MAX_SECRETS} secrets`);
  const out: Record<string, SecretSettings> = {};
  for (const [name, raw] of entries) {
    const s = (raw ?? {}) as { value?: unknown; hosts?: unknown; headers?: unknown; placeholder?: unknown };
    const placeholder =
      typeof s.placeholder === "string"
        ? s.placeholder
        : (previous?.[name]?.placeholder ?? newPlaceholder(name));
    if (s.value === undefined && typeof s.placeholder !== "string")
      throw new InvalidArgumentError(`network.secrets.${name} needs a value`);
    if (
      s.headers !== undefined &&
      (!Array.isArray(s.headers) || s.headers.some((h) => typeof h !== "string"))
    )
      throw new InvalidArgumentError(`network.secrets.${name}.headers must be an array of header names`);
    const checked = makeSecret(
      name,
      {
        value: s.value === undefined ? "x" : (s.value as string),
        hosts: s.hosts as string[],
        ...(s.headers ? { headers: s.headers as string[] } : {}),
      },
      placeholder,
    );
    out[name] = {
      hosts: checked.hosts.map((r) => r.text),
      ...(checked.headers ? { headers: checked.headers } : {}),
      placeholder,
    };
  }
  return out;
}

/** The values of an option's secrets, by name (checked by {@link resolveNetwork}). */
export function secretValues(options: NetworkOptions | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(options?.secrets ?? {}).map(([k, v]) => [k, v.value]));
}

/** Whether a sandbox with these settings has any network (else it gets none at all). */
export function hasEgress(settings: NetworkSettings): boolean {
  return settings.egress === "all" || settings.allow.length > 0;
}

/** The verdict on one connection, request or name. */
export interface Decision {
  /** Whether it may go. */
  allowed: boolean;
  /** What decided: `allow <rule>`, `deny <rule>`, `blocked <range>`, `egress all` or `default deny`. */
  rule: string;
}

/** A policy ready to match. */
export class NetworkPolicy {
  /** The settings it was built from. */
  readonly settings: NetworkSettings;
  private readonly allow: Rule[];
  private readonly deny: Rule[];

  /** @throws InvalidArgumentError for bad settings */
  constructor(settings: NetworkSettings) {
    this.settings = resolveNetwork(settings);
    this.allow = this.settings.allow.map(parseRule);
    this.deny = this.settings.deny.map(parseRule);
  }

  /**
   * The verdict on a connection to `target`: its host name when one is known
   * (Host, SNI, CONNECT authority, the name a DNS answer was given for), the
   * address it would dial, and the port.
   */
  decide(target: Target): Decision {
    const range = target.address ? blockedRange(target.address) : undefined;
    if (range) {
      const explicit = this.allow.find(
        (r) => r.kind === "cidr" && ruleMatches(r, { address: target.address!, port: target.port }),
      );
      return explicit
        ? { allowed: true, rule: `allow ${explicit.text}` }
        : { allowed: false, rule: `blocked ${range}` };
    }
    const allow = this.allow.find((r) => ruleMatches(r, target));
    if (allow) return { allowed: true, rule: `allow ${allow.text}` };
    const deny = this.deny.find((r) => ruleMatches(r, target));
    if (deny) return { allowed: false, rule: `deny ${deny.text}` };
    return this.settings.egress === "all"
      ? { allowed: true, rule: "egress all" }
      : { allowed: false, rule: "default deny" };
  }

  /**
   * Whether `name` may be resolved at all: some port of it could be allowed.
   * Names that cannot be reached get no answer, so DNS carries nothing out.
   */
  decideName(name: string): Decision {
    const allow = this.allow.find((r) => r.kind !== "cidr" && ruleMatches(r, { name, port: r.port }));
    if (allow) return { allowed: true, rule: `allow ${allow.text}` };
    const deny = this.deny.find((r) => r.kind !== "cidr" && r.port === undefined && ruleMatches(r, { name }));
    if (deny) return { allowed: false, rule: `deny ${deny.text}` };
    return this.settings.egress === "all"
      ? { allowed: true, rule: "egress all" }
      : { allowed: false, rule: "default deny" };
  }

  /** Whether some allow rule names addresses (then a name is resolved before it is refused by default). */
  get allowsAddresses(): boolean {
    return this.allow.some((r) => r.kind === "cidr");
  }

  /**
   * Why an upstream proxy that the policy names may not be dialled at
   * `address`:`port` (a blocked range that no address rule names), or
   * undefined when it may.
   */
  proxyRefusal(address: Address, port: number): string | undefined {
    const range = blockedRange(address);
    if (!range) return undefined;
    return this.allow.some((r) => r.kind === "cidr" && ruleMatches(r, { address, port }))
      ? undefined
      : `blocked ${range}`;
  }

  /** Whether `address` may be given in a DNS answer for an allowed name (blocked ranges are dropped). */
  answerable(address: Address): boolean {
    if (!blockedRange(address)) return true;
    return this.allow.some(
      (r) => r.kind === "cidr" && r.net.kind() === address.kind() && address.match(r.net, r.bits),
    );
  }
}
