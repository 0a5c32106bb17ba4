import { runPortsSuite } from "./suite.ts";

runPortsSuite("virtual");
