/**
 * One egress rule, as written by a user and as matched:
 *  - `files.example.com`, `files.example.com:443`: that host name (any port, or one port);
 *  - `*.example.com`, `*.example.com:443`: every name below example.com (not example.com itself);
 *  - `198.51.100.7`, `198.51.100.7:8080`, `[2001:db8::7]:443`: one address, in any spelling;
 *  - `198.51.100.0/24`, `2001:db8::/32`: a CIDR block (any port).
 * Names are lower-cased, IDNs turned into punycode, a final dot dropped.
 */
import { domainToASCII } from "node:url";
import ipaddr from "ipaddr.js";
import { InvalidArgumentError } from "../core/errors.ts";
import { type Address, parseAddress } from "./address.ts";

/** A parsed rule. */
export type Rule =
  | { kind: "name"; name: string; port?: number; text: string }
  | { kind: "wildcard"; suffix: string; port?: number; text: string }
  | { kind: "cidr"; net: Address; bits: number; port?: number; text: string };

/** What a rule is matched against: a host name and/or an address, and a port. */
export interface Target {
  /** Host name (lower case, no final dot), when one is known. */
  name?: string;
  /** The address, when known. */
  address?: Address;
  /** TCP port; undefined matches only rules without a port. */
  port?: number;
}

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

/**
 * A host name in canonical form (lower case, punycode, no final dot), or
 * undefined when `text` is not a valid DNS name.
 */
export function canonicalName(text: string): string | undefined {
  if (text.length === 0 || text.length > 255) return undefined;
  let name = domainToASCII(text.trim());
  if (name.endsWith(".")) name = name.slice(0, -1);
  if (!name || name.length > 253) return undefined;
  return name.split(".").every((l) => LABEL.test(l)) ? name : undefined;
}

function parsePort(text: string, rule: string): number {
  const port = /^[0-9]{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(port >= 1 && port <= 65535))
    throw new InvalidArgumentError(`network rule ${JSON.stringify(rule)}: bad port`);
  return port;
}

/**
 * Parses one rule.
 * @throws InvalidArgumentError (`invalid_argument`) naming the rule
 */
export function parseRule(input: unknown): Rule {
  if (typeof input !== "string" || input.length === 0 || input.length > 300)
    throw new InvalidArgumentError(`network rule must be a non-empty string of at most 300 characters`);
  const text = input.trim().toLowerCase();
  const bad = () =>
    new InvalidArgumentError(`network rule ${JSON.stringify(input)} is not a host name, address or CIDR`);
  if (text.includes("/")) {
    try {
      const [net, bits] = ipaddr.parseCIDR(text);
      const a =
        net.kind() === "ipv6" && (net as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96
          ? { net: (net as ipaddr.IPv6).toIPv4Address(), bits: bits - 96 }
          : { net, bits };
      // The canonical network address: host bits cleared.
      const first = ipaddr.parse(firstAddress(a.net as Address, a.bits));
      return { kind: "cidr", net: first as Address, bits: a.bits, text: `${first.toString()}/${a.bits}` };
    } catch (e) {
      if (e instanceof InvalidArgumentError) throw e;
      throw bad();
    }
  }
  let host = text;
  let port: number | undefined;
  const bracket = /^\[([^\]]+)\](?::([^:]*))?$/.exec(text);
  if (bracket) {
    host = bracket[1]!;
    if (bracket[2] !== undefined) port = parsePort(bracket[2], input);
  } else if ((text.match(/:/g) ?? []).length === 1) {
    const i = text.lastIndexOf(":");
    host = text.slice(0, i);
    port = parsePort(text.slice(i + 1), input);
  }
  const withPort = (s: string) => (port === undefined ? s : `${s.includes(":") ? `[${s}]` : s}:${port}`);
  const address = parseAddress(host);
  if (address) {
    const bits = address.kind() === "ipv4" ? 32 : 128;
    return {
      kind: "cidr",
      net: address,
      bits,
      ...(port !== undefined ? { port } : {}),
      text: withPort(address.toString()),
    };
  }
  if (host.startsWith("*.")) {
    const suffix = canonicalName(host.slice(2));
    if (!suffix) throw bad();
    return {
      kind: "wildcard",
      suffix,
      ...(port !== undefined ? { port } : {}),
      text: withPort(`*.${suffix}`),
    };
  }
  const name = canonicalName(host);
  if (!name || name.includes("*")) throw bad();
  return { kind: "name", name, ...(port !== undefined ? { port } : {}), text: withPort(name) };
}

function firstAddress(net: Address, bits: number): string {
  const bytes = net.toByteArray();
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    bytes[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/** Whether `rule` matches `target`. */
export function ruleMatches(rule: Rule, target: Target): boolean {
  if (rule.port !== undefined && rule.port !== target.port) return false;
  switch (rule.kind) {
    case "name":
      return target.name === rule.name;
    case "wildcard":
      return target.name?.endsWith(`.${rule.suffix}`) === true;
    case "cidr":
      return (
        target.address !== undefined &&
        target.address.kind() === rule.net.kind() &&
        target.address.match(rule.net, rule.bits)
      );
  }
}
