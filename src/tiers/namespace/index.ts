/** The namespace tier's entry: its backend. */
export { NamespaceBackend } from "./backend.ts";
