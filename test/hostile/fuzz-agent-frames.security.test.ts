/**
 * The Rust agent's side of the wire, fuzzed: its frame reader and request
 * decoder (agent/src/frame.rs, json.rs, request.rs) get hostile bytes from
 * the harness agent/target/kiln-agent-fuzz (`scripts/build-agent.sh --fuzz`),
 * which decodes what it reads from stdin and runs nothing. Whatever the bytes,
 * the harness must end by itself with status 0 and its line of counts: a panic
 * aborts it (the agent is built with panic=abort), a hang hits the time limit,
 * and an allocation past the agent's frame bound hits the address-space limit
 * it runs under. Seeds in `corpus/agent-frames.json` are replayed every run,
 * with the counts each must give.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { before, test } from "node:test";
import fc from "fast-check";
import { encodeFrame, FrameType, MAX_FRAME_LENGTH } from "../../src/protocol/frames.ts";
import { ROOT } from "../cli-run.ts";
import { loadCorpus } from "./corpus.ts";

const HARNESS = join(ROOT, "agent", "target", "kiln-agent-fuzz");
/** Address space the harness may use: the largest frame (16 MiB) and its buffers fit many times over. */
const ADDRESS_SPACE_KIB = 128 * 1024;
/** Wall time of one run; the harness needs milliseconds. */
const RUN_TIMEOUT_MS = 10_000;
const COUNTS = /^frames=(\d+) requests=(\d+) errors=(\d+) end=(eof|malformed)\n$/;

const corpus = loadCorpus("agent-frames.json") as { seeds: { why: string; hex: string; expect: string }[] };

/** What one run of `command` on `input` gave: the counts line, or why it is not a clean end. */
interface Outcome {
  counts?: { frames: number; requests: number; errors: number; end: string };
  failure?: string;
}

/** Runs `command` (the harness by default) on `input` under the address-space limit and a time limit. */
function run(input: Uint8Array, command = HARNESS, timeoutMs = RUN_TIMEOUT_MS): Outcome {
  const r = spawnSync("sh", ["-c", `ulimit -v ${ADDRESS_SPACE_KIB} && exec "$0"`, command], {
    input,
    timeout: timeoutMs,
    encoding: "utf8",
  });
  const hex = Buffer.from(input).subarray(0, 64).toString("hex");
  const why = (s: string) => ({
    failure: `${s} on input ${hex}${input.length > 64 ? "…" : ""}: ${r.stderr.trim()}`,
  });
  if (r.error) return why(`did not end (${r.error.message})`);
  if (r.signal) return why(`killed by ${r.signal}`);
  if (r.status !== 0) return why(`exit ${r.status}`);
  const m = COUNTS.exec(r.stdout);
  if (!m) return why(`printed ${JSON.stringify(r.stdout)}`);
  return { counts: { frames: Number(m[1]), requests: Number(m[2]), errors: Number(m[3]), end: m[4] ?? "" } };
}

/** Asserts a clean end and returns the counts. */
function clean(input: Uint8Array): NonNullable<Outcome["counts"]> {
  const o = run(input);
  assert.ok(o.counts, o.failure);
  assert.ok(o.counts.requests + o.counts.errors <= o.counts.frames, JSON.stringify(o.counts));
  return o.counts;
}

const build = spawnSync("bash", [join(ROOT, "scripts", "build-agent.sh"), "--fuzz"], { encoding: "utf8" });
/** Without a Rust toolchain there is no agent to fuzz (nor any real tier); a failed build is a failure. */
const noRust =
  build.status !== 0 && build.stderr.includes("rustc not found") ? build.stderr.trim() : undefined;
if (noRust) console.log(`# SKIP the agent's fuzz tests: ${noRust}`);

before(() => {
  if (!noRust) assert.equal(build.status, 0, `cannot build the fuzz harness: ${build.stderr}`);
});

const utf8 = (s: string) => new TextEncoder().encode(s);

const OPS = [
  "ping",
  "spawn",
  "signal",
  "resize",
  "stat",
  "list",
  "read",
  "write",
  "mkdir",
  "remove",
  "rename",
  "symlink",
  "chmod",
  "utimes",
  "connect",
  "watch",
];
const FIELDS = [
  "command",
  "cwd",
  "env",
  "stdin",
  "pty",
  "target",
  "signal",
  "cols",
  "rows",
  "path",
  "depth",
  "window",
  "maxBytes",
  "from",
  "to",
  "mode",
  "atimeMs",
  "mtimeMs",
  "port",
  "recursive",
];

/** A field value a hostile host could send: any JSON, edge numbers, odd strings. */
const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(0, -0, -1, 0.5, 1e308, -1e308, 2 ** 31, 2 ** 32, 2 ** 53, 4096, 4097, 65535, 65536),
  fc.constantFrom("", "/", "relative", "/a\u0000b", "\ud800", "/\udc00x", "pipe", { cols: 80, rows: 24 }),
  fc.string({ unit: "binary", maxLength: 16 }),
);

/** A REQUEST body: a known op (or not) with any of the known fields, of any type. */
const requestTextArb = fc
  .record({
    op: fc.oneof(fc.constantFrom(...OPS, ""), fc.string({ maxLength: 8 })),
    fields: fc.dictionary(fc.constantFrom(...FIELDS), valueArb, { maxKeys: 6 }),
  })
  .map(({ op, fields }) => JSON.stringify({ ...fields, op }));

/** A payload: a request, the same cut short or with bytes that are not UTF-8, deep nesting, or noise. */
const payloadArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  requestTextArb.map(utf8),
  fc.tuple(requestTextArb, fc.nat()).map(([t, n]) => utf8(t).subarray(0, n % (t.length + 1))),
  fc
    .tuple(requestTextArb, fc.nat(), fc.constantFrom("ff", "c0af", "eda080", "e282", "f4908080"))
    .map(([t, n, bad]) => {
      const b = utf8(t);
      const at = n % (b.length + 1);
      return Buffer.concat([b.subarray(0, at), Buffer.from(bad, "hex"), b.subarray(at)]);
    }),
  fc
    .tuple(fc.constantFrom("[", '{"a":', '{"op":'), fc.integer({ min: 1, max: 3000 }))
    .map(([open, n]) => utf8(open.repeat(n))),
  fc.uint8Array({ maxLength: 128 }),
);

const frameArb = fc.record({
  type: fc.oneof(fc.constantFrom(...Object.values(FrameType)), fc.integer({ min: 0, max: 255 })),
  id: fc.integer({ min: 0, max: 0xffffffff }),
  payload: payloadArb,
});

test("fuzz (agent): the corpus gives the counts it was committed with", { skip: noRust }, () => {
  for (const seed of corpus.seeds) {
    const o = run(Buffer.from(seed.hex, "hex"));
    assert.ok(o.counts, `${seed.why}: ${o.failure}`);
    const c = o.counts;
    assert.equal(
      `frames=${c.frames} requests=${c.requests} errors=${c.errors} end=${c.end}`,
      seed.expect,
      seed.why,
    );
  }
});

test("fuzz (agent): whole frames of any type and payload are each read, then the input's end; cut anywhere, the whole ones", {
  skip: noRust,
}, () => {
  fc.assert(
    fc.property(fc.array(frameArb, { maxLength: 6 }), fc.option(fc.nat()), (frames, cut) => {
      const encoded = frames.map((f) => encodeFrame(f.type, f.id, f.payload));
      let wire = Buffer.concat(encoded);
      let whole = frames.length;
      if (cut !== null) {
        wire = wire.subarray(0, cut % (wire.length + 1));
        let at = 0;
        whole = 0;
        for (const f of encoded) {
          at += f.length;
          if (at > wire.length) break;
          whole++;
        }
      }
      const c = clean(wire);
      assert.deepEqual([c.frames, c.end], [whole, "eof"]);
    }),
    { numRuns: 250 },
  );
});

test("fuzz (agent): a length outside 5..16 MiB+5 ends the stream as malformed after the frames before it; a length inside it waits for its bytes", {
  skip: noRust,
}, () => {
  const lengthArb = fc.oneof(
    fc.constantFrom(0, 1, 4, 5, 6, 40, MAX_FRAME_LENGTH, MAX_FRAME_LENGTH + 1, 0x7fffffff, 0xffffffff),
    fc.integer({ min: 0, max: 0xffffffff }),
  );
  fc.assert(
    fc.property(
      fc.array(frameArb, { maxLength: 3 }),
      lengthArb,
      fc.uint8Array({ maxLength: 64 }),
      (frames, length, rest) => {
        const head = Buffer.alloc(4);
        head.writeUInt32BE(length);
        const c = clean(
          Buffer.concat([...frames.map((f) => encodeFrame(f.type, f.id, f.payload)), head, rest]),
        );
        if (length < 5 || length > MAX_FRAME_LENGTH)
          assert.deepEqual([c.frames, c.end], [frames.length, "malformed"], `length ${length}`);
        else if (rest.length < length)
          assert.deepEqual([c.frames, c.end], [frames.length, "eof"], `length ${length}`);
        // The frame is whole; what follows it in `rest` is read as more frames.
        else assert.ok(c.frames > frames.length, `length ${length}`);
      },
    ),
    { numRuns: 150 },
  );
});

test("fuzz (agent): any bytes at all end cleanly", { skip: noRust }, () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      clean(bytes);
    }),
    { numRuns: 150 },
  );
});

test("the driver itself: an abort, a hang, a bad exit or a wrong line is a failure; the address-space limit applies", () => {
  // /bin/sh stands in for the harness, its stdin a script: a harness that panics (panic=abort raises SIGABRT), loops, fails or says nothing.
  const cases: [string, string][] = [
    ["kill -ABRT $$", "killed by SIGABRT"],
    ["sleep 5", "did not end"],
    ["exit 3", "exit 3"],
    ["", 'printed ""'],
    ["ulimit -v", `printed ${JSON.stringify(`${ADDRESS_SPACE_KIB}\n`)}`],
  ];
  for (const [script, want] of cases) {
    const failure = run(utf8(script), "/bin/sh", 500).failure ?? "";
    assert.ok(failure.startsWith(want), `${script}: ${failure}`);
  }
});
