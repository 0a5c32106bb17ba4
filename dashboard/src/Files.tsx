/** A file browser of /workspace: navigate, upload, download, new folder, delete. */
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { downloadFile, type EntryInfo, listFiles, makeDir, removeFile, uploadFile } from "./api.ts";
import { bytes, time } from "./format.ts";

const ROOT = "/workspace";

function join(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

export function Files({ sandboxId }: { sandboxId: string }) {
  const [dir, setDir] = useState(ROOT);
  const [entries, setEntries] = useState<EntryInfo[] | null>(null);
  const [error, setError] = useState("");
  const [message, setMessage] = useState("");
  const [folder, setFolder] = useState("");
  const [busy, setBusy] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);

  const refresh = useCallback(async () => {
    try {
      const list = await listFiles(sandboxId, dir);
      list.sort((a, b) =>
        (a.type === "dir") !== (b.type === "dir")
          ? a.type === "dir"
            ? -1
            : 1
          : a.name.localeCompare(b.name),
      );
      setEntries(list);
      setError("");
    } catch (e) {
      setEntries([]);
      setError((e as Error).message);
    }
  }, [sandboxId, dir]);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  const act = async (what: () => Promise<unknown>, done: string) => {
    setBusy(true);
    setError("");
    try {
      await what();
      setMessage(done);
      await refresh();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const upload = (files: FileList | null) => {
    if (!files || files.length === 0) return;
    const list = [...files];
    void act(
      async () => {
        for (const f of list) await uploadFile(sandboxId, join(dir, f.name), f);
        if (fileInput.current) fileInput.current.value = "";
      },
      `Uploaded ${list.map((f) => f.name).join(", ")}`,
    );
  };

  const download = async (e: EntryInfo) => {
    try {
      const blob = await downloadFile(sandboxId, e.path);
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = e.name;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      setMessage(`Downloaded ${e.name}`);
    } catch (err) {
      setError((err as Error).message);
    }
  };

  const crumbs: { name: string; path: string }[] = [];
  {
    const parts = dir.split("/").filter(Boolean);
    let p = "";
    for (const part of parts) {
      p += `/${part}`;
      crumbs.push({ name: part, path: p });
    }
  }

  return (
    <section class="files" aria-label="Files">
      <nav class="crumbs" aria-label="Current folder">
        <ol>
          {crumbs.map((c, i) => (
            <li key={c.path}>
              {i === crumbs.length - 1 ? (
                <span aria-current="location">{c.name}</span>
              ) : (
                <button
                  type="button"
                  class="link"
                  disabled={!c.path.startsWith(ROOT)}
                  onClick={() => setDir(c.path)}
                >
                  {c.name}
                </button>
              )}
            </li>
          ))}
        </ol>
      </nav>
      <div class="toolbar">
        <label class="button">
          Upload files
          <input
            ref={fileInput}
            type="file"
            multiple
            class="visually-hidden"
            data-testid="upload"
            onChange={(e) => upload((e.currentTarget as HTMLInputElement).files)}
          />
        </label>
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            const name = folder.trim();
            if (!name) return;
            void act(() => makeDir(sandboxId, join(dir, name)), `Created folder ${name}`).then(() =>
              setFolder(""),
            );
          }}
        >
          <label for="new-folder">New folder</label>
          <input
            id="new-folder"
            value={folder}
            placeholder="name"
            onInput={(e) => setFolder((e.currentTarget as HTMLInputElement).value)}
          />
          <button type="submit" disabled={busy || !folder.trim()}>
            Create folder
          </button>
        </form>
        <button type="button" onClick={() => void refresh()}>
          Refresh
        </button>
      </div>
      <p class="status-line" role="status" aria-live="polite">
        {message}
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <table class="grid" aria-label={`Contents of ${dir}`}>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col" class="num">
              Size
            </th>
            <th scope="col">Modified</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {dir !== ROOT && (
            <tr>
              <td colSpan={4}>
                <button
                  type="button"
                  class="link"
                  onClick={() => setDir(dir.slice(0, dir.lastIndexOf("/")) || "/")}
                >
                  ↑ Parent folder
                </button>
              </td>
            </tr>
          )}
          {entries?.length === 0 && (
            <tr>
              <td colSpan={4} class="muted">
                This folder is empty.
              </td>
            </tr>
          )}
          {entries?.map((e) => (
            <tr key={e.path} data-testid={`entry-${e.name}`}>
              <td>
                {e.type === "dir" ? (
                  <button type="button" class="link" onClick={() => setDir(e.path)}>
                    {e.name}/
                  </button>
                ) : (
                  <span>
                    {e.name}
                    {e.symlinkTarget ? ` → ${e.symlinkTarget}` : ""}
                  </span>
                )}
              </td>
              <td class="num">{e.type === "dir" ? "—" : bytes(e.size)}</td>
              <td>{time(e.mtimeMs)}</td>
              <td class="actions">
                {e.type === "file" && (
                  <button type="button" onClick={() => void download(e)} aria-label={`Download ${e.name}`}>
                    Download
                  </button>
                )}
                <button
                  type="button"
                  class="danger"
                  aria-label={`Delete ${e.name}`}
                  onClick={() => {
                    if (confirm(`Delete ${e.path}${e.type === "dir" ? " and everything in it" : ""}?`))
                      void act(() => removeFile(sandboxId, e.path), `Deleted ${e.name}`);
                  }}
                >
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
