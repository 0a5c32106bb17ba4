/**
 * Sandbox state: snapshots, pause and resume, the one state machine of every
 * tier, with the crash rule of each step. A tier supplies only `saveFiles` /
 * `createFrom` (files) and, where it keeps memory, `suspend` / `resume`.
 *
 *   running --pause--> [pausing] --> paused --resume (or any call)--> [resuming] --> running
 *
 * Every step is recorded in kiln.db (`pauses.phase`) before it touches the
 * disk, so that the next Kiln on the data directory, finding the process that
 * began a step dead, rolls it back: `pausing` back to running (the partial
 * image removed; the processes ended with the process that held them), and
 * `resuming` back to paused (the image is removed only once a resume has
 * succeeded and the record says `running`). Images are written to a
 * temporary directory, fsynced and renamed (state-files.ts), mode 0600, and
 * checked against the digest in kiln.db before a tier reads them.
 */
import { existsSync, readdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Backend, Instance, InstanceSpec, InstanceStats } from "./backend.ts";
import { ConflictError, InvalidArgumentError, KilnError, NotFoundError, throwIfAborted } from "./errors.ts";
import { newSandboxId } from "./ids.ts";
import { OWN_PROCESS_TOKEN, processAlive } from "./process-token.ts";
import type { RecordStore } from "./record-store.ts";
import type { Sandbox } from "./sandbox.ts";
import {
  beginStateDir,
  commitStateDir,
  digestStateDir,
  parsePartial,
  placeStateDir,
  removeStateDir,
  sealStateDir,
  stateDirBytes,
} from "./state-files.ts";
import type { PauseRecord, SnapshotRecord, StateStore } from "./state-store.ts";
import type { SandboxInfo, SnapshotInfo } from "./types.ts";

/** Snapshot ids: `snap_` and 20 characters of [a-z0-9]. */
const SNAPSHOT_ID = /^snap_[a-z0-9]{20}$/;

/** The digest of fork's own snapshots: never equal to a computed one, so never restorable by id. */
const HIDDEN_DIGEST = "";

/** The pause image's folder in a sandbox's state directory. */
const PAUSE_DIR = "pause";

/** Checks the shape of a snapshot id (it is used in paths). @throws InvalidArgumentError */
export function checkSnapshotId(id: unknown): string {
  if (typeof id !== "string" || !SNAPSHOT_ID.test(id))
    throw new InvalidArgumentError(`not a snapshot id: ${JSON.stringify(id)}`);
  return id;
}

/** What the state machine needs from the Kiln that owns it. */
export interface StateHost {
  readonly dataDir: string;
  readonly records: RecordStore;
  readonly store: StateStore;
  backend(tier: SandboxInfo["tier"]): Promise<Backend>;
  spec(info: SandboxInfo): InstanceSpec;
  /** The record, whatever its state. @throws NotFoundError */
  record(id: string): SandboxInfo;
  /** The Sandbox object of this process, if any. */
  live(id: string): Sandbox | undefined;
  /** Forgets the cached record of `id`. */
  invalidate(id: string): void;
  /**
   * Checks that the owner in `metadata` has room for `addBytes` more of state images (0: that it is
   * not over already). @throws LimitExceededError (`maxDiskBytes`)
   */
  checkDisk(metadata: Record<string, string>, addBytes: number): void;
}

/** Snapshot, pause and resume over one data directory. */
export class SandboxStates {
  private readonly host: StateHost;
  /** Resumes under way in this process, so that concurrent calls on a paused sandbox resume it once. */
  private readonly resuming = new Map<string, Promise<Instance | undefined>>();
  private readonly pausing = new Map<string, Promise<void>>();

  constructor(host: StateHost) {
    this.host = host;
  }

  /** The directory of a snapshot. */
  snapshotDir(id: string): string {
    return join(this.host.dataDir, "snapshots", id);
  }

  private pauseDir(info: SandboxInfo): string {
    return join(this.host.spec(info).stateDir, PAUSE_DIR);
  }

  /**
   * Saves a sandbox's files as a snapshot.
   *
   * The record goes into kiln.db before the directory is put in place under
   * its final name: a crash between the two leaves a record without its
   * directory (and the partial directory of a dead process), which the next
   * Kiln deletes ({@link recover}); the other order would leave a complete
   * directory that nothing names and nothing could tell from one being made.
   * @throws NotFoundError, InvalidArgumentError (name), LimitExceededError (`maxDiskBytes`)
   */
  async snapshot(id: string, options: { name?: string } = {}): Promise<SnapshotRecord> {
    const name = options.name ?? null;
    if (name !== null && (typeof name !== "string" || name.length < 1 || name.length > 128))
      throw new InvalidArgumentError("snapshot name must be a string of 1 to 128 characters");
    const info = this.host.record(id);
    this.host.checkDisk(info.metadata, 0);
    const backend = await this.host.backend(info.tier);
    const snapId = `snap_${newSandboxId().slice(3)}`;
    const dir = this.snapshotDir(snapId);
    const tmp = await beginStateDir(dir, OWN_PROCESS_TOKEN);
    const { store } = this.host;
    try {
      await backend.saveFiles(this.host.spec(info), tmp);
      const digest = await digestStateDir(tmp);
      const sizeBytes = await sealStateDir(tmp);
      const rec = snapshotRecord(snapId, info, sizeBytes, digest, name);
      // Checked and recorded in one step: a second snapshot of this process counts this one.
      this.host.checkDisk(info.metadata, sizeBytes);
      store.insertSnapshot(rec);
      try {
        await placeStateDir(tmp, dir);
      } catch (e) {
        store.deleteSnapshot(snapId);
        throw e;
      }
      return rec;
    } catch (e) {
      await removeStateDir(dir);
      throw e;
    }
  }

  /**
   * Saves a sandbox's files for a fork: into a directory of this process
   * under a temporary name (so that whatever a crash leaves of it, the next
   * Kiln removes), never recorded, never listed, read at once by the process
   * that wrote it and removed by it with {@link removeForkSource}.
   * @throws NotFoundError, LimitExceededError (`maxDiskBytes`)
   */
  async forkSource(id: string): Promise<{ rec: SnapshotRecord; dir: string }> {
    const info = this.host.record(id);
    this.host.checkDisk(info.metadata, 0);
    const backend = await this.host.backend(info.tier);
    const snapId = `snap_${newSandboxId().slice(3)}`;
    const dir = await beginStateDir(this.snapshotDir(snapId), OWN_PROCESS_TOKEN);
    try {
      await backend.saveFiles(this.host.spec(info), dir);
      // Never restored by id (an empty digest matches nothing): hashing it would cost a read of every byte for nothing.
      const rec = snapshotRecord(snapId, info, await stateDirBytes(dir), HIDDEN_DIGEST, null);
      return { rec: { ...rec, hidden: true }, dir };
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Removes what {@link forkSource} wrote. */
  async removeForkSource(dir: string): Promise<void> {
    await rm(dir, { recursive: true, force: true });
  }

  /** A snapshot's record. @throws InvalidArgumentError, NotFoundError */
  snapshotRecord(id: string): SnapshotRecord {
    checkSnapshotId(id);
    const r = this.host.store.snapshot(id);
    if (!r || r.hidden) throw new NotFoundError(`no snapshot ${id}`);
    return r;
  }

  /**
   * Checks a snapshot's directory against its digest.
   * @throws KilnError `internal` when it differs (the image was changed or damaged outside Kiln)
   */
  async verifySnapshot(rec: SnapshotRecord): Promise<string> {
    const dir = this.snapshotDir(rec.id);
    let digest: string;
    try {
      digest = await digestStateDir(dir);
    } catch (e) {
      throw new KilnError("internal", `snapshot ${rec.id} cannot be read: ${(e as Error).message}`, {
        cause: e,
      });
    }
    if (digest !== rec.digest)
      throw new KilnError("internal", `snapshot ${rec.id} does not match its digest: refusing to restore it`);
    return dir;
  }

  /** Deletes a snapshot. @throws NotFoundError */
  async removeSnapshot(id: string): Promise<void> {
    this.snapshotRecord(id);
    if (!this.host.store.deleteSnapshot(id)) throw new NotFoundError(`no snapshot ${id}`);
    await removeStateDir(this.snapshotDir(id));
  }

  /** Public snapshot records, oldest first. */
  list(): SnapshotInfo[] {
    return this.host.store.snapshots().map(publicSnapshot);
  }

  /**
   * Pauses a sandbox: memory and processes to disk where the tier keeps them
   * (and an instance runs in this process), else files only. Idempotent.
   * @throws NotFoundError, ConflictError (another process is pausing or resuming it)
   */
  async pause(id: string, signal?: AbortSignal, keepMemory = true, stillIdle?: () => boolean): Promise<void> {
    throwIfAborted(signal);
    const running = this.pausing.get(id);
    if (running) return running;
    await this.resuming.get(id)?.catch(() => {});
    const p = this.pauseNow(id, keepMemory, stillIdle).finally(() => this.pausing.delete(id));
    this.pausing.set(id, p);
    return p;
  }

  private async pauseNow(id: string, keepMemory: boolean, stillIdle?: () => boolean): Promise<void> {
    const info = this.host.record(id);
    if (info.state === "paused") return;
    const backend = await this.host.backend(info.tier);
    const sb = this.host.live(id);
    const started = sb?.started ? await sb.started.catch(() => undefined) : undefined;
    const memory =
      keepMemory && started !== undefined && backend.capabilities.pause === "memory" && !!backend.suspend;
    if (memory) {
      // A memory image is about the size of the memory in use: the owner's quota must have room for
      // it before the runtime writes it (a checkpoint cannot be taken back).
      const stats: InstanceStats = await started.stats().catch(() => ({}));
      this.host.checkDisk(info.metadata, stats.memoryBytes ?? 0);
    }
    // A hibernation gives way to any call that came in meanwhile (checked with no await before the release).
    if (stillIdle && !stillIdle()) return;
    const { store } = this.host;
    if (!store.beginPause(id, memory ? "memory" : "files", OWN_PROCESS_TOKEN))
      throw new ConflictError(`sandbox ${id} is being paused or resumed`);
    const spec = this.host.spec(info);
    const dir = this.pauseDir(info);
    try {
      let digest: string | null = null;
      let sizeBytes = 0;
      if (memory) {
        const inst = await sb!.release(true);
        const tmp = await beginStateDir(dir, OWN_PROCESS_TOKEN);
        try {
          await backend.suspend!(spec, inst!, tmp);
        } catch (e) {
          // Not paused: the instance carries on (or is relaunched by the next call if the runtime died).
          if (inst) sb!.swapInstance(Promise.resolve(inst));
          throw e;
        }
        digest = await digestStateDir(tmp);
        sizeBytes = await commitStateDir(tmp, dir);
      } else {
        const inst = await sb?.release(false);
        await inst?.close();
      }
      store.transaction(() => {
        store.setPhase(id, "pausing", "paused", digest, sizeBytes);
        this.host.records.setState(id, "paused");
      });
    } catch (e) {
      await removeStateDir(dir);
      store.deletePause(id);
      throw e;
    } finally {
      this.host.invalidate(id);
    }
  }

  /**
   * Resumes a paused sandbox; returns the restored instance when its memory
   * was kept (else the caller opens the sandbox as usual). Concurrent calls
   * share one resume.
   * @throws ConflictError (another process is resuming it), KilnError `internal` (image digest)
   */
  resumeInstance(id: string): Promise<Instance | undefined> {
    let p = this.resuming.get(id);
    if (!p) {
      p = (async () => {
        await this.pausing.get(id)?.catch(() => {});
        return this.resumeNow(id);
      })().finally(() => this.resuming.delete(id));
      this.resuming.set(id, p);
    }
    return p;
  }

  private async resumeNow(id: string): Promise<Instance | undefined> {
    const info = this.host.record(id);
    if (info.state !== "paused") return undefined;
    const { store } = this.host;
    const p = store.pause(id);
    if (!p || !store.setPhase(id, "paused", "resuming", undefined, undefined, OWN_PROCESS_TOKEN))
      throw new ConflictError(`sandbox ${id} is being paused or resumed`);
    const dir = this.pauseDir(info);
    let instance: Instance | undefined;
    try {
      if (p.kind === "memory") {
        const backend = await this.host.backend(info.tier);
        if (!backend.resume) throw new KilnError("internal", `tier ${info.tier} cannot resume memory`);
        if ((await digestStateDir(dir)) !== p.digest)
          throw new KilnError("internal", `the pause image of ${id} does not match its digest`);
        instance = await backend.resume(this.host.spec(info), dir);
      }
      store.transaction(() => {
        this.host.records.setState(id, "running");
        store.deletePause(id);
      });
    } catch (e) {
      await instance?.close().catch(() => {});
      store.setPhase(id, "resuming", "paused");
      this.host.invalidate(id);
      throw e;
    }
    this.host.invalidate(id);
    await removeStateDir(dir);
    return instance;
  }

  /** Resolves once a pause of `id` under way in this process has ended (whatever its outcome). */
  async settled(id: string): Promise<void> {
    await this.pausing.get(id)?.catch(() => {});
  }

  /** Forgets the pause and settings of a sandbox being killed. */
  forget(id: string): void {
    this.host.store.forgetSandbox(id);
  }

  /**
   * After a crash: rolls back the pauses and resumes whose process is gone,
   * and removes the partial images dead processes left.
   */
  async recover(): Promise<void> {
    const { store } = this.host;
    for (const p of store.pauses()) {
      if (p.phase === "paused" || processAlive(p.owner)) continue;
      const info = this.host.records.get(p.id);
      if (!info) {
        store.deletePause(p.id);
        continue;
      }
      if (p.phase === "pausing") {
        await removeStateDir(this.pauseDir(info));
        store.deletePause(p.id);
        if (info.state === "paused") this.host.records.setState(p.id, "running");
      } else if (info.state === "running") {
        // The resume had completed but for its clean-up.
        store.deletePause(p.id);
        await removeStateDir(this.pauseDir(info));
      } else {
        store.setPhase(p.id, "resuming", "paused");
      }
      this.host.invalidate(p.id);
    }
    await this.recoverSnapshots();
  }

  /**
   * Leaves in `snapshots/` exactly the listed snapshots and what live
   * processes are writing: removes the partial directories of dead processes,
   * the directories no record names (a removal cut short), the records whose
   * directory was never put in place (a snapshot cut short between its record
   * and its rename), and fork's own snapshots that earlier versions of Kiln
   * recorded (`hidden`; never restorable).
   */
  private async recoverSnapshots(): Promise<void> {
    const { store } = this.host;
    const snaps = join(this.host.dataDir, "snapshots");
    const livePartial = (id: string) =>
      (existsSync(snaps) ? readdirSync(snaps) : []).some((n) => {
        const p = parsePartial(n);
        return p?.final === id && processAlive(p.owner);
      });
    for (const name of existsSync(snaps) ? readdirSync(snaps) : []) {
      const partial = parsePartial(name);
      if (partial && !processAlive(partial.owner))
        await rm(join(snaps, name), { recursive: true, force: true });
    }
    for (const rec of store.snapshots(true)) {
      if (rec.hidden) {
        store.deleteSnapshot(rec.id);
        await removeStateDir(this.snapshotDir(rec.id));
        continue;
      }
      // The partial first, then the final name: a live process renames the one into the other.
      if (existsSync(this.snapshotDir(rec.id))) continue;
      if (!livePartial(rec.id) && !existsSync(this.snapshotDir(rec.id))) store.deleteSnapshot(rec.id);
    }
    for (const name of existsSync(snaps) ? readdirSync(snaps) : []) {
      if (parsePartial(name) || !SNAPSHOT_ID.test(name) || store.snapshot(name)) continue;
      await rm(join(snaps, name), { recursive: true, force: true });
    }
  }
}

/** The record of a snapshot of sandbox `info`'s files. */
function snapshotRecord(
  id: string,
  info: SandboxInfo,
  sizeBytes: number,
  digest: string,
  name: string | null,
): SnapshotRecord {
  return {
    id,
    name,
    tier: info.tier,
    template: info.template,
    sandboxId: info.id,
    kind: "files",
    sizeBytes,
    createdAt: new Date().toISOString(),
    metadata: { ...info.metadata },
    limits: info.limits,
    env: info.env,
    cwd: info.cwd,
    digest,
    hidden: false,
  };
}

/** A snapshot record as callers see it. */
export function publicSnapshot(r: SnapshotRecord): SnapshotInfo {
  return {
    id: r.id,
    name: r.name,
    tier: r.tier,
    template: r.template,
    sandboxId: r.sandboxId,
    kind: r.kind,
    sizeBytes: r.sizeBytes,
    createdAt: r.createdAt,
    metadata: { ...r.metadata },
  };
}

export type { PauseRecord };
