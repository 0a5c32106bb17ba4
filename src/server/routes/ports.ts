/**
 * Inbound ports of a sandbox: its port policy (`GET`/`PATCH …/ports`) and
 * per-port tokens (`POST …/ports/{port}/token`). The ports themselves are
 * served by the host router (src/server/host-router), not by these routes.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { checkPort, sandboxHostName } from "../../index.ts";
import { type App, addRoute, json } from "../context.ts";
import { PORT_TOKEN_PARAM } from "../host-router/index.ts";
import { ErrorSchema, IdParams, PortPolicySchema } from "../schemas.ts";

const errors = { default: json(ErrorSchema, "an error (see docs/server.md for codes and statuses)") };
const tags = ["ports"];

/** Default lifetime of a per-port token: one hour. */
export const DEFAULT_PORT_TOKEN_TTL_MS = 3_600_000;

const PortParams = IdParams.extend({
  port: z.coerce
    .number()
    .int()
    .openapi({ param: { name: "port", in: "path" }, type: "integer", example: 8000 }),
});

const PortsInfo = z
  .object({
    policy: PortPolicySchema,
    domain: z
      .string()
      .nullable()
      .openapi({ description: "the domain ports are served under, if the server has one" }),
  })
  .openapi("Ports");

const TokenBody = z
  .object({
    ttlMs: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .openapi({ description: "lifetime in ms; 0: as long as the sandbox; default 3,600,000 (1 hour)" }),
  })
  .strict()
  .openapi("PortTokenRequest");

const TokenInfo = z
  .object({
    token: z
      .string()
      .openapi({ description: "send as X-Kiln-Port-Token, or ?kiln_token= (browsers, WebSockets)" }),
    port: z.number().int(),
    expiresAt: z.string().nullable(),
    host: z
      .string()
      .nullable()
      .openapi({ description: "`{port}-{id}.{domain}` when the server has a domain" }),
    pathUrl: z.string().openapi({ description: "the path form's URL, with the token in its query" }),
  })
  .openapi("PortToken");

/** Registers the port routes. */
export function portRoutes(app: App): void {
  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/ports",
      tags,
      summary: "the sandbox's port policy",
      request: { params: IdParams },
      responses: { 200: json(PortsInfo, "the policy"), ...errors },
    }),
    async (c) => c.json({ policy: c.var.sandbox.ports.policy(), domain: c.var.state.domain ?? null }, 200),
  );

  addRoute(
    app,
    createRoute({
      method: "patch",
      path: "/v1/sandboxes/{id}/ports",
      tags,
      summary: "change the port policy for new connections (unset fields stay)",
      request: {
        params: IdParams,
        body: { ...json(PortPolicySchema.partial().strict(), "the changes"), required: true },
      },
      responses: { 200: json(PortsInfo, "the new policy"), ...errors },
    }),
    async (c) => {
      const policy = c.var.sandbox.ports.update(c.req.valid("json"));
      return c.json({ policy, domain: c.var.state.domain ?? null }, 200);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/ports/{port}/token",
      tags,
      summary: "a token that reaches one port of the sandbox (ended by key revocation or sandbox deletion)",
      request: { params: PortParams, body: { ...json(TokenBody, "the token's lifetime"), required: false } },
      responses: { 201: json(TokenInfo, "the token"), ...errors },
    }),
    async (c) => {
      const port = checkPort(c.req.valid("param").port);
      const ttlMs =
        (c.req.header("content-length") ? c.req.valid("json").ttlMs : undefined) ?? DEFAULT_PORT_TOKEN_TTL_MS;
      const info = await c.var.sandbox.info();
      const expiresAtMs = ttlMs === 0 ? undefined : Date.now() + ttlMs;
      const token = c.var.state.tokens.issue(info, `port:${port}`, expiresAtMs);
      const origin = new URL(c.req.url).origin;
      const domain = c.var.state.domain;
      return c.json(
        {
          token,
          port,
          expiresAt: expiresAtMs === undefined ? null : new Date(expiresAtMs).toISOString(),
          host: domain ? sandboxHostName(port, info.id, domain) : null,
          pathUrl: `${origin}/v1/sandboxes/${info.id}/ports/${port}/proxy/?${PORT_TOKEN_PARAM}=${encodeURIComponent(token)}`,
        },
        201,
      );
    },
  );
}
