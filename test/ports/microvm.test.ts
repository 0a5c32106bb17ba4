import { runPortsSuite } from "./suite.ts";

runPortsSuite("microvm");
