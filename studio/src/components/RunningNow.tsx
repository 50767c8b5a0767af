import type { Job } from "../lib/api";
import { queuedBehindLabel, runProgress } from "../lib/queue";
import { jobHref } from "../lib/route";

/** The Overview's "Running now" card: each running job with its progress, and the queue's length. */
export function RunningNow({ running, queued }: { running: Job[]; queued: number }) {
  if (running.length === 0) return null;
  return (
    <section className="card" aria-labelledby="running-now-title">
      <div className="card-head">
        <h2 id="running-now-title">Running now</h2>
        <span className="spacer" />
        <a href="#/jobs" className="muted">
          {queuedBehindLabel(queued, running.length)}
        </a>
      </div>
      <ul className="run-now">
        {running.map((job) => {
          const p = runProgress(job);
          const name = job.name || job.id;
          const loss = job.progress?.loss;
          return (
            <li key={job.id} data-job-id={job.id}>
              <a className="name" href={jobHref(job.id)}>
                {name}
              </a>
              <span className="muted mono">
                {p.label}
                {typeof loss === "number" && Number.isFinite(loss) ? ` · loss ${loss.toFixed(4)}` : ""}
              </span>
              <div
                className="progress-track"
                role="progressbar"
                aria-label={`Progress of ${name}`}
                aria-valuemin={0}
                aria-valuemax={p.total || undefined}
                aria-valuenow={p.total ? p.step : undefined}
                aria-valuetext={p.label}
              >
                <div className="progress-fill" style={{ width: `${p.percent}%` }} />
              </div>
            </li>
          );
        })}
      </ul>
    </section>
  );
}
