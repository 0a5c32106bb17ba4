/**
 * Where the virtual tier (just-bash) and GNU bash on Debian (the namespace
 * tier) may differ, and why: each entry is something just-bash cannot do,
 * not a bug waiting here to be fixed. The differential test fails when a
 * listed case stops differing, so the list cannot go stale.
 */

/** Rewrites applied to both tiers' output before comparing, each with its reason. */
export const NORMALIZE: { reason: string; apply: (s: string) => string }[] = [
  {
    reason:
      "bash -c prefixes its own errors with the script's line number (`bash: line 3: x: No such file or directory`); " +
      "just-bash keeps no line numbers for errors",
    // In a function, bash names the source "environment" (`environment: line 1: …`).
    apply: (s) => s.replace(/^(?:bash|environment): line \d+: /gm, "bash: "),
  },
];

/** Corpus cases (by id) whose output differs, with the reason. */
export const KNOWN_DIFFERENCES: Record<string, string> = {
  // The interpreter: just-bash parses a whole script first and has no signals or traps.
  "errors: syntax error":
    "just-bash's parser words syntax errors its own way and reports them before running anything",
  "globbing: extglob":
    "just-bash parses the whole script before running it, so `shopt -s extglob` cannot change how a later line of the same script parses",
  "errors: trap on exit": "just-bash has no signals, so no `trap`",
  "errors: divide by zero":
    "an arithmetic error ends a bash -c script; just-bash fails that command and goes on",
  "errors: bad arithmetic":
    "an arithmetic error ends a bash -c script; just-bash fails that command and goes on",
  "globbing: failglob": "a failglob error ends a bash -c script; just-bash fails that command and goes on",
  "errors: test bad operator": "just-bash's `[` words its usage errors its own way",
  "errors: numeric comparison with text": "just-bash's `[` treats a non-number as false without a message",
  // just-bash's commands: options and output formats it does not implement.
  "pipelines: xargs -n1": "just-bash's xargs has no -n",
  "pipelines: diff files": "just-bash's diff prints only unified diffs (GNU's default is the normal format)",
  "symlinks: cp -P keeps link": "just-bash's cp has no -P",
  "symlinks: find -type l": "just-bash's find has no -type l",
  "text: grep -o": "just-bash's grep -o fails on a pattern that can match the empty string",
  "text: wc on multiple files":
    "just-bash's wc pads its columns to a fixed width; GNU's width follows the largest file",
  "files: /dev/zero head": "just-bash's od prints -t x1 bytes as three digits",
};
