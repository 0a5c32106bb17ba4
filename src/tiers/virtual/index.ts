/** The virtual tier's entry: its backend. */
export { VirtualBackend } from "./backend.ts";
