/**
 * Hostile uploads against a real `kiln serve` process (the CLI, so that its
 * memory is its own): a 300 MB upload, over the sandbox's `maxFileBytes`
 * (256 MiB by default), through the E2B SDK (multipart, as `files.write` of
 * bytes sends it, and a raw stream) and through the REST API (streamed, and
 * with a Content-Length). Each is refused at the limit, leaves no file, and
 * the server's peak memory (VmHWM, reset before each upload) grows by far
 * less than the upload: the body is streamed, never held whole.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, type TestContext, test } from "node:test";
import { Sandbox } from "e2b";
import { KeyStore } from "../../src/server/keys.ts";

const MAIN = join(import.meta.dirname, "..", "..", "src", "cli", "main.ts");
const MiB = 1024 * 1024;
const UPLOAD_BYTES = 300 * 1000 * 1000;
/** The most the server's peak memory may grow during one such upload. */
const MAX_GROWTH_BYTES = 160 * MiB;

/** A stream of `total` bytes in 1 MiB chunks, made as it is read. */
function bytesStream(total: number): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(MiB).fill(120);
  let sent = 0;
  return new ReadableStream({
    pull(c) {
      if (sent >= total) return c.close();
      const n = Math.min(chunk.length, total - sent);
      sent += n;
      c.enqueue(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
}

function statusKb(pid: number, field: "VmHWM" | "VmRSS"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(m, `no ${field} for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Resets the process's peak RSS to its current RSS (Linux `clear_refs` 5). */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
}

describe("uploads are streamed and stopped at the limit (kiln serve process)", { timeout: 600_000 }, () => {
  let dataDir: string;
  let child: ChildProcess;
  let url: string;
  let key: string;
  let sb: Sandbox;

  /** Runs `upload` and returns how much the server's peak memory grew meanwhile. */
  async function growth(t: TestContext, what: string, upload: () => Promise<void>): Promise<number> {
    const pid = child.pid!;
    resetPeak(pid);
    const base = statusKb(pid, "VmRSS");
    await upload();
    const grown = statusKb(pid, "VmHWM") - base;
    t.diagnostic(
      `${what}: server peak RSS grew ${(grown / MiB).toFixed(1)} MiB (from ${(base / MiB).toFixed(1)} MiB)`,
    );
    return grown;
  }

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-hostile-upload-"));
    const keys = new KeyStore(dataDir);
    key = keys.create({ name: "uploader" }).key;
    keys.close();
    child = spawn(
      process.execPath,
      [MAIN, "--data-dir", dataDir, "--json", "serve", "--port", "0", "--e2b-tier", "virtual"],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    url = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (d) => {
        out += d;
        const line = out.split("\n").find((l) => l.startsWith("{"));
        if (line) resolve(JSON.parse(line).url);
      });
      child.once("exit", (code) => reject(new Error(`kiln serve exited ${code}`)));
    });
    sb = await Sandbox.create({ apiUrl: url, sandboxUrl: url, apiKey: key, timeoutMs: 600_000 });
    // Warm every path once, so that the measurements see only the uploads.
    await sb.files.write("/workspace/warm.txt", "warm");
    await sb.files.write("/workspace/warm2.txt", bytesStream(4 * MiB));
    const put = await fetch(`${url}/v1/sandboxes/${sb.sandboxId}/files?path=warm3.txt`, {
      method: "PUT",
      headers: { authorization: `Bearer ${key}` },
      body: new Uint8Array(4 * MiB),
    });
    assert.equal(put.status, 200);
  });
  after(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  const absent = async (path: string) => assert.equal(await sb.files.exists(path), false, `${path} is left`);

  test("upload-e2b-multipart: 300 MB through files.write (multipart) is refused at the limit, streamed", async (t) => {
    // Made before the measurement, and sent right after a request: the client's kept-alive
    // connection is fresh (a POST on one the server is just closing fails with EPIPE).
    const data = new Blob([new Uint8Array(UPLOAD_BYTES).fill(97)]);
    const grown = await growth(t, "E2B multipart", async () => {
      await sb.files.exists("/workspace/warm.txt");
      await assert.rejects(sb.files.write("/workspace/big-multipart.bin", data), (e: Error) => {
        t.diagnostic(
          `E2B multipart: ${e.name}: ${e.message.slice(0, 120)} ${String((e as { cause?: unknown }).cause)}`,
        );
        return true;
      });
    });
    await absent("/workspace/big-multipart.bin");
    assert.ok(grown < MAX_GROWTH_BYTES, `the server grew ${grown} bytes`);
    assert.equal(await sb.files.read("/workspace/warm.txt"), "warm");
  });

  test("upload-e2b-raw: 300 MB through files.write of a stream (octet-stream) is refused at the limit", async (t) => {
    const grown = await growth(t, "E2B raw stream", async () => {
      await assert.rejects(
        sb.files.write("/workspace/big-raw.bin", bytesStream(UPLOAD_BYTES)),
        (e: Error) => {
          t.diagnostic(`E2B raw: ${e.name}: ${e.message.slice(0, 120)}`);
          return true;
        },
      );
    });
    await absent("/workspace/big-raw.bin");
    assert.ok(grown < MAX_GROWTH_BYTES, `the server grew ${grown} bytes`);
  });

  test("upload-rest-put: 300 MB PUT (streamed, and with a Content-Length) is limit_exceeded, streamed", async (t) => {
    const put = (body: ReadableStream<Uint8Array> | Uint8Array) =>
      fetch(`${url}/v1/sandboxes/${sb.sandboxId}/files?path=big-rest.bin`, {
        method: "PUT",
        headers: { authorization: `Bearer ${key}` },
        body,
        ...(body instanceof ReadableStream ? { duplex: "half" } : {}),
      } as RequestInit).then(
        async (r) => ({ status: r.status, body: await r.text() }),
        (e) => ({ status: 0, body: `cut: ${e} ${e?.cause}` }),
      );
    const grown = await growth(t, "REST PUT streamed", async () => {
      const r = await put(bytesStream(UPLOAD_BYTES));
      t.diagnostic(`REST PUT streamed: HTTP ${r.status} ${r.body.slice(0, 160)}`);
      if (r.status !== 0) {
        assert.equal(r.status, 429, r.body);
        assert.equal(JSON.parse(r.body).error.limit, "maxFileBytes");
      }
    });
    assert.ok(grown < MAX_GROWTH_BYTES, `the server grew ${grown} bytes`);
    const big = new Uint8Array(UPLOAD_BYTES);
    const withLength = await growth(t, "REST PUT with Content-Length", async () => {
      const r = await put(big);
      t.diagnostic(`REST PUT with Content-Length: HTTP ${r.status} ${r.body.slice(0, 160)}`);
      if (r.status !== 0) {
        assert.equal(r.status, 429, r.body);
        assert.equal(JSON.parse(r.body).error.limit, "maxFileBytes");
      }
    });
    assert.ok(withLength < MAX_GROWTH_BYTES, `the server grew ${withLength} bytes`);
    await absent("/workspace/big-rest.bin");
    // The server still works.
    assert.equal((await sb.commands.run("cat /workspace/warm.txt")).stdout, "warm");
  });
});
