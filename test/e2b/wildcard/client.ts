/**
 * The client side of wildcard-domain.e2e.test.ts, in a process of its own:
 * the unmodified `e2b` SDK configured by nothing but its environment
 * (`E2B_API_URL`, `E2B_DOMAIN`, `E2B_API_KEY`; no `E2B_SANDBOX_URL`), so that
 * it addresses every sandbox as `https://49983-{id}.{E2B_DOMAIN}`. Prints one
 * JSON line with what it saw and the names it resolved.
 */
import { Sandbox } from "e2b";

const sb = await Sandbox.create({ timeoutMs: 120_000 });
const run = await sb.commands.run("echo via-the-domain");
await sb.files.write("/workspace/domain.txt", "written through the wildcard name");
const again = await Sandbox.connect(sb.sandboxId);
const read = await again.files.read("/workspace/domain.txt");
const listed = (await again.files.list("/workspace")).map((e) => e.name);
await sb.kill();
const names = (globalThis as { kilnResolvedNames?: string[] }).kilnResolvedNames ?? [];
process.stdout.write(
  `${JSON.stringify({ sandboxId: sb.sandboxId, stdout: run.stdout, read, listed, names: [...new Set(names)] })}\n`,
);
// Keep-alive connections in the SDK's agents would keep the process alive.
process.exit(0);
