// Pure helpers for the loss chart: merging points, scales, ticks, smoothing, hit-testing,
// zoom clamping, SVG paths and CSV export. No DOM, no React (unit-tested).

/** One step of the training curves; absent fields are simply missing. */
export interface ChartPoint {
  step: number;
  loss?: number;
  evalLoss?: number;
  learningRate?: number;
  /** Cumulative input tokens trained so far, when the backend reports it (not a drawn series). */
  tokensSeen?: number;
}

export type SeriesKey = "loss" | "evalLoss" | "learningRate";
export const SERIES_KEYS: readonly SeriesKey[] = ["loss", "evalLoss", "learningRate"];

/** At most this many points are kept (the latest steps). */
export const MAX_POINTS = 2000;

const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** The finite fields of `p` only, or null when it has no finite step or no finite value. */
export function cleanPoint(p: Partial<ChartPoint> | null | undefined): ChartPoint | null {
  if (!p || !isNum(p.step)) return null;
  const out: ChartPoint = { step: p.step };
  let any = false;
  for (const k of SERIES_KEYS) {
    const v = p[k];
    if (isNum(v)) {
      out[k] = v;
      any = true;
    }
  }
  if (any && isNum(p.tokensSeen)) out.tokensSeen = p.tokensSeen;
  return any ? out : null;
}

/**
 * Union of `base` and `incoming` by step: for a step present in both, each field of the later
 * (incoming) point wins where it is finite. Sorted by step; only the last `cap` steps are kept.
 * `base` is assumed sorted with unique steps (as this function returns).
 */
export function mergePoints(
  base: readonly ChartPoint[],
  incoming: readonly Partial<ChartPoint>[],
  cap: number = MAX_POINTS,
): ChartPoint[] {
  const clean = incoming.map(cleanPoint).filter((p): p is ChartPoint => p !== null);
  if (clean.length === 0) return base.length > cap ? base.slice(base.length - cap) : base.slice();
  // Fast path: one point past the end (the live case).
  if (clean.length === 1 && (base.length === 0 || clean[0].step > base[base.length - 1].step)) {
    const out = base.concat(clean);
    return out.length > cap ? out.slice(out.length - cap) : out;
  }
  const byStep = new Map<number, ChartPoint>();
  for (const p of base) byStep.set(p.step, p);
  for (const p of clean) {
    const prev = byStep.get(p.step);
    byStep.set(p.step, prev ? { ...prev, ...p } : p);
  }
  const out = [...byStep.values()].sort((a, b) => a.step - b.step);
  return out.length > cap ? out.slice(out.length - cap) : out;
}

// ---------------------------------------------------------------- scales

export interface Scale {
  readonly kind: "linear" | "log";
  readonly domain: readonly [number, number];
  readonly range: readonly [number, number];
  /** Domain value to pixel; NaN for values a log scale cannot show (<= 0, non-finite). */
  map(v: number): number;
  /** Pixel to domain value. */
  invert(px: number): number;
}

export function linearScale(domain: readonly [number, number], range: readonly [number, number]): Scale {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const span = d1 - d0 || 1;
  return {
    kind: "linear",
    domain: [d0, d1],
    range: [r0, r1],
    map: (v) => (Number.isFinite(v) ? r0 + ((v - d0) / span) * (r1 - r0) : NaN),
    invert: (px) => d0 + ((px - r0) / (r1 - r0 || 1)) * span,
  };
}

/** Log10 scale; the domain must be positive (non-positive bounds are replaced by tiny ones). */
export function logScale(domain: readonly [number, number], range: readonly [number, number]): Scale {
  const d0 = domain[0] > 0 ? domain[0] : 1e-12;
  const d1 = domain[1] > d0 ? domain[1] : d0 * 10;
  const l0 = Math.log10(d0);
  const span = Math.log10(d1) - l0 || 1;
  const [r0, r1] = range;
  return {
    kind: "log",
    domain: [d0, d1],
    range: [r0, r1],
    map: (v) => (Number.isFinite(v) && v > 0 ? r0 + ((Math.log10(v) - l0) / span) * (r1 - r0) : NaN),
    invert: (px) => 10 ** (l0 + ((px - r0) / (r1 - r0 || 1)) * span),
  };
}

/** Min and max of the finite values (only positive ones when `log`), or null when none. */
export function valueExtent(values: Iterable<number | undefined | null>, log = false): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!isNum(v) || (log && v <= 0)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : null;
}

// ---------------------------------------------------------------- ticks

/** Removes floating-point noise (0.30000000000000004 -> 0.3). */
export function clean(v: number): number {
  return Number(v.toPrecision(12));
}

/** A 1, 2 or 5 times a power of ten close to `span / count`. */
export function niceStep(span: number, count: number): number {
  if (!(span > 0) || !(count > 0)) return 1;
  const raw = span / count;
  const exp = Math.floor(Math.log10(raw));
  const base = 10 ** exp;
  const f = raw / base;
  const nf = f < Math.SQRT2 ? 1 : f < Math.sqrt(10) ? 2 : f < Math.sqrt(50) ? 5 : 10;
  return clean(nf * base);
}

/** Multiples of a nice step that lie in [min, max] (about `count` of them). */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min > max) [min, max] = [max, min];
  if (min === max) return [clean(min)];
  const step = niceStep(max - min, count);
  const eps = step * 1e-9;
  const first = Math.ceil((min - eps) / step);
  const last = Math.floor((max + eps) / step);
  const out: number[] = [];
  for (let i = first; i <= last; i++) out.push(clean(i * step));
  return out;
}

/** [min, max] widened outwards to multiples of the nice step, so ticks land on both ends. */
export function niceDomain(min: number, max: number, count = 5): [number, number] {
  if (min > max) [min, max] = [max, min];
  if (min === max) return [min, max];
  const step = niceStep(max - min, count);
  return [clean(Math.floor(min / step + 1e-9) * step), clean(Math.ceil(max / step - 1e-9) * step)];
}

/** Decimals needed to tell ticks `step` apart (0.05 -> 2, 0.2 -> 1, 5 -> 0). */
export function decimalsFor(step: number): number {
  if (!(step > 0)) return 0;
  return Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
}

/** Tick values for a log axis: 1-2-5 (or powers of ten only for wide ranges) inside [min, max]. */
export function logTicks(min: number, max: number, maxCount = 6): number[] {
  if (!(min > 0) || !(max > 0)) return [];
  if (min > max) [min, max] = [max, min];
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  for (const mantissas of [[1, 2, 5], [1]]) {
    const out: number[] = [];
    for (let e = lo; e <= hi; e++) {
      for (const m of mantissas) {
        const v = clean(m * 10 ** e);
        if (v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9)) out.push(v);
      }
    }
    if (out.length >= 3 && out.length <= maxCount) return out;
    if (out.length > maxCount && mantissas.length === 1) {
      const every = Math.ceil(out.length / maxCount);
      return out.filter((_, i) => i % every === 0);
    }
  }
  // Less than a decade: linear ticks read fine on a log axis.
  return niceTicks(min, max, Math.max(2, maxCount - 2)).filter((v) => v > 0);
}

/** Integer ticks (step numbers) in [min, max], at most about `maxCount`, de-duplicated. */
export function integerTicks(min: number, max: number, maxCount = 6): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min > max) [min, max] = [max, min];
  const step = Math.max(1, Math.round(niceStep(max - min, Math.max(1, maxCount))));
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + 1e-9; v += step) {
    if (out[out.length - 1] !== v) out.push(v);
  }
  if (out.length === 0 && Math.ceil(min) <= max) out.push(Math.ceil(min));
  return out;
}

/** Compact label: `0`, `1.234`, `2e-4`, `1.5e+5`. */
export function formatCompact(v: number): string {
  if (!Number.isFinite(v)) return "";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e5) return trimExp(v.toExponential(2));
  return String(Number(v.toPrecision(4)));
}

function trimExp(s: string): string {
  // 2.00e-4 -> 2e-4, 1.50e-4 -> 1.5e-4
  return s.replace(/\.?0+e/, "e");
}

/** A learning rate: `2e-4`, `1.5e-5`, `0.01`. */
export function formatLr(v: number): string {
  if (!Number.isFinite(v)) return "";
  if (v === 0) return "0";
  if (Math.abs(v) < 0.01) return trimExp(v.toExponential(2));
  return String(Number(v.toPrecision(4)));
}

// ---------------------------------------------------------------- axes

/** A y axis: its scale and labelled ticks. */
export interface Axis {
  scale: Scale;
  ticks: { value: number; label: string }[];
}

/** A loss axis over `values` (log or linear, nice bounds), drawn on `range`. */
export function lossAxis(values: number[], log: boolean, range: [number, number]): Axis {
  if (log) {
    const ext = valueExtent(values, true);
    let [lo, hi] = ext ?? [0.1, 1];
    if (hi / lo < 1.001) {
      lo /= 1.05;
      hi *= 1.05;
    }
    const pad = Math.max(1.01, (hi / lo) ** 0.04);
    const scale = logScale([lo / pad, hi * pad], range);
    const ticks = logTicks(scale.domain[0], scale.domain[1], 6).map((value) => ({ value, label: formatCompact(value) }));
    return { scale, ticks };
  }
  const ext = valueExtent(values, false);
  let [lo, hi] = ext ?? [0, 1];
  if (hi - lo < 1e-4) {
    const mid = (lo + hi) / 2;
    lo = mid - 5e-5;
    hi = mid + 5e-5;
  }
  const domain = niceDomain(lo, hi, 5);
  const scale = linearScale(domain, range);
  const values2 = niceTicks(domain[0], domain[1], 5);
  const dp = values2.length > 1 ? decimalsFor(values2[1] - values2[0]) : 3;
  return { scale, ticks: values2.map((value) => ({ value, label: value.toFixed(Math.min(dp, 6)) })) };
}

/** A learning-rate axis from 0 (or below) to the largest value. */
export function lrAxis(values: number[], range: [number, number]): Axis {
  const ext = valueExtent(values, false);
  const hi = ext && ext[1] > 0 ? ext[1] : 1;
  const domain = niceDomain(Math.min(0, ext ? ext[0] : 0), hi, 4);
  const scale = linearScale(domain, range);
  return { scale, ticks: niceTicks(domain[0], domain[1], 4).map((value) => ({ value, label: formatLr(value) })) };
}

// ---------------------------------------------------------------- smoothing and hit-testing

/**
 * TensorBoard's debiased exponential moving average with `weight` in [0, 1). Missing
 * (non-finite) values stay missing and do not move the average. The first value is kept as is
 * and a constant series stays constant.
 */
export function ema(values: readonly (number | undefined | null)[], weight: number): (number | undefined)[] {
  const w = Math.min(Math.max(Number.isFinite(weight) ? weight : 0, 0), 0.999999);
  let last = 0;
  let n = 0;
  return values.map((v) => {
    if (!isNum(v)) return undefined;
    last = last * w + (1 - w) * v;
    n++;
    const debias = w === 0 ? 1 : 1 - w ** n;
    return last / debias;
  });
}

/** Index of the value in ascending `sorted` nearest to `target` (ties: the lower); -1 if empty. */
export function nearestIndex(sorted: readonly number[], target: number): number {
  const n = sorted.length;
  if (n === 0) return -1;
  if (!(target > sorted[0])) return 0;
  if (target >= sorted[n - 1]) return n - 1;
  let lo = 0;
  let hi = n - 1;
  // Invariant: sorted[lo] < target <= sorted[hi].
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < target) lo = mid;
    else hi = mid;
  }
  return target - sorted[lo] <= sorted[hi] - target ? lo : hi;
}

/** The x domain of the data: first to last step, at least 1 wide (centred on a lone step). */
export function stepDomain(points: readonly ChartPoint[]): [number, number] {
  if (points.length === 0) return [0, 1];
  const a = points[0].step;
  const b = points[points.length - 1].step;
  return b - a >= 1 ? [a, b] : [a - 0.5, a + 0.5];
}

/**
 * A zoom range from a drag between steps `a` and `b`: ordered, clamped into `full`; null when
 * narrower than `minSpan` (a click, or a drag outside the data).
 */
export function clampZoom(
  a: number,
  b: number,
  full: readonly [number, number],
  minSpan = 1,
): [number, number] | null {
  if (!Number.isFinite(a) || !Number.isFinite(b)) return null;
  const lo = Math.max(Math.min(a, b), full[0]);
  const hi = Math.min(Math.max(a, b), full[1]);
  if (!(hi - lo >= minSpan)) return null;
  if (lo <= full[0] && hi >= full[1]) return null; // Everything: not a zoom.
  return [lo, hi];
}

/**
 * [start, end) of the points to draw for the step range `domain`: those inside it plus one
 * neighbour on each side, so lines run to the plot's edges (the plot clips them).
 */
export function visibleRange(steps: readonly number[], domain: readonly [number, number]): [number, number] {
  let [start, end] = stepRange(steps, domain);
  if (start > 0) start--;
  if (end < steps.length) end++;
  return [start, end];
}

/** [start, end) of the ascending `steps` that lie inside `domain` (inclusive bounds). */
export function stepRange(steps: readonly number[], domain: readonly [number, number]): [number, number] {
  const start = lowerBound(steps, domain[0]);
  let end = lowerBound(steps, domain[1]);
  if (end < steps.length && steps[end] === domain[1]) end++;
  return [start, Math.max(start, end)];
}

function lowerBound(a: readonly number[], v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ---------------------------------------------------------------- paths

const f1 = (v: number) => String(Math.round(v * 10) / 10);

/** `M x y L x y …`, starting a new segment after every non-finite coordinate (a gap). */
export function linePath(xs: readonly number[], ys: readonly (number | undefined)[]): string {
  let d = "";
  let pen = false;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    const y = ys[i];
    if (!isNum(x) || !isNum(y)) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${f1(x)} ${f1(y)}`;
    pen = true;
  }
  return d;
}

/** The area between a line and `baseY`, one closed shape per unbroken segment. */
export function areaPath(xs: readonly number[], ys: readonly (number | undefined)[], baseY: number): string {
  let d = "";
  let seg: [number, number][] = [];
  const flush = () => {
    if (seg.length >= 2) {
      d += `M${f1(seg[0][0])} ${f1(baseY)}`;
      for (const [x, y] of seg) d += `L${f1(x)} ${f1(y)}`;
      d += `L${f1(seg[seg.length - 1][0])} ${f1(baseY)}Z`;
    }
    seg = [];
  };
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    const y = ys[i];
    if (isNum(x) && isNum(y)) seg.push([x, y]);
    else flush();
  }
  flush();
  return d;
}

// ---------------------------------------------------------------- text

/** `step N · loss X · eval Y · lr Z`, absent fields omitted (4 dp for losses). */
export function tooltipText(p: ChartPoint, smoothedLoss?: number): string {
  const parts = [`step ${p.step}`];
  if (isNum(p.loss)) parts.push(`loss ${p.loss.toFixed(4)}`);
  if (isNum(smoothedLoss)) parts.push(`smoothed ${smoothedLoss.toFixed(4)}`);
  if (isNum(p.evalLoss)) parts.push(`eval ${p.evalLoss.toFixed(4)}`);
  if (isNum(p.learningRate)) parts.push(`lr ${formatLr(p.learningRate)}`);
  return parts.join(" · ");
}

/** CSV with the header `step,loss,eval_loss,learning_rate`; missing values are empty cells. */
export function toCsv(points: readonly ChartPoint[]): string {
  const cell = (v: number | undefined) => (isNum(v) ? String(v) : "");
  const lines = ["step,loss,eval_loss,learning_rate"];
  for (const p of points) lines.push([String(p.step), cell(p.loss), cell(p.evalLoss), cell(p.learningRate)].join(","));
  return `${lines.join("\n")}\n`;
}

export interface SeriesStats {
  latestLoss: { step: number; value: number } | null;
  minLoss: { step: number; value: number } | null;
  latestEval: { step: number; value: number } | null;
  latestLr: { step: number; value: number } | null;
}

/** Latest and minimum training loss (the first step reaching the minimum), latest eval loss and lr. */
export function seriesStats(points: readonly ChartPoint[]): SeriesStats {
  const s: SeriesStats = { latestLoss: null, minLoss: null, latestEval: null, latestLr: null };
  for (const p of points) {
    if (isNum(p.loss)) {
      s.latestLoss = { step: p.step, value: p.loss };
      if (!s.minLoss || p.loss < s.minLoss.value) s.minLoss = { step: p.step, value: p.loss };
    }
    if (isNum(p.evalLoss)) s.latestEval = { step: p.step, value: p.evalLoss };
    if (isNum(p.learningRate)) s.latestLr = { step: p.step, value: p.learningRate };
  }
  return s;
}

/** A file name from a job name: anything but letters, digits, `.`, `_`, `-` becomes `_`. */
export function safeFileName(name: string): string {
  const s = name.trim().replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+/, "");
  return s || "job";
}
