/**
 * The HTTP app: authentication, ownership, the routes per resource, the one
 * error shape, and the OpenAPI document generated from the routes' schemas.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { KilnError } from "../core/errors.ts";
import { authenticate } from "./auth.ts";
import { limitBodies } from "./body-limit.ts";
import type { App, AppEnv, ServerState } from "./context.ts";
import { mountDashboard } from "./dashboard/index.ts";
import { errorBody, invalidArgumentFromZod, onError } from "./errors.ts";
import { mountMcp } from "./mounts.ts";
import { ownedSandbox } from "./ownership.ts";
import { codeContextRoutes } from "./routes/code-contexts.ts";
import { commandRoutes } from "./routes/commands.ts";
import { fileRoutes } from "./routes/files.ts";
import { metaRoutes } from "./routes/meta.ts";
import { portRoutes } from "./routes/ports.ts";
import { sandboxRoutes } from "./routes/sandboxes.ts";
import { stateRoutes } from "./routes/state.ts";
import { volumeRoutes } from "./routes/volumes.ts";

/** Path of the OpenAPI document (served without authentication). */
export const OPENAPI_PATH = "/v1/openapi.json";

/** Builds the app over shared server state. */
export function createApp(state: ServerState): App {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw invalidArgumentFromZod(result.error);
    },
  });
  app.onError(onError);
  app.notFound((c) =>
    c.json(errorBody(new KilnError("not_found", `no route ${c.req.method} ${c.req.path}`)), 404),
  );

  app.use("*", async (c, next) => {
    c.set("state", state);
    if (state.draining) {
      c.header("connection", "close");
      throw new KilnError("tier_unavailable", "the server is shutting down");
    }
    await next();
  });
  app.use("*", limitBodies(state.maxBodyBytes));
  app.use("/v1/*", async (c, next) => (c.req.path === OPENAPI_PATH ? next() : authenticate(c, next)));
  const owned = async (c: Parameters<typeof authenticate>[0], next: () => Promise<void>) => {
    c.set("sandbox", await ownedSandbox(state.kiln, c.var.key.id, c.req.param("id") ?? "", c.req.raw.signal));
    await next();
  };
  app.use("/v1/sandboxes/:id", owned);
  app.use("/v1/sandboxes/:id/*", owned);
  // The web dashboard: its assets at / and /dashboard/, live events at GET /v1/events (docs/dashboard.md).
  mountDashboard(app, state);
  mountMcp(app, state);

  sandboxRoutes(app);
  stateRoutes(app);
  volumeRoutes(app);
  fileRoutes(app);
  portRoutes(app);
  commandRoutes(app);
  codeContextRoutes(app);
  metaRoutes(app);

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer" });
  app.openAPIRegistry.registerComponent("securitySchemes", "apiKey", {
    type: "apiKey",
    in: "header",
    name: "X-API-Key",
  });
  app.doc31(OPENAPI_PATH, {
    openapi: "3.1.0",
    info: {
      title: "Kiln",
      version: "0.1.0",
      description:
        "Sandboxes for AI agents and untrusted code. Errors: { error: { code, message, ...details } }.",
    },
    security: [{ bearer: [] }, { apiKey: [] }],
  });
  return app;
}
