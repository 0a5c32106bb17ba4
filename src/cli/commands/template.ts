/** `kiln template build|import|ls|rm|inspect|prune`: root filesystems of the real-binary tiers. */
import { basename } from "node:path";
import type { Command } from "commander";
import {
  CODE_INTERPRETER_TEMPLATE,
  DEFAULT_PACKAGES,
  DEFAULT_TEMPLATE,
  packagesFor,
} from "../../templates/defaults.ts";
import type { Template, TemplateStore } from "../../templates/index.ts";
import type { GlobalOptions } from "../context.ts";
import { age, printJson, printTable } from "../output.ts";
import { progressReporter } from "../progress.ts";

/** The template code, loaded by the commands that use it (not by `--help`). */
const templates = () => import("../../templates/index.ts");

async function openStore(cmd: Command): Promise<{ store: TemplateStore; g: GlobalOptions }> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const { TemplateStore, defaultTemplateDir } = await templates();
  const { defaultDataDir } = await import("../../core/kiln.ts");
  return { store: new TemplateStore(defaultTemplateDir(g.dataDir ?? defaultDataDir())), g };
}

/** A human size: `812.3 MB`. */
export function humanSize(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** An AbortSignal that fires on Ctrl-C, so an interrupted build cleans up after itself. */
function interruptSignal(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const onSig = () => ac.abort(new Error("interrupted"));
  process.once("SIGINT", onSig);
  process.once("SIGTERM", onSig);
  return {
    signal: ac.signal,
    dispose: () => {
      process.off("SIGINT", onSig);
      process.off("SIGTERM", onSig);
    },
  };
}

function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, "").slice(0, 12);
}

function printTemplate(t: Template, g: GlobalOptions, started: number): void {
  if (g.json) {
    printJson(t);
    return;
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  process.stdout.write(`${t.name} ${shortDigest(t.digest)} ${humanSize(t.sizeBytes)} (${secs}s)\n`);
}

/**
 * Runs a long template operation with a progress bar and Ctrl-C as its abort
 * signal, then prints the template it made.
 */
async function withProgress(
  g: GlobalOptions,
  run: (
    signal: AbortSignal,
    onProgress: (p: { fraction: number; message: string }) => void,
  ) => Promise<Template>,
): Promise<void> {
  const progress = await progressReporter(Boolean(g.json));
  const { signal, dispose } = interruptSignal();
  const started = Date.now();
  try {
    const t = await run(signal, progress.onProgress);
    progress.stop();
    printTemplate(t, g, started);
  } finally {
    progress.stop();
    dispose();
  }
}

/** Registers `kiln template`. */
export function registerTemplate(program: Command): void {
  const template = program
    .command("template")
    .description("manage templates: the root filesystems of the namespace, oci and gvisor tiers");

  template
    .command("build")
    .description(
      `build a Debian template with debootstrap (needs root); \`${DEFAULT_TEMPLATE}\` without --packages gets ${DEFAULT_PACKAGES.join(",")}; \`${CODE_INTERPRETER_TEMPLATE}\` adds numpy, pandas, matplotlib, scipy and IPython`,
    )
    .argument("<name>", "template name")
    .option("--packages <list>", "comma-separated packages beyond minbase")
    .option("--suite <suite>", "Debian suite", "bookworm")
    .option("--mirror <url>", "Debian mirror (default: this machine's apt source)")
    .option("--force", "repoint NAME if it holds a different recipe")
    .action(async (name: string, flags, cmd: Command) => {
      const { store, g } = await openStore(cmd);
      const packages =
        flags.packages !== undefined
          ? String(flags.packages)
              .split(",")
              .map((s) => s.trim())
              .filter(Boolean)
          : [...packagesFor(name)];
      const { build } = await templates();
      await withProgress(g, (signal, onProgress) =>
        build(store, name, {
          packages,
          suite: flags.suite,
          ...(flags.mirror ? { mirror: flags.mirror } : {}),
          replace: Boolean(flags.force),
          signal,
          onProgress,
        }),
      );
    });

  template
    .command("import")
    .description("import a `docker save` or OCI image layout tarball as a template")
    .argument("<file>", "image tarball (.tar or .tar.gz)")
    .option("--name <name>", "template name (default: the file name without .tar)")
    .option("--force", "repoint NAME if it holds a different image")
    .action(async (file: string, flags, cmd: Command) => {
      const { store, g } = await openStore(cmd);
      const name: string =
        flags.name ??
        basename(file)
          .replace(/\.(tar|tgz|tar\.gz|oci)$/i, "")
          .replace(/[^A-Za-z0-9._-]/g, "-")
          .replace(/^[^A-Za-z0-9]+/, "");
      const { importImage } = await templates();
      await withProgress(g, (signal, onProgress) =>
        importImage(store, name, file, { replace: Boolean(flags.force), signal, onProgress }),
      );
    });

  template
    .command("ls")
    .description("list templates")
    .action(async (_flags, cmd: Command) => {
      const { store, g } = await openStore(cmd);
      const list = await store.list();
      if (g.json) return printJson(list);
      printTable(
        ["NAME", "DIGEST", "SOURCE", "SIZE", "CREATED"],
        list.map((t) => [
          t.name,
          shortDigest(t.digest),
          t.source,
          humanSize(t.sizeBytes),
          `${age(t.createdAt)} ago`,
        ]),
      );
    });

  template
    .command("inspect")
    .description("print a template's manifest and root filesystem path as JSON")
    .argument("<name>", "template name")
    .action(async (name: string, _flags, cmd: Command) => {
      const { store } = await openStore(cmd);
      printJson(await store.get(name));
    });

  template
    .command("rm")
    .description("remove templates (a blob goes when no name points at it)")
    .argument("<names...>", "template names")
    .action(async (names: string[], _flags, cmd: Command) => {
      const { store, g } = await openStore(cmd);
      const removed = [];
      for (const n of names) removed.push(await store.remove(n));
      if (g.json) printJson({ removed });
      else process.stdout.write(names.map((n) => `${n}\n`).join(""));
    });

  template
    .command("prune")
    .description("remove blobs no name points at and leftovers of interrupted builds")
    .action(async (_flags, cmd: Command) => {
      const { store, g } = await openStore(cmd);
      const r = await store.prune();
      if (g.json) printJson(r);
      else process.stdout.write(`removed ${r.blobs.length} blobs, ${r.staging.length} staging dirs\n`);
    });
}
