/**
 * The server's admission defaults (enforced by core's `Admission` on every
 * interface: REST, E2B, MCP): a host-wide budget, and the quota of a key that
 * sets none of its own. A key's quota counts the live sandboxes it owns
 * (`kiln.owner` = its id) and their summed `limits.memoryBytes`.
 */
import { totalmem } from "node:os";
import type { AdmissionOptions, Budget } from "../index.ts";
import type { KeyStore } from "./keys.ts";
import { OWNER_LABEL } from "./ownership.ts";

/** Default most live sandboxes on the host. */
export const DEFAULT_HOST_MAX_SANDBOXES = 1000;
/** Default most live sandboxes per key (a key's own `maxSandboxes` overrides it). */
export const DEFAULT_KEY_MAX_SANDBOXES = 100;

/**
 * The host's default budget: 1000 sandboxes, and memory limits summing to at
 * most twice the machine's RAM (limits are ceilings that most sandboxes never
 * reach, so some overcommit is the useful default).
 */
export function defaultHostBudget(): Required<Pick<Budget, "maxSandboxes" | "maxMemoryBytes">> {
  return { maxSandboxes: DEFAULT_HOST_MAX_SANDBOXES, maxMemoryBytes: 2 * totalmem() };
}

/** Default most bytes of snapshots and pause images per key (a key's own `maxDiskBytes` overrides it). */
export const DEFAULT_KEY_MAX_DISK_BYTES = 16 * 1024 ** 3;

/**
 * A key's default quota: 100 sandboxes, memory limits summing to at most the machine's RAM, and
 * 16 GiB of snapshots and pause (hibernation) images.
 */
export function defaultKeyQuota(): Required<Budget> {
  return {
    maxSandboxes: DEFAULT_KEY_MAX_SANDBOXES,
    maxMemoryBytes: totalmem(),
    maxDiskBytes: DEFAULT_KEY_MAX_DISK_BYTES,
  };
}

/**
 * Admission for a server: `host` over every sandbox, and each key's quota
 * (its own `maxSandboxes` / `maxMemoryBytes` / `maxDiskBytes`, else `keyDefault`).
 */
export function serverAdmission(keys: () => KeyStore, host: Budget, keyDefault: Budget): AdmissionOptions {
  return {
    host,
    ownerLabel: OWNER_LABEL,
    quotaOf: (owner) => {
      const key = keys().get(owner);
      const maxSandboxes = key?.maxSandboxes ?? keyDefault.maxSandboxes;
      const maxMemoryBytes = key?.maxMemoryBytes ?? keyDefault.maxMemoryBytes;
      const maxDiskBytes = key?.maxDiskBytes ?? keyDefault.maxDiskBytes;
      return {
        ...(maxSandboxes !== undefined ? { maxSandboxes } : {}),
        ...(maxMemoryBytes !== undefined ? { maxMemoryBytes } : {}),
        ...(maxDiskBytes !== undefined ? { maxDiskBytes } : {}),
      };
    },
  };
}
