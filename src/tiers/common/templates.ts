/**
 * The template (read-only root filesystem) of a real-binary sandbox. A
 * missing template is never built behind the caller's back: without
 * `buildTemplate` the create fails at once with `not_found` naming the
 * command that builds it; with it, `default` and `code-interpreter` are built
 * now, reporting progress (`kiln create --build-template` draws it). Every
 * rootfs gets an empty `/.kiln` directory, the mount point of the agent binary.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { InstanceSpec } from "../../core/backend.ts";
import { NotFoundError } from "../../core/errors.ts";
import { build } from "../../templates/debootstrap.ts";
import { CODE_INTERPRETER_TEMPLATE, DEFAULT_TEMPLATE, packagesFor } from "../../templates/defaults.ts";
import { defaultTemplateDir, TemplateStore } from "../../templates/template-store.ts";

/** Where the agent binary appears inside every sandbox. */
export const AGENT_DIR = "/.kiln";
/** The agent's path inside the sandbox. */
export const AGENT_PATH = `${AGENT_DIR}/agent`;

/** Resolved rootfs paths, per store and name, with the digest they were resolved at. */
const resolved = new Map<string, { digest: string | undefined; rootfs: string }>();
const stores = new Map<string, TemplateStore>();

function storeAt(dir: string): TemplateStore {
  let s = stores.get(dir);
  if (!s) {
    s = new TemplateStore(dir);
    stores.set(dir, s);
  }
  return s;
}

/**
 * The digest template `name` points at now (undefined when it does not
 * exist): what a sandbox created now would start from.
 */
export function templateDigest(dataDir: string, name: string): string | undefined {
  return storeAt(defaultTemplateDir(dataDir)).digestOf(name);
}

/** The templates a create may build on demand: their packages are Kiln's to choose. */
const BUILDABLE: readonly string[] = [DEFAULT_TEMPLATE, CODE_INTERPRETER_TEMPLATE];

/**
 * The rootfs path of template `name`; with `buildOnDemand`, a missing `default` or
 * `code-interpreter` is built first (concurrent callers share one build per recipe).
 * @throws NotFoundError (`resource: "template"`) when it does not exist and is not to be built;
 *   what the build throws (UnsupportedError without root or debootstrap, AbortedError)
 */
export async function templateRootfs(
  dataDir: string,
  name: string,
  signal?: AbortSignal,
  buildOnDemand?: InstanceSpec["buildTemplate"],
): Promise<string> {
  const dir = defaultTemplateDir(dataDir);
  const store = storeAt(dir);
  const cached = resolved.get(`${dir}\0${name}`);
  // A name another process re-pointed (a rebuild, an import) is resolved again.
  if (cached && cached.digest === store.digestOf(name) && existsSync(join(cached.rootfs, AGENT_DIR))) {
    return cached.rootfs;
  }
  if (!(await store.has(name))) {
    const buildable = BUILDABLE.includes(name);
    if (!buildOnDemand || !buildable) {
      throw new NotFoundError(
        `no template ${name}; build it with \`kiln template build ${name}\`` +
          (buildable
            ? " (minutes, once per machine), or create with buildTemplate to build it now"
            : " or import one"),
        { resource: "template" },
      );
    }
    await build(store, name, {
      packages: packagesFor(name),
      ...(signal ? { signal } : {}),
      ...(buildOnDemand.onProgress ? { onProgress: buildOnDemand.onProgress } : {}),
    });
  }
  const info = await store.get(name);
  const rootfs = info.rootfs;
  if (!existsSync(join(rootfs, AGENT_DIR))) mkdirSync(join(rootfs, AGENT_DIR), { mode: 0o755 });
  resolved.set(`${dir}\0${name}`, { digest: info.digest, rootfs });
  return rootfs;
}
