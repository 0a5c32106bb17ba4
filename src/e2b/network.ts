/**
 * The `e2b` SDK's network options as Kiln's one policy (docs/e2b.md, docs/network.md).
 *
 * What the SDK sends: at create, `allow_internet_access` beside
 * `network: { allowOut, denyOut, rules, egressProxy, allowPublicTraffic,
 * maskRequestHost, httpsPorts }`; to `PUT /sandboxes/{id}/network`
 * (`Sandbox.updateNetwork`), `{ allowOut, denyOut, rules, egressProxy,
 * allow_internet_access }`, replacing the whole configuration.
 *
 * E2B's rules: `allowOut` entries win over `denyOut` entries; `0.0.0.0/0` is
 * all traffic; `allowInternetAccess: false` is `denyOut: ["0.0.0.0/0"]`. So:
 *  - `0.0.0.0/0` (or `::/0`) in `allowOut`: `egress: "all"`;
 *  - else in `denyOut`, or `allowInternetAccess: false`: `egress: "none"`;
 *  - else `allowInternetAccess: true`: `egress: "all"`;
 *  - else the server's default for E2B sandboxes (`kiln serve --e2b-egress`,
 *    default `none`: unlike E2B's cloud, nothing is open unless asked for).
 * Other entries are Kiln rules as they are (names, `*.` wildcards, addresses,
 * CIDRs). `rules` (host -> transforms) become header rules: the headers of
 * each host's transforms, in order, set by the host side over TLS it
 * terminates; like E2B's, they allow nothing by themselves. "All traffic" is never an address rule: the blocked ranges
 * (169.254.169.254, private, loopback, ...) stay blocked under it. `egressProxy`
 * (`{ address: "host:port", username, password }`, SOCKS5) is Kiln's
 * `upstreamProxy` `socks5://host:port`; `getInfo` shows it without the password.
 */
import {
  InvalidArgumentError,
  type NetworkOptions,
  type NetworkSettings,
  UnsupportedError,
} from "../index.ts";

/** E2B's "all traffic" sentinels. */
const ALL_TRAFFIC = new Set(["0.0.0.0/0", "::/0"]);

function stringList(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string"))
    throw new InvalidArgumentError(`network.${field} must be an array of strings`);
  return (v as string[]).map((s) => s.trim());
}

/**
 * Kiln's `network` option for E2B's fields; `defaultEgress` is the server's
 * default when they say nothing about the internet.
 * @throws InvalidArgumentError (malformed fields; bad rules are found by Kiln), UnsupportedError
 *   (`httpsPorts`, `maskRequestHost`)
 */
export function e2bNetworkPolicy(
  allowInternetAccess: unknown,
  network: unknown,
  defaultEgress: "none" | "all",
): NetworkOptions {
  if (
    allowInternetAccess !== undefined &&
    allowInternetAccess !== null &&
    typeof allowInternetAccess !== "boolean"
  )
    throw new InvalidArgumentError("allow_internet_access must be a boolean");
  if (network !== undefined && network !== null && (typeof network !== "object" || Array.isArray(network)))
    throw new InvalidArgumentError("network must be an object");
  const n = (network ?? {}) as Record<string, unknown>;
  // `rules`: per host, transforms whose headers the host side sets (Kiln's header rules, in order).
  const headers: Record<string, Record<string, string>> = {};
  const rules = n.rules;
  if (rules !== undefined && rules !== null) {
    if (typeof rules !== "object" || Array.isArray(rules))
      throw new InvalidArgumentError("network.rules must be an object");
    for (const [host, list] of Object.entries(rules as Record<string, unknown>)) {
      if (!Array.isArray(list)) throw new InvalidArgumentError(`network.rules.${host} must be an array`);
      for (const r of list as { transform?: { headers?: unknown } }[]) {
        const h = r?.transform?.headers;
        if (h === undefined || h === null) continue;
        if (typeof h !== "object" || Array.isArray(h))
          throw new InvalidArgumentError(`network.rules.${host}: transform.headers must be an object`);
        headers[host] = { ...headers[host], ...(h as Record<string, string>) };
      }
    }
  }
  const upstreamProxy = egressProxy(n.egressProxy);
  if (Array.isArray(n.httpsPorts) && n.httpsPorts.length > 0)
    throw new UnsupportedError(
      "network.httpsPorts is not supported by Kiln: its port proxy speaks HTTP to the sandbox",
    );
  if (typeof n.maskRequestHost === "string" && n.maskRequestHost !== "")
    throw new UnsupportedError("network.maskRequestHost is not supported by Kiln");
  const allowOut = stringList(n.allowOut, "allowOut");
  const denyOut = stringList(n.denyOut, "denyOut");
  const allowAll = allowOut.some((r) => ALL_TRAFFIC.has(r));
  const denyAll = allowInternetAccess === false || denyOut.some((r) => ALL_TRAFFIC.has(r));
  const egress = allowAll ? "all" : denyAll ? "none" : allowInternetAccess === true ? "all" : defaultEgress;
  const allow = allowOut.filter((r) => !ALL_TRAFFIC.has(r));
  const deny = denyOut.filter((r) => !ALL_TRAFFIC.has(r));
  return {
    egress,
    ...(allow.length ? { allow } : {}),
    ...(deny.length ? { deny } : {}),
    ...(Object.keys(headers).length ? { headers } : {}),
    ...(upstreamProxy ? { upstreamProxy } : {}),
  };
}

/** E2B's `egressProxy` (SOCKS5 `host:port`, credentials) as Kiln's `upstreamProxy`. @throws InvalidArgumentError */
function egressProxy(v: unknown): NetworkOptions["upstreamProxy"] {
  if (v === undefined || v === null) return undefined;
  const p = v as { address?: unknown; username?: unknown; password?: unknown };
  if (typeof v !== "object" || Array.isArray(v) || typeof p.address !== "string" || p.address === "")
    throw new InvalidArgumentError(
      "network.egressProxy must be { address: 'host:port', username?, password? }",
    );
  for (const k of ["username", "password"] as const)
    if (p[k] !== undefined && typeof p[k] !== "string")
      throw new InvalidArgumentError(`network.egressProxy.${k} must be a string`);
  return {
    url: `socks5://${p.address}`,
    ...(p.username !== undefined ? { username: p.username as string } : {}),
    ...(p.password !== undefined ? { password: p.password as string } : {}),
  };
}

/** A sandbox's policy in E2B's `getInfo` shape: `allowInternetAccess` and `network.allowOut`/`denyOut`. */
export function e2bNetworkInfo(settings: NetworkSettings): {
  allowInternetAccess: boolean;
  allowOut: string[];
  denyOut: string[];
  egressProxy?: { address: string; username?: string };
} {
  const proxy = settings.upstreamProxy;
  return {
    ...(proxy
      ? {
          egressProxy: {
            address: proxy.url.replace(/^[a-z0-9]+:\/\//, ""),
            ...(proxy.username !== undefined ? { username: proxy.username } : {}),
          },
        }
      : {}),
    allowInternetAccess: settings.egress === "all",
    allowOut: settings.allow,
    // With no egress beyond the allow rules, E2B would say: all traffic denied but those.
    denyOut: settings.egress === "none" ? [...settings.deny, "0.0.0.0/0"] : settings.deny,
  };
}
