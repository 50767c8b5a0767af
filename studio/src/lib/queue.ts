// The backend's job queue as the Jobs page and the Overview show it (pure, unit-tested):
// a queued job's place, which row actions apply, a running job's progress.

import type { Job } from "./api";

type QueueFields = Pick<Job, "status" | "queuePosition">;

/** `#n in queue` for a queued job whose place the backend reported; else null. */
export function queueLabel(job: QueueFields): string | null {
  const p = job.queuePosition;
  if (job.status !== "queued" || typeof p !== "number" || !Number.isInteger(p) || p < 1) return null;
  return `#${p} in queue`;
}

/** The row actions a job offers: move a queued job that is not already next; cancel one that has not ended. */
export function queueActions(job: QueueFields): { moveToFront: boolean; cancel: boolean } {
  const queued = job.status === "queued";
  return {
    moveToFront: queued && typeof job.queuePosition === "number" && job.queuePosition > 1,
    cancel: queued || job.status === "running",
  };
}

/** `gpu-box-1`, or `gpu-box-1 (attempt 2)` after a requeue, for a job a remote worker leased; else null. */
export function workerLabel(job: Pick<Job, "worker" | "attempt">): string | null {
  const name = typeof job.worker === "string" ? job.worker.trim() : "";
  if (!name) return null;
  const a = job.attempt;
  return typeof a === "number" && Number.isInteger(a) && a > 1 ? `${name} (attempt ${a})` : name;
}

export interface RunProgress {
  step: number;
  /** 0 until the worker reports its plan. */
  total: number;
  /** 0-100, whole; 0 while the total is unknown. */
  percent: number;
  /** `Step 12 of 60`, or `Starting…` before the first report. */
  label: string;
}

/** A running job's progress as a bar shows it (the step clamped to the total). */
export function runProgress(job: Pick<Job, "progress">): RunProgress {
  const total = Math.max(0, Math.floor(job.progress?.totalSteps ?? 0));
  const raw = Math.max(0, Math.floor(job.progress?.step ?? 0));
  if (total === 0) return { step: raw, total: 0, percent: 0, label: "Starting…" };
  const step = Math.min(raw, total);
  return { step, total, percent: Math.floor((step / total) * 100), label: `Step ${step} of ${total}` };
}

/** `No jobs queued`, `1 job queued behind it`, `3 jobs queued behind them` (several running). */
export function queuedBehindLabel(queued: number, running = 1): string {
  if (queued <= 0) return "No jobs queued";
  return `${queued} ${queued === 1 ? "job" : "jobs"} queued behind ${running > 1 ? "them" : "it"}`;
}
