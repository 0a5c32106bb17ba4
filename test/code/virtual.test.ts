import { runCodeSuite } from "./suite.ts";

// The virtual tier's WASM CPython: Python cells with Jupyter's display rules; no numpy, pandas or
// matplotlib (no WASM build of them is on npm), no js or bash contexts.
runCodeSuite({ tier: "virtual", scientific: false, languages: false });
