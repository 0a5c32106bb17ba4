/** The conformance suite again on every tier, through the client SDK against a live `kiln serve` (in-process, loopback). */
import { clientOpener } from "../server/helpers.ts";
import { runConformance } from "./suite.ts";
import { TIERS } from "./tiers.ts";

for (const options of Object.values(TIERS)) {
  runConformance({ ...options, label: `${options.tier} via client`, open: clientOpener() });
}
