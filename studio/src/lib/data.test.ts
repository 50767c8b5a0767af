import { describe, expect, it } from "vitest";
import {
  dataHref,
  displayToken,
  histogramBars,
  maxLengthX,
  pageCount,
  parseDataParams,
  requestFor,
  trainedShare,
} from "./data";

const buckets = [
  { from: 0, to: 50, rows: 4 },
  { from: 50, to: 100, rows: 8 },
  { from: 100, to: 150, rows: 0 },
  { from: 150, to: 200, rows: 1 },
];

describe("histogramBars", () => {
  it("scales heights to the fullest bucket and gives equal widths", () => {
    const bars = histogramBars(buckets, 1000);
    expect(bars.map((b) => b.height)).toEqual([0.5, 1, 0, 0.125]);
    expect(bars.map((b) => b.x)).toEqual([0, 0.25, 0.5, 0.75]);
    expect(bars.every((b) => b.width === 0.25)).toBe(true);
  });

  it("keeps a tiny bucket visible", () => {
    const bars = histogramBars([{ from: 0, to: 10, rows: 1000 }, { from: 10, to: 20, rows: 1 }], 100, 0.02);
    expect(bars[1].height).toBe(0.02);
  });

  it("marks buckets that training cuts at max length", () => {
    // Rows of 100-149 tokens: cut when longer than 120; 150+: all cut.
    const states = histogramBars(buckets, 120).map((b) => b.state);
    expect(states).toEqual(["kept", "kept", "partly-truncated", "truncated"]);
    // A bucket whose longest row is exactly max length is kept.
    expect(histogramBars([{ from: 100, to: 121, rows: 1 }], 120)[0].state).toBe("kept");
    expect(histogramBars(buckets, 120)[3].label).toBe("150–199 tokens: 1 row (truncated)");
  });
});

describe("maxLengthX", () => {
  it("places the cut inside the histogram, or nowhere", () => {
    expect(maxLengthX(buckets, 99)).toBeCloseTo(0.5);
    expect(maxLengthX(buckets, 500)).toBeNull();
    expect(maxLengthX(buckets, 199)).toBeNull();
    expect(maxLengthX([], 10)).toBeNull();
  });
});

describe("the URL selection", () => {
  it("round-trips a trainer with a page and a row", () => {
    const s = parseDataParams(new URLSearchParams("trainer=triage&page=3&row=120"));
    expect(s).toEqual({ kind: "trainer", trainer: "triage", page: 3, row: 120 });
    expect(dataHref(s)).toBe("#/data?trainer=triage&page=3&row=120");
  });

  it("round-trips a file and a model", () => {
    const s = parseDataParams(new URLSearchParams("path=data/x y.jsonl&model=arkor/tiny"));
    expect(s).toEqual({ kind: "file", path: "data/x y.jsonl", model: "arkor/tiny", page: 1, row: null });
    expect(parseDataParams(new URLSearchParams(dataHref(s).split("?")[1]))).toEqual(s);
  });

  it("ignores nonsense numbers", () => {
    expect(parseDataParams(new URLSearchParams("page=-2&row=1.5"))).toEqual({ kind: "trainer", trainer: null, page: 1, row: null });
    expect(dataHref({ kind: "trainer", trainer: null, page: 1, row: null })).toBe("#/data");
  });
});

describe("requestFor", () => {
  const config = { model: "arkor/tiny", datasetSource: { type: "jsonl" as const, path: "/p/data/train.jsonl" }, maxLength: 256, learningRate: 1e-3 };
  it("sends the trainer's config with the page's offset and the row", () => {
    const r = requestFor({ kind: "trainer", trainer: "t", page: 3, row: 7 }, config);
    expect(r).toEqual({ config, offset: 100, limit: 50, row: 7 });
  });

  it("inspects another file with the trainer's max length and the chosen model", () => {
    const r = requestFor({ kind: "file", path: " data/other.jsonl ", model: "", page: 1, row: null }, config);
    expect(r).toEqual({ config: { model: "arkor/tiny", datasetSource: { type: "jsonl", path: "data/other.jsonl" }, maxLength: 256 }, offset: 0, limit: 50 });
    expect(requestFor({ kind: "file", path: "a.jsonl", model: "m/x", page: 1, row: null }, null)?.config.model).toBe("m/x");
    expect(requestFor({ kind: "file", path: "a.jsonl", model: "", page: 1, row: null }, null)).toBeNull();
    expect(requestFor({ kind: "trainer", trainer: null, page: 1, row: null }, null)).toBeNull();
  });
});

describe("small helpers", () => {
  it("shows invisible characters", () => {
    expect(displayToken("\n")).toBe("↵\n");
    expect(displayToken("a\r\nb\tc")).toBe("a↵\nb→c");
    expect(displayToken(" hi")).toBe(" hi");
  });

  it("counts shares and pages", () => {
    expect(trainedShare(1, 3)).toBe(33);
    expect(trainedShare(5, 0)).toBe(0);
    expect(pageCount(0)).toBe(1);
    expect(pageCount(100)).toBe(2);
    expect(pageCount(101)).toBe(3);
  });
});
