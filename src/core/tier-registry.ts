/**
 * Which backend serves which tier. Tiers register themselves here (see
 * src/tiers/index.ts); core, the CLI and the server find them only through
 * this registry, never by importing a tier.
 */

import type { Backend } from "./backend.ts";
import { InvalidArgumentError } from "./errors.ts";
import { TIER_NAMES, type TierName } from "./types.ts";

/** Loads a tier's backend (lazily, so unused tiers cost nothing). */
export type BackendFactory = () => Promise<Backend>;

const factories = new Map<TierName, BackendFactory>();

/** Registers the backend of a tier. */
export function registerTier(tier: TierName, factory: BackendFactory): void {
  factories.set(tier, factory);
}

/** The factories registered so far. */
export function registeredTiers(): Map<TierName, BackendFactory> {
  return new Map(factories);
}

/**
 * Checks a tier name.
 * @throws InvalidArgumentError (`invalid_argument`) for an unknown name.
 */
export function checkTierName(tier: unknown): TierName {
  if (typeof tier !== "string" || !(TIER_NAMES as readonly string[]).includes(tier)) {
    throw new InvalidArgumentError(`unknown tier ${JSON.stringify(tier)}; tiers: ${TIER_NAMES.join(", ")}`);
  }
  return tier as TierName;
}
