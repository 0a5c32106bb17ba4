/**
 * envd's `process.Process` Connect service over Kiln's `sandbox.commands`.
 *
 * - `Start` runs the command in the background in Kiln and streams a start
 *   event (the pid), output, and an end event. The RPC deadline (the SDK's
 *   `timeoutMs`, default 60 s, 0 for none) is the command's Kiln timeout; when
 *   it passes the command is killed and the stream fails with
 *   `deadline_exceeded` (the SDK's `TimeoutError`). A client that goes away
 *   leaves the command running: `Connect` reattaches to it by pid.
 * - `List`, `SendInput`, `StreamInput`, `CloseStdin`, `SendSignal` (SIGKILL
 *   and SIGTERM both kill) map to Kiln's process table.
 * - PTYs: `Start` with `pty` runs the command on a terminal of that size
 *   (tiers with terminals; the virtual tier answers `unimplemented`), its
 *   output is `pty` data, `pty` input is typed into it, and `Update` resizes it.
 */
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { CommandHandle, ProcessInfo } from "../../core/commands.ts";
import { isKilnError } from "../../core/errors.ts";
import type { Sandbox } from "../../core/sandbox.ts";
import type { CommandResult } from "../../core/types.ts";
import type { E2bContext } from "../context.ts";
import { rpc, toConnectError } from "../errors.ts";
import type {
  ProcessEventInit,
  ProcessSelector,
  Pty,
  StartRequest,
  StreamInputRequest,
} from "../proto/process.ts";
import { EventQueue, targetOf } from "./target.ts";

type ProcessEvent = { event: ProcessEventInit };
type Selector = ProcessSelector;
type ProcessInputCase = { case: "stdin" | "pty"; value: Uint8Array } | { case: undefined; value?: undefined };

const encoder = new TextEncoder();
const SHELLS = new Set(["bash", "sh", "/bin/bash", "/bin/sh", "/usr/bin/bash", "/usr/bin/sh"]);

/** Quotes a word for bash. */
function quote(s: string): string {
  return /^[A-Za-z0-9_./=:@%+,-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * The command line Kiln runs for an envd `cmd` and `args`: the script of
 * `bash [-l] -c <script>` (what the SDK sends) as is, anything else quoted.
 */
export function commandLine(cmd: string, args: readonly string[]): string {
  if (SHELLS.has(cmd)) {
    const i = args.indexOf("-c");
    if (i >= 0 && i === args.length - 2 && args.slice(0, i).every((a) => /^-[a-z]+$/.test(a))) {
      return args[i + 1]!;
    }
  }
  return [cmd, ...args].map(quote).join(" ");
}

function endEvent(r: CommandResult, limitMessage?: string): ProcessEvent {
  const killed = r.error?.code === "killed";
  const status = killed ? "signal: killed" : `exit status ${r.exitCode}`;
  const error = limitMessage ?? (r.exitCode !== 0 || killed ? status : undefined);
  return {
    event: {
      case: "end",
      value: { exitCode: r.exitCode, exited: !killed, status, ...(error ? { error } : {}) },
    },
  };
}

function dataEvent(kind: "stdout" | "stderr" | "pty", text: string): ProcessEvent {
  return { event: { case: "data", value: { output: { case: kind, value: encoder.encode(text) } } } };
}

/** The weight of an event in a queue: its output bytes. */
const eventBytes = (e: ProcessEvent): number =>
  e.event.case === "data" ? e.event.value.output.value.length : 0;

const keepalive: ProcessEvent = { event: { case: "keepalive", value: {} } };

/** Seconds between keepalive events: the client's `Keepalive-Ping-Interval`, else 30. */
function keepaliveMs(ctx: HandlerContext): number {
  const s = Number(ctx.requestHeader.get("keepalive-ping-interval"));
  return (Number.isFinite(s) && s > 0 ? Math.min(s, 300) : 30) * 1000;
}

/**
 * Feeds the end of a process into `queue` (output gets there through the
 * listeners; with `listen`, they are attached here), with keepalive events
 * meanwhile. Kiln delivers all output before a command's end, so the end
 * event comes last.
 */
function follow(
  handle: CommandHandle,
  queue: EventQueue<ProcessEvent>,
  call: HandlerContext,
  listen: boolean,
  pty = false,
): void {
  const timer = setInterval(() => queue.push(keepalive), keepaliveMs(call));
  void handle
    .wait({
      ...(listen
        ? {
            onStdout: (s: string) => queue.push(dataEvent(pty ? "pty" : "stdout", s)),
            onStderr: (s: string) => queue.push(dataEvent("stderr", s)),
          }
        : {}),
      signal: call.signal,
    })
    .then(
      (r) => {
        queue.push(endEvent(r));
        queue.close();
      },
      (e) => {
        // A limit (output cap, memory...) ends the command like an OOM kill in E2B: an end event with the reason.
        if (isKilnError(e, "limit_exceeded") && e.result) {
          queue.push(endEvent(e.result, e.message));
          queue.close();
        } else queue.fail(toConnectError(e));
      },
    )
    .finally(() => clearInterval(timer));
}

/** The size of a `PTY` message. */
function termSize(pty: Pty): { cols: number; rows: number } {
  const { cols = 0, rows = 0 } = pty.size ?? {};
  if (cols < 1 || rows < 1 || cols > 4096 || rows > 4096) {
    throw new ConnectError("pty.size: cols and rows must be from 1 to 4096", Code.InvalidArgument);
  }
  return { cols, rows };
}

/** Labels that keep how an E2B client started a process (E2B lists processes in that form). */
const LABEL = { tag: "e2b.tag", cmd: "e2b.cmd", args: "e2b.args", envs: "e2b.envs", cwd: "e2b.cwd" } as const;

/** A process as E2B's `list` reports it, from core's table. */
function listed(p: ProcessInfo) {
  const l = p.labels;
  const tag = l[LABEL.tag];
  const cwd = l[LABEL.cwd];
  return {
    pid: p.pid,
    ...(tag ? { tag } : {}),
    config:
      l[LABEL.cmd] !== undefined
        ? {
            cmd: l[LABEL.cmd],
            args: JSON.parse(l[LABEL.args] ?? "[]") as string[],
            envs: JSON.parse(l[LABEL.envs] ?? "{}") as Record<string, string>,
            ...(cwd ? { cwd } : {}),
          }
        : { cmd: "/bin/bash", args: ["-l", "-c", p.command], envs: {}, cwd: p.cwd },
  };
}

/** The running process a selector names (by pid or by tag). */
async function selected(sandbox: Sandbox, selector: Selector | undefined): Promise<ProcessInfo> {
  const s = selector?.selector;
  if (s?.case !== "pid" && s?.case !== "tag") {
    throw new ConnectError("a process selector (pid or tag) is required", Code.InvalidArgument);
  }
  const running = await rpc(() => sandbox.commands.list());
  const found = running.find((p) => (s.case === "pid" ? p.pid === s.value : p.labels[LABEL.tag] === s.value));
  if (!found) throw new ConnectError(`no running process with ${s.case} ${s.value}`, Code.NotFound);
  return found;
}

async function pidOf(sandbox: Sandbox, selector: Selector | undefined): Promise<number> {
  return (await selected(sandbox, selector)).pid;
}

/**
 * Refuses at once, as `unimplemented`, a command that wants stdin while it
 * runs on a tier that delivers stdin only when it is closed (its
 * capabilities say so): `sendStdin` to a running `read` would wait for ever.
 */
async function interactiveStdin(ctx: E2bContext, sandboxId: string): Promise<void> {
  const tier = ctx.kiln.record(sandboxId).tier;
  if ((await ctx.kiln.backend(tier)).capabilities.interactiveStdin) return;
  throw new ConnectError(
    `the ${tier} tier cannot send stdin to a running command (its shell reads stdin whole when a command starts): ` +
      "pipe the input inside the command (`printf 'data' | cmd`), or create the sandbox on a real tier " +
      "(E2B's default template on `kiln serve`, or metadata `kiln.tier`: namespace, oci or gvisor)",
    Code.Unimplemented,
  );
}

/** The `process.Process` implementation. */
export function processService(ctx: E2bContext) {
  return {
    async *start(req: StartRequest, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      const pty = req.pty ? termSize(req.pty) : undefined;
      const config = req.process;
      if (!config?.cmd) throw new ConnectError("process.cmd is required", Code.InvalidArgument);
      if (req.stdin === true) await interactiveStdin(ctx, sandbox.id);
      const queue = new EventQueue<ProcessEvent>(eventBytes);
      const deadline = call.timeoutMs();
      const handle = await rpc(() =>
        sandbox.commands.run(commandLine(config.cmd, config.args), {
          background: true,
          openStdin: req.stdin === true,
          ...(pty ? { pty } : {}),
          ...(config.cwd ? { cwd: config.cwd } : {}),
          env: { ...config.envs },
          timeoutMs: deadline ?? 0,
          onStdout: (s) => queue.push(dataEvent(pty ? "pty" : "stdout", s)),
          onStderr: (s) => queue.push(dataEvent("stderr", s)),
          labels: {
            [LABEL.cmd]: config.cmd,
            [LABEL.args]: JSON.stringify(config.args),
            [LABEL.envs]: JSON.stringify(config.envs),
            ...(config.cwd ? { [LABEL.cwd]: config.cwd } : {}),
            ...(req.tag ? { [LABEL.tag]: req.tag } : {}),
          },
        }),
      );
      follow(handle, queue, call, false);
      // The deadline passing on the RPC means the command's time is up: make sure it is killed.
      call.signal.addEventListener(
        "abort",
        () => {
          const reason = call.signal.reason;
          if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) void handle.kill();
        },
        { once: true },
      );
      try {
        yield { event: { event: { case: "start", value: { pid: handle.pid } } } };
        for await (const event of queue.drain(call.signal)) yield { event };
      } finally {
        queue.close(); // a detached client: drop output from now on
      }
    },

    async *connect(req: { process?: Selector }, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      const { pid, pty } = await selected(sandbox, req.process);
      const handle = await rpc(() => sandbox.commands.connect(pid));
      const queue = new EventQueue<ProcessEvent>(eventBytes);
      follow(handle, queue, call, true, pty);
      try {
        yield { event: { event: { case: "start", value: { pid } } } };
        for await (const event of queue.drain(call.signal)) yield { event };
      } finally {
        queue.close();
      }
    },

    async list(_req: unknown, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      const running = await rpc(() => sandbox.commands.list());
      return { processes: running.map(listed) };
    },

    async sendInput(req: { process?: Selector; input?: { input: ProcessInputCase } }, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      const pid = await pidOf(sandbox, req.process);
      const input = req.input?.input;
      await rpc(async () =>
        (await sandbox.commands.connect(pid)).sendStdin(input?.value ?? new Uint8Array()),
      );
      return {};
    },

    async streamInput(reqs: AsyncIterable<StreamInputRequest>, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      let handle: CommandHandle | undefined;
      for await (const req of reqs) {
        const e = req.event;
        if (e.case === "start") {
          const pid = await pidOf(sandbox, e.value.process);
          handle = await rpc(() => sandbox.commands.connect(pid));
        } else if (e.case === "data") {
          if (!handle) throw new ConnectError("StreamInput: data before start", Code.FailedPrecondition);
          const input = e.value.input?.input;
          const h = handle;
          await rpc(() => h.sendStdin(input?.value ?? new Uint8Array()));
        }
      }
      return {};
    },

    async closeStdin(req: { process?: Selector }, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      const pid = await pidOf(sandbox, req.process);
      await rpc(async () => (await sandbox.commands.connect(pid)).closeStdin());
      return {};
    },

    async sendSignal(req: { process?: Selector; signal: number }, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      const pid = await pidOf(sandbox, req.process);
      // Kiln kills with SIGKILL; SIGTERM is honoured the same way.
      const found = await rpc(() => sandbox.commands.kill(pid));
      if (!found) throw new ConnectError(`no running process with pid ${pid}`, Code.NotFound);
      return {};
    },

    async update(req: { process?: Selector; pty?: Pty }, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      const pid = await pidOf(sandbox, req.process);
      if (!req.pty) return {};
      const { cols, rows } = termSize(req.pty);
      await rpc(async () => (await sandbox.commands.connect(pid)).resize(cols, rows));
      return {};
    },
  };
}
