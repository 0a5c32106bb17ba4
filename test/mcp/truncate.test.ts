/** The truncation rule shared by the MCP server and the AI SDK tools. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { truncateMiddle, utf8Boundary } from "../../src/mcp/truncate.ts";

test("text within the cap is returned unchanged", () => {
  assert.deepEqual(truncateMiddle("abc", { maxBytes: 3 }), { text: "abc", totalBytes: 3, omittedBytes: 0 });
});

test("long text keeps head and tail around one marker line", () => {
  const text = Array.from({ length: 1000 }, (_, i) => `line ${i}`).join("\n");
  const r = truncateMiddle(text, { maxBytes: 100, label: "stdout", hint: "read the rest" });
  const lines = r.text.split("\n");
  assert.equal(lines[0], "line 0");
  assert.equal(lines.at(-1), "line 999");
  const marker = lines.find((l) => l.startsWith("["))!;
  assert.equal(
    marker,
    `[stdout: ${r.omittedBytes} of ${r.totalBytes} bytes cut from the middle; read the rest]`,
  );
  assert.equal(r.totalBytes, Buffer.byteLength(text));
  assert.ok(r.totalBytes - r.omittedBytes <= 100);
  assert.ok(Buffer.byteLength(r.text) <= 100 + Buffer.byteLength(marker) + 2);
});

test("a cut never splits a multi-byte character", () => {
  const r = truncateMiddle("é".repeat(100), { maxBytes: 11 });
  assert.ok(!r.text.includes("\uFFFD"));
  const bytes = new TextEncoder().encode("aé");
  assert.equal(utf8Boundary(bytes, 2), 1);
  assert.equal(utf8Boundary(bytes, 3), 3);
});
