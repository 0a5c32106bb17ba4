/**
 * Commands started through the server, kept after they end (for
 * {@link RETAIN_MS}) so that a client that reattaches to a finished
 * background command still gets its result.
 */
import type { CommandHandle } from "../core/commands.ts";
import type { KilnError } from "../core/errors.ts";
import type { CommandResult } from "../core/types.ts";

/** How long a finished command's result stays available, in ms. */
export const RETAIN_MS = 10 * 60_000;

/** Output held for a background command's first subscriber, at most, in characters. */
export const HOLD_MAX = 1024 * 1024;

/** A command started through the server. */
export interface TrackedProcess {
  handle: CommandHandle;
  /** Set once it ended. */
  outcome?: { result: CommandResult; error?: KilnError };
  /** Resolves when it ended. */
  done: Promise<void>;
  /**
   * Output from the start until the first subscriber takes it (`takeHeld`):
   * a client that starts a background command and then subscribes to its
   * events sees it from the beginning (a terminal's output is not kept
   * anywhere else). At most {@link HOLD_MAX} characters.
   */
  held?: { type: "stdout" | "stderr"; data: string }[];
}

/** The output held for `p`'s first subscriber; later callers get nothing. */
export function takeHeld(p: TrackedProcess | undefined): { type: "stdout" | "stderr"; data: string }[] {
  const held = p?.held ?? [];
  if (p) p.held = undefined;
  return held;
}

/** The commands started through one server, per sandbox. */
export class ProcessRegistry {
  private readonly bySandbox = new Map<string, Map<number, TrackedProcess>>();
  /** Called for every tracked command (the dashboard's live events, src/server/dashboard/events.ts). */
  onAdd?: (sandboxId: string, p: TrackedProcess) => void;

  /** Tracks a started command; with `hold`, its output is held for the first subscriber. */
  add(sandboxId: string, handle: CommandHandle, options: { hold?: boolean } = {}): TrackedProcess {
    let m = this.bySandbox.get(sandboxId);
    if (!m) {
      m = new Map();
      this.bySandbox.set(sandboxId, m);
    }
    const table = m;
    let heldChars = 0;
    const hold = (type: "stdout" | "stderr") => (data: string) => {
      if (!p.held || heldChars + data.length > HOLD_MAX) return;
      heldChars += data.length;
      p.held.push({ type, data });
    };
    const p: TrackedProcess = {
      handle,
      ...(options.hold ? { held: [] } : {}),
      done: handle.wait(options.hold ? { onStdout: hold("stdout"), onStderr: hold("stderr") } : {}).then(
        (result) => {
          p.outcome = { result };
        },
        (e: KilnError) => {
          p.outcome = {
            result: e.result ?? { exitCode: -1, stdout: "", stderr: "", durationMs: 0 },
            error: e,
          };
        },
      ),
    };
    void p.done.then(() => {
      const t = setTimeout(() => {
        if (table.get(handle.pid) === p) table.delete(handle.pid);
        if (table.size === 0 && this.bySandbox.get(sandboxId) === table) this.bySandbox.delete(sandboxId);
      }, RETAIN_MS);
      t.unref();
    });
    table.set(handle.pid, p);
    this.onAdd?.(sandboxId, p);
    return p;
  }

  /** A tracked command, running or recently ended. */
  get(sandboxId: string, pid: number): TrackedProcess | undefined {
    return this.bySandbox.get(sandboxId)?.get(pid);
  }

  /** Forgets a sandbox's commands (it was killed). */
  forget(sandboxId: string): void {
    this.bySandbox.delete(sandboxId);
  }
}
