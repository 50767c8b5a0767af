import { describe, expect, it } from "vitest";
import type { EvalInfo, EvalScores } from "./api";
import {
  anyEvalRunning,
  bestEval,
  checkpointStep,
  defaultDatasetPath,
  evalPlaygroundHref,
  evalRequest,
  evalSourceLabel,
  evalStatusText,
  formatPct,
  formatSecs,
  hasJsonRows,
  headline,
  ratio,
  scoreKeys,
  scorePoints,
  withEval,
} from "./evals";

function scores(over: Partial<EvalScores> = {}): EvalScores {
  return {
    rows: 48,
    exactMatch: 0,
    jsonRows: 48,
    jsonValid: 40,
    perKey: { category: { correct: 30, total: 48 }, urgency: { correct: 24, total: 48 } },
    allKeysCorrect: 12,
    elapsedSecs: 3.21,
    tokensGenerated: 768,
    ...over,
  };
}

function info(over: Partial<EvalInfo> = {}): EvalInfo {
  return {
    id: "eval_1",
    source: "final",
    step: 60,
    dataset: "heldout.jsonl",
    status: "completed",
    createdAt: "2026-01-01T00:00:00Z",
    scores: scores(),
    reportPathname: "evals/eval_1/report.json",
    ...over,
  };
}

describe("percentages", () => {
  it("divides like arkor eval, one decimal, N/A for nothing", () => {
    expect(ratio(1, 4)).toBe(25);
    expect(ratio(1, 0)).toBeNull();
    expect(formatPct(35, 48)).toBe("72.9%");
    expect(formatPct(48, 48)).toBe("100.0%");
    expect(formatPct(0, 48)).toBe("0.0%");
    expect(formatPct(0, 0)).toBe("N/A");
    expect(formatSecs(3.21)).toBe("3.2s");
    expect(formatSecs(65)).toBe("1m 05s");
    expect(formatSecs(NaN)).toBe("N/A");
  });

  it("ranks by all keys correct when the references are JSON, else by exact match", () => {
    expect(headline(scores())).toEqual({ metric: "allKeys", pct: 25 });
    expect(headline(scores({ jsonRows: 0, exactMatch: 12 }))).toEqual({ metric: "exact", pct: 25 });
    expect(headline(scores({ rows: 0, jsonRows: 0 }))).toBeNull();
  });
});

describe("bestEval", () => {
  it("picks the highest all-keys-correct share, ties broken by exact match, then the newer one", () => {
    const a = info({ id: "a", source: "checkpoint-20", step: 20, scores: scores({ allKeysCorrect: 30 }) });
    const b = info({ id: "b", source: "checkpoint-40", step: 40, scores: scores({ allKeysCorrect: 36 }) });
    const c = info({ id: "c", source: "final", step: 60, scores: scores({ allKeysCorrect: 36, exactMatch: 2 }) });
    expect(bestEval([c, b, a])).toBe("c");
    expect(bestEval([b, a])).toBe("b");
    // Same scores: the newer (listed first) wins.
    expect(bestEval([{ ...b, id: "b2" }, b])).toBe("b2");
  });

  it("falls back to exact match for plain-text references", () => {
    const a = info({ id: "a", scores: scores({ jsonRows: 0, exactMatch: 10 }) });
    const b = info({ id: "b", scores: scores({ jsonRows: 0, exactMatch: 20 }) });
    expect(bestEval([a, b])).toBe("b");
  });

  it("ignores running, failed and empty evaluations, and other held-out files", () => {
    expect(bestEval([])).toBeNull();
    expect(bestEval([info({ status: "running", scores: null })])).toBeNull();
    expect(bestEval([info({ status: "failed", error: "boom", scores: null })])).toBeNull();
    expect(bestEval([info({ scores: scores({ rows: 0, jsonRows: 0 }) })])).toBeNull();
    const newest = info({ id: "new", dataset: "other.jsonl", scores: scores({ allKeysCorrect: 1 }) });
    const old = info({ id: "old", scores: scores({ allKeysCorrect: 40 }) });
    expect(bestEval([info({ id: "run", status: "running", scores: null }), newest, old])).toBe("new");
  });
});

describe("labels and links", () => {
  it("names the adapter and links the Playground to it", () => {
    expect(checkpointStep("checkpoint-20")).toBe(20);
    expect(checkpointStep("final")).toBeNull();
    expect(evalSourceLabel(info())).toBe("Final adapter · step 60");
    expect(evalSourceLabel(info({ source: "checkpoint-20", step: 20 }))).toBe("Checkpoint · step 20");
    expect(evalPlaygroundHref("job 1", info())).toBe("#/playground?adapter=job+1");
    expect(evalPlaygroundHref("j", info({ source: "checkpoint-20", step: 20 }))).toBe("#/playground?adapter=j&step=20");
  });

  it("lists the score columns", () => {
    const plain = info({ id: "p", scores: scores({ jsonRows: 0, perKey: {} }) });
    expect(hasJsonRows([plain])).toBe(false);
    expect(hasJsonRows([plain, info()])).toBe(true);
    expect(hasJsonRows([info({ status: "running", scores: null })])).toBe(false);
    const more = info({ scores: scores({ perKey: { summary: { correct: 0, total: 48 }, category: { correct: 1, total: 48 } } }) });
    expect(scoreKeys([info(), more, plain])).toEqual(["category", "summary", "urgency"]);
  });

  it("says how long an evaluation has run or took", () => {
    const start = Date.parse("2026-01-01T00:00:00Z");
    expect(evalStatusText(info({ status: "running" }), start + 12_400)).toBe("Evaluating… 12s");
    expect(evalStatusText(info({ status: "running", createdAt: "bad" }), start)).toBe("Evaluating…");
    expect(evalStatusText(info({ finishedAt: "2026-01-01T00:00:09Z" }), 0)).toBe("Completed in 9s");
    expect(evalStatusText(info({ status: "failed" }), 0)).toBe("Failed");
  });
});

describe("the chart's score markers", () => {
  it("one per step (the newest evaluation), comparable ones only, by step", () => {
    const evals = [
      info({ id: "n", source: "checkpoint-40", step: 40, scores: scores({ allKeysCorrect: 24 }) }),
      info({ id: "r", source: "checkpoint-60", step: 60, status: "running", scores: null }),
      info({ id: "o", source: "checkpoint-40", step: 40, scores: scores({ allKeysCorrect: 12 }) }),
      info({ id: "a", source: "checkpoint-20", step: 20, scores: scores({ allKeysCorrect: 6 }) }),
      info({ id: "x", source: "checkpoint-10", step: 10, dataset: "other.jsonl" }),
    ];
    expect(scorePoints(evals)).toEqual([
      { step: 20, pct: 12.5, label: "12.5% all keys correct" },
      { step: 40, pct: 50, label: "50.0% all keys correct" },
    ]);
    expect(scorePoints([info({ scores: scores({ jsonRows: 0, exactMatch: 12 }) })])).toEqual([
      { step: 60, pct: 25, label: "25.0% exact match" },
    ]);
    expect(scorePoints([])).toEqual([]);
  });
});

describe("the form", () => {
  const form = { datasetPath: " /p/data/heldout.jsonl ", source: "final" as const, maxTokens: "" };
  it("sends the path, the checkpoint and a valid max tokens only", () => {
    expect(evalRequest(form)).toEqual({ body: { datasetPath: "/p/data/heldout.jsonl" } });
    expect(evalRequest({ ...form, source: 20, maxTokens: " 16 " })).toEqual({
      body: { datasetPath: "/p/data/heldout.jsonl", checkpointStep: 20, maxTokens: 16 },
    });
    expect(evalRequest({ ...form, datasetPath: "  " })).toEqual({ error: "Enter the path of a held-out JSONL file" });
    for (const bad of ["0", "4097", "1.5", "-3", "abc"]) {
      expect(evalRequest({ ...form, maxTokens: bad })).toHaveProperty("error");
    }
    expect(evalRequest({ ...form, maxTokens: "4096" })).toEqual({ body: { datasetPath: "/p/data/heldout.jsonl", maxTokens: 4096 } });
  });

  it("suggests the project's held-out rows", () => {
    expect(defaultDatasetPath("/home/me/proj")).toBe("/home/me/proj/data/heldout.jsonl");
    expect(defaultDatasetPath("/home/me/proj/")).toBe("/home/me/proj/data/heldout.jsonl");
    expect(defaultDatasetPath("C:\\Users\\me\\proj")).toBe("C:\\Users\\me\\proj\\data\\heldout.jsonl");
    expect(defaultDatasetPath("")).toBe("");
    expect(defaultDatasetPath(null)).toBe("");
  });

  it("knows when to poll and shows a started evaluation at once", () => {
    expect(anyEvalRunning(undefined)).toBe(false);
    expect(anyEvalRunning([info(), info({ id: "eval_2", status: "running" })])).toBe(true);
    const started = info({ id: "eval_2", status: "running", scores: null });
    expect(withEval([info()], started).map((e) => e.id)).toEqual(["eval_2", "eval_1"]);
    expect(withEval(undefined, started)).toEqual([started]);
  });
});
