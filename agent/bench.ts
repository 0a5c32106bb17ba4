// Measures the agent: start-to-HELLO time and warm `echo` round trips.
// Usage: node agent/bench.ts [runs=200]   (after scripts/build-agent.sh)
import { spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { AgentClient } from "../src/protocol/agent-client.ts";

const binary = new URL("./target/kiln-agent", import.meta.url).pathname;
const runs = Number(process.argv[2] ?? 200);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)]!;

const starts: number[] = [];
for (let i = 0; i < 20; i++) {
  const t0 = performance.now();
  const child = spawn(binary, [], { stdio: ["pipe", "pipe", "inherit"] });
  const client = await AgentClient.connect(child.stdout, child.stdin);
  starts.push(performance.now() - t0);
  await client.close();
}

const child = spawn(binary, [], { stdio: ["pipe", "pipe", "inherit"] });
const client = await AgentClient.connect(child.stdout, child.stdin);
const echo = async () => {
  const proc = await client.spawn({
    command: "echo hi", cwd: "/", env: { PATH: "/usr/bin:/bin" }, stdin: undefined,
    onStdout: () => {}, onStderr: () => {},
  });
  await proc.exited;
};
for (let i = 0; i < 20; i++) await echo(); // warm up
const rtts: number[] = [];
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  await echo();
  rtts.push(performance.now() - t0);
}
const pings: number[] = [];
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  await client.ping();
  pings.push(performance.now() - t0);
}
const rss = readFileSync(`/proc/${child.pid}/status`, "utf8").match(/VmRSS:\s+(\d+ kB)/)?.[1];
await client.close();
const f = (x: number) => x.toFixed(2);
console.log(`binary: ${statSync(binary).size} bytes`);
console.log(`start-to-HELLO (spawn+connect, 20 runs): p50 ${f(pct(starts, 0.5))} ms, p90 ${f(pct(starts, 0.9))} ms`);
console.log(`echo round trip (${runs} runs): p50 ${f(pct(rtts, 0.5))} ms, p90 ${f(pct(rtts, 0.9))} ms, p99 ${f(pct(rtts, 0.99))} ms`);
console.log(`ping round trip (${runs} runs): p50 ${f(pct(pings, 0.5))} ms`);
console.log(`agent RSS after the runs: ${rss}`);
