import { describe, expect, it } from "vitest";
import {
  alignPoints,
  compareHref,
  contrastRatio,
  diffConfigs,
  diffEntries,
  evalFactEntries,
  flattenConfig,
  hasTokens,
  MAX_COMPARE,
  parseSelection,
  RUN_PALETTE,
  runColor,
  runFactEntries,
  runStyle,
  xDomainOf,
} from "./compare";
import { initialEventState } from "./jobView";
import { parseRoute } from "./route";

describe("selection in the URL", () => {
  it("dedupes, keeps order, ignores empties and trims", () => {
    expect(parseSelection("b, a,,b , c,a,")).toEqual(["b", "a", "c"]);
    expect(parseSelection("")).toEqual([]);
    expect(parseSelection(null)).toEqual([]);
    expect(parseSelection(" , ,")).toEqual([]);
  });

  it("caps the number of runs", () => {
    const ids = Array.from({ length: 12 }, (_, i) => `j${i}`);
    expect(parseSelection(ids.join(","))).toEqual(ids.slice(0, MAX_COMPARE));
    expect(parseSelection("a,a,b,c", 2)).toEqual(["a", "b"]);
  });

  it("round-trips through the hash route", () => {
    const href = compareHref(["job-1", "job 2", "job-1", ""]);
    expect(href).toBe("#/compare?jobs=job-1,job%202");
    expect(parseRoute(href)).toEqual({ page: "compare", ids: ["job-1", "job 2"] });
    expect(parseRoute("#/compare")).toEqual({ page: "compare", ids: [] });
    expect(parseRoute("#/compare/")).toEqual({ page: "compare", ids: [] });
  });
});

describe("run colours", () => {
  it("are stable by index, distinct within the palette, and wrap round", () => {
    expect(runColor(0)).toBe(runColor(0));
    expect(runColor(RUN_PALETTE.length)).toBe(runColor(0));
    expect(runColor(-1)).toBe(RUN_PALETTE[RUN_PALETTE.length - 1]);
    expect(new Set(RUN_PALETTE.map((c) => c.light)).size).toBe(RUN_PALETTE.length);
    expect(new Set(RUN_PALETTE.map((c) => c.dark)).size).toBe(RUN_PALETTE.length);
    expect(RUN_PALETTE.length).toBeGreaterThanOrEqual(MAX_COMPARE);
    expect(runStyle(1)).toEqual({ "--run-light": RUN_PALETTE[1].light, "--run-dark": RUN_PALETTE[1].dark });
  });

  it("are readable on both themes' card surfaces (3:1, the WCAG bar for graphics)", () => {
    // --surface in styles.css, light and dark.
    for (const c of RUN_PALETTE) {
      expect(contrastRatio(c.light, "#ffffff"), c.light).toBeGreaterThanOrEqual(3);
      expect(contrastRatio(c.dark, "#151b23"), c.dark).toBeGreaterThanOrEqual(3);
    }
  });

  it("contrastRatio matches known values", () => {
    expect(contrastRatio("#000000", "#ffffff")).toBeCloseTo(21, 5);
    expect(contrastRatio("#ffffff", "#ffffff")).toBeCloseTo(1, 5);
    expect(contrastRatio("#777777", "#ffffff")).toBeCloseTo(4.48, 2);
  });
});

describe("alignment", () => {
  const pts = [
    { step: 1, loss: 3, tokensSeen: 100 },
    { step: 2, loss: 2 },
    { step: 3, loss: 1, evalLoss: 1.5, tokensSeen: 300 },
  ];

  it("by step keeps every point with x = step", () => {
    expect(alignPoints(pts, "step").map((p) => [p.x, p.loss])).toEqual([
      [1, 3],
      [2, 2],
      [3, 1],
    ]);
  });

  it("by tokens drops points without tokensSeen and uses it as x", () => {
    const a = alignPoints(pts, "tokens");
    expect(a.map((p) => [p.x, p.step])).toEqual([
      [100, 1],
      [300, 3],
    ]);
    expect(a[1].evalLoss).toBe(1.5);
  });

  it("sorts by x and keeps the later step for equal x", () => {
    const a = alignPoints(
      [
        { step: 2, loss: 2, tokensSeen: 50 },
        { step: 1, loss: 1, tokensSeen: 50 },
        { step: 3, loss: 3, tokensSeen: 10 },
      ],
      "tokens",
    );
    expect(a.map((p) => [p.x, p.step])).toEqual([
      [10, 3],
      [50, 2],
    ]);
  });

  it("hasTokens needs a finite tokensSeen", () => {
    expect(hasTokens(pts)).toBe(true);
    expect(hasTokens([{ step: 1, loss: 1 }])).toBe(false);
    expect(hasTokens([{ step: 1, loss: 1, tokensSeen: Number.NaN }])).toBe(false);
  });

  it("xDomainOf spans all runs, at least 1 wide", () => {
    expect(xDomainOf([alignPoints(pts, "step"), alignPoints([{ step: 10, loss: 1 }], "step")])).toEqual([1, 10]);
    expect(xDomainOf([[], alignPoints([{ step: 4, loss: 1 }], "step")])).toEqual([3.5, 4.5]);
    expect(xDomainOf([[], []])).toEqual([0, 1]);
  });
});

describe("config diff", () => {
  it("flattens nested objects with dots, lists comma-separated, skips absent values", () => {
    expect(
      flattenConfig({
        model: "arkor/tiny",
        datasetSource: { type: "jsonl", path: "data/train.jsonl", subset: null },
        loraTargetModules: ["q_proj", "v_proj"],
        learningRate: 0.0002,
        loraUseRslora: false,
        seed: null,
        optim: "",
      }),
    ).toEqual([
      { key: "model", value: "arkor/tiny" },
      { key: "datasetSource.type", value: "jsonl" },
      { key: "datasetSource.path", value: "data/train.jsonl" },
      { key: "loraTargetModules", value: "q_proj, v_proj" },
      { key: "learningRate", value: "0.0002" },
      { key: "loraUseRslora", value: "false" },
    ]);
    expect(flattenConfig(null)).toEqual([]);
  });

  it("marks keys whose values differ, and keys missing in some runs", () => {
    const rows = diffConfigs([
      { model: "m", learningRate: 0.0002, maxSteps: 10, datasetSource: { type: "jsonl", path: "a" } },
      { model: "m", learningRate: 0.001, maxSteps: 10, datasetSource: { type: "jsonl", path: "a" }, seed: 1 },
    ]);
    const by = Object.fromEntries(rows.map((r) => [r.key, r]));
    expect(by.model).toEqual({ key: "model", values: ["m", "m"], differs: false });
    expect(by.learningRate).toEqual({ key: "learningRate", values: ["0.0002", "0.001"], differs: true });
    expect(by.maxSteps.differs).toBe(false);
    expect(by["datasetSource.path"].differs).toBe(false);
    expect(by.seed).toEqual({ key: "seed", values: [undefined, "1"], differs: true });
    // First-seen order across runs.
    expect(rows.map((r) => r.key)).toEqual(["model", "learningRate", "maxSteps", "datasetSource.type", "datasetSource.path", "seed"]);
  });

  it("compares three runs where only the last differs", () => {
    const rows = diffEntries([[{ key: "a", value: "1" }], [{ key: "a", value: "1" }], [{ key: "a", value: "2" }]]);
    expect(rows).toEqual([{ key: "a", values: ["1", "1", "2"], differs: true }]);
    expect(diffEntries([[{ key: "a", value: "1" }]])[0].differs).toBe(false);
  });
});

describe("run facts", () => {
  it("reads version, data hash, final metrics", () => {
    const rows = runFactEntries({
      ...initialEventState,
      metadata: { arkorVersion: "0.3.1", datasetSha256: "ab12" },
      points: [
        { step: 5, loss: 2, evalLoss: 2.5 },
        { step: 10, loss: 1.23456 },
      ],
      lastStep: 10,
      terminal: { status: "completed", at: "t", trainLoss: 1.1 },
    });
    expect(rows).toEqual([
      { key: "arkor version", value: "0.3.1" },
      { key: "dataset sha256", value: "ab12" },
      { key: "final train loss", value: "1.1000" },
      { key: "last eval loss", value: "2.5000" },
      { key: "last step", value: "10" },
    ]);
  });

  it("falls back to the last logged loss and omits what is unknown", () => {
    const rows = runFactEntries({ ...initialEventState, points: [{ step: 3, loss: 0.5 }], lastStep: 3 });
    expect(rows).toEqual([
      { key: "final train loss", value: "0.5000" },
      { key: "last step", value: "3" },
    ]);
    expect(runFactEntries(initialEventState)).toEqual([]);
  });
});

describe("evalFactEntries", () => {
  const scores = (allKeysCorrect: number) => ({
    rows: 48,
    exactMatch: 0,
    jsonRows: 48,
    jsonValid: 48,
    perKey: {},
    allKeysCorrect,
    elapsedSecs: 1,
    tokensGenerated: 10,
  });
  const e = (id: string, source: string, step: number, all: number, status: "completed" | "running" = "completed") => ({
    id,
    source,
    step,
    dataset: "heldout.jsonl",
    status,
    createdAt: "2026-12-07T00:00:00Z",
    scores: status === "completed" ? scores(all) : null,
  });

  it("shows the best evaluated adapter and the file it was scored on", () => {
    const rows = evalFactEntries([e("b", "final", 60, 12), e("a", "checkpoint-40", 40, 24)]);
    expect(rows).toEqual([
      { key: "best eval", value: "50.0% all keys correct (Checkpoint · step 40)" },
      { key: "eval dataset", value: "heldout.jsonl" },
    ]);
  });

  it("has no rows before an evaluation completes", () => {
    expect(evalFactEntries(undefined)).toEqual([]);
    expect(evalFactEntries([e("a", "final", 60, 0, "running")])).toEqual([]);
  });
});
