/**
 * A microvm's whole state (RAM, vCPUs, devices) to a file and back, with
 * QEMU's migration. Saving: the VM is stopped, then migrated to a Unix socket
 * Kiln listens on, and Kiln writes the stream to the file (QEMU 7.2 has no
 * `file:` migration, and its seccomp sandbox forbids `exec:`, which spawns a
 * shell). Restoring: QEMU starts with the same command line plus
 * `-incoming fd:N`, N being the file, opened by Kiln and inherited; once the
 * state is loaded, `cont` lets the guest run on. The disk images are not in
 * the stream: they stay where they are, written out by QEMU before the
 * migration completes.
 */
import type { ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { Qmp } from "./qmp.ts";

/** The migration stream's file in a pause image. */
export const VM_STATE_FILE = "vm-state";

/** QEMU's command line of the saved VM, in a pause image (JSON: `{ "args": [...] }`). */
export const VM_ARGS_FILE = "vm-args.json";

/** The fd QEMU reads an incoming migration from (0-2 stdio, 3 the console, 4 QMP). */
export const INCOMING_FD = 5;

/** Migration bandwidth, bytes/s: unthrottled in practice (QEMU's default is 32 MiB/s, for live migration over a network). */
const MAX_BANDWIDTH_BYTES = 64 * 1024 * 1024 * 1024;

/** Longest Unix socket path (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 100;

/**
 * The folder of QEMU's sockets in a state directory (made by Kiln before QEMU starts): the only
 * place, beside the workspace image, that a QEMU running as the sandbox's ids may write in.
 */
export function socketDir(stateDir: string): string {
  return join(stateDir, "qemu");
}

/**
 * The QMP socket QEMU listens on in the state directory's socket folder, beside the one Kiln holds:
 * the next Kiln, after a crash, reaches an orphaned VM through it. Undefined when the path would be
 * too long.
 */
export function recoverySocket(stateDir: string): string | undefined {
  const p = join(socketDir(stateDir), "qmp.sock");
  return p.length <= MAX_SOCKET_PATH ? p : undefined;
}

/**
 * After the Kiln that ran a VM died: lets the guest end by itself, so that what it had not written
 * to its disk yet is written. Its agent saw its input end with that Kiln (it syncs and powers off),
 * but the VM may have been stopped by a pause under way: it is let run (`cont`), and QEMU is waited
 * for up to `timeoutMs`. `continuedMarker` is written first: the guest runs on past any state saved
 * of it. Resolves at once when no QEMU answers on the state directory's socket.
 */
export async function letOrphanEnd(
  stateDir: string,
  continuedMarker: string,
  timeoutMs: number,
): Promise<void> {
  // A VM of an earlier Kiln listened in the state directory itself.
  const path = [recoverySocket(stateDir), join(stateDir, "qmp.sock")].find(
    (p) => p !== undefined && p.length <= MAX_SOCKET_PATH && existsSync(p),
  );
  if (path === undefined) return;
  const stream = createConnection(path);
  stream.on("error", () => {});
  let qmp: Qmp;
  try {
    qmp = await Qmp.open(stream, 2000);
  } catch {
    stream.destroy();
    return;
  }
  writeFileSync(continuedMarker, "");
  await qmp.execute("cont").catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([qmp.closed, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
  clearTimeout(timer);
  qmp.close();
}

interface MigrateStatus {
  status: string;
  "error-desc"?: string;
}

/**
 * A private place for the migration socket: the state directory's socket folder, reached by a short
 * link to it when its path is too long, or, for a QEMU that sees the host's paths, a fresh
 * directory. `seen` is the socket folder as QEMU sees it (staged), or undefined when QEMU sees the
 * host's paths.
 */
function socketPlace(
  stateDir: string,
  seen: string | undefined,
): { path: string; uri: string; cleanup(): void } {
  const dir = socketDir(stateDir);
  const inDir = join(dir, "migrate.sock");
  const uri = `unix:${seen === undefined ? inDir : join(seen, "migrate.sock")}`;
  if (inDir.length <= MAX_SOCKET_PATH)
    return { path: inDir, uri, cleanup: () => rmSync(inDir, { force: true }) };
  const tmp = mkdtempSync(join(tmpdir(), "kiln-migrate-"));
  if (seen !== undefined) {
    // QEMU reaches the socket folder only: the socket is made there, through the link.
    symlinkSync(dir, join(tmp, "s"));
    return {
      path: join(tmp, "s", "migrate.sock"),
      uri,
      cleanup: () => {
        rmSync(inDir, { force: true });
        rmSync(tmp, { recursive: true, force: true });
      },
    };
  }
  const path = join(tmp, "s");
  return { path, uri: `unix:${path}`, cleanup: () => rmSync(tmp, { recursive: true, force: true }) };
}

/**
 * Stops the VM and writes its state to `file` (mode 0600); `seenSocketDir` is the state directory's
 * socket folder as QEMU sees it, when not at its host path (qemu-ids.ts). The VM stays stopped: the caller
 * ends QEMU, or sends `cont` when this fails.
 * @throws Error with QEMU's reason when the migration fails or does not end within `timeoutMs`
 */
export async function saveVmState(
  qmp: Qmp,
  stateDir: string,
  file: string,
  timeoutMs: number,
  seenSocketDir?: string,
): Promise<void> {
  await qmp.execute("stop");
  await qmp.execute("migrate-set-parameters", { "max-bandwidth": MAX_BANDWIDTH_BYTES });
  const place = socketPlace(stateDir, seenSocketDir);
  // A stale socket only: the place may be a fresh directory of its own, which must stay.
  rmSync(place.path, { force: true });
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(place.path, () => resolve());
    });
    // One connection only: QEMU's.
    const connected = new Promise<Socket>((resolve) =>
      server.once("connection", (c) => {
        server.close();
        resolve(c);
      }),
    );
    const written = connected.then((c) => pipeline(c, createWriteStream(file, { mode: 0o600 })));
    written.catch(() => {});
    await qmp.execute("migrate", { uri: place.uri });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await qmp.execute<MigrateStatus>("query-migrate");
      if (s.status === "completed") break;
      if (s.status === "failed" || s.status === "cancelled")
        throw new Error(`QEMU's migration ${s.status}: ${s["error-desc"] ?? "no reason given"}`);
      if (Date.now() > deadline) {
        await qmp.execute("migrate_cancel").catch(() => {});
        throw new Error(`QEMU's migration did not complete within ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await written;
  } finally {
    server.close();
    place.cleanup();
  }
}

/**
 * Waits for a QEMU started with `-incoming` to load the state, then lets the
 * guest run (`cont`). @throws Error when QEMU fails the load, exits, or takes longer than `timeoutMs`
 */
export async function finishIncoming(qmp: Qmp, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error("QEMU exited while loading the saved state");
    const s = await qmp.execute<MigrateStatus>("query-migrate");
    if (s.status === "completed") break;
    if (s.status === "failed" || s.status === "cancelled")
      throw new Error(`QEMU could not load the saved state: ${s["error-desc"] ?? s.status}`);
    if (Date.now() > deadline) throw new Error(`QEMU did not load the saved state within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  await qmp.execute("cont");
}
