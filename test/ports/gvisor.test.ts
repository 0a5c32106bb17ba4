import { runPortsSuite } from "./suite.ts";

runPortsSuite("gvisor");
