/**
 * The next Kiln's recovery of snapshots a crash cut short, at the moments a
 * timed SIGKILL rarely hits: a record whose directory was never renamed into
 * place (its partial directory's process dead), and a directory no record
 * names (a removal cut short). Both are gone after `Kiln.open`; a snapshot
 * untouched by the crash stays and restores.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import { Kiln } from "../index.ts";

/** A process token no running process has (pid beyond the kernel's maximum). */
const DEAD = "4194305-1";

test("a snapshot record without its folder, and a folder without its record, are gone after a crash", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-snap-recover-"));
  try {
    let kiln = await Kiln.open({ dataDir });
    const sb = await kiln.create({});
    await sb.files.write("/workspace/f.txt", "kept");
    const [unplaced, unrecorded, whole] = [await sb.snapshot(), await sb.snapshot(), await sb.snapshot()];
    await kiln.close();
    const snaps = join(dataDir, "snapshots");
    // Cut short between its record and its rename: the folder is still under its writer's partial name.
    renameSync(join(snaps, unplaced.id), join(snaps, `.partial-${DEAD}_${unplaced.id}`));
    // Cut short between the record's deletion and the folder's.
    const db = new DatabaseSync(join(dataDir, "kiln.db"));
    db.prepare("DELETE FROM snapshots WHERE id = ?").run(unrecorded.id);
    db.close();

    kiln = await Kiln.open({ dataDir });
    try {
      assert.deepEqual(
        (await kiln.snapshots()).map((s) => s.id),
        [whole.id],
      );
      assert.deepEqual(readdirSync(snaps), [whole.id]);
      const copy = await kiln.create({ snapshot: whole.id });
      assert.equal(await copy.files.read("/workspace/f.txt"), "kept");
    } finally {
      await kiln.close();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
