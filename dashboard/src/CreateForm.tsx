/** Create a sandbox: tier (unavailable tiers disabled, with their reason), template, limits. */
import { useEffect, useState } from "preact/hooks";
import { type CreateSandbox, createSandbox, doctor, type SandboxInfo, type TierStatus } from "./api.ts";

const MiB = 1024 * 1024;

export function CreateForm({ onCreated }: { onCreated(s: SandboxInfo): void }) {
  const [tiers, setTiers] = useState<TierStatus[] | null>(null);
  const [tier, setTier] = useState("");
  const [template, setTemplate] = useState("");
  const [memoryMiB, setMemoryMiB] = useState("");
  const [lifetimeMin, setLifetimeMin] = useState("");
  const [commandTimeoutS, setCommandTimeoutS] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    doctor().then(
      (t) => {
        setTiers(t);
        setTier((cur) => cur || t.find((x) => x.available)?.tier || "");
      },
      (e: Error) => setError(`Could not read the tiers: ${e.message}`),
    );
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError("");
    const body: CreateSandbox = { tier };
    if (template.trim()) body.template = template.trim();
    if (lifetimeMin) body.timeoutMs = Math.round(Number(lifetimeMin) * 60_000);
    const limits: CreateSandbox["limits"] = {};
    if (memoryMiB) limits.memoryBytes = Math.round(Number(memoryMiB) * MiB);
    if (commandTimeoutS) limits.timeoutMs = Math.round(Number(commandTimeoutS) * 1000);
    if (Object.keys(limits).length) body.limits = limits;
    setBusy(true);
    try {
      onCreated(await createSandbox(body));
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const unavailable = tiers?.filter((t) => !t.available) ?? [];
  return (
    <form class="card create" onSubmit={submit} aria-labelledby="create-title">
      <h2 id="create-title">New sandbox</h2>
      <div class="fields">
        <label>
          Tier
          <select
            name="tier"
            value={tier}
            required
            aria-describedby="tier-help"
            onChange={(e) => setTier((e.currentTarget as HTMLSelectElement).value)}
          >
            {!tiers && <option value="">Loading…</option>}
            {tiers?.map((t) => (
              <option key={t.tier} value={t.tier} disabled={!t.available} title={t.available ? "" : t.reason}>
                {t.available ? t.tier : `${t.tier} (unavailable)`}
              </option>
            ))}
          </select>
        </label>
        <label>
          Template
          <input
            name="template"
            value={template}
            placeholder="default"
            onInput={(e) => setTemplate((e.currentTarget as HTMLInputElement).value)}
          />
        </label>
        <label>
          Memory (MiB)
          <input
            name="memory"
            type="number"
            min="16"
            step="16"
            inputMode="numeric"
            placeholder="tier default"
            value={memoryMiB}
            onInput={(e) => setMemoryMiB((e.currentTarget as HTMLInputElement).value)}
          />
        </label>
        <label>
          Command timeout (s)
          <input
            name="command-timeout"
            type="number"
            min="1"
            inputMode="numeric"
            placeholder="default"
            value={commandTimeoutS}
            onInput={(e) => setCommandTimeoutS((e.currentTarget as HTMLInputElement).value)}
          />
        </label>
        <label>
          Lifetime (min)
          <input
            name="lifetime"
            type="number"
            min="0"
            inputMode="numeric"
            placeholder="no expiry"
            value={lifetimeMin}
            onInput={(e) => setLifetimeMin((e.currentTarget as HTMLInputElement).value)}
          />
        </label>
        <button type="submit" class="primary" disabled={busy || !tier}>
          {busy ? "Creating…" : "Create sandbox"}
        </button>
      </div>
      <div id="tier-help" class="tier-help">
        {unavailable.length > 0 && (
          <details>
            <summary>
              {unavailable.length} tier{unavailable.length === 1 ? "" : "s"} unavailable on this server
            </summary>
            <ul aria-label="Unavailable tiers">
              {unavailable.map((t) => (
                <li key={t.tier} data-testid={`tier-reason-${t.tier}`}>
                  <strong>{t.tier}</strong>: {t.reason}
                </li>
              ))}
            </ul>
          </details>
        )}
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
