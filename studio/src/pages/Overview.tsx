import { useEffect, useRef } from "react";
import { JobsTable } from "../components/JobsTable";
import { RunTraining } from "../components/RunTraining";
import { RunningNow } from "../components/RunningNow";
import { Skeleton } from "../components/common";
import { fetchJobs } from "../lib/api";
import { usePolling } from "../lib/hooks";
import { startedJobOf, useTrainingRun } from "../lib/trainingRun";

export function Overview() {
  const jobs = usePolling((s) => fetchJobs({ limit: 5 }, s), 5000);
  // What runs now, and how many wait behind it (the total of a one-row page).
  const queue = usePolling(async (s) => {
    const [running, queued] = await Promise.all([
      fetchJobs({ status: "running", limit: 10 }, s),
      fetchJobs({ status: "queued", limit: 1 }, s),
    ]);
    return { running: running.jobs, queued: queued.total ?? queued.jobs.length };
  }, 3000);
  // A run that starts or ends changes the list: refresh at once, not at the next poll.
  const run = useTrainingRun();
  const started = run.output ? startedJobOf(run.output) : null;
  const refresh = () => {
    jobs.refresh();
    queue.refresh();
  };
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    refresh();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [run.running, started]);
  const list = jobs.data?.jobs ?? [];
  return (
    <>
      <div className="page-title">
        <h1>Overview</h1>
        <p className="subtitle">Train the project's trainer, follow its jobs, chat with what it produced.</p>
      </div>
      <RunTraining />
      {queue.data && <RunningNow running={queue.data.running} queued={queue.data.queued} />}
      <section className="card" aria-labelledby="recent-jobs-title">
        <div className="card-head">
          <h2 id="recent-jobs-title">Recent jobs</h2>
          <span className="spacer" />
          <a href="#/jobs">View all</a>
        </div>
        {jobs.error && !jobs.data && <p className="notice error" style={{ margin: 16 }}>Failed to load jobs: {jobs.error}</p>}
        {jobs.loading && !jobs.data && !jobs.error && <Skeleton rows={3} />}
        {jobs.data && list.length === 0 && (
          <div className="empty">
            <strong>No jobs yet</strong>
            Run training above to create your first job.
          </div>
        )}
        {list.length > 0 && <JobsTable jobs={list} compact />}
      </section>
      <div className="tiles">
        <div className="card tile">
          <strong>Documentation</strong>
          <span className="muted">
            SDK reference: <code>cargo doc -p arkor --open</code>. Terminal: <code>arkor jobs list</code>,{" "}
            <code>arkor chat</code>.
          </span>
        </div>
        <a className="card tile" href="#/playground">
          <strong>Open the Playground</strong>
          <span className="muted">Chat with a base model, an adapter or any checkpoint.</span>
        </a>
      </div>
    </>
  );
}
