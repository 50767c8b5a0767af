import type { Job } from "../lib/api";
import { formatDuration, jobDurationMs } from "../lib/format";
import { useNow } from "../lib/hooks";
import { queueActions, queueLabel } from "../lib/queue";
import { jobHref } from "../lib/route";
import { CopyId, RelativeTime, StatusBadge } from "./common";

export interface JobSelection {
  selected: readonly string[];
  toggle: (id: string, on: boolean) => void;
  /** No more can be ticked (unticked boxes are disabled, with this as their title). */
  full?: string | null;
}

/** Row actions on the queue; `busy` is the job whose action is in flight (its buttons are disabled). */
export interface JobActions {
  moveToFront: (job: Job) => void;
  cancel: (job: Job) => void;
  busy?: string | null;
}

/**
 * Jobs as a table; every row opens the job. A queued job shows its place in the queue. With
 * `selection`, a first column of checkboxes; with `actions`, a last column of queue actions.
 */
export function JobsTable({
  jobs,
  compact = false,
  selection,
  actions,
}: {
  jobs: Job[];
  compact?: boolean;
  selection?: JobSelection;
  actions?: JobActions;
}) {
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
            {actions && (
              <th scope="col" className="jt-actions">
                <span className="sr-only">Actions</span>
              </th>
            )}
          </tr>
        </thead>
        <tbody>
          {jobs.map((job) => {
            const d = jobDurationMs(job, now);
            const ticked = selection?.selected.includes(job.id) ?? false;
            const place = queueLabel(job);
            const can = queueActions(job);
            const label = job.name || job.id;
            const busy = actions?.busy === job.id;
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
                  <span className="jt-status">
                    <StatusBadge status={job.status} />
                    {place && <span className="queue-pos">{place}</span>}
                  </span>
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
                {actions && (
                  <td className="jt-actions">
                    {can.moveToFront && (
                      <button
                        type="button"
                        className="btn small"
                        disabled={busy}
                        aria-label={`Move ${label} to front`}
                        title="Start this job next"
                        onClick={() => actions.moveToFront(job)}
                      >
                        Move to front
                      </button>
                    )}
                    {can.cancel && (
                      <button
                        type="button"
                        className="btn small danger"
                        disabled={busy}
                        aria-label={`Cancel ${label}`}
                        onClick={() => actions.cancel(job)}
                      >
                        Cancel
                      </button>
                    )}
                  </td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
