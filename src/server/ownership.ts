/**
 * Which API key owns which sandbox. Ownership is a reserved metadata label
 * (`kiln.owner` = key id) written by the server at creation: it persists with
 * the sandbox record, survives restarts and expiry, and is invisible to
 * clients (stripped from every response; every `kiln.*` label is rejected in
 * input). A key that does not own a sandbox gets exactly the `not_found` an
 * unknown id gets.
 */
import { InvalidArgumentError, NotFoundError } from "../core/errors.ts";
import { checkSandboxId } from "../core/ids.ts";
import type { Kiln } from "../core/kiln.ts";
import type { Sandbox } from "../core/sandbox.ts";
import type { SandboxInfo, SnapshotInfo } from "../core/types.ts";
import type { VolumeInfo } from "../core/volumes.ts";

/** The reserved label holding the owning key's id. */
export const OWNER_LABEL = "kiln.owner";
const RESERVED_PREFIX = "kiln.";

/** Rejects reserved labels in client input. @throws InvalidArgumentError (`invalid_argument`) */
export function checkClientMetadata(metadata: Record<string, string> | undefined): void {
  for (const k of Object.keys(metadata ?? {})) {
    if (k.startsWith(RESERVED_PREFIX)) {
      throw new InvalidArgumentError(`metadata keys starting with "${RESERVED_PREFIX}" are reserved: ${k}`);
    }
  }
}

/** A record as clients see it: without the reserved labels. */
export function publicInfo(info: SandboxInfo): SandboxInfo {
  const metadata = Object.fromEntries(
    Object.entries(info.metadata).filter(([k]) => !k.startsWith(RESERVED_PREFIX)),
  );
  return { ...info, metadata };
}

/**
 * The record of a sandbox owned by `keyId`.
 * @throws InvalidArgumentError for a malformed id; NotFoundError when it does not exist or another key owns it
 */
export function ownedRecord(kiln: Kiln, keyId: string, id: string): SandboxInfo {
  checkSandboxId(id);
  let info: SandboxInfo;
  try {
    info = kiln.record(id);
  } catch {
    throw new NotFoundError(`no sandbox ${id}`);
  }
  if (info.metadata[OWNER_LABEL] !== keyId) throw new NotFoundError(`no sandbox ${id}`);
  return info;
}

/** Connects to a sandbox owned by `keyId`. @throws InvalidArgumentError, NotFoundError */
export async function ownedSandbox(
  kiln: Kiln,
  keyId: string,
  id: string,
  signal?: AbortSignal,
): Promise<Sandbox> {
  ownedRecord(kiln, keyId, id);
  try {
    return await kiln.connect(id, signal ? { signal } : {});
  } catch (e) {
    if ((e as { code?: string }).code === "not_found") throw new NotFoundError(`no sandbox ${id}`);
    throw e;
  }
}

/** The live sandboxes of a key. */
export async function ownedList(kiln: Kiln, keyId: string, signal?: AbortSignal): Promise<SandboxInfo[]> {
  return kiln.list({ metadata: { [OWNER_LABEL]: keyId }, ...(signal ? { signal } : {}) });
}

/** A snapshot as clients see it: without the reserved labels. */
export function publicSnapshotInfo(info: SnapshotInfo): SnapshotInfo {
  const metadata = Object.fromEntries(
    Object.entries(info.metadata).filter(([k]) => !k.startsWith(RESERVED_PREFIX)),
  );
  return { ...info, metadata };
}

/**
 * A snapshot made from a sandbox of `keyId`.
 * @throws InvalidArgumentError for a malformed id; NotFoundError when it does not exist or another key owns it
 */
export async function ownedSnapshot(kiln: Kiln, keyId: string, id: string): Promise<SnapshotInfo> {
  const s = await kiln.snapshotInfo(id);
  if (s.metadata[OWNER_LABEL] !== keyId) throw new NotFoundError(`no snapshot ${id}`);
  return s;
}

/** A volume as clients see it: without the reserved labels. */
export function publicVolumeInfo(info: VolumeInfo): VolumeInfo {
  const metadata = Object.fromEntries(
    Object.entries(info.metadata).filter(([k]) => !k.startsWith(RESERVED_PREFIX)),
  );
  return { ...info, metadata };
}

/**
 * A volume owned by `keyId`, by id or by name. @throws InvalidArgumentError; NotFoundError when
 * there is none or another key owns it
 */
export async function ownedVolume(kiln: Kiln, keyId: string, ref: string): Promise<VolumeInfo> {
  if (!/^vol_/.test(ref)) {
    const byName = (await kiln.volumes({ metadata: { [OWNER_LABEL]: keyId } })).find((v) => v.name === ref);
    if (!byName) throw new NotFoundError(`no volume ${ref}`);
    return byName;
  }
  const v = await kiln.volumeInfo(ref);
  if (v.metadata[OWNER_LABEL] !== keyId) throw new NotFoundError(`no volume ${ref}`);
  return v;
}
