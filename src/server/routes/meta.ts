/** Server-wide routes: tier readiness and capabilities. */
import { createRoute } from "@hono/zod-openapi";
import { type App, addRoute, json } from "../context.ts";
import { CapabilitiesSchema, ErrorSchema, TierParams, TierStatusSchema } from "../schemas.ts";

const errors = { default: json(ErrorSchema, "an error") };
const tags = ["tiers"];

/** Registers the tier routes. */
export function metaRoutes(app: App): void {
  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/doctor",
      tags,
      summary: "readiness of every tier on the server's machine, and why a tier is not ready",
      responses: { 200: json(TierStatusSchema.array(), "tier statuses"), ...errors },
    }),
    async (c) => c.json(await c.var.state.kiln.doctor({ signal: c.req.raw.signal }), 200),
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/tiers/{tier}/capabilities",
      tags,
      summary: "what a tier can and cannot do",
      request: { params: TierParams },
      responses: { 200: json(CapabilitiesSchema, "capabilities"), ...errors },
    }),
    async (c) => {
      const backend = await c.var.state.kiln.backend(c.req.valid("param").tier);
      return c.json({ ...backend.capabilities }, 200);
    },
  );
}
