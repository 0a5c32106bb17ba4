/** The oci tier's entry: its backend. */
export { OciBackend } from "./backend.ts";
