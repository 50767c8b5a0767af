import { useEffect, useId, useMemo, useRef, useState } from "react";
import { StatusBadge } from "./common";
import { type ArtifactSet, downloadArtifact, type EvalInfo, fetchEvals, fetchProjectDir, startEval } from "../lib/api";
import {
  anyEvalRunning,
  bestEval,
  defaultDatasetPath,
  EVAL_MAX_TOKENS,
  evalPlaygroundHref,
  evalRequest,
  evalSourceLabel,
  evalStatusText,
  formatPct,
  formatSecs,
  hasJsonRows,
  scoreKeys,
  withEval,
} from "../lib/evals";
import { type ExportSource, exportSources, sourceLabel } from "../lib/exports";
import { errorMessage } from "../lib/format";
import { useNow } from "../lib/hooks";

const POLL_MS = 2000;
/** After a checkpoint event, how long to look for an evaluation the trainer may start. */
const WATCH_MS = 10_000;

/**
 * The job page's Evaluation card: the job's evaluations as a table (polled while one runs, and
 * for a while after each `refreshKey` change, i.e. a checkpoint event), the best adapter
 * marked, and a form to start one.
 */
export function EvalCard({
  jobId,
  status,
  artifacts,
  refreshKey,
  onEvals,
}: {
  jobId: string;
  status: string;
  artifacts: ArtifactSet[] | undefined;
  refreshKey: number;
  /** The list as loaded (the loss chart's score markers). */
  onEvals?: (evals: EvalInfo[]) => void;
}) {
  const ids = useId();
  const sources = useMemo(() => exportSources(artifacts, status), [artifacts, status]);
  const [picked, setPicked] = useState<ExportSource | null>(null);
  const source: ExportSource | undefined = picked !== null && sources.includes(picked) ? picked : sources[0];
  const [datasetPath, setDatasetPath] = useState("");
  const [maxTokens, setMaxTokens] = useState("");
  const touched = useRef(false);

  // The project's held-out file, when Studio knows the project directory.
  useEffect(() => {
    const controller = new AbortController();
    fetchProjectDir(controller.signal).then(
      (dir) => {
        if (!touched.current) setDatasetPath(defaultDatasetPath(dir));
      },
      () => {
        // No suggestion; the placeholder shows the shape.
      },
    );
    return () => controller.abort();
  }, []);

  // ---- the list: on mount, after each start and checkpoint event, every 2 s while one runs
  const [evals, setEvals] = useState<EvalInfo[] | undefined>(undefined);
  const [listError, setListError] = useState<string | null>(null);
  const [nonce, setNonce] = useState(0);
  const running = useRef(false);
  running.current = anyEvalRunning(evals);
  const watchUntil = useRef(0);
  const firstKey = useRef(refreshKey);
  if (refreshKey !== firstKey.current) {
    firstKey.current = refreshKey;
    // A running trainer may evaluate the checkpoint it just saved.
    if (status === "running") watchUntil.current = Date.now() + WATCH_MS;
  }
  const onEvalsRef = useRef(onEvals);
  onEvalsRef.current = onEvals;
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | null = null;
    const load = async () => {
      timer = null;
      try {
        const list = await fetchEvals(jobId, controller.signal);
        if (controller.signal.aborted) return;
        setEvals(list);
        onEvalsRef.current?.(list);
        setListError(null);
        if (anyEvalRunning(list) || Date.now() < watchUntil.current) timer = setTimeout(() => void load(), POLL_MS);
      } catch (e) {
        if (controller.signal.aborted) return;
        setListError(errorMessage(e));
        if (running.current || Date.now() < watchUntil.current) timer = setTimeout(() => void load(), POLL_MS);
      }
    };
    void load();
    return () => {
      controller.abort();
      if (timer !== null) clearTimeout(timer);
    };
  }, [jobId, nonce, refreshKey]);

  // ---- start
  const [starting, setStarting] = useState(false);
  const [startError, setStartError] = useState<string | null>(null);
  const onEvaluate = async (e: React.FormEvent) => {
    e.preventDefault();
    if (starting || source === undefined) return;
    const req = evalRequest({ datasetPath, source, maxTokens });
    if ("error" in req) {
      setStartError(req.error);
      return;
    }
    setStarting(true);
    setStartError(null);
    try {
      const info = await startEval(jobId, req.body);
      setEvals((list) => {
        const next = withEval(list, info);
        onEvalsRef.current?.(next);
        return next;
      });
      setNonce((n) => n + 1);
    } catch (err) {
      setStartError(errorMessage(err));
    } finally {
      setStarting(false);
    }
  };

  return (
    <section className="card" aria-labelledby={`${ids}-title`}>
      <div className="card-head">
        <h2 id={`${ids}-title`}>Evaluation</h2>
      </div>
      <div className="card-body">
        <form className="jd-ev-form" onSubmit={(e) => void onEvaluate(e)} aria-label="Start an evaluation">
          <div className="jd-ex-field jd-ev-path">
            <label htmlFor={`${ids}-dataset`}>Held-out dataset</label>
            <input
              id={`${ids}-dataset`}
              className="input mono"
              value={datasetPath}
              spellCheck={false}
              placeholder="/path/to/data/heldout.jsonl"
              aria-describedby={`${ids}-dataset-hint`}
              onChange={(e) => {
                touched.current = true;
                setDatasetPath(e.target.value);
              }}
            />
            <span id={`${ids}-dataset-hint`} className="muted jd-small">
              A JSONL file on the backend's machine (absolute path); each row's last assistant message is the reference.
            </span>
          </div>
          <div className="jd-ex-row">
            {sources.length > 0 && (
              <div className="jd-ex-field">
                <label htmlFor={`${ids}-source`}>Adapter</label>
                <select
                  id={`${ids}-source`}
                  className="select"
                  value={String(source)}
                  disabled={sources.length === 1}
                  onChange={(e) => setPicked(e.target.value === "final" ? "final" : Number(e.target.value))}
                >
                  {sources.map((s) => (
                    <option key={String(s)} value={String(s)}>
                      {sourceLabel(s)}
                    </option>
                  ))}
                </select>
              </div>
            )}
            <div className="jd-ex-field">
              <label htmlFor={`${ids}-max`}>Max tokens</label>
              <input
                id={`${ids}-max`}
                className="input jd-ev-max"
                type="number"
                inputMode="numeric"
                min={1}
                max={EVAL_MAX_TOKENS}
                step={1}
                value={maxTokens}
                placeholder="256"
                onChange={(e) => setMaxTokens(e.target.value)}
              />
            </div>
            <button
              type="submit"
              className="btn primary"
              disabled={starting || source === undefined}
              aria-busy={starting || undefined}
              title={source === undefined ? "No adapter yet: wait for a checkpoint or the end of training" : undefined}
            >
              {starting ? "Starting…" : "Evaluate"}
            </button>
          </div>
          {source === undefined && <p className="muted jd-small jd-ev-none">No adapter to evaluate yet: a checkpoint or the final adapter is needed.</p>}
          {startError && (
            <p className="notice error jd-ex-notice" role="alert">
              Could not start the evaluation: {startError}
            </p>
          )}
        </form>

        {listError && (
          <p className="notice warn jd-ex-notice" role="status">
            Could not load evaluations: {listError}
          </p>
        )}
        {evals && evals.length > 0 && <EvalTable jobId={jobId} evals={evals} />}
        {evals && evals.length === 0 && <p className="jd-empty jd-ev-empty">No evaluations yet</p>}
      </div>
    </section>
  );
}

/** Checkpoints by step, the final adapter after them; the newest first within one adapter. */
function tableOrder(evals: readonly EvalInfo[]): EvalInfo[] {
  const rank = (e: EvalInfo) => (e.source === "final" ? 1 : 0);
  return evals
    .map((e, i) => ({ e, i }))
    .sort((a, b) => a.e.step - b.e.step || rank(a.e) - rank(b.e) || a.i - b.i)
    .map(({ e }) => e);
}

function EvalTable({ jobId, evals }: { jobId: string; evals: EvalInfo[] }) {
  const rows = useMemo(() => tableOrder(evals), [evals]);
  const best = useMemo(() => bestEval(evals), [evals]);
  const json = hasJsonRows(evals);
  const keys = useMemo(() => scoreKeys(evals), [evals]);
  const datasets = new Set(evals.map((e) => e.dataset)).size;
  const scoreCols = 2 + (json ? 2 + keys.length : 0);
  const [busy, setBusy] = useState<string | null>(null);
  const [downloadError, setDownloadError] = useState<string | null>(null);
  const download = async (e: EvalInfo) => {
    if (!e.reportPathname) return;
    setBusy(e.id);
    setDownloadError(null);
    try {
      await downloadArtifact(jobId, e.reportPathname);
    } catch (err) {
      setDownloadError(`Download of the report failed: ${errorMessage(err)}`);
    } finally {
      setBusy(null);
    }
  };
  return (
    <>
      {downloadError && (
        <p className="notice error jd-ex-notice" role="alert">
          {downloadError}
        </p>
      )}
      <div className="table-wrap jd-ev-wrap">
        <table className="table jd-ev-table" aria-label="Evaluations">
          <thead>
            <tr>
              <th scope="col">Adapter</th>
              <th scope="col" className="num">
                Rows
              </th>
              <th scope="col" className="num">
                Exact match
              </th>
              {json && (
                <th scope="col" className="num">
                  Valid JSON
                </th>
              )}
              {json &&
                keys.map((k) => (
                  <th scope="col" className="num mono" key={k}>
                    {k}
                  </th>
                ))}
              {json && (
                <th scope="col" className="num">
                  All keys
                </th>
              )}
              <th scope="col" className="num">
                Time
              </th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((e) => (
              <EvalRow
                key={e.id}
                jobId={jobId}
                e={e}
                best={e.id === best}
                json={json}
                keys={keys}
                scoreCols={scoreCols}
                showDataset={datasets > 1}
                busy={busy === e.id}
                onDownload={() => void download(e)}
              />
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function EvalRow({
  jobId,
  e,
  best,
  json,
  keys,
  scoreCols,
  showDataset,
  busy,
  onDownload,
}: {
  jobId: string;
  e: EvalInfo;
  best: boolean;
  json: boolean;
  keys: string[];
  scoreCols: number;
  showDataset: boolean;
  busy: boolean;
  onDownload: () => void;
}) {
  const label = evalSourceLabel(e);
  const s = e.scores;
  return (
    <tr data-eval-id={e.id} data-status={e.status} data-best={best ? "true" : undefined}>
      <th scope="row" className="jd-ev-source">
        <span className="jd-ev-name">{label}</span>
        {best && (
          <span className="badge jd-ev-best" title="The highest score on this held-out file">
            Best
          </span>
        )}
        {e.status !== "completed" && <StatusBadge status={e.status} />}
        {showDataset && <span className="muted jd-small mono jd-ev-dataset">{e.dataset}</span>}
      </th>
      {e.status === "completed" && s ? (
        <>
          <td className="num mono">{s.rows}</td>
          <td className="num mono" title={`${s.exactMatch}/${s.rows}`}>
            {formatPct(s.exactMatch, s.rows)}
          </td>
          {json && (
            <td className="num mono" title={`${s.jsonValid}/${s.jsonRows}`}>
              {formatPct(s.jsonValid, s.jsonRows)}
            </td>
          )}
          {json &&
            keys.map((k) => {
              const v = s.perKey[k];
              return (
                <td className="num mono" key={k} title={v ? `${v.correct}/${v.total}` : undefined}>
                  {v ? formatPct(v.correct, v.total) : "N/A"}
                </td>
              );
            })}
          {json && (
            <td className="num mono jd-ev-all" title={`${s.allKeysCorrect}/${s.jsonRows}`}>
              {formatPct(s.allKeysCorrect, s.jsonRows)}
            </td>
          )}
          <td className="num mono" title={`${s.tokensGenerated} tokens generated`}>
            {formatSecs(s.elapsedSecs)}
          </td>
        </>
      ) : e.status === "running" ? (
        <td colSpan={scoreCols + 1}>
          <RunningText e={e} />
        </td>
      ) : (
        <td colSpan={scoreCols + 1} className="jd-ev-error">
          {e.error || (e.status === "failed" ? "The evaluation failed" : e.status)}
        </td>
      )}
      <td className="jd-ev-actions">
        {best && (
          <a className="btn small" href={evalPlaygroundHref(jobId, e)} aria-label={`Open ${label} in Playground`}>
            Open in Playground
          </a>
        )}
        {e.reportPathname && e.status === "completed" && (
          <button type="button" className="btn small" aria-label={`Download report: ${label}`} disabled={busy} onClick={onDownload}>
            {busy ? "Downloading…" : "Download report"}
          </button>
        )}
      </td>
    </tr>
  );
}

function RunningText({ e }: { e: EvalInfo }) {
  const now = useNow(1000);
  return (
    <span className="muted jd-small jd-ex-status" role="status">
      <span className="jd-ex-spinner" aria-hidden="true" />
      {evalStatusText(e, now)}
    </span>
  );
}
