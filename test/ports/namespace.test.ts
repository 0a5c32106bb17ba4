import { runPortsSuite } from "./suite.ts";

runPortsSuite("namespace");
