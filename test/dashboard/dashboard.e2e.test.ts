/**
 * The web dashboard end to end, in headless Chromium (Debian's `chromium`,
 * driven by playwright-core; no browser is ever downloaded): a real server on
 * a loopback ephemeral port with a real key and a temp data directory; log in,
 * create a virtual sandbox, run commands in the terminal, upload a file and
 * download it back byte for byte, read the audit log, watch the list update
 * live, and kill the sandbox. Screenshots go to docs/screenshots/ with KILN_UPDATE_SCREENSHOTS=1.
 *
 * Skips (with the reason) only when Chromium cannot be installed or launched,
 * and fails instead when KILN_REQUIRE_DASHBOARD=1.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { ensureDashboardBuilt } from "../../src/server/dashboard/index.ts";
import { type RunningServer, startServer } from "../../src/server/index.ts";
import { tierRequired } from "../conformance/suite.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
// The screenshots in docs/ are refreshed on request (KILN_UPDATE_SCREENSHOTS=1); other runs keep theirs in a temp dir.
const SHOTS = process.env.KILN_UPDATE_SCREENSHOTS
  ? join(ROOT, "docs", "screenshots")
  : mkdtempSync(join(tmpdir(), "kiln-screenshots-"));
const CHROMIUM = "/usr/bin/chromium";
const REQUIRED = process.env.KILN_REQUIRE_DASHBOARD === "1";

let server: RunningServer | undefined;
let key = "";
let dataDir = "";
let profileDir = "";
let context: BrowserContext | undefined;
let skipReason: string | undefined;

function installChromium(): void {
  if (existsSync(CHROMIUM)) return;
  // The same script `npm test` runs first; it installs `chromium` when root with apt.
  spawnSync("bash", [join(ROOT, "scripts", "setup-system.sh")], { cwd: ROOT, stdio: "inherit" });
}

before(async () => {
  installChromium();
  profileDir = mkdtempSync(join(tmpdir(), "kiln-chromium-"));
  try {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is not installed and could not be installed`);
    // A fresh profile (--user-data-dir) per run.
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      viewport: { width: 1280, height: 800 },
      acceptDownloads: true,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      timeout: 60_000,
    });
  } catch (e) {
    skipReason = `Chromium cannot be launched: ${(e as Error).message.split("\n")[0]}`;
    if (REQUIRED) throw new Error(`KILN_REQUIRE_DASHBOARD=1 and ${skipReason}`);
    console.log(`# skipping the dashboard end-to-end test: ${skipReason}`);
    return;
  }
  await ensureDashboardBuilt();
  dataDir = mkdtempSync(join(tmpdir(), "kiln-dash-"));
  server = await startServer({ dataDir, port: 0, host: "127.0.0.1", graceMs: 1000 });
  key = server.keys.create({ name: "dashboard-e2e" }).key;
});

after(async () => {
  await context?.close();
  await server?.close(500);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
});

/** Polls `f` until it returns a truthy value. */
async function until<T>(what: string, f: () => Promise<T> | T, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const terminalText = async (page: Page) => (await page.locator(".xterm-rows").textContent()) ?? "";

async function runInTerminal(page: Page, line: string, expect: string): Promise<void> {
  await until("the terminal to be ready", async () =>
    ((await page.getByTestId("terminal-status").textContent()) ?? "").includes("Ready"),
  );
  await page.locator(".xterm-host").click();
  await page.keyboard.type(line);
  await page.keyboard.press("Enter");
  await until(`"${expect}" in the terminal`, async () => (await terminalText(page)).includes(expect));
}

function api(method: string, path: string, json?: unknown): Promise<Response> {
  return fetch(server!.url + path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(json ? { "content-type": "application/json" } : {}) },
    ...(json ? { body: JSON.stringify(json) } : {}),
  });
}

test("the dashboard: log in, create, terminal, files, audit log, live list, kill", async (t) => {
  if (skipReason) return t.skip(skipReason);
  try {
    await scenario();
  } catch (e) {
    const shot = join(tmpdir(), `kiln-dashboard-failure-${Date.now()}.png`);
    await context!
      .pages()[0]
      ?.screenshot({ path: shot })
      .catch(() => {});
    console.log(`# failure screenshot: ${shot}`);
    throw e;
  }
});

async function scenario(): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  const page = context!.pages()[0] ?? (await context!.newPage());
  // No request may leave the server.
  const external: string[] = [];
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(server!.url) && !u.startsWith("data:") && !u.startsWith("blob:")) external.push(u);
  });
  const pageErrors: string[] = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("dialog", (d) => void d.accept());

  // Log in.
  await page.goto(`${server!.url}/`);
  await page.getByLabel("API key").fill("kiln_key_wrong_secret");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByText("That key is unknown or revoked.").waitFor();
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: /Sandboxes/ }).waitFor();
  await page.getByText("● Live").waitFor();

  // Tiers come from the server; unavailable ones are disabled with their reason.
  const tier = page.getByRole("combobox", { name: /^Tier/ });
  await until("the tier list", async () => (await tier.locator("option").count()) > 1);
  assert.equal(await tier.getByRole("option", { name: "virtual", exact: true }).isDisabled(), false);
  const doctor = (await (await api("GET", "/v1/doctor")).json()) as { tier: string; available: boolean }[];
  for (const s of doctor.filter((x) => !x.available)) {
    assert.equal(
      await tier.getByRole("option", { name: `${s.tier} (unavailable)` }).isDisabled(),
      true,
      s.tier,
    );
    assert.equal(await page.getByTestId(`tier-reason-${s.tier}`).count(), 1);
  }

  // Create a virtual sandbox: the page opens its terminal.
  await tier.selectOption("virtual");
  await page.getByLabel("Memory (MiB)").fill("256");
  await page.getByRole("button", { name: "Create sandbox" }).click();
  await page.waitForURL(/#\/sandboxes\/sb_[0-9a-z]+\/terminal$/);
  const id = /#\/sandboxes\/(sb_[0-9a-z]+)\//.exec(page.url())![1]!;

  // The terminal: output, and cwd/env carried between lines.
  await runInTerminal(page, "echo hello-from-$((6*7))", "hello-from-42");
  await runInTerminal(page, "mkdir -p notes && cd notes && export GREETING=hi", "virtual:/workspace/notes$");
  await runInTerminal(page, 'echo "$GREETING from $(pwd)"', "hi from /workspace/notes");
  await runInTerminal(page, "cd .. && ls -1 /workspace; false", "[exit 1]");
  await until(
    "resource use in the header",
    async () =>
      /\d/.test((await page.locator(".facts").textContent()) ?? "") &&
      !(await page.locator(".facts").textContent())?.includes("…"),
  );
  await page.screenshot({ path: join(SHOTS, "terminal.png") });

  // Files: upload, see it listed, download it back byte for byte.
  await page.getByRole("tab", { name: "Files" }).click();
  await page.getByTestId("entry-notes").waitFor();
  const bytes = randomBytes(256 * 1024 + 13);
  await page
    .getByTestId("upload")
    .setInputFiles({ name: "blob.bin", mimeType: "application/octet-stream", buffer: bytes });
  await page.getByTestId("entry-blob.bin").waitFor();
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Download blob.bin" }).click(),
  ]);
  const got = readFileSync((await download.path())!);
  assert.equal(got.length, bytes.length);
  assert.ok(Buffer.compare(got, bytes) === 0, "downloaded bytes differ from the uploaded ones");
  // New folder, navigate into it and back, delete it.
  await page.getByLabel("New folder").fill("reports");
  await page.getByRole("button", { name: "Create folder" }).click();
  await page.getByTestId("entry-reports").waitFor();
  await page.getByRole("button", { name: "reports/" }).click();
  await page.getByText("This folder is empty.").waitFor();
  await page.getByRole("button", { name: "↑ Parent folder" }).click();
  await page.getByTestId("entry-blob.bin").waitFor();
  await page.getByRole("button", { name: "Delete reports" }).click();
  await until(
    "the folder to be deleted",
    async () => (await page.getByTestId("entry-reports").count()) === 0,
  );
  await page.getByLabel("New folder").fill("data");
  await page.getByRole("button", { name: "Create folder" }).click();
  await page.getByTestId("entry-data").waitFor();
  await page.screenshot({ path: join(SHOTS, "files.png") });

  // The audit log: the terminal's lines as typed, with exit codes.
  await page.getByRole("tab", { name: "Audit log" }).click();
  const entry = page.getByTestId("audit-entry").filter({ hasText: "echo hello-from-$((6*7))" });
  await entry.waitFor();
  assert.equal(await entry.locator(".badge.ok").textContent(), "0");
  const failed = page.getByTestId("audit-entry").filter({ hasText: "false" });
  assert.equal(await failed.locator(".badge.bad").textContent(), "1");

  // The list updates live: a sandbox created and a command run elsewhere appear without a reload.
  await page.getByRole("button", { name: "← All sandboxes" }).click();
  await page.getByTestId(`sandbox-${id}`).waitFor();
  const other = (await (await api("POST", "/v1/sandboxes", { tier: "virtual" })).json()) as { id: string };
  await page.getByTestId(`sandbox-${other.id}`).waitFor({ timeout: 10_000 });
  const bg = await api("POST", `/v1/sandboxes/${other.id}/commands`, {
    command: "sleep 30",
    background: true,
  });
  const { pid } = (await bg.json()) as { pid: number };
  await page.getByTestId(`sandbox-${other.id}`).getByText("1 command running").waitFor({ timeout: 10_000 });
  // Resource use arrives from the stats endpoint (n/a where the tier cannot measure).
  await until("the workspace size", async () =>
    /\d/.test((await page.getByTestId(`sandbox-${id}`).locator("td").nth(7).textContent()) ?? ""),
  );
  await until("the tier list", async () => (await tier.locator("option").count()) > 1);
  await until(
    "every sandbox's resource use",
    async () => !(await page.locator("table").first().textContent())?.includes("…"),
  );
  await page.screenshot({ path: join(SHOTS, "list.png") });
  await api("POST", `/v1/sandboxes/${other.id}/commands/${pid}/kill`);
  await page.getByTestId(`sandbox-${other.id}`).getByText("idle").waitFor({ timeout: 10_000 });
  assert.equal((await api("DELETE", `/v1/sandboxes/${other.id}`)).status, 204);
  await until(
    "the other sandbox to leave the list",
    async () => (await page.getByTestId(`sandbox-${other.id}`).count()) === 0,
  );

  // Kill the sandbox from the page.
  await page.getByRole("button", { name: `Kill ${id}` }).click();
  await until(
    "the sandbox to leave the list",
    async () => (await page.getByTestId(`sandbox-${id}`).count()) === 0,
  );
  assert.equal((await api("GET", `/v1/sandboxes/${id}`)).status, 404);

  // A tier with terminals: the page's terminal is a login shell on a real pty.
  const ns = doctor.find((s) => s.tier === "namespace");
  if (ns?.available) {
    await tier.selectOption("namespace");
    await page.getByRole("button", { name: "Create sandbox" }).click();
    await page.waitForURL(/#\/sandboxes\/sb_[0-9a-z]+\/terminal$/);
    const nsId = /#\/sandboxes\/(sb_[0-9a-z]+)\//.exec(page.url())![1]!;
    assert.notEqual(nsId, id);
    await until("the pty terminal", async () =>
      ((await page.getByTestId("terminal-status").textContent()) ?? "").includes("Connected"),
    );
    assert.match((await page.getByTestId("terminal-mode").textContent()) ?? "", /real terminal/);
    await page.locator(".xterm-host").click();
    // Keys go straight to bash: it sees a tty of the page's size, and Ctrl-C stops a job.
    await page.keyboard.type("sleep 30");
    await page.keyboard.press("Enter");
    await page.keyboard.press("Control+C");
    await page.keyboard.type('test -t 0 && echo "tty $(stty size | tr " " x)"');
    await page.keyboard.press("Enter");
    await until("the tty's size in the terminal", async () => /tty \d+x\d+/.test(await terminalText(page)));
    await page.screenshot({ path: join(SHOTS, "terminal-pty.png") });
    // The live chart follows a busy loop: CPU from successive stats samples, memory against the limit.
    const loop = await api("POST", `/v1/sandboxes/${nsId}/commands`, {
      command: "for i in 1 2; do (while :; do :; done) & done; wait",
      background: true,
    });
    const { pid: loopPid } = (await loop.json()) as { pid: number };
    const chart = page.getByTestId("usage-chart");
    await until(
      "the live chart to show the busy loop",
      // An idle sandbox shows about 0%; the loop shows its share of a core (less on a loaded host).
      async () => Number((await chart.getAttribute("data-cpu-pct")) || 0) > 10,
      60_000,
    );
    assert.ok(Number(await chart.getAttribute("data-mem-pct")) > 0);
    assert.equal(await chart.locator("polyline.usage-cpu").count(), 1);
    await page.screenshot({ path: join(SHOTS, "usage-chart.png") });
    await api("POST", `/v1/sandboxes/${nsId}/commands/${loopPid}/kill`);
    await page.getByRole("button", { name: "← All sandboxes" }).click();
    await page.getByRole("button", { name: `Kill ${nsId}` }).click();
    await until(
      "the namespace sandbox to leave the list",
      async () => (await page.getByTestId(`sandbox-${nsId}`).count()) === 0,
    );
  } else if (tierRequired("namespace")) {
    assert.fail(`tier namespace required but unavailable: ${JSON.stringify(ns)}`);
  } else {
    console.log("# the pty terminal part is skipped: the namespace tier is unavailable here");
  }

  assert.deepEqual(external, [], "the dashboard made requests to other hosts");
  assert.deepEqual(pageErrors, [], "the page threw");
}

test("the notebook: a matplotlib chart as an image, a DataFrame as a table, HTML that cannot run script", async (t) => {
  if (skipReason) return t.skip(skipReason);
  const created = await api("POST", "/v1/sandboxes", { tier: "namespace", template: "code-interpreter" });
  if (created.status !== 201) {
    const why = `a namespace sandbox with the code-interpreter template: ${created.status} ${await created.text()}`;
    if (tierRequired("namespace")) assert.fail(`required by KILN_REQUIRE_TIERS: ${why}`);
    return t.skip(why);
  }
  const { id } = (await created.json()) as { id: string };
  const page = await context!.newPage();
  const pageErrors: string[] = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  try {
    await page.goto(`${server!.url}/`);
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: /Sandboxes/ }).waitFor();
    await page.goto(`${server!.url}/#/sandboxes/${id}/notebook`);
    const runCell = async (n: number, code: string) => {
      await page.getByLabel("Cell code").fill(code);
      await page.getByRole("button", { name: "Run cell" }).click();
      const cell = page.getByTestId(`cell-${n}`);
      // The count replaces the `*` when the cell is done.
      await until(
        `cell ${n} to finish`,
        async () => /\[\d+\]/.test((await cell.textContent()) ?? ""),
        60_000,
      );
      return cell;
    };
    const chart = await runCell(
      1,
      "import matplotlib.pyplot as plt\nplt.bar(['a', 'b', 'c'], [3, 1, 2])\nplt.title('letters')\nplt.show()",
    );
    const img = chart.locator("img.cell-image");
    await img.waitFor();
    await until("the chart to be decoded", async () =>
      img.evaluate((el) => {
        const im = el as unknown as { complete: boolean; naturalWidth: number };
        return im.complete && im.naturalWidth > 100;
      }),
    );
    const table = await runCell(2, "import pandas as pd\npd.DataFrame({'letter': ['a', 'b'], 'n': [3, 1]})");
    const frame = page.frameLocator('[data-testid="cell-2"] iframe.cell-html');
    await frame.locator("table").waitFor();
    assert.match((await frame.locator("table").textContent()) ?? "", /letter/);
    assert.equal(await table.locator("iframe").getAttribute("sandbox"), "");
    await page.screenshot({ path: join(SHOTS, "notebook.png"), fullPage: true });
    // HTML from the sandbox is shown, never run: no script in the frame, nothing reaches the page.
    await runCell(
      3,
      "from IPython.display import HTML, display\n" +
        "display(HTML(\"<p id='x'>shown</p><script>document.getElementById('x').textContent='ran'; parent.document.title='pwned'</script>\"))",
    );
    const hostile = page.frameLocator('[data-testid="cell-3"] iframe.cell-html');
    await hostile.locator("#x").waitFor();
    assert.equal(await hostile.locator("#x").textContent(), "shown");
    assert.doesNotMatch(await page.title(), /pwned/);
    assert.deepEqual(pageErrors, [], "the page threw");
  } finally {
    await page.close();
    await api("DELETE", `/v1/sandboxes/${id}`);
  }
});

test("sandbox state from the dashboard: pause, resume, snapshot and fork, the state shown", async (t) => {
  if (skipReason) return t.skip(skipReason);
  const created = await api("POST", "/v1/sandboxes", {});
  assert.equal(created.status, 201);
  const { id } = (await created.json()) as { id: string };
  const put = await fetch(`${server!.url}/v1/sandboxes/${id}/files?path=kept.txt`, {
    method: "PUT",
    headers: { authorization: `Bearer ${key}` },
    body: "parent's",
  });
  assert.equal(put.status, 200);
  const page = await context!.newPage();
  const pageErrors: string[] = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  const made: string[] = [];
  try {
    await page.goto(`${server!.url}/`);
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: /Sandboxes/ }).waitFor();
    // The list shows each sandbox's state.
    await until("the state in the list", async () =>
      ((await page.getByTestId(`sandbox-${id}`).textContent()) ?? "").includes("running"),
    );
    await page.goto(`${server!.url}/#/sandboxes/${id}/files`);
    const state = page.getByTestId("sandbox-state");
    await until("running", async () => (await state.textContent()) === "running");

    await page.getByRole("button", { name: "Pause", exact: true }).click();
    await until("paused", async () => (await state.textContent()) === "paused");
    const rec = (await (await api("GET", `/v1/sandboxes/${id}`)).json()) as { state: string };
    assert.equal(rec.state, "paused");
    await page.screenshot({ path: join(SHOTS, "dashboard-paused.png"), fullPage: true });
    await page.getByRole("button", { name: "Resume", exact: true }).click();
    await until("running again", async () => (await state.textContent()) === "running");

    await page.getByRole("button", { name: "Snapshot", exact: true }).click();
    const outcome = page.getByTestId("state-outcome");
    const snapId = await until(
      "the snapshot's id",
      async () => /snap_[a-z0-9]{20}/.exec((await outcome.textContent()) ?? "")?.[0],
    );
    const snaps = (await (await api("GET", "/v1/snapshots")).json()) as { id: string; sandboxId: string }[];
    assert.ok(snaps.some((s) => s.id === snapId && s.sandboxId === id));

    await page.getByRole("button", { name: "Fork", exact: true }).click();
    const forkId: string = await until(
      "the fork's id",
      async () => /Forked: (sb_[a-z0-9]{20})/.exec((await outcome.textContent()) ?? "")?.[1] ?? "",
    );
    made.push(forkId);
    const read = await fetch(`${server!.url}/v1/sandboxes/${forkId}/files?path=kept.txt`, {
      headers: { authorization: `Bearer ${key}` },
    });
    assert.equal(await read.text(), "parent's");
    // The fork's link opens it.
    await page.getByRole("button", { name: forkId }).click();
    await until(
      "the fork's page",
      async () => ((await page.locator("#sandbox-title").textContent()) ?? "") === forkId,
    );
    assert.deepEqual(pageErrors, [], "the page threw");
  } finally {
    await page.close();
    for (const s of [id, ...made]) await api("DELETE", `/v1/sandboxes/${s}`);
    for (const s of (await (await api("GET", "/v1/snapshots")).json()) as { id: string }[])
      await api("DELETE", `/v1/snapshots/${s.id}`);
  }
});

test("the network tab: the policy, and refused and allowed attempts with their rules, live", async (t) => {
  if (skipReason) return t.skip(skipReason);
  const created = await api("POST", "/v1/sandboxes", {
    tier: "virtual",
    network: { allow: ["files.test:443"], deny: ["10.0.0.0/8"] },
  });
  assert.equal(created.status, 201);
  const { id } = (await created.json()) as { id: string };
  const run = (command: string) => api("POST", `/v1/sandboxes/${id}/commands`, { command });
  // No real network is needed: the refusals are decided before anything is dialled.
  assert.equal((await run("curl -sS https://other.test/ || true")).status, 200);
  const page = await context!.newPage();
  const pageErrors: string[] = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  try {
    await page.goto(`${server!.url}/`);
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: /Sandboxes/ }).waitFor();
    await page.goto(`${server!.url}/#/sandboxes/${id}/network`);
    const policy = page.getByTestId("network-policy");
    await until("the policy", async () => ((await policy.textContent()) ?? "").includes("files.test:443"));
    assert.match((await policy.textContent()) ?? "", /allow-list.*10\.0\.0\.0\/8/s);
    const refused = page.getByTestId("network-entry").filter({ hasText: "other.test" });
    await refused.first().waitFor();
    assert.match((await refused.first().textContent()) ?? "", /refused.*default deny/s);
    // A new attempt and a policy change appear without a reload.
    assert.equal((await run("curl -sS http://169.254.169.254/ || true")).status, 200);
    await page
      .getByTestId("network-entry")
      .filter({ hasText: "169.254.169.254" })
      .first()
      .waitFor({ timeout: 15_000 });
    assert.equal(
      (await api("PUT", `/v1/sandboxes/${id}/network`, { allow: ["other.test:443"] })).status,
      200,
    );
    await until("the new policy", async () =>
      ((await policy.textContent()) ?? "").includes("other.test:443"),
    );
    await page
      .getByTestId("network-entry")
      .filter({ hasText: "egress none; allow other.test:443" })
      .waitFor();
    await page.screenshot({ path: join(SHOTS, "network.png") });
    assert.deepEqual(pageErrors, []);
  } finally {
    await page.close();
    await api("DELETE", `/v1/sandboxes/${id}`);
  }
});
