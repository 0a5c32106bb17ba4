/**
 * Shell state across separate commands, for line-by-line shells (`kiln shell`,
 * the dashboard's terminal): each line runs as one command, and a small state
 * file in the sandbox's /tmp carries the working directory and exported
 * variables to the next line (saved with `export -p`, restored with `source`).
 * Works the same in just-bash and in real bash.
 */
import { randomBytes } from "node:crypto";

/** A fresh state-file path for one shell session. */
export function newStateFile(): string {
  return `/tmp/.kiln-shell-${randomBytes(4).toString("hex")}`;
}

/** Wraps a line so that the state file is restored before it and saved after it; keeps its exit code. */
export function wrapShellLine(line: string, stateFile: string): string {
  return [
    `[ -f ${stateFile} ] && source ${stateFile} 2>/dev/null`,
    line,
    "__kiln_rc=$?",
    `{ export -p | grep -v -e ' PWD=' -e ' OLDPWD=' ; printf '# cwd=%s\\n' "$PWD"; } > ${stateFile} 2>/dev/null`,
    "exit $__kiln_rc",
  ].join("\n");
}

/** The working directory recorded in a state file's text, if any. */
export function cwdFromState(text: string): string | undefined {
  return /^# cwd=(.*)$/m.exec(text)?.[1];
}
