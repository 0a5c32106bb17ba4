import { runConformance } from "./suite.ts";

runConformance({ tier: "namespace", runaway: "timeout" });
