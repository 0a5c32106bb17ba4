#!/usr/bin/env node
// Bounds the memory of just-bash 3.4.2's `js-exec` (the virtual tier's JavaScript), after every
// `npm install` (package.json's postinstall) and from scripts/ensure-deps.mjs. Plain JavaScript:
// runs on whatever Node the machine has.
//
// just-bash runs every js-exec of the process, one at a time, in one shared worker holding one
// QuickJS WebAssembly instance. QuickJS's own 64 MiB heap limit does not hold in that build
// (its dump says "malloc_usable_size unavailable", so it counts nothing): an allocation loop grew
// the instance's memory to its 2 GiB maximum whatever the sandbox's `memoryBytes`, and a WASM
// memory never shrinks, so the worker kept it.
//
// After this patch:
// - the worker's WebAssembly memory has a hard maximum: the `memoryBytes` of the sandbox whose
//   command it runs (just-bash's `maxLiveBytes`, which the virtual tier sets to it), clamped to
//   [32 MiB, 2 GiB); growing past it is QuickJS's "out of memory" error inside the command;
// - a job whose sandbox has another limit than the idle worker's gets a fresh worker;
// - an idle worker is let go after 5 s (just-bash's own idle timer never fired; see below);
// - a worker whose memory has grown past 64 MiB is terminated as soon as its job has answered,
//   which frees that memory; the next job starts a new worker (about 100 ms, once).
//
// Each change is an exact text replacement. If the text is not there (another just-bash version),
// the script fails, naming it. Running it again changes nothing.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const chunks = join(root, "node_modules", "just-bash", "dist", "bundle", "chunks");
const VERSION = "3.4.2";
const MARK = "/* kiln-patched: js-exec memory */";

const version = JSON.parse(
  readFileSync(join(root, "node_modules", "just-bash", "package.json"), "utf8"),
).version;
if (version !== VERSION) {
  console.error(
    `kiln: just-bash is ${version}, scripts/patch-just-bash-js-exec.mjs was written for ${VERSION}: check it against the new version`,
  );
  process.exit(1);
}

/** Applies exact replacements to one file, once; each `before` must occur exactly once. */
function patch(file, edits) {
  const path = join(chunks, file);
  let text = readFileSync(path, "utf8");
  if (text.includes(MARK)) return;
  for (const [what, before, after] of edits) {
    const found = text.split(before).length - 1;
    if (found !== 1) {
      console.error(`kiln: cannot patch just-bash's js-exec (${what}): expected 1 match, found ${found}`);
      process.exit(1);
    }
    text = text.replace(before, () => after);
  }
  // The host chunk starts with imports that must stay first; a trailing comment marks either file.
  writeFileSync(path, `${text}\n${MARK}\n`);
}

const RECYCLE_BYTES = 64 * 1024 * 1024;

// The host side: which worker a job runs in, and when a worker is let go.
patch("js-exec-XKF2B7C3.js", [
  [
    "job input carries the sandbox's memory limit",
    "hasInvokeTool:e.invokeTool!==void 0}",
    "hasInvokeTool:e.invokeTool!==void 0,kilnMemoryBytes:e.limits.maxLiveBytes}",
  ],
  [
    "a job runs in a worker made for its limit",
    "n=r;let e=null;try{e=$(),",
    "n=r;let e=null;try{let k=kilnJsMax(r.input);if(l&&l.kilnMaxBytes!==k){let o=l;l=null,o.terminate()}e=$(k),",
  ],
  [
    "the worker is made with that limit",
    "function $(){if(y&&(v(y),y=null),l)return l;let r=C.runTrusted(()=>new L(U));",
    `var kilnSetTimeout=globalThis.setTimeout.bind(globalThis);function kilnJsMax(i){let b=Number(i?.kilnMemoryBytes);if(!Number.isFinite(b)||b<=0)b=${512 * 1024 * 1024};return Math.min(Math.max(b,${32 * 1024 * 1024}),${2047 * 1024 * 1024})}function $(k){if(y&&(v(y),y=null),l)return l;k??=kilnJsMax();let r=C.runTrusted(()=>new L(U,{workerData:{kilnMaxBytes:k}}));r.kilnMaxBytes=k;`,
  ],
  [
    // just-bash binds this timer to the command that armed it, and its defence blocks a bound
    // callback once that command has ended, so the idle worker was never let go (and held the
    // process open for ever). A plain timer lets it go after 5 s, as intended.
    "an idle worker is let go after 5 s",
    "function V(){y=j(()=>{",
    "function V(){y=kilnSetTimeout(()=>{",
  ],
  [
    "a worker that grew is let go once its job has answered",
    "n.resolve(t),n=null}c.length>0?g():V()",
    `n.resolve(t),n=null}if(e&&e.kilnWasmBytes>${RECYCLE_BYTES}){l=null,r.terminate()}c.length>0?g():V()`,
  ],
]);

// The worker: a QuickJS instance whose memory has a maximum, and a report of its size.
patch("js-exec-worker.js", [
  [
    "imports",
    'import {\n  getQuickJS\n} from "quickjs-emscripten";',
    'import {\n  getQuickJS,\n  newQuickJSWASMModule as kilnNewModule,\n  newVariant as kilnNewVariant,\n  RELEASE_SYNC as kilnReleaseSync\n} from "quickjs-emscripten";\nimport { workerData as kilnWorkerData } from "node:worker_threads";',
  ],
  [
    "a bounded WebAssembly memory",
    "  quickjsLoading = getQuickJS();",
    "  quickjsLoading = kilnLoadQuickJS();",
  ],
  [
    "the loader",
    "var MEMORY_LIMIT = 64 * 1024 * 1024;",
    `var MEMORY_LIMIT = 64 * 1024 * 1024;
var kilnWasmMemory = null;
function kilnLoadQuickJS() {
  const max = Number(kilnWorkerData?.kilnMaxBytes);
  if (!Number.isFinite(max) || max <= 0) return getQuickJS();
  kilnWasmMemory = new WebAssembly.Memory({ initial: 256, maximum: Math.ceil(max / 65536) });
  return kilnNewModule(kilnNewVariant(kilnReleaseSync, { wasmMemory: kilnWasmMemory }));
}`,
  ],
  [
    "the size report",
    "    result.defenseStats = defense?.getStats();",
    "    result.defenseStats = defense?.getStats();\n    result.kilnWasmBytes = kilnWasmMemory?.buffer.byteLength;",
  ],
]);
