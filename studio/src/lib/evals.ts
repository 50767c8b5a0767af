// Pure logic of the job page's Evaluation card: the request body, percentages, the best
// adapter, the chart's score points and the status text (unit-tested).

import type { EvalInfo, EvalRequest, EvalScores } from "./api";
import { type ExportSource, sourceLabel } from "./exports";
import { formatDuration } from "./format";
import { playgroundHref } from "./route";

/** `n / of` in percent, or null when `of` is 0. */
export function ratio(n: number, of: number): number | null {
  return of > 0 && Number.isFinite(n) ? (100 * n) / of : null;
}

/** `72.9%` (one decimal, like `arkor eval`), `N/A` when there is nothing to divide by. */
export function formatPct(n: number, of: number): string {
  const r = ratio(n, of);
  return r === null ? "N/A" : `${r.toFixed(1)}%`;
}

/** Wall-clock seconds: `3.2s` under a minute, else `1m 05s`. */
export function formatSecs(secs: number): string {
  if (!Number.isFinite(secs) || secs < 0) return "N/A";
  return secs < 60 ? `${secs.toFixed(1)}s` : formatDuration(secs * 1000);
}

/**
 * The score an adapter is ranked by: all keys correct (of the JSON rows) when the rows have
 * JSON references, else exact match (of all rows). Null when there is nothing to score.
 */
export function headline(s: EvalScores): { metric: "allKeys" | "exact"; pct: number } | null {
  if (s.jsonRows > 0) return { metric: "allKeys", pct: ratio(s.allKeysCorrect, s.jsonRows)! };
  const exact = ratio(s.exactMatch, s.rows);
  return exact === null ? null : { metric: "exact", pct: exact };
}

export const METRIC_LABEL = { allKeys: "all keys correct", exact: "exact match" } as const;

function scored(e: EvalInfo): e is EvalInfo & { scores: EvalScores } {
  return e.status === "completed" && !!e.scores && e.scores.rows > 0;
}

/** The completed evaluations comparable with the newest one: same held-out file. */
export function comparable(evals: readonly EvalInfo[]): (EvalInfo & { scores: EvalScores })[] {
  const done = evals.filter(scored);
  if (done.length === 0) return [];
  const dataset = done[0].dataset;
  return done.filter((e) => e.dataset === dataset);
}

/**
 * The best evaluated adapter (its evaluation's id): the highest all-keys-correct share, else
 * exact match, compared on the newest evaluation's held-out file; ties go to the exact-match
 * share, then to the newer evaluation. Null when nothing has completed.
 */
export function bestEval(evals: readonly EvalInfo[]): string | null {
  let best: { id: string; key: [number, number] } | null = null;
  for (const e of comparable(evals)) {
    const h = headline(e.scores);
    if (!h) continue;
    const key: [number, number] = [h.pct, ratio(e.scores.exactMatch, e.scores.rows) ?? 0];
    if (!best || key[0] > best.key[0] || (key[0] === best.key[0] && key[1] > best.key[1])) best = { id: e.id, key };
  }
  return best?.id ?? null;
}

/** The step of a `checkpoint-<n>` source, null for `final` (and anything else). */
export function checkpointStep(source: string): number | null {
  const m = /^checkpoint-(\d+)$/.exec(source);
  return m ? Number(m[1]) : null;
}

/** The Playground link for an evaluated adapter. */
export function evalPlaygroundHref(jobId: string, e: Pick<EvalInfo, "source">): string {
  return playgroundHref(jobId, checkpointStep(e.source) ?? undefined);
}

/** "Final adapter · step 60", "Checkpoint · step 20". */
export function evalSourceLabel(e: Pick<EvalInfo, "source" | "step">): string {
  return e.source === "final" ? `Final adapter · step ${e.step}` : sourceLabel(e.source);
}

/** The keys of the JSON references over all the listed evaluations, sorted. */
export function scoreKeys(evals: readonly EvalInfo[]): string[] {
  const keys = new Set<string>();
  for (const e of evals) for (const k of Object.keys(e.scores?.perKey ?? {})) keys.add(k);
  return [...keys].sort();
}

/** Whether any listed evaluation has JSON references (the valid-JSON and per-key columns). */
export function hasJsonRows(evals: readonly EvalInfo[]): boolean {
  return evals.some((e) => (e.scores?.jsonRows ?? 0) > 0);
}

/** One marker on the loss chart: the ranking score of the newest evaluation at a step. */
export interface ScorePoint {
  step: number;
  /** 0-100. */
  pct: number;
  label: string;
}

/** The chart's score markers (comparable evaluations only), by step; the newest wins a step. */
export function scorePoints(evals: readonly EvalInfo[]): ScorePoint[] {
  const byStep = new Map<number, ScorePoint>();
  for (const e of comparable(evals)) {
    const h = headline(e.scores);
    if (!h || byStep.has(e.step)) continue;
    byStep.set(e.step, { step: e.step, pct: h.pct, label: `${h.pct.toFixed(1)}% ${METRIC_LABEL[h.metric]}` });
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

export interface EvalForm {
  datasetPath: string;
  source: ExportSource;
  /** As typed; blank for the backend's default (256). */
  maxTokens: string;
}

export const EVAL_MAX_TOKENS = 4096;

/** The `POST /api/jobs/:id/eval` body, or what is wrong with the form. */
export function evalRequest(form: EvalForm): { body: EvalRequest } | { error: string } {
  const datasetPath = form.datasetPath.trim();
  if (!datasetPath) return { error: "Enter the path of a held-out JSONL file" };
  const body: EvalRequest = { datasetPath };
  if (form.source !== "final") body.checkpointStep = form.source;
  const raw = form.maxTokens.trim();
  if (raw) {
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!(n >= 1 && n <= EVAL_MAX_TOKENS)) return { error: `Max tokens must be a whole number from 1 to ${EVAL_MAX_TOKENS}` };
    body.maxTokens = n;
  }
  return { body };
}

/** `<project>/data/heldout.jsonl` (the templates' held-out rows), with the directory's separator. */
export function defaultDatasetPath(projectDir: string | null | undefined): string {
  if (!projectDir) return "";
  const windows = projectDir.includes("\\") && !projectDir.includes("/");
  const sep = windows ? "\\" : "/";
  return `${projectDir.replace(/[\\/]+$/, "")}${sep}data${sep}heldout.jsonl`;
}

/** "Evaluating… 12s" while running (from `createdAt`), else "Completed in 3s" / "Failed". */
export function evalStatusText(e: Pick<EvalInfo, "status" | "createdAt" | "finishedAt">, now: number): string {
  if (e.status === "running") {
    const start = Date.parse(e.createdAt);
    return Number.isNaN(start) ? "Evaluating…" : `Evaluating… ${formatDuration(Math.max(0, now - start))}`;
  }
  if (e.status === "completed") {
    const took = Date.parse(e.finishedAt ?? "") - Date.parse(e.createdAt);
    return Number.isNaN(took) ? "Completed" : `Completed in ${formatDuration(Math.max(0, took))}`;
  }
  if (e.status === "failed") return "Failed";
  return e.status;
}

export function anyEvalRunning(evals: readonly Pick<EvalInfo, "status">[] | undefined): boolean {
  return !!evals?.some((e) => e.status === "running");
}

/** Puts a just-started evaluation in the list (newest first) until the next poll has it. */
export function withEval(list: readonly EvalInfo[] | undefined, e: EvalInfo): EvalInfo[] {
  return [e, ...(list ?? []).filter((x) => x.id !== e.id)];
}
