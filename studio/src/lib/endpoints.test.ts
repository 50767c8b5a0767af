import { describe, expect, it } from "vitest";
import { describeTarget, quickStart, slugForJob, slugProblem } from "./endpoints";
import { parseRoute } from "./route";

describe("endpoints", () => {
  it("checks slugs as the backend does", () => {
    expect(slugProblem("triage-v2")).toBeNull();
    expect(slugProblem("a")).toBe("2-50 characters");
    expect(slugProblem("x".repeat(51))).toBe("2-50 characters");
    for (const bad of ["-ab", "ab-", "a_b", "Ab"]) expect(slugProblem(bad)).not.toBeNull();
  });

  it("derives a valid slug from a job", () => {
    expect(slugForJob("Triage run #3", "job_0123456789abcdef")).toBe("triage-run-3-abcdef");
    expect(slugForJob("", "job_ab12")).toBe("job-obab12");
    expect(slugProblem(slugForJob("!!!", "job_ffffff"))).toBeNull();
    expect(slugProblem(slugForJob("x".repeat(80), "job_123456789"))).toBeNull();
  });

  it("describes targets", () => {
    expect(describeTarget({ kind: "base_model", baseModel: "arkor/tiny" })).toBe("Base model: arkor/tiny");
    expect(describeTarget({ kind: "adapter", adapter: { kind: "final", jobId: "job_0123456789abcdef" } })).toBe("Final adapter (job job_01234567)");
    expect(describeTarget({ kind: "adapter", adapter: { kind: "checkpoint", jobId: "j1", step: 40 } })).toBe("Checkpoint step 40 (job j1)");
  });

  it("writes quick starts with the key only when one is needed", () => {
    const url = "http://127.0.0.1:4100/endpoints/demo/v1";
    const curl = quickStart("curl", url, "fixed_api_key");
    expect(curl).toContain(`curl ${url}/chat/completions`);
    expect(curl).toContain("Authorization: Bearer YOUR_API_KEY");
    expect(quickStart("curl", url, "none")).not.toContain("Authorization");
    const py = quickStart("python", url, "none");
    expect(py).toContain(`base_url="${url}"`);
    expect(py).toContain('api_key="not-required"');
    const js = quickStart("javascript", url, "fixed_api_key");
    expect(js).toContain("async function main()");
    expect(js).toContain('apiKey: "YOUR_API_KEY"');
  });

  it("routes the pages", () => {
    expect(parseRoute("#/endpoints")).toEqual({ page: "endpoints" });
    expect(parseRoute("#/endpoints/ep_1%2F2")).toEqual({ page: "endpoint", id: "ep_1/2" });
    expect(parseRoute("#/endpoints/%E0%A4%A")).toEqual({ page: "overview" });
  });
});
