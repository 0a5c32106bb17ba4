/**
 * `npm run bench`: Kiln beside the raw tools it wraps, in one run on this
 * machine, printed as markdown tables with the ratio Kiln / raw.
 * `--write` also records the tables in docs/benchmarks.md.
 * `npm run bench -- cli [--write]`: only the `kiln` command's table (bench/cli.ts).
 * `npm run bench -- --only virtual,load`: only those sections (virtual, real,
 * vprofile, cold, fifty, density, platforms, idmap, code, ports, egress, state, hibernation, storage, load, churn, cli), printed, not recorded.
 * Progress goes to stderr as each section and each step in it starts (bench/progress.ts).
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { churnTable, runChurn } from "./churn.ts";
import { benchCli } from "./cli.ts";
import { benchCode } from "./code.ts";
import { benchColdSteps } from "./cold-steps.ts";
import { benchDensity } from "./density.ts";
import { benchEgress } from "./egress.ts";
import { benchFifty } from "./fifty.ts";
import { benchGvisorPlatforms } from "./gvisor-platforms.ts";
import { benchHibernation } from "./hibernation.ts";
import { benchIdMapping } from "./id-mapping.ts";
import { loadTable, runLoad } from "./load.ts";
import { benchMicrovm } from "./microvm.ts";
import { benchPorts } from "./ports.ts";
import { section as progress, step } from "./progress.ts";
import { benchRealTiers } from "./real-tiers.ts";
import { benchForkStorage, benchState } from "./state.ts";
import { markdownTable, type Row } from "./stats.ts";
import { benchVirtual } from "./virtual.ts";
import { benchVirtualProfile } from "./virtual-profile.ts";

const root = join(import.meta.dirname, "..");

// The machine's shared template cache (the one `npm test` fills, or fills it for the next run),
// so the bench does not build templates of its own in each temporary data directory.
if (!process.env.KILN_TEMPLATE_DIR && process.getuid?.() === 0) {
  process.env.KILN_TEMPLATE_DIR = "/var/cache/kiln/templates";
}
if (process.env.KILN_TEMPLATE_DIR) {
  const cached = existsSync(join(process.env.KILN_TEMPLATE_DIR, "names", "default.json"));
  process.stderr.write(
    `bench: templates from ${process.env.KILN_TEMPLATE_DIR}${cached ? "" : " (default is built there first)"}\n`,
  );
}

function memoryRow(): Row {
  step("idle memory: 1,000 sandboxes in one process");
  const out = execFileSync(process.execPath, ["--expose-gc", join(import.meta.dirname, "memory.ts")], {
    encoding: "utf8",
  });
  const m = JSON.parse(out.trim().split("\n").at(-1)!) as { kilnBytes: number; rawBytes: number };
  return {
    metric: "idle memory per sandbox (1,000 in one process)",
    kiln: m.kilnBytes / 1024,
    raw: m.rawBytes / 1024,
    unit: "KiB",
    rawLabel: "one `new Bash()` kept alive",
  };
}

const date = new Date().toISOString().slice(0, 10);
const machine = `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}`;
// `npm run bench -- cli`: the CLI's table alone (kept: it has its own markers in docs/benchmarks.md).
const only = process.argv.includes("cli") ? "cli" : undefined;
// `npm run bench -- --only SECTION[,SECTION]`: those sections alone, printed (never written).
const SECTIONS = [
  "virtual",
  "real",
  "cold",
  "fifty",
  "density",
  "vprofile",
  "platforms",
  "idmap",
  "microvm",
  "code",
  "ports",
  "egress",
  "state",
  "hibernation",
  "storage",
  "load",
  "churn",
  "cli",
] as const;
const onlyArg = process.argv.indexOf("--only");
const picked = onlyArg >= 0 ? (process.argv[onlyArg + 1] ?? "").split(",").filter(Boolean) : undefined;
for (const p of picked ?? []) {
  if (!SECTIONS.includes(p as (typeof SECTIONS)[number])) {
    process.stderr.write(`bench: no section ${p}; sections: ${SECTIONS.join(", ")}\n`);
    process.exit(2);
  }
}
const want = (section: (typeof SECTIONS)[number]) =>
  picked
    ? picked.includes(section)
    : section === "cli" ||
      (!only && !(process.argv.includes("--no-load") && (section === "load" || section === "churn")));
const sections: string[] = [];
if (want("virtual")) {
  progress("virtual tier (just-bash)");
  sections.push(markdownTable("virtual tier (just-bash)", [...(await benchVirtual()), memoryRow()]));
}
if (want("vprofile")) {
  progress("virtual tier: CPU per operation and where it goes (profiles)");
  sections.push(await benchVirtualProfile());
}
if (want("real")) {
  progress("real tiers (bubblewrap, runc, runsc)");
  for (const { tier, tool, rows } of await benchRealTiers()) {
    sections.push(markdownTable(`${tier} tier (${tool}), template \`default\``, rows));
  }
}
if (want("cold")) {
  progress("cold create + first exec by step (namespace, oci, gvisor), with the raw tool's");
  sections.push(...(await benchColdSteps()));
}
if (want("fifty")) {
  progress("50 sandboxes at once beside 50 raw tools at once (namespace, oci, gvisor)");
  sections.push(...(await benchFifty()));
}
if (want("density")) {
  progress("density: idle sandboxes in steps until one degrades, and one sandbox's memory");
  sections.push(...(await benchDensity()));
}
if (want("platforms")) {
  progress("gVisor's platforms side by side (systrap, ptrace)");
  const platforms = await benchGvisorPlatforms();
  if (platforms) sections.push(platforms);
}
if (want("idmap")) {
  progress("id mapping (create + first exec with sandbox ids mapped and without)");
  const rows = await benchIdMapping();
  if (rows.length > 0)
    sections.push(markdownTable("id mapping: cold create + first exec, mapped vs not", rows));
}
if (want("microvm")) {
  progress("microvm tier (QEMU)");
  const microvm = await benchMicrovm();
  if (microvm) {
    sections.push(
      markdownTable(
        `microvm tier (QEMU microvm, accel ${microvm.accel}), template \`default\``,
        microvm.rows,
      ),
    );
  }
}
if (want("code")) {
  progress("code cells (runCode)");
  for (const { tier, template, rows } of await benchCode()) {
    sections.push(markdownTable(`code cells: ${tier} tier, template \`${template}\``, rows));
  }
}
if (want("ports")) {
  progress("inbound ports (sandbox.ports, kiln serve's host router)");
  for (const { tier, rows } of await benchPorts()) {
    sections.push(markdownTable(`inbound ports: ${tier} tier, python3 -m http.server in the sandbox`, rows));
  }
}
if (want("egress")) {
  progress("egress (curl in a namespace sandbox through the policy, beside curl on the host)");
  const rows = await benchEgress();
  if (rows)
    sections.push(
      markdownTable("egress: namespace tier, curl to a loopback server named through Kiln's resolver", rows),
    );
}
if (want("state")) {
  progress("sandbox state (snapshot, fork, pause, resume)");
  for (const { tier, rows } of await benchState()) {
    sections.push(markdownTable(`state: ${tier} tier, 10 MB workspace`, rows));
  }
}
if (want("hibernation")) {
  progress("hibernation (idle sandbox paused to disk, memory freed, first command after)");
  for (const { tier, rows } of await benchHibernation()) {
    sections.push(
      markdownTable(`hibernation: ${tier} tier, a 64 MiB Python process on the real tiers`, rows),
    );
  }
}
if (want("storage")) {
  progress("fork storage (sparse copies, reflinks on XFS)");
  const storage = await benchForkStorage();
  if (storage.length > 0) sections.push(markdownTable("fork storage: namespace tier", storage));
}
// The server under load: 200 concurrent clients, 20 commands each, on loopback (virtual tier),
// beside the library alone with the same clients in the same run.
if (want("load")) {
  progress("the server under load: the library alone first (the baseline)");
  const baseline = await runLoad({ library: true });
  progress("the server under load: kiln serve");
  sections.push(`### server under load (\`kiln serve\`, loopback; load average ${loadavg()[0]!.toFixed(1)})

${loadTable(await runLoad(), baseline)}`);
}
// Sandbox churn: 100 clients x 10 rounds of create + exec + kill; the tail of each step.
if (want("churn")) {
  progress("sandbox churn under load");
  sections.push(`### sandbox churn under load (\`kiln serve\`, loopback)

${churnTable(await runChurn())}`);
}
if (want("cli")) {
  progress("the kiln command (whole processes)");
  sections.push(await benchCli());
}
const report = [
  `## Run of ${date} (${machine}; load average ${loadavg()[0]!.toFixed(1)} at the end)`,
  ...sections,
].join("\n\n");
process.stdout.write(`${report}\n`);

if (process.argv.includes("--write") && !picked) {
  const file = join(root, "docs", "benchmarks.md");
  const text = readFileSync(file, "utf8");
  if (only) {
    // The CLI's table alone goes between its own markers.
    const [open, close] = ["<!-- bench:cli -->", "<!-- /bench:cli -->"];
    const i = text.indexOf(open);
    const j = text.indexOf(close);
    if (i < 0 || j < i) throw new Error(`docs/benchmarks.md has no ${open} ... ${close} section`);
    writeFileSync(file, `${text.slice(0, i + open.length)}\n\n${report}\n\n${text.slice(j)}`);
  } else {
    const marker = "<!-- bench:latest -->";
    const i = text.indexOf(marker);
    const head = i >= 0 ? text.slice(0, i + marker.length) : `${text.trimEnd()}\n\n${marker}`;
    writeFileSync(file, `${head}\n\n${report}\n`);
  }
  process.stdout.write(`\nrecorded in ${file}\n`);
}
