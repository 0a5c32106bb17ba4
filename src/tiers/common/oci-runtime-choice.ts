/**
 * Which OCI runtime build an OCI tier runs: a tier may name several (gvisor: the system's runsc
 * on the ptrace platform, and Kiln's own newer runsc on systrap); the first whose trial
 * container runs here is used, and the others' failures are kept as the reason. A sandbox's
 * runtime is recorded in its state directory, and a checkpoint's beside its image, so that a
 * sandbox is stopped, checkpointed and restored by the build that started it, never another.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { TierUnavailableError } from "../../core/errors.ts";
import type { TierName } from "../../core/types.ts";
import { which } from "./host.ts";

/** One runtime build a tier may run. */
export interface OciRuntimeCandidate {
  /** Absolute path of the binary, or its name on PATH. */
  binary: string;
  /** Global flags this build adds to the tier's (e.g. `--platform=systrap`). */
  flags: readonly string[];
  /** How doctor names it beside the version, e.g. `platform systrap`. */
  label: string;
  /** Directory under the data dir that holds this build's container records. */
  stateName: string;
}

/** A candidate found on this machine, with its version line. */
export interface ResolvedRuntime extends OciRuntimeCandidate {
  /** Absolute path of the binary. */
  path: string;
  /** First line of `<binary> --version`. */
  version: string;
}

/** What `<dir>/oci-runtime.json` holds: the build a sandbox (or a checkpoint) belongs to. */
interface RuntimeRecord {
  path: string;
  label: string;
  version: string;
}

/** The file in a sandbox's state directory and in a checkpoint directory that names the runtime build. */
export const RUNTIME_RECORD = "oci-runtime.json";

/** The candidate's absolute path, when it is installed. */
export function locate(c: OciRuntimeCandidate): string | undefined {
  if (isAbsolute(c.binary)) return existsSync(c.binary) ? c.binary : undefined;
  return which(c.binary);
}

/** Writes the record of `rt` into `dir` (a sandbox's state directory, or a checkpoint's). */
export function writeRuntimeRecord(dir: string, rt: ResolvedRuntime): void {
  const record: RuntimeRecord = { path: rt.path, label: rt.label, version: rt.version };
  writeFileSync(join(dir, RUNTIME_RECORD), `${JSON.stringify(record)}\n`);
}

/** The record in `dir`, or undefined when there is none (made before Kiln recorded it) or it is unreadable. */
export function readRuntimeRecord(dir: string): RuntimeRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(join(dir, RUNTIME_RECORD), "utf8")) as Partial<RuntimeRecord>;
    if (typeof r.path === "string" && typeof r.label === "string" && typeof r.version === "string") {
      return { path: r.path, label: r.label, version: r.version };
    }
  } catch {
    // Missing or not JSON.
  }
  return undefined;
}

/**
 * The runtime build that restores the checkpoint in `dir`: the one that took it. A record-less
 * checkpoint was taken before Kiln kept records, by `binary` on PATH (the only build then).
 * @throws TierUnavailableError when that build is not installed here any more, or is another version
 */
export function runtimeForCheckpoint(
  tier: TierName,
  dir: string,
  installed: readonly ResolvedRuntime[],
  binary: string,
): ResolvedRuntime {
  const record = readRuntimeRecord(dir);
  const match = record
    ? installed.find((r) => r.path === record.path && r.label === record.label)
    : installed.find((r) => r.binary === binary);
  const took = record ? `${record.version} (${record.label}, ${record.path})` : `the system's ${binary}`;
  if (!match) {
    throw new TierUnavailableError(tier, `the checkpoint was taken by ${took}, which is not in use here`);
  }
  if (record && match.version !== record.version) {
    throw new TierUnavailableError(
      tier,
      `the checkpoint was taken by ${took}; ${match.path} is now ${match.version}, which does not restore another version's checkpoints`,
    );
  }
  return match;
}
