import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeJson, encodeFrame, encodeJsonFrame, FrameDecoder, FrameError, FrameType } from "./frames.ts";

test("frames survive any chunking, including byte by byte", () => {
  const big = new Uint8Array(200_000).map((_, i) => i % 251);
  const wire = Buffer.concat([
    encodeJsonFrame(FrameType.Request, 7, { op: "ping" }),
    encodeFrame(FrameType.Data, 0xfffffffe, big),
    encodeFrame(FrameType.End, 9),
  ]);
  for (const size of [1, 3, 4096, wire.length]) {
    const decoder = new FrameDecoder();
    const frames = [];
    for (let at = 0; at < wire.length; at += size) frames.push(...decoder.push(wire.subarray(at, at + size)));
    assert.equal(frames.length, 3);
    assert.deepEqual(decodeJson(frames[0]!.payload), { op: "ping" });
    assert.equal(frames[0]!.id, 7);
    assert.equal(frames[1]!.id, 0xfffffffe);
    assert.ok(Buffer.from(frames[1]!.payload).equals(big));
    assert.equal(frames[2]!.type, FrameType.End);
    assert.equal(frames[2]!.payload.length, 0);
    assert.equal(decoder.pending, 0);
  }
});

test("a length outside 5..16 MiB+5 is a FrameError", () => {
  assert.throws(() => new FrameDecoder().push(Uint8Array.of(0, 0, 0, 4, 1)), FrameError);
  assert.throws(() => new FrameDecoder().push(Uint8Array.of(0xff, 0, 0, 0)), FrameError);
  assert.throws(() => encodeFrame(FrameType.Data, 1, new Uint8Array(16 * 1024 * 1024 + 1)), RangeError);
});
