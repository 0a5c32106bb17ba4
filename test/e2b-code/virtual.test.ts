import { runCodeInterpreterSuite } from "./suite.ts";

// The virtual tier's built-in Python (WASM): no numpy, pandas or matplotlib, no js or bash contexts.
runCodeInterpreterSuite({ tier: "virtual", scientific: false, full: false });
