/**
 * Addresses: every spelling of an IP address (decimal `2130706433`, octal
 * `0177.0.0.1`, hex, short forms `127.1`, IPv6 with or without zeros,
 * IPv4-mapped `::ffff:127.0.0.1`) is parsed by ipaddr.js into one canonical
 * form before any rule sees it, and checked against the ranges a sandbox
 * never reaches unless a rule names them.
 */
import { networkInterfaces } from "node:os";
import ipaddr from "ipaddr.js";

/** A parsed address (IPv4-mapped IPv6 is turned into IPv4). */
export type Address = ipaddr.IPv4 | ipaddr.IPv6;

/**
 * The address that `text` spells, in any form ipaddr.js accepts (IPv4 in
 * decimal, octal, hex or short forms; IPv6 in brackets or not, with a zone
 * it drops), or undefined when `text` is not an address.
 */
export function parseAddress(text: string): Address | undefined {
  let t = text.trim();
  if (t.startsWith("[") && t.endsWith("]")) t = t.slice(1, -1);
  const zone = t.indexOf("%");
  if (zone >= 0 && t.includes(":")) t = t.slice(0, zone);
  // Every IPv4 spelling is digits, hex letters, x and dots, and IPv6 has a colon: a host name
  // ends here, not in ipaddr.js's parser, which throws (a stack trace per request) to say no.
  if (!t.includes(":") && !/^[0-9a-fx.]+$/i.test(t)) return undefined;
  if (!ipaddr.isValid(t)) return undefined;
  try {
    return ipaddr.process(t);
  } catch {
    return undefined;
  }
}

/** The ranges no sandbox reaches unless an address rule allows them: [name, CIDR]. */
export const BLOCKED_RANGES: readonly (readonly [string, string])[] = [
  ["this-network", "0.0.0.0/8"],
  ["private", "10.0.0.0/8"],
  ["shared-address-space", "100.64.0.0/10"],
  ["loopback", "127.0.0.0/8"],
  ["link-local", "169.254.0.0/16"],
  ["private", "172.16.0.0/12"],
  ["ietf-protocol", "192.0.0.0/24"],
  ["private", "192.168.0.0/16"],
  ["multicast", "224.0.0.0/4"],
  ["reserved", "240.0.0.0/4"],
  ["unspecified", "::/128"],
  ["loopback", "::1/128"],
  ["ipv4-mapped", "::ffff:0:0/96"],
  ["ipv4-translated", "::ffff:0:0:0/96"],
  ["nat64", "64:ff9b::/96"],
  ["nat64-local", "64:ff9b:1::/48"],
  ["discard", "100::/64"],
  ["teredo", "2001::/32"],
  ["6to4", "2002::/16"],
  ["unique-local", "fc00::/7"],
  ["link-local", "fe80::/10"],
  ["site-local", "fec0::/10"],
  ["multicast", "ff00::/8"],
];

const PARSED_BLOCKED = BLOCKED_RANGES.map(([name, cidr]) => [name, ipaddr.parseCIDR(cidr)] as const);

/** The host's own addresses, read once (and again after {@link refreshHostAddresses}). */
let hostAddresses: Set<string> | undefined;

/** Re-reads the host's own addresses (after an interface change). */
export function refreshHostAddresses(): void {
  hostAddresses = new Set();
  for (const list of Object.values(networkInterfaces()))
    for (const i of list ?? []) {
      const a = parseAddress(i.address);
      if (a) hostAddresses.add(a.toNormalizedString());
    }
}

/**
 * Why `a` is out of reach by default (the name of its blocked range, or
 * `host-address` for one of the host's own addresses), or undefined when it
 * is a public address.
 */
export function blockedRange(a: Address): string | undefined {
  for (const [name, [net, bits]] of PARSED_BLOCKED) {
    if (net.kind() === a.kind() && a.match(net, bits)) return name;
  }
  if (!hostAddresses) refreshHostAddresses();
  if (hostAddresses!.has(a.toNormalizedString())) return "host-address";
  return undefined;
}
