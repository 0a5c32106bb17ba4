/**
 * Named timing points on Kiln's slow paths (a real tier's create: template,
 * workspace image, cgroup, runtime start, agent handshake), published on one
 * Node tracing channel, `kiln:step`. Nothing is measured or kept unless a
 * subscriber listens (`tracingChannel("kiln:step").subscribe(...)`): with
 * none, a step is one property read and a direct call. The benchmarks
 * subscribe to split a cold create into its steps (bench/cold-steps.ts).
 *
 * Each event's context is a {@link StepContext}; the same object is passed to
 * the step's `start` and its `end` (synchronous) or `asyncEnd` (promise), so a
 * subscriber can stamp the start time on it.
 */
import { tracingChannel } from "node:diagnostics_channel";

/** What a step's events carry. */
export interface StepContext {
  /** The step's name, dotted: `create.workspace`, `agent.handshake`. */
  step: string;
  /** The sandbox, when the step belongs to one. */
  sandboxId?: string;
}

/** The channel every step is published on. */
export const STEP_CHANNEL = "kiln:step";

const channel = tracingChannel<unknown, StepContext>(STEP_CHANNEL);

/** Runs `fn` as the asynchronous step `step` (of sandbox `sandboxId`); throws what `fn` throws. */
export function traced<T>(step: string, sandboxId: string | undefined, fn: () => Promise<T>): Promise<T> {
  if (!channel.hasSubscribers) return fn();
  return channel.tracePromise(fn, sandboxId === undefined ? { step } : { step, sandboxId });
}

/** Runs `fn` as the synchronous step `step` (of sandbox `sandboxId`); throws what `fn` throws. */
export function tracedSync<T>(step: string, sandboxId: string | undefined, fn: () => T): T {
  if (!channel.hasSubscribers) return fn();
  return channel.traceSync(fn, sandboxId === undefined ? { step } : { step, sandboxId });
}
