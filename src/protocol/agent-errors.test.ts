import assert from "node:assert/strict";
import { test } from "node:test";
import { KilnError, NotFoundError } from "../core/errors.ts";
import { AgentError } from "./agent-client.ts";
import { kilnErrorFromAgent } from "./agent-errors.ts";

const ctx = { sandboxId: "sb_x", limits: { pids: 64, diskBytes: 1024, maxFileBytes: 512 } };
const map = (errno: string) => kilnErrorFromAgent(new AgentError(errno, `op: ${errno}`), ctx) as KilnError;

test("each agent errno becomes one Kiln error code", () => {
  const expected: Record<string, string> = {
    ECONNRESET: "sandbox_stopped",
    EAGAIN: "limit_exceeded",
    ENOTTY: "unsupported",
    ENOENT: "not_found",
    EEXIST: "conflict",
    ENOTEMPTY: "conflict",
    ENOSPC: "limit_exceeded",
    EFBIG: "limit_exceeded",
    EINVAL: "invalid_argument",
    EACCES: "invalid_argument",
  };
  for (const [errno, code] of Object.entries(expected)) {
    const e = map(errno);
    assert.ok(e instanceof KilnError, errno);
    assert.equal(e.code, code, errno);
    assert.ok(e.cause instanceof AgentError, `${errno} keeps its cause`);
  }
  assert.deepEqual(
    [map("EAGAIN"), map("ENOSPC"), map("EFBIG")].map((e) => (e as { limit?: string }).limit),
    ["pids", "diskBytes", "maxFileBytes"],
  );
});

test("Kiln errors and values that are not agent failures pass through", () => {
  const k = new NotFoundError("x");
  assert.equal(kilnErrorFromAgent(k, ctx), k);
  const plain = new Error("no errno");
  assert.equal(kilnErrorFromAgent(plain, ctx), plain);
});
