// The runs compared on one SVG chart: training loss (solid, smoothable) and eval loss
// (dashed with dots), or the learning rate, one colour per run, aligned by step or by
// tokens seen, with hover, drag-to-zoom and a log scale for losses.

import { memo, useId, useMemo, useRef, useState } from "react";
import {
  type ChartPoint,
  ema,
  formatCompact,
  formatLr,
  integerTicks,
  linePath,
  lossAxis,
  lrAxis,
  nearestIndex,
  niceTicks,
  type Scale,
  stepRange,
  visibleRange,
} from "../lib/chart";
import { type AlignBy, alignPoints, type AlignedPoint, hasTokens, runStyle, xDomainOf } from "../lib/compare";
import { jobHref } from "../lib/route";
import { ChartGrid, SmoothingSlider, useChartWidth, useChartZoom, ZoomSelection } from "./chartParts";

export interface CompareRun {
  id: string;
  name: string;
  /** Position in the selection: picks the colour. */
  index: number;
  points: readonly ChartPoint[];
}

type Metric = "loss" | "learningRate";

const HEIGHT = 300;
const MIN_WIDTH = 320;
const PAD = { top: 16, right: 16, bottom: 28, left: 58 };

const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

interface RunGeo {
  run: CompareRun;
  aligned: AlignedPoint[];
  smoothed: (number | undefined)[] | null;
}

function CompareChartImpl({ runs }: { runs: readonly CompareRun[] }) {
  const uid = useId().replace(/[^A-Za-z0-9_-]/g, "");
  const wrapRef = useRef<HTMLDivElement>(null);
  const svgRef = useRef<SVGSVGElement>(null);
  const width = useChartWidth(wrapRef, MIN_WIDTH);
  const [metric, setMetric] = useState<Metric>("loss");
  const [by, setBy] = useState<AlignBy>("step");
  const [logY, setLogY] = useState(false);
  const [smoothing, setSmoothing] = useState(0);

  const withPoints = runs.filter((r) => r.points.length > 0);
  const noTokens = withPoints.filter((r) => !hasTokens(r.points));
  const tokensOk = withPoints.length > 0 && noTokens.length === 0;
  const alignBy: AlignBy = tokensOk ? by : "step";
  const tokensTitle = tokensOk
    ? "Align the runs by input tokens trained on"
    : withPoints.length === 0
      ? "No training points yet"
      : noTokens.length === withPoints.length
        ? "These runs don't report tokens seen (their arkor predates it)"
        : `Not every run reports tokens seen: ${noTokens.map((r) => r.name).join(", ")}`;

  const series: RunGeo[] = useMemo(
    () =>
      runs.map((run) => {
        const aligned = alignPoints(run.points, alignBy);
        return { run, aligned, smoothed: smoothing > 0 ? ema(aligned.map((p) => p.loss), smoothing) : null };
      }),
    [runs, alignBy, smoothing],
  );
  const hasPoints = series.some((s) => s.aligned.length > 0);
  const hasLr = series.some((s) => s.aligned.some((p) => isNum(p.learningRate)));

  const x0 = PAD.left;
  const x1 = width - PAD.right;
  const y0 = PAD.top;
  const y1 = HEIGHT - PAD.bottom;
  const full = useMemo(() => xDomainOf(series.map((s) => s.aligned)), [series]);
  const { zoom, setZoom, resetZoom, xDomain, xScale, drag, hoverX, handlers } = useChartZoom({
    svgRef,
    full,
    plot: { x0, x1, y0, y1 },
    enabled: hasPoints,
  });
  const switchAlign = (next: AlignBy) => {
    setBy(next);
    setZoom(null); // The x units change.
  };

  const geo = useMemo(() => {
    const xsOf = (s: RunGeo) => s.aligned.map((p) => p.x);
    // The y extent of what is inside the zoom, over every run.
    const yValues: number[] = [];
    for (const s of series) {
      const [is, ie] = stepRange(xsOf(s), xDomain);
      for (let i = is; i < ie; i++) {
        const p = s.aligned[i];
        if (metric === "learningRate") {
          if (isNum(p.learningRate)) yValues.push(p.learningRate);
          continue;
        }
        if (isNum(p.loss)) yValues.push(p.loss);
        if (isNum(p.evalLoss)) yValues.push(p.evalLoss);
        const sm = s.smoothed?.[i];
        if (isNum(sm)) yValues.push(sm);
      }
    }
    const yAxis = metric === "learningRate" ? lrAxis(yValues, [y1, y0]) : lossAxis(yValues, logY, [y1, y0]);
    const xTicks =
      alignBy === "step"
        ? integerTicks(xDomain[0], xDomain[1], Math.max(2, Math.floor((x1 - x0) / 90))).map((value) => ({ value, label: String(value) }))
        : niceTicks(xDomain[0], xDomain[1], Math.max(2, Math.floor((x1 - x0) / 110))).map((value) => ({ value, label: formatCompact(value) }));

    const lines = series.map((s) => {
      const [vs, ve] = visibleRange(xsOf(s), xDomain);
      const xy = (get: (i: number) => number | undefined, scale: Scale) => {
        const xs: number[] = [];
        const ys: number[] = [];
        for (let i = vs; i < ve; i++) {
          const y = scale.map(get(i) ?? NaN);
          if (!isNum(y)) continue;
          xs.push(xScale.map(s.aligned[i].x));
          ys.push(y);
        }
        return { xs, ys };
      };
      if (metric === "learningRate") {
        const lr = xy((i) => s.aligned[i].learningRate, yAxis.scale);
        return { run: s.run, main: linePath(lr.xs, lr.ys), raw: "", evalPath: "", evalDots: [] as [number, number][] };
      }
      const raw = xy((i) => s.aligned[i].loss, yAxis.scale);
      const main = s.smoothed ? xy((i) => s.smoothed![i], yAxis.scale) : raw;
      const ev = xy((i) => s.aligned[i].evalLoss, yAxis.scale);
      return {
        run: s.run,
        main: linePath(main.xs, main.ys),
        raw: s.smoothed ? linePath(raw.xs, raw.ys) : "",
        evalPath: linePath(ev.xs, ev.ys),
        evalDots: ev.xs.map((x, i) => [x, ev.ys[i]] as [number, number]),
      };
    });
    return { yAxis, xTicks, lines };
  }, [series, metric, logY, xDomain, xScale, alignBy, x0, x1, y0, y1]);

  // Hover: each run's point nearest the pointer's x (within the zoom).
  const hovered = useMemo(() => {
    if (hoverX === null) return [];
    return series.flatMap((s) => {
      const xs = s.aligned.map((p) => p.x);
      const [is, ie] = stepRange(xs, xDomain);
      const k = nearestIndex(xs.slice(is, ie), hoverX);
      if (k < 0) return [];
      const i = is + k;
      return [{ s, p: s.aligned[i], smoothedLoss: s.smoothed?.[i] }];
    });
  }, [hoverX, series, xDomain]);
  const hoverPx = hoverX === null ? 0 : xScale.map(hoverX);
  const tipLeft = hoverPx > width / 2;

  const xLabel = alignBy === "step" ? "Steps" : "Tokens";
  const fmtX = (v: number) => (alignBy === "step" ? String(Math.round(v)) : formatCompact(v));
  const smoothingId = `${uid}-smoothing`;
  const clipId = `${uid}-clip`;
  const metricY = (p: AlignedPoint, sm: number | undefined) =>
    metric === "learningRate" ? p.learningRate : smoothing > 0 ? sm : p.loss;

  return (
    <section className="card" aria-labelledby={`${uid}-title`}>
      <div className="card-head">
        <h2 id={`${uid}-title`}>{metric === "loss" ? "Loss curves" : "Learning rate"}</h2>
        <span className="spacer" />
        <button type="button" className="btn small" onClick={resetZoom} disabled={!zoom} aria-label="Reset zoom">
          Reset zoom
        </button>
      </div>
      <div className="card-body">
        <div className="lc-controls">
          <div className="seg" role="group" aria-label="Metric">
            <button type="button" aria-pressed={metric === "loss"} onClick={() => setMetric("loss")}>
              Loss
            </button>
            <button
              type="button"
              aria-pressed={metric === "learningRate"}
              onClick={() => setMetric("learningRate")}
              disabled={!hasLr}
              title={hasLr ? undefined : "No run reports a learning rate"}
            >
              Learning rate
            </button>
          </div>
          <div className="seg" role="group" aria-label="Align by">
            <button type="button" aria-pressed={alignBy === "step"} onClick={() => switchAlign("step")}>
              Step
            </button>
            <button
              type="button"
              aria-pressed={alignBy === "tokens"}
              onClick={() => switchAlign("tokens")}
              disabled={!tokensOk}
              title={tokensTitle}
            >
              Tokens seen
            </button>
          </div>
          <label className="lc-check">
            <input type="checkbox" checked={logY} disabled={metric !== "loss"} onChange={(e) => setLogY(e.target.checked)} />
            Log scale
          </label>
          <SmoothingSlider id={smoothingId} value={smoothing} onChange={setSmoothing} disabled={metric !== "loss"} />
          <span className="spacer" />
          {hasPoints && (
            <span className="muted lc-hint">
              {zoom ? `${xLabel} ${fmtX(zoom[0])}–${fmtX(zoom[1])}` : "Drag across the chart to zoom"}
            </span>
          )}
        </div>

        <ul className="lc-legend cmp-legend" aria-label="Runs">
          {runs.map((r) => (
            <li key={r.id} className="cmp-run" style={runStyle(r.index)} data-job-id={r.id}>
              <span className="cmp-sw" aria-hidden="true" />
              <a href={jobHref(r.id)}>{r.name}</a>
              {r.points.length === 0 && <span className="muted"> (no points yet)</span>}
            </li>
          ))}
        </ul>
        {metric === "loss" && hasPoints && (
          <ul className="lc-legend" aria-label="Line styles">
            <li>
              <span className="cmp-sw cmp-sw-key" aria-hidden="true" />
              Training loss{smoothing > 0 ? " (smoothed)" : ""}
            </li>
            <li>
              <span className="cmp-sw cmp-sw-key cmp-sw-eval" aria-hidden="true" />
              Eval loss
            </li>
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
                aria-label="Runs compared"
                data-runs={runs.length}
                data-metric={metric}
                data-align={alignBy}
                width={width}
                height={HEIGHT}
                viewBox={`0 0 ${width} ${HEIGHT}`}
                {...handlers}
              >
                <defs>
                  <clipPath id={clipId}>
                    <rect x={x0} y={y0 - 6} width={Math.max(0, x1 - x0)} height={y1 - y0 + 12} />
                  </clipPath>
                </defs>
                <rect className="lc-bg" x={0} y={0} width={width} height={HEIGHT} />
                <ChartGrid plot={{ x0, x1, y0, y1 }} yAxis={geo.yAxis} xScale={xScale} xTicks={geo.xTicks} />
                <g clipPath={`url(#${clipId})`}>
                  {geo.lines.map((l) => (
                    <g key={l.run.id} className="cmp-run" style={runStyle(l.run.index)} data-job-id={l.run.id}>
                      {l.raw && <path className="cmp-raw" d={l.raw} />}
                      {l.main && <path className="cmp-line" d={l.main} />}
                      {l.evalPath && <path className="cmp-eval" d={l.evalPath} />}
                      {l.evalDots.map(([x, y], i) => (
                        <circle key={i} className="cmp-eval-dot" cx={x} cy={y} r={2.5} />
                      ))}
                    </g>
                  ))}
                </g>
                <g pointerEvents="none">
                  <ZoomSelection drag={drag} plot={{ x0, x1, y0, y1 }} />
                  {hovered.length > 0 && (
                    <>
                      <line className="lc-guide" x1={hoverPx} x2={hoverPx} y1={y0} y2={y1} />
                      {hovered.map(({ s, p, smoothedLoss }) => {
                        const y = geo.yAxis.scale.map(metricY(p, smoothedLoss) ?? NaN);
                        return isNum(y) ? (
                          <circle
                            key={s.run.id}
                            className="cmp-run cmp-marker"
                            style={runStyle(s.run.index)}
                            cx={xScale.map(p.x)}
                            cy={y}
                            r={4}
                          />
                        ) : null;
                      })}
                    </>
                  )}
                </g>
              </svg>
              {hovered.length > 0 && !drag && (
                <div
                  className="lc-tooltip cmp-tooltip"
                  style={{ top: PAD.top + 4, left: tipLeft ? undefined : hoverPx + 12, right: tipLeft ? width - hoverPx + 12 : undefined }}
                >
                  {hovered.map(({ s, p, smoothedLoss }) => (
                    <div key={s.run.id} className="cmp-run" style={runStyle(s.run.index)}>
                      <span className="cmp-sw" aria-hidden="true" /> {s.run.name} · {tipText(p, alignBy, metric, smoothedLoss)}
                    </div>
                  ))}
                </div>
              )}
            </>
          )}
        </div>
      </div>
    </section>
  );
}

function tipText(p: AlignedPoint, by: AlignBy, metric: Metric, smoothedLoss: number | undefined): string {
  const parts = [`step ${p.step}`];
  if (by === "tokens") parts.push(`${formatCompact(p.x)} tokens`);
  if (metric === "learningRate") {
    if (isNum(p.learningRate)) parts.push(`lr ${formatLr(p.learningRate)}`);
    return parts.join(" · ");
  }
  if (isNum(p.loss)) parts.push(`loss ${p.loss.toFixed(4)}`);
  if (isNum(smoothedLoss)) parts.push(`smoothed ${smoothedLoss.toFixed(4)}`);
  if (isNum(p.evalLoss)) parts.push(`eval ${p.evalLoss.toFixed(4)}`);
  return parts.join(" · ");
}

export const CompareChart = memo(CompareChartImpl);
