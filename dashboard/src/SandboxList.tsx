/** The key's sandboxes, live: tier, state, template, age, resource use, running commands. */
import type { JSX } from "preact";
import type { SandboxInfo, Stats } from "./api.ts";
import { age, bytes, cpu, NA } from "./format.ts";

export interface ListProps {
  sandboxes: SandboxInfo[] | null;
  stats: Record<string, Stats>;
  running: Record<string, number>;
  now: number;
  onOpen(id: string): void;
  onKill(id: string): void;
}

function Measure({ text }: { text: string }): JSX.Element | string {
  return text === NA ? (
    <span class="muted" title="this tier cannot measure it">
      {NA}
    </span>
  ) : (
    text
  );
}

export function SandboxList({ sandboxes, stats, running, now, onOpen, onKill }: ListProps) {
  return (
    <section class="card" aria-labelledby="list-title">
      <h2 id="list-title">
        Sandboxes <span class="count">{sandboxes ? sandboxes.length : ""}</span>
      </h2>
      <div class="table-scroll">
        <table class="grid" aria-describedby="list-title">
          <thead>
            <tr>
              <th scope="col">Sandbox</th>
              <th scope="col">Tier</th>
              <th scope="col">State</th>
              <th scope="col">Template</th>
              <th scope="col" class="num">
                Age
              </th>
              <th scope="col" class="num">
                Memory
              </th>
              <th scope="col" class="num">
                CPU
              </th>
              <th scope="col" class="num">
                Workspace
              </th>
              <th scope="col">Activity</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {sandboxes === null && (
              <tr>
                <td colSpan={10} class="muted">
                  Loading…
                </td>
              </tr>
            )}
            {sandboxes?.length === 0 && (
              <tr>
                <td colSpan={10} class="muted">
                  No sandboxes yet. Create one above.
                </td>
              </tr>
            )}
            {sandboxes?.map((s) => {
              const st = stats[s.id];
              const n = running[s.id] ?? 0;
              return (
                <tr key={s.id} data-testid={`sandbox-${s.id}`}>
                  <td>
                    <button type="button" class="link mono" onClick={() => onOpen(s.id)}>
                      {s.id}
                    </button>
                  </td>
                  <td>
                    <span class="badge tier">{s.tier}</span>
                  </td>
                  <td>
                    <span class={`badge state-${s.state}`}>{s.state}</span>
                  </td>
                  <td>{s.template}</td>
                  <td class="num" title={new Date(s.createdAt).toLocaleString()}>
                    {age(s.createdAt, now)}
                  </td>
                  <td class="num">
                    <Measure text={st ? bytes(st.memoryBytes) : "…"} />
                  </td>
                  <td class="num">
                    <Measure text={st ? cpu(st.cpuMs) : "…"} />
                  </td>
                  <td class="num">
                    <Measure text={st ? bytes(st.diskBytes) : "…"} />
                  </td>
                  <td>
                    {n > 0 ? (
                      <span class="badge running-cmd">
                        {n} command{n === 1 ? "" : "s"} running
                      </span>
                    ) : (
                      <span class="muted">idle</span>
                    )}
                  </td>
                  <td class="actions">
                    <button type="button" onClick={() => onOpen(s.id)} aria-label={`Open ${s.id}`}>
                      Open
                    </button>
                    <button
                      type="button"
                      class="danger"
                      onClick={() => onKill(s.id)}
                      aria-label={`Kill ${s.id}`}
                    >
                      Kill
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}
