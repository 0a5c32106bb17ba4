// Its own file, so that errors can carry a result without importing all of types (no cycle).

/** The result of a finished command. */
export interface CommandResult {
  /** Exit code; 128+N when killed by signal N. */
  exitCode: number;
  /** Standard output, decoded as UTF-8. */
  stdout: string;
  /** Standard error, decoded as UTF-8. */
  stderr: string;
  /** Wall time in ms. */
  durationMs: number;
  /** Set when the command did not end by itself: which limit or action ended it. */
  error?: CommandEndReason;
}

/** Why a command was ended by Kiln rather than by itself. */
export type CommandEndReason =
  | { code: "timeout"; timeoutMs: number }
  | { code: "limit_exceeded"; limit: string; value: number; message: string }
  | { code: "killed" };
