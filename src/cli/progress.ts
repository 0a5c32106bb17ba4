/** Progress bars of the CLI's long operations (template builds and imports, a create that builds its template). */

/**
 * Progress for a long operation: a bar on a TTY, otherwise a plain line on
 * stderr per tenth of the way or per change of phase; nothing with --json.
 */
export async function progressReporter(json: boolean): Promise<{
  onProgress: (p: { fraction: number; message: string }) => void;
  stop: () => void;
}> {
  if (json) return { onProgress: () => {}, stop: () => {} };
  if (process.stderr.isTTY) {
    const { default: cliProgress } = await import("cli-progress");
    const bar = new cliProgress.SingleBar(
      {
        format: "{bar} {percentage}% | {message}",
        hideCursor: true,
        stream: process.stderr,
        clearOnComplete: true,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(100, 0, { message: "" });
    let running = true;
    return {
      onProgress: (p) => {
        if (running) bar.update(Math.round(p.fraction * 100), { message: p.message.slice(0, 60) });
      },
      stop: () => {
        if (running) bar.stop();
        running = false;
      },
    };
  }
  let lastTenth = -1;
  let lastPhase = "";
  return {
    onProgress: (p) => {
      const tenth = Math.floor(p.fraction * 10);
      const phase = p.message.split(" ")[0] ?? "";
      if (tenth === lastTenth && phase === lastPhase) return;
      lastTenth = tenth;
      lastPhase = phase;
      process.stderr.write(`${String(Math.round(p.fraction * 100)).padStart(3)}% ${p.message}\n`);
    },
    stop: () => {},
  };
}

/** The help of `--allow-unenforced-limits` (`kiln create`, `kiln run`). */
export const ALLOW_UNENFORCED_HELP =
  "create the sandbox even where the tier cannot enforce every limit here (kiln doctor lists them)";

/** The help of `--build-template` (`kiln create`, `kiln run`). */
export const BUILD_TEMPLATE_HELP =
  "build a missing default or code-interpreter template now, with progress (minutes); without it a missing template fails at once";

/**
 * Runs a create that may build its template (`--build-template`), drawing the build's progress on
 * stderr while it runs.
 */
export async function withTemplateBuild<T>(
  asked: boolean,
  json: boolean,
  create: (
    buildTemplate: { onProgress: (p: { fraction: number; message: string }) => void } | undefined,
  ) => Promise<T>,
): Promise<T> {
  if (!asked) return create(undefined);
  const progress = await progressReporter(json);
  try {
    return await create({ onProgress: progress.onProgress });
  } finally {
    progress.stop();
  }
}
