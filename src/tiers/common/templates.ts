/**
 * The template (read-only root filesystem) of a real-binary sandbox. The
 * `default` template is built on first use when missing (the CLI shows a
 * progress bar for that; here it is silent). Every rootfs gets an empty
 * `/.kiln` directory, the mount point of the agent binary.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { NotFoundError } from "../../core/errors.ts";
import { build } from "../../templates/debootstrap.ts";
import { defaultTemplateDir, TemplateStore } from "../../templates/template-store.ts";

/** Where the agent binary appears inside every sandbox. */
export const AGENT_DIR = "/.kiln";
/** The agent's path inside the sandbox. */
export const AGENT_PATH = `${AGENT_DIR}/agent`;

const building = new Map<string, Promise<unknown>>();
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

/**
 * The rootfs path of template `name`.
 * @throws NotFoundError when it does not exist (and is not `default`)
 */
export async function templateRootfs(dataDir: string, name: string, signal?: AbortSignal): Promise<string> {
  const dir = defaultTemplateDir(dataDir);
  const store = storeAt(dir);
  const cached = resolved.get(`${dir}\0${name}`);
  // A name another process re-pointed (a rebuild, an import) is resolved again.
  if (cached && cached.digest === store.digestOf(name) && existsSync(join(cached.rootfs, AGENT_DIR))) {
    return cached.rootfs;
  }
  if (!(await store.has(name))) {
    if (name !== "default") {
      throw new NotFoundError(
        `no template ${name}; build it with \`kiln template build ${name}\` or import one`,
        { resource: "template" },
      );
    }
    const key = store.root;
    let b = building.get(key);
    if (!b) {
      b = build(store, "default", signal ? { signal } : {}).finally(() => building.delete(key));
      building.set(key, b);
    }
    await b;
  }
  const info = await store.get(name);
  const rootfs = info.rootfs;
  if (!existsSync(join(rootfs, AGENT_DIR))) mkdirSync(join(rootfs, AGENT_DIR), { mode: 0o755 });
  resolved.set(`${dir}\0${name}`, { digest: info.digest, rootfs });
  return rootfs;
}
