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

async function postFiles(sandbox: Sandbox, req: Request, path: string | null): Promise<Response> {
  const type = req.headers.get("content-type") ?? "";
  const signal = req.signal;
  if (type.startsWith("multipart/form-data")) {
    const form = await req.formData();
    const parts = form.getAll("file").filter((p): p is File => typeof p !== "string");
    if (parts.length === 0) throw new InvalidArgumentError("no `file` part in the form");
    const out = [];
    for (const part of parts) {
      const target = parts.length === 1 && path ? path : part.name;
      if (!target) throw new InvalidArgumentError("a file part has no filename and no path was given");
      const info = await sandbox.files.write(target, new Uint8Array(await part.arrayBuffer()), { signal });
      out.push(writeInfo(info.path));
    }
    return Response.json(out);
  }
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
  const info = await sandbox.files.write(path, body, { signal });
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
      if (req.method === "POST") return await postFiles(sandbox, req, path);
      return errorResponse(405, "method not allowed");
    }
    return undefined;
  } catch (e) {
    return envdHttpErrorResponse(e);
  }
}
