/** `kiln snapshot`, `fork`, `pause`, `resume`, `volume`: sandbox state. */
import type { Command } from "commander";
import { InvalidArgumentError, NotFoundError } from "../../core/errors.ts";
import { withKiln } from "../context.ts";
import { age, printJson, printTable } from "../output.ts";

/** Registers the state commands. */
export function registerState(program: Command): void {
  program
    .command("snapshot")
    .description(
      "save a sandbox's files as a snapshot (`snapshot ls`: list them; `snapshot rm ID...`: delete)",
    )
    .argument("<id|ls|rm>", "sandbox id to snapshot, or ls, or rm")
    .argument("[snapshots...]", "with rm: snapshot ids")
    .option("--name <name>", "a name for the snapshot")
    .action(async (target: string, ids: string[], flags, cmd: Command) =>
      withKiln(cmd, async (kiln, g) => {
        if (target === "ls") {
          const list = await kiln.snapshots();
          if (g.json) return printJson(list);
          printTable(
            ["ID", "NAME", "TIER", "TEMPLATE", "KIND", "SIZE", "CREATED", "FROM"],
            list.map((s) => [
              s.id,
              s.name ?? "",
              s.tier,
              s.template,
              s.kind,
              `${Math.ceil(s.sizeBytes / 1024)} KiB`,
              `${age(s.createdAt)} ago`,
              s.sandboxId,
            ]),
          );
          return;
        }
        if (target === "rm") {
          if (ids.length === 0) throw new InvalidArgumentError("snapshot rm needs snapshot ids");
          for (const id of ids) await kiln.removeSnapshot(id);
          if (g.json) printJson({ removed: ids });
          else process.stdout.write(ids.map((id) => `${id}\n`).join(""));
          return;
        }
        if (ids.length > 0) throw new InvalidArgumentError(`unexpected arguments: ${ids.join(" ")}`);
        const snap = await kiln.snapshot(target, flags.name === undefined ? {} : { name: flags.name });
        if (g.json) printJson(snap);
        else process.stdout.write(`${snap.id}\n`);
      }),
    );

  program
    .command("fork")
    .description("new sandboxes that start from a sandbox's files as they are now; prints their ids")
    .argument("<id>", "sandbox id")
    .option("-n, --count <n>", "how many", "1")
    .action(async (id: string, flags, cmd: Command) =>
      withKiln(cmd, async (kiln, g) => {
        const forks = await kiln.fork(id, Number(flags.count));
        if (g.json) printJson(await Promise.all(forks.map((f) => f.info())));
        else process.stdout.write(forks.map((f) => `${f.id}\n`).join(""));
      }),
    );

  const volume = program
    .command("volume")
    .description(
      "named volumes that outlive sandboxes (mount one with `kiln create --volume NAME:/mnt/path`)",
    );
  volume
    .command("create")
    .description("create an empty volume and print its id")
    .argument("<name>", "its name")
    .action(async (name: string, _flags, cmd: Command) =>
      withKiln(cmd, async (kiln, g) => {
        const v = await kiln.createVolume(name);
        if (g.json) printJson(v);
        else process.stdout.write(`${v.id}\n`);
      }),
    );
  volume
    .command("ls")
    .description("list volumes")
    .action(async (_flags, cmd: Command) =>
      withKiln(cmd, async (kiln, g) => {
        const list = await kiln.volumes();
        if (g.json) return printJson(list);
        printTable(
          ["ID", "NAME", "CREATED"],
          list.map((v) => [v.id, v.name, `${age(v.createdAt)} ago`]),
        );
      }),
    );
  volume
    .command("rm")
    .description("delete volumes and their files (refused while a sandbox mounts one)")
    .argument("<volumes...>", "volume ids or names")
    .action(async (refs: string[], _flags, cmd: Command) =>
      withKiln(cmd, async (kiln, g) => {
        const all = await kiln.volumes();
        const ids = refs.map((r) => {
          const v = all.find((x) => x.id === r || x.name === r);
          if (!v) throw new NotFoundError(`no volume ${r}`);
          return v.id;
        });
        for (const id of ids) await kiln.removeVolume(id);
        if (g.json) printJson({ removed: ids });
        else process.stdout.write(ids.map((id) => `${id}\n`).join(""));
      }),
    );

  for (const op of ["pause", "resume"] as const) {
    program
      .command(op)
      .description(
        op === "pause"
          ? "pause sandboxes: their state stays on disk (memory too where the tier keeps it); any call resumes them"
          : "resume paused sandboxes",
      )
      .argument("<ids...>", "sandbox ids")
      .action(async (ids: string[], _flags, cmd: Command) =>
        withKiln(cmd, async (kiln, g) => {
          for (const id of ids) await kiln[op](id);
          if (g.json) printJson(await Promise.all(ids.map(async (id) => (await kiln.connect(id)).info())));
          else process.stdout.write(ids.map((id) => `${id}\n`).join(""));
        }),
      );
  }
}
