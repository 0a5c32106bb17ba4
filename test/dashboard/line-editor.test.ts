/** The terminal's local line discipline (dashboard/src/line-editor.ts), without a browser. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { LineEditor } from "../../dashboard/src/line-editor.ts";

function editor() {
  const out: string[] = [];
  const lines: string[] = [];
  let interrupts = 0;
  const e = new LineEditor({
    write: (s) => out.push(s),
    onLine: (l) => lines.push(l),
    onInterrupt: () => interrupts++,
    onClear: () => {},
  });
  return { e, out, lines, interrupts: () => interrupts };
}

test("echo, backspace, cursor movement and Enter", () => {
  const { e, lines } = editor();
  e.start("$ ");
  e.feed("ecoh");
  e.feed("\x7f\x7f");
  e.feed("ho hi\x1b[D\x1b[D\x1b[D!\r");
  assert.deepEqual(lines, ["echo! hi"]);
  assert.equal(e.accepting, false);
});

test("history on the arrow keys, and the draft comes back", () => {
  const { e, lines } = editor();
  e.start("$ ");
  e.feed("one\r");
  e.start("$ ");
  e.feed("two\r");
  e.start("$ ");
  e.feed("dra");
  e.feed("\x1b[A\x1b[A");
  assert.equal(e.buffer, "one");
  e.feed("\x1b[B\x1b[B");
  assert.equal(e.buffer, "dra");
  e.feed("\x1b[A\r");
  assert.deepEqual(lines, ["one", "two", "two"]);
});

test("type-ahead and pastes wait for the prompt; Ctrl-C interrupts a running line", () => {
  const { e, lines, interrupts } = editor();
  e.start("$ ");
  e.feed("a\rb\rc");
  assert.deepEqual(lines, ["a"]);
  e.start("$ ");
  assert.deepEqual(lines, ["a", "b"]);
  e.feed("\x03");
  assert.equal(interrupts(), 1);
  e.start("$ ");
  assert.equal(e.buffer, "", "Ctrl-C drops the type-ahead");
  e.feed("x\x03");
  assert.equal(e.buffer, "", "Ctrl-C at the prompt clears the line");
  assert.equal(e.accepting, true);
});
