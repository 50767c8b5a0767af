import type { Job } from "../lib/api";
import { formatDuration, jobDurationMs } from "../lib/format";
import { useNow } from "../lib/hooks";
import { jobHref } from "../lib/route";
import { CopyId, RelativeTime, StatusBadge } from "./common";

export interface JobSelection {
  selected: readonly string[];
  toggle: (id: string, on: boolean) => void;
  /** No more can be ticked (unticked boxes are disabled, with this as their title). */
  full?: string | null;
}

/** Jobs as a table; every row opens the job. With `selection`, a first column of checkboxes. */
export function JobsTable({ jobs, compact = false, selection }: { jobs: Job[]; compact?: boolean; selection?: JobSelection }) {
  const now = useNow(compact ? 30_000 : 1000);
  return (
    <div className="table-wrap">
      <table className="table" aria-label={compact ? "Recent jobs" : "Jobs"}>
        <thead>
          <tr>
            {selection && (
              <th scope="col" className="jt-select">
                <span className="sr-only">Select</span>
              </th>
            )}
            <th scope="col">Status</th>
            <th scope="col">Name</th>
            {!compact && <th scope="col">Duration</th>}
            <th scope="col">Created</th>
            <th scope="col">ID</th>
          </tr>
        </thead>
        <tbody>
          {jobs.map((job) => {
            const d = jobDurationMs(job, now);
            const ticked = selection?.selected.includes(job.id) ?? false;
            return (
              <tr
                key={job.id}
                className="link-row"
                data-job-id={job.id}
                data-selected={ticked || undefined}
                onClick={(e) => {
                  if ((e.target as HTMLElement).closest("a,button,input,label")) return;
                  window.location.hash = jobHref(job.id);
                }}
              >
                {selection && (
                  <td className="jt-select">
                    <label className="jt-check">
                      <input
                        type="checkbox"
                        checked={ticked}
                        disabled={!ticked && !!selection.full}
                        title={!ticked && selection.full ? selection.full : undefined}
                        onChange={(e) => selection.toggle(job.id, e.target.checked)}
                        aria-label={`Select ${job.name || job.id}`}
                      />
                    </label>
                  </td>
                )}
                <td>
                  <StatusBadge status={job.status} />
                </td>
                <td>
                  <a className="name" href={jobHref(job.id)}>
                    {job.name}
                  </a>
                </td>
                {!compact && <td className="mono">{d === null ? "N/A" : formatDuration(d)}</td>}
                <td>
                  <RelativeTime iso={job.createdAt} now={now} />
                </td>
                <td>
                  <CopyId id={job.id} />
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
