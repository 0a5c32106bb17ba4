/**
 * Hibernation: a sandbox left idle for its `idleTimeoutMs` (no call on it,
 * no command of it running) is paused, its memory freed; the next call on it
 * resumes it (core's opener does, see kiln.ts). One timer per sandbox open in
 * this process, re-armed by every call.
 */

/** What hibernation needs from the Kiln that owns it. */
export interface HibernationHost {
  /** The sandbox's idle time before it is paused, ms; 0: never. */
  idleTimeoutMs(id: string): Promise<number>;
  /** True while the sandbox runs a command started through this process. */
  busy(id: string): Promise<boolean>;
  /** Pauses it (memory kept where the tier can), unless `stillIdle()` says a call came in. */
  pause(id: string, stillIdle: () => boolean): Promise<void>;
}

/** The idle timers of one Kiln. */
export class Hibernation {
  private readonly host: HibernationHost;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** When each sandbox was last called, ms since the epoch. */
  private readonly lastCall = new Map<string, number>();
  /** Sandboxes with a touch being armed, so that a burst of calls reads the settings once. */
  private readonly arming = new Set<string>();
  /** Sandboxes with no idle time (never hibernated), until {@link forget}. */
  private readonly never = new Set<string>();
  private closed = false;

  constructor(host: HibernationHost) {
    this.host = host;
  }

  /** A call on the sandbox: its idle time starts again. */
  touch(id: string): void {
    if (this.closed || this.never.has(id)) return;
    this.lastCall.set(id, Date.now());
    const t = this.timers.get(id);
    if (t) {
      t.refresh();
      return;
    }
    if (this.arming.has(id)) return;
    this.arming.add(id);
    void this.host
      .idleTimeoutMs(id)
      .then((ms) => {
        // A sandbox's idle time is fixed at its create: one that has none is not asked again.
        if (ms === 0) this.never.add(id);
        if (ms > 0 && !this.closed && !this.timers.has(id)) {
          const timer = setTimeout(() => void this.fire(id, ms), ms);
          timer.unref();
          this.timers.set(id, timer);
        }
      })
      .catch(() => {})
      .finally(() => this.arming.delete(id));
  }

  private async fire(id: string, ms: number): Promise<void> {
    const t = this.timers.get(id);
    this.timers.delete(id);
    try {
      if (await this.host.busy(id)) {
        if (t && !this.closed) {
          this.timers.set(id, t);
          t.refresh();
        }
        return;
      }
      const firedAt = Date.now();
      const last = this.lastCall.get(id) ?? 0;
      await this.host.pause(id, () => (this.lastCall.get(id) ?? 0) === last && firedAt - last >= ms - 50);
    } catch {
      // Killed meanwhile, or the pause failed: the sandbox runs on, and its next call re-arms it.
    }
  }

  /** Stops the sandbox's timer (it was paused, killed or closed). */
  forget(id: string): void {
    this.never.delete(id);
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
    this.lastCall.delete(id);
  }

  /** Stops every timer. */
  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
