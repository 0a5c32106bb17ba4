/**
 * Code contexts: the interpreters whose state cells share (`POST .../code`
 * runs a cell in one, by its id). Create, list, restart (state lost) and
 * remove, as `sandbox.codeContexts` does in the library.
 */
import { createRoute } from "@hono/zod-openapi";
import { type App, addRoute, json } from "../context.ts";
import {
  CodeContextSchema,
  ContextParams,
  CreateCodeContextBody,
  ErrorSchema,
  IdParams,
} from "../schemas.ts";

const errors = { default: json(ErrorSchema, "an error") };
const tags = ["code"];

/** Registers the code-context routes. */
export function codeContextRoutes(app: App): void {
  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/code/contexts",
      tags,
      summary:
        "create a code context (language python, js or bash; default python) and start its interpreter; invalid_argument for an unknown language or an id in use, unsupported where the tier has no such interpreter",
      request: {
        params: IdParams,
        body: { ...json(CreateCodeContextBody, "the context"), required: false },
      },
      responses: { 201: json(CodeContextSchema, "the context"), ...errors },
    }),
    async (c) => {
      const { language, cwd, id } = c.req.valid("json") ?? {};
      const ctx = await c.var.sandbox.codeContexts.create({
        ...(language !== undefined ? { language } : {}),
        ...(cwd !== undefined ? { cwd } : {}),
        ...(id !== undefined ? { id } : {}),
      });
      return c.json(ctx, 201);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/code/contexts",
      tags,
      summary: "list the sandbox's code contexts, oldest first",
      request: { params: IdParams },
      responses: { 200: json(CodeContextSchema.array(), "the contexts"), ...errors },
    }),
    (c) => c.json(c.var.sandbox.codeContexts.list(), 200),
  );

  addRoute(
    app,
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/code/contexts/{context}/restart",
      tags,
      summary: "restart a context's interpreter (its state is lost); not_found for an unknown context",
      request: { params: ContextParams },
      responses: { 204: { description: "restarted" }, ...errors },
    }),
    async (c) => {
      await c.var.sandbox.codeContexts.restart(c.req.valid("param").context);
      return c.body(null, 204);
    },
  );

  addRoute(
    app,
    createRoute({
      method: "delete",
      path: "/v1/sandboxes/{id}/code/contexts/{context}",
      tags,
      summary: "remove a context and end its interpreter; not_found for an unknown context",
      request: { params: ContextParams },
      responses: { 204: { description: "removed" }, ...errors },
    }),
    async (c) => {
      await c.var.sandbox.codeContexts.remove(c.req.valid("param").context);
      return c.body(null, 204);
    },
  );
}
