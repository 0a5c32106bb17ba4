/** The dashboard: login, the live sandbox list, and one sandbox's terminal, files and audit log. */
import { useCallback, useEffect, useState } from "preact/hooks";
import {
  clearKey,
  getKey,
  killSandbox,
  type SandboxInfo,
  type Stats,
  setKey,
  setUnauthenticatedHandler,
} from "./api.ts";
import { CreateForm } from "./CreateForm.tsx";
import { type LiveMode, startLive } from "./events.ts";
import { Login } from "./Login.tsx";
import { SandboxList } from "./SandboxList.tsx";
import { SandboxView, type Tab } from "./SandboxView.tsx";

type Route = { view: "list" } | { view: "sandbox"; id: string; tab: Tab };

function parseRoute(hash: string): Route {
  const m = /^#\/sandboxes\/([^/]+)(?:\/(terminal|notebook|files|logs|network))?$/.exec(hash);
  return m
    ? { view: "sandbox", id: decodeURIComponent(m[1]!), tab: (m[2] as Tab) ?? "terminal" }
    : { view: "list" };
}

function go(route: Route): void {
  location.hash = route.view === "list" ? "#/" : `#/sandboxes/${encodeURIComponent(route.id)}/${route.tab}`;
}

export function App() {
  const [key, setKeyState] = useState(getKey());
  const [notice, setNotice] = useState("");
  const [route, setRoute] = useState(parseRoute(location.hash));
  const [sandboxes, setSandboxes] = useState<SandboxInfo[] | null>(null);
  const [stats, setStats] = useState<Record<string, Stats>>({});
  const [running, setRunning] = useState<Record<string, number>>({});
  const [logVersion, setLogVersion] = useState(0);
  const [mode, setMode] = useState<LiveMode>("connecting");
  const [now, setNow] = useState(Date.now());
  const [error, setError] = useState("");

  const logout = useCallback((why = "") => {
    clearKey();
    setKeyState(null);
    setSandboxes(null);
    setNotice(why);
  }, []);

  useEffect(() => {
    setUnauthenticatedHandler(() => logout("Your key was refused; log in again."));
    const onHash = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", onHash);
    const tick = setInterval(() => setNow(Date.now()), 5000);
    return () => {
      removeEventListener("hashchange", onHash);
      clearInterval(tick);
    };
  }, [logout]);

  useEffect(() => {
    if (!key) return;
    return startLive({
      sandboxes: setSandboxes,
      stats: (s) => setStats((old) => ({ ...old, ...s })),
      command: (e) => {
        setRunning((r) => ({
          ...r,
          [e.sandboxId]: Math.max(0, (r[e.sandboxId] ?? 0) + (e.phase === "start" ? 1 : -1)),
        }));
        setLogVersion((v) => v + 1);
      },
      mode: setMode,
      unauthenticated: () => logout("Your key was refused; log in again."),
    });
  }, [key, logout]);

  useEffect(() => {
    document.title = route.view === "sandbox" ? `${route.id} · Kiln` : "Kiln dashboard";
  }, [route]);

  if (!key)
    return (
      <Login
        notice={notice}
        onLogin={(k) => {
          setKey(k);
          setNotice("");
          setKeyState(k);
        }}
      />
    );

  // A record the user changed here (pause, resume) or made (fork), before the live list says so.
  const merge = (infos: SandboxInfo[]) =>
    setSandboxes((l) => {
      const out = [...(l ?? [])];
      for (const s of infos) {
        const i = out.findIndex((x) => x.id === s.id);
        if (i >= 0) out[i] = s;
        else out.push(s);
      }
      return out;
    });

  const kill = async (id: string) => {
    if (!confirm(`Kill ${id}? Its workspace is deleted.`)) return;
    try {
      await killSandbox(id);
      setSandboxes((l) => l?.filter((s) => s.id !== id) ?? null);
      if (route.view === "sandbox" && route.id === id) go({ view: "list" });
    } catch (e) {
      setError((e as Error).message);
    }
  };

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <h1>
          <a href="#/">
            <span class="logo" aria-hidden="true">
              ▲
            </span>{" "}
            Kiln
          </a>
        </h1>
        <span class={`live live-${mode}`} role="status" title="How the list is kept up to date">
          {mode === "live" ? "● Live" : mode === "polling" ? "● Polling" : "○ Connecting"}
        </span>
        <button type="button" onClick={() => logout()}>
          Log out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {error && (
          <p class="error" role="alert">
            {error}{" "}
            <button type="button" class="link" onClick={() => setError("")}>
              Dismiss
            </button>
          </p>
        )}
        {route.view === "list" ? (
          <>
            <CreateForm
              onCreated={(s) => {
                setSandboxes((l) => (l?.some((x) => x.id === s.id) ? l : [...(l ?? []), s]));
                go({ view: "sandbox", id: s.id, tab: "terminal" });
              }}
            />
            <SandboxList
              sandboxes={sandboxes}
              stats={stats}
              running={running}
              now={now}
              onOpen={(id) => go({ view: "sandbox", id, tab: "terminal" })}
              onKill={(id) => void kill(id)}
            />
          </>
        ) : (
          <SandboxView
            id={route.id}
            info={sandboxes?.find((s) => s.id === route.id)}
            loading={sandboxes === null}
            stats={stats[route.id]}
            tab={route.tab}
            logVersion={logVersion}
            now={now}
            onTab={(tab) => go({ ...route, tab })}
            onBack={() => go({ view: "list" })}
            onKill={(id) => void kill(id)}
            onChanged={merge}
            onOpen={(id) => go({ view: "sandbox", id, tab: "terminal" })}
          />
        )}
      </main>
    </>
  );
}
