/**
 * Name resolution for the egress path: the host's resolver, or a fixed map
 * of names to addresses given by the server's owner (air-gapped setups,
 * tests). Each name is resolved once per connection; the address that the
 * policy checked is the one dialled.
 */
import { lookup } from "node:dns/promises";
import { InvalidArgumentError } from "../core/errors.ts";
import { type Address, parseAddress } from "./address.ts";
import { canonicalName } from "./rules.ts";

/** Names mapped to addresses, checked and canonical. */
export type HostMap = ReadonlyMap<string, readonly Address[]>;

/**
 * Parses a host map: `{ "files.test": ["198.51.100.10"] }`, or the
 * `KILN_NETWORK_HOSTS` form `files.test=198.51.100.10,other.test=198.51.100.11`.
 * @throws InvalidArgumentError for a bad name or address
 */
export function parseHostMap(
  input: Readonly<Record<string, readonly string[]>> | string | undefined,
): HostMap {
  const map = new Map<string, Address[]>();
  if (input === undefined || input === "") return map;
  const pairs: [string, string][] =
    typeof input === "string"
      ? input.split(",").map((p) => {
          const i = p.indexOf("=");
          return [p.slice(0, i).trim(), p.slice(i + 1).trim()];
        })
      : Object.entries(input).flatMap(([k, v]) => v.map((a) => [k, a] as [string, string]));
  for (const [n, a] of pairs) {
    const name = canonicalName(n);
    const address = parseAddress(a);
    if (!name || !address) throw new InvalidArgumentError(`bad host mapping ${JSON.stringify(`${n}=${a}`)}`);
    map.set(name, [...(map.get(name) ?? []), address]);
  }
  return map;
}

/** Resolves host names to addresses. */
export class Resolver {
  private readonly hosts: HostMap;

  /** `hosts`: names answered from this map only, never from DNS. */
  constructor(hosts: HostMap = new Map()) {
    this.hosts = hosts;
  }

  /** The addresses of `name` (canonical), empty when it has none. Never throws. */
  async resolve(name: string): Promise<Address[]> {
    const fixed = this.hosts.get(name);
    if (fixed) return [...fixed];
    try {
      const found = await lookup(name, { all: true, verbatim: true });
      return found.map((f) => parseAddress(f.address)).filter((a): a is Address => a !== undefined);
    } catch {
      return [];
    }
  }
}
