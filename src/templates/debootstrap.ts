/**
 * Builds a template with debootstrap: a minimal Debian root filesystem plus
 * the packages asked for. A build is keyed by its recipe (suite, variant,
 * sorted packages, architecture, {@link RECIPE_VERSION}), so building the same
 * recipe again returns the stored template at once.
 *
 * Needs root (debootstrap chroots and mknods) and the network to a Debian
 * mirror. The build runs in a staging directory under the store root and is
 * renamed into place only when complete; a failed or aborted build leaves
 * nothing behind.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chmod, lstat, mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  AbortedError,
  InvalidArgumentError,
  KilnError,
  throwIfAborted,
  UnsupportedError,
} from "../core/errors.ts";
import { DEFAULT_PACKAGES } from "./defaults.ts";
import { existsInRoot, mountsUnder, removeTree } from "./fs-util.ts";
import { checkTemplateName, type Template, type TemplateStore } from "./template-store.ts";

/** Bump when the post-processing changes, so old builds are not reused for the new recipe. */
export const RECIPE_VERSION = 1;

/** The debootstrap variant every template uses. */
export const VARIANT = "minbase";

/** The default suite. */
export const DEFAULT_SUITE = "bookworm";

/** The fallback mirror when this machine's apt sources name none for the suite. */
export const FALLBACK_MIRROR = "http://deb.debian.org/debian";

export { DEFAULT_PACKAGES };

/** Build progress: a rough fraction in [0, 1] and what is happening. */
export interface BuildProgress {
  fraction: number;
  message: string;
}

/** Options of {@link build}. */
export interface BuildOptions {
  /** Packages beyond minbase; default {@link DEFAULT_PACKAGES} for the name `default`, else none. */
  packages?: readonly string[];
  /** Debian suite; default bookworm. */
  suite?: string;
  /** Mirror URL; default: this machine's apt source for the suite, else deb.debian.org. */
  mirror?: string;
  /** Repoint an existing name at a different recipe (the old blob is removed if nothing else uses it). */
  replace?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: BuildProgress) => void;
  /** Lines of debootstrap's output, for logs. */
  onOutput?: (line: string) => void;
}

const PACKAGE_RE = /^[a-z0-9][a-z0-9+.-]+$/;
const SUITE_RE = /^[a-z][a-z0-9-]*$/;

/** Debian's name for this machine's architecture. */
export function debianArch(): string {
  const map: Record<string, string> = {
    x64: "amd64",
    arm64: "arm64",
    arm: "armhf",
    ia32: "i386",
    ppc64: "ppc64el",
    s390x: "s390x",
    riscv64: "riscv64",
  };
  return map[process.arch] ?? process.arch;
}

/** Checked, sorted, de-duplicated package list. */
export function normalizePackages(packages: readonly string[]): string[] {
  for (const p of packages)
    if (typeof p !== "string" || !PACKAGE_RE.test(p))
      throw new InvalidArgumentError(`invalid package name: ${JSON.stringify(p)}`);
  return [...new Set(packages)].sort();
}

/** The recipe's digest, `sha256:<hex>`: what makes a second build of the same recipe instant. */
export function recipeDigest(suite: string, packages: readonly string[]): string {
  const recipe = {
    kind: "debootstrap",
    version: RECIPE_VERSION,
    suite,
    variant: VARIANT,
    arch: debianArch(),
    packages: normalizePackages(packages),
  };
  return `sha256:${createHash("sha256").update(JSON.stringify(recipe)).digest("hex")}`;
}

/**
 * The mirror this machine's apt uses for `suite`: the first enabled `deb`
 * source for exactly that suite in /etc/apt/sources.list, *.list or *.sources
 * (deb822) under /etc/apt/sources.list.d; else {@link FALLBACK_MIRROR}.
 */
export function defaultMirror(suite: string = DEFAULT_SUITE, etcApt = "/etc/apt"): string {
  const ok = (uri: string) => /^(https?|file):\/\//.test(uri);
  const read = (p: string) => {
    try {
      return readFileSync(p, "utf8");
    } catch {
      return "";
    }
  };
  const fromList = (text: string): string | undefined => {
    for (const raw of text.split("\n")) {
      const line = raw.replace(/#.*/, "").trim();
      // deb [opt=val ...] uri suite component...
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
      if (m && m[2] === suite && ok(m[1]!)) return m[1]!.replace(/\/+$/, "");
    }
    return undefined;
  };
  const fromSources = (text: string): string | undefined => {
    for (const para of text.split(/\n\s*\n/)) {
      const fields: Record<string, string> = {};
      let last = "";
      for (const raw of para.split("\n")) {
        if (raw.startsWith("#")) continue;
        if (/^\s/.test(raw) && last) fields[last] += ` ${raw.trim()}`;
        else {
          const i = raw.indexOf(":");
          if (i > 0) {
            last = raw.slice(0, i).trim().toLowerCase();
            fields[last] = raw.slice(i + 1).trim();
          }
        }
      }
      if (!(fields.types ?? "").split(/\s+/).includes("deb")) continue;
      if ((fields.enabled ?? "yes").toLowerCase() === "no") continue;
      if (!(fields.suites ?? "").split(/\s+/).includes(suite)) continue;
      const uri = (fields.uris ?? "").split(/\s+/).find(ok);
      if (uri) return uri.replace(/\/+$/, "");
    }
    return undefined;
  };
  const candidates: string[] = [];
  const main = fromList(read(join(etcApt, "sources.list")));
  if (main) return main;
  let files: string[] = [];
  try {
    files = readdirSync(join(etcApt, "sources.list.d")).sort();
  } catch {}
  for (const f of files) {
    const text = read(join(etcApt, "sources.list.d", f));
    const found = f.endsWith(".list")
      ? fromList(text)
      : f.endsWith(".sources")
        ? fromSources(text)
        : undefined;
    if (found) candidates.push(found);
  }
  return candidates[0] ?? FALLBACK_MIRROR;
}

/** The debootstrap executable: on PATH, else in /usr/sbin or /sbin (root's PATH may lack them). */
export function debootstrapPath(): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(":").filter(Boolean), "/usr/sbin", "/sbin"];
  for (const d of dirs) {
    const p = join(d, "debootstrap");
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Why debootstrap cannot run here, or undefined when it can. */
export function debootstrapUnavailable(): string | undefined {
  if (process.platform !== "linux") return "debootstrap builds need Linux";
  if (process.getuid?.() !== 0) return "debootstrap builds need root";
  if (!debootstrapPath()) return "debootstrap is not installed (apt-get install -y debootstrap)";
  return undefined;
}

/** Turns debootstrap's `I:` lines into a rough fraction. Phases weigh by their usual share of the time. */
export class DebootstrapProgress {
  private total: number;
  private retrieved = 0;
  private extracted = 0;
  private unpacked = 0;
  private configured = 0;
  private phase: "setup" | "retrieve" | "extract" | "unpack" | "configure" | "done" = "setup";
  fraction = 0;
  message = "starting debootstrap";

  constructor(extraPackages: number) {
    // minbase on bookworm is ~90 packages; each asked-for package drags in a few more.
    this.total = 90 + 6 * extraPackages;
  }

  /** Feeds one output line; returns the progress when it moved. */
  line(raw: string): BuildProgress | undefined {
    const m = /^I: (\S+) (.*?)\s*$/.exec(raw);
    if (!m) return undefined;
    const [, verb, rest] = m as unknown as [string, string, string];
    const pkg = (rest.replace(/\.\.\.$/, "").split(" ")[0] ?? "").replace(/:[a-z0-9]+$/, "");
    const isPkg = !/^(InRelease|Release|Packages|required|base|core|the)$/.test(pkg);
    let msg: string | undefined;
    switch (verb) {
      case "Retrieving":
        if (isPkg) {
          this.phase = "retrieve";
          this.retrieved++;
          msg = `downloading ${pkg}`;
        } else msg = `downloading ${pkg}`;
        break;
      case "Validating":
        if (!isPkg) msg = `checking ${pkg}`;
        break;
      case "Resolving":
        msg = "resolving dependencies";
        break;
      case "Extracting":
        if (this.phase !== "extract") this.total = Math.max(this.retrieved, 1);
        this.phase = "extract";
        this.extracted++;
        msg = `extracting ${pkg}`;
        break;
      case "Unpacking":
        if (isPkg) {
          this.phase = "unpack";
          this.unpacked++;
          msg = `unpacking ${pkg}`;
        } else msg = `unpacking ${rest.replace(/\.\.\.$/, "")}`;
        break;
      case "Configuring":
        if (isPkg) {
          this.phase = "configure";
          this.configured++;
          msg = `configuring ${pkg}`;
        } else msg = `configuring ${rest.replace(/\.\.\.$/, "")}`;
        break;
      case "Installing":
        msg = "installing core packages";
        break;
      case "Base":
        this.phase = "done";
        msg = "base system installed";
        break;
      default:
        return undefined;
    }
    const t = Math.max(this.total, 1);
    const share = (n: number) => Math.min(n / t, 1);
    const f =
      this.phase === "setup"
        ? 0.02
        : this.phase === "retrieve"
          ? 0.02 + 0.33 * Math.min(this.retrieved / Math.max(this.total, this.retrieved + 1), 0.99)
          : this.phase === "extract"
            ? 0.35 + 0.1 * share(this.extracted)
            : this.phase === "unpack"
              ? 0.45 + 0.2 * share(this.unpacked)
              : this.phase === "configure"
                ? 0.65 + 0.27 * share(this.configured)
                : 0.92;
    this.fraction = Math.max(this.fraction, Math.min(f, 0.92));
    if (msg) this.message = msg;
    return { fraction: this.fraction, message: this.message };
  }
}

/** Binaries a template must have for the packages it was asked for. */
function requiredBinaries(packages: readonly string[]): string[] {
  const req = ["/bin/sh"];
  if (packages.includes("bash")) req.push("/bin/bash");
  if (packages.includes("python3")) req.push("/usr/bin/python3");
  if (packages.includes("nodejs")) req.push("/usr/bin/node");
  if (packages.includes("git")) req.push("/usr/bin/git");
  if (packages.includes("curl")) req.push("/usr/bin/curl");
  return req;
}

/** Makes a fresh debootstrap tree fit to be a shared read-only template. */
export async function postProcess(rootfs: string, packages: readonly string[]): Promise<void> {
  const clear = async (dir: string, keep: (name: string) => boolean) => {
    let names: string[] = [];
    try {
      names = await readdir(join(rootfs, dir));
    } catch {
      return;
    }
    for (const n of names) if (!keep(n)) await rm(join(rootfs, dir, n), { recursive: true, force: true });
  };
  // Downloaded .debs and apt's indexes: large, and stale the day after the build.
  await clear("var/cache/apt/archives", (n) => !n.endsWith(".deb"));
  await clear("var/cache/apt", (n) => !n.endsWith(".bin"));
  await clear("var/lib/apt/lists", (n) => n === "partial" || n === "lock");
  for (const [dir, mode] of [
    ["workspace", 0o755],
    [".kiln", 0o755],
    ["tmp", 0o1777],
    ["var/tmp", 0o1777],
  ] as const) {
    const p = join(rootfs, dir);
    const st = await lstat(p).catch(() => undefined);
    if (st && !st.isDirectory()) await rm(p, { force: true });
    if (!st?.isDirectory()) await mkdir(p, { recursive: true });
    await chmod(p, mode);
  }
  await writeFile(join(rootfs, "etc/hostname"), "kiln\n");
  await writeFile(
    join(rootfs, "etc/hosts"),
    "127.0.0.1\tlocalhost\n127.0.1.1\tkiln\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
  );
  // The build host's resolver config says nothing about the sandbox's network; tiers provide their own.
  await rm(join(rootfs, "etc/resolv.conf"), { force: true });
  await writeFile(join(rootfs, "etc/resolv.conf"), "");
  const missing: string[] = [];
  for (const bin of requiredBinaries(packages)) if (!(await existsInRoot(rootfs, bin))) missing.push(bin);
  if (missing.length > 0)
    throw new KilnError("internal", `debootstrap finished but the template lacks ${missing.join(", ")}`);
}

/**
 * Builds (or finds) the template `name` from a debootstrap recipe.
 * @throws UnsupportedError (no root / no debootstrap), InvalidArgumentError (bad name or package),
 *   ConflictError (the name holds a different recipe and `replace` is not set), AbortedError,
 *   KilnError `internal` (debootstrap failed; the message ends with its last output lines)
 */
export async function build(
  store: TemplateStore,
  name: string,
  options: BuildOptions = {},
): Promise<Template> {
  checkTemplateName(name);
  const suite = options.suite ?? DEFAULT_SUITE;
  if (!SUITE_RE.test(suite)) throw new InvalidArgumentError(`invalid suite: ${JSON.stringify(suite)}`);
  const packages = normalizePackages(options.packages ?? (name === "default" ? DEFAULT_PACKAGES : []));
  const digest = recipeDigest(suite, packages);
  const { signal, onProgress } = options;
  throwIfAborted(signal);
  const tagOpts = { replace: options.replace ?? false };
  if (await store.blob(digest)) {
    onProgress?.({ fraction: 1, message: "already built" });
    return store.tag(name, digest, tagOpts);
  }
  await store.checkTaggable(name, digest, tagOpts);
  const why = debootstrapUnavailable();
  if (why) throw new UnsupportedError(`cannot build template ${name}: ${why}`);
  const mirror = options.mirror ?? defaultMirror(suite);
  if (!/^(https?|file):\/\/\S+$/.test(mirror))
    throw new InvalidArgumentError(`invalid mirror: ${JSON.stringify(mirror)}`);

  // One build per recipe at a time on this store; a waiter finds the blob built.
  return store.withLock(
    `build-${digest.slice(7)}`,
    async () => {
      if (await store.blob(digest)) {
        onProgress?.({ fraction: 1, message: "already built" });
        return store.tag(name, digest, tagOpts);
      }
      const staging = await store.stagingDir("debootstrap");
      try {
        const rootfs = join(staging, "rootfs");
        await runDebootstrap(suite, packages, rootfs, mirror, options);
        throwIfAborted(signal);
        onProgress?.({ fraction: 0.94, message: "cleaning up the root filesystem" });
        await postProcess(rootfs, packages);
        throwIfAborted(signal);
        onProgress?.({ fraction: 0.97, message: "storing the template" });
        const t = await store.commit(
          name,
          staging,
          {
            digest,
            source: "debootstrap",
            packages,
            recipe: { suite, variant: VARIANT, arch: debianArch(), mirror, version: RECIPE_VERSION },
          },
          tagOpts,
        );
        onProgress?.({ fraction: 1, message: "done" });
        return t;
      } finally {
        // After a commit the staging dir is gone already; after a failure this removes the partial tree.
        await removeTree(staging);
      }
    },
    signal,
  );
}

async function runDebootstrap(
  suite: string,
  packages: string[],
  rootfs: string,
  mirror: string,
  options: BuildOptions,
): Promise<void> {
  const { signal, onProgress, onOutput } = options;
  const args = [`--variant=${VARIANT}`, `--arch=${debianArch()}`];
  if (packages.length > 0) args.push(`--include=${packages.join(",")}`);
  args.push(suite, rootfs, mirror);
  const progress = new DebootstrapProgress(packages.length);
  onProgress?.({ fraction: 0.01, message: `debootstrap ${suite} from ${mirror}` });
  const child = spawn(debootstrapPath() ?? "debootstrap", args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, LANG: "C.UTF-8", LC_ALL: "C.UTF-8", DEBIAN_FRONTEND: "noninteractive" },
  });
  const tail: string[] = [];
  const onLine = (line: string) => {
    if (!line) return;
    tail.push(line);
    if (tail.length > 15) tail.shift();
    onOutput?.(line);
    const p = progress.line(line);
    if (p) onProgress?.(p);
  };
  for (const s of [child.stdout, child.stderr]) {
    let buf = "";
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      buf += d;
      let i = buf.indexOf("\n");
      while (i >= 0) {
        onLine(buf.slice(0, i).trimEnd());
        buf = buf.slice(i + 1);
        i = buf.indexOf("\n");
      }
    });
    s.on("end", () => onLine(buf.trimEnd()));
  }
  let aborted = false;
  const onAbort = () => {
    aborted = true;
    // TERM lets debootstrap run its exit traps (which unmount /proc and /sys in the target).
    child.kill("SIGTERM");
    setTimeout(() => child.exitCode === null && child.kill("SIGKILL"), 10_000).unref();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const code = await new Promise<number | null>((res, rej) => {
      child.on("error", rej);
      child.on("close", (c, sig) => res(sig ? null : c));
    });
    if (aborted) throw new AbortedError("template build aborted", { cause: signal?.reason });
    if (code !== 0) {
      throw new KilnError(
        "internal",
        `debootstrap failed (exit ${code ?? "signal"}): ${tail.slice(-5).join(" | ") || "no output"}`,
      );
    }
    if (mountsUnder(rootfs).length > 0) {
      // debootstrap should have unmounted what it mounted; a template must not carry live mounts.
      for (const mp of mountsUnder(rootfs)) spawnSync("umount", ["-l", mp], { stdio: "ignore" });
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}
