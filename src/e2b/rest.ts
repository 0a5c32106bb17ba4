/**
 * E2B's REST API (the part the `Sandbox` class calls through `apiUrl`), over
 * Kiln: create, connect, list, get, kill and set the timeout of sandboxes.
 * Every route needs `X-API-KEY`; the key's owner scopes what the caller
 * sees (a sandbox of another owner is a 404, like one that does not exist).
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { InvalidArgumentError, UnsupportedError } from "../core/errors.ts";
import type { SandboxInfo } from "../core/types.ts";
import { checkMetadataSize } from "../index.ts";
import { publicMetadata, SandboxAccess } from "../mcp/access.ts";
import { apiKeyOf } from "./auth.ts";
import type { E2bContext } from "./context.ts";
import { errorResponse, restErrorResponse } from "./errors.ts";
import {
  checkTemplateOnTier,
  resolveTemplate,
  sandboxCreated,
  sandboxDetail,
  sandboxListed,
  secondsToMs,
  stringRecord,
  TIER_KEY,
  templateError,
} from "./mapping.ts";

type Env = { Variables: { access: SandboxAccess } };

async function jsonBody(req: Request): Promise<Record<string, unknown>> {
  const text = await req.text();
  if (text.trim() === "") return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new InvalidArgumentError("the request body is not JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new InvalidArgumentError("the request body must be a JSON object");
  }
  return v as Record<string, unknown>;
}

/** Metadata pairs of the list query: `metadata=<urlencoded k=v&...>`, keys and values URI-encoded once more. */
function metadataQuery(q: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!q) return out;
  for (const [k, v] of new URLSearchParams(q)) {
    try {
      out[decodeURIComponent(k)] = decodeURIComponent(v);
    } catch {
      throw new InvalidArgumentError("malformed metadata query");
    }
  }
  return out;
}

function listFilter(url: URL): (info: SandboxInfo) => boolean {
  const metadata = metadataQuery(url.searchParams.get("metadata") ?? undefined);
  checkMetadataSize(metadata, "metadata filter");
  const states = (url.searchParams.getAll("state").join(",") || "running,paused")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const template = url.searchParams.get("template") ?? undefined;
  const after = url.searchParams.get("startedAfter");
  const afterMs = after ? Date.parse(after) : undefined;
  return (info) => {
    const pub = publicMetadata(info.metadata);
    for (const [k, v] of Object.entries(metadata)) if (pub[k] !== v) return false;
    if (!states.includes(info.state === "running" ? "running" : "paused")) return false;
    if (template && info.template !== template) return false;
    if (afterMs !== undefined && Date.parse(info.createdAt) <= afterMs) return false;
    return true;
  };
}

/** A page of a sorted list: `nextToken` is the offset of the next page. */
function page<T>(items: T[], url: URL): { items: T[]; next: string | undefined } {
  const limitQ = url.searchParams.get("limit");
  const limit = limitQ ? Number(limitQ) : 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw new InvalidArgumentError("limit must be an integer from 1 to 1000");
  const tokenQ = url.searchParams.get("nextToken");
  const start = tokenQ ? Number(Buffer.from(tokenQ, "base64url").toString()) : 0;
  if (!Number.isInteger(start) || start < 0) throw new InvalidArgumentError("malformed nextToken");
  const end = start + limit;
  return {
    items: items.slice(start, end),
    next: end < items.length ? Buffer.from(String(end)).toString("base64url") : undefined,
  };
}

/** The REST routes, as a Hono app. */
export function createRestApp(ctx: E2bContext): Hono<Env> {
  const app = new Hono<Env>();

  app.onError((e) => restErrorResponse(e));
  app.notFound((c) => errorResponse(404, `no route ${c.req.method} ${c.req.path} in Kiln's E2B API`));

  app.use(
    "*",
    bodyLimit({
      maxSize: ctx.maxBodyBytes,
      onError: () => {
        // The body stays unread: this connection cannot carry another request.
        const res = errorResponse(413, `the request body is over ${ctx.maxBodyBytes} bytes`);
        res.headers.set("connection", "close");
        return res;
      },
    }),
  );
  app.use("*", async (c, next) => {
    const key = apiKeyOf(c.req.raw);
    const who = key ? await ctx.authenticate(key) : undefined;
    if (!who) return errorResponse(401, "invalid or missing API key (X-API-KEY)");
    c.set("access", new SandboxAccess(ctx.kiln, who.owner));
    await next();
  });

  app.post("/v2/sandboxes", async (c) => {
    const body = await jsonBody(c.req.raw);
    const metadata = stringRecord(body.metadata, "metadata");
    const envs = stringRecord(body.envVars, "envVars");
    if (body.templateID !== undefined && typeof body.templateID !== "string") {
      throw new InvalidArgumentError("templateID must be a string");
    }
    const { tier, template } = resolveTemplate(body.templateID, metadata, await ctx.defaultTier());
    await checkTemplateOnTier(ctx.kiln, tier, template);
    if (body.autoPause === true)
      throw new UnsupportedError("Kiln sandboxes cannot pause: autoPause is not supported");
    if (Array.isArray(body.volumeMounts) && body.volumeMounts.length > 0) {
      throw new UnsupportedError("volume mounts are not supported by Kiln");
    }
    delete metadata[TIER_KEY];
    const timeoutMs = secondsToMs(body.timeout) ?? ctx.defaultTimeoutMs;
    const access = c.get("access");
    let sb: Awaited<ReturnType<SandboxAccess["create"]>>;
    try {
      sb = await access.create({ tier, template, metadata, env: envs, timeoutMs, signal: c.req.raw.signal });
    } catch (e) {
      throw templateError(e, template);
    }
    return c.json(sandboxCreated(ctx, await sb.info()), 201);
  });

  app.post("/v2/sandboxes/:id/connect", async (c) => {
    const id = c.req.param("id");
    const body = await jsonBody(c.req.raw);
    const access = c.get("access");
    const info = access.record(id);
    const ms = secondsToMs(body.timeout);
    // Like E2B: connecting extends the lifetime, never shortens it.
    if (
      ms !== undefined &&
      ms > 0 &&
      info.expiresAt !== null &&
      Date.parse(info.expiresAt) < Date.now() + ms
    ) {
      ctx.kiln.setTimeout(id, ms);
    }
    await access.get(id, c.req.raw.signal);
    return c.json(sandboxCreated(ctx, access.record(id)), 200);
  });

  const list = async (c: { req: { raw: Request; url: string }; get: (k: "access") => SandboxAccess }) => {
    const url = new URL(c.req.url);
    const keep = listFilter(url);
    const all = (await c.get("access").list(c.req.raw.signal))
      .filter(keep)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    if (url.searchParams.get("order") === "desc") all.reverse();
    const { items, next } = page(all, url);
    const headers: Record<string, string> = next ? { "x-next-token": next } : {};
    return Response.json(
      items.map((i) => sandboxListed(ctx, i)),
      { status: 200, headers },
    );
  };
  app.get("/v2/sandboxes", (c) => list(c));
  app.get("/sandboxes", (c) => list(c));

  app.get("/sandboxes/:id", (c) => c.json(sandboxDetail(ctx, c.get("access").record(c.req.param("id")))));

  app.delete("/sandboxes/:id", async (c) => {
    await c.get("access").kill(c.req.param("id"), c.req.raw.signal);
    return c.body(null, 204);
  });

  app.post("/sandboxes/:id/timeout", async (c) => {
    const id = c.req.param("id");
    const body = await jsonBody(c.req.raw);
    c.get("access").record(id);
    const ms = secondsToMs(body.timeout);
    if (ms === undefined) throw new InvalidArgumentError("timeout is required");
    // E2B has no "never": a timeout of 0 ends the sandbox at once, as in E2B.
    if (ms === 0) await c.get("access").kill(id);
    else ctx.kiln.setTimeout(id, ms);
    return c.body(null, 204);
  });

  app.get("/sandboxes/:id/metrics", async (c) => {
    const id = c.req.param("id");
    const info = c.get("access").record(id);
    const stats = await (await c.get("access").get(id, c.req.raw.signal)).stats();
    return c.json([
      {
        timestamp: new Date().toISOString(),
        timestampUnix: Math.floor(Date.now() / 1000),
        cpuCount: Math.max(1, Math.ceil(info.limits.cpuCount)),
        cpuUsedPct: 0,
        memUsed: stats.memoryBytes ?? 0,
        memTotal: info.limits.memoryBytes,
        memCache: 0,
        diskUsed: stats.diskBytes ?? 0,
        diskTotal: info.limits.diskBytes,
      },
    ]);
  });

  const unsupported = (what: string) => () => {
    throw new UnsupportedError(`${what} is not supported by Kiln's E2B API`);
  };
  app.post("/sandboxes/:id/pause", (c) => {
    c.get("access").record(c.req.param("id"));
    return unsupported("pausing a sandbox")();
  });
  app.post("/sandboxes/:id/resume", unsupported("resuming a sandbox"));
  app.post("/sandboxes/:id/fork", unsupported("forking a sandbox"));
  app.post("/sandboxes/:id/snapshots", unsupported("snapshots"));
  app.put("/sandboxes/:id/network", unsupported("network configuration"));
  app.all("/templates/*", unsupported("building templates through the E2B API (use `kiln template`)"));
  app.all("/v2/templates/*", unsupported("building templates through the E2B API (use `kiln template`)"));
  app.all("/v3/templates", unsupported("building templates through the E2B API (use `kiln template`)"));
  app.all("/volumes/*", unsupported("volumes"));
  app.all("/secrets/*", unsupported("secrets"));

  return app;
}
