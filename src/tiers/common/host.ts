/**
 * Facts about the host and small process helpers shared by the real-binary
 * tiers (namespace, oci, gvisor, microvm). Not a tier itself.
 */
import { execFile, spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

/** The repository root (where scripts/ and agent/ live). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

/** Absolute path of `name` on PATH (plus sbin directories), or undefined. */
export function which(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** True when this process runs as root. */
export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Runs a program to completion; rejects with its stderr on a non-zero exit. */
export async function run(
  file: string,
  args: string[],
  options: { timeoutMs?: number; input?: string } = {},
): Promise<{ stdout: string; stderr: string }> {
  try {
    const r = await execFileP(file, args, {
      timeout: options.timeoutMs ?? 30_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { stdout: String(r.stdout), stderr: String(r.stderr) };
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${file} ${args.join(" ")}: ${(err.stderr || err.message).trim()}`, { cause: e });
  }
}

let agentPath: string | undefined;

/**
 * The in-sandbox agent binary, built on first use (scripts/build-agent.sh is
 * quick when it is up to date). Throws with the build's message when it cannot be built.
 */
export function agentBinary(): string {
  if (agentPath) return agentPath;
  const out = join(REPO_ROOT, "agent", "target", "kiln-agent");
  // The build script's own up-to-date check, without starting bash and find on every CLI call.
  if (!agentIsFresh(out)) {
    const r = spawnSync("bash", [join(REPO_ROOT, "scripts", "build-agent.sh")], { encoding: "utf8" });
    if (r.status !== 0 || !existsSync(out)) {
      throw new Error(`cannot build the in-sandbox agent: ${(r.stderr || r.stdout || "").trim()}`);
    }
  }
  agentPath = out;
  return out;
}

/** True when the agent binary exists and no source (agent/src, agent/Cargo.toml) is newer. */
function agentIsFresh(out: string): boolean {
  try {
    const built = statSync(out).mtimeMs;
    const src = join(REPO_ROOT, "agent", "src");
    const sources = [
      join(REPO_ROOT, "agent", "Cargo.toml"),
      src,
      ...readdirSync(src, { recursive: true }).map((f) => join(src, String(f))),
    ];
    return sources.every((f) => statSync(f).mtimeMs <= built);
  } catch {
    return false;
  }
}
