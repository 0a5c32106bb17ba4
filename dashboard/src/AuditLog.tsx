/** The sandbox's audit log: every command, its exit code and duration. */
import { useEffect, useState } from "preact/hooks";
import { type AuditEntry, getLogs } from "./api.ts";
import { duration, time } from "./format.ts";

/** A terminal (or `kiln shell`) line is wrapped to save cwd and env; show the line as typed. */
const WRAPPED =
  /^\[ -f (\/tmp\/\.kiln-(?:term|shell)-[0-9a-f]+) \] && source \1 2>\/dev\/null\n([\s\S]*)\n__kiln_rc=\$\?\n[\s\S]*$/;

export function displayCommand(command: string): { text: string; terminal: boolean } {
  const m = WRAPPED.exec(command);
  return m ? { text: m[2]!, terminal: true } : { text: command, terminal: false };
}

export function AuditLog({ sandboxId, version }: { sandboxId: string; version: number }) {
  const [entries, setEntries] = useState<AuditEntry[] | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    getLogs(sandboxId).then(
      (l) => {
        if (!live) return;
        setEntries(l.reverse());
        setError("");
      },
      (e: Error) => {
        if (live) setError(e.message);
      },
    );
    return () => {
      live = false;
    };
  }, [sandboxId, version]);
  return (
    <section aria-label="Audit log">
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <table class="grid" aria-label="Commands, newest first">
        <thead>
          <tr>
            <th scope="col">Started</th>
            <th scope="col">Command</th>
            <th scope="col">Directory</th>
            <th scope="col" class="num">
              Exit code
            </th>
            <th scope="col" class="num">
              Duration
            </th>
          </tr>
        </thead>
        <tbody>
          {entries?.length === 0 && (
            <tr>
              <td colSpan={5} class="muted">
                No commands yet.
              </td>
            </tr>
          )}
          {entries?.map((e) => (
            <tr key={e.id} class={`audit-${e.status}`} data-testid="audit-entry">
              <td>{time(e.startedAtMs)}</td>
              <td>
                <code class="command">{displayCommand(e.command).text}</code>
                {displayCommand(e.command).terminal && <span class="badge subtle">terminal</span>}
              </td>
              <td>
                <code>{e.cwd}</code>
              </td>
              <td class="num">
                {e.status === "pending" ? (
                  <span class="badge">running</span>
                ) : (
                  <span class={`badge ${e.exitCode === 0 ? "ok" : "bad"}`}>{e.exitCode ?? "—"}</span>
                )}
              </td>
              <td class="num">{duration(e.durationMs)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
