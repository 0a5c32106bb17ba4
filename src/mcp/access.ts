/**
 * Which sandboxes a tool server may see. With an `owner`, every sandbox the
 * server creates carries metadata `kiln.owner = <owner>`, and a sandbox of any
 * other owner (or none) is reported as `not_found`, exactly like one that does
 * not exist. Metadata keys under `kiln.` are reserved: tool input cannot set
 * them, and listings do not show them.
 */
import { InvalidArgumentError, NotFoundError } from "../core/errors.ts";
import type { Kiln } from "../core/kiln.ts";
import type { Sandbox } from "../core/sandbox.ts";
import type { CreateOptions, SandboxInfo, SnapshotInfo } from "../core/types.ts";

/** The metadata key that records a sandbox's owner. */
export const OWNER_KEY = "kiln.owner";

/** The reserved metadata prefix. */
export const RESERVED_METADATA_PREFIX = "kiln.";

/** Metadata without the reserved `kiln.` keys. */
export function publicMetadata(metadata: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(metadata).filter(([k]) => !k.startsWith(RESERVED_METADATA_PREFIX)),
  );
}

/** Kiln, seen through one owner's eyes. */
export class SandboxAccess {
  readonly kiln: Kiln;
  /** The owner, or undefined for an unscoped server that sees every sandbox. */
  readonly owner: string | undefined;

  constructor(kiln: Kiln, owner?: string) {
    if (owner !== undefined && (typeof owner !== "string" || owner.length === 0)) {
      throw new InvalidArgumentError("owner must be a non-empty string");
    }
    this.kiln = kiln;
    this.owner = owner;
  }

  /** Creates a sandbox owned by this owner. @throws InvalidArgumentError for reserved metadata keys */
  async create(options: CreateOptions): Promise<Sandbox> {
    for (const k of Object.keys(options.metadata ?? {})) {
      if (k.startsWith(RESERVED_METADATA_PREFIX)) {
        throw new InvalidArgumentError(`metadata key ${k} is reserved (keys under "kiln." are Kiln's)`);
      }
    }
    const metadata = { ...(options.metadata ?? {}), ...(this.owner ? { [OWNER_KEY]: this.owner } : {}) };
    if (options.snapshot !== undefined) await this.snapshot(options.snapshot);
    return this.kiln.create({ ...options, metadata });
  }

  /** A visible snapshot (made from a sandbox of this owner). @throws NotFoundError, InvalidArgumentError */
  async snapshot(id: string): Promise<SnapshotInfo> {
    const s = await this.kiln.snapshotInfo(id);
    if (this.owner !== undefined && s.metadata[OWNER_KEY] !== this.owner)
      throw new NotFoundError(`no snapshot ${id}`);
    return s;
  }

  /** The visible snapshots. */
  async snapshots(signal?: AbortSignal): Promise<SnapshotInfo[]> {
    return this.kiln.snapshots({
      ...(this.owner ? { metadata: { [OWNER_KEY]: this.owner } } : {}),
      ...(signal ? { signal } : {}),
    });
  }

  /** True when this owner may see the sandbox with record `info`. */
  visible(info: SandboxInfo): boolean {
    return this.owner === undefined || info.metadata[OWNER_KEY] === this.owner;
  }

  /** The record of a visible sandbox. @throws NotFoundError otherwise */
  record(id: string): SandboxInfo {
    const info = this.kiln.record(id);
    if (!this.visible(info)) throw new NotFoundError(`no sandbox ${id}`);
    return info;
  }

  /** Connects to a visible sandbox. @throws NotFoundError, InvalidArgumentError (malformed id) */
  async get(id: string, signal?: AbortSignal): Promise<Sandbox> {
    this.record(id);
    return this.kiln.connect(id, signal ? { signal } : {});
  }

  /** The visible sandboxes. */
  async list(signal?: AbortSignal): Promise<SandboxInfo[]> {
    return this.kiln.list({
      ...(this.owner ? { metadata: { [OWNER_KEY]: this.owner } } : {}),
      ...(signal ? { signal } : {}),
    });
  }

  /** Kills a visible sandbox. @throws NotFoundError */
  async kill(id: string, signal?: AbortSignal): Promise<void> {
    this.record(id);
    await this.kiln.kill(id, signal ? { signal } : {});
  }
}
