/**
 * One behaviour on every tier: the corpus (`corpus/*.sh`) runs on the
 * virtual tier (just-bash over the SQLite store) and on the namespace tier
 * (GNU bash in Debian), each script in a fresh directory of its own, and
 * their stdout, stderr and exit codes must be equal, up to the documented
 * differences in known-differences.ts.
 *
 * One sandbox per tier serves every script: on the namespace tier four
 * commands run them all (each script in its own `bash -c`, as the agent runs
 * a command); on
 * the virtual tier, in-process, each is one command, a few at a time.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import tar from "tar-stream";
import { Kiln, type Sandbox } from "../../src/index.ts";
import { tierRequired } from "../conformance/suite.ts";
import { type CorpusCase, loadCorpus } from "./corpus.ts";
import { KNOWN_DIFFERENCES, NORMALIZE } from "./known-differences.ts";

interface Outcome {
  stdout: string;
  stderr: string;
  exitCode: number;
}

const CASES = loadCorpus();
const CONCURRENCY = 4;
const SCRIPT_TIMEOUT_MS = 60_000;

const normalize = (s: string) => NORMALIZE.reduce((acc, n) => n.apply(acc), s);

/** Runs every case on `sb` (the virtual tier), one command each, `CONCURRENCY` at a time, case i in /workspace/diff/<i>. */
async function runEach(sb: Sandbox): Promise<Outcome[]> {
  await sb.commands.run(
    `mkdir -p /workspace/diff && cd /workspace/diff && mkdir ${CASES.map((_, i) => i).join(" ")}`,
  );
  const out: Outcome[] = new Array(CASES.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < CASES.length; i = next++) {
      const c = CASES[i] as CorpusCase;
      try {
        const r = await sb.commands.run(c.script, {
          cwd: `/workspace/diff/${i}`,
          timeoutMs: SCRIPT_TIMEOUT_MS,
        });
        out[i] = { stdout: normalize(r.stdout), stderr: normalize(r.stderr), exitCode: r.exitCode };
      } catch (e) {
        out[i] = {
          stdout: "",
          stderr: `kiln error: ${(e as { code?: string }).code ?? String(e)}`,
          exitCode: -1,
        };
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return out;
}

const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/**
 * Runs cases `from`..`to` on `sb` (a real tier) in one command: a driver that gives each script to
 * its own `bash -c` (as the agent does) in /workspace/diff/<i>, its stdout, stderr and status going
 * to /workspace/.differential/<i>.{out,err,status} (no process spent per script but the script's).
 */
async function runBatch(sb: Sandbox, from: number, to: number): Promise<void> {
  const dir = "/workspace/.differential";
  const driver = CASES.slice(from, to)
    .map(
      (c, k) =>
        `(cd /workspace/diff/${from + k} && unset OLDPWD && exec bash -c ${quote(c.script)} </dev/null >${dir}/${from + k}.out 2>${dir}/${from + k}.err); echo $? >${dir}/${from + k}.status`,
    )
    .join("\n");
  await sb.commands.run(driver, { timeoutMs: (to - from) * SCRIPT_TIMEOUT_MS });
}

/** Runs every case on `sb` (a real tier) in `CONCURRENCY` driver commands at once, then reads the outcomes in one tar. */
async function runBatches(sb: Sandbox): Promise<Outcome[]> {
  await sb.commands.run(
    `mkdir -p /workspace/.differential /workspace/diff && cd /workspace/diff && mkdir ${CASES.map((_, i) => i).join(" ")}`,
  );
  const size = Math.ceil(CASES.length / CONCURRENCY);
  await Promise.all(
    Array.from({ length: CONCURRENCY }, (_, k) =>
      runBatch(sb, k * size, Math.min(CASES.length, (k + 1) * size)),
    ),
  );
  const files = new Map<string, Buffer>();
  const extract = tar.extract();
  const reading = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      files.set(entry.header.name.replace(/^.*\//, ""), Buffer.concat(chunks));
    }
  })();
  await pipeline(Readable.fromWeb((await sb.files.exportTar("/workspace/.differential")) as never), extract);
  await reading;
  return CASES.map((_, i) => {
    const status = files.get(`${i}.status`);
    assert.ok(status, `the driver left no status for case ${i}`);
    return {
      stdout: normalize(files.get(`${i}.out`)?.toString("utf8") ?? ""),
      stderr: normalize(files.get(`${i}.err`)?.toString("utf8") ?? ""),
      exitCode: Number(status.toString("utf8").trim()),
    };
  });
}

describe("differential: the virtual tier against GNU bash on the namespace tier", () => {
  let dir = "";
  let kiln: Kiln;
  let unavailable: string | undefined;
  let virtual: Outcome[] = [];
  let gnu: Outcome[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "kiln-differential-"));
    kiln = await Kiln.open({ dataDir: dir });
    const status = (await kiln.doctor()).find((s) => s.tier === "namespace");
    if (!status?.available) {
      unavailable = status?.reason ?? "no backend";
      const msg = `tier namespace unavailable: ${unavailable}`;
      if (tierRequired("namespace")) throw new Error(`${msg} (required by KILN_REQUIRE_TIERS)`);
      console.log(`# SKIP differential test: ${msg}`);
      return;
    }
    const [v, n] = await Promise.all([
      kiln.create({ tier: "virtual" }),
      kiln.create({ tier: "namespace", template: process.env.KILN_TEST_TEMPLATE ?? "default" }),
    ]);
    [virtual, gnu] = await Promise.all([runEach(v), runBatches(n)]);
  });

  after(async () => {
    await kiln?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the corpus is hundreds of scripts, and every known difference names one of them", () => {
    assert.ok(CASES.length >= 300, `only ${CASES.length} cases`);
    const ids = new Set(CASES.map((c) => c.id));
    for (const id of Object.keys(KNOWN_DIFFERENCES))
      assert.ok(ids.has(id), `known difference for no case: ${id}`);
  });

  CASES.forEach((c, i) => {
    test(c.id, (t) => {
      if (unavailable) {
        t.skip(`tier namespace unavailable: ${unavailable}`);
        return;
      }
      const known = KNOWN_DIFFERENCES[c.id];
      if (known) {
        assert.notDeepEqual(virtual[i], gnu[i], `listed as a known difference but the tiers agree: ${c.id}`);
        t.diagnostic(`known difference: ${known}`);
        return;
      }
      assert.deepEqual(
        virtual[i],
        gnu[i],
        `virtual (actual) and GNU bash (expected) differ on:\n${c.script}`,
      );
    });
  });
});
