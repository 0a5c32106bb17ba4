/** `kiln create`, `ls`, `rm`, `logs`, `move`, `inspect`: sandbox lifecycle. */
import { type Command, Option } from "commander";
import { InvalidArgumentError } from "../../core/errors.ts";
import { resolveLimits } from "../../core/limits.ts";
import { checkTierName } from "../../core/tier-registry.ts";
import { withKiln } from "../context.ts";
import { networkFromFlags, networkOptions } from "../network-flags.ts";
import { age, collect, keyValues, printJson, printTable } from "../output.ts";
import { ALLOW_UNENFORCED_HELP, BUILD_TEMPLATE_HELP, withTemplateBuild } from "../progress.ts";

/** Registers the lifecycle commands. */
export function registerLifecycle(program: Command): void {
  networkOptions(program.command("create"))
    .description("create a sandbox and print its id")
    .option("--tier <tier>", "isolation tier", "virtual")
    .option("--template <name>", "template (root filesystem)", "default")
    .option("-e, --env <KEY=VALUE>", "environment variable (repeatable)", collect)
    .option("-l, --label <KEY=VALUE>", "metadata label (repeatable)", collect)
    .option("-w, --cwd <dir>", "default working directory")
    .option("--lifetime <ms>", "lifetime in ms, after which the sandbox is killed (default: no expiry)")
    .addOption(new Option("--timeout <ms>", "the old name of --lifetime").hideHelp())
    .option("--limit <NAME=VALUE>", "limit, e.g. memoryBytes=268435456 (repeatable)", collect)
    .option("--snapshot <id>", "start from this snapshot's files (its tier and template unless given)")
    .option("--volume <NAME:/mnt/path>", "mount a named volume at a path below /mnt (repeatable)", collect)
    .option("--build-template", BUILD_TEMPLATE_HELP)
    .option("--allow-unenforced-limits", ALLOW_UNENFORCED_HELP)
    .action(async (flags, cmd: Command) =>
      withKiln(cmd, async (kiln, g) => {
        const limits = Object.fromEntries(
          Object.entries(keyValues(flags.limit, "--limit")).map(([k, v]) => [k, Number(v)]),
        );
        const fromSnapshot = flags.snapshot !== undefined;
        const sb = await withTemplateBuild(Boolean(flags.buildTemplate), Boolean(g.json), (buildTemplate) =>
          kiln.create({
            ...(fromSnapshot ? { snapshot: flags.snapshot } : {}),
            // From a snapshot, the tier and template are the snapshot's unless given.
            ...(!fromSnapshot || cmd.getOptionValueSource("tier") === "cli"
              ? { tier: checkTierName(flags.tier) }
              : {}),
            ...(!fromSnapshot || cmd.getOptionValueSource("template") === "cli"
              ? { template: flags.template }
              : {}),
            env: keyValues(flags.env, "--env"),
            metadata: keyValues(flags.label, "--label"),
            ...(flags.cwd ? { cwd: flags.cwd } : {}),
            ...(flags.lifetime || flags.timeout
              ? { lifetimeMs: Number(flags.lifetime ?? flags.timeout) }
              : {}),
            limits: fromSnapshot ? limits : resolveLimits(limits),
            ...(networkFromFlags(flags) ? { network: networkFromFlags(flags) } : {}),
            ...(flags.volume ? { volumes: volumeFlags(flags.volume) } : {}),
            ...(buildTemplate ? { buildTemplate } : {}),
            ...(flags.allowUnenforcedLimits ? { allowUnenforcedLimits: true } : {}),
          }),
        );
        if (g.json) printJson(await sb.info());
        else process.stdout.write(`${sb.id}\n`);
      }),
    );

  program
    .command("ls")
    .alias("ps")
    .description("list sandboxes")
    .option("-l, --label <KEY=VALUE>", "only sandboxes with this label (repeatable)", collect)
    .option("-q, --quiet", "print ids only")
    .action(async (flags, cmd: Command) =>
      withKiln(cmd, async (kiln, g) => {
        const list = await kiln.list({ metadata: keyValues(flags.label, "--label") });
        if (g.json) return printJson(list);
        if (flags.quiet) return void process.stdout.write(list.map((s) => `${s.id}\n`).join(""));
        // Size on disk: what a paused sandbox (its workspace, and its memory image) keeps.
        const disk = await Promise.all(list.map((s) => kiln.diskBytes(s.id).catch(() => Number.NaN)));
        printTable(
          ["ID", "TIER", "TEMPLATE", "STATE", "DISK", "CREATED", "EXPIRES", "LABELS"],
          list.map((s, i) => [
            s.id,
            s.tier,
            s.template,
            s.state,
            diskSize(disk[i]!),
            `${age(s.createdAt)} ago`,
            s.expiresAt ? new Date(s.expiresAt).toISOString() : "never",
            Object.entries(s.metadata)
              .map(([k, v]) => `${k}=${v}`)
              .join(","),
          ]),
        );
      }),
    );

  program
    .command("rm")
    .description("kill sandboxes and delete their workspaces")
    .argument("<ids...>", "sandbox ids")
    .action(async (ids: string[], _flags, cmd: Command) =>
      withKiln(cmd, async (kiln, g) => {
        for (const id of ids) await kiln.kill(id);
        if (g.json) printJson({ removed: ids });
        else process.stdout.write(ids.map((id) => `${id}\n`).join(""));
      }),
    );

  program
    .command("inspect")
    .description("show a sandbox's record and resource use")
    .argument("<id>", "sandbox id")
    .action(async (id: string, _flags, cmd: Command) =>
      withKiln(cmd, async (kiln) => {
        const sb = await kiln.connect(id);
        printJson({ ...(await sb.info()), stats: await sb.stats() });
      }),
    );

  program
    .command("logs")
    .description(
      "show a sandbox's audit log: every command, its exit code and duration, then its network connections and requests",
    )
    .argument("<id>", "sandbox id")
    .option("-n, --tail <count>", "only the newest entries", "1000")
    .action(async (id: string, flags, cmd: Command) =>
      withKiln(cmd, async (kiln, g) => {
        const sb = await kiln.connect(id);
        const log = await sb.logs({ limit: Number(flags.tail) });
        const network = await sb.networkLogs({ limit: Number(flags.tail) });
        if (g.json) return printJson(network.length ? { commands: log, network } : log);
        printTable(
          ["#", "STARTED", "EXIT", "MS", "COMMAND"],
          log.map((l) => [
            l.id,
            new Date(l.startedAtMs).toISOString(),
            l.exitCode ?? "running",
            l.durationMs ?? "",
            l.command.length > 80 ? `${l.command.slice(0, 77)}...` : l.command,
          ]),
        );
        if (network.length === 0) return;
        process.stdout.write("\n");
        printTable(
          ["#", "AT", "KIND", "HOST", "PORT", "REQUEST", "VERDICT", "RULE", "UP", "DOWN"],
          network.map((n) => [
            n.id,
            new Date(n.atMs).toISOString(),
            n.kind,
            n.host ?? n.address ?? "",
            n.port ?? "",
            n.method ? `${n.method} ${(n.path ?? "").slice(0, 40)}${n.status ? ` ${n.status}` : ""}` : "",
            n.allowed ? "allowed" : "denied",
            n.rule,
            n.bytesUp,
            n.bytesDown,
          ]),
        );
      }),
    );

  program
    .command("move")
    .description("move a sandbox's workspace to another tier")
    .argument("<id>", "sandbox id")
    .requiredOption("--tier <tier>", "target tier")
    .option("--allow-unenforced-limits", ALLOW_UNENFORCED_HELP)
    .action(async (id: string, flags, cmd: Command) =>
      withKiln(cmd, async (kiln, g) => {
        const sb = await kiln.move(
          id,
          checkTierName(flags.tier),
          flags.allowUnenforcedLimits ? { allowUnenforcedLimits: true } : {},
        );
        if (g.json) printJson(await sb.info());
        else process.stdout.write(`${id} moved to ${flags.tier}\n`);
      }),
    );
}

/** `--volume NAME:/mnt/path` flags as mounts. @throws InvalidArgumentError */
function volumeFlags(values: string[]): { volume: string; path: string }[] {
  return values.map((v) => {
    const at = v.indexOf(":");
    if (at <= 0) throw new InvalidArgumentError(`--volume takes NAME:/mnt/path, not ${JSON.stringify(v)}`);
    return { volume: v.slice(0, at), path: v.slice(at + 1) };
  });
}

/** Bytes as the table shows them (KiB, MiB, GiB, one decimal above KiB). */
function diskSize(n: number): string {
  if (!Number.isFinite(n)) return "-";
  if (n < 1024 * 1024) return `${Math.ceil(n / 1024)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(1)} GiB`;
}
