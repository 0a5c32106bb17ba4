/**
 * The code-cell suite: `sandbox.runCode` and code contexts through the
 * library, on one tier and template. Each tier's test file calls
 * `runCodeSuite` in one line, naming what the tier offers (`offers`);
 * a tier that cannot run here, or a template that is not built, is skipped
 * with its reason, and is a failure when `KILN_REQUIRE_TIERS` names the tier.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, type TestContext, test } from "node:test";
import { type CellResult, isKilnError, Kiln, type Sandbox, type TierName } from "../../src/index.ts";
import { tierRequired } from "../conformance/suite.ts";

/** What a tier's cells can do beyond Python text results. */
export interface CodeSuiteOptions {
  tier: TierName;
  template?: string;
  /** numpy, pandas and matplotlib are importable. */
  scientific: boolean;
  /** js and bash contexts. */
  languages: boolean;
}

/** Asserts that `p` rejects with a KilnError of `code`. */
export async function rejectsCode(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(isKilnError(e), `expected a KilnError, got ${String(e)}`);
    assert.equal(e.code, code, String(e));
    return;
  }
  assert.fail(`expected a rejection with ${code}`);
}

const main = (results: CellResult[]) => results.find((r) => r.isMainResult);

/** Registers the suite for one tier. */
export function runCodeSuite(options: CodeSuiteOptions): void {
  const { tier } = options;
  describe(`code cells: ${tier}${options.template ? ` (${options.template})` : ""}`, () => {
    let kiln: Kiln;
    let dataDir: string;
    let sb: Sandbox;
    let unavailable: string | undefined;

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), "kiln-code-"));
      kiln = await Kiln.open({ dataDir });
      const status = (await kiln.doctor()).find((s) => s.tier === tier);
      try {
        if (!status?.available) throw new Error(status?.reason ?? "no backend");
        sb = await kiln.create({ tier, ...(options.template ? { template: options.template } : {}) });
      } catch (e) {
        unavailable = `tier ${tier}${options.template ? ` with template ${options.template}` : ""} unavailable: ${(e as Error).message}`;
        if (tierRequired(tier)) throw new Error(`${unavailable} (required by KILN_REQUIRE_TIERS)`);
        console.log(`# SKIP ${unavailable}`);
      }
    });

    after(async () => {
      await sb?.kill().catch(() => {});
      await kiln?.close();
      rmSync(dataDir, { recursive: true, force: true });
    });

    const it = (name: string, fn: (t: TestContext) => Promise<void>, when = true) =>
      test(name, async (t) => {
        if (unavailable) return void t.skip(unavailable);
        if (!when) return void t.skip(`the ${tier} tier does not offer this`);
        await fn(t);
      });

    it("the last expression is the main result; print goes to stdout; state persists", async () => {
      const a = await sb.runCode("x = 20\nprint('hello')\nx + 1");
      assert.equal(main(a.results)?.text, "21");
      assert.deepEqual(a.logs.stdout.join(""), "hello\n");
      assert.equal(a.error, undefined);
      const b = await sb.runCode("x * 2");
      assert.equal(main(b.results)?.text, "40");
      assert.ok((b.executionCount ?? 0) > (a.executionCount ?? 0) || b.executionCount === undefined);
    });

    it("an exception is the cell's error, with its name, value and traceback", async () => {
      const r = await sb.runCode("def f():\n    raise ValueError('bad value')\nf()");
      assert.equal(r.error?.name, "ValueError");
      assert.equal(r.error?.value, "bad value");
      assert.match(r.error?.traceback ?? "", /ValueError/);
      assert.equal(main(r.results), undefined);
      const after = await sb.runCode("x");
      assert.equal(main(after.results)?.text, "20", "an error keeps the context's state");
    });

    it("an unknown language is invalid_argument", async () => {
      await rejectsCode(sb.runCode("1", { language: "cobol" }), "invalid_argument");
      await rejectsCode(sb.runCode("1", { context: "../x" }), "invalid_argument");
    });

    it("display() and _repr_html_ give rich results; callbacks stream in order", async () => {
      const seen: string[] = [];
      const r = await sb.runCode(
        "class T:\n    def _repr_html_(self): return '<b>t</b>'\n    def __repr__(self): return 'T()'\n" +
          "print('before')\ndisplay(T())\nT()",
        {
          onStdout: (s) => seen.push(`out:${s}`),
          onResult: (res) => seen.push(`result:${res.isMainResult}`),
        },
      );
      assert.equal(r.results.length, 2);
      assert.deepEqual(
        r.results.map((x) => [x.isMainResult, x.html, x.text]),
        [
          [false, "<b>t</b>", "T()"],
          [true, "<b>t</b>", "T()"],
        ],
      );
      assert.deepEqual(seen, ["out:before\n", "result:false", "result:true"]);
    });

    it("IPython.display's HTML, Markdown, SVG, JSON and Image give those formats, as in Jupyter", async () => {
      const r = await sb.runCode(
        [
          "import base64",
          "from IPython.display import HTML, JSON, SVG, Image, Markdown, display",
          "png = base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==')",
          "display(HTML('<i>h</i>'), Markdown('**m**'))",
          "display(SVG('<svg xmlns=\"http://www.w3.org/2000/svg\"/>'))",
          "display(JSON({'k': [1, 2]}))",
          "Image(data=png)",
        ].join("\n"),
      );
      assert.equal(r.error, undefined, r.error?.traceback);
      const [html, md, svg, json, image] = r.results;
      assert.equal(r.results.length, 5);
      assert.equal(html?.html, "<i>h</i>");
      assert.equal(md?.markdown, "**m**");
      assert.match(svg?.svg ?? "", /^<svg\b/);
      assert.deepEqual(json?.json, { k: [1, 2] });
      assert.equal(image?.isMainResult, true);
      assert.equal(
        Buffer.from(image?.png ?? "", "base64")
          .subarray(1, 4)
          .toString(),
        "PNG",
      );
    });

    it(
      "a pandas DataFrame is HTML and text; a matplotlib figure is a PNG with chart data",
      async () => {
        const df = await sb.runCode("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})");
        const m = main(df.results);
        assert.match(m?.html ?? "", /<table/);
        assert.match(m?.text ?? "", /a\s+b/);
        const fig = await sb.runCode(
          "import matplotlib.pyplot as plt\nplt.bar(['x', 'y'], [3, 5])\nplt.title('counts')\nplt.show()",
        );
        assert.equal(fig.error, undefined, fig.error?.traceback);
        const png = fig.results.find((r) => r.png);
        assert.ok(png, "a PNG result");
        assert.equal(Buffer.from(png.png!, "base64").subarray(1, 4).toString(), "PNG");
        assert.equal(png.chart?.type, "bar");
        assert.equal(png.chart?.title, "counts");
        const values = ((png.chart?.elements as { label: string; value: number }[] | undefined) ?? []).map(
          (e) => [e.label, e.value],
        );
        assert.deepEqual(values, [
          ["x", 3],
          ["y", 5],
        ]);
      },
      options.scientific,
    );

    it(
      "js: state across cells, the completion value, top-level await",
      async () => {
        const a = await sb.runCode("const n = 6\nconsole.log('js here')\nn * 7", { language: "js" });
        assert.equal(main(a.results)?.text, "42");
        assert.equal(a.logs.stdout.join(""), "js here\n");
        const b = await sb.runCode("const m = await Promise.resolve(n + 1)\nm", { language: "javascript" });
        assert.equal(main(b.results)?.text, "7");
        const c = await sb.runCode("null.x", { language: "js" });
        assert.equal(c.error?.name, "TypeError");
      },
      options.languages,
    );

    it(
      "ts: types are stripped, enums transformed, state kept; a cell that does not parse is its SyntaxError",
      async () => {
        const a = await sb.runCode(
          "interface Point { x: number; y: number }\nconst p: Point = { x: 40, y: 2 }\nconst sum = (q: Point): number => q.x + q.y\nsum(p)",
          { language: "ts" },
        );
        assert.equal(a.error, undefined, JSON.stringify(a.error));
        assert.equal(main(a.results)?.text, "42");
        const b = await sb.runCode(
          "enum Color { Red, Green }\nconst c = await Promise.resolve(Color.Green as number)\nc + p.x",
          {
            language: "typescript",
          },
        );
        assert.equal(main(b.results)?.text, "41", JSON.stringify(b));
        const bad = await sb.runCode("const broken: = 1", { language: "ts" });
        assert.equal(bad.error?.name, "SyntaxError");
        const after = await sb.runCode("p.y as number", { language: "ts" });
        assert.equal(main(after.results)?.text, "2", "a cell that does not parse keeps the context's state");
        // The line of an error is the cell's own: types are erased in place.
        const thrown = await sb.runCode("const n: number = 1\n\nthrow new RangeError('line three')", {
          language: "ts",
        });
        assert.equal(thrown.error?.name, "RangeError");
        assert.match(thrown.error?.traceback ?? "", /:3/);
      },
      options.languages,
    );

    it(
      "bash: variables and the working directory persist; a failing status is the error",
      async () => {
        await sb.runCode("GREETING=hi; cd /tmp", { language: "bash" });
        const r = await sb.runCode('echo "$GREETING from $(pwd)"', { language: "bash" });
        assert.equal(r.logs.stdout.join(""), "hi from /tmp\n");
        assert.equal(r.error, undefined);
        const bad = await sb.runCode("echo oops >&2; exit_status_is() { return 3; }; exit_status_is", {
          language: "bash",
        });
        assert.equal(bad.error?.name, "CommandExitError");
        assert.equal(bad.logs.stderr.join(""), "oops\n");
      },
      options.languages,
    );

    it("contexts: create, list, restart (state lost), remove", async () => {
      const ctx = await sb.codeContexts.create({ language: "python", cwd: "/tmp" });
      const r = await sb.runCode("import os\ny = 1\nos.getcwd()", { context: ctx.id });
      assert.equal(main(r.results)?.text, "'/tmp'");
      assert.ok(sb.codeContexts.list().some((c) => c.id === ctx.id && c.language === "python"));
      const other = await sb.runCode("'y' in dir()");
      assert.equal(main(other.results)?.text, "False", "contexts do not share state");
      await sb.codeContexts.restart(ctx.id);
      const lost = await sb.runCode("'y' in dir()", { context: ctx.id });
      assert.equal(main(lost.results)?.text, "False");
      await sb.codeContexts.remove(ctx.id);
      assert.ok(!sb.codeContexts.list().some((c) => c.id === ctx.id));
      await rejectsCode(sb.codeContexts.remove(ctx.id), "not_found");
      await rejectsCode(sb.runCode("1", { context: "default", language: "js" }), "invalid_argument");
    });

    it("a cell past its time limit is interrupted: timeout, and the context keeps its state", async () => {
      await sb.runCode("kept = 'yes'");
      await rejectsCode(
        sb.runCode("import time\nwhile True: time.sleep(0.05)", { timeoutMs: 500 }),
        "timeout",
      );
      const r = await sb.runCode("kept");
      assert.equal(main(r.results)?.text, "'yes'");
    });
  });
}
