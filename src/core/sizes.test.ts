import assert from "node:assert/strict";
import { test } from "node:test";
import { checkEnvSize, checkMetadataSize, SIZE_LIMITS } from "./sizes.ts";

const refused = (f: () => void) => assert.throws(f, (e: { code?: string }) => e.code === "invalid_argument");

test("metadata within the limits passes; each limit, just over, is invalid_argument", () => {
  checkMetadataSize(undefined);
  checkMetadataSize({
    team: "a",
    ["k".repeat(SIZE_LIMITS.metadataKeyBytes)]: "v".repeat(SIZE_LIMITS.metadataValueBytes),
  });
  refused(() => checkMetadataSize({ ["k".repeat(SIZE_LIMITS.metadataKeyBytes + 1)]: "v" }));
  refused(() => checkMetadataSize({ k: "v".repeat(SIZE_LIMITS.metadataValueBytes + 1) }));
  // Bytes, not characters: a value of 4-byte characters counts four times.
  refused(() => checkMetadataSize({ k: "😀".repeat(SIZE_LIMITS.metadataValueBytes / 4 + 1) }));
  const many = Object.fromEntries(
    Array.from({ length: SIZE_LIMITS.metadataEntries + 1 }, (_, i) => [`k${i}`, "v"]),
  );
  refused(() => checkMetadataSize(many));
  const heavy = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`k${i}`, "v".repeat(4000)]));
  refused(() => checkMetadataSize(heavy));
  refused(() => checkMetadataSize({ k: 1 as unknown as string }));
});

test("env within the limits passes; each limit, just over, is invalid_argument", () => {
  checkEnvSize({ PATH: "/bin", BIG: "x".repeat(SIZE_LIMITS.envValueBytes) });
  refused(() => checkEnvSize({ BIG: "x".repeat(SIZE_LIMITS.envValueBytes + 1) }));
  refused(() =>
    checkEnvSize(
      Object.fromEntries(Array.from({ length: SIZE_LIMITS.envEntries + 1 }, (_, i) => [`K${i}`, ""])),
    ),
  );
  refused(() => checkEnvSize({ A: "x".repeat(100_000), B: "x".repeat(100_000), C: "x".repeat(100_000) }));
});
