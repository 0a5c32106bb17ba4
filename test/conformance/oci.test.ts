import { runConformance } from "./suite.ts";

runConformance({ tier: "oci", runaway: "timeout" });
