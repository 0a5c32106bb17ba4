/** The Kiln HTTP server: `kiln serve`, embeddable. See docs/server.md. */
export { createApp, OPENAPI_PATH } from "./app.ts";
export type { AppEnv, ServerState } from "./context.ts";
export { HTTP_STATUS, QuotaExceededError, type ServerErrorCode, UnauthenticatedError } from "./errors.ts";
export { type ApiKeyInfo, type CreateKeyOptions, KeyStore } from "./keys.ts";
export { OWNER_LABEL } from "./ownership.ts";
export { type RunningServer, type ServeOptions, startServer } from "./server.ts";
export type { StreamEvent } from "./streaming.ts";
