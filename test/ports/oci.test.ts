import { runPortsSuite } from "./suite.ts";

runPortsSuite("oci");
