import { existsSync } from "node:fs";
import { runE2bSuite } from "./suite.ts";

// Real tiers share the machine's template cache (the Debian `default` template is built once).
if (!process.env.KILN_TEMPLATE_DIR && process.getuid?.() === 0 && existsSync("/var/cache/kiln/templates")) {
  process.env.KILN_TEMPLATE_DIR = "/var/cache/kiln/templates";
}

runE2bSuite({ tier: "microvm", select: { metadata: { "kiln.tier": "microvm" } } });
