import assert from "node:assert/strict";
import { test } from "node:test";
import { claimIdRange, IDS_PER_SANDBOX, idRangesUnavailable, slots, subordinateRanges } from "./id-ranges.ts";

const root = { name: "root", uid: 0 };

test("subordinate ranges: the user's lines by name or uid, others and malformed lines ignored", () => {
  const text = "alice:100000:65536\nroot:1000000:131072\n0:5000000:65536\nroot:x:1\nroot:7:0\n";
  assert.deepEqual(subordinateRanges(text, root), [
    { base: 1000000, count: 131072 },
    { base: 5000000, count: 65536 },
  ]);
  assert.deepEqual(subordinateRanges("", root), []);
});

test("slots: whole aligned ranges inside both the uid and the gid ranges, never below 65536", () => {
  const r = [{ base: 1000000, count: 4 * IDS_PER_SANDBOX }];
  // 1,000,000 is not aligned: the first slot is 1,048,576; the last one that fits ends by 1,262,144.
  assert.deepEqual(slots(r, r), [1048576, 1114112, 1179648]);
  assert.deepEqual(
    slots([{ base: 1, count: 3 * IDS_PER_SANDBOX }], [{ base: 1, count: 3 * IDS_PER_SANDBOX }]),
    [65536, 131072],
  );
  assert.deepEqual(slots(r, [{ base: 1048576, count: IDS_PER_SANDBOX }]), [1048576], "gids must hold it too");
  assert.deepEqual(slots(r, []), []);
});

test("claims: the next claim starts past the last one, not over from the first range", (t) => {
  const a = claimIdRange("sb_idtest_a");
  if (!a) {
    t.skip(`no sandbox id ranges here: ${idRangesUnavailable()}`);
    return;
  }
  const b = claimIdRange("sb_idtest_b");
  try {
    assert.ok(b);
    assert.notEqual(a.range.base, b.range.base);
    a.release();
    // The range just freed is the first free one from the start; the claim must not go back to it.
    const c = claimIdRange("sb_idtest_c");
    assert.ok(c);
    c.release();
    assert.notEqual(c.range.base, a.range.base, "the claim searched from the first range again");
  } finally {
    a.release();
    b?.release();
  }
});
