// "Compare runs": the jobs named in `#/compare?jobs=<id>,<id>` side by side. Their curves
// overlaid on one chart, then their resolved configs and final metrics with the keys
// that differ highlighted. Everything shown comes from the URL, so a link reproduces it.

import { useEffect, useMemo, useState } from "react";
import { CompareChart, type CompareRun } from "../components/CompareChart";
import { Skeleton, StatusBadge } from "../components/common";
import { ApiError, type EvalInfo, eventsUrl, fetchEvals, fetchJob, type Job } from "../lib/api";
import { diffEntries, type DiffRow, evalFactEntries, flattenConfig, runFactEntries, runStyle } from "../lib/compare";
import { errorMessage } from "../lib/format";
import { subscribeJobEvents } from "../lib/jobEvents";
import { applyEvent, initialEventState, type JobEventState, resolveStatus, terminalStatusOf } from "../lib/jobView";
import { jobHref } from "../lib/route";
// The breadcrumb and the chart's lc-* styles are the job page's.
import "./jobdetail.css";
import "./compare.css";

interface RunState {
  job?: Job;
  error?: string;
  /** Its evaluations (`arkor eval` / the job page's Evaluation card), when it has any. */
  evals?: EvalInfo[];
  ev: JobEventState;
}

/** Loads each job and follows its events (a finished job's stream replays and ends). */
function useRuns(ids: readonly string[]): Record<string, RunState> {
  const key = ids.join(",");
  const [runs, setRuns] = useState<Record<string, RunState>>(() =>
    Object.fromEntries(ids.map((id) => [id, { ev: initialEventState }])),
  );
  useEffect(() => {
    const controller = new AbortController();
    const update = (id: string, f: (r: RunState) => RunState) =>
      setRuns((all) => ({ ...all, [id]: f(all[id] ?? { ev: initialEventState }) }));
    const unsubscribe = new Map<string, () => void>();
    const load = (id: string) =>
      fetchJob(id, controller.signal).then(
        (job) => {
          update(id, (r) => ({ ...r, job, error: undefined }));
          fetchEvals(id, controller.signal).then(
            (evals) => update(id, (r) => ({ ...r, evals })),
            () => {
              // No evaluations to show: the rows are simply absent.
            },
          );
        },
        (e: unknown) => {
          if (controller.signal.aborted) return;
          update(id, (r) => ({ ...r, error: errorMessage(e) }));
          // No such job: its event stream would only be retried in vain.
          if (e instanceof ApiError && e.status === 404) unsubscribe.get(id)?.();
        },
      );
    for (const id of ids) {
      void load(id);
      const stop = subscribeJobEvents(eventsUrl(id), {
        onEvent(frame) {
          update(id, (r) => ({ ...r, ev: applyEvent(r.ev, frame) }));
          // The job's own status and completion time change with it.
          if (terminalStatusOf(frame.type)) void load(id);
        },
      });
      unsubscribe.set(id, stop);
    }
    return () => {
      controller.abort();
      unsubscribe.forEach((stop) => stop());
    };
    // `key` is `ids` by value (the route builds a new array on every render).
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  return runs;
}

export function Compare({ ids }: { ids: string[] }) {
  const runs = useRuns(ids);
  const [onlyDiff, setOnlyDiff] = useState(false);

  const chartRuns: CompareRun[] = useMemo(
    () => ids.map((id, index) => ({ id, index, name: runs[id]?.job?.name || id, points: runs[id]?.ev.points ?? [] })),
    [ids, runs],
  );
  const loaded = ids.filter((id) => runs[id]?.job);
  const pending = ids.some((id) => !runs[id]?.job && !runs[id]?.error);
  const rows: DiffRow[] = useMemo(
    () => diffEntries(loaded.map((id) => [...flattenConfig(runs[id].job!.config), ...runFactEntries(runs[id].ev), ...evalFactEntries(runs[id].evals)])),
    // `loaded` follows `runs`.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [runs, ids],
  );
  const differing = rows.filter((r) => r.differs).length;
  const shown = onlyDiff ? rows.filter((r) => r.differs) : rows;

  if (ids.length === 0) {
    return (
      <>
        <CompareTitle />
        <section className="card">
          <div className="empty">
            <strong>No runs selected</strong>
            Tick two or more jobs on the <a href="#/jobs">Jobs</a> page, then press Compare.
          </div>
        </section>
      </>
    );
  }

  return (
    <div className="cmp">
      <CompareTitle count={ids.length} />
      {ids.length === 1 && (
        <p className="notice hint" role="status">
          Only one run is selected. Add more on the <a href="#/jobs">Jobs</a> page.
        </p>
      )}
      {ids.map((id) =>
        runs[id]?.error ? (
          <p key={id} className="notice error" role="alert">
            Could not load job {id}: {runs[id].error}
          </p>
        ) : null,
      )}
      <CompareChart runs={chartRuns} />

      <section className="card" aria-labelledby="cmp-config-title">
        <div className="card-head">
          <h2 id="cmp-config-title">Configuration and results</h2>
          {!pending && loaded.length > 1 && (
            <span className="muted cmp-count">
              {differing === 0 ? "no differences" : `${differing} of ${rows.length} differ`}
            </span>
          )}
          <span className="spacer" />
          <label className="lc-check">
            <input type="checkbox" checked={onlyDiff} onChange={(e) => setOnlyDiff(e.target.checked)} />
            Only differing keys
          </label>
        </div>
        {pending ? (
          <Skeleton rows={6} />
        ) : loaded.length === 0 ? (
          <div className="empty">
            <strong>Nothing to compare</strong>None of these jobs could be loaded.
          </div>
        ) : (
          <div className="table-wrap">
            <table className="table cmp-table" aria-label="Configurations compared">
              <thead>
                <tr>
                  <th scope="col">Key</th>
                  {loaded.map((id) => {
                    const r = runs[id];
                    return (
                      <th scope="col" key={id} className="cmp-run cmp-col" style={runStyle(ids.indexOf(id))}>
                        <span className="cmp-sw" aria-hidden="true" />
                        <a className="name" href={jobHref(id)}>
                          {r.job!.name || id}
                        </a>{" "}
                        <StatusBadge status={resolveStatus(r.job!.status, r.ev)} />
                      </th>
                    );
                  })}
                </tr>
              </thead>
              <tbody>
                {shown.map((row) => (
                  <tr
                    key={row.key}
                    data-key={row.key}
                    data-differs={row.differs ? "true" : "false"}
                    className={row.differs ? "cmp-differs" : undefined}
                  >
                    <th scope="row" className="mono cmp-key">
                      <span className="cmp-mark" aria-hidden="true" title={row.differs ? "Differs between runs" : undefined}>
                        {row.differs ? "≠" : ""}
                      </span>
                      {row.key}
                      {row.differs && <span className="sr-only"> (differs)</span>}
                    </th>
                    {row.values.map((v, i) => (
                      <td key={loaded[i]} className="mono cmp-val">
                        {v ?? <span className="muted">not set</span>}
                      </td>
                    ))}
                  </tr>
                ))}
                {shown.length === 0 && (
                  <tr>
                    <td colSpan={loaded.length + 1} className="muted">
                      {onlyDiff ? "The runs agree on every key." : "No configuration reported."}
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </div>
  );
}

function CompareTitle({ count }: { count?: number }) {
  return (
    <>
      <nav className="jd-crumbs" aria-label="Breadcrumb">
        <a href="#/jobs">Jobs</a>
        <span aria-hidden="true">›</span>
        <span aria-current="page">Compare</span>
      </nav>
      <div className="page-title">
        <h1>Compare runs</h1>
        {count !== undefined && <p className="subtitle">{count} runs · the link to this page reproduces it.</p>}
      </div>
    </>
  );
}
