/**
 * E2B's code-interpreter API (what `@e2b/code-interpreter` calls on the
 * sandbox's port 49999, where E2B runs a Jupyter server), over Kiln's code
 * contexts (core's `runCode`):
 *
 * - `POST /execute` `{ code, context_id?, language?, env_vars? }`: the cell as
 *   NDJSON lines, `stdout` / `stderr` `{ text, timestamp }`, `result` (the
 *   result's formats, `is_main_result`), `error` `{ name, value, traceback }`,
 *   `number_of_executions` `{ execution_count }`;
 * - `POST /contexts` `{ language?, cwd? }`, `GET /contexts`,
 *   `DELETE /contexts/:id`, `POST /contexts/:id/restart`.
 *
 * Credentials: the envd access token (`X-Access-Token`, sent with `/execute`)
 * or the traffic token of port 49999 (`E2B-Traffic-Access-Token`, sent with
 * every call), both issued at create/connect and checked by the token
 * service. Every refusal looks like a sandbox that does not exist (502).
 * A cell has no server-side time limit here, as on E2B: the SDK's
 * `timeoutMs` aborts the request, which interrupts the cell.
 */
import { CellTimeoutError } from "../core/code-contexts.ts";
import { InvalidArgumentError, isKilnError } from "../core/errors.ts";
import { type CellResult, checkLanguage } from "../core/execution.ts";
import type { Sandbox } from "../core/sandbox.ts";
import { CODE_INTERPRETER_PORT } from "./auth.ts";
import type { E2bContext } from "./context.ts";
import { errorResponse, sandboxGoneResponse } from "./errors.ts";

/** E2B's field names of a result. */
function wireResult(r: CellResult): Record<string, unknown> {
  const { isMainResult, ...rest } = r;
  return { type: "result", ...rest, is_main_result: isMainResult };
}

function authorize(ctx: E2bContext, req: Request, sandboxId: string): void {
  const traffic = req.headers.get("e2b-traffic-access-token");
  if (traffic !== null) {
    ctx.tokens.check(traffic, sandboxId, `port:${CODE_INTERPRETER_PORT}`);
    return;
  }
  ctx.tokens.check(req.headers.get("x-access-token"), sandboxId, "e2b-envd");
}

/** A Kiln error as the SDK reads it: 404 is its NotFoundError, the rest a SandboxError with the body. */
function kilnErrorResponse(e: unknown): Response {
  if (!isKilnError(e)) throw e;
  const status =
    e.code === "not_found" ? 404 : e.code === "invalid_argument" || e.code === "unsupported" ? 400 : 500;
  return errorResponse(status, `${e.code}: ${e.message}`);
}

async function readJson(req: Request): Promise<Record<string, unknown>> {
  const text = await req.text();
  if (!text) return {};
  try {
    const v = JSON.parse(text);
    if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // Answered below.
  }
  throw new InvalidArgumentError("the body is not a JSON object");
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

function execute(sandbox: Sandbox, body: Record<string, unknown>): Response {
  const code = body.code;
  const contextId = str(body.context_id);
  const language = str(body.language);
  const env =
    body.env_vars && typeof body.env_vars === "object" ? (body.env_vars as Record<string, string>) : {};
  if (typeof code !== "string") return errorResponse(400, "invalid_argument: code must be a string");
  if (contextId !== undefined && !sandbox.codeContexts.list().some((c) => c.id === contextId))
    return errorResponse(404, `not_found: no code context ${contextId}`);
  const ac = new AbortController();
  const encoder = new TextEncoder();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let open = true;
  const send = (msg: Record<string, unknown>) => {
    if (open) controller.enqueue(encoder.encode(`${JSON.stringify(msg)}\n`));
  };
  const stamp = () => Date.now() * 1000;
  const body$ = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel() {
      open = false;
      ac.abort(new Error("the client went away"));
    },
  });
  const close = () => {
    if (!open) return;
    open = false;
    controller.close();
  };
  sandbox
    .runCode(code, {
      ...(language !== undefined ? { language } : {}),
      ...(contextId !== undefined ? { context: contextId } : {}),
      env,
      timeoutMs: 0,
      signal: ac.signal,
      onStdout: (text) => send({ type: "stdout", text, timestamp: stamp() }),
      onStderr: (text) => send({ type: "stderr", text, timestamp: stamp() }),
      onResult: (r) => send(wireResult(r)),
      onError: (e) => send({ type: "error", ...e }),
    })
    .then(
      (ex) => {
        if (ex.executionCount !== undefined)
          send({ type: "number_of_executions", execution_count: ex.executionCount });
        close();
      },
      (e) => {
        const name = e instanceof CellTimeoutError ? "TimeoutError" : isKilnError(e) ? e.code : "Error";
        send({ type: "error", name, value: e instanceof Error ? e.message : String(e), traceback: "" });
        close();
      },
    );
  return new Response(body$, { status: 200, headers: { "content-type": "application/x-ndjson" } });
}

/** Handles one code-interpreter request for the sandbox `sandboxId`. */
export async function handleCodeInterpreter(
  ctx: E2bContext,
  req: Request,
  sandboxId: string,
): Promise<Response> {
  let sandbox: Sandbox;
  try {
    authorize(ctx, req, sandboxId);
    sandbox = await ctx.kiln.connect(sandboxId);
  } catch {
    return sandboxGoneResponse(sandboxId);
  }
  const path = new URL(req.url).pathname;
  const contexts = sandbox.codeContexts;
  try {
    if (req.method === "POST" && path === "/execute") {
      const body = await readJson(req);
      // Checks the language before the stream starts, so a bad one is a 400, not a streamed error.
      if (str(body.language) !== undefined && str(body.context_id) === undefined)
        checkLanguage(str(body.language));
      return execute(sandbox, body);
    }
    if (path === "/contexts" && req.method === "GET") return Response.json(contexts.list());
    if (path === "/contexts" && req.method === "POST") {
      const body = await readJson(req);
      const ctxInfo = await contexts.create({
        ...(str(body.language) !== undefined ? { language: str(body.language)! } : {}),
        ...(str(body.cwd) !== undefined ? { cwd: str(body.cwd)! } : {}),
      });
      return Response.json(ctxInfo);
    }
    const m = /^\/contexts\/([^/]+)(\/restart)?$/.exec(path);
    if (m && req.method === "DELETE" && !m[2]) {
      await contexts.remove(decodeURIComponent(m[1]!));
      return new Response(null, { status: 204 });
    }
    if (m && req.method === "POST" && m[2]) {
      await contexts.restart(decodeURIComponent(m[1]!));
      return new Response(null, { status: 204 });
    }
    if (path === "/health") return new Response("OK");
    return errorResponse(404, `no code-interpreter endpoint ${req.method} ${path}`);
  } catch (e) {
    return kilnErrorResponse(e);
  }
}
