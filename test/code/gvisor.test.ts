import { existsSync } from "node:fs";
import { runCodeSuite } from "./suite.ts";

// Real tiers share the machine's template cache (CI builds code-interpreter there).
if (!process.env.KILN_TEMPLATE_DIR && process.getuid?.() === 0 && existsSync("/var/cache/kiln/templates")) {
  process.env.KILN_TEMPLATE_DIR = "/var/cache/kiln/templates";
}

runCodeSuite({ tier: "gvisor", template: "code-interpreter", scientific: true, languages: true });
