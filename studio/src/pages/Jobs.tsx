import { useEffect, useState } from "react";
import { JobsTable } from "../components/JobsTable";
import { Skeleton } from "../components/common";
import { RefreshIcon } from "../components/icons";
import { cancelJob, fetchJobs, JOB_STATUSES, type Job, moveJobToFront } from "../lib/api";
import { compareHref, MAX_COMPARE } from "../lib/compare";
import { errorMessage, statusLabel } from "../lib/format";
import { usePolling } from "../lib/hooks";

export const PAGE_SIZE = 20;

export function Jobs() {
  const [search, setSearch] = useState("");
  const [q, setQ] = useState("");
  const [status, setStatus] = useState<string | null>(null);
  // Cursors of the pages before the current one (server-side paging).
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1];
  // Jobs ticked for comparison, in the order ticked (kept across pages and filters).
  const [selected, setSelected] = useState<string[]>([]);
  const toggle = (id: string, on: boolean) =>
    setSelected((s) => (on ? (s.includes(id) || s.length >= MAX_COMPARE ? s : [...s, id]) : s.filter((x) => x !== id)));

  // Debounce typing; a new search or filter starts at the first page.
  useEffect(() => {
    const t = setTimeout(() => setQ(search.trim()), 250);
    return () => clearTimeout(t);
  }, [search]);
  useEffect(() => setCursors([null]), [q, status]);

  const jobs = usePolling((s) => fetchJobs({ limit: PAGE_SIZE, cursor, status, q }, s), 5000, [cursor, status, q]);
  // Queue actions: one at a time per job; the list refreshes when one lands.
  const [busy, setBusy] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const act = (what: string, job: Job, call: (id: string) => Promise<unknown>) => {
    if (busy) return;
    setBusy(job.id);
    setActionError(null);
    call(job.id)
      .catch((e: unknown) => setActionError(`Could not ${what} ${job.name || job.id}: ${errorMessage(e)}`))
      .finally(() => {
        setBusy(null);
        jobs.refresh();
      });
  };
  const list = jobs.data?.jobs ?? [];
  const total = jobs.data?.total;
  const page = cursors.length;
  const filtered = q !== "" || status !== null;

  return (
    <>
      <div className="page-title">
        <h1>Jobs</h1>
        <p className="subtitle">Auto-refreshes every 5 seconds.</p>
      </div>
      <section className="card">
        <div className="filters">
          <label className="sr-only" htmlFor="job-search">
            Search jobs
          </label>
          <input
            id="job-search"
            className="input"
            type="search"
            placeholder="Search by name or ID…"
            value={search}
            onChange={(e) => setSearch(e.target.value)}
          />
          <div className="seg" role="group" aria-label="Status filter">
            {[null, ...JOB_STATUSES].map((s) => (
              <button key={s ?? "all"} type="button" aria-pressed={status === s} onClick={() => setStatus(s)}>
                {s ? statusLabel(s) : "All"}
              </button>
            ))}
          </div>
          {selected.length > 0 && (
            <button type="button" className="btn" onClick={() => setSelected([])}>
              Clear selection
            </button>
          )}
          <button
            type="button"
            className="btn primary"
            disabled={selected.length < 2}
            title={selected.length < 2 ? "Tick two or more jobs to compare them" : undefined}
            onClick={() => (window.location.hash = compareHref(selected))}
          >
            Compare ({selected.length})
          </button>
          <button type="button" className="btn icon" onClick={jobs.refresh} aria-label="Refresh" title="Refresh">
            <span className={jobs.refreshing ? "spin" : undefined} style={{ display: "inline-flex" }}>
              <RefreshIcon />
            </span>
          </button>
        </div>
        {jobs.error && <p className="notice error" style={{ margin: 16 }}>Failed to load jobs: {jobs.error}</p>}
        {actionError && (
          <p className="notice error" role="alert" style={{ margin: 16 }}>
            {actionError}
          </p>
        )}
        {jobs.loading && !jobs.data && !jobs.error && <Skeleton rows={5} />}
        {jobs.data && list.length === 0 && (
          <div className="empty">
            {filtered ? (
              <>
                <strong>No matches</strong>No job matches this search and filter.
              </>
            ) : (
              <>
                <strong>No jobs yet</strong>Press Run training on the Overview to create one.
              </>
            )}
          </div>
        )}
        {list.length > 0 && (
          <JobsTable
            jobs={list}
            selection={{
              selected,
              toggle,
              full: selected.length >= MAX_COMPARE ? `At most ${MAX_COMPARE} runs can be compared` : null,
            }}
            actions={{
              moveToFront: (job) => act("move to the front", job, moveJobToFront),
              cancel: (job) => act("cancel", job, cancelJob),
              busy,
            }}
          />
        )}
        {jobs.data && (page > 1 || jobs.data.nextCursor) && (
          <div className="pager" role="navigation" aria-label="Pagination">
            <span className="muted">
              Page {page}
              {total !== undefined ? ` of ${Math.max(1, Math.ceil(total / PAGE_SIZE))} · ${total} jobs` : ""}
            </span>
            <button type="button" className="btn small" disabled={page <= 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
              Previous
            </button>
            <button
              type="button"
              className="btn small"
              disabled={!jobs.data.nextCursor}
              onClick={() => jobs.data?.nextCursor && setCursors((c) => [...c, jobs.data!.nextCursor!])}
            >
              Next
            </button>
          </div>
        )}
      </section>
    </>
  );
}
