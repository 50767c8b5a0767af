import type { Job } from "../lib/api";
import { formatDuration, jobDurationMs } from "../lib/format";
import { useNow } from "../lib/hooks";
import { jobHref } from "../lib/route";
import { CopyId, RelativeTime, StatusBadge } from "./common";

/** Jobs as a table; every row opens the job. */
export function JobsTable({ jobs, compact = false }: { jobs: Job[]; compact?: boolean }) {
  const now = useNow(compact ? 30_000 : 1000);
  return (
    <div className="table-wrap">
      <table className="table" aria-label={compact ? "Recent jobs" : "Jobs"}>
        <thead>
          <tr>
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
            return (
              <tr
                key={job.id}
                className="link-row"
                data-job-id={job.id}
                onClick={(e) => {
                  if ((e.target as HTMLElement).closest("a,button")) return;
                  window.location.hash = jobHref(job.id);
                }}
              >
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
