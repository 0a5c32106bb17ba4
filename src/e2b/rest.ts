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
  snapshotListed,
  stringRecord,
  TIER_KEY,
  templateError,
  templateOnTier,
} from "./mapping.ts";
import { CpuSampler } from "./metrics.ts";
import { e2bNetworkPolicy } from "./network.ts";
import { volumeRestRoutes } from "./volumes.ts";

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

/** E2B's `volumeMounts` (`[{ name, path }]`) as Kiln's `volumes`. @throws InvalidArgumentError */
function volumeMountsOf(v: unknown): { volume: string; path: string }[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new InvalidArgumentError("volumeMounts must be an array");
  return v.map((m: unknown) => {
    const { name, path } = (m ?? {}) as { name?: unknown; path?: unknown };
    if (typeof name !== "string" || typeof path !== "string")
      throw new InvalidArgumentError("each of volumeMounts is { name, path }");
    return { volume: name, path };
  });
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

  /**
   * `network.allowPublicTraffic`: true makes every port public (no key or token needed through
   * the router); false, or absent (unlike E2B's cloud, where public is the default), leaves every
   * port needing the owner's key or a per-port token.
   */
  const publicTrafficPorts = (network: unknown): { ports?: { public: "all" | number[] } } => {
    const allow = (network as { allowPublicTraffic?: unknown } | null | undefined)?.allowPublicTraffic;
    if (allow === undefined) return {};
    if (typeof allow !== "boolean")
      throw new InvalidArgumentError("network.allowPublicTraffic must be a boolean");
    return { ports: { public: allow ? "all" : [] } };
  };

  app.post("/v2/sandboxes", async (c) => {
    const body = await jsonBody(c.req.raw);
    const metadata = stringRecord(body.metadata, "metadata");
    const envs = stringRecord(body.envVars, "envVars");
    if (body.templateID !== undefined && typeof body.templateID !== "string") {
      throw new InvalidArgumentError("templateID must be a string");
    }
    // `Sandbox.create(snapshotId)`: the template id names a snapshot of this owner.
    const snapshot =
      typeof body.templateID === "string" && body.templateID.startsWith("snap_")
        ? body.templateID
        : undefined;
    const resolved = snapshot
      ? { tier: undefined, template: undefined }
      : resolveTemplate(body.templateID, metadata, await ctx.defaultTier());
    const { tier } = resolved;
    let { template } = resolved;
    if (tier !== undefined && template !== undefined) {
      await checkTemplateOnTier(ctx.kiln, tier, template);
      template = await templateOnTier(ctx.kiln, tier, template);
    }
    const volumes = volumeMountsOf(body.volumeMounts);
    delete metadata[TIER_KEY];
    // E2B's `timeout` (seconds) is the sandbox's lifetime.
    const lifetimeMs = secondsToMs(body.timeout) ?? ctx.defaultTimeoutMs;
    const access = c.get("access");
    let sb: Awaited<ReturnType<SandboxAccess["create"]>>;
    try {
      sb = await access.create({
        ...(snapshot ? { snapshot } : { tier, template }),
        metadata,
        env: envs,
        lifetimeMs,
        // lifecycle.onTimeout "pause": the end of the lifetime pauses it; connect resumes it.
        // `onTimeout: { action: "pause", keepMemory: false }` arrives as autoPauseMemory: false.
        ...(body.autoPause === true
          ? { onExpiry: body.autoPauseMemory === false ? ("pause-files" as const) : ("pause" as const) }
          : {}),
        ...publicTrafficPorts(body.network),
        ...(volumes.length > 0 ? { volumes } : {}),
        network: e2bNetworkPolicy(body.allow_internet_access, body.network, ctx.defaultEgress),
        signal: c.req.raw.signal,
      });
    } catch (e) {
      throw templateError(e, template ?? "");
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
      ctx.kiln.setLifetime(id, ms);
    }
    // Connecting resumes a paused sandbox (E2B answers 201 then, 200 for a running one).
    const sb = await access.get(id, c.req.raw.signal);
    const wasPaused = info.state === "paused";
    if (wasPaused) {
      await sb.resume({ signal: c.req.raw.signal });
      // A sandbox its lifetime paused (autoPause) has none left: it gets a new one, as in E2B.
      if (access.record(id).expiresAt === null)
        ctx.kiln.setLifetime(id, ms && ms > 0 ? ms : ctx.defaultTimeoutMs);
    }
    return c.json(sandboxCreated(ctx, access.record(id)), wasPaused ? 201 : 200);
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
    else ctx.kiln.setLifetime(id, ms);
    return c.body(null, 204);
  });

  const cpu = new CpuSampler();
  app.get("/sandboxes/:id/metrics", async (c) => {
    const id = c.req.param("id");
    const info = c.get("access").record(id);
    const sb = await c.get("access").get(id, c.req.raw.signal);
    return c.json([await cpu.sample(info, () => sb.stats({ signal: c.req.raw.signal }))]);
  });

  const unsupported = (what: string) => () => {
    throw new UnsupportedError(`${what} is not supported by Kiln's E2B API`);
  };
  // E2B: 204 when paused, 409 when it already was. `memory: false` asks for the files only.
  app.post("/sandboxes/:id/pause", async (c) => {
    const id = c.req.param("id");
    const body = await jsonBody(c.req.raw);
    const access = c.get("access");
    if (access.record(id).state === "paused") return errorResponse(409, `sandbox ${id} is already paused`);
    const sb = await access.get(id, c.req.raw.signal);
    await sb.pause({ ...(body.memory === false ? { keepMemory: false } : {}), signal: c.req.raw.signal });
    return c.body(null, 204);
  });
  // The legacy resume: like connect on a paused sandbox.
  app.post("/sandboxes/:id/resume", async (c) => {
    const id = c.req.param("id");
    const access = c.get("access");
    if (access.record(id).state !== "paused") return errorResponse(409, `sandbox ${id} is not paused`);
    await (await access.get(id, c.req.raw.signal)).resume({ signal: c.req.raw.signal });
    return c.json(sandboxCreated(ctx, access.record(id)), 201);
  });
  app.post("/sandboxes/:id/fork", async (c) => {
    const id = c.req.param("id");
    const body = await jsonBody(c.req.raw);
    const count = body.count === undefined ? 1 : body.count;
    if (typeof count !== "number" || !Number.isInteger(count))
      throw new InvalidArgumentError("count must be an integer");
    const ms = secondsToMs(body.timeout);
    const sb = await c.get("access").get(id, c.req.raw.signal);
    const forks = await sb.fork(count, { signal: c.req.raw.signal });
    const out: Record<string, unknown>[] = [];
    for (const f of forks) {
      if (ms !== undefined && ms > 0) ctx.kiln.setLifetime(f.id, ms);
      out.push({ sandbox: sandboxCreated(ctx, await f.info()) });
    }
    return c.json(out, 201);
  });
  app.post("/sandboxes/:id/snapshots", async (c) => {
    const id = c.req.param("id");
    const body = await jsonBody(c.req.raw);
    if (body.name !== undefined && typeof body.name !== "string")
      throw new InvalidArgumentError("name must be a string");
    const sb = await c.get("access").get(id, c.req.raw.signal);
    const snap = await sb.snapshot({ ...(body.name ? { name: body.name } : {}), signal: c.req.raw.signal });
    return c.json(snapshotListed(snap), 201);
  });
  app.get("/snapshots", async (c) => {
    const url = new URL(c.req.url);
    const from = url.searchParams.get("sandboxID");
    const name = url.searchParams.get("name");
    const all = (await c.get("access").snapshots(c.req.raw.signal)).filter(
      (s) => (!from || s.sandboxId === from) && (!name || s.name === name),
    );
    const { items, next } = page(all, url);
    const headers: Record<string, string> = next ? { "x-next-token": next } : {};
    return Response.json(items.map(snapshotListed), { status: 200, headers });
  });
  // `Sandbox.deleteSnapshot` deletes the template the snapshot is.
  app.delete("/templates/:id{snap_[a-z0-9]{20}}", async (c) => {
    const id = c.req.param("id");
    await c.get("access").snapshot(id);
    await ctx.kiln.removeSnapshot(id, { signal: c.req.raw.signal });
    return c.body(null, 204);
  });
  // `Sandbox.updateNetwork`: the whole configuration replaced; omitted fields are cleared.
  app.put("/sandboxes/:id/network", async (c) => {
    const body = await jsonBody(c.req.raw);
    const sb = await c.get("access").get(c.req.param("id"), c.req.raw.signal);
    await sb.network.update(e2bNetworkPolicy(body.allow_internet_access, body, ctx.defaultEgress), {
      signal: c.req.raw.signal,
    });
    return c.body(null, 204);
  });
  app.all("/templates/*", unsupported("building templates through the E2B API (use `kiln template`)"));
  app.all("/v2/templates/*", unsupported("building templates through the E2B API (use `kiln template`)"));
  app.all("/v3/templates", unsupported("building templates through the E2B API (use `kiln template`)"));
  volumeRestRoutes(app, ctx);
  app.all("/secrets/*", unsupported("secrets"));

  return app;
}
