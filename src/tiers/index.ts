/**
 * The tier registry: one line per tier. A tier is loaded only when first used.
 */
import { registerTier } from "../core/tier-registry.ts";

registerTier("virtual", async () => new (await import("./virtual/index.ts")).VirtualBackend());
registerTier("namespace", async () => new (await import("./namespace/index.ts")).NamespaceBackend());
registerTier("oci", async () => new (await import("./oci/index.ts")).OciBackend());
registerTier("gvisor", async () => new (await import("./gvisor/index.ts")).GvisorBackend());
registerTier("microvm", async () => new (await import("./microvm/index.ts")).MicrovmBackend());
