/** A sandbox's state actions: pause or resume, snapshot, fork; each one's outcome announced. */
import { useState } from "preact/hooks";
import { forkSandbox, pauseSandbox, resumeSandbox, type SandboxInfo, snapshotSandbox } from "./api.ts";
import { bytes } from "./format.ts";

export interface StateActionsProps {
  info: SandboxInfo;
  /** A sandbox's record changed (paused, resumed) or new ones exist (forks). */
  onChanged(infos: SandboxInfo[]): void;
  onOpen(id: string): void;
}

type Outcome =
  | { kind: "snapshot"; id: string; sizeBytes: number }
  | { kind: "fork"; ids: string[] }
  | { kind: "error"; message: string };

export function StateActions({ info, onChanged, onOpen }: StateActionsProps) {
  const [busy, setBusy] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const run = async (what: string, f: () => Promise<Outcome | null>) => {
    setBusy(what);
    setOutcome(null);
    try {
      setOutcome(await f());
    } catch (e) {
      setOutcome({ kind: "error", message: (e as Error).message });
    } finally {
      setBusy(null);
    }
  };
  const paused = info.state === "paused";
  return (
    <fieldset class="state-actions">
      <legend class="visually-hidden">Sandbox state</legend>
      {paused ? (
        <button
          type="button"
          disabled={busy !== null}
          onClick={() =>
            void run("resume", async () => {
              onChanged([await resumeSandbox(info.id)]);
              return null;
            })
          }
        >
          {busy === "resume" ? "Resuming…" : "Resume"}
        </button>
      ) : (
        <button
          type="button"
          disabled={busy !== null}
          title="Stop it, keeping its state on disk (memory and processes too where the tier can); any call resumes it"
          onClick={() =>
            void run("pause", async () => {
              onChanged([await pauseSandbox(info.id)]);
              return null;
            })
          }
        >
          {busy === "pause" ? "Pausing…" : "Pause"}
        </button>
      )}
      <button
        type="button"
        disabled={busy !== null}
        title="Save its files as a snapshot, from which new sandboxes can start"
        onClick={() =>
          void run("snapshot", async () => {
            const s = await snapshotSandbox(info.id);
            return { kind: "snapshot", id: s.id, sizeBytes: s.sizeBytes };
          })
        }
      >
        {busy === "snapshot" ? "Saving…" : "Snapshot"}
      </button>
      <button
        type="button"
        disabled={busy !== null}
        title="A new sandbox that starts from this one's files as they are now"
        onClick={() =>
          void run("fork", async () => {
            const forks = await forkSandbox(info.id, 1);
            onChanged(forks);
            return { kind: "fork", ids: forks.map((f) => f.id) };
          })
        }
      >
        {busy === "fork" ? "Forking…" : "Fork"}
      </button>
      <p class="state-outcome" role="status" data-testid="state-outcome">
        {outcome?.kind === "snapshot" && (
          <>
            Snapshot <span class="mono">{outcome.id}</span> saved ({bytes(outcome.sizeBytes)})
          </>
        )}
        {outcome?.kind === "fork" &&
          outcome.ids.map((id) => (
            <span key={id}>
              Forked:{" "}
              <button type="button" class="link mono" onClick={() => onOpen(id)}>
                {id}
              </button>
            </span>
          ))}
        {outcome?.kind === "error" && <span class="error-text">{outcome.message}</span>}
      </p>
    </fieldset>
  );
}
