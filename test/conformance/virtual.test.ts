import { runConformance } from "./suite.ts";

runConformance({ tier: "virtual", runaway: "limit" });
