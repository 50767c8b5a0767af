import { memo, useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { CopyId, Skeleton, StatusBadge } from "../components/common";
import { EvalCard } from "../components/EvalCard";
import { ExportCard } from "../components/ExportCard";
import { LossChart } from "../components/LossChart";
import {
  type ArtifactSet,
  cancelJob,
  downloadArtifact,
  type EvalInfo,
  eventsUrl,
  fetchArtifacts,
  fetchJob,
  type Job,
} from "../lib/api";
import { scorePoints } from "../lib/evals";
import { errorMessage, formatBytes, formatClock, formatDateTime, formatDuration, jobDurationMs } from "../lib/format";
import { useNow, usePolling } from "../lib/hooks";
import { subscribeJobEvents } from "../lib/jobEvents";
import {
  affectsArtifacts,
  applyEvent,
  checkpointRows,
  datasetLabel,
  type EventLogEntry,
  hyperparameterRows,
  initialEventState,
  isTerminalStatus,
  type JobEventState,
  loraRows,
  type MetaRow,
  progressOf,
  resolveStatus,
  runRows,
  sortArtifactSets,
  terminalStatusOf,
} from "../lib/jobView";
import { createDeployment, slugForJob } from "../lib/endpoints";
import { workerLabel } from "../lib/queue";
import { playgroundHref } from "../lib/route";
import { endpointHref } from "./Endpoints";
import "./jobdetail.css";


export function JobDetail({ id }: { id: string }) {
  const { data: job, error: jobError, loading, refresh } = usePolling((signal) => fetchJob(id, signal), 5000, [id]);
  const refreshRef = useRef(refresh);
  refreshRef.current = refresh;

  // ---- artifacts: on mount, after checkpoint/terminal events, when the polled status turns terminal
  const [artifacts, setArtifacts] = useState<ArtifactSet[] | undefined>(undefined);
  const [artifactsError, setArtifactsError] = useState<string | null>(null);
  const [artifactsNonce, setArtifactsNonce] = useState(0);
  const artifactsTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const requestArtifacts = useCallback(() => {
    if (artifactsTimer.current !== null) return; // Coalesce bursts (replayed events).
    artifactsTimer.current = setTimeout(() => {
      artifactsTimer.current = null;
      setArtifactsNonce((n) => n + 1);
    }, 250);
  }, []);
  useEffect(
    () => () => {
      if (artifactsTimer.current !== null) clearTimeout(artifactsTimer.current);
      artifactsTimer.current = null;
    },
    [],
  );
  useEffect(() => {
    const controller = new AbortController();
    fetchArtifacts(id, controller.signal).then(
      (a) => {
        setArtifacts(a);
        setArtifactsError(null);
      },
      (e: unknown) => {
        if (!controller.signal.aborted) setArtifactsError(errorMessage(e));
      },
    );
    return () => controller.abort();
  }, [id, artifactsNonce]);

  const prevPolled = useRef<string | null>(null);
  useEffect(() => {
    const s = job?.status ?? null;
    if (s && prevPolled.current && !isTerminalStatus(prevPolled.current) && isTerminalStatus(s)) requestArtifacts();
    if (s) prevPolled.current = s;
  }, [job?.status, requestArtifacts]);

  // ---- events: one subscription per mount
  const [ev, setEv] = useState<JobEventState>(initialEventState);
  const [interrupted, setInterrupted] = useState(false);
  useEffect(() => {
    setEv(initialEventState);
    setInterrupted(false);
    const unsubscribe = subscribeJobEvents(eventsUrl(id), {
      onEvent(frame) {
        setEv((s) => applyEvent(s, frame));
        if (affectsArtifacts(frame.type)) requestArtifacts();
        if (terminalStatusOf(frame.type)) refreshRef.current();
      },
      onEnd() {
        setInterrupted(false);
        refreshRef.current();
      },
      onInterrupted(v) {
        setInterrupted(v);
      },
    });
    return unsubscribe;
  }, [id, requestArtifacts]);

  // ---- evaluation scores, for the chart's markers (the card loads and polls the list)
  const [evals, setEvals] = useState<EvalInfo[]>([]);
  useEffect(() => setEvals([]), [id]);
  const scores = useMemo(() => scorePoints(evals), [evals]);

  // ---- cancel
  const [cancelling, setCancelling] = useState(false);
  const [cancelError, setCancelError] = useState<string | null>(null);
  const onCancel = async () => {
    if (cancelling) return;
    setCancelling(true);
    setCancelError(null);
    try {
      await cancelJob(id);
      refresh();
    } catch (e) {
      setCancelError(errorMessage(e));
    } finally {
      setCancelling(false);
    }
  };

  const status = resolveStatus(job?.status, ev);
  const name = job?.name || id;
  const config = job?.config;
  const progressRaw = progressOf(ev, job?.progress, config?.maxSteps);
  const pStep = progressRaw?.step;
  const pTotal = progressRaw?.totalSteps;
  const progress = useMemo(
    () => (pStep === undefined ? null : { step: pStep, totalSteps: pTotal ?? null }),
    [pStep, pTotal],
  );

  const failedError =
    status === "failed" ? (ev.terminal?.status === "failed" ? ev.terminal.error : undefined) || job?.error || "unknown error" : null;
  const cancelledStep =
    ev.terminal?.status === "cancelled" && ev.terminal.step !== undefined
      ? ev.terminal.step
      : (ev.lastStep ?? (job?.progress?.step ? job.progress.step : undefined));
  const notFound = !job && jobError !== null && !loading;
  // Exports: of the final adapter once completed, of a checkpoint of any finished job.
  const exportable = status === "completed" || (isTerminalStatus(status) && (artifacts ?? []).some((a) => a.kind === "checkpoint"));

  return (
    <div className="jd">
      <nav className="jd-crumbs" aria-label="Breadcrumb">
        <a href="#/jobs">Jobs</a>
        <span aria-hidden="true">›</span>
        <span aria-current="page">{name}</span>
      </nav>
      <div className="page-title jd-title">
        <h1>{name}</h1>
        <StatusBadge status={status} />
        <span className="spacer" />
        {(status === "queued" || status === "running") && (
          <button
            type="button"
            className="btn danger"
            aria-label="Cancel job"
            onClick={() => void onCancel()}
            disabled={cancelling}
            aria-busy={cancelling || undefined}
          >
            {cancelling ? "Cancelling…" : "Cancel job"}
          </button>
        )}
        {status === "completed" && <DeployButton jobId={id} name={name} />}
        {status === "completed" && (
          <a className="btn primary" href={playgroundHref(id)}>
            Open in Playground
          </a>
        )}
      </div>

      {notFound && (
        <p className="notice error" role="alert">
          Could not load job: {jobError}
        </p>
      )}
      {job && jobError && (
        <p className="notice warn" role="status">
          Could not refresh job: {jobError}
        </p>
      )}
      {cancelError && (
        <p className="notice error" role="alert">
          Could not cancel job: {cancelError}
        </p>
      )}
      {failedError !== null && (
        <p className="notice error" role="alert">
          Job failed: {failedError}
        </p>
      )}
      {interrupted && (
        <p className="notice warn" role="status">
          Event stream interrupted. Reconnecting…
        </p>
      )}
      {status === "cancelled" && (
        <p className="notice hint" role="status">
          {cancelledStep !== undefined ? `Cancelled at step ${cancelledStep}` : "Cancelled"}
        </p>
      )}

      {/* Two columns; when stacked (narrow), the slots are reordered: chart, events, metadata, checkpoints, export, artifacts.
          The Evaluation card (a wide table) spans the page below them. */}
      <div className="grid-2 jd-grid">
        <div className="jd-col">
          <div className="jd-slot jd-slot-chart">
            <LossChart points={ev.points} name={name} progress={progress} scores={scores} />
          </div>
          <div className="jd-slot jd-slot-events">
            <EventLog entries={ev.log} />
          </div>
          <div className="jd-slot jd-slot-artifacts">
            <ArtifactsCard jobId={id} artifacts={artifacts} error={artifactsError} />
          </div>
        </div>
        <div className="jd-col">
          <div className="jd-slot jd-slot-meta">
            <MetadataCard job={job} id={id} status={status} ev={ev} loading={loading && !job} />
          </div>
          <div className="jd-slot jd-slot-checkpoints">
            <CheckpointsCard jobId={id} artifacts={artifacts} ev={ev} />
          </div>
          {exportable && (
            <div className="jd-slot jd-slot-export">
              <ExportCard jobId={id} status={status} artifacts={artifacts} />
            </div>
          )}
        </div>
      </div>
      <EvalCard key={id} jobId={id} status={status} artifacts={artifacts} refreshKey={artifactsNonce} onEvals={setEvals} />
    </div>
  );
}

// ---------------------------------------------------------------- events

const EVENT_CLASS: Record<string, string> = {
  "training.started": "ev-started",
  "training.log": "ev-log",
  "checkpoint.saved": "ev-checkpoint",
  "training.completed": "ev-completed",
  "training.failed": "ev-failed",
  "training.cancelled": "ev-cancelled",
};

const EventLog = memo(function EventLog({ entries }: { entries: EventLogEntry[] }) {
  const ref = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  useLayoutEffect(() => {
    const el = ref.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [entries]);
  const onScroll = () => {
    const el = ref.current;
    if (el) stick.current = el.scrollHeight - el.scrollTop - el.clientHeight <= 16;
  };
  return (
    <section className="card" aria-labelledby="jd-events-title">
      <div className="card-head">
        <h2 id="jd-events-title">Events</h2>
        <span className="spacer" />
        {entries.length > 0 && <span className="muted jd-small">{entries.length === 500 ? "last 500" : entries.length}</span>}
      </div>
      <div className="jd-log" role="log" aria-label="Event log" ref={ref} onScroll={onScroll} tabIndex={0}>
        {entries.length === 0 ? (
          <p className="jd-log-empty">Listening for events…</p>
        ) : (
          entries.map((e) => (
            <div className="jd-ev" key={e.key}>
              <time className="mono jd-ev-time" dateTime={e.time}>
                {formatClock(e.time)}
              </time>
              <span className={`mono jd-ev-type ${EVENT_CLASS[e.type] ?? ""}`}>{e.type}</span>
              <span className="mono jd-ev-msg">{e.message}</span>
            </div>
          ))
        )}
      </div>
    </section>
  );
});

// ---------------------------------------------------------------- metadata

function Duration({ status, startedAt, completedAt }: { status: string; startedAt?: string | null; completedAt?: string | null }) {
  const now = useNow(1000);
  const ms = jobDurationMs({ status, startedAt, completedAt }, now);
  return <>{ms === null ? "N/A" : formatDuration(ms)}</>;
}

function MetaList({ rows, title }: { rows: MetaRow[]; title: string }) {
  if (rows.length === 0) return null;
  return (
    <>
      <h3 className="jd-sub">{title}</h3>
      <dl className="meta">
        {rows.map((r) => (
          <div className="jd-pair" key={r.label}>
            <dt>{r.label}</dt>
            <dd className="mono">{r.value}</dd>
          </div>
        ))}
      </dl>
    </>
  );
}

function MetadataCard({
  job,
  id,
  status,
  ev,
  loading,
}: {
  job: Job | undefined;
  id: string;
  status: string;
  ev: JobEventState;
  loading: boolean;
}) {
  const startedAt = job?.startedAt ?? ev.startedAt;
  const completedAt = job?.completedAt ?? (isTerminalStatus(status) ? ev.terminal?.at : null) ?? null;
  const config = job?.config;
  const dataset = datasetLabel(config?.datasetSource);
  const worker = workerLabel(job ?? {});
  return (
    <section className="card" aria-labelledby="jd-meta-title">
      <div className="card-head">
        <h2 id="jd-meta-title">Metadata</h2>
      </div>
      {loading ? (
        <Skeleton rows={5} />
      ) : (
        <div className="card-body">
          <dl className="meta">
            <div className="jd-pair">
              <dt>Status</dt>
              <dd>
                <StatusBadge status={status} />
              </dd>
            </div>
            <div className="jd-pair">
              <dt>Duration</dt>
              <dd>
                <Duration status={status} startedAt={startedAt} completedAt={completedAt} />
              </dd>
            </div>
            <div className="jd-pair">
              <dt>Created</dt>
              <dd>{formatDateTime(job?.createdAt)}</dd>
            </div>
            <div className="jd-pair">
              <dt>Started</dt>
              <dd>{formatDateTime(startedAt)}</dd>
            </div>
            <div className="jd-pair">
              <dt>Completed</dt>
              <dd>{formatDateTime(completedAt)}</dd>
            </div>
            {worker && (
              <div className="jd-pair">
                <dt>Worker</dt>
                <dd className="mono">{worker}</dd>
              </div>
            )}
            <div className="jd-pair">
              <dt>Base model</dt>
              <dd className="mono">{config?.model || "N/A"}</dd>
            </div>
            <div className="jd-pair">
              <dt>Dataset</dt>
              <dd className="mono">{dataset ?? "N/A"}</dd>
            </div>
            <div className="jd-pair">
              <dt>Job ID</dt>
              <dd>
                <CopyId id={id} head={8} tail={6} />
              </dd>
            </div>
          </dl>
          {config && <MetaList title="LoRA" rows={loraRows(config)} />}
          {config && <MetaList title="Hyperparameters" rows={hyperparameterRows(config)} />}
          <MetaList title="Training data" rows={runRows(ev.metadata)} />
        </div>
      )}
    </section>
  );
}

// ---------------------------------------------------------------- checkpoints and artifacts

function CheckpointsCard({ jobId, artifacts, ev }: { jobId: string; artifacts: ArtifactSet[] | undefined; ev: JobEventState }) {
  const rows = useMemo(() => checkpointRows(artifacts, ev.checkpoints), [artifacts, ev.checkpoints]);
  return (
    <section className="card" aria-labelledby="jd-ckpt-title">
      <div className="card-head">
        <h2 id="jd-ckpt-title">Checkpoints</h2>
      </div>
      <div className="card-body">
        <ul className="jd-list" aria-label="Checkpoints">
          {rows.map((r) => (
            <li key={r.step}>
              <span className="jd-ckpt-step" id={`jd-ckpt-${r.step}`}>
                Step {r.step}
              </span>
              <span className="muted">{r.size !== null ? formatBytes(r.size) : ""}</span>
              <span className="spacer" />
              <a href={playgroundHref(jobId, r.step)} aria-describedby={`jd-ckpt-${r.step}`}>
                Chat with this checkpoint
              </a>
            </li>
          ))}
        </ul>
        {rows.length === 0 && <p className="jd-empty">No checkpoints yet</p>}
      </div>
    </section>
  );
}

function ArtifactsCard({
  jobId,
  artifacts,
  error,
}: {
  jobId: string;
  artifacts: ArtifactSet[] | undefined;
  error: string | null;
}) {
  const [busy, setBusy] = useState<string | null>(null);
  const [downloadError, setDownloadError] = useState<string | null>(null);
  const sets = useMemo(() => (artifacts ? sortArtifactSets(artifacts) : []), [artifacts]);
  const download = async (key: string, pathname: string) => {
    setBusy(key);
    setDownloadError(null);
    try {
      await downloadArtifact(jobId, pathname);
    } catch (e) {
      setDownloadError(`Download of ${pathname} failed: ${errorMessage(e)}`);
    } finally {
      setBusy(null);
    }
  };
  return (
    <section className="card" aria-labelledby="jd-art-title">
      <div className="card-head">
        <h2 id="jd-art-title">Artifacts</h2>
      </div>
      <div className="card-body">
        {error && (
          <p className="notice error" role="alert">
            Could not load artifacts: {error}
          </p>
        )}
        {downloadError && (
          <p className="notice error" role="alert">
            {downloadError}
          </p>
        )}
        {!artifacts && !error && <p className="jd-empty">Loading artifacts…</p>}
        {artifacts && sets.length === 0 && <p className="jd-empty">No artifacts yet</p>}
        {sets.map((set) => {
          const setKey = `${set.kind}-${set.step}`;
          return (
            <div className="jd-artset" key={setKey}>
              <h3 className="jd-sub">
                {set.kind === "final" ? "Final adapter" : `Checkpoint · step ${set.step}`}
                {set.modelId && <span className="muted mono jd-model"> {set.modelId}</span>}
              </h3>
              <div className="table-wrap">
                <table className="table jd-files">
                  <thead>
                    <tr>
                      <th scope="col">File</th>
                      <th scope="col">Size</th>
                      <th scope="col">
                        <span className="sr-only">Download</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {set.files.map((f) => {
                      const key = `${setKey}/${f.pathname}`;
                      return (
                        <tr key={f.pathname}>
                          <td className="mono jd-path" title={f.sha256 ? `sha256 ${f.sha256}` : undefined}>
                            {f.pathname}
                          </td>
                          <td className="jd-size">{formatBytes(f.size)}</td>
                          <td className="jd-dl">
                            <button
                              type="button"
                              className="btn small"
                              aria-label={`Download ${f.pathname}`}
                              disabled={busy === key}
                              onClick={() => void download(key, f.pathname)}
                            >
                              {busy === key ? "Downloading…" : "Download"}
                            </button>
                          </td>
                        </tr>
                      );
                    })}
                    {set.files.length === 0 && (
                      <tr>
                        <td colSpan={3} className="muted">
                          No files
                        </td>
                      </tr>
                    )}
                  </tbody>
                </table>
              </div>
            </div>
          );
        })}
      </div>
    </section>
  );
}

/** Creates an endpoint (with a key required) for the job's final adapter and opens it. */
function DeployButton({ jobId, name }: { jobId: string; name: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const deploy = async () => {
    setBusy(true);
    setError(null);
    try {
      const d = await createDeployment({
        slug: slugForJob(name, jobId),
        target: { kind: "adapter", adapter: { kind: "final", jobId } },
        authMode: "fixed_api_key",
      });
      window.location.hash = endpointHref(d.id);
    } catch (e) {
      setError(errorMessage(e));
      setBusy(false);
    }
  };
  return (
    <>
      {error && (
        <span className="ep-error" role="alert">
          Deploy failed: {error}
        </span>
      )}
      <button type="button" className="btn" onClick={() => void deploy()} disabled={busy}>
        {busy ? "Deploying…" : "Deploy"}
      </button>
    </>
  );
}
