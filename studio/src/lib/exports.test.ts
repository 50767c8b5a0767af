import { describe, expect, it } from "vitest";
import type { ArtifactSet, ExportInfo } from "./api";
import {
  anyExportRunning,
  exportFileName,
  exportRequest,
  exportSources,
  exportStatusText,
  exportSummary,
  ollamaFolder,
  quantOptions,
  sourceLabel,
  withExport,
} from "./exports";

const set = (kind: "final" | "checkpoint", step: number): ArtifactSet => ({ kind, step, modelId: `m-${step}`, files: [] });

function info(over: Partial<ExportInfo> = {}): ExportInfo {
  return {
    id: "exp_1",
    format: "gguf",
    quant: "f16",
    source: "final",
    status: "completed",
    createdAt: "2026-01-01T00:00:00Z",
    files: [],
    ...over,
  };
}

describe("quantOptions", () => {
  it("offers precisions for merged GGUF files only", () => {
    expect(quantOptions("gguf")).toEqual(["f32", "f16", "bf16", "q8_0", "q4_k_m"]);
    expect(quantOptions("ollama")).toEqual(quantOptions("gguf"));
    expect(quantOptions("hf")).toEqual([]);
    expect(quantOptions("gguf-lora")).toEqual([]);
  });
});

describe("exportSources", () => {
  it("lists the final adapter first, then checkpoints by step", () => {
    expect(exportSources([set("checkpoint", 40), set("final", 60), set("checkpoint", 20)])).toEqual(["final", 20, 40]);
    expect(exportSources([set("checkpoint", 20)], "cancelled")).toEqual([20]);
    expect(exportSources(undefined)).toEqual([]);
  });

  it("offers the final adapter of a completed job before its artifacts load", () => {
    expect(exportSources(undefined, "completed")).toEqual(["final"]);
  });
});

describe("exportRequest", () => {
  const form = { format: "gguf" as const, quant: "q8_0" as const, source: "final" as const, systemPrompt: "" };
  it("sends only the fields the format uses", () => {
    expect(exportRequest(form)).toEqual({ format: "gguf", quant: "q8_0" });
    expect(exportRequest({ ...form, format: "hf", systemPrompt: "be brief" })).toEqual({ format: "hf" });
    expect(exportRequest({ ...form, format: "gguf-lora", source: 20 })).toEqual({ format: "gguf-lora", checkpointStep: 20 });
    expect(exportRequest({ ...form, format: "ollama", systemPrompt: "  be brief \n" })).toEqual({
      format: "ollama",
      quant: "q8_0",
      systemPrompt: "be brief",
    });
    expect(exportRequest({ ...form, format: "ollama", systemPrompt: "   " })).toEqual({ format: "ollama", quant: "q8_0" });
  });
});

describe("labels", () => {
  it("names sources, formats and precisions", () => {
    expect(sourceLabel("final")).toBe("Final adapter");
    expect(sourceLabel("checkpoint-20")).toBe("Checkpoint · step 20");
    expect(sourceLabel(40)).toBe("Checkpoint · step 40");
    expect(sourceLabel("other")).toBe("other");
    expect(exportSummary(info({ quant: "q8_0" }))).toBe("GGUF · q8_0 · Final adapter");
    expect(exportSummary(info({ format: "hf", source: "checkpoint-20" }))).toBe("Transformers · Checkpoint · step 20");
    expect(exportSummary(info({ format: "gguf-lora" }))).toBe("GGUF LoRA · Final adapter");
  });

  it("says how long an export has run or took", () => {
    const start = Date.parse("2026-01-01T00:00:00Z");
    expect(exportStatusText(info({ status: "running" }), start + 12_400)).toBe("Exporting… 12s");
    expect(exportStatusText(info({ status: "running", createdAt: "bad" }), start)).toBe("Exporting…");
    expect(exportStatusText(info({ finishedAt: "2026-01-01T00:01:05Z" }), 0)).toBe("Completed in 1m 05s");
    expect(exportStatusText(info({ finishedAt: null }), 0)).toBe("Completed");
    expect(exportStatusText(info({ status: "failed" }), 0)).toBe("Failed");
  });

  it("shows paths inside the export, and the Ollama folder", () => {
    expect(exportFileName("exports/exp_1/run-f16.gguf")).toBe("run-f16.gguf");
    expect(exportFileName("exports/exp_1/run-hf/model.safetensors")).toBe("run-hf/model.safetensors");
    expect(exportFileName("final/adapter_config.json")).toBe("final/adapter_config.json");
    const files = [
      { pathname: "exports/exp_1/run-ollama/Modelfile" },
      { pathname: "exports/exp_1/run-ollama/model-f16.gguf" },
    ];
    expect(ollamaFolder(files)).toBe("run-ollama");
    expect(ollamaFolder([{ pathname: "exports/exp_1/run-f16.gguf" }])).toBeNull();
    expect(ollamaFolder([])).toBeNull();
  });
});

describe("the list", () => {
  it("knows when to poll and shows a started export at once", () => {
    expect(anyExportRunning(undefined)).toBe(false);
    expect(anyExportRunning([info(), info({ id: "exp_2", status: "running" })])).toBe(true);
    expect(anyExportRunning([info({ status: "failed" })])).toBe(false);
    const old = [info({ id: "exp_1" })];
    const started = info({ id: "exp_2", status: "running" });
    expect(withExport(old, started).map((e) => e.id)).toEqual(["exp_2", "exp_1"]);
    expect(withExport([started, ...old], { ...started, status: "completed" }).map((e) => [e.id, e.status])).toEqual([
      ["exp_2", "completed"],
      ["exp_1", "completed"],
    ]);
    expect(withExport(undefined, started)).toEqual([started]);
  });
});
