/**
 * The dashboard's static assets: built by Vite from `dashboard/` into
 * `dashboard/dist` (gitignored), and built on first use when missing or older
 * than their sources (`npm run build:dashboard` does the same ahead of time).
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** The dashboard's source folder (`<repo>/dashboard`). */
export const DASHBOARD_DIR = fileURLToPath(new URL("../../../dashboard/", import.meta.url));
/** Where the built assets live. */
export const DIST_DIR = join(DASHBOARD_DIR, "dist");

const SOURCES = ["src", "index.html", "vite.config.ts", "public"];

function newestMtime(path: string): number {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, name)));
  return newest;
}

/** True when `dashboard/dist` is missing or older than a source file. */
export function dashboardStale(): boolean {
  const built = join(DIST_DIR, "index.html");
  if (!existsSync(built)) return true;
  if (!existsSync(join(DASHBOARD_DIR, "src"))) return false; // an install without sources: use what is there
  const builtAt = statSync(built).mtimeMs;
  return SOURCES.some((s) => newestMtime(join(DASHBOARD_DIR, s)) > builtAt);
}

let building: Promise<void> | undefined;

/**
 * Builds the assets with Vite when they are missing or stale. Concurrent
 * callers (and processes) share the work: each builds into its own folder and
 * renames it into place.
 * @throws Error with Vite's output when the build fails or Vite is not installed
 */
export function ensureDashboardBuilt(): Promise<void> {
  if (!dashboardStale()) return Promise.resolve();
  building ??= build().finally(() => {
    building = undefined;
  });
  return building;
}

async function build(): Promise<void> {
  const vite = fileURLToPath(new URL("../../../node_modules/vite/bin/vite.js", import.meta.url));
  if (!existsSync(vite)) throw new Error("the dashboard is not built and Vite is not installed");
  const tmp = join(DASHBOARD_DIR, `.dist-${process.pid}-${Date.now()}`);
  const output: string[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [vite, "build", "--outDir", tmp, "--emptyOutDir", "--logLevel", "warn"],
      {
        cwd: DASHBOARD_DIR,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child.stdout.on("data", (d: Buffer) => output.push(d.toString()));
    child.stderr.on("data", (d: Buffer) => output.push(d.toString()));
    child.once("error", reject);
    child.once("close", resolve);
  });
  if (code !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`building the dashboard failed (vite exit ${code}):\n${output.join("")}`);
  }
  rmSync(DIST_DIR, { recursive: true, force: true });
  try {
    renameSync(tmp, DIST_DIR);
  } catch {
    // Another process put its build in place first.
    rmSync(tmp, { recursive: true, force: true });
  }
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".woff2": "font/woff2",
  ".map": "application/json",
};

/**
 * No external requests at run time: everything the page loads comes from
 * this server (xterm's DOM renderer needs inline styles).
 */
export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
  "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/**
 * A built asset for a URL path relative to the dashboard's root (`""` is
 * index.html), or undefined.
 */
export function readAsset(rel: string): { body: Uint8Array; type: string } | undefined {
  const clean = normalize(`/${rel || "index.html"}`).slice(1);
  if (clean.split(sep).includes("..")) return undefined;
  const file = join(DIST_DIR, clean);
  try {
    if (!statSync(file).isFile()) return undefined;
    return { body: readFileSync(file), type: TYPES[extname(file)] ?? "application/octet-stream" };
  } catch {
    return undefined;
  }
}
