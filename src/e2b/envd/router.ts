/**
 * The envd half of the E2B surface: one Web-standard handler for every
 * sandbox's envd calls. The sandbox comes from the request (`E2b-Sandbox-Id`,
 * see auth.ts); its `X-Access-Token` must be the token create/connect issued
 * for it. A sandbox that does not exist (killed, expired) answers 502, as
 * E2B's proxy does, which the SDK reports as a `TimeoutError` and
 * `isRunning() === false`.
 *
 * Connect RPC (`/process.Process/*`, `/filesystem.Filesystem/*`, JSON or
 * binary, unary and streaming) is served by @connectrpc/connect's router;
 * `/files` and `/health` by files-http.ts.
 */
import { Code, ConnectError, createConnectRouter, createContextValues } from "@connectrpc/connect";
import {
  type UniversalHandler,
  universalServerRequestFromFetch,
  universalServerResponseToFetch,
} from "@connectrpc/connect/protocol";
import type { SandboxInfo } from "../../core/types.ts";
import type { E2bContext } from "../context.ts";
import { errorResponse, sandboxGoneResponse } from "../errors.ts";
import { ownerOf } from "../mapping.ts";
import { FilesystemService } from "../proto/filesystem.ts";
import { ProcessService } from "../proto/process.ts";
import { envdHttp } from "./files-http.ts";
import { filesystemService } from "./filesystem.ts";
import { processService } from "./process.ts";
import { TARGET_KEY } from "./target.ts";

/** Handles one envd request for the sandbox `sandboxId`. */
export type EnvdHandler = (req: Request, sandboxId: string) => Promise<Response>;

/** A Connect error response (JSON, as the Connect protocol's unary errors are). */
function connectErrorResponse(e: ConnectError, status: number): Response {
  const code = Code[e.code].replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
  return Response.json({ code, message: e.rawMessage }, { status });
}

/** Creates the envd handler. */
export function createEnvdHandler(ctx: E2bContext): EnvdHandler {
  const router = createConnectRouter();
  // The descriptors are untyped (see proto/); the implementations type what they read.
  router.service(ProcessService, processService(ctx) as never);
  router.service(FilesystemService, filesystemService() as never);
  const rpcs = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));

  return async (req, sandboxId) => {
    const path = new URL(req.url).pathname;
    const rpc = rpcs.get(path);
    let info: SandboxInfo;
    try {
      info = ctx.kiln.record(sandboxId);
    } catch {
      return rpc
        ? connectErrorResponse(new ConnectError(`sandbox ${sandboxId} is not running`, Code.Unavailable), 502)
        : sandboxGoneResponse(sandboxId);
    }
    if (!ctx.tokens.verify(req.headers.get("x-access-token"), sandboxId, ownerOf(info))) {
      const message = "invalid or missing X-Access-Token for this sandbox";
      return rpc
        ? connectErrorResponse(new ConnectError(message, Code.Unauthenticated), 401)
        : errorResponse(401, message);
    }
    let sandbox: Awaited<ReturnType<E2bContext["kiln"]["connect"]>>;
    try {
      sandbox = await ctx.kiln.connect(sandboxId);
    } catch {
      return rpc
        ? connectErrorResponse(new ConnectError(`sandbox ${sandboxId} is not running`, Code.Unavailable), 502)
        : sandboxGoneResponse(sandboxId);
    }
    if (rpc) {
      const uReq = universalServerRequestFromFetch(req, {});
      const uRes = await rpc({ ...uReq, contextValues: createContextValues().set(TARGET_KEY, { sandbox }) });
      return universalServerResponseToFetch(uRes);
    }
    return (await envdHttp(sandbox, req)) ?? errorResponse(404, `no envd endpoint ${req.method} ${path}`);
  };
}
