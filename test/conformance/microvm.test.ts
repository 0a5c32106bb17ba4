import { runConformance } from "./suite.ts";
import { TIERS } from "./tiers.ts";

runConformance(TIERS.microvm);
