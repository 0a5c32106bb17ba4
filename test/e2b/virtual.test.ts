import { runE2bSuite } from "./suite.ts";

// The handler's default tier is virtual: no selection needed.
runE2bSuite({ tier: "virtual", select: {} });
