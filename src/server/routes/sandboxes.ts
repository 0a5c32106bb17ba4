/** Sandbox lifecycle: create, list, get, kill, timeout, move, logs, stats. */
import { createRoute } from "@hono/zod-openapi";
import { InvalidArgumentError } from "../../core/errors.ts";
import { resolveLimits } from "../../core/limits.ts";
import { type App, addRoute, json } from "../context.ts";
import { checkClientMetadata, OWNER_LABEL, ownedList, ownedRecord, publicInfo } from "../ownership.ts";
import { checkQuotas, serializedPerKey } from "../quotas.ts";
import {
  AuditEntrySchema,
  CreateSandboxBody,
  ErrorSchema,
  IdParams,
  ListSandboxesQuery,
  LogsQuery,
  MoveBody,
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
      const key = c.var.key;
      const limits = resolveLimits(body.limits);
      const sb = await serializedPerKey(key.id, async () => {
        await checkQuotas(kiln, key, limits.memoryBytes);
        return kiln.create({
          ...body,
          limits,
          metadata: { ...(body.metadata ?? {}), [OWNER_LABEL]: key.id },
          signal: c.req.raw.signal,
        });
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
      const all = await ownedList(c.var.state.kiln, c.var.key.id);
      const out = all.filter((r) => {
        if (q.state && r.state !== q.state) return false;
        for (const [k, v] of Object.entries(metadata)) if (r.metadata[k] !== v) return false;
        return true;
      });
      return c.json(out.map(publicInfo), 200);
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
      c.var.state.processes.forget(id);
      return c.body(null, 204);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/timeout",
      tags,
      summary: "set the sandbox's lifetime from now (0: no expiry)",
      request: { params: IdParams, body: { ...json(TimeoutBody, "the lifetime"), required: true } },
      responses: { 200: json(SandboxInfoSchema, "the sandbox"), ...errors },
    }),
    async (c) => {
      await c.var.sandbox.setTimeout(c.req.valid("json").timeoutMs);
      return c.json(publicInfo(await c.var.sandbox.info()), 200);
    },
  );

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
      await c.var.sandbox.move(c.req.valid("json").tier, { signal: c.req.raw.signal });
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
      path: "/v1/sandboxes/{id}/stats",
      tags,
      summary: "current resource use",
      request: { params: IdParams },
      responses: { 200: json(StatsSchema, "usage figures"), ...errors },
    }),
    async (c) => c.json(await c.var.sandbox.stats({ signal: c.req.raw.signal }), 200),
  );
}
