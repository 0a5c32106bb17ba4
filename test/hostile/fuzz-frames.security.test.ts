/**
 * Property-based tests of the agent wire format: the frame decoder under any
 * chunking and any garbage, and the host's AgentClient under any frames a
 * compromised agent could send (it must fail the connection, never throw out
 * of its stream handler, which would take the whole server down, and never
 * leave a caller waiting forever). Cases found once are replayed from
 * `corpus/frames.json` on every run.
 */
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import fc from "fast-check";
import { AgentClient, AgentError } from "../../src/protocol/agent-client.ts";
import {
  encodeFrame,
  encodeJsonFrame,
  type Frame,
  FrameDecoder,
  FrameError,
  FrameType,
  MAX_FRAME_LENGTH,
  PROTOCOL_VERSION,
} from "../../src/protocol/frames.ts";
import { loadCorpus } from "./corpus.ts";

const corpus = loadCorpus("frames.json") as {
  garbage: string[];
  clientFrames: { type: number; target: number; payload: string }[][];
};
const hex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"));

const frameArb = fc.record({
  type: fc.integer({ min: 0, max: 255 }),
  id: fc.integer({ min: 0, max: 0xffffffff }),
  payload: fc.uint8Array({ maxLength: 512 }),
});

/** Splits `wire` at the given fractions (any chunking, empty chunks included). */
function chunked(wire: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => Math.floor(c * wire.length)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of at) {
    out.push(wire.subarray(prev, p));
    prev = p;
  }
  out.push(wire.subarray(prev));
  return out;
}

test("fuzz: any frames, split anywhere, decode to themselves", () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { maxLength: 12 }),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 20 }),
      (frames, cuts) => {
        const wire = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.id, f.payload)));
        const decoder = new FrameDecoder();
        const got: Frame[] = [];
        for (const c of chunked(wire, cuts)) {
          // Payloads are views: copy them, as a consumer keeping them must.
          for (const f of decoder.push(c)) got.push({ ...f, payload: f.payload.slice() });
        }
        assert.equal(decoder.pending, 0);
        assert.deepEqual(
          got.map((f) => ({ ...f, payload: Buffer.from(f.payload).toString("hex") })),
          frames.map((f) => ({ ...f, payload: Buffer.from(f.payload).toString("hex") })),
        );
      },
    ),
    { numRuns: 1000 },
  );
});

test("fuzz: garbage yields well-formed frames or a FrameError, nothing else", () => {
  const check = (chunks: Uint8Array[]) => {
    const decoder = new FrameDecoder();
    let fed = 0;
    let framed = 0;
    try {
      for (const c of chunks) {
        fed += c.length;
        for (const f of decoder.push(c)) {
          assert.ok(f.payload.length + 5 <= MAX_FRAME_LENGTH);
          assert.ok(f.type >= 0 && f.type <= 255 && f.id >= 0 && f.id <= 0xffffffff);
          framed += 9 + f.payload.length;
        }
        assert.equal(framed + decoder.pending, fed);
      }
    } catch (e) {
      if (!(e instanceof FrameError)) throw e;
    }
  };
  for (const g of corpus.garbage) check([hex(g)]);
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), check), {
    numRuns: 1000,
  });
});

/** What a hostile agent sends: a frame aimed at one of the host's open requests (by index) or at any id. */
const hostileFrameArb = fc.record({
  type: fc.constantFrom(...Object.values(FrameType), 0x00, 0x7f, 0xff) as fc.Arbitrary<number>,
  target: fc.integer({ min: -1, max: 5 }),
  payload: fc.oneof(
    fc.uint8Array({ maxLength: 32 }).map((b) => Buffer.from(b).toString("hex")),
    fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v) ?? "null").toString("hex")),
    fc.constantFrom(
      "",
      Buffer.from("null").toString("hex"),
      Buffer.from('{"errno":"ENOENT","message":"x"}').toString("hex"),
      Buffer.from('{"exitCode":0}').toString("hex"),
      Buffer.from('{"pid":1}').toString("hex"),
      Buffer.from('{"entries":null}').toString("hex"),
    ),
  ),
});

/**
 * Opens a client on in-memory streams, starts one of each kind of request,
 * feeds `frames` as the agent, then ends the stream: every request must have
 * settled, each failure an AgentError, and no frame may throw out of the
 * stream's handler.
 */
async function driveClient(frames: { type: number; target: number; payload: string }[]): Promise<void> {
  const fromAgent = new PassThrough();
  const toAgent = new PassThrough();
  toAgent.resume();
  const hello = { protocol: PROTOCOL_VERSION, version: "fuzz", pid: 1, ops: ["ping", "resize"] };
  const connecting = AgentClient.connect(fromAgent, toAgent, { timeoutMs: 10_000 });
  fromAgent.emit("data", encodeJsonFrame(FrameType.Hello, 0, hello));
  const client = await connecting;
  const ids: number[] = [];
  const spy = client.send.bind(client);
  client.send = (frame, onError) => {
    const id = new DataView(frame.buffer, frame.byteOffset).getUint32(5);
    if (frame[4] === FrameType.Request && !ids.includes(id)) ids.push(id);
    return spy(frame, onError);
  };
  const settled: Promise<unknown>[] = [
    client.ping(),
    client.stat("/x"),
    client.list("/", 1),
    client.read("/x").then(async (s) => {
      for await (const _ of s);
    }),
    client
      .spawn({ command: "true", cwd: "/", env: {}, stdin: undefined, onStdout() {}, onStderr() {} })
      .then((p) => p.exited),
    client.write("/y", ReadableStream.from([Uint8Array.of(1, 2, 3)]), 100),
  ];
  await new Promise((r) => setImmediate(r));
  for (const f of frames) {
    const id = f.target < 0 ? 0 : (ids[f.target % Math.max(1, ids.length)] ?? 0);
    // Emitting synchronously: anything the client's handler throws surfaces here.
    fromAgent.emit("data", encodeFrame(f.type, id, hex(f.payload)));
  }
  fromAgent.emit("end");
  let timer: NodeJS.Timeout | undefined;
  const results = await Promise.race([
    Promise.allSettled(settled),
    new Promise<never>((_, reject) => {
      // Safety net only: after the stream's end nothing may stay pending.
      timer = setTimeout(
        () => reject(new Error(`a request never settled: ${JSON.stringify(frames)}`)),
        5_000,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  for (const r of results) {
    if (r.status === "rejected") assert.ok(r.reason instanceof AgentError, String(r.reason));
  }
  client.close();
}

test("fuzz: a hostile agent's frames fail requests with AgentError, never crash or hang the host", async () => {
  for (const frames of corpus.clientFrames) await driveClient(frames);
  await fc.assert(fc.asyncProperty(fc.array(hostileFrameArb, { maxLength: 12 }), driveClient), {
    numRuns: 1000,
  });
});
