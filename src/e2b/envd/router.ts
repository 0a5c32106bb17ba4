/**
 * The envd half of the E2B surface: one Web-standard handler for every
 * sandbox's envd calls. The sandbox comes from the request (`E2b-Sandbox-Id`,
 * see auth.ts); its `X-Access-Token` must be the token create/connect issued
 * for it (or, for `/files`, a signed URL made from that token), checked by the
 * token service on every request. A sandbox that does not exist (killed,
 * expired) answers 502, as E2B's proxy does, which the SDK reports as a
 * `TimeoutError` and `isRunning() === false`; so does every refused
 * credential, so that no caller can tell another owner's sandbox from none.
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
import type { E2bSignature } from "../../tokens/index.ts";
import type { E2bContext } from "../context.ts";
import { errorResponse, sandboxGoneResponse } from "../errors.ts";
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

/**
 * Checks an envd request's credential: its `X-Access-Token`, or for `/files`
 * without one, an E2B signed URL (`signature`, `signature_expiration`).
 * @throws NotFoundError for every failure alike
 */
function authorize(ctx: E2bContext, req: Request, sandboxId: string, rpc: boolean): void {
  const signed = rpc ? undefined : signedUrlOf(req);
  if (signed) {
    ctx.tokens.checkE2bSignature(sandboxId, signed);
    return;
  }
  ctx.tokens.check(req.headers.get("x-access-token"), sandboxId, "e2b-envd");
}

/**
 * The signature of a `/files` request that carries an E2B signed URL and no
 * access token, or undefined.
 */
export function signedUrlOf(req: Request): E2bSignature | undefined {
  const url = new URL(req.url);
  const signature = url.searchParams.get("signature");
  if (req.headers.get("x-access-token") !== null || signature === null || url.pathname !== "/files") {
    return undefined;
  }
  const expiration = url.searchParams.get("signature_expiration");
  return {
    path: url.searchParams.get("path") ?? "",
    operation: req.method === "GET" ? "read" : "write",
    user: url.searchParams.get("username") ?? "",
    signature,
    ...(expiration !== null ? { expiration } : {}),
  };
}

/** Creates the envd handler. */
export function createEnvdHandler(ctx: E2bContext): EnvdHandler {
  const router = createConnectRouter({ readMaxBytes: ctx.maxBodyBytes });
  // The descriptors are untyped (see proto/); the implementations type what they read.
  router.service(ProcessService, processService(ctx) as never);
  router.service(FilesystemService, filesystemService() as never);
  const rpcs = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));

  return async (req, sandboxId) => {
    const url = new URL(req.url);
    const rpc = rpcs.get(url.pathname);
    // Every refusal is the answer for a sandbox that does not exist: a missing sandbox, one of
    // another owner, a bad, expired or revoked token, all alike (no existence oracle).
    const gone = () =>
      rpc
        ? connectErrorResponse(
            new ConnectError(`sandbox ${sandboxId} is not running or does not exist`, Code.Unavailable),
            502,
          )
        : sandboxGoneResponse(sandboxId);
    let sandbox: Awaited<ReturnType<E2bContext["kiln"]["connect"]>>;
    try {
      authorize(ctx, req, sandboxId, rpc !== undefined);
      sandbox = await ctx.kiln.connect(sandboxId);
    } catch {
      return gone();
    }
    if (rpc) {
      const length = Number(req.headers.get("content-length") ?? 0);
      if (length > ctx.maxBodyBytes) {
        const e = new ConnectError(
          `the request body is over ${ctx.maxBodyBytes} bytes`,
          Code.ResourceExhausted,
        );
        return connectErrorResponse(e, 413);
      }
      const uReq = universalServerRequestFromFetch(req, {});
      const uRes = await rpc({ ...uReq, contextValues: createContextValues().set(TARGET_KEY, { sandbox }) });
      return universalServerResponseToFetch(uRes);
    }
    return (
      (await envdHttp(sandbox, req)) ?? errorResponse(404, `no envd endpoint ${req.method} ${url.pathname}`)
    );
  };
}
