/** The gvisor tier's entry: its backend. */
export { GvisorBackend } from "./backend.ts";
