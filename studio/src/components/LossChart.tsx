// The "Loss curve" card: a hand-written SVG chart of training loss, eval loss and learning
// rate with hover, drag-to-zoom, log scale, smoothing, and PNG/CSV export.

import { memo, useId, useMemo, useRef, useState } from "react";
import { saveBlob } from "../lib/api";
import {
  areaPath,
  type ChartPoint,
  ema,
  linearScale,
  linePath,
  integerTicks,
  lossAxis,
  lrAxis,
  nearestIndex,
  safeFileName,
  type Scale,
  seriesStats,
  stepDomain,
  stepRange,
  toCsv,
  tooltipText,
  visibleRange,
} from "../lib/chart";
import { ChartGrid, SmoothingSlider, useChartWidth, useChartZoom, ZoomSelection } from "./chartParts";
import { errorMessage, formatNumber } from "../lib/format";

export interface LossChartProps {
  points: readonly ChartPoint[];
  /** The job's name, for export file names. */
  name: string;
  /** Step progress for the stats line. */
  progress?: { step: number; totalSteps: number | null } | null;
  /** Evaluation scores (0-100) drawn as markers on a percentage scale. */
  scores?: readonly { step: number; pct: number; label: string }[];
}

const HEIGHT = 260;
const MIN_WIDTH = 320;
const PAD = { top: 16, right: 16, bottom: 28, left: 52 };
const LR_PAD_RIGHT = 58;

const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** Inlines computed styles so the SVG renders the same outside the page (theme colours included). */
const INLINE_PROPS = [
  "fill",
  "fill-opacity",
  "stroke",
  "stroke-width",
  "stroke-dasharray",
  "stroke-opacity",
  "stroke-linejoin",
  "stroke-linecap",
  "opacity",
  "stop-color",
  "stop-opacity",
  "font-family",
  "font-size",
  "font-weight",
  "text-anchor",
  "dominant-baseline",
  "visibility",
];

interface LegendItem {
  label: string;
  /** A CSS custom property holding the colour, e.g. `--accent`. */
  colorVar: string;
  dash?: number[];
  lineWidth: number;
}

const HEADER_PX = 30;

/** The chart as a 2x PNG: a header row (title and legend) above the SVG drawn on a canvas. */
async function svgToPngBlob(
  svg: SVGSVGElement,
  width: number,
  height: number,
  title: string,
  legend: LegendItem[],
): Promise<Blob> {
  const clone = svg.cloneNode(true) as SVGSVGElement;
  const src = [svg, ...Array.from(svg.querySelectorAll("*"))];
  const dst = [clone, ...Array.from(clone.querySelectorAll("*"))];
  src.forEach((el, i) => {
    const cs = getComputedStyle(el);
    const style = INLINE_PROPS.map((p) => {
      const v = cs.getPropertyValue(p);
      return v ? `${p}:${v}` : "";
    })
      .filter(Boolean)
      .join(";");
    dst[i]?.setAttribute("style", style);
  });
  clone.querySelectorAll("[data-export='skip']").forEach((n) => n.remove());
  clone.setAttribute("xmlns", "http://www.w3.org/2000/svg");
  clone.setAttribute("width", String(width));
  clone.setAttribute("height", String(height));
  const text = new XMLSerializer().serializeToString(clone);
  const img = new Image();
  img.width = width;
  img.height = height;
  img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(text)}`;
  await img.decode();
  const rootStyle = getComputedStyle(svg);
  const cssVar = (name: string, fallback: string) => rootStyle.getPropertyValue(name).trim() || fallback;
  const font = cssVar("--sans", "sans-serif");
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("Canvas is not available");
  // Lay out the header first (title, then legend items, wrapping to new rows), then size the canvas.
  const rowH = 20;
  const left = 12;
  const maxX = width - 12;
  ctx.font = `600 13px ${font}`;
  const titleW = ctx.measureText(title).width;
  ctx.font = `12px ${font}`;
  const placed: { item: LegendItem; x: number; row: number }[] = [];
  let x = left + titleW + 20;
  let row = 0;
  for (const item of legend) {
    const w = 24 + ctx.measureText(item.label).width;
    if (x + w > maxX && x > left) {
      row++;
      x = left;
    }
    placed.push({ item, x, row });
    x += w + 16;
  }
  const header = Math.max(HEADER_PX, (row + 1) * rowH + 10);
  canvas.width = width * 2;
  canvas.height = (height + header) * 2;
  ctx.scale(2, 2);
  ctx.fillStyle = cssVar("--surface", "#ffffff");
  ctx.fillRect(0, 0, width, height + header);
  ctx.textBaseline = "middle";
  const rowY = (r: number) => 8 + r * rowH + rowH / 2;
  ctx.fillStyle = cssVar("--text", "#16181d");
  ctx.font = `600 13px ${font}`;
  ctx.fillText(title, left, rowY(0));
  ctx.font = `12px ${font}`;
  for (const { item, x: ix, row: r } of placed) {
    const y = rowY(r);
    ctx.strokeStyle = cssVar(item.colorVar, "#888888");
    ctx.lineWidth = item.lineWidth;
    ctx.setLineDash(item.dash ?? []);
    ctx.beginPath();
    ctx.moveTo(ix, y);
    ctx.lineTo(ix + 18, y);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = cssVar("--muted", "#5d6673");
    ctx.fillText(item.label, ix + 24, y);
  }
  ctx.drawImage(img, 0, header, width, height);
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("Could not encode the PNG"))), "image/png"),
  );
}

const NO_SCORES: NonNullable<LossChartProps["scores"]> = [];

function LossChartImpl({ points, name, progress, scores = NO_SCORES }: LossChartProps) {
  const uid = useId().replace(/[^A-Za-z0-9_-]/g, "");
  const wrapRef = useRef<HTMLDivElement>(null);
  const svgRef = useRef<SVGSVGElement>(null);
  const width = useChartWidth(wrapRef, MIN_WIDTH);
  const [logY, setLogY] = useState(false);
  const [smoothing, setSmoothing] = useState(0);
  const [showLr, setShowLr] = useState(true);
  const [exportError, setExportError] = useState<string | null>(null);
  const [exporting, setExporting] = useState(false);

  const hasPoints = points.length > 0;
  const hasLoss = useMemo(() => points.some((p) => isNum(p.loss)), [points]);
  const hasEval = useMemo(() => points.some((p) => isNum(p.evalLoss)), [points]);
  const hasLr = useMemo(() => points.some((p) => isNum(p.learningRate)), [points]);
  const lrOn = showLr && hasLr;
  const hasScores = scores.length > 0;
  // The right axis: the learning rate when shown, else the scores' percentages.
  const pctTicks = hasScores && !lrOn;
  const steps = useMemo(() => points.map((p) => p.step), [points]);
  const smoothed = useMemo(
    () => (smoothing > 0 ? ema(points.map((p) => p.loss), smoothing) : null),
    [points, smoothing],
  );

  const x0 = PAD.left;
  const x1 = width - (lrOn || pctTicks ? LR_PAD_RIGHT : PAD.right);
  const y0 = PAD.top;
  const y1 = HEIGHT - PAD.bottom;

  const full = useMemo(() => stepDomain(points), [points]);
  const { zoom, resetZoom, xDomain, xScale, drag, hoverX: hoverStep, handlers } = useChartZoom({
    svgRef,
    full,
    plot: { x0, x1, y0, y1 },
    enabled: hasPoints,
  });

  const geo = useMemo(() => {
    const [vs, ve] = visibleRange(steps, xDomain);
    let [is, ie] = stepRange(steps, xDomain);
    if (ie <= is) [is, ie] = [vs, ve];
    const inside = points.slice(is, ie);
    const yValues: number[] = [];
    for (let i = is; i < ie; i++) {
      const p = points[i];
      if (isNum(p.loss)) yValues.push(p.loss);
      if (isNum(p.evalLoss)) yValues.push(p.evalLoss);
      const s = smoothed?.[i];
      if (isNum(s)) yValues.push(s);
    }
    const yAxis = lossAxis(yValues, logY, [y1, y0]);
    const lr = lrOn ? lrAxis(inside.map((p) => p.learningRate).filter(isNum), [y1, y0]) : null;
    const xTicks = integerTicks(xDomain[0], xDomain[1], Math.max(2, Math.floor((x1 - x0) / 90))).map((value) => ({
      value,
      label: String(value),
    }));

    const seriesXY = (get: (i: number) => number | undefined, scale: Scale) => {
      const xs: number[] = [];
      const ys: number[] = [];
      for (let i = vs; i < ve; i++) {
        const v = get(i);
        if (!isNum(v)) continue;
        const y = scale.map(v);
        if (!isNum(y)) continue; // e.g. <= 0 on a log axis
        xs.push(xScale.map(points[i].step));
        ys.push(y);
      }
      return { xs, ys };
    };
    const raw = seriesXY((i) => points[i].loss, yAxis.scale);
    const main = smoothed ? seriesXY((i) => smoothed[i], yAxis.scale) : raw;
    const ev = seriesXY((i) => points[i].evalLoss, yAxis.scale);
    const lrXY = lr ? seriesXY((i) => points[i].learningRate, lr.scale) : null;
    const pctScale = linearScale([0, 100], [y1, y0]);
    return {
      xScale,
      yAxis,
      lr,
      xTicks,
      insideRange: [is, ie] as [number, number],
      rawPath: linePath(raw.xs, raw.ys),
      mainPath: linePath(main.xs, main.ys),
      areaPath: areaPath(main.xs, main.ys, y1),
      evalPath: linePath(ev.xs, ev.ys),
      evalDots: ev.xs.map((x, i) => [x, ev.ys[i]] as [number, number]),
      lrPath: lrXY ? linePath(lrXY.xs, lrXY.ys) : "",
      pctScale,
      scoreDots: scores.map((p) => ({ ...p, x: xScale.map(p.step), y: pctScale.map(p.pct) })),
    };
    // xDomain is derived from xScale.
  }, [points, steps, smoothed, logY, lrOn, xScale, x0, x1, y0, y1, scores]);

  const hoverIdx = useMemo(() => {
    if (hoverStep === null) return -1;
    const [is, ie] = geo.insideRange;
    const local = nearestIndex(steps.slice(is, ie), hoverStep);
    return local < 0 ? -1 : is + local;
  }, [hoverStep, steps, geo.insideRange]);
  const hovered = hoverIdx >= 0 ? points[hoverIdx] : null;

  const exportPng = async () => {
    const svg = svgRef.current;
    if (!svg) return;
    setExportError(null);
    setExporting(true);
    try {
      const legend: LegendItem[] = [];
      if (hasLoss)
        legend.push({ label: smoothing > 0 ? "Training loss (smoothed)" : "Training loss", colorVar: "--accent", lineWidth: 2 });
      if (hasEval) legend.push({ label: "Eval loss", colorVar: "--pink", lineWidth: 2, dash: [5, 4] });
      if (lrOn) legend.push({ label: "Learning rate (right axis)", colorVar: "--muted", lineWidth: 1 });
      if (hasScores)
        legend.push({ label: `Evaluation score (%${pctTicks ? ", right axis" : ""})`, colorVar: "--green", lineWidth: 4, dash: [4, 14] });
      const blob = await svgToPngBlob(svg, width, HEIGHT, `${name} · loss${logY ? " (log scale)" : ""}`, legend);
      saveBlob(blob, `${safeFileName(name)}-loss.png`);
    } catch (e) {
      setExportError(`PNG export failed: ${errorMessage(e)}`);
    } finally {
      setExporting(false);
    }
  };
  const exportCsv = () => {
    setExportError(null);
    saveBlob(new Blob([toCsv(points)], { type: "text/csv;charset=utf-8" }), `${safeFileName(name)}-loss.csv`);
  };

  const stats = useMemo(() => seriesStats(points), [points]);
  const smoothingId = `${uid}-smoothing`;
  const gradId = `${uid}-area`;
  const clipId = `${uid}-clip`;

  const hoverX = hovered ? geo.xScale.map(hovered.step) : 0;
  const markerY = (v: number | undefined, s: Scale | undefined) => (s && isNum(v) ? s.map(v) : NaN);
  const hoverLossY = hovered
    ? markerY(smoothed ? smoothed[hoverIdx] : hovered.loss, geo.yAxis.scale)
    : NaN;
  const hoverEvalY = hovered ? markerY(hovered.evalLoss, geo.yAxis.scale) : NaN;
  const hoverLrY = hovered && geo.lr ? markerY(hovered.learningRate, geo.lr.scale) : NaN;
  const tipLeft = hoverX > width / 2;

  const pct =
    progress && progress.totalSteps ? Math.min(100, Math.max(0, (progress.step / progress.totalSteps) * 100)) : null;

  return (
    <section className="card" aria-labelledby={`${uid}-title`}>
      <div className="card-head">
        <h2 id={`${uid}-title`}>Loss curve</h2>
        <span className="spacer" />
        <button type="button" className="btn small" onClick={resetZoom} disabled={!zoom} aria-label="Reset zoom">
          Reset zoom
        </button>
        <button type="button" className="btn small" onClick={() => void exportPng()} disabled={!hasPoints || exporting}>
          Export PNG
        </button>
        <button type="button" className="btn small" onClick={exportCsv} disabled={!hasPoints}>
          Export CSV
        </button>
      </div>
      <div className="card-body">
        <div className="lc-controls">
          <label className="lc-check">
            <input type="checkbox" checked={logY} onChange={(e) => setLogY(e.target.checked)} />
            Log scale
          </label>
          <SmoothingSlider id={smoothingId} value={smoothing} onChange={setSmoothing} />
          <label className="lc-check">
            <input type="checkbox" checked={showLr} disabled={!hasLr} onChange={(e) => setShowLr(e.target.checked)} />
            Learning rate
          </label>
          <span className="spacer" />
          {hasPoints && (
            <span className="muted lc-hint">
              {zoom
                ? `Steps ${Math.round(zoom[0])}–${Math.round(zoom[1])}`
                : "Drag across the chart to zoom"}
            </span>
          )}
        </div>

        {hasPoints && (
          <ul className="lc-legend" aria-label="Legend">
            {hasLoss && (
              <li>
                <span className="lc-sw lc-sw-loss" aria-hidden="true" />
                Training loss{smoothing > 0 ? " (smoothed)" : ""}
              </li>
            )}
            {hasEval && (
              <li>
                <span className="lc-sw lc-sw-eval" aria-hidden="true" />
                Eval loss
              </li>
            )}
            {lrOn && (
              <li>
                <span className="lc-sw lc-sw-lr" aria-hidden="true" />
                Learning rate (right axis)
              </li>
            )}
            {hasScores && (
              <li>
                <span className="lc-sw-score" aria-hidden="true" />
                Evaluation score (%{pctTicks ? ", right axis" : ""})
              </li>
            )}
          </ul>
        )}

        <div className="lc-wrap" ref={wrapRef}>
          {!hasPoints ? (
            <div className="lc-empty" style={{ height: HEIGHT }}>
              Waiting for training.log events…
            </div>
          ) : (
            <>
              <svg
                ref={svgRef}
                className="lc-svg"
                role="img"
                aria-label="Loss curve"
                data-points={points.length}
                data-scores={scores.length}
                width={width}
                height={HEIGHT}
                viewBox={`0 0 ${width} ${HEIGHT}`}
                {...handlers}
              >
                <defs>
                  <linearGradient id={gradId} x1="0" y1="0" x2="0" y2="1">
                    <stop offset="0%" className="lc-stop" stopOpacity={0.28} />
                    <stop offset="100%" className="lc-stop" stopOpacity={0} />
                  </linearGradient>
                  <clipPath id={clipId}>
                    <rect x={x0} y={y0 - 6} width={Math.max(0, x1 - x0)} height={y1 - y0 + 12} />
                  </clipPath>
                </defs>
                <rect className="lc-bg" x={0} y={0} width={width} height={HEIGHT} />

                <ChartGrid plot={{ x0, x1, y0, y1 }} yAxis={geo.yAxis} xScale={geo.xScale} xTicks={geo.xTicks}>
                  {geo.lr?.ticks.map((t) => {
                    const y = geo.lr!.scale.map(t.value);
                    return (
                      <text
                        key={`lr${t.value}`}
                        className="lc-tick lc-tick-lr"
                        x={x1 + 6}
                        y={y}
                        textAnchor="start"
                        dominantBaseline="middle"
                      >
                        {t.label}
                      </text>
                    );
                  })}
                  {pctTicks &&
                    [0, 25, 50, 75, 100].map((v) => (
                      <text
                        key={`pct${v}`}
                        className="lc-tick lc-tick-lr"
                        x={x1 + 6}
                        y={geo.pctScale.map(v)}
                        textAnchor="start"
                        dominantBaseline="middle"
                      >
                        {v}%
                      </text>
                    ))}
                </ChartGrid>

                <g clipPath={`url(#${clipId})`}>
                  {geo.lrPath && <path className="lc-lr" d={geo.lrPath} />}
                  {geo.areaPath && <path className="lc-area" d={geo.areaPath} fill={`url(#${gradId})`} />}
                  {smoothed && geo.rawPath && <path className="lc-loss-raw" d={geo.rawPath} />}
                  {geo.mainPath && <path className="lc-loss" d={geo.mainPath} />}
                  {geo.evalPath && <path className="lc-eval" d={geo.evalPath} />}
                  {geo.evalDots.map(([x, y], i) => (
                    <circle key={`e${i}`} className="lc-eval-dot" cx={x} cy={y} r={2.5} />
                  ))}
                  {geo.scoreDots.map((d) => (
                    <g key={`s${d.step}`} className="lc-score">
                      <circle className="lc-score-dot" cx={d.x} cy={d.y} r={4.5}>
                        <title>{`step ${d.step} · ${d.label}`}</title>
                      </circle>
                      <text
                        className="lc-score-label"
                        x={d.x}
                        y={d.pct > 85 ? d.y + 14 : d.y - 8}
                        textAnchor={d.x > x1 - 20 ? "end" : d.x < x0 + 20 ? "start" : "middle"}
                      >
                        {`${Math.round(d.pct)}%`}
                      </text>
                    </g>
                  ))}
                </g>

                <g data-export="skip" pointerEvents="none">
                  <ZoomSelection drag={drag} plot={{ x0, x1, y0, y1 }} />
                  {hovered && (
                    <>
                      <line className="lc-guide" x1={hoverX} x2={hoverX} y1={y0} y2={y1} />
                      {isNum(hoverLrY) && <circle className="lc-marker lc-marker-lr" cx={hoverX} cy={hoverLrY} r={3.5} />}
                      {isNum(hoverLossY) && (
                        <circle className="lc-marker lc-marker-loss" cx={hoverX} cy={hoverLossY} r={4} />
                      )}
                      {isNum(hoverEvalY) && (
                        <circle className="lc-marker lc-marker-eval" cx={hoverX} cy={hoverEvalY} r={4} />
                      )}
                    </>
                  )}
                </g>
              </svg>
              {hovered && !drag && (
                <div
                  className="lc-tooltip"
                  style={{
                    top: PAD.top + 4,
                    left: tipLeft ? undefined : hoverX + 12,
                    right: tipLeft ? width - hoverX + 12 : undefined,
                  }}
                >
                  {tooltipText(hovered, smoothed ? smoothed[hoverIdx] : undefined)}
                </div>
              )}
            </>
          )}
        </div>

        {exportError && (
          <p className="notice error lc-notice" role="alert">
            {exportError}
          </p>
        )}

        <div className="lc-stats" aria-label="Training summary">
          <span>
            <span className="muted">Latest loss</span>{" "}
            <strong className="mono">{stats.latestLoss ? formatNumber(stats.latestLoss.value) : "N/A"}</strong>
          </span>
          <span>
            <span className="muted">Min loss</span>{" "}
            <strong className="mono">{stats.minLoss ? formatNumber(stats.minLoss.value) : "N/A"}</strong>
            {stats.minLoss && <span className="muted"> at step {stats.minLoss.step}</span>}
          </span>
          <span>
            <span className="muted">Latest eval loss</span>{" "}
            <strong className="mono">{stats.latestEval ? formatNumber(stats.latestEval.value) : "N/A"}</strong>
          </span>
          {progress && (
            <span className="lc-progress">
              <span className="muted">Step</span>{" "}
              <strong className="mono">
                {progress.step}
                {progress.totalSteps ? ` / ${progress.totalSteps}` : ""}
              </strong>
              {pct !== null && (
                <span
                  className="lc-bar"
                  role="progressbar"
                  aria-label="Training progress"
                  aria-valuemin={0}
                  aria-valuemax={progress.totalSteps ?? undefined}
                  aria-valuenow={Math.min(progress.step, progress.totalSteps ?? progress.step)}
                >
                  <span style={{ width: `${pct}%` }} />
                </span>
              )}
            </span>
          )}
        </div>
      </div>
    </section>
  );
}

export const LossChart = memo(LossChartImpl);
