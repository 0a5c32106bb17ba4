/**
 * Kiln's client SDK: `import { KilnClient } from "kiln/client"`. The same
 * objects and errors as the library, over HTTP to `kiln serve`.
 */
export * from "../core/errors.ts";
export type * from "../core/types.ts";
export type { CommandsApi, FilesApi, KilnApi, SandboxApi } from "./api.ts";
export { UnauthenticatedError } from "./errors.ts";
export { type ClientOptions, KilnClient } from "./kiln.ts";
export { RemoteSandbox } from "./sandbox.ts";
