/** The microvm tier's entry: its backend. */
export { MicrovmBackend } from "./backend.ts";
