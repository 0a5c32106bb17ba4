/**
 * Templates: the read-only root filesystems of the real-binary tiers.
 * See docs/templates.md.
 */
import { type BuildOptions, build, DEFAULT_PACKAGES, DEFAULT_SUITE } from "./debootstrap.ts";
import { DEFAULT_TEMPLATE } from "./defaults.ts";
import type { Template, TemplateStore } from "./template-store.ts";

export {
  type BuildOptions,
  type BuildProgress,
  build,
  DEFAULT_PACKAGES,
  DEFAULT_SUITE,
  debootstrapUnavailable,
  defaultMirror,
  RECIPE_VERSION,
  recipeDigest,
} from "./debootstrap.ts";
export { type ImportOptions, type ImportProgress, importImage } from "./oci-import.ts";
export {
  type BlobManifest,
  checkTemplateName,
  defaultTemplateDir,
  type ImageConfig,
  type Template,
  type TemplateManifest,
  type TemplateSource,
  TemplateStore,
} from "./template-store.ts";
export { DEFAULT_TEMPLATE };

/**
 * Returns the `default` template, building it (bookworm minbase +
 * {@link DEFAULT_PACKAGES}) when the store lacks it. Concurrent callers, in
 * this process or others on the same store, share one build.
 */
export async function ensureDefaultTemplate(
  store: TemplateStore,
  options: Pick<BuildOptions, "signal" | "onProgress" | "mirror"> = {},
): Promise<Template> {
  if (await store.has(DEFAULT_TEMPLATE)) return store.get(DEFAULT_TEMPLATE);
  return build(store, DEFAULT_TEMPLATE, { ...options, packages: DEFAULT_PACKAGES, suite: DEFAULT_SUITE });
}
