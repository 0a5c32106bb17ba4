/**
 * A live terminal in a sandbox: xterm.js over the terminal WebSocket
 * (docs/dashboard.md). On tiers with terminals the server runs a login shell
 * on a real pty and keystrokes go straight through; on the virtual tier it is
 * a line-mode shell with local editing.
 */
import { FitAddon } from "@xterm/addon-fit";
import { Terminal as XTerm } from "@xterm/xterm";
import { useEffect, useRef, useState } from "preact/hooks";
import { getKey } from "./api.ts";
import { LineEditor } from "./line-editor.ts";

type ServerMsg =
  | { t: "hello"; sandboxId: string; tier: string; cwd: string; mode: "pty" | "line" }
  | { t: "out" | "err"; data: string }
  | { t: "exit"; exitCode: number }
  | { t: "done"; exitCode: number; durationMs: number; cwd: string; error?: string }
  | { t: "error"; message: string };

type Status = "connecting" | "ready" | "running" | "closed";
type Mode = "pty" | "line" | undefined;

const DIM = "\x1b[2m";
const RED = "\x1b[31m";
const RESET = "\x1b[0m";

export function Terminal({ sandboxId }: { sandboxId: string }) {
  const host = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState<Status>("connecting");
  const [mode, setMode] = useState<Mode>(undefined);
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const dark = matchMedia("(prefers-color-scheme: dark)").matches;
    const term = new XTerm({
      convertEol: true,
      cursorBlink: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      lineHeight: 1.2,
      scrollback: 5000,
      theme: dark
        ? { background: "#111418", foreground: "#e6e6e6", cursor: "#f59e0b" }
        : { background: "#1b1f24", foreground: "#e8e8e8", cursor: "#f59e0b" },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    const refit = () => {
      try {
        fit.fit();
      } catch {
        // not laid out yet
      }
    };
    refit();
    const ro = new ResizeObserver(refit);
    ro.observe(el);

    let tier = "";
    let pty = false;
    let endedWithNewline = true;
    const write = (s: string) => {
      if (s) endedWithNewline = s.endsWith("\n");
      term.write(s);
    };
    const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/sandboxes/${encodeURIComponent(sandboxId)}/terminal`;
    const ws = new WebSocket(url, ["kiln.terminal", `kiln.key.${getKey() ?? ""}`]);
    const editor = new LineEditor({
      write: (s) => term.write(s),
      onLine: (line) => {
        setStatus("running");
        endedWithNewline = true;
        ws.send(JSON.stringify({ t: "run", line }));
      },
      onInterrupt: () => {
        term.write(`${DIM}^C${RESET}`);
        ws.send(JSON.stringify({ t: "interrupt" }));
      },
      onClear: () => term.clear(),
    });
    const prompt = (cwd: string) => `\x1b[1;32m${tier}\x1b[0m:\x1b[1;34m${cwd}\x1b[0m$ `;
    const data = term.onData((d) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      if (pty) ws.send(JSON.stringify({ t: "input", data: d }));
      else editor.feed(d);
    });
    const resized = term.onResize(({ cols, rows }) => {
      if (pty && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ t: "resize", cols, rows }));
    });
    ws.onmessage = (ev) => {
      let m: ServerMsg;
      try {
        m = JSON.parse(String(ev.data)) as ServerMsg;
      } catch {
        return;
      }
      if (m.t === "hello" && m.mode === "pty") {
        tier = m.tier;
        pty = true;
        // The pty sends \r\n itself; keys go to the shell as typed.
        term.options.convertEol = false;
        setMode("pty");
        setStatus("ready");
        ws.send(JSON.stringify({ t: "resize", cols: term.cols, rows: term.rows }));
      } else if (m.t === "hello") {
        tier = m.tier;
        setMode("line");
        term.write(
          `${DIM}Connected to ${m.sandboxId} (${m.tier}). Each line runs as one command; Ctrl-C stops it.${RESET}\r\n`,
        );
        setStatus("ready");
        editor.start(prompt(m.cwd));
      } else if (m.t === "out") write(m.data);
      else if (m.t === "err") {
        write(`${RED}${m.data}${RESET}`);
        endedWithNewline = m.data.endsWith("\n");
      } else if (m.t === "done") {
        if (!endedWithNewline) term.write(`${DIM}⏎${RESET}\r\n`);
        if (m.error === "interrupted") term.write(`${DIM}[interrupted]${RESET}\r\n`);
        else if (m.error) term.write(`${RED}[${m.error}]${RESET}\r\n`);
        else if (m.exitCode !== 0) term.write(`${DIM}[exit ${m.exitCode}]${RESET}\r\n`);
        setStatus("ready");
        editor.start(prompt(m.cwd));
      } else if (m.t === "exit") {
        term.write(`\r\n${DIM}[the shell exited with ${m.exitCode}]${RESET}\r\n`);
      } else if (m.t === "error") term.write(`${RED}${m.message}${RESET}\r\n`);
    };
    ws.onclose = (ev) => {
      setStatus("closed");
      term.write(`\r\n${DIM}[disconnected${ev.reason ? `: ${ev.reason}` : ""}]${RESET}\r\n`);
    };
    term.focus();
    return () => {
      data.dispose();
      resized.dispose();
      ro.disconnect();
      ws.onclose = null;
      ws.close();
      term.dispose();
    };
  }, [sandboxId, generation]);

  return (
    <section class="terminal-panel" aria-label="Terminal">
      <div class="toolbar">
        <span class={`badge status-${status}`} role="status" aria-live="polite" data-testid="terminal-status">
          {status === "connecting"
            ? "Connecting…"
            : status === "ready"
              ? mode === "pty"
                ? "Connected"
                : "Ready"
              : status === "running"
                ? "Running — Ctrl-C to stop"
                : "Disconnected"}
        </span>
        {status === "closed" && (
          <button type="button" onClick={() => setGeneration((g) => g + 1)}>
            Reconnect
          </button>
        )}
        <span class="hint" data-testid="terminal-mode">
          {mode === "pty"
            ? "A shell on a real terminal: full-screen programs, job control and Ctrl-C work."
            : mode === "line"
              ? "Line mode (this tier has no terminals): edit locally, Enter runs the line."
              : ""}
        </span>
      </div>
      <div class="xterm-host" ref={host} data-testid="terminal" />
    </section>
  );
}
