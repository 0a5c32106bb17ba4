/**
 * A notebook view of a sandbox: cells run through `POST /v1/sandboxes/{id}/code`
 * (a persistent context per language) with their output and rich results as
 * they stream in. Results are the sandbox's, so untrusted: images are shown as
 * `<img>` from data URIs (an SVG there runs no script), HTML (a DataFrame) in
 * an iframe with an empty `sandbox` attribute (no scripts, its own opaque
 * origin), everything else as text.
 */
import { useState } from "preact/hooks";
import { request, sandboxPath } from "./api.ts";

interface CellResult {
  text?: string;
  html?: string;
  markdown?: string;
  svg?: string;
  png?: string;
  jpeg?: string;
  latex?: string;
  json?: unknown;
  isMainResult: boolean;
}

interface Cell {
  n: number;
  language: string;
  code: string;
  stdout: string;
  stderr: string;
  results: CellResult[];
  error?: { name: string; value: string; traceback: string };
  /** Kiln's own error (a timeout, an unsupported language...). */
  failure?: string;
  running: boolean;
  count?: number;
}

const LANGUAGES = ["python", "js", "bash"];

/** Renders one result in the safest form that shows it. */
function Result({ r }: { r: CellResult }) {
  if (r.png)
    return <img class="cell-image" alt={r.text ?? "PNG result"} src={`data:image/png;base64,${r.png}`} />;
  if (r.jpeg)
    return <img class="cell-image" alt={r.text ?? "JPEG result"} src={`data:image/jpeg;base64,${r.jpeg}`} />;
  if (r.svg) {
    const src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(r.svg)}`;
    return <img class="cell-image" alt={r.text ?? "SVG result"} src={src} />;
  }
  if (r.html !== undefined) {
    return <iframe class="cell-html" title={r.text ?? "HTML result"} sandbox="" srcdoc={r.html} />;
  }
  const text =
    r.text ?? r.markdown ?? r.latex ?? (r.json !== undefined ? JSON.stringify(r.json, null, 2) : "");
  return <pre class="cell-text">{text}</pre>;
}

export function Notebook({ sandboxId }: { sandboxId: string }) {
  const [cells, setCells] = useState<Cell[]>([]);
  const [code, setCode] = useState("");
  const [language, setLanguage] = useState("python");
  const update = (n: number, f: (c: Cell) => Cell) => setCells((cs) => cs.map((c) => (c.n === n ? f(c) : c)));

  const run = async () => {
    if (!code.trim()) return;
    const n = cells.length + 1;
    setCells((cs) => [...cs, { n, language, code, stdout: "", stderr: "", results: [], running: true }]);
    setCode("");
    try {
      const res = await request("POST", `${sandboxPath(sandboxId)}/code`, { json: { code, language } });
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += value;
        let nl = buf.indexOf("\n");
        while (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          nl = buf.indexOf("\n");
          if (!line.trim()) continue;
          const ev = JSON.parse(line);
          if (ev.type === "stdout") update(n, (c) => ({ ...c, stdout: c.stdout + ev.data }));
          else if (ev.type === "stderr") update(n, (c) => ({ ...c, stderr: c.stderr + ev.data }));
          else if (ev.type === "result") update(n, (c) => ({ ...c, results: [...c.results, ev.result] }));
          else if (ev.type === "cell_error") update(n, (c) => ({ ...c, error: ev.error }));
          else if (ev.type === "exit")
            update(n, (c) => ({
              ...c,
              running: false,
              ...(ev.result?.executionCount !== undefined ? { count: ev.result.executionCount } : {}),
              ...(ev.error ? { failure: `${ev.error.code}: ${ev.error.message}` } : {}),
            }));
        }
      }
    } catch (e) {
      update(n, (c) => ({ ...c, failure: (e as Error).message }));
    } finally {
      update(n, (c) => ({ ...c, running: false }));
    }
  };

  return (
    <section aria-label="Notebook" class="notebook">
      {cells.map((c) => (
        <article class="cell" key={c.n} aria-label={`Cell ${c.n}`} data-testid={`cell-${c.n}`}>
          <div class="cell-head">
            <span class="muted">
              [{c.running ? "*" : (c.count ?? " ")}] {c.language}
            </span>
          </div>
          <pre class="cell-code">{c.code}</pre>
          {c.stdout && <pre class="cell-stdout">{c.stdout}</pre>}
          {c.stderr && <pre class="cell-stderr">{c.stderr}</pre>}
          {c.results.map((r, i) => (
            <div class={r.isMainResult ? "cell-result main" : "cell-result"} key={i}>
              <Result r={r} />
            </div>
          ))}
          {c.error && (
            <pre class="cell-error" role="alert">
              {c.error.traceback || `${c.error.name}: ${c.error.value}`}
            </pre>
          )}
          {c.failure && (
            <p class="error" role="alert">
              {c.failure}
            </p>
          )}
        </article>
      ))}
      <form
        class="cell-input"
        onSubmit={(e) => {
          e.preventDefault();
          void run();
        }}
      >
        <label>
          Language{" "}
          <select value={language} onChange={(e) => setLanguage((e.target as HTMLSelectElement).value)}>
            {LANGUAGES.map((l) => (
              <option key={l} value={l}>
                {l}
              </option>
            ))}
          </select>
        </label>
        <textarea
          aria-label="Cell code"
          rows={5}
          value={code}
          onInput={(e) => setCode((e.target as HTMLTextAreaElement).value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && (e.shiftKey || e.ctrlKey)) {
              e.preventDefault();
              void run();
            }
          }}
        />
        <button type="submit">Run cell</button>
      </form>
    </section>
  );
}
