/** Sandbox lifecycle: create, list, get, kill, timeout, move, logs, stats. */
import { createRoute } from "@hono/zod-openapi";
import { InvalidArgumentError } from "../../core/errors.ts";
import { checkMetadataSize, type SandboxInfo } from "../../index.ts";
import { type App, addRoute, json } from "../context.ts";
import {
  checkClientMetadata,
  OWNER_LABEL,
  ownedList,
  ownedRecord,
  ownedSnapshot,
  publicInfo,
} from "../ownership.ts";
import {
  AuditEntrySchema,
  CreateSandboxBody,
  ErrorSchema,
  IdParams,
  LifetimeBody,
  ListSandboxesQuery,
  LogsQuery,
  MoveBody,
  NetworkAuditEntrySchema,
  NetworkSchema,
  NetworkSettingsSchema,
  SandboxInfoSchema,
  StatsSchema,
  TimeoutBody,
} from "../schemas.ts";

const errors = { default: json(ErrorSchema, "an error (see docs/server.md for codes and statuses)") };
const tags = ["sandboxes"];

function parseLabels(q: string | string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of q === undefined ? [] : Array.isArray(q) ? q : [q]) {
    const i = item.indexOf("=");
    if (i <= 0)
      throw new InvalidArgumentError(`metadata filter must be key=value, got ${JSON.stringify(item)}`);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

/**
 * One page of sandboxes, oldest first (creation time, then id). The next
 * page's token is the last item's (createdAt, id), so a page is never
 * skipped or repeated when sandboxes come and go between requests.
 * @throws InvalidArgumentError for a malformed token
 */
function pageOf(
  list: SandboxInfo[],
  limit: number,
  token: string | undefined,
): { items: SandboxInfo[]; next: string | undefined } {
  const key = (s: SandboxInfo) => `${s.createdAt}\u0000${s.id}`;
  const sorted = [...list].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  let after: string | undefined;
  if (token !== undefined) {
    after = Buffer.from(token, "base64url").toString("utf8");
    if (!/^[0-9T:.Z-]+\u0000sb_[a-z0-9]{20}$/.test(after))
      throw new InvalidArgumentError("malformed nextToken");
  }
  const rest = after === undefined ? sorted : sorted.filter((s) => key(s) > after);
  const items = rest.slice(0, limit);
  const last = items.at(-1);
  return {
    items,
    next: rest.length > limit && last ? Buffer.from(key(last)).toString("base64url") : undefined,
  };
}

/** Registers the sandbox routes. */
export function sandboxRoutes(app: App): void {
  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes",
      tags,
      summary: "create a sandbox",
      request: { body: { ...json(CreateSandboxBody, "the sandbox"), required: true } },
      responses: { 201: json(SandboxInfoSchema, "the new sandbox"), ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json");
      checkClientMetadata(body.metadata);
      const { kiln } = c.var.state;
      if (body.snapshot !== undefined) await ownedSnapshot(kiln, c.var.key.id, body.snapshot);
      // The key's quota and the host's budget are checked by kiln.create (src/server/quotas.ts).
      const sb = await kiln.create({
        ...body,
        metadata: { ...(body.metadata ?? {}), [OWNER_LABEL]: c.var.key.id },
        signal: c.req.raw.signal,
      });
      return c.json(publicInfo(await sb.info()), 201);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/sandboxes",
      tags,
      summary: "list this key's sandboxes",
      request: { query: ListSandboxesQuery },
      responses: { 200: json(SandboxInfoSchema.array(), "the sandboxes"), ...errors },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const metadata = parseLabels(c.req.queries("metadata") ?? q.metadata);
      checkClientMetadata(metadata);
      checkMetadataSize(metadata, "metadata filter");
      const all = await ownedList(c.var.state.kiln, c.var.key.id);
      const out = all.filter((r) => {
        if (q.state && r.state !== q.state) return false;
        for (const [k, v] of Object.entries(metadata)) if (r.metadata[k] !== v) return false;
        return true;
      });
      const { items, next } = pageOf(out, q.limit ?? 1000, q.nextToken);
      if (next) c.header("x-next-token", next);
      return c.json(items.map(publicInfo), 200);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}",
      tags,
      summary: "a sandbox's record",
      request: { params: IdParams },
      responses: { 200: json(SandboxInfoSchema, "the sandbox"), ...errors },
    }),
    async (c) => c.json(publicInfo(await c.var.sandbox.info()), 200),
  );

  addRoute(
    app,
    createRoute({
      method: "delete",
      path: "/v1/sandboxes/{id}",
      tags,
      summary: "kill a sandbox and delete its workspace",
      request: { params: IdParams },
      responses: { 204: { description: "killed" }, ...errors },
    }),
    async (c) => {
      const id = c.var.sandbox.id;
      await c.var.state.kiln.kill(id, { signal: c.req.raw.signal });
      return c.body(null, 204);
    },
  );

  // The lifetime, and its old name (`/timeout`, body `timeoutMs`), kept as a deprecated alias.
  for (const [path, body, field, deprecated] of [
    ["lifetime", LifetimeBody, "lifetimeMs", false],
    ["timeout", TimeoutBody, "timeoutMs", true],
  ] as const) {
    addRoute(
      app,
      createRoute({
        method: "post",
        path: `/v1/sandboxes/{id}/${path}`,
        tags,
        ...(deprecated ? { deprecated } : {}),
        summary: deprecated
          ? "the old name of POST /v1/sandboxes/{id}/lifetime (body timeoutMs)"
          : "set the sandbox's lifetime from now (0: no expiry)",
        request: { params: IdParams, body: { ...json(body, "the lifetime"), required: true } },
        responses: { 200: json(SandboxInfoSchema, "the sandbox"), ...errors },
      }),
      async (c) => {
        await c.var.sandbox.setLifetime((c.req.valid("json") as Record<typeof field, number>)[field]);
        return c.json(publicInfo(await c.var.sandbox.info()), 200);
      },
    );
  }

  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/move",
      tags,
      summary: "move the workspace to another tier",
      request: { params: IdParams, body: { ...json(MoveBody, "the target tier"), required: true } },
      responses: { 200: json(SandboxInfoSchema, "the sandbox"), ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json");
      await c.var.sandbox.move(body.tier, {
        signal: c.req.raw.signal,
        ...(body.allowUnenforcedLimits ? { allowUnenforcedLimits: true } : {}),
      });
      return c.json(publicInfo(ownedRecord(c.var.state.kiln, c.var.key.id, c.var.sandbox.id)), 200);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/logs",
      tags,
      summary: "the audit log: the newest `limit` commands, oldest first",
      request: { params: IdParams, query: LogsQuery },
      responses: { 200: json(AuditEntrySchema.array(), "audit entries"), ...errors },
    }),
    async (c) => {
      const { limit } = c.req.valid("query");
      return c.json(await c.var.sandbox.logs(limit === undefined ? {} : { limit }), 200);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/network-logs",
      tags,
      summary:
        "the network audit log: the newest `limit` connections, requests and DNS queries, oldest first",
      request: { params: IdParams, query: LogsQuery },
      responses: { 200: json(NetworkAuditEntrySchema.array(), "network audit entries"), ...errors },
    }),
    async (c) => {
      const { limit } = c.req.valid("query");
      return c.json(await c.var.sandbox.networkLogs(limit === undefined ? {} : { limit }), 200);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/network",
      tags,
      summary: "the sandbox's network policy",
      request: { params: IdParams },
      responses: { 200: json(NetworkSettingsSchema, "the policy in force"), ...errors },
    }),
    async (c) => c.json(await c.var.sandbox.network.get(), 200),
  );

  addRoute(
    app,
    createRoute({
      method: "put",
      path: "/v1/sandboxes/{id}/network",
      tags,
      summary:
        "replace the network policy of a running sandbox: new connections, requests and DNS questions see it; open connections stay",
      request: {
        params: IdParams,
        body: { ...json(NetworkSchema, "the whole new policy (as `network` at create)"), required: true },
      },
      responses: { 200: json(NetworkSettingsSchema, "the policy now in force"), ...errors },
    }),
    async (c) => c.json(await c.var.sandbox.network.update(c.req.valid("json")), 200),
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/stats",
      tags,
      summary: "current resource use",
      request: { params: IdParams },
      responses: { 200: json(StatsSchema, "usage figures"), ...errors },
    }),
    async (c) => c.json(await c.var.sandbox.stats({ signal: c.req.raw.signal }), 200),
  );
}
