/**
 * Wiring a sandbox's network namespace between the moment its runtime has made it and the moment
 * the runtime reads it (gVisor's netstack copies the namespace's interfaces when the sandbox
 * starts or is restored, once). The runtime makes the namespace itself, under the sandbox's own
 * user namespace, so the runtime can run as the root of the sandbox's host id range; Kiln, as host
 * root, moves a link into it from outside.
 *
 * The bundle gets a createRuntime hook (run by the runtime after it made the sandbox, before it
 * starts or restores it) that writes the container's state (its pid) into one FIFO and waits for a
 * line on a second; Kiln reads the pid, wires /proc/<pid>/ns/net, and answers `ok` (or `fail`,
 * which fails the hook and so the start). A hook left waiting (Kiln gone) is killed by the runtime
 * after {@link GATE_TIMEOUT_S}, which then destroys the sandbox and its namespace. The hook is the
 * same for every run of the runtime; each run opens the gate afresh.
 */
import { execFileSync } from "node:child_process";
import { closeSync, constants, mkdirSync, openSync, rmSync } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";

/** How long the runtime waits for Kiln to wire the namespace, seconds. */
export const GATE_TIMEOUT_S = 60;

/** Where the hook waits: a directory of two FIFOs. */
export interface EgressGate {
  /** The hook to put in the bundle (`createRuntimeHook` of oci-bundle.ts). */
  readonly hook: { path: string; args: string[]; timeoutS: number };
  /**
   * Waits for the runtime to reach the hook, runs `wire` with the sandbox's pid and lets the
   * runtime go on (or fails the hook when `wire` throws, rethrowing). Resolves undefined when the
   * gate is closed first.
   */
  pass<T>(wire: (pid: number) => Promise<T>): Promise<T | undefined>;
  /** Unblocks a waiting `pass` and removes the FIFOs. Idempotent. */
  close(): void;
}

/** What the hook runs: the state into the first FIFO, then one line from the second, which must be `ok`. */
const HOOK_SCRIPT = 'cat > "$1" && read -r answer < "$2" && [ "$answer" = ok ]';

/** The createRuntime hook that waits at the gate in `dir` (the same for every run of the runtime). */
export function egressGateHook(dir: string): { path: string; args: string[]; timeoutS: number } {
  return {
    path: "/bin/sh",
    args: ["sh", "-c", HOOK_SCRIPT, "sh", join(dir, "created"), join(dir, "go")],
    timeoutS: GATE_TIMEOUT_S,
  };
}

/**
 * Makes the gate's FIFOs in `dir` (created; owned by whoever owns the runtime's files, see the tier).
 * @throws Error when `mkfifo` fails
 */
export function openEgressGate(dir: string): EgressGate {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const created = join(dir, "created");
  const go = join(dir, "go");
  rmSync(created, { force: true });
  rmSync(go, { force: true });
  execFileSync("mkfifo", ["-m", "600", created, go]);
  let closed = false;
  // Opening the other end without blocking releases whichever open of ours is waiting.
  const nudge = (path: string, flags: number) => {
    try {
      closeSync(openSync(path, flags | constants.O_NONBLOCK));
    } catch {
      // Nobody waiting, or gone.
    }
  };
  return {
    hook: egressGateHook(dir),
    async pass(wire) {
      const state = await readFile(created, "utf8");
      if (closed) return undefined;
      let pid: number;
      try {
        pid = Number(JSON.parse(state).pid);
      } catch {
        pid = Number.NaN;
      }
      let answer = "ok\n";
      try {
        if (!(pid > 0)) throw new Error(`the runtime's hook gave no sandbox pid: ${state.slice(0, 200)}`);
        return await wire(pid);
      } catch (e) {
        answer = "fail\n";
        throw e;
      } finally {
        if (!closed) {
          const f = await open(go, "w");
          await f.writeFile(answer).finally(() => f.close());
        }
      }
    },
    close() {
      if (closed) return;
      closed = true;
      nudge(created, constants.O_WRONLY);
      nudge(go, constants.O_RDONLY);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
