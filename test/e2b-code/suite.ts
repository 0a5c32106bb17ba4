/**
 * The `@e2b/code-interpreter` suite: the official, unmodified SDK against
 * `kiln serve` (its E2B API on the server's own port) with the SDK's default
 * template, `code-interpreter-v1`. Each tier's file calls
 * `runCodeInterpreterSuite` in one line, saying what the tier offers; a tier
 * that cannot run here, or a template that is not built, is skipped with its
 * reason, and fails when `KILN_REQUIRE_TIERS` names the tier.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, type TestContext, test } from "node:test";
import { type Execution, type Result, Sandbox, SandboxError } from "@e2b/code-interpreter";
import type { TierName } from "../../src/index.ts";
import { type RunningServer, startServer } from "../../src/server/index.ts";
import { tierRequired } from "../conformance/suite.ts";

/** What the tier's sandboxes offer. */
export interface CodeInterpreterSuiteOptions {
  tier: TierName;
  /** numpy, pandas and matplotlib (the code-interpreter template). */
  scientific: boolean;
  /** js and bash cells, rich results of the last expression. */
  full: boolean;
}

const main = (e: Execution): Result | undefined => e.results.find((r) => r.isMainResult);

/** Registers the suite for one tier. */
export function runCodeInterpreterSuite(options: CodeInterpreterSuiteOptions): void {
  const { tier } = options;
  describe(`@e2b/code-interpreter against kiln serve: ${tier}`, () => {
    let server: RunningServer;
    let dataDir: string;
    let sb: Sandbox;
    let unavailable: string | undefined;
    let opts: { apiUrl: string; sandboxUrl: string; apiKey: string; requestTimeoutMs: number };

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), "kiln-e2b-code-"));
      server = await startServer({ dataDir, port: 0, warmPool: 0, graceMs: 1000 });
      const { key } = server.keys.create({ name: "code" });
      opts = { apiUrl: server.url, sandboxUrl: server.url, apiKey: key, requestTimeoutMs: 120_000 };
      const status = (await server.kiln.doctor()).find((s) => s.tier === tier);
      try {
        if (!status?.available) throw new Error(status?.reason ?? "no backend");
        sb = await Sandbox.create({ ...opts, timeoutMs: 600_000, metadata: { "kiln.tier": tier } });
      } catch (e) {
        unavailable = `tier ${tier} unavailable: ${(e as Error).message}`;
        if (tierRequired(tier)) throw new Error(`${unavailable} (required by KILN_REQUIRE_TIERS)`);
        console.log(`# SKIP ${unavailable}`);
      }
    });

    after(async () => {
      await sb?.kill().catch(() => {});
      await server?.close(1000);
      rmSync(dataDir, { recursive: true, force: true });
    });

    const it = (
      name: string,
      fn: (t: TestContext) => Promise<void>,
      when = true,
      why = "does not offer this",
    ) =>
      test(name, async (t) => {
        if (unavailable) return void t.skip(unavailable);
        if (!when) return void t.skip(`the ${tier} tier ${why}`);
        await fn(t);
      });

    it("Sandbox.create() with the SDK's default template lands on the tier", async () => {
      const info = await server.kiln.connect(sb.sandboxId).then((s) => s.info());
      assert.equal(info.tier, tier);
      assert.equal(info.template, options.scientific ? "code-interpreter" : "default");
    });

    it("print output, state across cells, and errors with name, value and traceback", async () => {
      const a = await sb.runCode("counter = 41\nprint('from python')");
      assert.deepEqual(a.logs.stdout, ["from python\n"]);
      assert.equal(a.error, undefined);
      const b = await sb.runCode("counter += 1\nprint(counter)");
      assert.equal(b.logs.stdout.join(""), "42\n");
      const c = await sb.runCode("{}['missing']");
      assert.equal(c.error?.name, "KeyError");
      assert.equal(c.error?.value, "'missing'");
      assert.match(c.error?.traceback ?? "", /KeyError/);
    });

    it(
      "the main result's text, and the execution count",
      async () => {
        const e = await sb.runCode("x = 6\nx * 7");
        assert.equal(e.text, "42");
        assert.equal(main(e)?.text, "42");
        assert.ok((e.executionCount ?? 0) >= 1);
      },
      options.full,
    );

    it(
      "language js, typescript and bash run in their own contexts, with state",
      async () => {
        const js = await sb.runCode("const base = 40\nbase + 2", { language: "js" });
        assert.equal(js.text, "42");
        const js2 = await sb.runCode("console.log(base * 2)", { language: "js" });
        assert.equal(js2.logs.stdout.join(""), "80\n");
        const ts = await sb.runCode("type N = number\nconst half: N = 21\nhalf * 2", {
          language: "typescript",
        });
        assert.equal(ts.text, "42", JSON.stringify(ts.error));
        const sh = await sb.runCode("WHO=kiln; echo hello $WHO", { language: "bash" });
        assert.equal(sh.logs.stdout.join(""), "hello kiln\n");
        const sh2 = await sb.runCode("echo again $WHO", { language: "bash" });
        assert.equal(sh2.logs.stdout.join(""), "again kiln\n");
      },
      options.full,
    );

    it(
      "a matplotlib chart comes back as PNG (with chart data); a DataFrame as HTML",
      async () => {
        const fig = await sb.runCode(
          "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [2, 4, 8], label='growth')\nplt.title('g')\nplt.show()",
        );
        assert.equal(fig.error, undefined, fig.error?.traceback);
        const png = fig.results.find((r) => r.png);
        assert.ok(png, "a result with a PNG");
        assert.equal(Buffer.from(png.png!, "base64").subarray(1, 4).toString(), "PNG");
        assert.ok(png.formats().includes("png"));
        assert.equal((png.chart as { type?: string } | undefined)?.type, "line");
        const df = await sb.runCode("import pandas as pd\npd.DataFrame({'n': [1, 2, 3]})");
        assert.match(main(df)?.html ?? "", /<table[\s\S]*<\/table>/);
        assert.match(df.text ?? "", /n\n0\s+1/);
      },
      options.scientific,
    );

    it(
      "what the tier lacks is answered at once: numpy, pandas, matplotlib name the template that has them; js, ts and bash are unsupported",
      async () => {
        for (const module of ["numpy", "pandas", "matplotlib.pyplot", "scipy"]) {
          const e = await sb.runCode(`import ${module}`);
          assert.equal(e.error?.name, "ModuleNotFoundError", module);
          assert.match(e.error?.value ?? "", /code-interpreter/, "the error names the template that has it");
          assert.deepEqual(e.results, []);
        }
        // A module the tier can have is still found (the refusal is for those packages only).
        const json = await sb.runCode("import json\nprint(json.dumps([1]))");
        assert.equal(json.logs.stdout.join(""), "[1]\n");
        // Cells in another language end at once with the error `unsupported` (Kiln's code), naming where they run.
        for (const language of ["js", "typescript", "bash"] as const) {
          const e = await sb.runCode("1", { language });
          assert.equal(e.error?.name, "unsupported", language);
          assert.match(e.error?.value ?? "", /real tier/);
        }
      },
      !options.full,
      "lacks none of these",
    );

    it("the streaming callbacks see output, results and errors as they come", async () => {
      const seen: string[] = [];
      await sb.runCode(
        "import sys\nprint('out')\nprint('err', file=sys.stderr)\nraise RuntimeError('boom')",
        {
          onStdout: (m) => void seen.push(`stdout:${m.line}`),
          onStderr: (m) => void seen.push(`stderr:${m.line}`),
          onResult: () => void seen.push("result"),
          onError: (e) => void seen.push(`error:${e.name}`),
        },
      );
      assert.ok(seen.includes("stdout:out\n"), seen.join("|"));
      assert.ok(seen.includes("stderr:err\n"), seen.join("|"));
      assert.equal(seen.at(-1), "error:RuntimeError", seen.join("|"));
      if (options.full) {
        const results: Result[] = [];
        await sb.runCode("1 + 1", { onResult: (r) => void results.push(r) });
        assert.equal(results[0]?.text, "2");
      }
    });

    it("code contexts: create, run in, list, restart, remove; an unknown language is refused", async () => {
      const ctx = await sb.createCodeContext({ language: "python" });
      assert.equal(ctx.language, "python");
      await sb.runCode("secret = 'ctx'", { context: ctx });
      const inside = await sb.runCode("print(secret)", { context: ctx });
      assert.equal(inside.logs.stdout.join(""), "ctx\n");
      const outside = await sb.runCode("print('secret' in dir())");
      assert.equal(outside.logs.stdout.join(""), "False\n", "contexts do not share state");
      const listed = await sb.listCodeContexts();
      assert.ok(listed.some((c) => c.id === ctx.id));
      await sb.restartCodeContext(ctx);
      const lost = await sb.runCode("print('secret' in dir())", { context: ctx });
      assert.equal(lost.logs.stdout.join(""), "False\n");
      await sb.removeCodeContext(ctx.id);
      assert.ok(!(await sb.listCodeContexts()).some((c) => c.id === ctx.id));
      // The SDK leaves its request timer running when a request fails: a short one lets the test end.
      const failing = { requestTimeoutMs: 10_000 };
      await assert.rejects(sb.runCode("1", { context: ctx, ...failing }), (e) => e instanceof SandboxError);
      await assert.rejects(sb.runCode("1", { language: "cobol" as "python", ...failing }), (e: Error) => {
        assert.ok(e instanceof SandboxError);
        assert.match(e.message, /^400\b/, "Kiln's invalid_argument is HTTP 400");
        return true;
      });
    });
  });
}
