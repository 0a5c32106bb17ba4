/** The stamp's file name inside dist/. */
export const STAMP: string;
/** A fingerprint of the non-test sources under `root`/src (names, sizes, modification times). */
export function sourceFingerprint(root: string): string;
/** dist/cli/main.js under `root` when dist/ holds a build of the current sources, else undefined. */
export function freshCompiledEntry(root: string): string | undefined;
