/**
 * Live events for the dashboard: `GET /v1/events` is a server-sent events
 * stream of the caller's sandboxes, pushed from Kiln's in-process data:
 *
 * - `sandboxes`: the key's whole list (as `GET /v1/sandboxes` answers it),
 *   sent at once, after every change made through the API, and whenever a
 *   periodic in-process check (every {@link CHECK_MS}) finds it changed
 *   (expiry, or changes made by another process on the same data directory);
 * - `command`: a command started through the server began or ended
 *   (`{ sandboxId, pid, phase: "start" | "end", exitCode?, durationMs?, error? }`);
 * - `stats`: resource use of the key's running sandboxes
 *   (`{ [id]: { memoryBytes?, cpuMs?, diskBytes? } }`, every {@link STATS_MS});
 *   a figure the tier cannot measure is absent.
 *
 * Browsers' EventSource cannot send headers, so the dashboard reads this
 * stream with `fetch` (which can): authentication is the API's.
 */
import { EventEmitter } from "node:events";
import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { KilnError } from "../../core/errors.ts";
import type { CommandResult } from "../../core/types.ts";
import { type App, type AppEnv, addRoute, json, type ServerState } from "../context.ts";
import { OWNER_LABEL, ownedList, publicInfo } from "../ownership.ts";
import { ErrorSchema } from "../schemas.ts";

/** How often a stream re-reads the key's list in-process, in ms. */
export const CHECK_MS = 1_500;
/** How often a stream sends resource use, in ms. */
export const STATS_MS = 3_000;
/** Comment line that keeps proxies from closing an idle stream, in ms. */
const PING_MS = 15_000;

/** A command event. */
export interface CommandEvent {
  sandboxId: string;
  pid: number;
  phase: "start" | "end";
  exitCode?: number;
  durationMs?: number;
  error?: string;
}

/**
 * The server's event emitter: `changed` (key id) when a key's sandboxes
 * changed through the API, `command` (key id, CommandEvent) when a command
 * started through the server began or ended.
 */
export class EventHub extends EventEmitter {
  constructor() {
    super();
    this.setMaxListeners(0);
  }
}

const hubs = new WeakMap<ServerState, EventHub>();

/**
 * The hub of a server, created on first use; it watches every command
 * started on the server's Kiln (through the API, a terminal or the E2B API).
 */
export function eventHub(state: ServerState): EventHub {
  let hub = hubs.get(state);
  if (hub) return hub;
  const h = new EventHub();
  hub = h;
  hubs.set(state, h);
  state.kiln.watchCommands((sandboxId, handle) => {
    let owner: string | undefined;
    try {
      owner = state.kiln.record(sandboxId).metadata[OWNER_LABEL];
    } catch {
      return;
    }
    if (!owner) return;
    const key = owner;
    h.emit("command", key, { sandboxId, pid: handle.pid, phase: "start" } satisfies CommandEvent);
    const ended = (r: CommandResult | undefined, error?: string) => {
      h.emit("command", key, {
        sandboxId,
        pid: handle.pid,
        phase: "end",
        ...(r ? { exitCode: r.exitCode, durationMs: r.durationMs } : {}),
        ...(error ? { error } : {}),
      } satisfies CommandEvent);
      h.emit("changed", key);
    };
    void handle.wait().then(
      (r) => ended(r),
      (e: KilnError) => ended(e.result, e.code),
    );
  });
  return h;
}

/** Middleware: after a successful change under /v1/sandboxes, tells the key's streams. */
export function notifyChanges(state: ServerState): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    await next();
    if (c.req.method === "GET" || c.res.status >= 400) return;
    const key = c.var.key?.id;
    if (key) eventHub(state).emit("changed", key);
  };
}

const encoder = new TextEncoder();

/** Registers `GET /v1/events`. */
export function eventRoutes(app: App, state: ServerState): void {
  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/events",
      tags: ["events"],
      summary:
        "server-sent events: `sandboxes` (this key's list, on every change), `command` (starts and ends), `stats` (resource use)",
      responses: {
        200: {
          description: "text/event-stream; each event's data is JSON",
          content: { "text/event-stream": { schema: z.string() } },
        },
        default: json(ErrorSchema, "an error"),
      },
    }),
    (c) => {
      const keyId = c.var.key.id;
      const { kiln } = state;
      const hub = eventHub(state);
      let closed = false;
      let lastList = "";
      let controller!: ReadableStreamDefaultController<Uint8Array>;
      const timers: NodeJS.Timeout[] = [];
      const send = (event: string, data: unknown) => {
        if (closed) return;
        try {
          controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
        } catch {
          stop();
        }
      };
      const stop = () => {
        if (closed) return;
        closed = true;
        for (const t of timers) clearInterval(t);
        hub.off("changed", onChanged);
        hub.off("command", onCommand);
        try {
          controller.close();
        } catch {
          // already closed by the client
        }
      };
      const sendList = async (force = false) => {
        if (closed) return;
        if (state.draining) return stop();
        try {
          const list = (await ownedList(kiln, keyId)).map(publicInfo);
          const text = JSON.stringify(list);
          if (force || text !== lastList) {
            lastList = text;
            send("sandboxes", list);
          }
        } catch {
          // Kiln is closing; the stream ends with the server.
        }
      };
      const sendStats = async () => {
        if (closed || state.draining) return;
        const out: Record<string, unknown> = {};
        try {
          for (const info of await ownedList(kiln, keyId)) {
            if (info.state !== "running") continue;
            try {
              const sb = await kiln.connect(info.id);
              out[info.id] = await sb.stats();
            } catch {
              out[info.id] = {};
            }
          }
        } catch {
          return;
        }
        send("stats", out);
      };
      const onChanged = (k: string) => {
        if (k === keyId) void sendList();
      };
      const onCommand = (k: string, e: CommandEvent) => {
        if (k === keyId) send("command", e);
      };
      const body = new ReadableStream<Uint8Array>({
        start: (ctl) => {
          controller = ctl;
          controller.enqueue(encoder.encode("retry: 2000\n\n"));
          hub.on("changed", onChanged);
          hub.on("command", onCommand);
          void sendList(true).then(sendStats);
          timers.push(setInterval(() => void sendList(), CHECK_MS));
          timers.push(setInterval(() => void sendStats(), STATS_MS));
          timers.push(
            setInterval(() => {
              if (!closed) controller.enqueue(encoder.encode(": ping\n\n"));
            }, PING_MS),
          );
          for (const t of timers) t.unref();
        },
        cancel: stop,
      });
      c.req.raw.signal.addEventListener("abort", stop, { once: true });
      return new Response(body, {
        headers: {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache, no-transform",
          "x-accel-buffering": "no",
        },
      });
    },
  );
}
