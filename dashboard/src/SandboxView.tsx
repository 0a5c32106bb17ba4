/** One sandbox: its terminal, notebook, files, audit log and network, as tabs. */
import { useRef } from "preact/hooks";
import { AuditLog } from "./AuditLog.tsx";
import type { SandboxInfo, Stats } from "./api.ts";
import { Files } from "./Files.tsx";
import { age, bytes, cpu } from "./format.ts";
import { NetworkLog } from "./NetworkLog.tsx";
import { Notebook } from "./Notebook.tsx";
import { StateActions } from "./StateActions.tsx";
import { Terminal } from "./Terminal.tsx";
import { UsageChart } from "./UsageChart.tsx";

export type Tab = "terminal" | "notebook" | "files" | "logs" | "network";
const TABS: { id: Tab; label: string }[] = [
  { id: "terminal", label: "Terminal" },
  { id: "notebook", label: "Notebook" },
  { id: "files", label: "Files" },
  { id: "logs", label: "Audit log" },
  { id: "network", label: "Network" },
];

export interface ViewProps {
  id: string;
  info: SandboxInfo | undefined;
  /** The list has not arrived yet. */
  loading: boolean;
  stats: Stats | undefined;
  tab: Tab;
  logVersion: number;
  now: number;
  onTab(t: Tab): void;
  onBack(): void;
  onKill(id: string): void;
  /** Records changed or new (pause, resume, fork). */
  onChanged(infos: SandboxInfo[]): void;
  onOpen(id: string): void;
}

export function SandboxView({
  id,
  info,
  loading,
  stats,
  tab,
  logVersion,
  now,
  onTab,
  onBack,
  onKill,
  onChanged,
  onOpen,
}: ViewProps) {
  const tabRefs = useRef<(HTMLButtonElement | null)[]>([]);
  const onKey = (e: KeyboardEvent, i: number) => {
    let j = i;
    if (e.key === "ArrowRight") j = (i + 1) % TABS.length;
    else if (e.key === "ArrowLeft") j = (i - 1 + TABS.length) % TABS.length;
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = TABS.length - 1;
    else return;
    e.preventDefault();
    onTab(TABS[j]!.id);
    tabRefs.current[j]?.focus();
  };
  return (
    <section class="sandbox" aria-labelledby="sandbox-title">
      <div class="sandbox-head">
        <button type="button" onClick={onBack}>
          ← All sandboxes
        </button>
        <h2 id="sandbox-title" class="mono">
          {id}
        </h2>
        {info ? (
          <dl class="facts">
            <div>
              <dt>Tier</dt>
              <dd>{info.tier}</dd>
            </div>
            <div>
              <dt>State</dt>
              <dd>
                <span class={`badge state-${info.state}`} data-testid="sandbox-state">
                  {info.state}
                </span>
              </dd>
            </div>
            <div>
              <dt>Template</dt>
              <dd>{info.template}</dd>
            </div>
            <div>
              <dt>Age</dt>
              <dd>{age(info.createdAt, now)}</dd>
            </div>
            <div>
              <dt>Memory</dt>
              <dd>{stats ? bytes(stats.memoryBytes) : "…"}</dd>
            </div>
            <div>
              <dt>CPU</dt>
              <dd>{stats ? cpu(stats.cpuMs) : "…"}</dd>
            </div>
            <div>
              <dt>Workspace</dt>
              <dd>{stats ? bytes(stats.diskBytes) : "…"}</dd>
            </div>
            {info.volumes && info.volumes.length > 0 && (
              <div>
                <dt>Volumes</dt>
                <dd>
                  {info.volumes.map((v) => (
                    <span key={v.id} class="mono">
                      {v.name} → {v.path}{" "}
                    </span>
                  ))}
                </dd>
              </div>
            )}
            <div>
              <dt>Use</dt>
              <dd>
                <UsageChart stats={stats} memoryLimitBytes={info.limits.memoryBytes} />
              </dd>
            </div>
          </dl>
        ) : (
          <p class="muted">{loading ? "Loading…" : "This sandbox is gone (killed or expired)."}</p>
        )}
        {info && <StateActions info={info} onChanged={onChanged} onOpen={onOpen} />}
        {info && (
          <button type="button" class="danger" onClick={() => onKill(id)}>
            Kill sandbox
          </button>
        )}
      </div>
      {info && (
        <>
          <div role="tablist" aria-label="Sandbox views" class="tabs">
            {TABS.map((t, i) => (
              <button
                type="button"
                role="tab"
                key={t.id}
                id={`tab-${t.id}`}
                aria-selected={tab === t.id}
                aria-controls={`panel-${t.id}`}
                tabIndex={tab === t.id ? 0 : -1}
                ref={(el) => {
                  tabRefs.current[i] = el;
                }}
                onClick={() => onTab(t.id)}
                onKeyDown={(e) => onKey(e, i)}
              >
                {t.label}
              </button>
            ))}
          </div>
          <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} class="panel">
            {tab === "terminal" && <Terminal sandboxId={id} />}
            {tab === "notebook" && <Notebook sandboxId={id} />}
            {tab === "files" && <Files sandboxId={id} />}
            {tab === "logs" && <AuditLog sandboxId={id} version={logVersion} />}
            {tab === "network" && <NetworkLog sandboxId={id} />}
          </div>
        </>
      )}
    </section>
  );
}
