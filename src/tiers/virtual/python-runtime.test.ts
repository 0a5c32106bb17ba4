import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { CellEvent } from "../../core/execution.ts";
import { AgentFsStore, ROOT_INO, S_IFDIR, S_IFREG } from "../../workspace/agentfs-store.ts";
import { type PythonJob, PythonRuntime } from "./python-runtime.ts";

const ENV = { HOME: "/workspace", LANG: "C.UTF-8" };

/** A fresh workspace (own database file) with /workspace and /tmp, and a runtime over it. */
async function withRuntime(fn: (rt: PythonRuntime, store: AgentFsStore) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "kiln-python-"));
  const databasePath = join(dir, "workspace.db");
  const store = AgentFsStore.open(databasePath);
  store.mknod(ROOT_INO, "workspace", S_IFDIR | 0o755);
  store.mknod(ROOT_INO, "tmp", S_IFDIR | 0o1777);
  const rt = new PythonRuntime({ databasePath });
  try {
    await fn(rt, store);
  } finally {
    await rt.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs one job, collecting its output as text. */
async function run(
  rt: PythonRuntime,
  job: { argv: string[]; stdin?: Uint8Array } | { code: string; context?: string },
  opts: { signal?: AbortSignal } = {},
) {
  const full: PythonJob =
    "argv" in job
      ? { mode: "script", cwd: "/workspace", env: ENV, ...job }
      : { mode: "repl", cwd: "/workspace", env: ENV, ...job };
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const events: CellEvent[] = [];
  const started = performance.now();
  const result = await rt.run(full, {
    onStdout: (b) => out.push(b),
    onStderr: (b) => err.push(b),
    onEvent: (e) => events.push(e),
    ...opts,
  });
  return {
    ...result,
    events,
    stdout: Buffer.concat(out).toString(),
    stderr: Buffer.concat(err).toString(),
    ms: performance.now() - started,
  };
}

const py = (code: string, stdin?: string) => ({
  argv: ["-c", code],
  ...(stdin === undefined ? {} : { stdin: Buffer.from(stdin) }),
});

test("a script run prints, with argv, cwd and env of the job", async () => {
  await withRuntime(async (rt) => {
    const r = await run(rt, {
      argv: ["-c", "import os, sys; print('hello', sys.argv, os.getcwd(), os.environ['HOME'])", "a", "b"],
    });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, "hello ['-c', 'a', 'b'] /workspace /workspace\n");
  });
});

test("files are shared with the store, both ways", async () => {
  await withRuntime(async (rt, store) => {
    const ws = store.inodeAt("/workspace");
    store.write(store.mknod(ws, "from-store.txt", S_IFREG | 0o644), 0, Buffer.from("written by the store\n"));
    const r = await run(
      rt,
      py("print(open('from-store.txt').read(), end=''); open('/tmp/from-python.txt', 'w').write('hi')"),
    );
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, "written by the store\n");
    const ino = store.inodeAt("/tmp/from-python.txt");
    assert.equal(Buffer.from(store.read(ino, 0, 100)).toString(), "hi");

    // A file replaced behind Python's back (as bash would) is seen fresh on the next run.
    store.unlink(ws, "from-store.txt");
    store.write(store.mknod(ws, "from-store.txt", S_IFREG | 0o644), 0, Buffer.from("replaced\n"));
    const again = await run(rt, py("print(open('from-store.txt').read(), end='')"));
    assert.equal(again.stdout, "replaced\n");
  });
});

test("a second run reuses the warm interpreter", async () => {
  await withRuntime(async (rt) => {
    const cold = await run(rt, py("print(1)"));
    const warm = await run(rt, py("print(2)"));
    assert.equal(cold.stdout + warm.stdout, "1\n2\n");
    console.log(`python cold run: ${cold.ms.toFixed(1)} ms, warm run: ${warm.ms.toFixed(1)} ms`);
  });
});

test("a repl context keeps its globals; contexts are separate", async () => {
  await withRuntime(async (rt) => {
    assert.equal((await run(rt, { code: "import math\nx = 41", context: "a" })).exitCode, 0);
    const same = await run(rt, { code: "print(x + 1, math.pi > 3)", context: "a" });
    assert.equal(same.stdout, "42 True\n");
    const other = await run(rt, { code: "print(x)", context: "b" });
    assert.equal(other.exitCode, 1);
    const error = other.events.find((e) => e.type === "error");
    assert.equal(error?.type === "error" && error.error.name, "NameError");
    assert.match(error?.type === "error" ? error.error.traceback : "", /name 'x' is not defined/);
    // A cell's last expression is its main result; reset forgets the context.
    const value = await run(rt, { code: "x * 2", context: "a" });
    assert.deepEqual(
      value.events.filter((e) => e.type === "result").map((e) => e.type === "result" && e.result),
      [{ text: "82", isMainResult: true }],
    );
    await rt.run(
      { mode: "reset", context: "a", cwd: "/workspace", env: ENV },
      { onStdout() {}, onStderr() {} },
    );
    assert.equal((await run(rt, { code: "x", context: "a" })).exitCode, 1);
  });
});

test("sys.exit(3) exits with 3", async () => {
  await withRuntime(async (rt) => {
    assert.equal((await run(rt, py("import sys; sys.exit(3)"))).exitCode, 3);
  });
});

test("an uncaught exception exits with 1 and a traceback", async () => {
  await withRuntime(async (rt) => {
    const r = await run(rt, py("def f():\n    raise ValueError('boom')\nf()"));
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /^Traceback \(most recent call last\):\n {2}File "<string>", line 3/);
    assert.match(r.stderr, /ValueError: boom\n$/);
  });
});

test("a busy loop stopped by its signal is interrupted, and the next run works", async () => {
  await withRuntime(async (rt) => {
    await run(rt, { code: "kept = 'yes'" });
    const r = await run(rt, py("while True: pass"), { signal: AbortSignal.timeout(500) });
    assert.equal(r.exitCode, 130);
    const next = await run(rt, py("print('alive')"));
    assert.equal(next.stdout, "alive\n");
    // The loop was interrupted, not killed: the REPL context survived.
    assert.equal((await run(rt, { code: "print(kept)" })).stdout, "yes\n");
  });
});

test("a stop that comes before a booted interpreter picks the job up interrupts it, keeping the REPL", async () => {
  await withRuntime(async (rt) => {
    await run(rt, { code: "kept = 'yes'" });
    const ac = new AbortController();
    const pending = run(rt, py("while True: pass"), { signal: ac.signal });
    // Microtasks only: the job is posted, but the worker's `started` cannot have been read yet.
    for (let i = 0; i < 20; i++) await null;
    ac.abort();
    assert.equal((await pending).exitCode, 130);
    assert.equal((await run(rt, { code: "print(kept)" })).stdout, "yes\n");
  });
});

test("a job that swallows the interrupt is killed; the next run boots afresh", async () => {
  await withRuntime(async (rt) => {
    const stubborn = "while True:\n    try:\n        while True: pass\n    except KeyboardInterrupt: pass";
    await run(rt, py("pass")); // booted: the interrupt reaches a running job
    const r = await run(rt, py(stubborn), { signal: AbortSignal.timeout(200) });
    assert.equal(r.exitCode, 130);
    assert.match(r.stderr, /interpreter was restarted/);
    assert.equal((await run(rt, py("print('fresh')"))).stdout, "fresh\n");
  });
});

test("an abort ends the job with 130", async () => {
  await withRuntime(async (rt) => {
    await run(rt, py("pass"));
    const r = await run(rt, py("while True: pass"), { signal: AbortSignal.timeout(300) });
    assert.equal(r.exitCode, 130);
  });
});

test("stdin is read, by code and as the program", async () => {
  await withRuntime(async (rt) => {
    const r = await run(rt, py("import sys; print(sys.stdin.read().upper(), end='')", "some input\n"));
    assert.equal(r.stdout, "SOME INPUT\n");
    const program = await run(rt, { argv: ["-"], stdin: Buffer.from("print(6 * 7)\n") });
    assert.equal(program.stdout, "42\n");
    // No stdin given: reads see end of file.
    assert.equal((await run(rt, py("import sys; print(repr(sys.stdin.read()))"))).stdout, "''\n");
  });
});

test("binary files round-trip (bytes 0..255)", async () => {
  await withRuntime(async (rt, store) => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    store.write(store.mknod(store.inodeAt("/workspace"), "in.bin", S_IFREG | 0o644), 0, all);
    const code =
      "d = open('in.bin', 'rb').read()\nassert d == bytes(range(256)), d\nopen('out.bin', 'wb').write(d[::-1])";
    const r = await run(rt, py(code));
    assert.equal(r.exitCode, 0, r.stderr);
    const back = store.read(store.inodeAt("/workspace/out.bin"), 0, 1000);
    assert.deepEqual(back, all.slice().reverse());
  });
});

test("a script file runs with its own argv and path", async () => {
  await withRuntime(async (rt, store) => {
    const ws = store.inodeAt("/workspace");
    store.write(store.mknod(ws, "helper.py", S_IFREG | 0o644), 0, Buffer.from("NAME = 'helper'\n"));
    const main = "import sys, helper\nprint(sys.argv, __name__, helper.NAME)\n";
    store.write(store.mknod(ws, "main.py", S_IFREG | 0o644), 0, Buffer.from(main));
    const r = await run(rt, { argv: ["main.py", "x"] });
    assert.equal(r.stdout, "['main.py', 'x'] __main__ helper\n", r.stderr);
  });
});
