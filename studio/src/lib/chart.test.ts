import { describe, expect, it } from "vitest";
import {
  areaPath,
  clampZoom,
  cleanPoint,
  decimalsFor,
  ema,
  formatCompact,
  formatLr,
  integerTicks,
  linearScale,
  linePath,
  logScale,
  logTicks,
  lossAxis,
  lrAxis,
  mergePoints,
  nearestIndex,
  niceDomain,
  niceStep,
  niceTicks,
  safeFileName,
  seriesStats,
  stepDomain,
  stepRange,
  toCsv,
  tooltipText,
  valueExtent,
  visibleRange,
} from "./chart";

describe("mergePoints", () => {
  it("unions by step, later frames win per field, sorted", () => {
    const a = mergePoints([], [{ step: 2, loss: 1 }, { step: 1, loss: 2 }]);
    expect(a).toEqual([
      { step: 1, loss: 2 },
      { step: 2, loss: 1 },
    ]);
    const b = mergePoints(a, [{ step: 2, evalLoss: 0.5 }, { step: 1, loss: 3 }]);
    expect(b).toEqual([
      { step: 1, loss: 3 },
      { step: 2, loss: 1, evalLoss: 0.5 },
    ]);
  });

  it("does not let a missing or non-finite field erase an existing one", () => {
    const a = mergePoints([], [{ step: 5, loss: 1, learningRate: 1e-4 }]);
    const b = mergePoints(a, [{ step: 5, loss: Number.NaN, evalLoss: 2 }]);
    expect(b).toEqual([{ step: 5, loss: 1, learningRate: 1e-4, evalLoss: 2 }]);
  });

  it("appends past the end and keeps the input untouched", () => {
    const a = mergePoints([], [{ step: 1, loss: 1 }]);
    const b = mergePoints(a, [{ step: 2, loss: 0.9 }]);
    expect(a).toHaveLength(1);
    expect(b.map((p) => p.step)).toEqual([1, 2]);
  });

  it("drops points without a finite step or any finite value", () => {
    expect(mergePoints([], [{ step: Number.NaN, loss: 1 }, { step: 3 }, { step: 4, loss: Infinity }])).toEqual([]);
    expect(cleanPoint({ step: 1, loss: 2, evalLoss: undefined })).toEqual({ step: 1, loss: 2 });
  });

  it("keeps only the latest `cap` steps", () => {
    let pts = mergePoints([], []);
    for (let s = 1; s <= 30; s++) pts = mergePoints(pts, [{ step: s, loss: 1 / s }], 10);
    expect(pts).toHaveLength(10);
    expect(pts[0].step).toBe(21);
    expect(pts[9].step).toBe(30);
    const bulk = mergePoints(
      [],
      Array.from({ length: 2500 }, (_, i) => ({ step: 2500 - i, loss: 1 })),
    );
    expect(bulk).toHaveLength(2000);
    expect(bulk[0].step).toBe(501);
    expect(bulk[1999].step).toBe(2500);
  });
});

describe("scales", () => {
  it("linear maps domain to range and back (inverted y range)", () => {
    const s = linearScale([0, 10], [200, 0]);
    expect(s.map(0)).toBe(200);
    expect(s.map(10)).toBe(0);
    expect(s.map(2.5)).toBe(150);
    expect(s.invert(150)).toBeCloseTo(2.5);
    expect(s.map(Number.NaN)).toBeNaN();
  });

  it("log maps decades evenly and rejects non-positive values", () => {
    const s = logScale([0.01, 10], [300, 0]);
    expect(s.map(0.01)).toBeCloseTo(300);
    expect(s.map(0.1)).toBeCloseTo(200);
    expect(s.map(1)).toBeCloseTo(100);
    expect(s.map(10)).toBeCloseTo(0);
    expect(s.map(0)).toBeNaN();
    expect(s.map(-1)).toBeNaN();
    expect(s.invert(100)).toBeCloseTo(1);
  });

  it("valueExtent ignores non-finite values, and non-positive ones on log", () => {
    expect(valueExtent([3, undefined, -1, Number.NaN, 2])).toEqual([-1, 3]);
    expect(valueExtent([3, 0, -1, 0.5], true)).toEqual([0.5, 3]);
    expect(valueExtent([0, -2], true)).toBeNull();
    expect(valueExtent([])).toBeNull();
  });
});

describe("ticks", () => {
  it("niceStep picks 1/2/5 multiples", () => {
    expect(niceStep(1, 5)).toBe(0.2);
    expect(niceStep(10, 5)).toBe(2);
    expect(niceStep(0.37, 5)).toBe(0.1); // 0.074 rounds up to 0.1
    expect(niceStep(0.3, 5)).toBe(0.05);
    expect(niceStep(1000, 4)).toBe(200);
  });

  it("niceTicks are readable and lie inside the domain", () => {
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0.13, 0.5, 5)).toEqual([0.2, 0.3, 0.4, 0.5]);
    expect(niceTicks(0.12, 0.42, 5)).toEqual([0.15, 0.2, 0.25, 0.3, 0.35, 0.4]);
    for (const t of niceTicks(1.234, 2.987, 5)) {
      expect(t).toBeGreaterThanOrEqual(1.234);
      expect(t).toBeLessThanOrEqual(2.987);
      expect(String(t).length).toBeLessThanOrEqual(4); // no float noise like 1.4000000000000001
    }
    expect(niceTicks(3, 3)).toEqual([3]);
  });

  it("niceDomain widens to tick multiples, so ticks cover the data", () => {
    const [lo, hi] = niceDomain(0.13, 0.97, 5);
    expect(lo).toBe(0);
    expect(hi).toBe(1);
    const ticks = niceTicks(lo, hi, 5);
    expect(ticks[0]).toBeLessThanOrEqual(0.13);
    expect(ticks[ticks.length - 1]).toBeGreaterThanOrEqual(0.97);
  });

  it("decimalsFor gives enough decimals", () => {
    expect(decimalsFor(0.05)).toBe(2);
    expect(decimalsFor(0.2)).toBe(1);
    expect(decimalsFor(0.1)).toBe(1);
    expect(decimalsFor(5)).toBe(0);
    expect(decimalsFor(0.0001)).toBe(4);
  });

  it("logTicks uses 1-2-5 within a few decades and stays in range", () => {
    expect(logTicks(0.01, 1, 8)).toEqual([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1]);
    expect(logTicks(0.01, 1, 6)).toEqual([0.01, 0.1, 1]);
    expect(logTicks(0.15, 3, 6)).toEqual([0.2, 0.5, 1, 2]);
    const wide = logTicks(1e-6, 10, 6);
    expect(wide.every((v) => Math.log10(v) % 1 === 0)).toBe(true);
    expect(wide.length).toBeLessThanOrEqual(6);
    const narrow = logTicks(0.5, 0.9);
    expect(narrow.length).toBeGreaterThanOrEqual(2);
    expect(narrow.every((v) => v >= 0.5 && v <= 0.9)).toBe(true);
  });

  it("integerTicks are de-duplicated whole steps", () => {
    expect(integerTicks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(integerTicks(1, 3, 6)).toEqual([1, 2, 3]);
    expect(integerTicks(9.5, 10.5, 6)).toEqual([10]);
    const t = integerTicks(1, 1000, 6);
    expect(new Set(t).size).toBe(t.length);
    expect(t.every(Number.isInteger)).toBe(true);
    expect(t.length).toBeLessThanOrEqual(8);
  });

  it("formats labels compactly", () => {
    expect(formatCompact(0.0002)).toBe("2e-4");
    expect(formatCompact(1.23456)).toBe("1.235");
    expect(formatCompact(0)).toBe("0");
    expect(formatLr(0.0002)).toBe("2e-4");
    expect(formatLr(0.000015)).toBe("1.5e-5");
    expect(formatLr(0.05)).toBe("0.05");
  });
});

describe("ema", () => {
  it("is debiased: the first value is kept", () => {
    expect(ema([4, 2], 0.9)[0]).toBeCloseTo(4);
  });

  it("keeps a constant series constant", () => {
    for (const v of ema([3, 3, 3, 3, 3], 0.95)) expect(v).toBeCloseTo(3, 10);
  });

  it("matches TensorBoard's formula", () => {
    // last = 0.5*0 + 0.5*1 = 0.5 -> /0.5 = 1; last = 0.25 + 0.5*3 = 1.75 -> /0.75 = 2.333…
    const out = ema([1, 3], 0.5);
    expect(out[0]).toBeCloseTo(1);
    expect(out[1]).toBeCloseTo(1.75 / 0.75);
  });

  it("is the identity at weight 0 and skips missing values", () => {
    expect(ema([1, 5, 2], 0)).toEqual([1, 5, 2]);
    const out = ema([2, undefined, 2, Number.NaN], 0.6);
    expect(out[1]).toBeUndefined();
    expect(out[3]).toBeUndefined();
    expect(out[2]).toBeCloseTo(2);
  });

  it("smooths noise", () => {
    const noisy = Array.from({ length: 50 }, (_, i) => (i % 2 ? 1 : 0));
    const sm = ema(noisy, 0.9) as number[];
    expect(Math.abs(sm[49] - 0.5)).toBeLessThan(0.1);
  });
});

describe("nearestIndex", () => {
  const steps = [1, 5, 10, 20];
  it("finds the nearest by binary search", () => {
    expect(nearestIndex(steps, 6)).toBe(1);
    expect(nearestIndex(steps, 8)).toBe(2);
    expect(nearestIndex(steps, 16)).toBe(3);
    expect(nearestIndex(steps, 10)).toBe(2);
  });
  it("clamps outside and breaks ties to the lower", () => {
    expect(nearestIndex(steps, -100)).toBe(0);
    expect(nearestIndex(steps, 100)).toBe(3);
    expect(nearestIndex(steps, 15)).toBe(2);
    expect(nearestIndex([], 3)).toBe(-1);
  });
  it("agrees with a linear scan", () => {
    const big = Array.from({ length: 997 }, (_, i) => i * 3 + (i % 7));
    for (const t of [-5, 0, 1.5, 100.2, 1500, 2999, 5000]) {
      let best = 0;
      for (let i = 1; i < big.length; i++) if (Math.abs(big[i] - t) < Math.abs(big[best] - t)) best = i;
      expect(nearestIndex(big, t)).toBe(best);
    }
  });
});

describe("zoom", () => {
  it("stepDomain spans the data and is at least 1 wide", () => {
    expect(stepDomain([{ step: 3, loss: 1 }, { step: 9, loss: 1 }])).toEqual([3, 9]);
    expect(stepDomain([{ step: 10, loss: 1 }])).toEqual([9.5, 10.5]);
  });

  it("clampZoom orders, clamps into the data range and rejects tiny ranges", () => {
    expect(clampZoom(80, 20, [0, 100])).toEqual([20, 80]);
    expect(clampZoom(-50, 30, [0, 100])).toEqual([0, 30]);
    expect(clampZoom(60, 500, [0, 100])).toEqual([60, 100]);
    expect(clampZoom(10, 10.5, [0, 100])).toBeNull();
    expect(clampZoom(200, 300, [0, 100])).toBeNull();
    expect(clampZoom(-10, 200, [0, 100])).toBeNull(); // all of it: not a zoom
    expect(clampZoom(Number.NaN, 3, [0, 100])).toBeNull();
  });

  it("stepRange and visibleRange select the points inside, plus neighbours", () => {
    const steps = [0, 10, 20, 30, 40, 50];
    expect(stepRange(steps, [15, 40])).toEqual([2, 5]);
    expect(visibleRange(steps, [15, 40])).toEqual([1, 6]);
    expect(visibleRange(steps, [0, 50])).toEqual([0, 6]);
    expect(stepRange(steps, [12, 18])).toEqual([2, 2]);
    expect(visibleRange(steps, [12, 18])).toEqual([1, 3]);
  });
});

describe("paths", () => {
  it("linePath moves, then draws, and breaks on gaps", () => {
    expect(linePath([0, 10, 20], [5, 6, 7])).toBe("M0 5L10 6L20 7");
    expect(linePath([0, 10, 20, 30], [5, Number.NaN, 7, 8])).toBe("M0 5M20 7L30 8");
    expect(linePath([], [])).toBe("");
  });
  it("areaPath closes each segment on the baseline", () => {
    expect(areaPath([0, 10], [5, 6], 100)).toBe("M0 100L0 5L10 6L10 100Z");
    expect(areaPath([0], [5], 100)).toBe("");
  });
});

describe("text and export", () => {
  it("tooltip omits absent fields", () => {
    expect(tooltipText({ step: 7, loss: 1.23456 })).toBe("step 7 · loss 1.2346");
    expect(tooltipText({ step: 7, evalLoss: 0.5, learningRate: 2e-4 })).toBe("step 7 · eval 0.5000 · lr 2e-4");
    expect(tooltipText({ step: 1, loss: 2 }, 1.5)).toBe("step 1 · loss 2.0000 · smoothed 1.5000");
  });

  it("toCsv writes the header and empty cells for missing values", () => {
    const csv = toCsv([
      { step: 1, loss: 2.5, learningRate: 0.0002 },
      { step: 2, evalLoss: 1.25 },
    ]);
    expect(csv).toBe("step,loss,eval_loss,learning_rate\n1,2.5,,0.0002\n2,,1.25,\n");
    expect(toCsv([])).toBe("step,loss,eval_loss,learning_rate\n");
  });

  it("seriesStats finds latest, minimum and latest eval", () => {
    const s = seriesStats([
      { step: 1, loss: 3 },
      { step: 2, loss: 1, evalLoss: 2 },
      { step: 3, loss: 1.5 },
      { step: 4, loss: 1 },
    ]);
    expect(s.latestLoss).toEqual({ step: 4, value: 1 });
    expect(s.minLoss).toEqual({ step: 2, value: 1 });
    expect(s.latestEval).toEqual({ step: 2, value: 2 });
    expect(s.latestLr).toBeNull();
  });

  it("safeFileName keeps names usable", () => {
    expect(safeFileName("my run: v2/final")).toBe("my_run_v2_final");
    expect(safeFileName("  ")).toBe("job");
    expect(safeFileName("ok-name_1.2")).toBe("ok-name_1.2");
  });
});

describe("axes", () => {
  it("lossAxis widens linear data to nice ticks at both ends", () => {
    const a = lossAxis([4.61, 5.9], false, [300, 0]);
    expect(a.scale.domain).toEqual([4.6, 6]);
    expect(a.ticks.map((t) => t.label)).toEqual(["4.6", "4.8", "5.0", "5.2", "5.4", "5.6", "5.8", "6.0"]);
    expect(a.scale.map(4.6)).toBe(300);
    expect(a.scale.map(6)).toBe(0);
  });

  it("lossAxis on a log scale ignores non-positive values and pads the extent", () => {
    const a = lossAxis([0, -1, 0.1, 10], true, [100, 0]);
    expect(a.scale.kind).toBe("log");
    expect(a.scale.domain[0]).toBeLessThan(0.1);
    expect(a.scale.domain[1]).toBeGreaterThan(10);
    expect(a.ticks.map((t) => t.value)).toContain(1);
  });

  it("lrAxis starts at 0 and labels like learning rates", () => {
    const a = lrAxis([1e-4, 2e-4], [100, 0]);
    expect(a.scale.domain[0]).toBe(0);
    expect(a.scale.domain[1]).toBeGreaterThanOrEqual(2e-4);
    expect(a.ticks[0].label).toBe("0");
    expect(a.ticks.map((t) => t.label)).toContain("2e-4");
  });
});
