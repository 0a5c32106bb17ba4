/**
 * Files: raw bytes in and out (streamed both ways, `application/octet-stream`),
 * listings and metadata as JSON, and tar export/import of a directory.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { type App, addRoute, json } from "../context.ts";
import {
  EntryInfoSchema,
  ErrorSchema,
  IdParams,
  ListQuery,
  MkdirResult,
  PathBody,
  PathQuery,
  RenameBody,
  SymlinkBody,
  WatchLineSchema,
  WatchQuery,
} from "../schemas.ts";
import { NDJSON, ndjsonResponse } from "../streaming.ts";

const errors = { default: json(ErrorSchema, "an error") };
const tags = ["files"];
const Binary = z.string().openapi({ type: "string", format: "binary" });
const bytes = (description: string) => ({
  description,
  content: { "application/octet-stream": { schema: Binary } },
});
const tarBytes = (description: string) => ({
  description,
  content: { "application/x-tar": { schema: Binary } },
});

function bodyStream(req: Request): ReadableStream<Uint8Array> {
  return req.body ?? new ReadableStream({ start: (c) => c.close() });
}

/** Registers the file routes. */
export function fileRoutes(app: App): void {
  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/files/watch",
      tags,
      summary:
        "watch a directory: NDJSON, `watching` once in place, then one `change` per event (create, write, remove, rename, chmod; names relative to path) until the client goes or the directory does (`exit`)",
      request: { params: IdParams, query: WatchQuery },
      responses: {
        200: { description: "the directory's changes", content: { [NDJSON]: { schema: WatchLineSchema } } },
        ...errors,
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const stream = c.var.state.streams.create();
      let watching: Awaited<ReturnType<typeof c.var.sandbox.files.watch>>;
      try {
        watching = await c.var.sandbox.files.watch(
          q.path,
          { recursive: q.recursive === "true", signal: stream.signal },
          (change) => stream.send({ type: "change", change }),
        );
      } catch (e) {
        stream.end({ type: "exit" });
        throw e;
      }
      stream.send({ type: "watching" });
      void watching.ended.then(() => stream.end({ type: "exit" }));
      return ndjsonResponse(stream);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/files",
      tags,
      summary: "read a file (streamed bytes)",
      request: { params: IdParams, query: PathQuery },
      responses: { 200: bytes("the file's bytes"), ...errors },
    }),
    async (c) => {
      const stream = await c.var.sandbox.files.read(c.req.valid("query").path, {
        format: "stream",
        signal: c.req.raw.signal,
      });
      return new Response(stream, { headers: { "content-type": "application/octet-stream" } });
    },
  );

  addRoute(
    app,
    createRoute({
      method: "put",
      path: "/v1/sandboxes/{id}/files",
      tags,
      summary: "write (replace) a file from the request's bytes, creating parents",
      request: { params: IdParams, query: PathQuery, body: bytes("the file's bytes") },
      responses: { 200: json(EntryInfoSchema, "the written file"), ...errors },
    }),
    async (c) => {
      const length = c.req.header("content-length");
      const info = await c.var.sandbox.files.write(c.req.valid("query").path, bodyStream(c.req.raw), {
        signal: c.req.raw.signal,
        ...(length !== undefined && /^[0-9]+$/.test(length) ? { sizeBytes: Number(length) } : {}),
      });
      return c.json(info, 200);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "delete",
      path: "/v1/sandboxes/{id}/files",
      tags,
      summary: "remove a file, symlink or directory tree",
      request: { params: IdParams, query: PathQuery },
      responses: { 204: { description: "removed" }, ...errors },
    }),
    async (c) => {
      await c.var.sandbox.files.remove(c.req.valid("query").path, { signal: c.req.raw.signal });
      return c.body(null, 204);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/files/list",
      tags,
      summary: "entries below a directory, `depth` levels deep (default 1)",
      request: { params: IdParams, query: ListQuery },
      responses: { 200: json(EntryInfoSchema.array(), "entries"), ...errors },
    }),
    async (c) => {
      const { path, depth } = c.req.valid("query");
      const out = await c.var.sandbox.files.list(path, {
        ...(depth === undefined ? {} : { depth }),
        signal: c.req.raw.signal,
      });
      return c.json(out, 200);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/files/stat",
      tags,
      summary: "the entry at a path (a final symlink is not followed)",
      request: { params: IdParams, query: PathQuery },
      responses: { 200: json(EntryInfoSchema, "the entry"), ...errors },
    }),
    async (c) =>
      c.json(await c.var.sandbox.files.stat(c.req.valid("query").path, { signal: c.req.raw.signal }), 200),
  );

  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/files/mkdir",
      tags,
      summary: "create a directory and its parents",
      request: { params: IdParams, body: { ...json(PathBody, "the directory"), required: true } },
      responses: { 200: json(MkdirResult, "false when it already existed"), ...errors },
    }),
    async (c) => {
      const created = await c.var.sandbox.files.makeDir(c.req.valid("json").path, {
        signal: c.req.raw.signal,
      });
      return c.json({ created }, 200);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/files/rename",
      tags,
      summary: "rename or move an entry",
      request: { params: IdParams, body: { ...json(RenameBody, "from and to"), required: true } },
      responses: { 200: json(EntryInfoSchema, "the entry at its new path"), ...errors },
    }),
    async (c) => {
      const { from, to } = c.req.valid("json");
      return c.json(await c.var.sandbox.files.rename(from, to, { signal: c.req.raw.signal }), 200);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/files/symlink",
      tags,
      summary: "create a symlink at `path` pointing at `target`",
      request: { params: IdParams, body: { ...json(SymlinkBody, "target and path"), required: true } },
      responses: { 200: json(EntryInfoSchema, "the symlink"), ...errors },
    }),
    async (c) => {
      const { target, path } = c.req.valid("json");
      return c.json(await c.var.sandbox.files.symlink(target, path, { signal: c.req.raw.signal }), 200);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/files/tar",
      tags,
      summary: "export a directory as a tar stream (modes, mtimes, symlinks kept)",
      request: { params: IdParams, query: PathQuery },
      responses: { 200: tarBytes("the tar stream"), ...errors },
    }),
    async (c) => {
      const tar = await c.var.sandbox.files.exportTar(c.req.valid("query").path, {
        signal: c.req.raw.signal,
      });
      return new Response(tar, { headers: { "content-type": "application/x-tar" } });
    },
  );

  addRoute(
    app,
    createRoute({
      method: "put",
      path: "/v1/sandboxes/{id}/files/tar",
      tags,
      summary: "unpack a tar stream into a directory",
      request: { params: IdParams, query: PathQuery, body: tarBytes("the tar stream") },
      responses: { 204: { description: "unpacked" }, ...errors },
    }),
    async (c) => {
      await c.var.sandbox.files.importTar(c.req.valid("query").path, bodyStream(c.req.raw), {
        signal: c.req.raw.signal,
      });
      return c.body(null, 204);
    },
  );
}
