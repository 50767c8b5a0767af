// What the SVG charts (a job's loss curve, the runs compared) share: a responsive width,
// drag-to-zoom with a hover position over the x axis, the grid and ticks, the zoom
// selection and the smoothing slider. The series themselves are drawn by each chart.

import { type ReactNode, type RefObject, useCallback, useLayoutEffect, useMemo, useState } from "react";
import { type Axis, clampZoom, linearScale, type Scale } from "../lib/chart";

/** Pixels a drag must cover to count as a zoom selection. */
const DRAG_MIN_PX = 4;

/** The element's width (at least `min`), followed with a ResizeObserver. */
export function useChartWidth(ref: RefObject<HTMLElement | null>, min: number, fallback = 640): number {
  const [width, setWidth] = useState(fallback);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    const measure = (w: number) => setWidth(Math.max(min, Math.floor(w)));
    measure(el.clientWidth || fallback);
    if (typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver((entries) => {
      const w = entries[0]?.contentRect.width;
      if (w) measure(w);
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, [ref, min, fallback]);
  return width;
}

export interface ChartZoomOptions {
  svgRef: RefObject<SVGSVGElement | null>;
  /** The data's x extent (the unzoomed domain). */
  full: [number, number];
  /** The plot area in pixels. */
  plot: { x0: number; x1: number; y0: number; y1: number };
  /** False while there is nothing to zoom into. */
  enabled: boolean;
  /** The narrowest zoom, in x units. */
  minSpan?: number;
}

/**
 * Zoom state and pointer handlers: drag across the plot to zoom to that x range, double-click
 * (or `resetZoom`) to go back. `hoverX` is the x value under the pointer, or null.
 */
export function useChartZoom({ svgRef, full, plot, enabled, minSpan = 1 }: ChartZoomOptions) {
  const { x0, x1, y0, y1 } = plot;
  const [zoom, setZoom] = useState<[number, number] | null>(null);
  const [drag, setDrag] = useState<{ a: number; b: number } | null>(null);
  const [hoverX, setHoverX] = useState<number | null>(null);
  const xDomain: [number, number] = zoom ?? full;
  const [d0, d1] = xDomain;
  const xScale: Scale = useMemo(() => linearScale([d0, d1], [x0, x1]), [d0, d1, x0, x1]);
  const resetZoom = useCallback(() => setZoom(null), []);

  const localXY = (e: React.PointerEvent | React.MouseEvent) => {
    const r = svgRef.current!.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  };
  const clampX = (x: number) => Math.min(Math.max(x, x0), x1);

  const handlers = {
    onPointerDown(e: React.PointerEvent<SVGSVGElement>) {
      if (e.button !== 0 || !enabled) return;
      const { x, y } = localXY(e);
      if (x < x0 || x > x1 || y < y0 || y > y1) return;
      e.preventDefault();
      try {
        e.currentTarget.setPointerCapture(e.pointerId);
      } catch {
        // Synthetic pointer: no capture.
      }
      setDrag({ a: x, b: x });
    },
    onPointerMove(e: React.PointerEvent<SVGSVGElement>) {
      if (!enabled) return;
      const { x } = localXY(e);
      if (drag) setDrag({ a: drag.a, b: clampX(x) });
      if (x < x0 - 8 || x > x1 + 8) {
        if (!drag) setHoverX(null);
        return;
      }
      setHoverX(xScale.invert(clampX(x)));
    },
    onPointerUp(e: React.PointerEvent<SVGSVGElement>) {
      if (!drag) return;
      const b = clampX(localXY(e).x);
      setDrag(null);
      try {
        e.currentTarget.releasePointerCapture(e.pointerId);
      } catch {
        // Not captured.
      }
      if (Math.abs(b - drag.a) < DRAG_MIN_PX) return;
      const z = clampZoom(xScale.invert(drag.a), xScale.invert(b), full, minSpan);
      if (z) setZoom(z);
    },
    onPointerCancel() {
      setDrag(null);
    },
    onPointerLeave() {
      if (!drag) setHoverX(null);
    },
    onDoubleClick: resetZoom,
  };

  return { zoom, setZoom, resetZoom, xDomain, xScale, drag, hoverX, handlers };
}

interface Plot {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

/** Left-axis grid lines and labels, the bottom axis with its ticks; `children` adds right-axis labels. */
export function ChartGrid({
  plot,
  yAxis,
  xScale,
  xTicks,
  children,
}: {
  plot: Plot;
  yAxis: Axis;
  xScale: Scale;
  xTicks: readonly { value: number; label: string }[];
  children?: ReactNode;
}) {
  const { x0, x1, y1 } = plot;
  return (
    <g className="lc-grid-layer">
      {yAxis.ticks.map((t) => {
        const y = yAxis.scale.map(t.value);
        if (!Number.isFinite(y)) return null;
        return (
          <g key={`y${t.value}`}>
            <line className="lc-grid" x1={x0} x2={x1} y1={y} y2={y} />
            <text className="lc-tick" x={x0 - 6} y={y} textAnchor="end" dominantBaseline="middle">
              {t.label}
            </text>
          </g>
        );
      })}
      {children}
      <line className="lc-axis" x1={x0} x2={x1} y1={y1} y2={y1} />
      {xTicks.map((t) => {
        const x = xScale.map(t.value);
        return (
          <g key={`x${t.value}`}>
            <line className="lc-axis" x1={x} x2={x} y1={y1} y2={y1 + 4} />
            <text className="lc-tick" x={x} y={y1 + 16} textAnchor="middle">
              {t.label}
            </text>
          </g>
        );
      })}
    </g>
  );
}

/** The band being dragged across. */
export function ZoomSelection({ drag, plot }: { drag: { a: number; b: number } | null; plot: Plot }) {
  if (!drag || Math.abs(drag.b - drag.a) === 0) return null;
  return (
    <rect
      className="lc-sel"
      data-testid="zoom-selection"
      x={Math.min(drag.a, drag.b)}
      y={plot.y0}
      width={Math.abs(drag.b - drag.a)}
      height={plot.y1 - plot.y0}
    />
  );
}

/** The EMA weight slider (0 to 0.99) with its value. */
export function SmoothingSlider({
  id,
  value,
  onChange,
  disabled,
}: {
  id: string;
  value: number;
  onChange: (v: number) => void;
  disabled?: boolean;
}) {
  return (
    <span className="lc-range">
      <label htmlFor={id}>Smoothing</label>
      <input
        id={id}
        type="range"
        min={0}
        max={0.99}
        step={0.01}
        value={value}
        disabled={disabled}
        onChange={(e) => onChange(Number(e.target.value))}
        aria-valuetext={value.toFixed(2)}
      />
      <output htmlFor={id} className="mono">
        {value.toFixed(2)}
      </output>
    </span>
  );
}
