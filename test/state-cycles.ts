/**
 * Shared by `state-cycles.e2e.test.ts` (virtual, namespace, oci) and
 * `state-cycles-gvisor.e2e.test.ts` (its own suite: a gVisor cycle writes and
 * reads a memory image, seconds each). Twenty pause/resume cycles in a row lose nothing: each cycle writes a file
 * (which resumes the sandbox) and pauses it again; at the end every file is
 * there with its content, and on a tier whose pause keeps memory the process
 * started before the first cycle ran on through all of them with its state
 * (a server that counts its requests answers 2). A regression test for files
 * lost after the second resume (E2B's issue 884). Runs on every tier here.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type TierName } from "../src/index.ts";
import { tierRequired } from "./conformance/suite.ts";

const template = process.env.KILN_TEST_TEMPLATE ?? "default";
const CYCLES = 20;

const COUNTER = [
  "import http.server as h",
  "n = [0]",
  "class H(h.BaseHTTPRequestHandler):",
  "    def do_GET(self):",
  "        n[0] += 1",
  "        self.send_response(200); self.end_headers(); self.wfile.write(str(n[0]).encode())",
  "    def log_message(self, *a): pass",
  "h.HTTPServer(('127.0.0.1', 8765), H).serve_forever()",
].join("\n");
const ASK = `python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8765/', timeout=10).read().decode())"`;

/** Registers the cycles test for each of `tiers`. */
export function cyclesSuite(tiers: readonly TierName[]): void {
  describe(`${CYCLES} pause/resume cycles`, () => {
    let dataDir: string;
    let kiln: Kiln;
    const ready = new Map<TierName, string | true>();

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), "kiln-cycles-"));
      kiln = await Kiln.open({ dataDir });
      for (const s of await kiln.doctor()) ready.set(s.tier, s.available ? true : s.reason);
    });
    after(async () => {
      await kiln?.close();
      rmSync(dataDir, { recursive: true, force: true });
    });

    for (const tier of tiers) {
      test(`${tier}: every file, and every process the tier keeps, survive ${CYCLES} cycles`, async (t) => {
        const status = ready.get(tier);
        if (status !== true) {
          if (tierRequired(tier)) assert.fail(`tier ${tier} required but unavailable: ${status}`);
          t.skip(`tier ${tier} unavailable: ${status}`);
          return;
        }
        const caps = (await kiln.backend(tier)).capabilities;
        const memory = caps.realBinaries && caps.pause === "memory";
        const sb = await kiln.create({ tier, template });
        try {
          if (memory) {
            await sb.files.write("/workspace/counter.py", COUNTER);
            await sb.commands.run("nohup python3 /workspace/counter.py >/dev/null 2>&1 &");
            let up = false;
            for (let i = 0; i < 200 && !up; i++) {
              up = (await sb.commands.run(ASK)).exitCode === 0;
              if (!up) await new Promise((r) => setTimeout(r, 100));
            }
            assert.ok(up, "the counting server did not start");
          }
          for (let i = 0; i < CYCLES; i++) {
            await sb.files.write(`/workspace/cycle-${i}.txt`, `cycle ${i}`);
            await sb.pause();
            assert.equal((await sb.info()).state, "paused");
            await sb.resume();
          }
          const names = (await sb.files.list("/workspace")).map((e) => e.name);
          for (let i = 0; i < CYCLES; i++) {
            assert.ok(names.includes(`cycle-${i}.txt`), `cycle-${i}.txt was lost`);
            assert.equal(await sb.files.read(`/workspace/cycle-${i}.txt`), `cycle ${i}`);
          }
          if (memory) {
            const r = await sb.commands.run(ASK);
            assert.equal(r.exitCode, 0, r.stderr);
            assert.equal(r.stdout.trim(), "2", "the process and its state ran on through every cycle");
          }
        } finally {
          await sb.kill();
        }
      });
    }
  });
}
