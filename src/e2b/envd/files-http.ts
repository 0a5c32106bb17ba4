/**
 * envd's plain-HTTP endpoints, for one resolved sandbox:
 *
 * - `GET /health`: 204 while the sandbox runs (`sandbox.isRunning()`).
 * - `GET /files?path=`: the file's bytes (`files.read` in any format).
 * - `POST /files?path=`: writes files (`files.write`, `files.writeFiles`),
 *   as `multipart/form-data` (one `file` part per file; its filename is the
 *   path when `path` is absent) or as a raw `application/octet-stream` body
 *   (optionally `Content-Encoding: gzip`). Answers `[{ name, type, path }]`.
 *
 * The `username` parameter is accepted and ignored: commands and files act as
 * the sandbox's one user. Relative paths resolve against the sandbox's working
 * directory (`/workspace`).
 */
import { basename } from "node:path";
import { Readable } from "node:stream";
import { Busboy } from "@fastify/busboy";
import { InvalidArgumentError } from "../../core/errors.ts";
import type { Sandbox } from "../../core/sandbox.ts";
import { envdHttpErrorResponse, errorResponse } from "../errors.ts";

function writeInfo(path: string): { name: string; type: "file"; path: string } {
  return { name: basename(path), type: "file", path };
}

async function getFile(sandbox: Sandbox, path: string | null, signal: AbortSignal): Promise<Response> {
  if (!path) throw new InvalidArgumentError("the path parameter is required");
  const st = await sandbox.files.stat(path, { signal });
  if (st.type === "dir") throw new InvalidArgumentError(`${st.path} is a directory`);
  const stream = await sandbox.files.read(path, { format: "stream", signal });
  const headers: Record<string, string> = {
    "content-type": "application/octet-stream",
    "content-disposition": `attachment; filename*=UTF-8''${encodeURIComponent(st.name)}`,
  };
  if (st.type === "file") headers["content-length"] = String(st.size);
  return new Response(stream, { status: 200, headers });
}

/**
 * Writes the `file` parts of a multipart body as they arrive, one after the
 * other, each streamed into the sandbox (and stopped at its `maxFileBytes`):
 * the body is never held whole. The first part goes to `path` when given,
 * every other to its filename.
 */
async function postMultipart(sandbox: Sandbox, req: Request, path: string | null): Promise<Response> {
  const signal = req.signal;
  const out = [];
  let index = 0;
  for await (const part of multipartFiles(req)) {
    const target = index === 0 && path ? path : part.filename || (index === 0 ? path : null);
    index++;
    if (!target) {
      part.stream.destroy();
      throw new InvalidArgumentError("a file part has no filename and no path was given");
    }
    const info = await sandbox.files.write(
      target,
      Readable.toWeb(part.stream) as ReadableStream<Uint8Array>,
      {
        signal,
      },
    );
    out.push(writeInfo(info.path));
  }
  if (out.length === 0) throw new InvalidArgumentError("no `file` part in the form");
  return Response.json(out);
}

/**
 * The `file` parts of a multipart request, in order, each a stream that must
 * be read (or destroyed) before the next one arrives; other parts are
 * skipped. Breaking out of the loop stops reading the request.
 * @throws InvalidArgumentError for a malformed body
 */
async function* multipartFiles(req: Request): AsyncGenerator<{ filename: string; stream: Readable }> {
  const parser = Busboy({
    headers: { "content-type": req.headers.get("content-type") ?? "" },
    // The filename is the target path (the SDK sends it so); core checks it like any path.
    preservePath: true,
    limits: { files: 1000, fields: 100, fieldSize: 64 * 1024, parts: 1100 },
  });
  const parts: { filename: string; stream: Readable }[] = [];
  let finished = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  parser.on("file", (field, stream, filename) => {
    if (field !== "file") {
      stream.resume();
      return;
    }
    parts.push({ filename, stream });
    notify();
  });
  parser.on("finish", () => {
    finished = true;
    notify();
  });
  parser.on("error", (e) => {
    failure ??= new InvalidArgumentError(`malformed multipart body: ${e instanceof Error ? e.message : e}`);
    notify();
  });
  const body = req.body ? Readable.fromWeb(req.body as never) : Readable.from([]);
  body.on("error", (e) => {
    failure ??= e;
    notify();
  });
  body.pipe(parser);
  try {
    for (;;) {
      const next = parts.shift();
      if (next) {
        yield next;
        continue;
      }
      if (failure !== undefined) throw failure;
      if (finished) return;
      await new Promise<void>((r) => {
        wake = r;
      });
    }
  } finally {
    for (const p of parts) p.stream.destroy();
    body.unpipe(parser);
    body.destroy();
  }
}

async function postFiles(sandbox: Sandbox, req: Request, path: string | null): Promise<Response> {
  const type = req.headers.get("content-type") ?? "";
  const signal = req.signal;
  if (type.startsWith("multipart/form-data")) return postMultipart(sandbox, req, path);
  if (!path) throw new InvalidArgumentError("the path parameter is required for a raw upload");
  let body: ReadableStream<Uint8Array> = req.body ?? new Blob([]).stream();
  const encoding = (req.headers.get("content-encoding") ?? "").toLowerCase();
  if (encoding === "gzip") {
    body = body.pipeThrough(
      new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
    );
  } else if (encoding !== "" && encoding !== "identity") {
    throw new InvalidArgumentError(`unsupported Content-Encoding ${encoding}`);
  }
  const length = req.headers.get("content-length");
  const sized = encoding !== "gzip" && length !== null && /^[0-9]+$/.test(length);
  const info = await sandbox.files.write(path, body, {
    signal,
    ...(sized ? { sizeBytes: Number(length) } : {}),
  });
  return Response.json([writeInfo(info.path)]);
}

/** Serves envd's HTTP endpoints for `sandbox`; undefined when the path is not one of them. */
export async function envdHttp(sandbox: Sandbox, req: Request): Promise<Response | undefined> {
  const url = new URL(req.url);
  try {
    if (url.pathname === "/health") {
      if (req.method !== "GET") return errorResponse(405, "method not allowed");
      return (await sandbox.isRunning())
        ? new Response(null, { status: 204 })
        : errorResponse(502, "sandbox is not running");
    }
    if (url.pathname === "/files") {
      const path = url.searchParams.get("path");
      if (req.method === "GET") return await getFile(sandbox, path, req.signal);
      if (req.method === "POST") {
        try {
          return await postFiles(sandbox, req, path);
        } catch (e) {
          // The rest of the body stays unread: this connection cannot carry another request.
          const res = envdHttpErrorResponse(e);
          res.headers.set("connection", "close");
          return res;
        }
      }
      return errorResponse(405, "method not allowed");
    }
    return undefined;
  } catch (e) {
    return envdHttpErrorResponse(e);
  }
}
