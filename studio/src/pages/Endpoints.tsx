import { useCallback, useEffect, useId, useRef, useState } from "react";
import { fetchArtifacts, fetchJobs, type Job } from "../lib/api";
import {
  type AuthMode,
  createDeployment,
  deleteDeployment,
  type Deployment,
  type DeploymentKey,
  type DeploymentTarget,
  describeTarget,
  type EndpointRequest,
  fetchDeployment,
  fetchDeployments,
  fetchKeys,
  fetchRequests,
  type IssuedKey,
  issueKey,
  quickStart,
  type RetentionMode,
  revokeKey,
  type SnippetLanguage,
  slugProblem,
  updateDeployment,
} from "../lib/endpoints";
import { errorMessage, formatDateTime } from "../lib/format";
import "./endpoints.css";

const REFRESH_MS = 5000;

export function endpointHref(id: string): string {
  return `#/endpoints/${encodeURIComponent(id)}`;
}

/** Copies text; says so for a moment. */
function CopyButton({ text, label }: { text: string; label: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <button
      type="button"
      className="btn small"
      aria-label={label}
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
          setCopied(true);
          setTimeout(() => setCopied(false), 1200);
        } catch {
          // Clipboard unavailable (insecure context): the text is on screen to select.
        }
      }}
    >
      {copied ? "Copied" : "Copy"}
    </button>
  );
}

// ---------------------------------------------------------------------------------------------
// Target picker: a completed job's final adapter or one of its checkpoints, or a base model.

type TargetMode = "final" | "checkpoint" | "base";

function TargetPicker({ value, onChange }: { value: DeploymentTarget | null; onChange: (t: DeploymentTarget | null) => void }) {
  const uid = useId();
  const [jobs, setJobs] = useState<Job[] | null>(null);
  const [jobsError, setJobsError] = useState<string | null>(null);
  const [steps, setSteps] = useState<number[] | null>(null);
  const mode: TargetMode = !value || value.kind === "adapter" ? (value?.kind === "adapter" && value.adapter.kind === "checkpoint" ? "checkpoint" : "final") : "base";
  const jobId = value?.kind === "adapter" ? value.adapter.jobId : "";

  useEffect(() => {
    const ctrl = new AbortController();
    fetchJobs({ limit: 100 }, ctrl.signal).then(
      (list) => setJobs(list.jobs.filter((j) => j.status === "completed" || j.status === "running" || j.status === "queued")),
      (e: unknown) => !ctrl.signal.aborted && setJobsError(errorMessage(e)),
    );
    return () => ctrl.abort();
  }, []);

  useEffect(() => {
    if (mode !== "checkpoint" || !jobId) return;
    let live = true;
    setSteps(null);
    fetchArtifacts(jobId).then(
      (sets) => live && setSteps([...new Set(sets.filter((s) => s.kind === "checkpoint").map((s) => s.step))].sort((a, b) => a - b)),
      () => live && setSteps([]),
    );
    return () => {
      live = false;
    };
  }, [mode, jobId]);

  const firstJob = jobs?.find((j) => j.status === "completed")?.id ?? jobs?.[0]?.id ?? "";
  const setMode = (m: TargetMode) => {
    if (m === "base") onChange({ kind: "base_model", baseModel: "arkor/tiny" });
    else if (m === "final") onChange(jobId || firstJob ? { kind: "adapter", adapter: { kind: "final", jobId: jobId || firstJob } } : null);
    else onChange(jobId || firstJob ? { kind: "adapter", adapter: { kind: "checkpoint", jobId: jobId || firstJob, step: 0 } } : null);
  };
  // The first job once the list arrives.
  useEffect(() => {
    if (!value && firstJob) onChange({ kind: "adapter", adapter: { kind: "final", jobId: firstJob } });
  }, [firstJob]); // eslint-disable-line react-hooks/exhaustive-deps

  return (
    <fieldset className="ep-target">
      <legend>Target</legend>
      <div className="ep-radios" role="radiogroup" aria-label="Target">
        {(
          [
            ["final", "Job's final adapter"],
            ["checkpoint", "A checkpoint"],
            ["base", "Base model only"],
          ] as const
        ).map(([m, label]) => (
          <label key={m} className="ep-radio">
            <input type="radio" name={`${uid}-mode`} checked={mode === m} onChange={() => setMode(m)} />
            {label}
          </label>
        ))}
      </div>
      {mode !== "base" && (
        <div className="ep-field">
          <label htmlFor={`${uid}-job`}>Job</label>
          {jobsError ? (
            <span className="ep-error">Failed to load jobs: {jobsError}</span>
          ) : (
            <select
              id={`${uid}-job`}
              className="select"
              value={jobId}
              disabled={!jobs}
              onChange={(e) =>
                onChange({
                  kind: "adapter",
                  adapter: mode === "final" ? { kind: "final", jobId: e.target.value } : { kind: "checkpoint", jobId: e.target.value, step: 0 },
                })
              }
            >
              {!jobs && <option>Loading jobs…</option>}
              {jobs?.length === 0 && <option value="">No jobs yet</option>}
              {jobs?.map((j) => (
                <option key={j.id} value={j.id}>
                  {j.name || "(unnamed)"} · {j.status} · {j.id.slice(0, 12)}
                </option>
              ))}
            </select>
          )}
        </div>
      )}
      {mode === "checkpoint" && value?.kind === "adapter" && value.adapter.kind === "checkpoint" && (
        <div className="ep-field">
          <label htmlFor={`${uid}-step`}>Checkpoint</label>
          <select
            id={`${uid}-step`}
            className="select"
            value={value.adapter.step ? String(value.adapter.step) : ""}
            onChange={(e) => onChange({ kind: "adapter", adapter: { kind: "checkpoint", jobId, step: Number(e.target.value) } })}
          >
            <option value="">{steps === null ? "Loading checkpoints…" : steps.length ? "Choose a step" : "No checkpoints"}</option>
            {steps?.map((s) => (
              <option key={s} value={String(s)}>
                Step {s}
              </option>
            ))}
          </select>
        </div>
      )}
      {mode === "base" && value?.kind === "base_model" && (
        <div className="ep-field">
          <label htmlFor={`${uid}-base`}>Base model</label>
          <input
            id={`${uid}-base`}
            className="input mono"
            value={value.baseModel}
            placeholder="arkor/tiny, owner/name, /models/x.gguf or ollama:NAME"
            onChange={(e) => onChange({ kind: "base_model", baseModel: e.target.value })}
          />
        </div>
      )}
    </fieldset>
  );
}

function targetReady(t: DeploymentTarget | null): t is DeploymentTarget {
  if (!t) return false;
  if (t.kind === "base_model") return t.baseModel.trim() !== "";
  return !!t.adapter.jobId && (t.adapter.kind === "final" || t.adapter.step > 0);
}

// ---------------------------------------------------------------------------------------------
// List

export function Endpoints() {
  const [list, setList] = useState<{ deployments: Deployment[]; scopeMissing: boolean } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);

  const load = useCallback((signal?: AbortSignal) => {
    fetchDeployments(signal).then(
      (l) => {
        setList(l);
        setError(null);
      },
      (e: unknown) => !signal?.aborted && setError(errorMessage(e)),
    );
  }, []);
  useEffect(() => {
    const ctrl = new AbortController();
    load(ctrl.signal);
    const t = setInterval(() => load(), REFRESH_MS);
    return () => {
      ctrl.abort();
      clearInterval(t);
    };
  }, [load]);

  return (
    <div className="ep">
      <div className="page-title">
        <h1>Endpoints</h1>
        <p className="subtitle">Serve a fine-tune as an OpenAI-compatible API, with keys. Refreshes every 5 seconds.</p>
        <span className="spacer" />
        <button type="button" className="btn primary" onClick={() => setCreating((c) => !c)}>
          {creating ? "Cancel" : "New endpoint"}
        </button>
      </div>
      {error && (
        <div className="notice error" role="alert">
          Failed to load endpoints: {error}
        </div>
      )}
      {creating && <CreateForm onCreated={(d) => (window.location.hash = endpointHref(d.id))} />}
      <section className="card" aria-label="Endpoints">
        {!list ? (
          <div className="card-body muted">Loading…</div>
        ) : list.deployments.length === 0 ? (
          <div className="empty">
            <strong>{list.scopeMissing ? "Workspace not scoped to a project yet" : "No endpoints yet"}</strong>
            Deploy a completed job from its page, or create one here.
          </div>
        ) : (
          <div className="table-wrap">
            <table className="table">
              <thead>
                <tr>
                  <th>Endpoint</th>
                  <th>Target</th>
                  <th>Auth</th>
                  <th>Requests</th>
                  <th>p50 latency</th>
                  <th>State</th>
                </tr>
              </thead>
              <tbody>
                {list.deployments.map((d) => (
                  <tr key={d.id} data-endpoint={d.slug}>
                    <td>
                      <a href={endpointHref(d.id)}>{d.slug}</a>
                    </td>
                    <td>{describeTarget(d.target)}</td>
                    <td>auth: {d.authMode}</td>
                    <td>{d.stats.requests}</td>
                    <td>{d.stats.p50LatencyMs != null ? `${d.stats.p50LatencyMs} ms` : "–"}</td>
                    <td>
                      <span className={`badge ${d.enabled ? "completed" : ""}`}>{d.enabled ? "enabled" : "disabled"}</span>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </div>
  );
}

function CreateForm({ onCreated }: { onCreated: (d: Deployment) => void }) {
  const uid = useId();
  const [slug, setSlug] = useState("");
  const [target, setTarget] = useState<DeploymentTarget | null>(null);
  const [auth, setAuth] = useState<AuthMode>("fixed_api_key");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const problem = slug ? slugProblem(slug) : null;
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (busy) return;
    if (!targetReady(target)) return setError("Fill in the target details");
    setBusy(true);
    setError(null);
    try {
      onCreated(await createDeployment({ slug, target, authMode: auth }));
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="card ep-create" onSubmit={submit} aria-label="New endpoint">
      <div className="card-head">
        <h2>New endpoint</h2>
      </div>
      <div className="card-body ep-form">
        <div className="ep-field">
          <label htmlFor={`${uid}-slug`}>Slug</label>
          <input
            id={`${uid}-slug`}
            className="input mono"
            value={slug}
            maxLength={50}
            placeholder="triage-bot"
            onChange={(e) => setSlug(e.target.value.toLowerCase())}
          />
          <span className={`ep-hint${problem ? " ep-error" : ""}`}>{problem ?? "Served at …/endpoints/<slug>/v1"}</span>
        </div>
        <TargetPicker value={target} onChange={setTarget} />
        <div className="ep-field">
          <label htmlFor={`${uid}-auth`}>Auth mode</label>
          <select id={`${uid}-auth`} className="select" value={auth} onChange={(e) => setAuth(e.target.value as AuthMode)}>
            <option value="fixed_api_key">Fixed API key</option>
            <option value="none">No auth</option>
          </select>
        </div>
        {error && (
          <p className="ep-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="btn primary" disabled={busy || !slug || !!problem}>
          {busy ? "Creating…" : "Create endpoint"}
        </button>
      </div>
    </form>
  );
}

// ---------------------------------------------------------------------------------------------
// Detail

export function EndpointDetail({ id }: { id: string }) {
  const [d, setD] = useState<Deployment | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notFound, setNotFound] = useState(false);
  const [keys, setKeys] = useState<DeploymentKey[]>([]);
  const [requests, setRequests] = useState<EndpointRequest[]>([]);
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<string | null>(null);
  const [issued, setIssued] = useState<IssuedKey | null>(null);
  const [label, setLabel] = useState("");
  const [lang, setLang] = useState<SnippetLanguage>("curl");
  const uid = useId();
  const issuedRef = useRef(issued);
  issuedRef.current = issued;

  const load = useCallback(async () => {
    try {
      const [dep, k, r] = await Promise.all([fetchDeployment(id), fetchKeys(id), fetchRequests(id)]);
      setD(dep);
      setKeys(k);
      setRequests(r);
      setError(null);
    } catch (e) {
      if ((e as { status?: number }).status === 404) setNotFound(true);
      else setError(errorMessage(e));
    }
  }, [id]);
  useEffect(() => {
    void load();
    const t = setInterval(() => void load(), REFRESH_MS);
    return () => clearInterval(t);
  }, [load]);

  // A key shown once must not be lost by leaving the page.
  useEffect(() => {
    const onUnload = (e: BeforeUnloadEvent) => {
      if (issuedRef.current) e.preventDefault();
    };
    const onHash = (e: HashChangeEvent) => {
      if (!issuedRef.current) return;
      if (!window.confirm("The new API key is not saved anywhere. Leave and lose it?")) {
        history.replaceState(history.state, "", new URL(e.oldURL).hash);
        e.stopImmediatePropagation();
      }
    };
    window.addEventListener("beforeunload", onUnload);
    window.addEventListener("hashchange", onHash, true);
    return () => {
      window.removeEventListener("beforeunload", onUnload);
      window.removeEventListener("hashchange", onHash, true);
    };
  }, []);

  const act = async (f: () => Promise<unknown>) => {
    if (busy) return;
    setBusy(true);
    setActionError(null);
    try {
      await f();
      await load();
    } catch (e) {
      setActionError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  if (notFound)
    return (
      <div className="ep">
        <p>
          <a href="#/endpoints">← Endpoints</a>
        </p>
        <div className="notice error" role="alert">
          Endpoint not found.
        </div>
      </div>
    );
  if (!d)
    return (
      <div className="ep">
        {error ? (
          <div className="notice error" role="alert">
            Failed to load the endpoint: {error}
          </div>
        ) : (
          <p className="muted">Loading…</p>
        )}
      </div>
    );

  const url = d.url ?? `${window.location.origin}/endpoints/${d.slug}/v1`;
  const stats = d.stats;
  return (
    <div className="ep">
      <nav className="jd-crumbs" aria-label="Breadcrumb">
        <a href="#/endpoints">Endpoints</a>
        <span aria-hidden="true">›</span>
        <span aria-current="page">{d.slug}</span>
      </nav>
      <div className="page-title">
        <h1>{d.slug}</h1>
        <span className={`badge ${d.enabled ? "completed" : ""}`}>{d.enabled ? "enabled" : "disabled"}</span>
        <span className="muted">{describeTarget(d.target)}</span>
        <span className="spacer" />
        <button
          type="button"
          className="btn danger"
          disabled={busy}
          onClick={() => {
            const lose = issued ? " The key shown on this page will be lost." : "";
            if (!window.confirm(`Delete endpoint ${d.slug} with its keys and request log?${lose}`)) return;
            setIssued(null);
            void act(async () => {
              await deleteDeployment(d.id);
              window.location.hash = "#/endpoints";
            });
          }}
        >
          Delete
        </button>
      </div>
      {actionError && (
        <div className="notice error" role="alert">
          {actionError}
        </div>
      )}

      <div className="ep-grid">
        <section className="card" aria-labelledby={`${uid}-url`}>
          <div className="card-head">
            <h2 id={`${uid}-url`}>Endpoint URL</h2>
          </div>
          <div className="card-body ep-url">
            <code aria-label="Endpoint URL">{`${url}/chat/completions`}</code>
            <CopyButton text={`${url}/chat/completions`} label="Copy endpoint URL" />
            <p className="ep-hint">OpenAI-compatible: the base URL is {url}; the model in the request body is ignored.</p>
          </div>
        </section>

        <section className="card" aria-labelledby={`${uid}-figures`}>
          <div className="card-head">
            <h2 id={`${uid}-figures`}>Requests</h2>
          </div>
          <div className="card-body ep-figures" aria-label="Request figures">
            <div>
              <strong data-figure="requests">{stats.requests}</strong>
              <span>requests</span>
            </div>
            <div>
              <strong>{stats.errors}</strong>
              <span>errors</span>
            </div>
            <div>
              <strong>{stats.p50LatencyMs != null ? `${stats.p50LatencyMs} ms` : "–"}</strong>
              <span>p50 latency</span>
            </div>
            <div>
              <strong>{stats.p95LatencyMs != null ? `${stats.p95LatencyMs} ms` : "–"}</strong>
              <span>p95 latency</span>
            </div>
            <div>
              <strong>{stats.lastUsedAt ? formatDateTime(stats.lastUsedAt) : "never"}</strong>
              <span>last used</span>
            </div>
          </div>
        </section>
      </div>

      <section className="card" aria-labelledby={`${uid}-qs`}>
        <div className="card-head">
          <h2 id={`${uid}-qs`}>Quick start</h2>
          <span className="spacer" />
          <label className="sr-only" htmlFor={`${uid}-lang`}>
            Language
          </label>
          <select id={`${uid}-lang`} className="select" value={lang} onChange={(e) => setLang(e.target.value as SnippetLanguage)}>
            <option value="curl">cURL</option>
            <option value="python">Python (OpenAI SDK)</option>
            <option value="javascript">JavaScript (OpenAI SDK)</option>
          </select>
          <CopyButton text={quickStart(lang, url, d.authMode)} label="Copy quick start" />
        </div>
        <pre className="card-body ep-snippet" aria-label="Quick start code">
          {quickStart(lang, url, d.authMode)}
        </pre>
      </section>

      <section className="card" aria-labelledby={`${uid}-keys`}>
        <div className="card-head">
          <h2 id={`${uid}-keys`}>API keys</h2>
          {d.authMode === "none" && <span className="muted">This endpoint needs no key (auth: none).</span>}
        </div>
        <div className="card-body ep-keys">
          {issued && (
            <div className="notice warn ep-issued" role="alert">
              <strong>Copy this key now. It cannot be shown again.</strong>
              <code aria-label="New API key">{issued.plaintext}</code>
              <div className="ep-row">
                <CopyButton text={issued.plaintext} label="Copy API key" />
                <button type="button" className="btn small" onClick={() => setIssued(null)}>
                  I&apos;ve saved it
                </button>
              </div>
            </div>
          )}
          <form
            className="ep-row"
            onSubmit={(e) => {
              e.preventDefault();
              void act(async () => {
                setIssued(await issueKey(d.id, label));
                setLabel("");
              });
            }}
          >
            <label className="sr-only" htmlFor={`${uid}-label`}>
              Key label
            </label>
            <input id={`${uid}-label`} className="input" maxLength={80} value={label} placeholder="Label, e.g. web app" onChange={(e) => setLabel(e.target.value)} />
            <button type="submit" className="btn primary" disabled={busy || !label.trim()}>
              Issue key
            </button>
          </form>
          {keys.length > 0 && (
            <ul className="ep-keylist" aria-label="API keys">
              {keys.map((k) => (
                <li key={k.id} data-revoked={k.enabled ? undefined : "true"}>
                  <span className="ep-keylabel">{k.label}</span>
                  <code>{k.prefix}…</code>
                  <span className="muted">{k.lastUsedAt ? `used ${formatDateTime(k.lastUsedAt)}` : "never used"}</span>
                  {k.enabled ? (
                    <button
                      type="button"
                      className="btn small danger"
                      disabled={busy}
                      aria-label={`Revoke key ${k.label}`}
                      onClick={() => window.confirm("Revoke this key?") && void act(() => revokeKey(d.id, k.id))}
                    >
                      Revoke
                    </button>
                  ) : (
                    <span className="badge">revoked</span>
                  )}
                </li>
              ))}
            </ul>
          )}
        </div>
      </section>

      <Settings d={d} busy={busy} act={act} />

      <section className="card" aria-labelledby={`${uid}-log`}>
        <div className="card-head">
          <h2 id={`${uid}-log`}>Request log</h2>
          <span className="muted">newest 50; retention: {d.runRetentionMode === "days" ? `${d.runRetentionDays} days` : d.runRetentionMode}</span>
        </div>
        {requests.length === 0 ? (
          <div className="card-body muted">No requests yet.</div>
        ) : (
          <div className="table-wrap">
            <table className="table" aria-label="Request log">
              <thead>
                <tr>
                  <th>Time</th>
                  <th>Status</th>
                  <th>Latency</th>
                  <th>Tokens in / out</th>
                  <th>Key</th>
                </tr>
              </thead>
              <tbody>
                {requests.map((r) => (
                  <tr key={r.id}>
                    <td>{formatDateTime(r.createdAt)}</td>
                    <td>
                      <span className={`badge ${r.status < 400 ? "completed" : "failed"}`}>{r.status}</span>
                    </td>
                    <td>{r.latencyMs} ms</td>
                    <td>
                      {r.promptTokens ?? "–"} / {r.completionTokens ?? "–"}
                    </td>
                    <td className="mono">{keys.find((k) => k.id === r.keyId)?.label ?? r.keyId ?? "–"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </div>
  );
}

function Settings({ d, busy, act }: { d: Deployment; busy: boolean; act: (f: () => Promise<unknown>) => Promise<void> }) {
  const uid = useId();
  const [target, setTarget] = useState<DeploymentTarget | null>(d.target);
  const [mode, setMode] = useState<RetentionMode>(d.runRetentionMode);
  const [days, setDays] = useState(String(d.runRetentionDays ?? 7));
  const targetChanged = JSON.stringify(target) !== JSON.stringify(d.target);
  const retentionChanged = mode !== d.runRetentionMode || (mode === "days" && Number(days) !== d.runRetentionDays);
  return (
    <section className="card" aria-labelledby={`${uid}-settings`}>
      <div className="card-head">
        <h2 id={`${uid}-settings`}>Settings</h2>
      </div>
      <div className="card-body ep-form">
        <div className="ep-row">
          <button type="button" className="btn" disabled={busy} onClick={() => void act(() => updateDeployment(d.id, { enabled: !d.enabled }))}>
            {d.enabled ? "Disable" : "Enable"}
          </button>
          <label htmlFor={`${uid}-auth`}>Auth mode</label>
          <select
            id={`${uid}-auth`}
            className="select"
            value={d.authMode}
            disabled={busy}
            onChange={(e) => void act(() => updateDeployment(d.id, { authMode: e.target.value as AuthMode }))}
          >
            <option value="fixed_api_key">Fixed API key</option>
            <option value="none">No auth</option>
          </select>
        </div>
        <TargetPicker value={target} onChange={setTarget} />
        <button
          type="button"
          className="btn"
          disabled={busy || !targetChanged || !targetReady(target)}
          onClick={() => targetReady(target) && void act(() => updateDeployment(d.id, { target }))}
        >
          Save target
        </button>
        <div className="ep-row">
          <label htmlFor={`${uid}-ret`}>Request log</label>
          <select id={`${uid}-ret`} className="select" value={mode} onChange={(e) => setMode(e.target.value as RetentionMode)}>
            <option value="days">Keep with bodies for N days</option>
            <option value="unlimited">Keep with bodies forever</option>
            <option value="disabled">Keep without bodies</option>
          </select>
          {mode === "days" && (
            <>
              <label className="sr-only" htmlFor={`${uid}-days`}>
                Days
              </label>
              <input id={`${uid}-days`} className="input ep-days" type="number" min={1} max={3650} value={days} onChange={(e) => setDays(e.target.value)} />
              <span>days</span>
            </>
          )}
          <button
            type="button"
            className="btn"
            disabled={busy || !retentionChanged}
            onClick={() =>
              void act(() =>
                updateDeployment(d.id, mode === "days" ? { runRetentionMode: mode, runRetentionDays: Number(days) } : { runRetentionMode: mode }),
              )
            }
          >
            Save retention
          </button>
        </div>
      </div>
    </section>
  );
}
