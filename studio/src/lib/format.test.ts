import { describe, expect, it } from "vitest";
import { formatBytes, formatDuration, formatNumber, formatRelative, jobDurationMs, truncateMiddle } from "./format";
import { parseRoute, playgroundHref } from "./route";
import { appendOutput, exitCodeOf, startedJobOf } from "./trainingRun";

describe("formatDuration", () => {
  it("uses s, m ss, h mm ss", () => {
    expect(formatDuration(0)).toBe("0s");
    expect(formatDuration(59_999)).toBe("59s");
    expect(formatDuration(61_000)).toBe("1m 01s");
    expect(formatDuration(3_600_000 + 5 * 60_000 + 7_000)).toBe("1h 05m 07s");
    expect(formatDuration(-1)).toBe("N/A");
  });
});

describe("jobDurationMs", () => {
  const start = "2026-01-01T00:00:00Z";
  it("runs to completion, or to now while running", () => {
    expect(jobDurationMs({ status: "completed", startedAt: start, completedAt: "2026-01-01T00:01:30Z" }, 0)).toBe(90_000);
    expect(jobDurationMs({ status: "running", startedAt: start }, Date.parse(start) + 5000)).toBe(5000);
    expect(jobDurationMs({ status: "queued" }, 0)).toBeNull();
    expect(jobDurationMs({ status: "failed", startedAt: start }, 0)).toBeNull();
  });
});

describe("formatRelative", () => {
  const now = Date.parse("2026-01-01T12:00:00Z");
  it("says how long ago", () => {
    expect(formatRelative("2026-01-01T11:55:00Z", now)).toBe("5 minutes ago");
    expect(formatRelative("2026-01-01T11:59:58Z", now)).toBe("now");
    expect(formatRelative("2025-12-31T12:00:00Z", now)).toBe("yesterday");
    expect(formatRelative("garbage", now)).toBe("garbage");
  });
});

describe("small formats", () => {
  it("truncates ids in the middle, sizes in binary units, numbers to 4 dp", () => {
    expect(truncateMiddle("0123456789abcdef")).toBe("012345…cdef");
    expect(truncateMiddle("short")).toBe("short");
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.50 KiB");
    expect(formatBytes(5 * 1024 * 1024)).toBe("5.00 MiB");
    expect(formatNumber(1.23456)).toBe("1.2346");
    expect(formatNumber(null)).toBe("N/A");
    expect(formatNumber(0.00001234)).toBe("1.23e-5");
  });
});

describe("routes", () => {
  it("parses pages, ids and playground params", () => {
    expect(parseRoute("")).toEqual({ page: "overview" });
    expect(parseRoute("#/jobs/")).toEqual({ page: "jobs" });
    expect(parseRoute("#/jobs/abc%20d")).toEqual({ page: "job", id: "abc d" });
    expect(parseRoute("#/jobs/%E0%A4%A")).toEqual({ page: "overview" });
    const r = parseRoute(playgroundHref("j1", 20));
    expect(r.page).toBe("playground");
    if (r.page === "playground") {
      expect(r.params.get("adapter")).toBe("j1");
      expect(r.params.get("step")).toBe("20");
    }
    expect(parseRoute("#/nowhere")).toEqual({ page: "overview" });
  });
});

describe("training output", () => {
  it("keeps the newest characters and reads the exit code and job id", () => {
    expect(appendOutput("abcdef", "gh", 5)).toBe("defgh");
    const out = "Started job job_123\nstep=10 loss=2.0\n\n---\nexit=0\n";
    expect(exitCodeOf(out)).toBe("0");
    expect(exitCodeOf("still running")).toBeNull();
    expect(startedJobOf(out)).toBe("job_123");
  });
});
