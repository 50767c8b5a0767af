import { describe, expect, it } from "vitest";
import { queueActions, queuedBehindLabel, queueLabel, runProgress, workerLabel } from "./queue";

describe("remote worker", () => {
  it("names the worker, and the attempt after a requeue", () => {
    expect(workerLabel({ worker: "gpu-box-1", attempt: 1 })).toBe("gpu-box-1");
    expect(workerLabel({ worker: "gpu-box-1", attempt: 2 })).toBe("gpu-box-1 (attempt 2)");
    expect(workerLabel({ worker: "gpu-box-1" })).toBe("gpu-box-1");
    // The backend's own jobs have none.
    expect(workerLabel({})).toBeNull();
    expect(workerLabel({ worker: null, attempt: 3 })).toBeNull();
    expect(workerLabel({ worker: "  ", attempt: 2 })).toBeNull();
  });
});

describe("queue position", () => {
  it("labels queued jobs with the backend's position only", () => {
    expect(queueLabel({ status: "queued", queuePosition: 1 })).toBe("#1 in queue");
    expect(queueLabel({ status: "queued", queuePosition: 12 })).toBe("#12 in queue");
    // An older backend reports none; a finished job keeps none.
    expect(queueLabel({ status: "queued" })).toBeNull();
    expect(queueLabel({ status: "queued", queuePosition: null })).toBeNull();
    expect(queueLabel({ status: "queued", queuePosition: 0 })).toBeNull();
    expect(queueLabel({ status: "queued", queuePosition: 1.5 })).toBeNull();
    expect(queueLabel({ status: "running", queuePosition: 2 })).toBeNull();
  });

  it("offers move to front behind the first, cancel until the job ends", () => {
    expect(queueActions({ status: "queued", queuePosition: 1 })).toEqual({ moveToFront: false, cancel: true });
    expect(queueActions({ status: "queued", queuePosition: 2 })).toEqual({ moveToFront: true, cancel: true });
    expect(queueActions({ status: "queued" })).toEqual({ moveToFront: false, cancel: true });
    expect(queueActions({ status: "running" })).toEqual({ moveToFront: false, cancel: true });
    for (const status of ["completed", "failed", "cancelled", "weird"]) {
      expect(queueActions({ status, queuePosition: 3 })).toEqual({ moveToFront: false, cancel: false });
    }
  });
});

describe("running job progress", () => {
  it("reports step of total and a whole percentage", () => {
    expect(runProgress({ progress: { step: 15, totalSteps: 60 } })).toEqual({
      step: 15,
      total: 60,
      percent: 25,
      label: "Step 15 of 60",
    });
    expect(runProgress({ progress: { step: 1, totalSteps: 3 } }).percent).toBe(33);
    expect(runProgress({ progress: { step: 60, totalSteps: 60 } }).percent).toBe(100);
  });

  it("says starting before the plan is known and clamps overshoot", () => {
    expect(runProgress({})).toEqual({ step: 0, total: 0, percent: 0, label: "Starting…" });
    expect(runProgress({ progress: { step: 0, totalSteps: 0 } }).label).toBe("Starting…");
    expect(runProgress({ progress: { step: 70, totalSteps: 60 } })).toMatchObject({ step: 60, percent: 100 });
    expect(runProgress({ progress: { step: -2, totalSteps: 10 } })).toMatchObject({ step: 0, percent: 0 });
  });

  it("counts the jobs waiting behind", () => {
    expect(queuedBehindLabel(0)).toBe("No jobs queued");
    expect(queuedBehindLabel(1)).toBe("1 job queued behind it");
    expect(queuedBehindLabel(3)).toBe("3 jobs queued behind it");
    expect(queuedBehindLabel(2, 2)).toBe("2 jobs queued behind them");
  });
});
