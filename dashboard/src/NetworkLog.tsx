/** The sandbox's network: its egress policy, and its network audit log, refreshed live. */
import { useEffect, useState } from "preact/hooks";
import { getNetwork, getNetworkLogs, type NetworkEntry, type NetworkSettings } from "./api.ts";
import { bytes, duration, time } from "./format.ts";

/** How often the log is read again while the tab is open, ms. */
const REFRESH_MS = 2000;

export function NetworkLog({ sandboxId }: { sandboxId: string }) {
  const [policy, setPolicy] = useState<NetworkSettings | null>(null);
  const [entries, setEntries] = useState<NetworkEntry[] | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = () => {
      Promise.all([getNetwork(sandboxId), getNetworkLogs(sandboxId)]).then(
        ([p, l]) => {
          if (!live) return;
          setPolicy(p);
          setEntries(l.reverse());
          setError("");
          timer = setTimeout(load, REFRESH_MS);
        },
        (e: Error) => {
          if (!live) return;
          setError(e.message);
          timer = setTimeout(load, REFRESH_MS);
        },
      );
    };
    load();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [sandboxId]);
  const none = policy && policy.egress === "none" && policy.allow.length === 0;
  return (
    <section aria-label="Network">
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {policy && (
        <dl class="facts" data-testid="network-policy">
          <div>
            <dt>Egress</dt>
            <dd>
              {none ? "none (no network)" : policy.egress === "all" ? "all public addresses" : "allow-list"}
            </dd>
          </div>
          <div>
            <dt>Allow</dt>
            <dd class="mono">{policy.allow.join(" ") || "—"}</dd>
          </div>
          <div>
            <dt>Deny</dt>
            <dd class="mono">{policy.deny.join(" ") || "—"}</dd>
          </div>
          {policy.secrets && (
            <div>
              <dt>Secrets</dt>
              <dd class="mono">
                {Object.entries(policy.secrets).map(([name, s]) => (
                  <span key={name}>
                    ${name} → {s.hosts.join(" ")}{" "}
                  </span>
                ))}
              </dd>
            </div>
          )}
          {policy.headers && (
            <div>
              <dt>Header rules</dt>
              <dd class="mono">
                {Object.entries(policy.headers).map(([host, names]) => (
                  <span key={host}>
                    {host}: {names.join(", ")}{" "}
                  </span>
                ))}
              </dd>
            </div>
          )}
        </dl>
      )}
      <table class="grid" aria-label="Connections and requests, newest first">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Kind</th>
            <th scope="col">Destination</th>
            <th scope="col">Request</th>
            <th scope="col">Verdict</th>
            <th scope="col">Rule</th>
            <th scope="col" class="num">
              Up / down
            </th>
            <th scope="col" class="num">
              Duration
            </th>
          </tr>
        </thead>
        <tbody>
          {entries?.length === 0 && (
            <tr>
              <td colSpan={8} class="muted">
                No network activity yet.
              </td>
            </tr>
          )}
          {entries?.map((e) => (
            <tr key={e.id} data-testid="network-entry">
              <td>{time(e.atMs)}</td>
              <td>{e.kind}</td>
              <td class="mono">
                {e.host ?? e.address ?? ""}
                {e.port ? `:${e.port}` : ""}
              </td>
              <td class="mono">
                {e.method ? `${e.method} ${e.path ?? ""}` : ""}
                {e.status ? ` → ${e.status}` : ""}
              </td>
              <td>
                {e.kind === "policy" ? (
                  <span class="badge subtle">policy changed</span>
                ) : (
                  <span class={`badge ${e.allowed ? "ok" : "bad"}`}>{e.allowed ? "allowed" : "refused"}</span>
                )}
              </td>
              <td class="mono">{e.rule}</td>
              <td class="num">
                {bytes(e.bytesUp)} / {bytes(e.bytesDown)}
              </td>
              <td class="num">{duration(e.durationMs)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
