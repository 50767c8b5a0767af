// Pure logic of the "Compare runs" page: the selection in the URL, one colour per run,
// runs' points aligned by step or by tokens seen, configs flattened and diffed, final
// metrics. No DOM, no React (unit-tested).

import type { EvalInfo, JobConfig } from "./api";
import type { ChartPoint } from "./chart";
import { seriesStats } from "./chart";
import { bestEval, evalSourceLabel, headline, METRIC_LABEL } from "./evals";
import type { JobEventState } from "./jobView";

// ---------------------------------------------------------------- selection in the URL

/** At most this many runs are compared (more would be an unreadable chart). */
export const MAX_COMPARE = 8;

/** Job ids from `jobs=<id1>,<id2>`: trimmed, empties ignored, first occurrence kept, capped. */
export function parseSelection(param: string | null | undefined, cap = MAX_COMPARE): string[] {
  if (!param) return [];
  const out: string[] = [];
  for (const raw of param.split(",")) {
    const id = raw.trim();
    if (id && !out.includes(id)) out.push(id);
    if (out.length >= cap) break;
  }
  return out;
}

/** The compare route for `ids` (normalised as `parseSelection` reads it back). */
export function compareHref(ids: readonly string[]): string {
  const sel = parseSelection(ids.join(","));
  // Commas stay readable in the link; each id is encoded on its own.
  return `#/compare?jobs=${sel.map(encodeURIComponent).join(",")}`;
}

// ---------------------------------------------------------------- colours

/**
 * One colour per run, by its position in the selection: a light-theme and a dark-theme
 * shade each, both at least 3:1 against that theme's card surface (tested).
 */
export const RUN_PALETTE: readonly { light: string; dark: string }[] = [
  { light: "#0d9488", dark: "#2dd4bf" }, // teal (the accent)
  { light: "#c026d3", dark: "#e879f9" }, // fuchsia
  { light: "#2563eb", dark: "#60a5fa" }, // blue
  { light: "#c2410c", dark: "#fb923c" }, // orange
  { light: "#7c3aed", dark: "#a78bfa" }, // violet
  { light: "#15803d", dark: "#4ade80" }, // green
  { light: "#be123c", dark: "#fb7185" }, // rose
  { light: "#a16207", dark: "#facc15" }, // amber
];

/** The palette entry of the run at `index` (wrapping round). */
export function runColor(index: number): { light: string; dark: string } {
  const n = RUN_PALETTE.length;
  return RUN_PALETTE[((Math.trunc(index) % n) + n) % n];
}

/** Inline custom properties for an element drawn in the run's colour (the CSS picks the theme's). */
export function runStyle(index: number): Record<string, string> {
  const c = runColor(index);
  return { "--run-light": c.light, "--run-dark": c.dark };
}

/** WCAG contrast ratio of two `#rrggbb` colours. */
export function contrastRatio(a: string, b: string): number {
  const lum = (hex: string) => {
    const v = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
    const [r, g, bl] = v.map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

// ---------------------------------------------------------------- alignment

export type AlignBy = "step" | "tokens";

/** A run's point with the x it is drawn at. */
export interface AlignedPoint extends ChartPoint {
  x: number;
}

/** Whether any point reports tokens seen (the "tokens" alignment needs it). */
export function hasTokens(points: readonly ChartPoint[]): boolean {
  return points.some((p) => typeof p.tokensSeen === "number" && Number.isFinite(p.tokensSeen));
}

/**
 * The points with their x: the step, or the tokens seen (points without it dropped).
 * Sorted by x; for equal x the later point (by step) is kept.
 */
export function alignPoints(points: readonly ChartPoint[], by: AlignBy): AlignedPoint[] {
  const out: AlignedPoint[] = [];
  for (const p of points) {
    const x = by === "step" ? p.step : p.tokensSeen;
    if (typeof x !== "number" || !Number.isFinite(x)) continue;
    out.push({ ...p, x });
  }
  out.sort((a, b) => a.x - b.x || a.step - b.step);
  return out.filter((p, i) => i + 1 >= out.length || out[i + 1].x !== p.x);
}

/** The x extent over every run, at least 1 wide (like `stepDomain` for one run). */
export function xDomainOf(runs: readonly (readonly AlignedPoint[])[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const r of runs) {
    if (r.length === 0) continue;
    lo = Math.min(lo, r[0].x);
    hi = Math.max(hi, r[r.length - 1].x);
  }
  if (!(lo <= hi)) return [0, 1];
  return hi - lo >= 1 ? [lo, hi] : [lo - 0.5, lo + 0.5];
}

// ---------------------------------------------------------------- configs

export interface ConfigEntry {
  key: string;
  value: string;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

/** A leaf value as shown: strings as they are, lists comma-separated, the rest as JSON. */
export function formatValue(v: unknown): string {
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return v.map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join(", ");
  return JSON.stringify(v);
}

/**
 * Every key of the config present (not null, undefined or ""), nested objects flattened
 * with dots (`datasetSource.name`), in the config's own order.
 */
export function flattenConfig(config: Record<string, unknown> | JobConfig | null | undefined, prefix = ""): ConfigEntry[] {
  const out: ConfigEntry[] = [];
  if (!config) return out;
  for (const [k, v] of Object.entries(config)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v === null || v === undefined || v === "") continue;
    if (isPlainObject(v)) out.push(...flattenConfig(v, key));
    else out.push({ key, value: formatValue(v) });
  }
  return out;
}

export interface DiffRow {
  key: string;
  /** One per run; undefined where the run lacks the key. */
  values: (string | undefined)[];
  /** Not every run has the same value (a key missing in some runs differs). */
  differs: boolean;
}

/** One row per key seen in any run (first-seen order), with whether the runs disagree. */
export function diffEntries(runs: readonly (readonly ConfigEntry[])[]): DiffRow[] {
  const byKey = new Map<string, (string | undefined)[]>();
  runs.forEach((entries, i) => {
    for (const e of entries) {
      let vals = byKey.get(e.key);
      if (!vals) {
        vals = new Array<string | undefined>(runs.length).fill(undefined);
        byKey.set(e.key, vals);
      }
      vals[i] = e.value;
    }
  });
  return [...byKey].map(([key, values]) => ({ key, values, differs: values.some((v) => v !== values[0]) }));
}

/** `diffEntries` of the flattened configs. */
export function diffConfigs(configs: readonly (Record<string, unknown> | JobConfig | null | undefined)[]): DiffRow[] {
  return diffEntries(configs.map((c) => flattenConfig(c)));
}

// ---------------------------------------------------------------- run facts and final metrics

const fixed = (v: number | undefined | null) => (typeof v === "number" && Number.isFinite(v) ? v.toFixed(4) : undefined);

/**
 * The rows under the config in the comparison: the version and data hash from
 * `training.started`, the final training loss (the completion's metrics, else the last
 * logged loss), the last eval loss and the last step.
 */
export function runFactEntries(ev: Pick<JobEventState, "metadata" | "points" | "terminal" | "lastStep">): ConfigEntry[] {
  const out: ConfigEntry[] = [];
  const add = (key: string, value: string | undefined) => {
    if (value !== undefined && value !== "") out.push({ key, value });
  };
  add("arkor version", ev.metadata?.arkorVersion);
  add("dataset sha256", ev.metadata?.datasetSha256);
  const s = seriesStats(ev.points);
  add("final train loss", fixed(ev.terminal?.trainLoss) ?? fixed(s.latestLoss?.value));
  add("last eval loss", fixed(s.latestEval?.value));
  add("last step", ev.lastStep === null ? undefined : String(ev.lastStep));
  return out;
}

/**
 * The evaluation rows of the comparison: the best evaluated adapter's headline score with
 * where it came from, and the held-out file it was scored on (scores on different files do
 * not compare, and the diff shows it). None before an evaluation completes.
 */
export function evalFactEntries(evals: readonly EvalInfo[] | undefined): ConfigEntry[] {
  const best = evals && bestEval(evals);
  const e = best ? evals.find((x) => x.id === best) : undefined;
  const h = e?.scores ? headline(e.scores) : null;
  if (!e || !h) return [];
  return [
    { key: "best eval", value: `${h.pct.toFixed(1)}% ${METRIC_LABEL[h.metric]} (${evalSourceLabel(e)})` },
    { key: "eval dataset", value: e.dataset },
  ];
}
