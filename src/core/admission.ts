/**
 * Admission control: whether one more sandbox may be created. Two budgets,
 * each a count of live sandboxes and a sum of their `limits.memoryBytes`
 * (a ceiling each sandbox may reach, so the sum is what the host has promised):
 * the owner's quota (when the sandbox has an owner with one) and the host's.
 * Live sandboxes are the records in kiln.db (every process on the data
 * directory), plus creations in flight in this process, which are reserved
 * in the same synchronous step as the check so that concurrent creates
 * cannot both pass it.
 */
import { LimitExceededError } from "./errors.ts";

/** A count and memory budget; an absent field is unlimited. */
export interface Budget {
  /** Most live sandboxes. */
  maxSandboxes?: number;
  /** Most total `limits.memoryBytes` of live sandboxes, bytes. */
  maxMemoryBytes?: number;
  /**
   * Most bytes of state images on disk: snapshots (fork's own included) and pause (hibernation)
   * images; `fork(n)` needs room for its `n` copies too. Per owner only (the host's budget has none).
   */
  maxDiskBytes?: number;
}

/** Options of {@link Admission}. */
export interface AdmissionOptions {
  /** The host's budget, over every sandbox of the data directory; default unlimited. */
  host?: Budget;
  /** The metadata key naming a sandbox's owner; a sandbox without it counts against the host's budget only. */
  ownerLabel?: string;
  /** An owner's quota; undefined: none. */
  quotaOf?: (owner: string) => Budget | undefined;
}

interface Usage {
  count: number;
  memoryBytes: number;
}

/** Checks and reserves room for new sandboxes. */
export class Admission {
  private readonly options: AdmissionOptions;
  private readonly live: (label?: [string, string]) => Usage;
  private readonly pending = new Set<{ owner: string | undefined; memoryBytes: number }>();

  private readonly stateBytes: (label: [string, string]) => number;

  /**
   * @param live the count and summed memory of the live sandboxes (with a label: only those that have it)
   * @param stateBytes the bytes of state images (snapshots, pause images) of the sandboxes with a label
   */
  constructor(
    options: AdmissionOptions,
    live: (label?: [string, string]) => Usage,
    stateBytes: (label: [string, string]) => number = () => 0,
  ) {
    this.options = options;
    this.live = live;
    this.stateBytes = stateBytes;
  }

  /**
   * Checks that the owner named in `metadata` has room for `addBytes` more of state images
   * (with 0: that it is not already over). Call it in the same synchronous step as the record
   * that makes the bytes count, so that two calls in this process cannot both pass.
   * @throws LimitExceededError (`limit_exceeded`, limit `maxDiskBytes`)
   */
  checkDisk(metadata: Record<string, string>, addBytes: number): void {
    const { ownerLabel, quotaOf } = this.options;
    const owner = ownerLabel === undefined ? undefined : metadata[ownerLabel];
    if (ownerLabel === undefined || owner === undefined) return;
    const max = quotaOf?.(owner)?.maxDiskBytes;
    if (max === undefined) return;
    const used = this.stateBytes([ownerLabel, owner]);
    if (used + addBytes > max || (addBytes === 0 && used >= max))
      throw new LimitExceededError(
        "maxDiskBytes",
        max,
        `quota exceeded: maxDiskBytes (${max}); snapshots and pause images use ${used}, ${addBytes} more needed`,
      );
  }

  /**
   * Reserves room for a sandbox with `metadata` and `memoryBytes`; the caller
   * calls the returned release once the sandbox has a record (or failed).
   * @throws LimitExceededError (`limit_exceeded`): `maxSandboxes` or `maxMemoryBytes` for the
   * owner's quota, `hostMaxSandboxes` or `hostMaxMemoryBytes` for the host's budget
   */
  admit(metadata: Record<string, string>, memoryBytes: number): () => void {
    const { host, ownerLabel, quotaOf } = this.options;
    const owner = ownerLabel === undefined ? undefined : metadata[ownerLabel];
    const quota = owner === undefined ? undefined : quotaOf?.(owner);
    if (!quota && host?.maxSandboxes === undefined && host?.maxMemoryBytes === undefined) return () => {};
    if (ownerLabel !== undefined && owner !== undefined && quota) {
      const owned = this.withPending(this.live([ownerLabel, owner]), owner);
      check(quota, owned, memoryBytes, "maxSandboxes", "maxMemoryBytes", "quota");
    }
    if (host) {
      const all = this.withPending(this.live(), undefined);
      check(host, all, memoryBytes, "hostMaxSandboxes", "hostMaxMemoryBytes", "host budget");
    }
    const reservation = { owner, memoryBytes };
    this.pending.add(reservation);
    return () => this.pending.delete(reservation);
  }

  /** Adds creations in flight (of `owner`, or all) to what the records say. */
  private withPending(u: Usage, owner: string | undefined): Usage {
    const out = { ...u };
    for (const p of this.pending) {
      if (owner !== undefined && p.owner !== owner) continue;
      out.count++;
      out.memoryBytes += p.memoryBytes;
    }
    return out;
  }
}

function check(
  budget: Budget,
  used: Usage,
  memoryBytes: number,
  countLimit: "maxSandboxes" | "hostMaxSandboxes",
  memoryLimit: "maxMemoryBytes" | "hostMaxMemoryBytes",
  what: string,
): void {
  if (budget.maxSandboxes !== undefined && used.count + 1 > budget.maxSandboxes) {
    throw new LimitExceededError(
      countLimit,
      budget.maxSandboxes,
      `${what} exceeded: ${countLimit} (${budget.maxSandboxes}); ${used.count} sandboxes are live`,
    );
  }
  if (budget.maxMemoryBytes !== undefined && used.memoryBytes + memoryBytes > budget.maxMemoryBytes) {
    throw new LimitExceededError(
      memoryLimit,
      budget.maxMemoryBytes,
      `${what} exceeded: ${memoryLimit} (${budget.maxMemoryBytes}); in use ${used.memoryBytes}, requested ${memoryBytes}`,
    );
  }
}
