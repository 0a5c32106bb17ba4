/** Sandbox state: snapshots, fork, pause and resume. */
import { createRoute } from "@hono/zod-openapi";
import { type App, addRoute, json } from "../context.ts";
import { OWNER_LABEL, ownedRecord, ownedSnapshot, publicInfo, publicSnapshotInfo } from "../ownership.ts";
import {
  ErrorSchema,
  ForkBody,
  IdParams,
  PauseBody,
  SandboxInfoSchema,
  SnapshotBody,
  SnapshotInfoSchema,
  SnapshotParams,
} from "../schemas.ts";

const errors = { default: json(ErrorSchema, "an error (see docs/server.md for codes and statuses)") };
const tags = ["state"];

/** Registers the state routes. */
export function stateRoutes(app: App): void {
  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/snapshots",
      tags,
      summary: "save the sandbox's files as a snapshot (consistent while it runs)",
      request: { params: IdParams, body: { ...json(SnapshotBody, "the snapshot's name"), required: false } },
      responses: { 201: json(SnapshotInfoSchema, "the snapshot"), ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json") ?? {};
      const snap = await c.var.sandbox.snapshot({ ...body, signal: c.req.raw.signal });
      return c.json(publicSnapshotInfo(snap), 201);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/snapshots",
      tags,
      summary: "this key's snapshots, oldest first",
      responses: { 200: json(SnapshotInfoSchema.array(), "the snapshots"), ...errors },
    }),
    async (c) => {
      const list = await c.var.state.kiln.snapshots({ metadata: { [OWNER_LABEL]: c.var.key.id } });
      return c.json(list.map(publicSnapshotInfo), 200);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/snapshots/{snapshotId}",
      tags,
      summary: "a snapshot",
      request: { params: SnapshotParams },
      responses: { 200: json(SnapshotInfoSchema, "the snapshot"), ...errors },
    }),
    async (c) => {
      const { snapshotId } = c.req.valid("param");
      return c.json(publicSnapshotInfo(await ownedSnapshot(c.var.state.kiln, c.var.key.id, snapshotId)), 200);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "delete",
      path: "/v1/snapshots/{snapshotId}",
      tags,
      summary: "delete a snapshot (sandboxes made from it stay)",
      request: { params: SnapshotParams },
      responses: { 204: { description: "deleted" }, ...errors },
    }),
    async (c) => {
      const { snapshotId } = c.req.valid("param");
      await ownedSnapshot(c.var.state.kiln, c.var.key.id, snapshotId);
      await c.var.state.kiln.removeSnapshot(snapshotId, { signal: c.req.raw.signal });
      return c.body(null, 204);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/fork",
      tags,
      summary: "new sandboxes that start from this one's files as they are now (all or none)",
      request: { params: IdParams, body: { ...json(ForkBody, "how many"), required: false } },
      responses: { 201: json(SandboxInfoSchema.array(), "the new sandboxes"), ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json") ?? {};
      // The forks carry the parent's labels, its owner among them; the key's quota applies to each.
      const forks = await c.var.sandbox.fork(body.count ?? 1, { signal: c.req.raw.signal });
      return c.json(await Promise.all(forks.map(async (f) => publicInfo(await f.info()))), 201);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/pause",
      tags,
      summary: "stop the sandbox keeping its state on disk (memory and processes where the tier can)",
      request: { params: IdParams, body: { ...json(PauseBody, "what to keep"), required: false } },
      responses: { 200: json(SandboxInfoSchema, "the sandbox"), ...errors },
    }),
    async (c) => {
      const body = c.req.valid("json") ?? {};
      await c.var.sandbox.pause({ ...body, signal: c.req.raw.signal });
      return c.json(publicInfo(ownedRecord(c.var.state.kiln, c.var.key.id, c.var.sandbox.id)), 200);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/resume",
      tags,
      summary: "start a paused sandbox again (any other call on it does too)",
      request: { params: IdParams },
      responses: { 200: json(SandboxInfoSchema, "the sandbox"), ...errors },
    }),
    async (c) => {
      await c.var.sandbox.resume({ signal: c.req.raw.signal });
      return c.json(publicInfo(ownedRecord(c.var.state.kiln, c.var.key.id, c.var.sandbox.id)), 200);
    },
  );
}
