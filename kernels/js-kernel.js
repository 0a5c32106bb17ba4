// Kiln's JavaScript kernel: one Node process per code context, inside the sandbox.
//
// Started by Kiln as `node -e <this file>`; speaks the same JSON lines as the
// Python kernel (python-kernel.py):
//   in  (stdin):  {"code": "...", "env": {...}}
//   out (stdout): ready, stdout, stderr, result, error, done events.
// Cells run in this process's global scope, so declarations persist between
// cells; the completion value of a cell is its main result. A cell with
// top-level `await` runs inside an async function: its top-level
// `var|let|const name =`, `function name` and `class name` at the start of a
// line become globals, and a last line that is an expression is its result.
// SIGINT interrupts the running cell.
"use strict";
const fs = require("node:fs");
const readline = require("node:readline");
const util = require("node:util");
const vm = require("node:vm");
const { createRequire } = require("node:module");
const path = require("node:path");

const rawWrite = (s) => {
  let buf = Buffer.from(s, "utf8");
  while (buf.length > 0) {
    try {
      const n = fs.writeSync(1, buf);
      buf = buf.subarray(n);
    } catch (e) {
      if (e.code !== "EAGAIN") throw e;
    }
  }
};
const send = (msg) => rawWrite(`${JSON.stringify(msg)}\n`);
const output = (type) =>
  function write(chunk, encoding, cb) {
    const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    if (text) send({ type, text });
    const done = typeof encoding === "function" ? encoding : cb;
    if (typeof done === "function") done();
    return true;
  };
process.stdout.write = output("stdout");
process.stderr.write = output("stderr");

globalThis.require = createRequire(path.join(process.cwd(), "[cell]"));
globalThis.module = { exports: {} };
globalThis.display = (...values) => {
  for (const v of values) send({ type: "result", is_main_result: false, ...bundle(v) });
};

function bundle(v) {
  if (v && typeof v === "object" && typeof v._repr_html_ === "function") {
    return { html: String(v._repr_html_()), text: util.inspect(v) };
  }
  return { text: typeof v === "string" ? v : util.inspect(v, { depth: 4 }) };
}

let count = 0;
let interrupt = null;
process.on("SIGINT", () => {
  if (interrupt) interrupt(new Error("KeyboardInterrupt"));
});
process.on("unhandledRejection", (e) => {
  send({ type: "stderr", text: `Unhandled rejection: ${e && e.stack ? e.stack : String(e)}\n` });
});
process.on("uncaughtException", (e) => {
  send({ type: "stderr", text: `Uncaught exception: ${e && e.stack ? e.stack : String(e)}\n` });
});

const DECL = /^(?:(?:var|let|const)\s+([A-Za-z_$][\w$]*)\s*=|(async\s+)?function\*?\s+([A-Za-z_$][\w$]*)|class\s+([A-Za-z_$][\w$]*))/;

/** The body of an async function standing for a cell with top-level await. */
function asyncBody(code) {
  const lines = code.replace(/\s+$/, "").split("\n");
  const out = lines.map((line) => {
    const m = DECL.exec(line);
    if (!m) return line;
    if (m[1]) {
      const global = line.replace(/^(?:var|let|const)\s+/, "globalThis.");
      // A `var` exists (undefined) before its initialiser runs, which may read it: `var E = f(E || {})`.
      return line.startsWith("var") ? `if (!(${JSON.stringify(m[1])} in globalThis)) globalThis.${m[1]} = undefined; ${global}` : global;
    }
    const name = m[3] || m[4];
    return `globalThis.${name} = ${line}`;
  });
  const last = out.length - 1;
  if (last >= 0 && !DECL.test(lines[last]) && !/^\s*(?:return|throw|if|for|while|do|switch|try|\}|\/\/)/.test(lines[last])) {
    const expr = out[last].replace(/;\s*$/, "");
    const candidate = [...out.slice(0, last), `return (${expr}\n);`].join("\n");
    try {
      new vm.Script(`(async () => {\n${candidate}\n})`);
      return candidate;
    } catch {
      // The last line is not a whole expression: the cell has no result.
    }
  }
  return out.join("\n");
}

function compile(code, filename) {
  try {
    return { script: new vm.Script(code, { filename }), isAsync: false };
  } catch (e) {
    if (!(e instanceof SyntaxError) || !/\bawait\b/.test(code)) throw e;
    const wrapped = `(async () => {\n${asyncBody(code)}\n})()`;
    return { script: new vm.Script(wrapped, { filename, lineOffset: -1 }), isAsync: true };
  }
}

function errorOf(e) {
  if (e instanceof Error || (e && typeof e === "object" && "stack" in e)) {
    const stack = String(e.stack || e);
    const kept = stack.split("\n").filter((l) => !/\[eval\]|node:vm|node:internal|js-kernel/.test(l));
    return { name: e.name || "Error", value: e.message || "", traceback: kept.join("\n") };
  }
  return { name: "Error", value: util.inspect(e), traceback: `Uncaught ${util.inspect(e)}` };
}

async function cell(req) {
  count += 1;
  const filename = `cell-${count}`;
  const env = req.env || {};
  const saved = {};
  for (const k of Object.keys(env)) {
    saved[k] = process.env[k];
    process.env[k] = env[k];
  }
  try {
    const { script, isAsync } = compile(req.code || "", filename);
    let value = script.runInThisContext({ breakOnSigint: true, displayErrors: false });
    if (isAsync) {
      value = await new Promise((resolve, reject) => {
        interrupt = reject;
        value.then(resolve, reject);
      });
    }
    if (value !== undefined) send({ type: "result", is_main_result: true, ...bundle(value) });
  } catch (e) {
    send({ type: "error", ...errorOf(e) });
  } finally {
    interrupt = null;
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  send({ type: "done", execution_count: count });
}

let queue = Promise.resolve();
const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on("line", (line) => {
  let req;
  try {
    req = JSON.parse(line);
  } catch {
    return;
  }
  queue = queue.then(() => cell(req));
});
rl.on("close", () => queue.then(() => process.exit(0)));
send({ type: "ready", version: 1 });
