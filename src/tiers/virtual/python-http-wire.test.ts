/** The /dev/kiln-http wire: whole requests parse, partial ones wait, bad ones are refused. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { frame, MAX_REQUEST_BODY_BYTES, parseRequest } from "./python-http-wire.ts";

const head = {
  method: "POST",
  url: "http://a.test/",
  headers: [["X-A", "1"]],
  timeoutMs: 500,
  bodyLength: 3,
};

test("a whole request parses; a partial one is not yet a request", () => {
  const bytes = frame(head, new Uint8Array([1, 2, 3]));
  assert.deepEqual(parseRequest(bytes), {
    method: "POST",
    url: "http://a.test/",
    headers: [["X-A", "1"]],
    timeoutMs: 500,
    body: new Uint8Array([1, 2, 3]),
  });
  for (const cut of [0, 10, 16, 20, bytes.length - 1])
    assert.equal(parseRequest(bytes.subarray(0, cut)), undefined);
});

test("bad frames and oversized bodies are refused", () => {
  assert.throws(() => parseRequest(Buffer.from("x".repeat(20))));
  assert.throws(() => parseRequest(frame({ ...head, bodyLength: -1 }, new Uint8Array(0))));
  assert.throws(() => parseRequest(frame({ ...head, bodyLength: "3" }, new Uint8Array(3))));
  assert.throws(
    () => parseRequest(frame({ ...head, bodyLength: MAX_REQUEST_BODY_BYTES + 1 }, new Uint8Array(0))),
    /over/,
  );
  const bad = Buffer.concat([Buffer.from("               5"), Buffer.from("{nope")]);
  assert.throws(() => parseRequest(bad), SyntaxError);
});
