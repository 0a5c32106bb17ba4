/**
 * The dashboard's terminal: a WebSocket at `/v1/sandboxes/{id}/terminal`.
 *
 * On a tier with terminals (capability `pty`: namespace, oci, gvisor) it is a
 * real one: a login bash on a pseudo-terminal in the sandbox, with raw
 * keystrokes in, raw terminal output out, and resizes, so full-screen
 * programs, job control, Ctrl-C and tab completion work.
 *
 * On the virtual tier (just-bash has no tty) it is a line-discipline shell:
 * the browser edits the line locally and sends it whole; each line runs as
 * one command through the sandbox's `commands.run`, with the working
 * directory and exported variables carried between lines by a state file in
 * the sandbox's /tmp (the technique of `kiln shell`).
 *
 * Authentication is the API's key: browsers cannot set headers on a
 * WebSocket, so it comes as the subprotocol `kiln.key.<key>` beside
 * `kiln.terminal` (or, from other clients, as `Authorization: Bearer`).
 *
 * Messages are JSON text frames. The server first sends
 * `{ t: "hello", sandboxId, tier, cwd, mode: "pty" | "line" }`.
 * pty mode: client `{ t: "input", data }`, `{ t: "resize", cols, rows }`;
 * server `{ t: "out", data }`, then `{ t: "exit", exitCode }` when the shell
 * ends (the socket closes after it).
 * line mode: client `{ t: "run", line }`, `{ t: "interrupt" }` (Ctrl-C: kill
 * the running command); server `{ t: "out" | "err", data }`,
 * `{ t: "done", exitCode, durationMs, cwd, error? }`.
 * Both: server `{ t: "error", message }`.
 */
import { type IncomingMessage, type Server, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import type { CommandHandle } from "../../core/commands.ts";
import { KilnError, NotFoundError, UnauthenticatedError } from "../../core/errors.ts";
import type { Sandbox } from "../../core/sandbox.ts";
import { cwdFromState, newStateFile, wrapShellLine } from "../../core/shell-state.ts";
import { presentedKey } from "../auth.ts";
import type { ServerState } from "../context.ts";
import { HTTP_STATUS, toKilnError } from "../errors.ts";
import { ownedSandbox } from "../ownership.ts";
import { MAX_UNREAD_BYTES } from "../streaming.ts";

/** The subprotocol the server speaks. */
export const TERMINAL_PROTOCOL = "kiln.terminal";
/** Prefix of the subprotocol that carries the API key. */
export const KEY_PROTOCOL_PREFIX = "kiln.key.";

const PATH = /^\/v1\/sandboxes\/([^/]+)\/terminal$/;
/** Longest line accepted, in characters. */
const MAX_LINE = 64 * 1024;

/** Refuses an upgrade with the error's code, its status from the one table (HTTP_STATUS), and the usual body. */
function reject(socket: Duplex, e: KilnError): void {
  const body = JSON.stringify({ error: { code: e.code, message: e.message } });
  const status = HTTP_STATUS[e.code];
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** A terminal session, whatever its mode. */
interface Session {
  close(): Promise<void>;
}

/** Parses a client message; undefined (after telling the client) when it is not JSON. */
function parse(ws: WebSocket, data: unknown): Record<string, unknown> | undefined {
  try {
    const m = JSON.parse(String(data));
    if (m && typeof m === "object") return m as Record<string, unknown>;
  } catch {
    // answered below
  }
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ t: "error", message: "malformed message" }));
  return undefined;
}

/**
 * Sends a message, unless the socket is closed. A browser that stops reading
 * (a tab in the background) must not make the server buffer without bound:
 * past {@link MAX_UNREAD_BYTES} unsent, the socket is closed and `onOverflow` runs.
 */
function send(ws: WebSocket, msg: Record<string, unknown>, onOverflow: () => void): void {
  if (ws.readyState !== ws.OPEN) return;
  if (ws.bufferedAmount > MAX_UNREAD_BYTES) {
    ws.close(1008, "the client stopped reading");
    onOverflow();
    return;
  }
  ws.send(JSON.stringify(msg));
}

const isSize = (v: unknown): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 4096;

/** Most bytes of keystrokes a pty session holds before the shell has taken them. */
const MAX_INPUT_BACKLOG = 1024 * 1024;

/** A real terminal: a login bash on a pty in the sandbox. */
class PtySession implements Session {
  private shell: CommandHandle | undefined;
  private closed = false;
  private readonly ws: WebSocket;
  /** The shell, once started (undefined if it could not start). */
  private readonly ready: Promise<CommandHandle | undefined>;
  /** Client messages are applied one after another, in order. */
  private chain: Promise<void> = Promise.resolve();
  private backlog = 0;

  constructor(ws: WebSocket, sb: Sandbox, tier: string, cwd: string) {
    this.ws = ws;
    this.send({ t: "hello", sandboxId: sb.id, tier, cwd, mode: "pty" });
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      const msg = parse(ws, data);
      if (!msg) return;
      const bytes = typeof msg.data === "string" ? msg.data.length : 0;
      if (this.backlog + bytes > MAX_INPUT_BACKLOG) {
        this.send({ t: "error", message: "too much input waiting for the shell; the session ends" });
        return void this.close();
      }
      this.backlog += bytes;
      this.chain = this.chain
        .then(async () => {
          const shell = await this.ready;
          if (shell) await this.handle(shell, msg);
        })
        .finally(() => {
          this.backlog -= bytes;
        });
    });
    ws.on("close", () => void this.close());
    this.ready = sb.commands
      .run("exec bash -il", {
        background: true,
        cwd,
        pty: { cols: 80, rows: 24 },
        env: { TERM: "xterm-256color", COLORTERM: "truecolor" },
        onStdout: (data) => this.send({ t: "out", data }),
      })
      .then(
        (shell) => {
          this.shell = shell;
          if (this.closed) void shell.kill().catch(() => {});
          return shell;
        },
        (e: unknown) => {
          this.send({ t: "error", message: (e as Error).message });
          void this.close();
          return undefined;
        },
      );
    void this.ready.then(async (shell) => {
      if (!shell) return;
      const r = await shell.wait().catch((e: KilnError) => e.result);
      this.send({ t: "exit", exitCode: r?.exitCode ?? -1 });
      void this.close();
    });
  }

  private async handle(shell: CommandHandle, msg: Record<string, unknown>): Promise<void> {
    try {
      if (msg.t === "input" && typeof msg.data === "string") await shell.sendStdin(msg.data);
      else if (msg.t === "resize" && isSize(msg.cols) && isSize(msg.rows))
        await shell.resize(msg.cols, msg.rows);
    } catch {
      // The shell ended meanwhile: its exit message follows.
    }
  }

  private send(msg: Record<string, unknown>): void {
    send(this.ws, msg, () => void this.close());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(1000, "the shell ended");
    await this.shell?.kill().catch(() => {});
  }
}

/** A line-discipline terminal (tiers without a pty): a sandbox, its cwd, and the command running now. */
class LineSession implements Session {
  private cwd: string;
  private running: CommandHandle | undefined;
  private readonly stateFile = newStateFile();
  private closed = false;
  private readonly ws: WebSocket;
  private readonly sb: Sandbox;

  constructor(ws: WebSocket, sb: Sandbox, tier: string, cwd: string) {
    this.ws = ws;
    this.sb = sb;
    this.cwd = cwd;
    this.send({ t: "hello", sandboxId: sb.id, tier, cwd, mode: "line" });
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      const msg = parse(ws, data);
      if (!msg) return;
      if (msg.t === "run" && typeof msg.line === "string") void this.run(msg.line);
      else if (msg.t === "interrupt") void this.running?.kill().catch(() => {});
    });
    ws.on("close", () => void this.close());
  }

  private send(msg: Record<string, unknown>): void {
    send(this.ws, msg, () => void this.close());
  }

  private async run(line: string): Promise<void> {
    if (this.running) return this.send({ t: "error", message: "a command is running" });
    if (line.length > MAX_LINE) return this.send({ t: "error", message: "the line is too long" });
    const started = Date.now();
    let handle: CommandHandle;
    try {
      handle = await this.sb.commands.run(wrapShellLine(line, this.stateFile), {
        cwd: this.cwd,
        background: true,
        onStdout: (data) => this.send({ t: "out", data }),
        onStderr: (data) => this.send({ t: "err", data }),
      });
    } catch (e) {
      const err = e as KilnError;
      return this.send({
        t: "done",
        exitCode: -1,
        durationMs: Date.now() - started,
        cwd: this.cwd,
        error: err.message,
      });
    }
    this.running = handle;
    let exitCode = -1;
    let error: string | undefined;
    try {
      const r = await handle.wait();
      exitCode = r.exitCode;
      if (r.error) error = r.error.code === "killed" ? "interrupted" : r.error.code;
    } catch (e) {
      const err = e as KilnError;
      exitCode = err.result?.exitCode ?? -1;
      error = err.message;
    }
    this.running = undefined;
    if (this.closed) return;
    try {
      const saved = await this.sb.files.read(this.stateFile);
      this.cwd = cwdFromState(saved) ?? this.cwd;
    } catch {
      // No state yet (the line exited early); the cwd stays.
    }
    this.send({
      t: "done",
      exitCode,
      durationMs: Date.now() - started,
      cwd: this.cwd,
      ...(error ? { error } : {}),
    });
  }

  /** Ends the session: kills the running command, removes the state file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(1001, "closing");
    await this.running?.kill().catch(() => {});
    await this.sb.files.remove(this.stateFile).catch(() => {});
  }
}

/**
 * Serves terminal WebSockets on `server`'s upgrade requests. Other upgrade
 * paths get 404, except those `claimed` (by the host router). Sessions end
 * when the server begins shutting down.
 */
export function attachTerminal(
  server: Server,
  state: ServerState,
  claimed: (req: IncomingMessage) => boolean = () => false,
): void {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: 1024 * 1024,
    handleProtocols: (protocols) => (protocols.has(TERMINAL_PROTOCOL) ? TERMINAL_PROTOCOL : false),
  });
  const sessions = new Set<Session>();
  const watch = setInterval(() => {
    if (state.draining) for (const s of sessions) void s.close();
  }, 200);
  watch.unref();
  server.once("close", () => clearInterval(watch));

  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (claimed(req)) return;
    void (async () => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const m = PATH.exec(url.pathname);
      if (!m) return reject(socket, new NotFoundError(`no WebSocket at ${url.pathname}`));
      if (state.draining)
        return reject(socket, new KilnError("tier_unavailable", "the server is shutting down"));
      const offered = (req.headers["sec-websocket-protocol"] ?? "").split(",").map((p) => p.trim());
      const fromProtocol = offered
        .find((p) => p.startsWith(KEY_PROTOCOL_PREFIX))
        ?.slice(KEY_PROTOCOL_PREFIX.length);
      const headers = new Headers();
      if (req.headers.authorization) headers.set("authorization", req.headers.authorization);
      const presented = fromProtocol || presentedKey(headers);
      const key = presented ? state.keys.verify(presented) : undefined;
      if (!key) return reject(socket, new UnauthenticatedError("the API key is missing, unknown or revoked"));
      let sb: Sandbox;
      try {
        sb = await ownedSandbox(state.kiln, key.id, decodeURIComponent(m[1]!));
      } catch (e) {
        return reject(socket, toKilnError(e));
      }
      const info = await sb.info();
      const pty = (await state.kiln.backend(info.tier)).capabilities.pty;
      wss.handleUpgrade(req, socket, head, (ws) => {
        const s: Session = pty
          ? new PtySession(ws, sb, info.tier, info.cwd)
          : new LineSession(ws, sb, info.tier, info.cwd);
        sessions.add(s);
        ws.on("close", () => sessions.delete(s));
      });
    })().catch((e) => reject(socket, toKilnError(e)));
  });
}
