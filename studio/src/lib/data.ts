// The Data tab's model: what `POST /api/data/inspect` answers, and the pure helpers the
// page draws with (histogram bars, token display, the URL's selection). The backend
// computes everything (the engine owns templates and masks); these only lay it out.

import { getJSON, type JobConfig } from "./api";

/** A row by position, with its token length before truncation. */
export interface RowRef {
  index: number;
  file: string;
  line: number;
  tokens: number;
}

export interface RowError {
  file: string;
  line: number;
  message: string;
}

export interface Bucket {
  from: number;
  /** One past the largest length in the bucket. */
  to: number;
  rows: number;
}

export interface Inspection {
  format: string;
  /** Rows tokenised so far. */
  rows: number;
  /** Rows read but not tokenised yet: the backend is still working when above 0. */
  pending: number;
  tokens: number;
  trainedTokens: number;
  maxLength: number;
  histogram: Bucket[];
  /** The first ones only; the counts are whole. */
  truncated: RowRef[];
  untrained: RowRef[];
  errors: RowError[];
  truncatedCount: number;
  untrainedCount: number;
  errorCount: number;
}

export interface RowSummary extends RowRef {
  trained: number;
  preview: string;
}

export interface TokenView {
  id: number;
  text: string;
  trained: boolean;
  special: boolean;
}

export interface RenderedRow {
  row: RowRef;
  tokens: TokenView[];
}

export interface DataInspection {
  model: string;
  files: string[];
  report: Inspection;
  rows: { offset: number; limit: number; items: RowSummary[] };
  row: RenderedRow | null;
  /** The asked-for row is not tokenised yet. */
  rowPending: boolean;
  /** Why the asked-for row cannot be shown (it does not exist). */
  rowError?: string | null;
  cached: boolean;
  /** Seconds the whole dataset took to tokenise, once it has. */
  seconds: number | null;
}

export interface InspectRequest {
  config: JobConfig;
  row?: number;
  offset?: number;
  limit?: number;
}

export const ROWS_PER_PAGE = 50;

export function inspectData(body: InspectRequest, signal?: AbortSignal): Promise<DataInspection> {
  return getJSON<DataInspection>("/api/data/inspect", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
}

/** What the page inspects: one of the project's trainers, or any file with a model. */
export type DataSelection =
  | { kind: "trainer"; trainer: string | null; page: number; row: number | null }
  | { kind: "file"; path: string; model: string; page: number; row: number | null };

const count = (v: string | null): number | null => {
  if (v === null || v.trim() === "") return null;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? n : null;
};

/** `#/data?trainer=…&page=2&row=7` or `#/data?path=…&model=…`: pages are 1-based. */
export function parseDataParams(params: URLSearchParams): DataSelection {
  const page = Math.max(1, count(params.get("page")) ?? 1);
  const row = count(params.get("row"));
  const path = params.get("path");
  if (path !== null && path.trim() !== "") {
    return { kind: "file", path, model: params.get("model") ?? "", page, row };
  }
  return { kind: "trainer", trainer: params.get("trainer"), page, row };
}

export function dataHref(s: DataSelection): string {
  const p = new URLSearchParams();
  if (s.kind === "file") {
    p.set("path", s.path);
    if (s.model) p.set("model", s.model);
  } else if (s.trainer) {
    p.set("trainer", s.trainer);
  }
  if (s.page > 1) p.set("page", String(s.page));
  if (s.row !== null) p.set("row", String(s.row));
  const q = p.toString();
  return q ? `#/data?${q}` : "#/data";
}

/** The request for a selection: the trainer's own config, or a file with the trainer's
 * settings (max length, format options) and the chosen model. */
export function requestFor(s: DataSelection, trainerConfig: JobConfig | null): InspectRequest | null {
  const offset = (s.page - 1) * ROWS_PER_PAGE;
  const paging = { offset, limit: ROWS_PER_PAGE, ...(s.row !== null ? { row: s.row } : {}) };
  if (s.kind === "trainer") return trainerConfig ? { config: trainerConfig, ...paging } : null;
  const model = s.model.trim() || trainerConfig?.model;
  if (!model) return null;
  const config: JobConfig = {
    model,
    datasetSource: { type: "jsonl", path: s.path.trim() },
    ...(trainerConfig?.maxLength != null ? { maxLength: trainerConfig.maxLength } : {}),
    ...(trainerConfig?.trainOnResponsesOnly != null ? { trainOnResponsesOnly: trainerConfig.trainOnResponsesOnly } : {}),
  };
  return { config, ...paging };
}

export type BarState = "kept" | "partly-truncated" | "truncated";

export interface HistogramBar {
  bucket: Bucket;
  /** Left edge and width in [0, 1] of the plot's width. */
  x: number;
  width: number;
  /** Height in [0, 1] of the plot's height; a non-empty bucket is at least `minHeight`. */
  height: number;
  state: BarState;
  label: string;
}

/** Bars for the length histogram: equal widths, heights relative to the fullest bucket,
 * and whether training cuts the bucket's rows at `maxLength`. */
export function histogramBars(buckets: readonly Bucket[], maxLength: number, minHeight = 0.02): HistogramBar[] {
  const most = Math.max(1, ...buckets.map((b) => b.rows));
  const n = buckets.length;
  return buckets.map((b, i) => {
    const last = b.to - 1;
    const state: BarState = b.from > maxLength ? "truncated" : last > maxLength ? "partly-truncated" : "kept";
    const height = b.rows === 0 ? 0 : Math.max(minHeight, b.rows / most);
    const range = b.to - 1 === b.from ? `${b.from}` : `${b.from}–${b.to - 1}`;
    const label = `${range} tokens: ${b.rows} row${b.rows === 1 ? "" : "s"}${state === "kept" ? "" : state === "truncated" ? " (truncated)" : " (some truncated)"}`;
    return { bucket: b, x: i / n, width: 1 / n, height, state, label };
  });
}

/** Where `maxLength` falls on the histogram's x axis in [0, 1], or null when every bucket
 * is shorter or it is left of the first. */
export function maxLengthX(buckets: readonly Bucket[], maxLength: number): number | null {
  const n = buckets.length;
  if (n === 0) return null;
  const first = buckets[0].from;
  const end = buckets[n - 1].to;
  if (maxLength >= end - 1 || maxLength < first) return null;
  const width = (end - first) / n;
  return (maxLength + 1 - first) / width / n;
}

/** A token's text with its line breaks and tabs made visible: ↵ (then the break), →. */
export function displayToken(text: string): string {
  return text.replace(/\t/g, "→").replace(/\r?\n/g, "↵\n");
}

/** Share of trained tokens as a whole percentage (0 without tokens). */
export function trainedShare(trained: number, total: number): number {
  return total > 0 ? Math.round((100 * trained) / total) : 0;
}

/** Pages of `perPage` rows for `rows` rows (at least one). */
export function pageCount(rows: number, perPage = ROWS_PER_PAGE): number {
  return Math.max(1, Math.ceil(rows / perPage));
}
