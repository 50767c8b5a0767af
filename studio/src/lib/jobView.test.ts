import { describe, expect, it } from "vitest";
import type { ArtifactSet, JobConfig } from "./api";
import {
  affectsArtifacts,
  appendCapped,
  applyEvent,
  checkpointRows,
  datasetLabel,
  eventMessage,
  hyperparameterRows,
  initialEventState,
  type JobEventState,
  loraRows,
  MAX_LOG_ENTRIES,
  pointOf,
  progressOf,
  resolveStatus,
  runRows,
  sortArtifactSets,
  terminalStatusOf,
} from "./jobView";

let nextId = 1;
const frame = (type: string, data: Record<string, unknown> = {}, id: number | null = nextId++) => ({
  id,
  type,
  timestamp: "2024-05-01T10:00:00.000Z",
  data: { jobId: "j", type, timestamp: "2024-05-01T10:00:00.000Z", ...data },
});
const fold = (frames: ReturnType<typeof frame>[], start: JobEventState = initialEventState) =>
  frames.reduce((s, f) => applyEvent(s, f), start);

describe("resolveStatus", () => {
  const none = { terminal: null, running: false };
  const running = { terminal: null, running: true };
  const done = (status: "completed" | "failed" | "cancelled") => ({ terminal: { status }, running: false });

  it("prefers a terminal event over everything", () => {
    expect(resolveStatus("running", done("completed"))).toBe("completed");
    expect(resolveStatus("cancelled", done("failed"))).toBe("failed");
    expect(resolveStatus(undefined, done("cancelled"))).toBe("cancelled");
  });
  it("then a polled terminal status over event-derived running", () => {
    expect(resolveStatus("failed", running)).toBe("failed");
    expect(resolveStatus("cancelled", running)).toBe("cancelled");
  });
  it("then event-derived running over a polled non-terminal status", () => {
    expect(resolveStatus("queued", running)).toBe("running");
    expect(resolveStatus(undefined, running)).toBe("running");
  });
  it("then the polled status, then queued", () => {
    expect(resolveStatus("queued", none)).toBe("queued");
    expect(resolveStatus("running", none)).toBe("running");
    expect(resolveStatus(undefined, none)).toBe("queued");
    expect(resolveStatus(null, none)).toBe("queued");
  });
});

describe("eventMessage", () => {
  it("training.started summarises the metadata", () => {
    expect(
      eventMessage("training.started", {
        metadata: { totalSteps: 500, trainRows: 1200, trainableParameters: 4194304 },
      }),
    ).toBe("500 steps, 1,200 rows, 4,194,304 trainable parameters");
    expect(eventMessage("training.started", { metadata: { trainRows: 10 } })).toBe("10 rows");
    expect(eventMessage("training.started", {})).toBe("started");
  });

  it("training.log shows only finite fields", () => {
    expect(eventMessage("training.log", { step: 3, loss: 1.234567, evalLoss: 0.5, learningRate: 0.0002 })).toBe(
      "step=3 loss=1.2346 evalLoss=0.5000 lr=2e-4",
    );
    expect(eventMessage("training.log", { step: 4, loss: Number.NaN, evalLoss: null })).toBe("step=4");
    expect(eventMessage("training.log", { loss: 2 })).toBe("step=- loss=2.0000");
  });

  it("checkpoint, completed, failed, cancelled", () => {
    expect(eventMessage("checkpoint.saved", { step: 100, artifacts: [] })).toBe("step=100");
    expect(eventMessage("training.completed", { artifacts: [{}, {}] })).toBe("2 artifacts");
    expect(eventMessage("training.completed", { artifacts: [{}] })).toBe("1 artifact");
    expect(eventMessage("training.completed", {})).toBe("0 artifacts");
    expect(eventMessage("training.failed", { error: "CUDA out of memory" })).toBe("CUDA out of memory");
    expect(eventMessage("training.failed", {})).toBe("failed");
    expect(eventMessage("training.cancelled", { step: 42 })).toBe("step=42");
    expect(eventMessage("training.cancelled", {})).toBe("cancelled");
  });
});

describe("event log and points", () => {
  it("appendCapped keeps the last entries", () => {
    let list: number[] = [];
    for (let i = 0; i < 7; i++) list = appendCapped(list, i, 5);
    expect(list).toEqual([2, 3, 4, 5, 6]);
  });

  it("the log keeps the last 500 entries", () => {
    const frames = Array.from({ length: 620 }, (_, i) => frame("training.log", { step: i + 1, loss: 1 }));
    const s = fold(frames);
    expect(MAX_LOG_ENTRIES).toBe(500);
    expect(s.log).toHaveLength(500);
    expect(s.log[0].message).toBe("step=121 loss=1.0000");
    expect(s.log[499].message).toBe("step=620 loss=1.0000");
    expect(new Set(s.log.map((e) => e.key)).size).toBe(500);
    expect(s.points).toHaveLength(620);
  });

  it("pointOf reads training.log only", () => {
    expect(pointOf(frame("training.log", { step: 2, loss: 1, evalLoss: Number.NaN, learningRate: 1e-4 }))).toEqual({
      step: 2,
      loss: 1,
      evalLoss: undefined,
      learningRate: 1e-4,
    });
    expect(pointOf(frame("checkpoint.saved", { step: 2 }))).toBeNull();
    expect(pointOf(frame("training.log", { loss: 1 }))).toBeNull();
  });

  it("keeps tokensSeen with the point when the backend reports it", () => {
    const s = fold([
      frame("training.started", { metadata: { arkorVersion: "0.3.0", datasetSha256: "ab12", totalSteps: 2 } }),
      frame("training.log", { step: 1, loss: 2, tokensSeen: 512 }),
      frame("training.log", { step: 2, loss: 1 }),
    ]);
    expect(s.points).toEqual([
      { step: 1, loss: 2, tokensSeen: 512 },
      { step: 2, loss: 1 },
    ]);
    expect(s.metadata?.arkorVersion).toBe("0.3.0");
    expect(s.metadata?.datasetSha256).toBe("ab12");
    expect(fold([frame("training.started", { metadata: { arkorVersion: 3 } })]).metadata?.arkorVersion).toBeUndefined();
  });

  it("merges points by step with the later frame winning", () => {
    const s = fold([
      frame("training.log", { step: 10, loss: 2 }),
      frame("training.log", { step: 10, evalLoss: 1.5 }),
      frame("training.log", { step: 5, loss: 3 }),
      frame("training.log", { step: 10, loss: 1.9 }),
    ]);
    expect(s.points).toEqual([
      { step: 5, loss: 3 },
      { step: 10, loss: 1.9, evalLoss: 1.5 },
    ]);
  });
});

describe("applyEvent", () => {
  it("tracks running, metadata, steps, checkpoints and the terminal event", () => {
    let s = fold([
      frame("training.started", { metadata: { totalSteps: 300, trainRows: 90, evalRows: 10, trainableParameters: 1000 } }),
    ]);
    expect(s.running).toBe(true);
    expect(s.startedAt).toBe("2024-05-01T10:00:00.000Z");
    expect(s.totalSteps).toBe(300);
    s = fold(
      [
        frame("training.log", { step: 50, loss: 1 }),
        frame("checkpoint.saved", { step: 100, artifacts: [{ pathname: "ckpt-100/a.bin", size: 10, sha256: "x" }] }),
      ],
      s,
    );
    expect(s.lastStep).toBe(100);
    expect(s.checkpoints).toEqual([{ step: 100, files: [{ pathname: "ckpt-100/a.bin", size: 10, sha256: "x" }] }]);
    expect(s.terminal).toBeNull();
    s = fold([frame("training.failed", { error: "boom", step: 120 })], s);
    expect(s.running).toBe(false);
    expect(s.terminal).toMatchObject({ status: "failed", error: "boom", step: 120 });
    expect(resolveStatus("running", s)).toBe("failed");
  });

  it("ignores replayed frames (id at or below the last one)", () => {
    const a = frame("training.log", { step: 1, loss: 1 }, 100);
    const s1 = applyEvent(initialEventState, a);
    const s2 = applyEvent(s1, { ...a });
    expect(s2).toBe(s1);
    const s3 = applyEvent(s1, frame("training.log", { step: 2, loss: 1 }, 99));
    expect(s3).toBe(s1);
    const s4 = applyEvent(s1, frame("training.log", { step: 2, loss: 1 }, null));
    expect(s4.log).toHaveLength(2);
  });

  it("completed counts artifacts; cancelled keeps its step", () => {
    const c = fold([frame("training.completed", { metrics: { step: 300, trainLoss: 0.7 }, artifacts: [{}, {}, {}] })]);
    expect(c.terminal).toMatchObject({ status: "completed", artifactCount: 3, step: 300, trainLoss: 0.7 });
    const x = fold([frame("training.cancelled", { step: 17 })]);
    expect(x.terminal).toMatchObject({ status: "cancelled", step: 17 });
    expect(x.terminal?.error).toBeUndefined();
  });

  it("knows which events change the artifact list", () => {
    expect(affectsArtifacts("checkpoint.saved")).toBe(true);
    expect(affectsArtifacts("training.completed")).toBe(true);
    expect(affectsArtifacts("training.cancelled")).toBe(true);
    expect(affectsArtifacts("training.log")).toBe(false);
    expect(terminalStatusOf("training.started")).toBeNull();
  });
});

describe("checkpoints and artifacts", () => {
  const sets: ArtifactSet[] = [
    { kind: "checkpoint", step: 200, modelId: "m2", files: [{ pathname: "c200/a", size: 100, sha256: "" }] },
    { kind: "final", step: 300, modelId: "mf", files: [] },
    {
      kind: "checkpoint",
      step: 100,
      modelId: "m1",
      files: [
        { pathname: "c100/a", size: 100, sha256: "" },
        { pathname: "c100/b", size: 24, sha256: "" },
      ],
    },
  ];

  it("sorts final first, then checkpoints by step", () => {
    expect(sortArtifactSets(sets).map((s) => `${s.kind}${s.step}`)).toEqual(["final300", "checkpoint100", "checkpoint200"]);
  });

  it("lists checkpoints by step with total sizes, adding event-only ones", () => {
    const rows = checkpointRows(sets, [
      { step: 300, files: [] },
      { step: 100, files: [] },
    ]);
    expect(rows).toEqual([
      { step: 100, size: 124, fileCount: 2 },
      { step: 200, size: 100, fileCount: 1 },
      { step: 300, size: null, fileCount: 0 },
    ]);
    expect(checkpointRows(undefined, [])).toEqual([]);
  });
});

describe("metadata rows", () => {
  it("labels datasets", () => {
    expect(datasetLabel({ type: "huggingface", name: "org/ds", subset: "main", split: "train" })).toBe(
      "org/ds (main/train)",
    );
    expect(datasetLabel({ type: "huggingface", name: "org/ds", split: "train" })).toBe("org/ds (train)");
    expect(datasetLabel({ type: "huggingface", name: "org/ds" })).toBe("org/ds");
    expect(datasetLabel({ type: "jsonl", path: "data/train.jsonl" })).toBe("data/train.jsonl");
    expect(datasetLabel({ type: "jsonl", url: "https://x/y.jsonl" })).toBe("https://x/y.jsonl");
    expect(datasetLabel(null)).toBeNull();
  });

  it("lists only present LoRA settings and hyperparameters", () => {
    const c: JobConfig = {
      model: "m",
      loraR: 16,
      loraAlpha: 32,
      loraDropout: 0,
      loraTargetModules: ["q_proj", "v_proj"],
      learningRate: 0.0002,
      maxSteps: 100,
      batchSize: null,
      seed: 0,
    };
    expect(loraRows(c)).toEqual([
      { label: "Rank (r)", value: "16" },
      { label: "Alpha", value: "32" },
      { label: "Dropout", value: "0" },
      { label: "Target modules", value: "q_proj, v_proj" },
    ]);
    expect(hyperparameterRows(c)).toEqual([
      { label: "Learning rate", value: "2e-4" },
      { label: "Max steps", value: "100" },
      { label: "Seed", value: "0" },
    ]);
    expect(runRows({ trainRows: 1000, evalRows: 50 })).toEqual([
      { label: "Train rows", value: "1,000" },
      { label: "Eval rows", value: "50" },
    ]);
    expect(runRows(null)).toEqual([]);
  });

  it("progress combines events, the polled job and maxSteps", () => {
    const base = { lastStep: null, totalSteps: null, terminal: null };
    expect(progressOf(base, undefined, undefined)).toBeNull();
    expect(progressOf({ ...base, lastStep: 40 }, { step: 30, totalSteps: 0 }, 100)).toEqual({ step: 40, totalSteps: 100 });
    expect(progressOf({ ...base, lastStep: 40, totalSteps: 200 }, { step: 50, totalSteps: 100 }, 100)).toEqual({
      step: 50,
      totalSteps: 200,
    });
    expect(
      progressOf({ lastStep: 95, totalSteps: 100, terminal: { status: "completed", at: "" } }, undefined, undefined),
    ).toEqual({ step: 100, totalSteps: 100 });
  });
});
