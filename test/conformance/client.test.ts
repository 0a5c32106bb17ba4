/** The conformance suite again, through the client SDK against a live `kiln serve` (in-process, loopback). */
import { clientOpener } from "../server/helpers.ts";
import { runConformance } from "./suite.ts";

runConformance({ tier: "virtual", runaway: "limit", label: "virtual via client", open: clientOpener() });
runConformance({
  tier: "namespace",
  runaway: "timeout",
  label: "namespace via client",
  open: clientOpener(),
});
