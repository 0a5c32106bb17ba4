/**
 * Property-based tests of tar import (`files.importTar`), on a real virtual
 * sandbox: garbage bytes, gzip (never unpacked), truncated and bit-flipped
 * archives, and hostile members (absolute paths, `..`, hard links, devices,
 * symlinks that later members try to write through). Whatever the archive,
 * the import succeeds or fails with a typed KilnError, nothing lands outside
 * the target folder, and the sandbox keeps working. Known cases are replayed
 * from `corpus/tar.json`.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import * as tarStream from "tar-stream";
import { Kiln, KilnError, type Sandbox } from "../../src/index.ts";
import { loadCorpus } from "./corpus.ts";

interface Member {
  name: string;
  type: "file" | "directory" | "symlink" | "link" | "character-device" | "fifo";
  linkname?: string;
  body?: string;
}
const corpus = loadCorpus("tar.json") as { garbage: string[]; archives: Member[][] };

/** Codes an import may fail with: anything else (or a plain Error) would be a 500. */
const EXPECTED = new Set(["invalid_argument", "conflict", "not_found", "limit_exceeded"]);

let dir: string;
let kiln: Kiln;
let sb: Sandbox;
let n = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "kiln-fuzz-tar-"));
  kiln = await Kiln.open({ dataDir: dir });
  sb = await kiln.create({ tier: "virtual" });
  await sb.files.write("/workspace/keep/canary.txt", "canary");
});
after(async () => {
  await kiln.close();
  rmSync(dir, { recursive: true, force: true });
});

async function pack(members: Member[]): Promise<Uint8Array> {
  const p = tarStream.pack();
  for (const m of members) {
    const header = {
      name: m.name,
      type: m.type,
      ...(m.linkname !== undefined ? { linkname: m.linkname } : {}),
    };
    if (m.type === "file") p.entry(header, m.body ?? "");
    else p.entry(header);
  }
  p.finalize();
  return new Uint8Array(
    await new Response(ReadableStream.from(p as AsyncIterable<Uint8Array>)).arrayBuffer(),
  );
}

/** Every path in the sandbox outside `/workspace/tN`, with what it holds. */
async function outside(target: string): Promise<string[]> {
  const entries = await sb.files.list("/", { depth: 64 });
  return entries
    .filter((e) => e.path !== target && !e.path.startsWith(`${target}/`))
    .map((e) => `${e.path} ${e.type} ${e.size} ${e.symlinkTarget ?? ""}`)
    .sort();
}

/** Imports `bytes` into a fresh folder and checks the promises. */
async function importChecked(bytes: Uint8Array): Promise<void> {
  const target = `/workspace/t${++n}`;
  const before = await outside(target);
  try {
    await sb.files.importTar(target, bytes);
  } catch (e) {
    assert.ok(e instanceof KilnError, `not a KilnError: ${(e as Error)?.stack ?? e}`);
    assert.ok(EXPECTED.has(e.code), `unexpected code ${e.code}: ${e.message}`);
  }
  assert.deepEqual(await outside(target), before, "the import changed something outside its folder");
  assert.equal(await sb.files.read("/workspace/keep/canary.txt"), "canary");
  await sb.files.remove(target).catch(() => {});
}

const segment = fc.constantFrom("a", "b", "..", ".", "", "keep", "workspace", "etc", "canary.txt", "l");
const nameArb = fc
  .tuple(fc.boolean(), fc.array(segment, { minLength: 1, maxLength: 4 }))
  .map(([abs, segs]) => (abs ? "/" : "") + segs.join("/"));
const linkArb = fc.constantFrom("/", "/workspace", "/workspace/keep", "..", "../..", "a", "/etc", "l/..");
const memberArb: fc.Arbitrary<Member> = fc.oneof(
  fc.record({ name: nameArb, type: fc.constant("file" as const), body: fc.string({ maxLength: 20 }) }),
  fc.record({ name: nameArb, type: fc.constant("directory" as const) }),
  fc.record({ name: nameArb, type: fc.constant("symlink" as const), linkname: linkArb }),
  fc.record({
    name: nameArb,
    type: fc.constantFrom("link" as const, "character-device" as const, "fifo" as const),
    linkname: linkArb,
  }),
);

test("fuzz: hostile archives import cleanly or fail typed, and never write outside their folder", async () => {
  for (const members of corpus.archives) await importChecked(await pack(members));
  await fc.assert(
    fc.asyncProperty(fc.array(memberArb, { minLength: 1, maxLength: 6 }), async (members) =>
      importChecked(await pack(members)),
    ),
    { numRuns: 150 },
  );
});

test("fuzz: garbage, truncated and bit-flipped archives fail typed (or import) and leave the sandbox usable", async () => {
  for (const g of corpus.garbage) await importChecked(Buffer.from(g, "hex"));
  const valid = await pack([
    { name: "dir", type: "directory" },
    { name: "dir/file", type: "file", body: "hello ".repeat(200) },
    { name: "dir/link", type: "symlink", linkname: "file" },
  ]);
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ maxLength: 2048 }),
        fc.integer({ min: 0, max: valid.length }).map((k) => valid.subarray(0, k)),
        fc
          .array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })), {
            minLength: 1,
            maxLength: 8,
          })
          .map((flips) => {
            const copy = valid.slice();
            for (const [at, byte] of flips) copy[at] = byte;
            return copy;
          }),
      ),
      importChecked,
    ),
    { numRuns: 200 },
  );
  const r = await sb.commands.run("echo still here");
  assert.equal(r.stdout, "still here\n");
});

test("a gzip bomb is refused without being inflated", async () => {
  // 64 MiB of zeros gzips to about 64 KiB; import takes plain tar only.
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
  await importChecked(bomb);
  await importChecked(gzipSync(await pack([{ name: "x", type: "file", body: "x" }])));
});

test("a member whose header claims more bytes than follow fails typed", async () => {
  const ok = await pack([{ name: "big", type: "file", body: "y".repeat(4096) }]);
  await importChecked(ok.subarray(0, 1024));
});
