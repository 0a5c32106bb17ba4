/**
 * Commands and code: foreground runs stream NDJSON events (`start`, `stdout`,
 * `stderr`, `exit`); background runs return the pid, and
 * `GET .../commands/{pid}/events` reattaches to one (live output from then
 * on, then `exit` with the full result).
 */
import { createRoute } from "@hono/zod-openapi";
import { CellTimeoutError } from "../../core/code-contexts.ts";
import type { CommandHandle } from "../../core/commands.ts";
import { InvalidArgumentError, type KilnError } from "../../core/errors.ts";
import { type App, addRoute, json } from "../context.ts";
import {
  ErrorSchema,
  IdParams,
  KilledSchema,
  ListCommandsQuery,
  PidParams,
  ProcessInfoSchema,
  ResizeBody,
  RunCodeBody,
  RunCommandBody,
  StartedSchema,
  StdinBody,
  StreamEventSchema,
} from "../schemas.ts";
import {
  type EventStream,
  NDJSON,
  ndjsonResponse,
  type StreamEvent,
  settledNdjsonResponse,
} from "../streaming.ts";

const errors = { default: json(ErrorSchema, "an error") };
const tags = ["commands"];
const events = (description: string) => ({
  description: `${description}: NDJSON, one StreamEvent per line`,
  content: { [NDJSON]: { schema: StreamEventSchema } },
});

/**
 * Streams a command's output and its end into `stream`. With `forward`, the output held since the
 * start (for the first subscriber) comes first, then live output; an ended command gives its exit at once.
 */
async function pipe(stream: EventStream, handle: CommandHandle, forward: boolean) {
  try {
    const result = await handle.wait({
      ...(forward
        ? {
            held: true,
            onStdout: (data: string) => stream.send({ type: "stdout", data }),
            onStderr: (data: string) => stream.send({ type: "stderr", data }),
          }
        : {}),
      signal: stream.signal,
    });
    stream.end({ type: "exit", result });
  } catch (e) {
    stream.fail(e, (e as KilnError).result);
  }
}

function decodeStdin(text: string | undefined, b64: string | undefined): string | Uint8Array | undefined {
  if (text !== undefined && b64 !== undefined)
    throw new InvalidArgumentError("give stdin as text or base64, not both");
  return b64 !== undefined ? new Uint8Array(Buffer.from(b64, "base64")) : text;
}

/** Registers the command and code routes. */
export function commandRoutes(app: App): void {
  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/commands",
      tags,
      summary: "run a bash command line (foreground: streamed events; background: the pid)",
      request: { params: IdParams, body: { ...json(RunCommandBody, "the command"), required: true } },
      responses: {
        200: events("foreground run"),
        201: json(StartedSchema, "background run started"),
        ...errors,
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const { streams } = c.var.state;
      const sb = c.var.sandbox;
      const stdin = decodeStdin(body.stdin, body.stdinBase64);
      const common = {
        ...(body.cwd !== undefined ? { cwd: body.cwd } : {}),
        ...(body.env !== undefined ? { env: body.env } : {}),
        ...(body.timeoutMs !== undefined ? { timeoutMs: body.timeoutMs } : {}),
        ...(body.labels !== undefined ? { labels: body.labels } : {}),
        ...(stdin !== undefined ? { stdin } : {}),
      };
      if (body.background) {
        const h = await sb.commands.run(body.command, {
          ...common,
          background: true,
          openStdin: body.openStdin ?? false,
          ...(body.pty ? { pty: body.pty } : {}),
        });
        return c.json({ pid: h.pid }, 201);
      }
      if (body.pty) throw new InvalidArgumentError("pty needs background: true");
      const ac = new AbortController();
      const abort = () => ac.abort();
      c.req.raw.signal.addEventListener("abort", abort, { once: true });
      // The start event must precede output: output that arrives before it is queued.
      const early: StreamEvent[] = [];
      let stream: EventStream | undefined;
      const emit = (e: StreamEvent) => (stream ? stream.send(e) : early.push(e));
      const h = await sb.commands.run(body.command, {
        ...common,
        background: true,
        signal: ac.signal,
        onStdout: (data) => emit({ type: "stdout", data }),
        onStderr: (data) => emit({ type: "stderr", data }),
      });
      const s = streams.create();
      s.hold();
      s.signal.addEventListener("abort", abort, { once: true });
      s.send({ type: "start", pid: h.pid });
      for (const e of early) s.send(e);
      stream = s;
      void pipe(s, h, false);
      return settledNdjsonResponse(s);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/commands",
      tags,
      summary: "commands running now (with ended=true, also the ended ones still kept)",
      request: { params: IdParams, query: ListCommandsQuery },
      responses: { 200: json(ProcessInfoSchema.array(), "commands"), ...errors },
    }),
    async (c) =>
      c.json(await c.var.sandbox.commands.list({ ended: c.req.valid("query").ended === "true" }), 200),
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/commands/{pid}/events",
      tags,
      summary:
        "reattach to a command: for its first subscriber the output held since the start, then live output, then its exit with the full result",
      request: { params: PidParams },
      responses: { 200: events("the command's events"), ...errors },
    }),
    async (c) => {
      const handle = await c.var.sandbox.commands.connect(c.req.valid("param").pid);
      const stream = c.var.state.streams.create();
      stream.send({ type: "start", pid: handle.pid });
      void pipe(stream, handle, true);
      return ndjsonResponse(stream);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/commands/{pid}/stdin",
      tags,
      summary: "send text or bytes to a background command's stdin, and/or close it",
      request: { params: PidParams, body: { ...json(StdinBody, "the data"), required: true } },
      responses: { 204: { description: "sent" }, ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const handle = await c.var.sandbox.commands.connect(c.req.valid("param").pid);
      const data = decodeStdin(body.data, body.dataBase64);
      if (data !== undefined) await handle.sendStdin(data);
      if (body.close) await handle.closeStdin();
      return c.body(null, 204);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/commands/{pid}/resize",
      tags,
      summary: "set the terminal size of a command started with pty",
      request: { params: PidParams, body: { ...json(ResizeBody, "the size"), required: true } },
      responses: { 204: { description: "resized" }, ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const handle = await c.var.sandbox.commands.connect(c.req.valid("param").pid);
      await handle.resize(body.cols, body.rows);
      return c.body(null, 204);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/commands/{pid}/kill",
      tags,
      summary: "kill a running command and its children",
      request: { params: PidParams },
      responses: { 200: json(KilledSchema, "false when no such command was running"), ...errors },
    }),
    async (c) => c.json({ killed: await c.var.sandbox.commands.kill(c.req.valid("param").pid) }, 200),
  );

  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/code",
      tags,
      summary:
        "run a code cell in a code context (streamed stdout, stderr, result and cell_error events; exit carries the Execution)",
      request: { params: IdParams, body: { ...json(RunCodeBody, "the code"), required: true } },
      responses: { 200: events("the run"), ...errors },
    }),
    async (c) => {
      const { code, ...opts } = c.req.valid("json");
      const stream = c.var.state.streams.create();
      const ac = new AbortController();
      const abort = () => ac.abort();
      stream.signal.addEventListener("abort", abort, { once: true });
      c.req.raw.signal.addEventListener("abort", abort, { once: true });
      c.var.sandbox
        .runCode(code, {
          ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)),
          onStdout: (data) => stream.send({ type: "stdout", data }),
          onStderr: (data) => stream.send({ type: "stderr", data }),
          onResult: (result) => stream.send({ type: "result", result }),
          onError: (error) => stream.send({ type: "cell_error", error }),
          signal: ac.signal,
        })
        .then(
          (result) => stream.end({ type: "exit", result }),
          (e) => stream.fail(e, e instanceof CellTimeoutError ? e.execution : undefined),
        );
      return ndjsonResponse(stream);
    },
  );
}
