/** Log in with an API key (kept in sessionStorage for this tab only). */
import { useState } from "preact/hooks";
import { checkKey } from "./api.ts";

export function Login({ onLogin, notice }: { onLogin(key: string): void; notice?: string }) {
  const [key, setKeyText] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const k = key.trim();
    if (!k) return;
    setBusy(true);
    setError("");
    try {
      await checkKey(k);
      onLogin(k);
    } catch (err) {
      setError(
        (err as { status?: number }).status === 401
          ? "That key is unknown or revoked."
          : (err as Error).message,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <form class="card" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">
          <span class="logo" aria-hidden="true">
            ▲
          </span>{" "}
          Kiln
        </h1>
        <p class="muted">
          Sign in with an API key from <code>kiln keys create</code>. You will see only that key's sandboxes.
        </p>
        {notice && <p class="notice">{notice}</p>}
        <label for="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autoComplete="off"
          spellcheck={false}
          placeholder="kiln_key_…"
          required
          value={key}
          onInput={(e) => setKeyText((e.currentTarget as HTMLInputElement).value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? "login-error" : undefined}
        />
        {error && (
          <p id="login-error" class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Checking…" : "Log in"}
        </button>
      </form>
    </main>
  );
}
