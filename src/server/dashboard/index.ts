/**
 * The web dashboard (docs/dashboard.md): static assets at `/` and
 * `/dashboard/`, and the live event stream `GET /v1/events`. The terminal's
 * WebSocket is in src/server/terminal.
 */
import type { MiddlewareHandler } from "hono";
import type { App, AppEnv, ServerState } from "../context.ts";
import { CSP, ensureDashboardBuilt, readAsset } from "./assets.ts";
import { eventRoutes, notifyChanges } from "./events.ts";

export { dashboardStale, ensureDashboardBuilt } from "./assets.ts";
export { type CommandEvent, EventHub, eventHub } from "./events.ts";

/** The part of a request path below the dashboard's root, or undefined for other paths. */
function dashboardPath(path: string): string | undefined {
  if (path === "/" || path === "/index.html") return "";
  if (path.startsWith("/assets/")) return path.slice(1);
  if (path === "/dashboard/") return "";
  if (path.startsWith("/dashboard/")) return path.slice("/dashboard/".length);
  return undefined;
}

const serveAssets: MiddlewareHandler<AppEnv> = async (c, next) => {
  const method = c.req.method;
  if ((method !== "GET" && method !== "HEAD") || c.req.path.startsWith("/v1/")) return next();
  if (c.req.path === "/dashboard") return c.redirect("/dashboard/", 301);
  const rel = dashboardPath(c.req.path);
  if (rel === undefined) return next();
  try {
    await ensureDashboardBuilt();
  } catch (e) {
    return c.text(`The Kiln dashboard could not be built: ${(e as Error).message}\n`, 503);
  }
  // Unknown paths below the root get the page (client-side routes use the hash, but be lenient).
  const asset = readAsset(rel) ?? (rel.startsWith("assets/") ? undefined : readAsset(""));
  if (!asset) return next();
  const immutable = rel.startsWith("assets/");
  return new Response(method === "HEAD" ? null : new Uint8Array(asset.body), {
    headers: {
      "content-type": asset.type,
      "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
      "content-security-policy": CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    },
  });
};

/** Mounts the dashboard on the app: assets, the change notifier, and `GET /v1/events`. */
export function mountDashboard(app: App, state: ServerState): void {
  const notify = notifyChanges(state);
  app.use("/v1/sandboxes", notify);
  app.use("/v1/sandboxes/*", notify);
  app.use("*", serveAssets);
  eventRoutes(app, state);
}
