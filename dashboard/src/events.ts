/**
 * Live updates: reads GET /v1/events (server-sent events) with fetch, so the
 * API key can go in a header. When the stream cannot be opened, it falls
 * back to polling the API every 2 s, and keeps trying the stream.
 */
import { authHeaders, getStats, listSandboxes, type SandboxInfo, type Stats } from "./api.ts";

export interface CommandEvent {
  sandboxId: string;
  pid: number;
  phase: "start" | "end";
  exitCode?: number;
  durationMs?: number;
  error?: string;
}

export type LiveMode = "connecting" | "live" | "polling";

export interface LiveHandlers {
  sandboxes(list: SandboxInfo[]): void;
  stats(stats: Record<string, Stats>): void;
  command(e: CommandEvent): void;
  mode(m: LiveMode): void;
  unauthenticated(): void;
}

const POLL_MS = 2000;
const RETRY_MS = 3000;

/** Starts the live channel; returns a function that stops it. */
export function startLive(h: LiveHandlers): () => void {
  let stopped = false;
  let ac: AbortController | undefined;
  let pollTimer: ReturnType<typeof setInterval> | undefined;
  let pollTick = 0;

  const poll = async () => {
    try {
      const list = await listSandboxes();
      h.sandboxes(list);
      if (pollTick++ % 3 === 0) {
        const out: Record<string, Stats> = {};
        for (const s of list) if (s.state === "running") out[s.id] = await getStats(s.id).catch(() => ({}));
        h.stats(out);
      }
    } catch {
      // the next tick tries again
    }
  };
  const startPolling = () => {
    if (pollTimer || stopped) return;
    h.mode("polling");
    void poll();
    pollTimer = setInterval(() => void poll(), POLL_MS);
  };
  const stopPolling = () => {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = undefined;
  };

  const dispatch = (event: string, data: string) => {
    let v: unknown;
    try {
      v = JSON.parse(data);
    } catch {
      return;
    }
    if (event === "sandboxes") h.sandboxes(v as SandboxInfo[]);
    else if (event === "stats") h.stats(v as Record<string, Stats>);
    else if (event === "command") h.command(v as CommandEvent);
  };

  const connect = async () => {
    while (!stopped) {
      ac = new AbortController();
      try {
        const res = await fetch("/v1/events", {
          headers: { ...authHeaders(), accept: "text/event-stream" },
          signal: ac.signal,
        });
        if (res.status === 401) {
          h.unauthenticated();
          return;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        stopPolling();
        h.mode("live");
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i = buf.indexOf("\n\n");
          while (i >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let event = "message";
            const data: string[] = [];
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) event = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
            }
            if (data.length) dispatch(event, data.join("\n"));
            i = buf.indexOf("\n\n");
          }
        }
      } catch {
        // fall through to the fallback
      }
      if (stopped) return;
      startPolling();
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  };
  h.mode("connecting");
  void connect();
  return () => {
    stopped = true;
    ac?.abort();
    stopPolling();
  };
}
