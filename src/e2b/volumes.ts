/**
 * E2B's volumes over Kiln's: the management routes of the REST API
 * (`Volume.create`, `connect`, `getInfo`, `list`, `destroy`: `/volumes`,
 * authenticated by the API key) and the volume content API that a `Volume`
 * object calls with its own token (`/volumecontent/{volumeID}/dir|path|file`,
 * `Authorization: Bearer <token>`). The token is derived from the owner's key
 * and bound to the volume (src/tokens); every failure is the same 404. Files
 * are reached through `VolumeFiles`, which never follows a link a sandbox
 * planted in the volume.
 */
import type { Context, Hono } from "hono";
import { Hono as HonoApp } from "hono";
import {
  DEFAULT_LIMITS,
  InvalidArgumentError,
  NotFoundError,
  type VolumeEntry,
  type VolumeInfo,
} from "../index.ts";
import { OWNER_KEY, type SandboxAccess } from "../mcp/access.ts";
import type { E2bContext } from "./context.ts";
import { errorResponse, restErrorResponse } from "./errors.ts";

type Env = { Variables: { access: SandboxAccess } };

/** A volume as `Volume.list` reads it. */
function listed(v: VolumeInfo): Record<string, unknown> {
  return { volumeID: v.id, name: v.name };
}

/** A volume with its content token, as `Volume.create` and `getInfo` read it. */
function withToken(ctx: E2bContext, v: VolumeInfo): Record<string, unknown> {
  return { ...listed(v), token: ctx.tokens.issueVolume(v) };
}

/** An entry as the SDK's `VolumeEntryStat` (dates as ISO 8601). */
function stat(e: VolumeEntry): Record<string, unknown> {
  return {
    name: e.name,
    path: e.path,
    type: e.type,
    size: e.size,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    atime: new Date(e.atimeMs).toISOString(),
    mtime: new Date(e.mtimeMs).toISOString(),
    ctime: new Date(e.ctimeMs).toISOString(),
    ...(e.target !== undefined ? { target: e.target } : {}),
  };
}

/** The ownership label of what `owner` makes (none for an unscoped server). */
function ownerLabel(owner: string | undefined): Record<string, string> {
  return owner === undefined ? {} : { [OWNER_KEY]: owner };
}

/** The volume of `id` owned by `owner`. @throws NotFoundError (also for another owner's) */
function owned(ctx: E2bContext, owner: string | undefined, id: string): VolumeInfo {
  let v: VolumeInfo;
  try {
    v = ctx.kiln.volumeRecord(id);
  } catch {
    throw new NotFoundError(`no volume ${id}`);
  }
  if (owner !== undefined && v.metadata[OWNER_KEY] !== owner) throw new NotFoundError(`no volume ${id}`);
  return v;
}

/** Registers `/volumes` on the REST app (whose middleware has authenticated the key). */
export function volumeRestRoutes(app: Hono<Env>, ctx: E2bContext): void {
  app.post("/volumes", async (c) => {
    let body: { name?: unknown };
    try {
      body = (await c.req.json()) as { name?: unknown };
    } catch {
      throw new InvalidArgumentError("the request body is not JSON");
    }
    if (typeof body?.name !== "string") throw new InvalidArgumentError("name must be a string");
    const v = await ctx.kiln.createVolume(body.name, {
      metadata: ownerLabel(c.get("access").owner),
      signal: c.req.raw.signal,
    });
    return c.json(withToken(ctx, v), 201);
  });
  app.get("/volumes", async (c) => {
    const list = await ctx.kiln.volumes({ metadata: ownerLabel(c.get("access").owner) });
    return c.json(list.map(listed), 200);
  });
  app.get("/volumes/:id", (c) =>
    c.json(withToken(ctx, owned(ctx, c.get("access").owner, c.req.param("id")))),
  );
  app.delete("/volumes/:id", async (c) => {
    const v = owned(ctx, c.get("access").owner, c.req.param("id"));
    await ctx.kiln.removeVolume(v.id, { signal: c.req.raw.signal });
    return c.body(null, 204);
  });
}

/** An optional unsigned integer query parameter. @throws InvalidArgumentError */
function uintQuery(c: Context, name: string): number | undefined {
  const v = c.req.query(name);
  if (v === undefined || v === "") return undefined;
  if (!/^[0-9]{1,10}$/.test(v)) throw new InvalidArgumentError(`${name} must be an unsigned integer`);
  return Number(v);
}

function metadataQuery(c: Context): { uid?: number; gid?: number; mode?: number } {
  const out: { uid?: number; gid?: number; mode?: number } = {};
  for (const k of ["uid", "gid", "mode"] as const) {
    const v = uintQuery(c, k);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

function pathQuery(c: Context): string {
  const p = c.req.query("path");
  if (p === undefined) throw new InvalidArgumentError("path is required");
  return p;
}

/** The volume content API (`/volumecontent/...`), authenticated by a volume token. */
export function createVolumeContentApp(ctx: E2bContext): Hono {
  const app = new HonoApp<{ Variables: { volume: VolumeInfo } }>();
  app.onError((e) => restErrorResponse(e));
  app.notFound((c) => errorResponse(404, `no route ${c.req.method} ${c.req.path} in Kiln's volume API`));
  app.use("/volumecontent/:id/*", async (c, next) => {
    const auth = c.req.header("authorization") ?? "";
    const token = /^Bearer (.+)$/i.exec(auth)?.[1];
    try {
      c.set("volume", ctx.tokens.checkVolume(token, c.req.param("id")));
    } catch {
      return errorResponse(404, `no volume ${c.req.param("id")}`);
    }
    await next();
  });
  const files = (c: Context<{ Variables: { volume: VolumeInfo } }>) =>
    ctx.kiln.volumeFiles(c.get("volume").id);

  app.get("/volumecontent/:id/dir", async (c) => {
    const depth = uintQuery(c, "depth") ?? 1;
    return c.json((await files(c).list(pathQuery(c), depth)).map(stat));
  });
  app.post("/volumecontent/:id/dir", async (c) => {
    const e = await files(c).mkdir(pathQuery(c), {
      ...metadataQuery(c),
      parents: c.req.query("force") === "true",
    });
    return c.json(stat(e), 201);
  });
  app.get("/volumecontent/:id/path", async (c) => c.json(stat(await files(c).stat(pathQuery(c)))));
  app.patch("/volumecontent/:id/path", async (c) => {
    let body: Record<string, unknown>;
    try {
      body = (await c.req.json()) as Record<string, unknown>;
    } catch {
      throw new InvalidArgumentError("the request body is not JSON");
    }
    const m: { uid?: number; gid?: number; mode?: number } = {};
    for (const k of ["uid", "gid", "mode"] as const) {
      const v = body?.[k];
      if (v === undefined || v === null) continue;
      if (typeof v !== "number") throw new InvalidArgumentError(`${k} must be a number`);
      m[k] = v;
    }
    return c.json(stat(await files(c).setMetadata(pathQuery(c), m)));
  });
  app.delete("/volumecontent/:id/path", async (c) => {
    await files(c).remove(pathQuery(c));
    return c.body(null, 204);
  });
  app.get("/volumecontent/:id/file", async (c) => {
    const { size, stream } = await files(c).read(pathQuery(c));
    return new Response(stream, {
      status: 200,
      headers: { "content-type": "application/octet-stream", "content-length": String(size) },
    });
  });
  app.put("/volumecontent/:id/file", async (c) => {
    const body = c.req.raw.body ?? new ReadableStream<Uint8Array>({ start: (ctl) => ctl.close() });
    const e = await files(c).write(pathQuery(c), body, {
      ...metadataQuery(c),
      maxBytes: DEFAULT_LIMITS.maxFileBytes,
    });
    return c.json(stat(e), 201);
  });
  return app as unknown as Hono;
}
